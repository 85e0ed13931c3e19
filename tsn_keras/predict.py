"""Predict the action in raw video files with one or more exported TSN streams.

    python -m tsn_keras.predict some_video.mp4 other.avi \
        --models runs/rgb/export runs/flow/export [--weights 1 1.5] [--json out.json]

Each video goes through exactly the converter's code (`convert.convert_video`: decoding, frame
size, N evenly spaced snippets, optical flow with the algorithm and bound the model's training
records used, JPEG encoding) into in-memory examples, one per modality, then through the
evaluation code (`scoring.score_examples`: snippet choice, test crops, the model's own
preprocessing), each model reading its own modality's example. So a prediction sees its
input exactly as the test set did. With several models, their softmax probabilities are
weighted and summed (default RGB:flow = 1:1.5) as in `tsn_keras.fuse`.

Prints the top-5 classes with probabilities per video; --json FILE (or `--json -`: standard
output, the table then goes to standard error) writes, for each video, its path and `top5` as
{"label": class, "score": probability} objects (plus each stream's top-5), or its error.
`--tflite FILE` adds a LiteRT model of `export --tflite` (as --models does an export). A
video that cannot be decoded is reported and skipped; the exit status is then 1.

A video file whose name begins with '-' (Kinetics clips are named by YouTube ids, which often
do) is taken as a video, not a flag, when it exists; `./-x.mp4`, or the names after `--`,
work too.

Each video is converted in a worker process; one that takes longer than --video_timeout
seconds (a hung mount, a stuck decoder) is killed and reported as "timed out after N s".

--timeline scores windows along each video instead (--window_seconds, --stride_seconds; each
window a TSN clip of --num_segments snippets, frames streamed) and writes per video a JSON, a
CSV and a PNG plot of the top classes over time into --timeline_dir (tsn_keras/timeline.py);
its decoder runs in a child process that is killed when the next frame takes more than
--video_timeout seconds (a long video takes as long as it needs).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import flags

from tsn_keras import cli, convert, flow, fuse, scoring
from tsn_keras.splits import VIDEO_EXTENSIONS

VIDEOS_PER_PASS = 64  # videos converted and held (~2 MB each at 25 snippets) per scoring pass


def predict_videos(
    paths: Sequence[str],
    scorers: Sequence[scoring.Scorer],
    weights: Sequence[float] | None = None,
    num_segments: int = 25,
    crops: int = 10,
    top: int = 5,
    video_timeout: float = convert.DEFAULT_VIDEO_TIMEOUT,
    **overrides,
) -> list[dict]:
    """Scores each video with every model and fuses them.

    Each video is converted in a worker process (`convert.video_results`), killed when the
    video takes more than `video_timeout` seconds (the video's error is then "timed out after
    N s"); 0 = no limit, converted in this process.

    Returns:
      one dict per video: {"path", "top5": [{"label", "score"}...], "streams": {name: top}}
      or {"path", "error"} when the video could not be decoded.
    """
    weights = scoring.fusion_weights(scorers, weights)
    classes = scorers[0].info.classes
    if len(paths) > VIDEOS_PER_PASS:  # bound the serialized examples held at once
        return [
            r
            for i in range(0, len(paths), VIDEOS_PER_PASS)
            for r in predict_videos(
                paths[i : i + VIDEOS_PER_PASS], scorers, weights, num_segments, crops, top,
                video_timeout, **overrides,
            )
        ]  # fmt: skip
    groups = scoring.group_models(scorers, num_segments, **overrides)
    probs = np.zeros((len(paths), len(scorers), len(classes)))  # [videos, models, classes]
    errors: dict[int, str] = {}
    for config, members in groups:
        # Convert every video once per conversion setting, then score them all in one
        # tf.data pass per model: one traced pipeline, not one per video. A conversion gives
        # one example per modality; each model reads its own modality's examples.
        examples, ok = [], []  # examples: {modality: serialized example} per converted video
        todo = [v for v in range(len(paths)) if v not in errors]
        jobs = [convert.VideoJob(paths[v], os.path.basename(paths[v]), 0, "") for v in todo]
        # closing: the worker process stops here, also on an error or Ctrl-C
        with contextlib.closing(convert.video_results(jobs, config, 1, video_timeout)) as results:
            for v, result in zip(todo, results, strict=True):
                if result.examples is None:
                    errors[v] = result.reason
                else:
                    examples.append(result.examples)
                    ok.append(v)
        if not examples:
            continue
        for m in members:
            modality = scorers[m].info.modality
            data = tf.data.Dataset.from_tensor_slices(tf.constant([e[modality] for e in examples]))
            scores = scoring.score_examples(scorers[m], data, num_segments, crops)
            for v, (_, _, logits) in zip(ok, scores, strict=True):
                probs[v, m] = fuse.softmax(logits[None].astype(np.float64))[0]
    results = []
    for v, path in enumerate(paths):
        if v in errors:
            results.append({"path": path, "error": errors[v]})
            continue
        fused = np.tensordot(weights, probs[v], axes=1) / float(sum(weights))  # [classes]
        streams = {}
        for scorer, p in zip(scorers, probs[v], strict=True):
            name = scorer.info.modality
            if name in streams:
                name = f"{name}:{scorer.source}"
            streams[name] = _top(p, classes, top)
        results.append({"path": path, "top5": _top(fused, classes, top), "streams": streams})
    return results


def _top(probs: np.ndarray, classes: Sequence[str], k: int) -> list[dict]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [{"label": classes[i], "score": float(probs[i])} for i in order]


def _dashed_videos_last(argv: Sequence[str]) -> list[str]:
    """argv with the existing video files whose names begin with '-' moved after `--`, where
    absl takes every argument as positional (otherwise `-abc.mp4` is an unknown flag)."""
    end = argv.index("--") if "--" in argv else len(argv)
    dashed = [
        a
        for a in argv[1:end]
        if a.startswith("-") and a.lower().endswith(VIDEO_EXTENSIONS) and os.path.isfile(a)
    ]
    if not dashed:
        return list(argv)
    head = [a for a in argv[:end] if a not in dashed]
    return [*head, "--", *dashed, *argv[end + 1 :]]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns 0, 1 when a video failed, 2 on bad flags or models."""
    return cli.run(_main, argv, usage_errors=(FileNotFoundError, ValueError))


def _main(argv: list[str]) -> int:
    argv = _dashed_videos_last(cli.expand_space_separated(argv, ["models", "weights"]))
    fv = flags.FlagValues()
    flags.DEFINE_list("models", None, "Export folders (or model_dirs).", flag_values=fv)
    flags.DEFINE_list("tflite", [], "LiteRT files of export --tflite.", flag_values=fv)
    flags.DEFINE_list("weights", None, "Fusion weights, one per model.", flag_values=fv)
    flags.DEFINE_integer("num_segments", 25, "Snippets per video.", flag_values=fv)
    flags.DEFINE_enum("crops", "10", ["1", "3", "10"], "Crops per snippet.", flag_values=fv)
    flags.DEFINE_integer("top", 5, "Classes to show per video.", flag_values=fv)
    convert.define_video_timeout_flag(fv)
    flags.DEFINE_string(
        "json", None, "Also write the predictions as JSON here (- = stdout).", flag_values=fv
    )
    flags.DEFINE_enum(
        "flow", None, list(flow.ALGORITHMS), "Override the model's flow algorithm.", flag_values=fv
    )
    flags.DEFINE_bool(
        "timeline", False, "Score windows along each video (tsn_keras.timeline).", flag_values=fv
    )
    flags.DEFINE_float("window_seconds", 5.0, "Timeline: window length.", flag_values=fv)
    flags.DEFINE_float("stride_seconds", 1.0, "Timeline: time between windows.", flag_values=fv)
    flags.DEFINE_string(
        "timeline_dir", "timeline", "Timeline: folder of the JSON, CSV, PNG.", flag_values=fv
    )
    flags.DEFINE_enum(
        "flow_preset", None, list(flow.TVL1_PRESETS), "Override tvl1_tensor's preset.",
        flag_values=fv,
    )  # fmt: skip
    videos = cli.parse_flags(fv, argv, __doc__, positional=True)
    if videos is None:
        return 0
    if not videos:
        raise flags.Error("give one or more video files: python -m tsn_keras.predict VIDEO...")
    models = (fv.models or []) + fv.tflite
    if not models:
        raise flags.Error("--models is required: one or more export folders (or --tflite)")
    weights = cli.float_list(fv.weights, "weights")
    if fv.timeline:  # windows along each video instead of one answer per video
        from tsn_keras import timeline  # its plot and CSV code only when asked for

        config = timeline.TimelineConfig(
            fv.window_seconds, fv.stride_seconds, fv.num_segments, int(fv.crops), fv.top
        )  # checked before the models load
    scorers = [scoring.load_scorer(m) for m in models]
    if fv.timeline:
        return timeline.run(
            videos, scorers, weights, config, fv.timeline_dir, flow_algorithm=fv.flow,
            flow_preset=fv.flow_preset, video_timeout=fv.video_timeout,
        )  # fmt: skip
    results = predict_videos(
        videos, scorers, weights, fv.num_segments, int(fv.crops), fv.top, fv.video_timeout,
        flow_algorithm=fv.flow, flow_preset=fv.flow_preset,
    )  # fmt: skip
    out = sys.stderr if fv.json == "-" else sys.stdout  # stdout then carries only the JSON
    for r in results:
        print(r["path"], file=out)
        if "error" in r:
            print(f"  could not be read: {r['error']}", file=out)
            continue
        for t in r["top5"]:
            print(f"  {100 * t['score']:6.2f}%  {t['label']}", file=out)
    if fv.json == "-":
        json.dump(results, sys.stdout, indent=1)
        print()
    elif fv.json:
        with open(fv.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
