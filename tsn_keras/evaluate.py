"""Video-level testing: `python -m tsn_keras.evaluate --model_dir runs/rgb --records DIR`.

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

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf
from absl import flags

from tsn_keras import (
    cli,
    convert,
    flow,
    fuse,
    input_pipeline,
    metrics,
    records,
    visualize,
)
from tsn_keras.manifest import Manifest
from tsn_keras.models import preprocess_input


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a scorer needs to know about its model's input."""

    modality: str
    backbone: str
    input_size: int
    snippet_length: int
    classes: tuple[str, ...]
    conversion: dict | None = None  # the converter settings of the training records

    @classmethod
    def from_meta(cls, meta: dict) -> ModelInfo:
        """From an export's metadata (`export.read_export_meta`, or a .tflite file's)."""
        return cls(
            modality=meta["modality"],
            backbone=meta["backbone"],
            input_size=int(meta["input_size"]),
            snippet_length=int(meta["snippet_length"]),
            classes=tuple(meta["classes"]),
            conversion=meta.get("conversion"),
        )


class Scorer:
    """A trained TSN model as a function of raw test views.

    Call with uint8 (or float32) [B, K, S, S, C] crops holding raw 0-255 values (RGB order;
    raw encoded flow) and get logits [B, classes] as numpy. Preprocessing is the model's own:
    `models.preprocess_input` (Keras path) or inside the SavedModel's graph.
    """

    def __init__(self, info: ModelInfo, fn: Callable[[tf.Tensor], tf.Tensor], source: str):
        self.info = info
        self._fn = fn
        self.source = source

    def __call__(self, views) -> np.ndarray:
        return np.asarray(self._fn(tf.cast(views, tf.float32)), np.float32)


def load_scorer(path: str) -> Scorer:
    """A Scorer from a SavedModel folder (`export`), a `.tflite` file of `export --tflite`, or
    a training run's --model_dir.

    Raises:
      FileNotFoundError: `path` is none of these (the message says which files were looked for).
    """
    from tsn_keras import export  # TF-heavy; imported here so `fuse` stays light

    if path.endswith(".tflite"):
        return load_tflite_scorer(path)
    if tf.io.gfile.exists(os.path.join(path, "saved_model.pb")):
        loaded = tf.saved_model.load(path)
        meta = export.read_export_meta(path)
        info = ModelInfo.from_meta(meta)
        serve = loaded.signatures[export.VIEWS_SIGNATURE]

        def run_saved(views):
            return serve(views=views)["logits"]

        scorer = Scorer(info, run_saved, path)
        scorer._loaded = loaded  # keep the restored object (and its variables) alive
        return scorer
    model, tsn_config, classes, data = export.restore_from_model_dir(path)
    info = ModelInfo(
        modality=tsn_config.modality,
        backbone=tsn_config.backbone,
        input_size=tsn_config.input_size,
        snippet_length=tsn_config.snippet_length,
        classes=tuple(classes),
        conversion=data.get("conversion"),
    )

    @tf.function(reduce_retracing=True)
    def run_keras(views):
        x = preprocess_input(views, backbone=info.backbone, modality=info.modality)
        return tf.cast(model(x, training=False), tf.float32)

    return Scorer(info, run_keras, path)


def conversion_config(scorer: Scorer, num_snippets: int, **overrides) -> dict:
    """The converter settings that reproduce the model's training records, as a dict.

    An export records the settings of the records it was trained on; an old or hand-made
    model without them gets the converter's defaults for its modality.
    """
    base = dict(scorer.info.conversion or {})
    if not base:
        base = dataclasses.asdict(convert.ConvertConfig())
    base.update(num_snippets=num_snippets, snippet_length=scorer.info.snippet_length)
    base.update({k: v for k, v in overrides.items() if v is not None})
    base["modalities"] = (scorer.info.modality,)
    return base


