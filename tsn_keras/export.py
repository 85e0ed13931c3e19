"""SavedModel export: `python -m tsn_keras.export --model_dir runs/rgb [--export_dir DIR]`.

The export folder holds:
  saved_model.pb, variables/   a tf.Module with these signatures (tf.saved_model.load):
    serving_default(clips: uint8 [B, K, H, W, C]) -> {"logits", "probabilities"} [B, classes]
        clips are raw decoded snippets: RGB order for rgb; raw encoded 0-255 flow, channels
        x1, y1, x2, y2, ... for flow; L+1 stacked RGB frames for rgbdiff. Any K, H, W. The
        graph resizes the short side to input_size * 256 / 224, takes the centre crop
        (`input_pipeline.preprocess_batch`, the function validation uses) and applies the
        backbone's preprocessing (`models.preprocess_input`, as the training step does).
    serve_views(views: float32 [B, K, S, S, C]) -> {"logits", "probabilities"}
        views already cropped to input_size (raw 0-255, e.g. `augment.crop_views` output with
        crops folded into B); only the backbone's preprocessing is applied. For evaluate.
    serve_examples(serialized: string [B]) -> {"logits", "probabilities", "video_id", "label"}
        serialized SequenceExamples from our records; K evenly spaced stored snippets per
        video (records.parse_example + decode_snippets + the same preprocessing).
    class_names() -> {"class_names": string [classes]}, read from the asset.
  assets/classes.txt           one class name per line, index order
  assets/tsn_export.json       modality, backbone, input_size, snippet_length, num_segments,
                               classes, conversion (the records' converter settings):
                               `read_export_meta(export_dir)`
  model.keras                  the Keras model (input already preprocessed [B, K, S, S, C'])

The model is rebuilt in float32 (whatever mixed precision training used) from the run's
train_config.json and its latest checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Sequence

import keras
import tensorflow as tf
from absl import app, flags, logging

from tsn_keras import input_pipeline, modalities, records, sampling
from tsn_keras.config import CHECKPOINT_DIR, read_train_config
from tsn_keras.models import TSNConfig, build_tsn, preprocess_input

CLASSES_ASSET = "classes.txt"
META_ASSET = "tsn_export.json"
KERAS_FILE = "model.keras"
SERVING_SIGNATURE = "serving_default"
VIEWS_SIGNATURE = "serve_views"
EXAMPLES_SIGNATURE = "serve_examples"


class TSNServing(tf.Module):
    """A TSN model with its preprocessing, as a SavedModel-ready tf.Module."""

    def __init__(
        self,
        model: keras.Model,
        tsn_config: TSNConfig,
        classes_file: str,
        meta_file: str,
        example_snippets: int,
    ):
        super().__init__(name="tsn_serving")
        self.model = model
        self.classes_file = tf.saved_model.Asset(classes_file)
        self.meta_file = tf.saved_model.Asset(meta_file)
        self._config = tsn_config
        self._example_snippets = example_snippets
        raw_channels = modalities.stored_channels(tsn_config.modality, tsn_config.snippet_length)
        self._raw_channels = raw_channels
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None, None, None, None, raw_channels], tf.uint8)],
        )
        self.serve_views = tf.function(
            self._serve_views,
            input_signature=[
                tf.TensorSpec(
                    [None, None, tsn_config.input_size, tsn_config.input_size, raw_channels],
                    tf.float32,
                )
            ],
        )
        self.serve_examples = tf.function(
            self._serve_examples, input_signature=[tf.TensorSpec([None], tf.string)]
        )
        self.class_names = tf.function(self._class_names, input_signature=[])

    def _scores(self, views: tf.Tensor) -> dict:
        """Raw 0-255 views [B, K, S, S, C] -> scores; the backbone's preprocessing in-graph."""
        c = self._config
        x = preprocess_input(views, backbone=c.backbone, modality=c.modality)
        logits = tf.cast(self.model(x, training=False), tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    def _serve(self, clips: tf.Tensor) -> dict:
        c = self._config
        return self._scores(input_pipeline.preprocess_batch(clips, c.modality, c.input_size))

    def _serve_views(self, views: tf.Tensor) -> dict:
        return self._scores(views)

    def _serve_examples(self, serialized: tf.Tensor) -> dict:
        c = self._config
        k = self._example_snippets

        def one(example):
            parsed = records.parse_example(example, [c.modality])
            idx = sampling.sample_snippet_indices(parsed["num_snippets"], k, "test")
            clip = records.decode_snippets(parsed, c.modality, idx, c.snippet_length)
            views = input_pipeline.preprocess_clip(clip, c.modality, c.input_size, training=False)
            return views, parsed["video_id"], tf.cast(parsed["label"], tf.int32)

        views, video_ids, labels = tf.map_fn(
            one,
            serialized,
            fn_output_signature=(
                tf.TensorSpec([k, c.input_size, c.input_size, self._raw_channels], tf.uint8),
                tf.TensorSpec([], tf.string),
                tf.TensorSpec([], tf.int32),
            ),
        )  # views [B, K, S, S, C]
        scores = self._scores(views)
        scores.update(video_id=video_ids, label=labels)
        return scores

    def _class_names(self) -> dict:
        text = tf.strings.strip(tf.io.read_file(self.classes_file))
        return {"class_names": tf.strings.split(text, "\n")}


def export_saved_model(
    model: keras.Model,
    tsn_config: TSNConfig,
    classes: Sequence[str],
    export_dir: str,
    example_snippets: int = 25,
    conversion: dict | None = None,
) -> str:
    """Writes the SavedModel (+ assets) and model.keras of `model` to export_dir.

    Args:
      model: a TSN model from `build_tsn(tsn_config)` with trained weights.
      tsn_config: its config (modality, backbone, input size, snippet length).
      classes: class names in label order.
      export_dir: output folder (replaced if it exists).
      example_snippets: K of the serve_examples signature (TSN tests with 25).
      conversion: the converter settings of the training records (manifest "config"), so
        predict can convert new videos the same way; None if unknown.

    Returns:
      export_dir.
    """
    if len(classes) != model.output_shape[-1]:
        raise ValueError(
            f"{len(classes)} class names for a model with {model.output_shape[-1]} outputs"
        )
    if example_snippets < 1:
        raise ValueError(f"example_snippets must be >= 1. Received: {example_snippets}")
    if tf.io.gfile.exists(export_dir):
        tf.io.gfile.rmtree(export_dir)
    with tempfile.TemporaryDirectory() as tmp:
        classes_file = os.path.join(tmp, CLASSES_ASSET)
        with open(classes_file, "w", encoding="utf-8") as f:
            f.write("\n".join(classes) + "\n")
        meta_file = os.path.join(tmp, META_ASSET)
        meta = {
            "modality": tsn_config.modality,
            "backbone": tsn_config.backbone,
            "input_size": tsn_config.input_size,
            "snippet_length": tsn_config.snippet_length,
            "num_segments": tsn_config.num_segments,
            "example_snippets": example_snippets,
            "num_classes": len(classes),
            "classes": list(classes),
            "conversion": conversion,
            "raw_input": "uint8 [B, K, H, W, C]: RGB order; raw 0-255 flow x1,y1,x2,y2,...",
        }
        with open(meta_file, "w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
        module = TSNServing(model, tsn_config, classes_file, meta_file, example_snippets)
        signatures = {
            SERVING_SIGNATURE: module.serve,
            VIEWS_SIGNATURE: module.serve_views,
            EXAMPLES_SIGNATURE: module.serve_examples,
            "class_names": module.class_names,
        }
        tf.saved_model.save(module, export_dir, signatures=signatures)
    model.save(os.path.join(export_dir, KERAS_FILE))
    return export_dir


def read_export_meta(export_dir: str) -> dict:
    """The export's assets/tsn_export.json: modality, backbone, input_size, snippet_length,
    num_segments, example_snippets, classes, conversion."""
    path = os.path.join(export_dir, "assets", META_ASSET)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{path} not found: {export_dir} is not a tsn_keras export "
            "(python -m tsn_keras.export --model_dir RUN --export_dir DIR makes one)"
        )
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def restore_from_model_dir(model_dir: str) -> tuple[keras.Model, TSNConfig, list[str], dict]:
    """A training run's model in float32 with its latest checkpoint's weights.

    Args:
      model_dir: the --model_dir of `python -m tsn_keras.train`.

    Returns:
      (model, tsn_config, classes, data): data is train_config.json's "data" (classes,
      snippet_length, conversion: the records' converter settings, ...).

    Raises:
      FileNotFoundError: no train_config.json or no checkpoint in model_dir.
    """
    config, data = read_train_config(model_dir)
    ckpt = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_DIR))
    if ckpt is None:
        raise FileNotFoundError(
            f"No checkpoint in {os.path.join(model_dir, CHECKPOINT_DIR)}: train first "
            f"(python -m tsn_keras.train --model_dir {model_dir} ...)"
        )
    tsn_config = config.tsn_config(len(data["classes"]), int(data["snippet_length"]))
    # The checkpoint holds every weight: no pretrained file is needed (or read) here.
    tsn_config = dataclasses.replace(tsn_config, backbone_weights=None)
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        model = build_tsn(tsn_config)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    status = tf.train.Checkpoint(model=model).restore(ckpt).expect_partial()
    status.assert_existing_objects_matched()
    return model, tsn_config, list(data["classes"]), data


