"""Benchmark of the converter: source frames/s, flow pairs/s, peak memory, workers 1 vs 2.

    python bench/convert.py                      # ~3-4 min on 2 cores
    python bench/convert.py --videos 4 --frames 100 --tvl1_videos 1
    python bench/convert.py --beam_only          # local converter vs Beam's DirectRunner
    python bench/convert.py --plan_only 650000   # start-up of a Kinetics-700-size job, by phase

Generates synthetic 320x240 MPEG-4 (mp4v, like UCF101's XviD files) videos: a textured scene
panning slowly with a textured blob moving across it. Each row runs `tsn_keras.convert.convert`
in a fresh subprocess (so peak RSS is that configuration's own) with the default stored size
340x256, 25 snippets of L=5, JPEG quality 90. Columns:

  src frames/s   frames decoded per second of conversion (the TensorFlow import excluded)
  flow pairs/s   flow fields computed per second (each is a frame pair)
  speed-up       against the same row with --workers 1 (the pool's start-up included)
  cores          CPU seconds used per second (2.0 = both cores; less = other load got them)
  parent MB      peak RSS of the converting process (it imports TensorFlow to write: ~600 MB)
  worker MB      peak RSS of the largest worker process (workers > 1 only; no TensorFlow)

A second table (`--beam`, when apache-beam is installed) times the same conversion (RGB + DIS
flow, 2 shards) by the local converter and by `tsn_keras.beam.convert` on Beam's DirectRunner,
in-process and with 2 worker processes, in one run: videos/s is videos over the call's seconds
(the pipeline's start-up and each Beam worker's TensorFlow import included; the local rows
exclude the parent's TensorFlow import, as above), and each Beam row's ratio is against the
local row with as many workers. CPU s/video counts the converting process and its children
(Beam's worker processes included), which other load on the machine moves less than seconds.

`--plan_only N` converts nothing: it writes Kinetics annotation CSVs listing N clips (84%
train, 5% validate, 11% test.csv, as Kinetics-700-2020; 700 labels with spaces, 1 in 20 with
a comma and quotes),
puts `--plan_on_disk` of them on disk as empty files (train/<label>/ and val/<label>/, the rest
"not downloaded"), then times what the converter does before its first video, phase by phase:
reading the split, the jobs, the shard plan, the resume check and the writer's TensorFlow
import (start-up: all of them), then the manifest and not-found list written at the end. Wall
and CPU seconds: CPU seconds say what the phase costs when other work shares the cores. The
files are kept in --workdir for the next run.

Targets (2 cores): RGB-only > 500 source frames/s, DIS > 100 flow pairs/s,
--workers 2 >= 1.8x --workers 1.

Decoders (`--decode`, first): frames/s of OpenCV's `VideoCapture` against PyAV (the
converter's decoder, `tsn_keras.video.Decoder`) on one 720p H.264 clip written with PyAV's
libx264 (`--decode_frames` frames of a panning texture), side by side in one run: decoding
only (`grab()` / decoded frames counted) and decoding with the RGB conversion of every frame
(`read()` / `to_rgb`), with one thread and with all cores (PyAV: slice threads only, and
frame threading). Each row checks that it decoded the same frames as OpenCV's first row
(count, and the RGB bytes of the first and last frame).

Before / after (`--before REV`): the RGB-only and RGB + DIS rows with the `tsn_keras` package
of git revision REV (extracted with `git archive`, put first on PYTHONPATH) and with this
checkout's, alternating, in one run: the conversion throughput of two versions on the same
videos and machine load, and the CPU seconds per video of each (the converting process and its
workers), which other load on the machine moves less than seconds.

    python bench/convert.py --notable --nobeam --before 787afd5   # decoders + before/after
"""

import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading

from absl import app, flags