def _make_config(settings: dict) -> convert.ConvertConfig:
    settings = dict(settings)
    if isinstance(settings.get("warp"), dict):
        settings["warp"] = flow.WarpSettings(**settings["warp"])
    settings["modalities"] = tuple(settings["modalities"])
    return convert.ConvertConfig(**settings)


def group_models(
    scorers: Sequence[Scorer], num_snippets: int, **overrides
) -> list[tuple[convert.ConvertConfig, list[int]]]:
    """Models that need the same conversion share one decode: (config, model indices) list."""
    groups: dict[str, tuple[dict, list[int]]] = {}
    for i, scorer in enumerate(scorers):
        settings = conversion_config(scorer, num_snippets, **overrides)
        key = json.dumps({k: v for k, v in settings.items() if k != "modalities"}, sort_keys=True)
        if key in groups:
            mods = list(groups[key][0]["modalities"])
            if scorer.info.modality not in mods:
                groups[key][0]["modalities"] = tuple(mods + [scorer.info.modality])
            groups[key][1].append(i)
        else:
            groups[key] = (settings, [i])
    return [(_make_config(s), idx) for s, idx in groups.values()]


def load_tflite_scorer(path: str, num_threads: int | None = None) -> Scorer:
    """A Scorer running a `.tflite` file of `python -m tsn_keras.export --tflite` in LiteRT."""
    from tsn_keras import litert

    model = litert.LiteRTModel(path, num_threads)
    meta = model.meta
    info = ModelInfo.from_meta(meta)

    def run_tflite(views):
        # Raw 0-255 crops: the round trip through float32 (Scorer) is exact.
        return model(np.asarray(views).astype(np.uint8))["logits"]

    scorer = Scorer(info, run_tflite, path)
    scorer.litert = model
    return scorer


def fusion_weights(scorers: Sequence[Scorer], weights: Sequence[float] | None) -> list[float]:
    """Checks that the models share their classes; returns the fusion weights (default:
    `fuse.DEFAULT_WEIGHTS`, RGB:flow = 1:1.5).

    Raises:
      ValueError: no model, models with other classes, or a weight count that does not match.
    """
    if not scorers:
        raise ValueError("--models: at least one exported model is needed")
    classes = scorers[0].info.classes
    for s in scorers[1:]:
        if s.info.classes != classes:
            raise ValueError(f"--models: {s.source} has other classes than {scorers[0].source}")
    if weights is None:
        weights = fuse.DEFAULT_WEIGHTS.get(len(scorers), [1.0] * len(scorers))
    if len(weights) != len(scorers):
        raise ValueError(f"--weights: {len(weights)} weights for {len(scorers)} models")
    return list(weights)


