"""Evaluation speed of the 25 snippets x 10 crops test protocol: s/video and videos/s.

    python bench/evaluate.py                                  # ~2 min on 2 CPU cores
    python bench/evaluate.py --backbones bn_inception --videos 2 --json out.json

For each backbone (BN-Inception and, for comparison, the tiny test backbone; both RGB at 224):
builds a TSN model with random weights (8 classes), exports it with
`export.export_saved_model`, loads it back with `scoring.load_scorer` (the `serve_views`
signature, as `python -m tsn_keras.evaluate --saved_model` does), and times
`scoring.evaluate` on synthetic records shaped like the converter's output (340x256 frames,
25 snippets, JPEG quality 90: `bench/input_pipeline.py`'s writer). One video is scored first
as a warm-up (--warmup 0: not); then --videos videos are timed (record reading, JPEG
decoding, the 10 crops, 250 images through the model, averaging). Columns:

  export s     seconds of export_saved_model (tracing three signatures, writing)
  s/video      seconds per video of the timed run
  videos/s     its inverse
  images/s     model images per second (25 x crops per video)

BN-Inception forward is 4.06 GFLOP per image, so one video is about 1 TFLOP: expect tens of
seconds per video on 2 cores. The tiny backbone's row is the cost of everything but the model.
"""

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = 8  # bench/input_pipeline.py's synthetic records have 8 classes


def _load_bench_module(name: str):
    """A sibling bench script as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(
        f"_bench_{name}", os.path.join(HERE, f"{name}.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_backbone(
    backbone: str,
    records_dir: str,
    export_dir: str,
    videos: int,
    crops: int,
    num_segments: int,
    warmup: bool = True,
) -> dict:
    """Exports a random-weight TSN model and times scoring.evaluate on `videos` videos.

    Without `warmup` the timed run includes the first call of the loaded signature.
    """
    from tsn_keras import export, scoring
    from tsn_keras.models import TSNConfig, build_tsn

    config = TSNConfig(num_classes=CLASSES, backbone=backbone, input_size=224)
    model = build_tsn(config)
    classes = [f"Class{i}" for i in range(CLASSES)]
    start = time.perf_counter()
    export.export_saved_model(model, config, classes, export_dir)
    export_s = time.perf_counter() - start
    scorer = scoring.load_scorer(export_dir)
    run = dict(subset="train", num_segments=num_segments, crops=crops, verbose=False)
    if warmup:
        scoring.evaluate(scorer, records_dir, max_videos=1, **run)
    result = scoring.evaluate(scorer, records_dir, max_videos=videos, **run)
    done = len(result["video_ids"])
    per_video = result["seconds"] / done
    return {
        "backbone": backbone,
        "videos": done,
        "crops": crops,
        "warmup": warmup,
        "num_segments": num_segments,
        "export_s": export_s,
        "s_per_video": per_video,
        "videos_per_s": 1.0 / per_video,
        "images_per_s": num_segments * crops / per_video,
    }


def run(
    backbones=("bn_inception", "tiny"),
    videos: int = 3,
    crops: int = 10,
    num_segments: int = 25,
    warmup: bool = True,
) -> dict:
    """{"rows": [...]}: one row per backbone (see time_backbone)."""
    import tensorflow as tf

    writer = _load_bench_module("input_pipeline")
    rows = []
    with tempfile.TemporaryDirectory(prefix="tsn_bench_eval_") as tmp:
        records_dir = os.path.join(tmp, "records")
        os.makedirs(records_dir)
        writer.write_synthetic_records(records_dir, max(videos, 1), snippets=25, shards=1)
        for backbone in backbones:
            export_dir = os.path.join(tmp, f"export_{backbone}")
            rows.append(
                time_backbone(
                    backbone, records_dir, export_dir, videos, crops, num_segments, warmup
                )
            )
    return {"tensorflow": tf.__version__, "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default="bn_inception,tiny", help="Comma-separated.")
    parser.add_argument("--videos", type=int, default=3, help="Timed videos per backbone.")
    parser.add_argument("--crops", type=int, default=10, choices=(1, 3, 10))
    parser.add_argument("--num_segments", type=int, default=25, help="Snippets per video.")
    parser.add_argument(
        "--warmup", type=int, default=1, choices=(0, 1), help="Score one video untimed first."
    )
    parser.add_argument("--json", default=None, help="Also write the result to this file.")
    args = parser.parse_args(argv)
    backbones = tuple(args.backbones.split(","))
    result = run(backbones, args.videos, args.crops, args.num_segments, bool(args.warmup))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)
    print(
        f"evaluation, {args.num_segments} snippets x {args.crops} crops, RGB 224, SavedModel "
        f"serve_views, {os.cpu_count()} CPU cores"
    )
    print(
        f"{'backbone':<13} {'videos':>6} {'export s':>8} {'s/video':>8} {'videos/s':>9} "
        f"{'images/s':>9}"
    )
    for r in result["rows"]:
        print(
            f"{r['backbone']:<13} {r['videos']:>6} {r['export_s']:>8.1f} {r['s_per_video']:>8.2f} "
            f"{r['videos_per_s']:>9.3f} {r['images_per_s']:>9.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
