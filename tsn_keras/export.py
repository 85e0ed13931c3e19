"""SavedModel and LiteRT export.

(A little over 500 lines on purpose: both exports share the model restore, the metadata and
the input checks, and each converted file is verified against the Keras model here.)

    python -m tsn_keras.export --model_dir runs/rgb [--export_dir DIR] \
        [--tflite fp32,fp16,int8_dynamic,int8_full --calibration_records tfrecords/ucf101_split1]

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
  model.keras                  the Keras model (input already preprocessed [B, K, S, S, C']);
                               loads with `import tsn_keras.models` then
                               `keras.saving.load_model(path)` (safe_mode=True)
  model_<format>.tflite        with --tflite: LiteRT models (`litert.LiteRTModel` runs them),
                               uint8 views [B, K, S, S, C] in, {"logits", "probabilities"} out,
                               the backbone's preprocessing in the graph; the export's metadata
                               (classes, modality, ...) sits in the file under "tsn_keras".

Every signature checks its input in the graph (rank, channels: 3 rgb, 2L flow / warped_flow,
3(L+1) rgbdiff; non-empty snippet and frame axes; serve_views: S = input_size) and fails with
an InvalidArgumentError naming the input and the expected shape.

The model is rebuilt in float32 (whatever mixed precision training used) from the run's
train_config.json and its newest intact checkpoint; a model with a NaN or infinite weight is
refused. Every file is written into `<export_dir>.incomplete`, which replaces export_dir by a
rename once all is written: a failed export (a full disk) leaves no half-written folder, and an
older export stays in place until then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from tsn_keras import checkpoints, cli, input_pipeline, litert, modalities
from tsn_keras.config import CHECKPOINT_DIR, read_train_config
from tsn_keras.models import TSNConfig, build_tsn, preprocess_input

CLASSES_ASSET = "classes.txt"
META_ASSET = "tsn_export.json"
KERAS_FILE = "model.keras"
SERVING_SIGNATURE = "serving_default"
VIEWS_SIGNATURE = "serve_views"
EXAMPLES_SIGNATURE = "serve_examples"


def check_input(x: tf.Tensor, name: str, channels: int, size: int | None = None) -> tf.Tensor:
    """x with in-graph checks of [B, K, H, W, C]: rank 5, C == channels, K, H, W > 0 (and
    H == W == size when given); returns x with that static shape.

    The signatures declare their input shapes ([None, None, None, None, C]; serve_views
    [None, None, S, S, C]) so that `saved_model_cli show` and TF Serving's metadata say what
    they take; but a loaded signature does not check a call's shape against its spec, and the
    graph would fold checks of a declared rank and channel count to constants. So x first
    passes through `placeholder_with_default(shape=None)`, an identity whose output shape is
    unknown to the graph, and the checks below run on the real tensor. A failed check raises
    InvalidArgumentError with the input's name, the expected shape and the received value.
    """
    x = tf.compat.v1.placeholder_with_default(x, shape=None)
    hw = f"{size}, {size}" if size else "H, W"
    expected = f"{name} must be [B, K, {hw}, {channels}] with K, H, W > 0"
    shape = tf.shape(x)
    # Zero-padded to 5 entries, so reading dims 1-4 cannot fail on a lower-rank input (the
    # runtime may evaluate these reads before the rank check); each check waits for the last.
    dims = tf.pad(shape, [[0, tf.maximum(5 - tf.size(shape), 0)]])[:5]
    checks = [
        (tf.equal(tf.size(shape), 5), "received a tensor of another rank", tf.size(shape)),
        (tf.equal(dims[4], channels), "received another channel count", dims[4]),
        (tf.reduce_all(dims[1:4] > 0), "received an empty snippet or frame axis", dims[1:4]),
    ]
    if size:
        same = tf.reduce_all(tf.equal(dims[2:4], size))
        checks.append((same, "received another frame size", dims[2:4]))
    done = []
    for ok, what, value in checks:
        with tf.control_dependencies(done):
            done = [tf.debugging.Assert(ok, [f"{expected}; {what}:", value, "shape:", shape])]
    with tf.control_dependencies(done):
        x = tf.identity(x)
    return tf.ensure_shape(x, [None, None, size, size, channels])


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
        self._raw_channels = modalities.stored_channels(
            tsn_config.modality, tsn_config.snippet_length
        )
        # Declared shapes for the metadata; check_input checks the real ones in the graph.
        c, s = self._raw_channels, tsn_config.input_size
        self.serve = tf.function(
            self._serve,
            input_signature=[tf.TensorSpec([None, None, None, None, c], tf.uint8, name="clips")],
        )
        self.serve_views = tf.function(
            self._serve_views,
            input_signature=[tf.TensorSpec([None, None, s, s, c], tf.float32, name="views")],
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
        clips = check_input(clips, "clips", self._raw_channels)
        return self._scores(input_pipeline.preprocess_batch(clips, c.modality, c.input_size))

    def _serve_views(self, views: tf.Tensor) -> dict:
        views = check_input(views, "views", self._raw_channels, self._config.input_size)
        return self._scores(views)

    def _serve_examples(self, serialized: tf.Tensor) -> dict:
        c = self._config
        k = self._example_snippets

        spec = input_pipeline.ViewSpec(c.modality, k, c.input_size, c.snippet_length, "test")

        def one(example):
            views, label, video_id = input_pipeline.record_views(example, spec)
            return views[0], video_id, label  # the centre crop [K, S, S, C]

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


def export_meta(
    tsn_config: TSNConfig,
    classes: Sequence[str],
    example_snippets: int = 25,
    conversion: dict | None = None,
) -> dict:
    """The export's description: assets/tsn_export.json, and the metadata of its .tflite files."""
    return {
        "modality": tsn_config.modality,
        "backbone": tsn_config.backbone,
        "input_size": tsn_config.input_size,
        "snippet_length": tsn_config.snippet_length,
        "num_segments": tsn_config.num_segments,
        "example_snippets": example_snippets,
        "num_classes": len(classes),
        "classes": list(classes),
        "conversion": conversion,
        "raw_channels": modalities.stored_channels(tsn_config.modality, tsn_config.snippet_length),
        "raw_input": "uint8 [B, K, H, W, C]: RGB order; raw 0-255 flow x1,y1,x2,y2,...",
    }