def test_views(
    serialized: tf.Tensor, info: ModelInfo, num_segments: int = 25, crops: int = 10
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One example's test views: (uint8 [crops, K, S, S, C] raw crops, video id, label).

    The K snippets are evenly spaced over the stored ones (`sampling`'s test rule); the crops
    are `augment.crop_views`: `input_pipeline.record_views`, the path every caller shares.
    Runs eagerly and inside tf.data.
    """
    spec = input_pipeline.ViewSpec(
        info.modality, num_segments, info.input_size, info.snippet_length, "test", crops
    )
    views, label, video_id = input_pipeline.record_views(serialized, spec)
    return views, video_id, label


def score_examples(
    scorer: Scorer,
    examples: tf.data.Dataset,
    num_segments: int = 25,
    crops: int = 10,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[str, int, np.ndarray]]:
    """Yields (video id, label, logits [classes] averaged over crops) for serialized examples."""
    info = scorer.info
    ds = examples.map(
        lambda s: test_views(s, info, num_segments, crops),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    ).prefetch(1)
    for i, (views, video_id, label) in enumerate(ds):
        logits = scorer(views)  # [crops, classes]
        yield video_id.numpy().decode("utf-8"), int(label), logits.mean(axis=0)
        if progress:
            progress(i + 1)


def evaluate(
    scorer: Scorer,
    records_path: str,
    subset: str = "test",
    num_segments: int = 25,
    crops: int = 10,
    max_videos: int | None = None,
    verbose: bool = True,
    skip_corrupt_records: bool = False,
) -> dict:
    """Scores every video of a records subset; returns ids, labels, scores and the metrics.

    A damaged shard raises records.DamagedRecordsError naming the file and byte offset; with
    skip_corrupt_records its intact records are scored and the lost ones counted
    ("skipped_records").
    """
    # A records folder: its manifest, read once, gives the files, classes and counts; a glob
    # of shard files has no counts to show.
    manifest = Manifest.read(records_path) if tf.io.gfile.isdir(records_path) else None
    files = input_pipeline.record_files(manifest or records_path, subset, scorer.info.modality)
    if manifest is not None and list(manifest.classes) != list(scorer.info.classes):
        raise ValueError(
            f"--records {records_path}: its classes differ from the model's "
            f"({len(manifest.classes)} vs {len(scorer.info.classes)}); evaluate a model on "
            "records of the dataset and split it was trained for"
        )
    total = manifest.subset(subset).num_examples if manifest else 0
    if max_videos is not None:
        total = min(total, max_videos) if total else max_videos
    skipped = 0
    if skip_corrupt_records:
        counts = manifest.subset(subset).counts if manifest else [0] * len(files)
        skipped = records.report_damage(files, counts)
        examples = tf.data.Dataset.from_tensor_slices(files).interleave(
            lambda f: tf.data.TFRecordDataset(f).ignore_errors(log_warning=True), cycle_length=1
        )
    else:
        examples = tf.data.TFRecordDataset(files)
    if max_videos is not None:
        examples = examples.take(max_videos)
    bar = _Bar(total, verbose)
    ids, labels, scores = [], [], []
    start = time.perf_counter()
    try:
        with records.damage_named(files):
            for video_id, label, logits in score_examples(
                scorer, examples, num_segments, crops, bar
            ):
                ids.append(video_id)
                labels.append(label)
                scores.append(logits)
    finally:
        bar.close()  # ends the progress line: an error gets a line of its own
    if not ids:
        raise ValueError(f"--records {records_path}: no {subset} videos to evaluate")
    scores_arr = np.stack(scores)  # [V, classes]
    labels_arr = np.asarray(labels, np.int64)
    summary = metrics.summarize(scores_arr, labels_arr)
    seconds = time.perf_counter() - start
    return {
        "video_ids": ids,
        "labels": labels_arr,
        "scores": scores_arr,
        "summary": summary,
        "seconds": seconds,
        "videos_per_second": len(ids) / seconds,
        "skipped_records": skipped,
    }


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


def compare(result: dict, reference: dict) -> dict:
    """How a model's scores differ from a reference's on the same videos (e.g. LiteRT vs
    SavedModel): top-1 agreement, largest softmax difference, and the reference's metrics."""
    if result["video_ids"] != reference["video_ids"]:
        raise ValueError("the two models were scored on different videos")
    a = fuse.softmax(result["scores"].astype(np.float64))
    b = fuse.softmax(reference["scores"].astype(np.float64))
    ref = reference["summary"]
    return {
        "top1_agreement": float(np.mean(a.argmax(1) == b.argmax(1))),
        "max_probability_difference": float(np.max(np.abs(a - b))),
        "top1": ref["top1"],
        "top5": ref["top5"],
        "mean_class_accuracy": ref["mean_class_accuracy"],
    }


class _Bar:
    """A one-line progress display on stderr (videos/s and ETA)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.start = total, enabled, time.perf_counter()

    def __call__(self, done: int) -> None:
        if not self.enabled:
            return
        rate = done / max(time.perf_counter() - self.start, 1e-9)
        of = f"/{self.total}" if self.total else ""
        eta = f", ETA {(self.total - done) / rate:5.0f} s" if self.total else ""
        print(
            f"\r  evaluated {done}{of} videos, {rate:6.2f} videos/s{eta}", end="", file=sys.stderr
        )

    def close(self) -> None:
        if self.enabled:
            print(file=sys.stderr)


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