_VIDEOS = flags.DEFINE_integer("videos", 8, "Synthetic videos per row.")
_FRAMES = flags.DEFINE_integer("frames", 150, "Frames per video (6 s at 25 fps).")
_TVL1_VIDEOS = flags.DEFINE_integer("tvl1_videos", 1, "Videos for the (slow) TV-L1 row.")
_TVL1_SNIPPETS = flags.DEFINE_integer("tvl1_snippets", 2, "Snippets per video for TV-L1.")
_RGB_REPEAT = flags.DEFINE_integer("rgb_repeat", 8, "RGB-only rows convert each video this often.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Scratch folder (default: a temp folder).")
_ONE = flags.DEFINE_string("one", None, "Internal: run one row (JSON) and print its result.")
_BEAM = flags.DEFINE_bool("beam", True, "Also time Beam's DirectRunner (needs apache-beam).")
_BEAM_ONLY = flags.DEFINE_bool("beam_only", False, "Only the Beam table.")
_PLAN_ONLY = flags.DEFINE_integer(
    "plan_only", 0, "Only time the start-up of a synthetic Kinetics job listing this many clips."
)
_PLAN_ON_DISK = flags.DEFINE_float(
    "plan_on_disk", 0.2, "--plan_only: the fraction of the listed clips that is on disk."
)
_TABLE = flags.DEFINE_bool("table", True, "The main table (every configuration).")
_DECODE = flags.DEFINE_bool("decode", True, "The decoders' table (720p H.264 clip).")
_DECODE_FRAMES = flags.DEFINE_integer("decode_frames", 250, "Frames of the 720p clip.")
_BEFORE = flags.DEFINE_string(
    "before", None, "Git revision: RGB and RGB + DIS rows with its tsn_keras and with this one."
)
_REPEATS = flags.DEFINE_integer("repeats", 2, "Before/after: runs of each row (best kept).")

ROWS = [
    # name, ConvertConfig overrides, workers ("flow_algorithm" defaults to "dis" here)
    ("RGB only", {"modalities": ["rgb"]}, 1),
    ("RGB only", {"modalities": ["rgb"]}, 2),
    ("RGB only, two-pass decode", {"modalities": ["rgb"], "decode_mode": "two_pass"}, 1),
    ("RGB only, two-pass decode", {"modalities": ["rgb"], "decode_mode": "two_pass"}, 2),
    ("RGB + flow DIS medium", {"modalities": ["rgb", "flow"]}, 1),
    ("RGB + flow DIS medium", {"modalities": ["rgb", "flow"]}, 2),
    ("RGB + flow DIS fast", {"modalities": ["rgb", "flow"], "dis_preset": "fast"}, 1),
    ("RGB + flow DIS fast", {"modalities": ["rgb", "flow"], "dis_preset": "fast"}, 2),
    ("RGB + flow Farneback", {"modalities": ["rgb", "flow"], "flow_algorithm": "farneback"}, 1),
    ("RGB + flow Farneback", {"modalities": ["rgb", "flow"], "flow_algorithm": "farneback"}, 2),
]