@contextlib.contextmanager
def staged(export_dir: str):
    """Yields `<export_dir>.incomplete`, a fresh folder to write the export into.

    On success it replaces export_dir (renames: the older export goes only once the new one is
    whole); on any error it is removed, so no half-written export is ever left behind.
    """
    gfile = tf.io.gfile
    final = export_dir.rstrip("/")
    tmp, old = final + ".incomplete", final + ".replaced"
    for leftover in (tmp, old):  # from a run killed mid-export
        if gfile.exists(leftover):
            gfile.rmtree(leftover)
    try:
        gfile.makedirs(tmp)
        yield tmp
        if gfile.exists(final):
            gfile.rename(final, old)
        gfile.rename(tmp, final)
        if gfile.exists(old):
            gfile.rmtree(old)
    except BaseException:
        with contextlib.suppress(tf.errors.OpError, OSError):
            if gfile.exists(tmp):
                gfile.rmtree(tmp)
        raise


def check_finite(model: keras.Model) -> None:
    """Raises RuntimeError naming the weights of `model` that hold NaN or infinite values."""
    bad = [
        w.path
        for w in model.weights
        if keras.backend.is_float_dtype(w.dtype)
        and not np.all(np.isfinite(keras.ops.convert_to_numpy(w.value)))
    ]
    if bad:
        raise RuntimeError(
            f"{len(bad)} of the model's weights hold NaN or infinite values ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}); refusing to export a model whose outputs "
            "would be NaN. Restore an earlier checkpoint or retrain with a lower --lr"
        )


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
      export_dir: output folder (replaced if it exists, once the new export is written).
      example_snippets: K of the serve_examples signature (TSN tests with 25).
      conversion: the converter settings of the training records (manifest "config"), so
        predict can convert new videos the same way; None if unknown.

    Returns:
      export_dir.

    Raises:
      RuntimeError: a weight of the model is NaN or infinite.
    """
    if len(classes) != model.output_shape[-1]:
        raise ValueError(
            f"{len(classes)} class names for a model with {model.output_shape[-1]} outputs"
        )
    if example_snippets < 1:
        raise ValueError(f"example_snippets must be >= 1. Received: {example_snippets}")
    check_finite(model)
    with staged(export_dir) as out:
        _write_saved_model(model, tsn_config, classes, out, example_snippets, conversion)
    return export_dir


def _write_saved_model(model, tsn_config, classes, export_dir, example_snippets, conversion):
    """The SavedModel and model.keras of `export_saved_model`, into export_dir."""
    with tempfile.TemporaryDirectory() as tmp:
        classes_file = os.path.join(tmp, CLASSES_ASSET)
        with open(classes_file, "w", encoding="utf-8") as f:
            f.write("\n".join(classes) + "\n")
        meta_file = os.path.join(tmp, META_ASSET)
        meta = export_meta(tsn_config, classes, example_snippets, conversion)
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


def tflite_path(export_dir: str, fmt: str) -> str:
    """Where `export_tflite` writes format `fmt`: <export_dir>/model_<fmt>.tflite."""
    return os.path.join(export_dir, f"model_{fmt}.tflite")


def convert_tflite(
    model: keras.Model,
    tsn_config: TSNConfig,
    fmt: str,
    calibration_views: Iterable[np.ndarray] | None = None,
) -> bytes:
    """The model with the backbone's preprocessing as a LiteRT flatbuffer (no metadata yet).

    Args:
      model: a float32 TSN model from `build_tsn(tsn_config)`.
      tsn_config: its config.
      fmt: "fp32"; "fp16" (float16 weights); "int8_dynamic" (int8 weights, float
        activations); "int8_full" (int8 weights and activations, calibrated).
      calibration_views: int8_full only: uint8 [1, K, S, S, C] raw views (`calibration_views`).

    Returns:
      the .tflite bytes: input "views" uint8 [B, K, S, S, C] (B and K free), outputs "logits"
      and "probabilities" float32 [B, classes].
    """
    if fmt not in litert.FORMATS:
        raise ValueError(f"--tflite formats must be among {litert.FORMATS}. Received: {fmt!r}")
    if fmt == "int8_full" and calibration_views is None:
        raise ValueError("--tflite int8_full needs --calibration_records (the training records)")
    size = tsn_config.input_size
    channels = modalities.stored_channels(tsn_config.modality, tsn_config.snippet_length)
    spec = tf.TensorSpec([None, None, size, size, channels], tf.uint8, name=litert.INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(views):
        x = preprocess_input(views, backbone=tsn_config.backbone, modality=tsn_config.modality)
        logits = tf.cast(model(x, training=False), tf.float32)  # [B, classes]
        return {"logits": logits, "probabilities": tf.nn.softmax(logits, axis=-1)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(litert.SIGNATURE, serve)
    with tempfile.TemporaryDirectory() as tmp:
        # Through a Keras ExportArchive, which saves the model's variables explicitly. Two
        # routes wrote files whose weights were unset variables (NaN outputs): concrete
        # functions converted with the model passed alongside, and a tf.Module holding the
        # model as an attribute. Every converted file is run and checked (export_tflite).
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=[litert.SIGNATURE])
        if fmt != "fp32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if fmt == "fp16":
            converter.target_spec.supported_types = [tf.float16]
        if fmt == "int8_full":
            samples = [np.asarray(v, np.uint8) for v in calibration_views]
            if not samples:
                raise ValueError("--calibration_records: no views to calibrate int8_full with")
            converter.representative_dataset = lambda: ([v] for v in samples)
        return converter.convert()


def calibration_views(
    records_path: str, tsn_config: TSNConfig, count: int = 200
) -> list[np.ndarray]:
    """uint8 [1, K, S, S, C] centre-crop views of the first `count` training videos.

    K = tsn_config.num_segments evenly spaced snippets, the centre crop (`record_views`, as
    serve_examples sees them), so int8 ranges are calibrated on real inputs.
    """
    c = tsn_config
    files = input_pipeline.record_files(records_path, "train", c.modality)
    spec = input_pipeline.ViewSpec(
        c.modality, c.num_segments, c.input_size, c.snippet_length, "test"
    )
    ds = tf.data.TFRecordDataset(files).take(count)
    ds = ds.map(lambda example: input_pipeline.record_views(example, spec)[0][0])
    return [v.numpy()[None] for v in ds]


def export_tflite(
    model: keras.Model,
    tsn_config: TSNConfig,
    classes: Sequence[str],
    export_dir: str,
    formats: Sequence[str],
    calibration_records: str | None = None,
    calibration_count: int = 200,
    conversion: dict | None = None,
) -> dict[str, dict]:
    """Writes <export_dir>/model_<fmt>.tflite for each format, with the export's metadata.

    Each file is loaded back and run on two random clips against the Keras model: a file
    with non-finite outputs is an error, and so is an fp32 file whose probabilities differ
    from the model's by more than 1e-4 (the quantised formats report their difference).

    Returns:
      {fmt: {"path", "bytes", "max_abs_diff"}}: max |probability difference| on the check.
    """
    if not formats:
        return {}
    unknown = [f for f in formats if f not in litert.FORMATS]
    if unknown:
        raise ValueError(f"--tflite formats must be among {litert.FORMATS}. Received: {unknown}")
    views = None
    if "int8_full" in formats:
        if not calibration_records:
            raise ValueError("--tflite int8_full needs --calibration_records (training records)")
        views = calibration_views(calibration_records, tsn_config, calibration_count)
    os.makedirs(export_dir, exist_ok=True)
    c = tsn_config
    rng = np.random.default_rng(0)
    shape = (2, c.num_segments, c.input_size, c.input_size)
    check = rng.integers(
        0, 256, shape + (modalities.stored_channels(c.modality, c.snippet_length),), np.uint8
    )
    x = preprocess_input(check, backbone=c.backbone, modality=c.modality)
    expected = keras.ops.convert_to_numpy(
        keras.ops.softmax(keras.ops.cast(model(x, training=False), "float32"), axis=-1)
    )
    report = {}
    for fmt in formats:
        meta = export_meta(tsn_config, classes, conversion=conversion)
        meta["format"] = fmt
        data = litert.add_metadata(convert_tflite(model, tsn_config, fmt, views), meta)
        path = tflite_path(export_dir, fmt)
        with open(path, "wb") as f:
            f.write(data)
        probs = litert.LiteRTModel(path)(check)["probabilities"]
        if not np.all(np.isfinite(probs)):
            raise RuntimeError(f"{path}: the converted model outputs non-finite values")
        diff = float(np.max(np.abs(probs - expected)))
        if fmt == "fp32" and diff > 1e-4:
            raise RuntimeError(f"{path}: probabilities differ from the model's by {diff:.2e}")
        report[fmt] = {"path": path, "bytes": len(data), "max_abs_diff": diff}
    return report


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
      checkpoints.DamagedCheckpointsError: every checkpoint in model_dir is damaged.
    """
    config, data = read_train_config(model_dir)
    tsn_config = config.tsn_config(len(data["classes"]), int(data["snippet_length"]))
    # The checkpoint holds every weight: no pretrained file is needed (or read) here.
    tsn_config = dataclasses.replace(tsn_config, backbone_weights=None)
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        model = build_tsn(tsn_config)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    ckpt_dir = os.path.join(model_dir, CHECKPOINT_DIR)
    if checkpoints.restore_latest_intact(tf.train.Checkpoint(model=model), ckpt_dir) is None:
        raise FileNotFoundError(
            f"No checkpoint in {ckpt_dir}: train first "
            f"(python -m tsn_keras.train --model_dir {model_dir} ...)"
        )
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


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns 0, 1 when exporting failed (damaged checkpoints, non-finite
    weights, a failed LiteRT conversion, a full disk), 2 on bad flags or inputs."""
    return cli.run(
        _main, argv, usage_errors=(FileNotFoundError, ValueError), failures=(RuntimeError,)
    )


def _main(argv: list[str]) -> int:
    fv = flags.FlagValues()
    flags.DEFINE_string("model_dir", None, "A --model_dir of tsn_keras.train.", flag_values=fv)
    flags.DEFINE_string(
        "export_dir", None, "Output folder; default <model_dir>/export.", flag_values=fv
    )
    flags.DEFINE_integer(
        "num_segments",
        25,
        "K: snippets per video of serve_examples (as evaluate/predict's --num_segments).",
        flag_values=fv,
    )
    flags.DEFINE_alias("example_snippets", "num_segments", flag_values=fv)  # its older name
    flags.DEFINE_list(
        "tflite",
        [],
        f"LiteRT files to write too, any of {','.join(litert.FORMATS)}.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "calibration_records",
        None,
        "Records whose training videos calibrate int8_full.",
        flag_values=fv,
    )
    flags.DEFINE_integer(
        "calibration_count", 200, "Videos to calibrate int8_full with.", flag_values=fv
    )
    if cli.parse_flags(fv, argv, __doc__) is None:
        return 0
    if not fv.model_dir:
        raise flags.Error("--model_dir is required: a --model_dir of python -m tsn_keras.train")
    unknown = [f for f in fv.tflite if f not in litert.FORMATS]
    if unknown:
        raise flags.Error(f"--tflite must be among {','.join(litert.FORMATS)}. Received: {unknown}")
    if "int8_full" in fv.tflite and not fv.calibration_records:
        raise flags.Error("--tflite int8_full needs --calibration_records (training records)")
    if fv.num_segments < 1 or fv.calibration_count < 1:
        raise flags.Error("--num_segments and --calibration_count must be >= 1")
    path = fv.export_dir or os.path.join(fv.model_dir, "export")
    model, tsn_config, classes, data = restore_from_model_dir(fv.model_dir)
    conversion = data.get("conversion")
    check_finite(model)
    try:
        with staged(path) as out:  # the SavedModel and the LiteRT files appear together
            _write_saved_model(model, tsn_config, classes, out, fv.num_segments, conversion)
            report = export_tflite(
                model, tsn_config, classes, out, fv.tflite, fv.calibration_records,
                fv.calibration_count, conversion,
            )  # fmt: skip
    except (OSError, tf.errors.OpError) as e:  # a full disk or read-only folder: nothing left
        raise cli.Failure(f"cannot write the export to {path}: {getattr(e, 'message', e)}") from e
    for fmt, r in report.items():  # where the files are now
        r["path"] = tflite_path(path, fmt)
    print(f"exported SavedModel and {KERAS_FILE} to {path}")
    for r in report.values():
        print(
            f"  {r['path']}: {r['bytes'] / 1e6:.2f} MB, max |probability - Keras| "
            f"{r['max_abs_diff']:.2e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
