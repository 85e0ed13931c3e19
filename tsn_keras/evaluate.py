"""Video-level testing: `python -m tsn_keras.evaluate --model_dir runs/rgb --records DIR`.

The command over `scoring` (the Scorer library that predict and the timeline use too): flags,
the report, and the files it writes.

TSN's test protocol: 25 evenly spaced stored snippets per video x 10 crops (the 4 corners and
the centre of the frame with its short side resized to 256, and their mirrors; `--crops 1|3|10`).
The model scores every crop of all 25 snippets; its consensus joins the snippets, and the crops'
scores are averaged (for the default average consensus this is the mean over crops and
snippets of tsn-pytorch's `test_models.py`).

Reports top-1, top-5 and mean class accuracy (UCF101's and HMDB51's metric), per-class accuracy
and a confusion matrix, and writes to --output_dir (default <model_dir>/eval, or beside the
SavedModel's folder):
  scores.npz      per-video logits averaged over crops, with video ids, labels, class names
                  (the input of `python -m tsn_keras.fuse`; --scores_out moves it)
  metrics.json    the numbers printed
  confusion.png   the row-normalised confusion matrix with class names, a colour bar and the
                  most frequent confusions (`visualize.confusion_image`)
  per_class.png   per-class accuracy bars, worst class first
                  (both also as TensorBoard images there, with the metrics)

The model comes from a training run (--model_dir: config + latest checkpoint) or an export
(--saved_model: its `serve_views` signature), the same numbers either way, or a LiteRT file
(--tflite: `model_<format>.tflite` of `export --tflite`). With --tflite, the SavedModel of the
same export folder (or the --saved_model / --model_dir given) is scored on the same records as
the reference: both rows are printed, with the top-1 agreement and the largest probability
difference, so the cost of quantisation is a measured number (metrics.json "reference").
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

import numpy as np
import tensorflow as tf
from absl import flags

from tsn_keras import cli, fuse, metrics, records, visualize
from tsn_keras.scoring import ModelInfo, Scorer, compare, evaluate, load_scorer


def write_outputs(
    result: dict,
    info: ModelInfo,
    output_dir: str,
    scores_out: str | None = None,
    settings: dict | None = None,
) -> dict:
    """Writes scores.npz, metrics.json, confusion.png, per_class.png and TensorBoard summaries;
    returns their paths."""
    os.makedirs(output_dir, exist_ok=True)
    scores_path = scores_out or os.path.join(output_dir, "scores.npz")
    fuse.save_scores(
        scores_path,
        result["video_ids"],
        result["labels"],
        result["scores"],
        info.classes,
        info.modality,
    )
    s = result["summary"]
    per_class = {
        name: (None if np.isnan(acc) else float(acc))
        for name, acc in zip(info.classes, s["per_class_accuracy"], strict=True)
    }
    report = {
        "modality": info.modality,
        "num_videos": s["num_videos"],
        "top1": s["top1"],
        "top5": s["top5"],
        "mean_class_accuracy": s["mean_class_accuracy"],
        "per_class_accuracy": per_class,
        "confusion_matrix": s["confusion_matrix"].tolist(),
        "videos_per_second": result["videos_per_second"],
        "settings": settings or {},
    }
    metrics_path = os.path.join(output_dir, "metrics.json")
    with open(metrics_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    title = f"{info.modality} on {s['num_videos']} videos"
    image = visualize.confusion_image(s["confusion_matrix"], info.classes, f"Confusion: {title}")
    bars = visualize.per_class_bars(s["per_class_accuracy"], info.classes, f"Accuracy: {title}")
    png_path = visualize.write_png(os.path.join(output_dir, "confusion.png"), image)
    bars_path = visualize.write_png(os.path.join(output_dir, "per_class.png"), bars)
    writer = tf.summary.create_file_writer(output_dir)
    with writer.as_default():
        tf.summary.scalar("test/top1", s["top1"], step=0)
        tf.summary.scalar("test/top5", s["top5"], step=0)
        tf.summary.scalar("test/mean_class_accuracy", s["mean_class_accuracy"], step=0)
        tf.summary.image("test/confusion_matrix", image[None], step=0)
        tf.summary.image("test/per_class_accuracy", bars[None], step=0)
    writer.close()
    return {
        "scores": scores_path,
        "metrics": metrics_path,
        "confusion": png_path,
        "per_class": bars_path,
    }


def format_report(summary: dict, classes: Sequence[str], name: str) -> str:
    """The metrics table and per-class accuracies as text."""
    lines = [metrics.format_table([(name, summary)]), "", "per-class accuracy:"]
    for c, acc in zip(classes, summary["per_class_accuracy"], strict=True):
        lines.append(f"  {c:<32} {'   n/a' if np.isnan(acc) else f'{100 * acc:6.2f}%'}")
    return "\n".join(lines)


def _define_flags(fv: flags.FlagValues) -> None:
    """The command's flags, on its private FlagValues."""
    flags.DEFINE_string("model_dir", None, "A --model_dir of tsn_keras.train.", flag_values=fv)
    flags.DEFINE_string("saved_model", None, "Or: an export folder (SavedModel).", flag_values=fv)
    flags.DEFINE_string(
        "tflite",
        None,
        "Or: a .tflite of export --tflite (compared with its SavedModel).",
        flag_values=fv,
    )
    flags.DEFINE_string("records", None, "Records folder (or .tfrecord glob).", flag_values=fv)
    flags.DEFINE_enum("subset", "test", ["train", "test"], "Which set to score.", flag_values=fv)
    flags.DEFINE_integer("num_segments", 25, "Snippets per video (TSN: 25).", flag_values=fv)
    flags.DEFINE_enum("crops", "10", ["1", "3", "10"], "Crops per snippet.", flag_values=fv)
    flags.DEFINE_string(
        "scores_out", None, "Scores .npz path (default in output_dir).", flag_values=fv
    )
    flags.DEFINE_string("output_dir", None, "Default <model_dir>/eval.", flag_values=fv)
    flags.DEFINE_integer("max_videos", None, "Score only the first N videos.", flag_values=fv)
    flags.DEFINE_bool("progress", True, "Show a progress line.", flag_values=fv)
    flags.DEFINE_bool(
        "skip_corrupt_records",
        False,
        "Score the intact records of a damaged shard (the lost ones are counted and logged) "
        "instead of stopping.",
        flag_values=fv,
    )


