"""Every benchmark in one run, one table: `python bench/run_all.py [--quick]`.

    python bench/run_all.py --quick     # ~5 min on 2 cores: few videos, few timed steps
    python bench/run_all.py             # ~10-15 min on 2 cores
    python bench/run_all.py --quick --only training,evaluation

Rows (each measured in its own subprocess, so no TensorFlow state leaks from one to the next;
the column `load` is the 1-minute load average when the row started: above the core count,
something else shared the machine):

  conversion       bench/convert.py's rows: synthetic 320x240 mp4v videos -> 340x256 records,
                   25 snippets of L=5; RGB only, and RGB + flow with DIS (medium), Farneback
                   and TV-L1 (fewer snippets: ~1 s a pair). Source frames/s and flow pairs/s.
  flow             bench/flow.py: OpenCV TV-L1 and the batched tensor TV-L1 (tsn_keras.tvl1)
                   pairs/s at 340x256 and the tensor flow's EPE against OpenCV's.
  input pipeline   bench/input_pipeline.py: training clips/s (K=3, 224, augmentation), rgb
                   and flow, on synthetic records.
  training         BN-Inception at 224, one training step (forward, backward, SGD momentum
                   0.9; bench/model.py's `training_step_fn`), float32 and mixed_bfloat16,
                   next to the same step of pretrainedmodels' BN-Inception in PyTorch
                   (bench/torch_reference.py; float32 and bf16 autocast) at the same batch
                   size and thread count, the two timed in turn in one process (same load).
  evaluation       bench/evaluate.py: 25 snippets x 10 crops through an exported SavedModel
                   (`tsn_keras.scoring.evaluate`), videos/s; the tiny backbone for comparison.
  litert           bench/litert.py: BN-Inception 224 (random weights) as .tflite fp32, fp16,
                   int8_dynamic, int8_full: ms per snippet with 1 thread and all cores, MB.

For more detail run the scripts alone (bench/model.py adds forward-only rows, GFLOP/s against
a matmul and folded-vs-TimeDistributed TSN; bench/convert.py the --workers scaling and memory).
"""

import argparse
import dataclasses
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


@dataclasses.dataclass(frozen=True)
class Plan:
    """How much of each benchmark to run."""

    videos: int  # conversion: synthetic videos per row
    frames: int  # conversion: frames per video
    rgb_repeat: int  # conversion: RGB-only rows convert each video this often
    convert_workers: int
    tvl1_snippets: int
    pipeline_videos: int
    pipeline_batches: int
    pipeline_batch_size: int
    train_batch: int
    train_iters: int
    eval_videos: int
    eval_warmup: int  # BN-Inception; the tiny backbone always warms up


QUICK = Plan(
    videos=2,
    frames=60,
    rgb_repeat=4,
    convert_workers=1,
    tvl1_snippets=1,
    pipeline_videos=16,
    pipeline_batches=6,
    pipeline_batch_size=16,
    train_batch=4,
    train_iters=2,
    eval_videos=1,
    eval_warmup=0,
)
FULL = Plan(
    videos=4,
    frames=150,
    rgb_repeat=8,
    convert_workers=os.cpu_count() or 1,
    tvl1_snippets=2,
    pipeline_videos=64,
    pipeline_batches=40,
    pipeline_batch_size=32,
    train_batch=8,  # bench/model.py's default
    train_iters=3,
    eval_videos=3,
    eval_warmup=1,
)

# name, bench/convert.py ConvertConfig overrides ("flow_algorithm" defaults to "dis" there)
CONVERT_ROWS = [
    ("RGB only", {"modalities": ["rgb"]}),
    ("RGB + flow DIS medium", {"modalities": ["rgb", "flow"]}),
    ("RGB + flow Farneback", {"modalities": ["rgb", "flow"], "flow_algorithm": "farneback"}),
    ("RGB + flow TV-L1", {"modalities": ["rgb", "flow"], "flow_algorithm": "tvl1"}),
]


