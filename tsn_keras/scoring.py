"""Scoring videos with a trained TSN model: the library under evaluate, predict and the timeline.

A `Scorer` is a trained model (a training run's --model_dir, a SavedModel of `export`, or a
`.tflite` file of `export --tflite`) as a function of raw test views. `score_examples` runs TSN's
test protocol on serialized examples (`test_views`: K evenly spaced snippets x 1, 3 or 10
crops, the views `input_pipeline.record_views` makes for every caller); `evaluate` scores a
records subset and computes the metrics. `group_models` and `conversion_config` say how a raw
video must be converted for a model (predict and the timeline convert it as the model's
training records were converted). The `python -m tsn_keras.evaluate` command is evaluate.py.
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

from tsn_keras import convert, fuse, input_pipeline, metrics, records
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
    return [(convert.ConvertConfig.from_dict(s), idx) for s, idx in groups.values()]


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