def _output_dir(fv: flags.FlagValues) -> str:
    """--output_dir, else eval/ beside the model (eval_<stem>/ for a .tflite file)."""
    if fv.output_dir:
        return fv.output_dir
    elif fv.tflite:
        stem = os.path.splitext(os.path.basename(fv.tflite))[0]
        return os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(fv.tflite))), f"eval_{stem}"
        )
    elif fv.model_dir:
        return os.path.join(fv.model_dir, "eval")
    return os.path.join(os.path.dirname(os.path.abspath(fv.saved_model)), "eval")


def _print_comparison(
    scorer: Scorer, c: dict, result: dict, ref_result: dict, reference: str
) -> None:
    """The LiteRT file's accuracy beside its reference model's, and how far they differ."""
    name = f"LiteRT {scorer.litert.meta.get('format', '')}".strip()
    saved = os.path.exists(os.path.join(reference, "saved_model.pb"))
    ref_name = "SavedModel" if saved else "Keras checkpoint"
    rows = [(name, result["summary"]), (ref_name, ref_result["summary"])]
    print(f"\n{metrics.format_table(rows)}")
    print(
        f"top-1 agreement with the {ref_name} {100 * c['top1_agreement']:.2f}%, largest "
        f"probability difference {c['max_probability_difference']:.2e}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (0 ok, 1 a damaged shard, 2 bad flags or inputs)."""
    return cli.run(
        _main,
        argv,
        usage_errors=(FileNotFoundError, ValueError),
        failures=(records.DamagedRecordsError,),
    )


def _main(argv: list[str]) -> int:
    fv = flags.FlagValues()
    _define_flags(fv)
    if cli.parse_flags(fv, argv, __doc__) is None:
        return 0
    if fv.model_dir is not None and fv.saved_model is not None:
        raise flags.Error("pass one of --model_dir (a training run) or --saved_model")
    if fv.model_dir is None and fv.saved_model is None and fv.tflite is None:
        raise flags.Error("pass --model_dir (a training run), --saved_model or --tflite")
    if not fv.records:
        raise flags.Error("--records is required: the folder make_tfrecords.py wrote")
    if fv.num_segments < 1:
        raise flags.Error(f"--num_segments must be >= 1. Received: {fv.num_segments}")
    source = fv.tflite or fv.model_dir or fv.saved_model
    reference = None
    if fv.tflite:
        reference = fv.model_dir or fv.saved_model
        beside = os.path.dirname(os.path.abspath(fv.tflite))
        if reference is None and os.path.exists(os.path.join(beside, "saved_model.pb")):
            reference = beside
    output_dir = _output_dir(fv)
    args = (fv.records, fv.subset, fv.num_segments, int(fv.crops), fv.max_videos, fv.progress)
    scorer = load_scorer(source)
    result = evaluate(scorer, *args, fv.skip_corrupt_records)
    ref_result = None
    if reference:
        ref_result = evaluate(load_scorer(reference), *args, fv.skip_corrupt_records)
    settings = {
        "source": source,
        "records": fv.records,
        "subset": fv.subset,
        "num_segments": fv.num_segments,
        "crops": int(fv.crops),
    }
    if ref_result is not None:
        settings["reference"] = {"source": reference, **compare(result, ref_result)}
    paths = write_outputs(result, scorer.info, output_dir, fv.scores_out, settings)
    print(format_report(result["summary"], scorer.info.classes, scorer.info.modality))
    if ref_result is not None:
        _print_comparison(scorer, settings["reference"], result, ref_result, reference)
    print(
        f"\n{len(result['video_ids'])} videos in {result['seconds']:.1f} s "
        f"({result['videos_per_second']:.2f} videos/s, {fv.num_segments} snippets x "
        f"{fv.crops} crops)"
        + (
            f"; {result['skipped_records']} damaged records skipped (--skip_corrupt_records)"
            if result["skipped_records"]
            else ""
        )
    )
    print(
        f"scores: {paths['scores']}\nmetrics: {paths['metrics']}\nconfusion: {paths['confusion']}"
        f"\nper-class accuracy: {paths['per_class']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