def _load_bench_module(name: str):
    """A sibling bench script as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"_bench_{name}", os.path.join(HERE, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _opencv_version() -> str:
    try:
        import cv2
    except ImportError:
        return "not installed"
    return cv2.__version__


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            have = next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), [])
        flags = " ".join(x for x in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if x in have)
    except OSError:
        pass
    return (
        f"machine: {os.cpu_count()} cores, {model} ({flags or 'no AVX2'}); python "
        f"{platform.python_version()}, tensorflow {_version('tensorflow')}, keras "
        f"{_version('keras')}, opencv {_opencv_version()}, torch "
        f"{_version('torch')}, pretrainedmodels {_version('pretrainedmodels')}"
    )


class Runner:
    """Runs one benchmark subprocess at a time and collects table rows."""

    def __init__(self, work: str):
        self.work = work
        self.rows: list[tuple] = []
        self.failures: list[str] = []
        self.env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        self.env["PYTHONPATH"] = os.pathsep.join(
            p for p in (REPO, os.environ.get("PYTHONPATH")) if p
        )

    def call(self, what: str, args: list[str], json_out: str | None = None):
        """Runs `python args...`; returns the JSON it wrote (or its last stdout line), or None."""
        load = os.getloadavg()[0]
        print(f"  {what} ...", end="", flush=True)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, *args], capture_output=True, text=True, env=self.env, check=False
        )
        print(f" {time.perf_counter() - start:.0f} s", flush=True)
        if done.returncode != 0:
            self.failures.append(f"{what}: exit {done.returncode}\n{done.stderr[-2000:]}")
            return None, load
        if json_out:
            with open(json_out) as f:
                return json.load(f), load
        return json.loads(done.stdout.strip().splitlines()[-1]), load

    def add(self, section: str, name: str, result: str, torch: str, notes: str, load: float):
        self.rows.append((section, name, result, torch, notes, f"{load:.1f}"))


def bench_conversion(runner: Runner, plan: Plan) -> None:
    convert_bench = _load_bench_module("convert")  # no TensorFlow import in this process
    paths = convert_bench.make_videos(os.path.join(runner.work, "videos"), plan.videos, plan.frames)
    for i, (name, overrides) in enumerate(CONVERT_ROWS):
        config = dict(overrides)
        modalities = config.pop("modalities")
        tvl1 = config.get("flow_algorithm") == "tvl1"
        if tvl1:
            config["num_snippets"] = plan.tvl1_snippets
        spec = {
            "paths": paths[:1] if tvl1 else paths,
            "config": config,
            "modalities": modalities,
            "workers": 1 if tvl1 else plan.convert_workers,
            "out": os.path.join(runner.work, f"convert{i}"),
            "repeat": plan.rgb_repeat if modalities == ["rgb"] else 1,
        }
        shutil.rmtree(spec["out"], ignore_errors=True)  # else the converter would resume
        r, load = runner.call(
            f"conversion: {name}",
            [os.path.join(HERE, "convert.py"), f"--one={json.dumps(spec)}"],
        )
        if r is None:
            runner.add("conversion", name, "failed", "", "", load)
            continue
        result = f"{r['frames'] / r['seconds']:.0f} frames/s"
        if r["flow_pairs"]:
            result += f", {r['flow_pairs'] / r['seconds']:.1f} pairs/s"
        snippets = f", {_plural(plan.tvl1_snippets, 'snippet')}" if tvl1 else ""
        notes = (
            f"{_plural(r['videos'], 'video')} x {plan.frames} frames{snippets}, "
            f"workers {spec['workers']}, "
            f"{r['cpu'] / r['seconds']:.1f} cores busy"
        )
        runner.add("conversion", name, result, "", notes, load)


def bench_input_pipeline(runner: Runner, plan: Plan) -> None:
    out = os.path.join(runner.work, "input_pipeline.json")
    rows, load = runner.call(
        "input pipeline: rgb, flow",
        [
            os.path.join(HERE, "input_pipeline.py"),
            f"--videos={plan.pipeline_videos}",
            f"--batches={plan.pipeline_batches}",
            f"--batch_size={plan.pipeline_batch_size}",
            f"--json={out}",
        ],
        out,
    )
    if rows is None:
        runner.add("input pipeline", "rgb, flow", "failed", "", "", load)
        return
    for r in rows:
        st = r["stages"]
        notes = (
            f"batch {plan.pipeline_batch_size} x {plan.pipeline_batches}; CPU {r['cpu_ms']:.1f} "
            f"ms/clip; stages decode {st['decode']:.1f}, views {st['views']:.1f}"
        )
        name = f"{r['modality']} K=3 224 training"
        runner.add("input pipeline", name, f"{r['clips_per_s']:.0f} clips/s", "", notes, load)


def bench_training(runner: Runner, plan: Plan) -> None:
    for policy in ("float32", "mixed_bfloat16"):
        out = os.path.join(runner.work, f"train_{policy}.json")
        spec = {"policy": policy, "batch": plan.train_batch, "iters": plan.train_iters}
        r, load = runner.call(
            f"training: Keras {policy} and PyTorch",
            [os.path.abspath(__file__), f"--training={json.dumps(spec)}", f"--json={out}"],
            out,
        )
        name = f"BN-Inception 224 {policy}"
        if r is None:
            runner.add("training", name, "failed", "", "", load)
            continue
        notes = f"batch {plan.train_batch}, median of {plan.train_iters}"
        torch_cell = "-"
        if r["torch_images_per_s"]:
            torch_cell = f"{r['torch_images_per_s']:.2f} images/s"
            ratio = r["keras_images_per_s"] / r["torch_images_per_s"]
            notes += f", timed in turn; Keras/PyTorch {ratio:.2f}x; {r['torch']}"
        else:
            notes += f"; PyTorch skipped: {r['torch']}"
        result = f"{r['keras_images_per_s']:.2f} images/s"
        runner.add("training", name, result, torch_cell, notes, load)


def bench_evaluation(runner: Runner, plan: Plan) -> None:
    for backbone, videos, warmup in (
        ("bn_inception", plan.eval_videos, plan.eval_warmup),
        ("tiny", max(plan.eval_videos, 2), 1),
    ):
        out = os.path.join(runner.work, f"evaluate_{backbone}.json")
        result, load = runner.call(
            f"evaluation: {backbone}",
            [
                os.path.join(HERE, "evaluate.py"),
                f"--backbones={backbone}",
                f"--videos={videos}",
                f"--warmup={warmup}",
                f"--json={out}",
            ],
            out,
        )
        name = f"{backbone} 224, 25 snippets x 10 crops"
        if result is None:
            runner.add("evaluation", name, "failed", "", "", load)
            continue
        r = result["rows"][0]
        notes = (
            f"{r['s_per_video']:.2f} s/video, {r['images_per_s']:.1f} images/s; "
            f"{_plural(r['videos'], 'video')}{'' if r['warmup'] else ' incl. first call'}; "
            f"export {r['export_s']:.0f} s"
        )
        runner.add("evaluation", name, f"{r['videos_per_s']:.3f} videos/s", "", notes, load)


def bench_litert(runner: Runner, plan: Plan) -> None:
    out = os.path.join(runner.work, "litert.json")
    iters = 5 if plan is QUICK else 20
    result, load = runner.call(
        "litert: BN-Inception 224, 4 formats",
        [os.path.join(HERE, "litert.py"), f"--iters={iters}", f"--json={out}"],
        out,
    )
    if result is None:
        runner.add("litert", "BN-Inception 224", "failed", "", "", load)
        return
    for r in result["rows"]:
        if r["format"] == "keras":
            name = "BN-Inception 224 Keras"
            speed = f"{r['ms_all']:.1f} ms/snippet all cores"
            notes = f"compiled call, TensorFlow's default threads; median of {iters}"
        else:
            name = f"BN-Inception 224 {r['format']}"
            speed = f"{r['ms_1']:.1f} ms/snippet 1 thread, {r['ms_all']:.1f} all cores"
            notes = f"{r['mb']:.1f} MB, max |dp| vs Keras {r['diff']:.1e}; median of {iters}"
        runner.add("litert", name, speed, "", notes, load)


def bench_flow(runner: Runner, plan: Plan) -> None:
    """bench/flow.py: OpenCV TV-L1 against the batched tensor TV-L1 (tsn_keras.tvl1)."""
    out = os.path.join(runner.work, "flow.json")
    quick = plan is QUICK
    args = ["--presets=fast", "--batches=1,8"]
    if not quick:
        args = ["--presets=parity,fast", "--batches=1,8,32"]
    r, load = runner.call(
        "flow: TV-L1 OpenCV vs tensor",
        [os.path.join(HERE, "flow.py"), *(["--quick"] if quick else []), *args,
         f"--json={out}"],
        out,
    )  # fmt: skip
    if r is None:
        runner.add("flow", "TV-L1 tensor", "failed", "", "", load)
        return
    cv_rate = f"{r['opencv_pairs_per_s']:.2f} pairs/s"
    runner.add("flow", "TV-L1 OpenCV", cv_rate, "", "340x256", load)
    for row in r["rows"]:
        key = "real" if "epe real" in row else "synthetic demo"
        runner.add(
            "flow",
            f"TV-L1 tensor {row['preset']}, batch {row['batch']}",
            f"{row['pairs_per_s']:.2f} pairs/s ({row['vs_opencv']:.2f}x OpenCV)",
            "",
            f"EPE vs OpenCV {row['epe ' + key]:.3f} px ({key}; stable pairs "
            f"{row['stable epe ' + key]:.3f}), {row['off2 ' + key]:.1f}% >2 levels",
            load,
        )


SECTIONS = {
    "conversion": bench_conversion,
    "flow": bench_flow,
    "input_pipeline": bench_input_pipeline,
    "training": bench_training,
    "evaluation": bench_evaluation,
    "litert": bench_litert,
}


def print_table(rows: list[tuple]) -> None:
    header = ("benchmark", "measurement", "result", "PyTorch", "notes", "load")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    order = (0, 1, 2, 3, 5, 4)  # notes last: it is the long one
    line = lambda row: "  ".join(str(row[i]).ljust(widths[i]) for i in order).rstrip()  # noqa: E731
    print(line(header))
    print(line(tuple("-" * w for w in widths)))
    previous = None
    for row in rows:
        shown = row if row[0] != previous else ("",) + row[1:]
        previous = row[0]
        print(line(shown))


def _training(spec: dict, json_out: str) -> int:
    """Internal (--training): the Keras and the PyTorch training step of one precision.

    Both live in this one process and are timed in turn (bench/model.py's round-robin
    `_interleaved_seconds`), so that both see the same load when other work shares the cores.
    """
    policy, batch = spec["policy"], spec["batch"]
    model_bench = _load_bench_module("model")
    torch_bench = _load_bench_module("torch_reference")
    fns = {"keras": model_bench.training_step_fn(policy, batch)}
    precision = "float32" if policy == "float32" else "bfloat16"
    torch_note = torch_bench.missing()
    if torch_note is None and precision == "bfloat16" and not torch_bench.bf16_autocast_supported():
        torch_note = "this torch has no bfloat16 autocast on CPU"
    if torch_note is None:
        import torch

        threads = os.cpu_count() or 1  # TensorFlow's default intra-op thread count
        fns["torch"] = torch_bench.training_step_fn(precision, batch, threads)
        autocast = " bf16 autocast" if precision == "bfloat16" else ""
        torch_note = f"torch {torch.__version__}{autocast}, {threads} threads"
    seconds = model_bench._interleaved_seconds(fns, spec["iters"])
    result = {
        "policy": policy,
        "batch": batch,
        "keras_images_per_s": batch / seconds["keras"],
        "torch_images_per_s": batch / seconds["torch"] if "torch" in seconds else None,
        "torch": torch_note,
    }
    with open(json_out, "w") as f:
        json.dump(result, f)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="~5 min on 2 cores.")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"Comma-separated subset of {','.join(SECTIONS)}.",
    )
    parser.add_argument("--workdir", default=None, help="Scratch folder (default: temporary).")
    parser.add_argument("--training", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.training:
        return _training(json.loads(args.training), args.json)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"--only: unknown section(s) {unknown}; choose from {list(SECTIONS)}")
    plan = QUICK if args.quick else FULL
    print(machine())
    print(
        f"mode: {'quick' if args.quick else 'full'}; load average at start "
        f"{os.getloadavg()[0]:.1f} (more than {os.cpu_count()}: other work shares the cores)",
        flush=True,
    )
    start = time.perf_counter()
    work = args.workdir or tempfile.mkdtemp(prefix="tsn_bench_all_")
    runner = Runner(work)
    try:
        for name in SECTIONS:
            if name in only:
                SECTIONS[name](runner, plan)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print_table(runner.rows)
    print(
        f"\n{time.perf_counter() - start:.0f} s in all; load average at the end "
        f"{os.getloadavg()[0]:.1f}"
    )
    for failure in runner.failures:
        print(f"\nFAILED {failure}")
    return 1 if runner.failures else 0


if __name__ == "__main__":
    sys.exit(main())