def export_from_model_dir(
    model_dir: str, export_dir: str | None = None, example_snippets: int = 25
) -> str:
    """Rebuilds a training run's model from its config and latest checkpoint, and exports it.

    Args:
      model_dir: the --model_dir of `python -m tsn_keras.train`.
      export_dir: output folder; default <model_dir>/export.
      example_snippets: K of the serve_examples signature.

    Returns:
      export_dir.
    """
    model, tsn_config, classes, data = restore_from_model_dir(model_dir)
    export_dir = export_dir or os.path.join(model_dir, "export")
    return export_saved_model(
        model, tsn_config, classes, export_dir, example_snippets, data.get("conversion")
    )


FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command's flags (called only when this module is the program)."""
    flags.DEFINE_string("model_dir", None, "A --model_dir of python -m tsn_keras.train.")
    flags.DEFINE_string("export_dir", None, "Output folder; default <model_dir>/export.")
    flags.DEFINE_integer("example_snippets", 25, "Snippets per video of serve_examples.")
    flags.mark_flag_as_required("model_dir")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    path = export_from_model_dir(FLAGS.model_dir, FLAGS.export_dir, FLAGS.example_snippets)
    logging.info("Exported SavedModel and %s to %s", KERAS_FILE, path)


if __name__ == "__main__":
    define_flags()
    app.run(main)