def make_videos(root: str, num_videos: int, num_frames: int) -> list[str]:
    """Synthetic 320x240 mp4v videos (reused when present)."""
    import cv2
    import numpy as np

    from tsn_keras.video import write_video

    os.makedirs(root, exist_ok=True)
    paths = []
    for v in range(num_videos):
        path = os.path.join(root, f"v{v:03d}.avi")
        paths.append(path)
        if os.path.exists(path):
            continue
        rng = np.random.default_rng(v)
        scene = cv2.GaussianBlur(rng.uniform(0, 255, (300, 480, 3)).astype(np.float32), (0, 0), 3)
        scene = cv2.normalize(scene, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        blob = cv2.GaussianBlur(rng.uniform(0, 255, (60, 60, 3)).astype(np.float32), (0, 0), 2)
        blob = cv2.normalize(blob, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)

        def frames(scene=scene, blob=blob):
            for t in range(num_frames):
                x0 = int(t * 0.8) % 160  # camera pan
                frame = scene[20:260, x0 : x0 + 320].copy()  # [240, 320, 3]
                bx, by = (40 + 2 * t) % 260, 90 + int(20 * np.sin(t / 10))
                frame[by : by + 60, bx : bx + 60] = blob
                yield frame

        write_video(path, frames(), fourcc="mp4v")
    return paths


def _watch_children(stop: threading.Event, peak: list) -> None:
    """Largest VmHWM (peak RSS since exec) of this process's children, sampled every 50 ms.

    (RUSAGE_CHILDREN would report the parent's size: ru_maxrss survives fork + exec.)
    """
    pid = os.getpid()
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                kids = f.read().split()
        except OSError:
            kids = []
        for kid in kids:
            try:
                with open(f"/proc/{kid}/cmdline", "rb") as f:
                    if b"spawn_main" not in f.read():
                        continue  # not a worker, or forked and not yet exec'd (parent's RSS)
                with open(f"/proc/{kid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]) / 1024.0)
            except OSError:
                pass
        stop.wait(0.05)


def _run_one(spec: dict) -> dict:
    import tensorflow  # noqa: F401  (the writer's import, outside the measured CPU time)

    from tsn_keras import convert

    jobs = [
        convert.VideoJob(p, f"{r}/{os.path.basename(p)}", 0, "c")
        for r in range(spec["repeat"])
        for p in spec["paths"]
    ]
    config = {"flow_algorithm": "dis", **spec["config"]}
    config = convert.ConvertConfig(**config, modalities=tuple(spec["modalities"]))
    stop, peak = threading.Event(), [0.0]
    watcher = threading.Thread(target=_watch_children, args=(stop, peak), daemon=True)
    watcher.start()
    before = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    shards = spec.get("shards", 1)
    if spec.get("runner"):
        from tsn_keras import beam

        args = spec["pipeline_args"]
        subsets = {"train": jobs}
        report = beam.convert(subsets, spec["out"], config, ["c"], shards, pipeline_args=args)
    else:
        report = convert.convert(
            {"train": jobs}, spec["out"], config, ["c"], shards, spec["workers"], progress=False
        )
    stop.set()
    watcher.join()
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    cpu = sum(
        a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime
        for a, b in zip(after, before, strict=True)
    )
    kb = 1024.0  # ru_maxrss is in KiB on Linux
    return {
        "frames": report.frames,
        "flow_pairs": report.flow_pairs,
        "seconds": report.seconds,
        "videos": report.videos,
        "failed": report.failed,
        "parent_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kb,
        "worker_mb": peak[0],
        "cpu": cpu,
    }


def _run_in_child(spec: dict, env: dict, name: str) -> dict | None:
    """One row's conversion in a fresh process (`--one`), into an emptied output folder (else
    the converter would resume); its JSON result, or None after printing why it failed."""
    shutil.rmtree(spec["out"], ignore_errors=True)
    cmd = [sys.executable, os.path.abspath(__file__), f"--one={json.dumps(spec)}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        print(f"{name}: failed\n{done.stderr[-3000:]}")
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_720p(path: str, num_frames: int) -> str:
    """A 1280x720 H.264 (libx264, yuv420p, 25 fps) clip of a panning texture, written with PyAV
    (reused when present)."""
    import av
    import cv2
    import numpy as np

    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(0)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (800, 1800, 3)).astype(np.float32), (0, 0), 4)
    scene = cv2.normalize(scene, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    with av.open(path + ".tmp.mp4", "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        for t in range(num_frames):
            x0, y0 = 2 * t % 500, int(40 + 30 * np.sin(t / 20))
            rgb = np.ascontiguousarray(scene[y0 : y0 + 720, x0 : x0 + 1280])  # [720, 1280, 3]
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode())
    os.replace(path + ".tmp.mp4", path)
    return path


def _decode_opencv(path: str, threads: int, rgb: bool):
    """(frames, first RGB, last RGB) with cv2.VideoCapture (threads 0: OpenCV's default)."""
    import cv2

    params = [cv2.CAP_PROP_N_THREADS, threads] if threads else []
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
    count, first, last = 0, None, None
    while cap.grab():
        if rgb or count == 0:
            ok, bgr = cap.retrieve()
            last = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            first = last if count == 0 else first
        count += 1
    cap.release()
    return count, first, last if rgb else None


def _decode_pyav(path: str, threads: int, frame_threads: bool, rgb: bool):
    """(frames, first RGB, last RGB) with `video.Decoder` (threads 0: one per core)."""
    from tsn_keras import video

    count, first, last = 0, None, None
    with video.Decoder(path, threads, frame_threads) as decoder:
        for frame in decoder.frames():
            if rgb or count == 0:
                last = video.to_rgb(frame, None)
                first = last if count == 0 else first
            count += 1
    return count, first, last if rgb else None


DECODE_ROWS = [
    # name, function, threads, frame threading
    ("OpenCV VideoCapture", "opencv", 1, False),
    ("OpenCV VideoCapture", "opencv", 0, False),
    ("PyAV", "pyav", 1, False),
    ("PyAV, slice threads", "pyav", 0, False),
    ("PyAV, frame threads", "pyav", 0, True),
]


def _decode_table(work: str) -> None:
    """OpenCV against PyAV on one 720p H.264 clip: frames/s decoding, and with RGB."""
    import time

    import numpy as np

    path = make_720p(
        os.path.join(work, f"h264_720p_{_DECODE_FRAMES.value}.mp4"), _DECODE_FRAMES.value
    )
    print(
        f"Decoders: {path} (1280x720 H.264, {_DECODE_FRAMES.value} frames), best of 3 turns; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    header = f"{'decoder':24s} {'threads':>7s} {'frames':>6s} {'decode fps':>10s} "
    header += f"{'+RGB fps':>9s} {'same frames':>11s}"
    print(header)
    print("-" * len(header))
    best = {}  # (row, rgb) -> seconds; the rows take turns, so load changes hit all alike
    results = {}
    for _ in range(3):
        for row, (_, kind, threads, frame_threads) in enumerate(DECODE_ROWS):
            for rgb in (False, True):
                start = time.perf_counter()
                if kind == "opencv":
                    got = _decode_opencv(path, threads, rgb)
                else:
                    got = _decode_pyav(path, threads, frame_threads, rgb)
                seconds = time.perf_counter() - start
                best[row, rgb] = min(best.get((row, rgb), seconds), seconds)
                results[row] = got
    reference = results[0]
    for row, (name, _, threads, _) in enumerate(DECODE_ROWS):
        got = results[row]
        same = got[0] == reference[0] and all(
            np.array_equal(a, b) for a, b in zip(got[1:], reference[1:], strict=True)
        )
        label = "all" if threads == 0 else str(threads)
        print(
            f"{name:24s} {label:>7s} {got[0]:6d} {got[0] / best[row, False]:10.0f} "
            f"{got[0] / best[row, True]:9.0f} {'yes' if same else 'NO':>11s}",
            flush=True,
        )
    print()


BEFORE_ROWS = [
    ("RGB only", {"modalities": ["rgb"]}, 1),
    ("RGB only", {"modalities": ["rgb"]}, 2),
    ("RGB + flow DIS medium", {"modalities": ["rgb", "flow"]}, 1),
    ("RGB + flow DIS medium", {"modalities": ["rgb", "flow"]}, 2),
]


def _before_after(work: str, paths: list[str], env: dict, revision: str) -> None:
    """The BEFORE_ROWS with revision's tsn_keras and with this checkout's, alternating."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    old = os.path.join(work, f"before-{revision}")
    if not os.path.isdir(os.path.join(old, "tsn_keras")):
        os.makedirs(old, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", repo, "archive", revision, "tsn_keras"], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", old], input=archive, check=True)
    trees = {"before": old, "after": repo}
    print(
        f"Before ({revision}) / after (this checkout), best of {_REPEATS.value} runs each, "
        f"alternating; load average {os.getloadavg()[0]:.1f}"
    )
    header = f"{'configuration':24s} {'workers':>7s} {'unit':>12s} {'before':>8s} "
    header += f"{'after':>8s} {'after/before':>12s} {'CPU s/video before':>18s} {'after':>6s}"
    print(header)
    print("-" * len(header))
    for i, (name, overrides, workers) in enumerate(BEFORE_ROWS):
        config = dict(overrides)
        modalities = config.pop("modalities")
        best = {"before": 0.0, "after": 0.0}
        cpu = {"before": float("inf"), "after": float("inf")}  # CPU s per video, least
        for _ in range(_REPEATS.value):
            for which, tree in trees.items():
                spec = {
                    "paths": paths, "config": config, "modalities": modalities,
                    "workers": workers, "out": os.path.join(work, f"ba{i}_{which}"),
                    "repeat": _RGB_REPEAT.value if modalities == ["rgb"] else 1,
                }  # fmt: skip
                child_env = dict(env, PYTHONPATH=tree)
                r = _run_in_child(spec, child_env, f"{name} ({which})")
                if r is None:
                    continue
                rate = (r["flow_pairs"] or r["frames"]) / r["seconds"]
                best[which] = max(best[which], rate)
                cpu[which] = min(cpu[which], r["cpu"] / r["videos"])
        unit = "flow pairs/s" if "flow" in modalities else "frames/s"
        ratio = best["after"] / best["before"] if best["before"] else float("nan")
        print(
            f"{name:24s} {workers:7d} {unit:>12s} {best['before']:8.1f} {best['after']:8.1f} "
            f"{ratio:11.2f}x {cpu['before']:18.3f} {cpu['after']:6.3f}",
            flush=True,
        )
    print(f"(load average {os.getloadavg()[0]:.1f})\n")


def main(argv):
    del argv
    if _ONE.value:
        print(json.dumps(_run_one(json.loads(_ONE.value))))
        return 0
    work = _WORKDIR.value or tempfile.mkdtemp(prefix="tsn_bench_")
    if _PLAN_ONLY.value:
        return plan_only(work, _PLAN_ONLY.value, _PLAN_ON_DISK.value)
    if _DECODE.value and not _BEAM_ONLY.value:
        _decode_table(work)
    paths = make_videos(os.path.join(work, "videos"), _VIDEOS.value, _FRAMES.value)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if _BEFORE.value and not _BEAM_ONLY.value:
        _before_after(work, paths, env, _BEFORE.value)
    rows = [] if _BEAM_ONLY.value or not _TABLE.value else list(ROWS)
    tvl1 = {"modalities": ["rgb", "flow"], "flow_algorithm": "tvl1"}  # 0.5-3 s a pair
    tvl1["num_snippets"] = _TVL1_SNIPPETS.value
    if rows:
        rows.append((f"RGB + flow TV-L1 ({_TVL1_SNIPPETS.value} snippets)", tvl1, 1))
        for preset in ("fast", "parity"):  # the same videos and snippets as OpenCV's row
            tensor = dict(tvl1, flow_algorithm="tvl1_tensor", flow_preset=preset)
            name = f"RGB + flow tvl1_tensor {preset} ({_TVL1_SNIPPETS.value})"
            rows.append((name, tensor, 1))
    header = (
        f"{'configuration':34s} {'workers':>7s} {'videos':>6s} {'seconds':>8s} "
        f"{'src frames/s':>12s} {'flow pairs/s':>12s} {'speed-up':>8s} "
        f"{'cores':>5s} {'parent MB':>9s} {'worker MB':>9s}"
    )
    print(
        f"{_VIDEOS.value} videos x {_FRAMES.value} frames (RGB-only rows: x{_RGB_REPEAT.value}), "
        "320x240 mp4v -> 340x256, N=25, L=5"
    )  # also the videos of the before/after rows
    if rows:
        print(header)
        print("-" * len(header))
    single: dict[str, float] = {}
    for i, (name, overrides, workers) in enumerate(rows):
        config = dict(overrides)
        modalities = config.pop("modalities")
        use = paths[: _TVL1_VIDEOS.value] if "tvl1" in str(overrides) else paths
        spec = {
            "paths": use,
            "config": config,
            "modalities": modalities,
            "workers": workers,
            "out": os.path.join(work, f"out{i}"),
            # RGB-only rows are fast: more videos so that starting the pool does not dominate
            "repeat": _RGB_REPEAT.value if modalities == ["rgb"] else 1,
        }
        r = _run_in_child(spec, env, name)
        if r is None:
            continue
        fps = r["frames"] / r["seconds"]
        pps = r["flow_pairs"] / r["seconds"]
        rate = fps if not r["flow_pairs"] else pps
        speedup = ""
        if workers == 1:
            single[name] = rate
        elif name in single:
            speedup = f"{rate / single[name]:.2f}x"
        worker_mb = f"{r['worker_mb']:.0f}" if r["worker_mb"] else "-"
        print(
            f"{name:34s} {workers:7d} {r['videos']:6d} {r['seconds']:8.2f} {fps:12.0f} "
            f"{pps:12.1f} {speedup:>8s} {r['cpu'] / r['seconds']:5.2f} {r['parent_mb']:9.0f} "
            f"{worker_mb:>9s}",
            flush=True,
        )
    if _BEAM.value or _BEAM_ONLY.value:
        _beam_rows(work, paths, env)
    print(f"(cpu count {os.cpu_count()}; scratch {work})")
    return 0


def make_kinetics(root: str, listed: int, on_disk: float) -> None:
    """Synthetic Kinetics annotations listing `listed` clips, `on_disk` of the labelled ones as
    empty files (reused when present)."""
    stamp = os.path.join(root, f".made-v3-{listed}-{on_disk}")
    if os.path.exists(stamp):
        return
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(os.path.join(root, "annotations"))
    # as Kinetics' labels: most plain, a few quoted for a comma or a quote
    labels = [f"class {c} doing things" for c in range(700)]
    labels[::20] = [f'"class {c}, doing ""things"""' for c in range(0, 700, 20)]
    parts = (
        ("train", "train.csv", 0.84),
        ("val", "validate.csv", 0.05),
        ("test", "test.csv", 0.11),
    )
    start, every = 0, round(1 / on_disk) if on_disk > 0 else 0
    for split, name, share in parts:
        count = round(listed * share) if split != "test" else listed - start
        header = "label,youtube_id,time_start,time_end,split\r\n"
        if split == "test":
            header = "youtube_id,time_start,time_end,split\r\n"
        lines = [header]
        folders = set()
        for n in range(start, start + count):
            clip = f"-{n:010d}"  # an 11-character id that begins with '-', as many do
            label = labels[n % len(labels)]
            if split == "test":
                lines.append(f"{clip},{n % 300},{n % 300 + 10},{split}\r\n")
                continue
            lines.append(f"{label},{clip},{n % 300},{n % 300 + 10},{split}\r\n")
            if every and n % every == 0:
                unquoted = label[1:-1].replace('""', '"') if label[0] == '"' else label
                folder = os.path.join(root, split, unquoted)
                if folder not in folders:
                    os.makedirs(folder, exist_ok=True)
                    folders.add(folder)
                name_ = f"{clip}_{n % 300:06d}_{n % 300 + 10:06d}.mp4"
                open(os.path.join(folder, name_), "w").close()
        start += count
        with open(os.path.join(root, "annotations", name), "w", newline="") as f:
            f.writelines(lines)
    open(stamp, "w").close()


def plan_only(work: str, listed: int, on_disk: float) -> int:
    """Times the converter's start-up on a synthetic Kinetics job, phase by phase."""
    import time

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

    from tsn_keras import convert, splits

    root = os.path.join(work, f"kinetics{listed}")
    made = time.monotonic()
    make_kinetics(root, listed, on_disk)
    print(f"fixture: {listed} listed clips in {root} ({time.monotonic() - made:.1f} s to make)")
    out = os.path.join(work, "plan_out")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(os.path.join(out, convert.PROGRESS_DIR))
    config = convert.ConvertConfig(modalities=("rgb",))
    phases = []

    def timed(name, fn):
        t, cpu = time.monotonic(), time.process_time()
        value = fn()
        phases.append((name, time.monotonic() - t, time.process_time() - cpu))
        return value

    split = timed(
        "read the split (CSVs, disk walk, match)", lambda: splits.load_split("kinetics", root)
    )
    subsets = timed(
        "jobs from the split",
        lambda: {
            "train": convert.jobs_from_pairs(split.train, split.classes, split.video_root),
            "test": convert.jobs_from_pairs(split.test, split.classes, split.video_root),
        },
    )
    shards = timed("plan shards (MD5 order, digests)", lambda: convert.plan_shards(subsets, config))

    pending, _ = timed(
        "resume check (sidecars, finished shards)", lambda: convert.pending_shards(out, shards)
    )
    planning = len(phases)
    timed("import tensorflow (the writer's)", lambda: __import__("tensorflow"))
    info = {"not_found": split.not_found}
    timed(
        "(at the end) manifest, not_found.txt",
        lambda: convert.write_manifest(out, shards, config, [], info),
    )
    jobs = sum(len(j) for j in subsets.values())
    print(
        f"{listed} listed, {len(split.not_found)} not on disk, {jobs} videos to convert in "
        f"{len(pending)} shards"
    )
    print(f"  {'phase':44s} {'wall s':>7s} {'CPU s':>7s}")
    for name, wall, cpu in phases:
        print(f"  {name:44s} {wall:7.2f} {cpu:7.2f}")
    for name, upto in (("planning (before the import)", planning), ("start-up", planning + 1)):
        wall, cpu = (sum(p[i] for p in phases[:upto]) for i in (1, 2))
        print(f"  {name:44s} {wall:7.2f} {cpu:7.2f}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(f"peak RSS {rss:.0f} MB (cpu count {os.cpu_count()}; files in {work})")
    return 0


BEAM_ROWS = [
    # name, workers, runner, Beam options
    ("local converter", 1, None, []),
    ("Beam DirectRunner, in-process", 1, "DirectRunner", []),
    ("local converter", 2, None, []),
    (
        "Beam DirectRunner, 2 processes",
        2,
        "DirectRunner",
        ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    ),
]


def _beam_rows(work: str, paths: list[str], env: dict) -> None:
    """Local converter vs Beam's DirectRunner on the same videos and settings, one run."""
    if importlib.util.find_spec("apache_beam") is None:
        print("(Beam rows skipped: pip install '.[beam]')")
        return
    print(f"\nRGB + flow DIS medium, {len(paths)} videos, 2 shards: local converter vs Beam")
    header = f"{'converter':32s} {'workers':>7s} {'videos':>6s} {'seconds':>8s} {'videos/s':>8s}"
    header += f" {'vs local':>8s} {'CPU s/video':>11s}"
    print(header)
    print("-" * len(header))
    local: dict[int, float] = {}
    for i, (name, workers, runner, args) in enumerate(BEAM_ROWS):
        spec = {
            "paths": paths,
            "config": {},
            "modalities": ["rgb", "flow"],
            "workers": workers,
            "out": os.path.join(work, f"beam{i}"),
            "repeat": 1,
            "shards": 2,
            "runner": runner,
            "pipeline_args": args,
        }
        r = _run_in_child(spec, env, name)
        if r is None:
            continue
        rate = r["videos"] / r["seconds"]
        ratio = ""
        if runner is None:
            local[workers] = rate
        elif workers in local:
            ratio = f"{rate / local[workers]:.2f}x"
        print(
            f"{name:32s} {workers:7d} {r['videos']:6d} {r['seconds']:8.2f} {rate:8.3f} "
            f"{ratio:>8s} {r['cpu'] / r['videos']:11.2f}",
            flush=True,
        )


if __name__ == "__main__":
    app.run(main)
