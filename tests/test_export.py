"""SavedModel round trip: the loaded export gives the Keras model's probabilities on raw input."""

import os
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import CLASSES, write_records

from tsn_keras import export, input_pipeline, records, sampling
from tsn_keras.manifest import Manifest
from tsn_keras.models import TSNConfig, build_tsn, preprocess_input


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    records_dir = write_records(str(root / "records"), num_train=1, num_test=3)
    config = TSNConfig(
        num_classes=len(CLASSES),
        modality="flow",
        backbone="tiny",
        input_size=32,
        snippet_length=2,
        dropout=0.5,
    )
    keras.utils.set_random_seed(0)
    model = build_tsn(config)
    # Non-trivial classifier so the probabilities differ between inputs.
    kernel = model.get_layer("classifier").kernel
    kernel.assign(np.random.default_rng(0).normal(0, 1, kernel.shape).astype("float32"))
    conversion = {"flow_algorithm": "dis", "num_snippets": 5}
    path = export.export_saved_model(model, config, CLASSES, str(root / "export"), 3, conversion)
    return model, config, records_dir, path


def test_serving_default_matches_the_keras_model_on_raw_uint8(exported):
    model, config, _, path = exported
    loaded = tf.saved_model.load(path)
    raw = np.random.default_rng(1).integers(0, 256, (2, 3, 40, 48, 4)).astype(np.uint8)
    out = loaded.signatures["serving_default"](clips=tf.constant(raw))
    views = input_pipeline.preprocess_batch(tf.constant(raw), "flow", 32)  # uint8
    logits = model(preprocess_input(views, "tiny", "flow"), training=False)
    np.testing.assert_allclose(out["logits"], logits, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"], tf.nn.softmax(logits), atol=1e-6)
    assert out["probabilities"].shape == (2, len(CLASSES))
    assert np.ptp(out["probabilities"].numpy(), axis=0).max() > 1e-4  # inputs are told apart
    # Any K, H, W: 5 snippets of 64x80.
    raw5 = np.random.default_rng(2).integers(0, 256, (1, 5, 64, 80, 4)).astype(np.uint8)
    assert loaded.signatures["serving_default"](clips=tf.constant(raw5))["logits"].shape == (1, 3)


def test_serve_examples_uses_records_and_the_same_preprocessing(exported):
    model, config, records_dir, path = exported
    loaded = tf.saved_model.load(path)
    serialized = list(
        tf.data.TFRecordDataset(Manifest.read(records_dir).shard_files("test", "flow"))
    )
    out = loaded.signatures["serve_examples"](serialized=tf.stack(serialized))
    assert out["logits"].shape == (3, len(CLASSES))
    for i, example in enumerate(serialized):
        parsed = records.parse_example(example, ["flow"])
        idx = sampling.sample_snippet_indices(parsed["num_snippets"], 3, "test")
        clip = records.decode_snippets(parsed, "flow", idx, 2)
        views = input_pipeline.preprocess_clip(clip, "flow", 32, training=False)
        x = preprocess_input(views[None], "tiny", "flow")
        expected = tf.nn.softmax(model(x, training=False))[0]
        np.testing.assert_allclose(out["probabilities"][i], expected, atol=1e-6)
        assert out["video_id"][i].numpy() == parsed["video_id"].numpy()
        assert int(out["label"][i]) == int(parsed["label"])


def test_serve_views_takes_cropped_raw_views(exported):
    model, config, _, path = exported
    loaded = tf.saved_model.load(path)
    views = np.random.default_rng(4).uniform(0, 255, (2, 3, 32, 32, 4)).astype("float32")
    out = loaded.signatures[export.VIEWS_SIGNATURE](views=tf.constant(views))
    expected = model(preprocess_input(views, backbone="tiny", modality="flow"), training=False)
    np.testing.assert_allclose(out["logits"], expected, atol=1e-5)


def test_class_names_asset_and_keras_file(exported):
    model, _, _, path = exported
    loaded = tf.saved_model.load(path)
    names = loaded.signatures["class_names"]()["class_names"].numpy().astype(str).tolist()
    assert names == list(CLASSES)
    assets = sorted(os.listdir(os.path.join(path, "assets")))
    assert assets == [export.CLASSES_ASSET, export.META_ASSET]
    meta = export.read_export_meta(path)
    assert meta["classes"] == list(CLASSES) and meta["modality"] == "flow"
    assert meta["conversion"]["flow_algorithm"] == "dis" and meta["snippet_length"] == 2
    reloaded = keras.saving.load_model(os.path.join(path, export.KERAS_FILE))
    x = np.random.default_rng(3).normal(size=(1, 3, 32, 32, 4)).astype("float32")
    np.testing.assert_allclose(reloaded(x), model(x), atol=1e-6)


def test_class_count_must_match(exported, tmp_path):
    model, config, _, _ = exported
    with pytest.raises(ValueError, match="class names"):
        export.export_saved_model(model, config, ["a", "b"], str(tmp_path / "x"))


def test_signatures_declare_their_input_shapes(exported):
    """What `saved_model_cli show` and TF Serving's metadata print: C = 2L = 4, S = 32."""
    _, _, _, path = exported
    signatures = tf.saved_model.load(path).signatures
    clips = signatures["serving_default"].structured_input_signature[1]["clips"]
    assert clips.shape.as_list() == [None, None, None, None, 4] and clips.dtype == tf.uint8
    views = signatures[export.VIEWS_SIGNATURE].structured_input_signature[1]["views"]
    assert views.shape.as_list() == [None, None, 32, 32, 4] and views.dtype == tf.float32


@pytest.mark.parametrize(
    "signature,shape,match",
    [
        # The flow model (L=2) takes 4 channels: 3, 6 and 12 used to run and return wrong results.
        ("serving_default", (1, 3, 40, 48, 3), "clips must be .B, K, H, W, 4.*another channel"),
        ("serving_default", (1, 3, 40, 48, 12), "another channel count"),
        ("serving_default", (1, 40, 48, 4), "clips must be .*another rank"),
        ("serving_default", (1, 0, 40, 48, 4), "empty snippet or frame axis"),
        ("serving_default", (1, 3, 0, 48, 4), "empty snippet or frame axis"),
        ("serve_views", (1, 3, 32, 32, 6), "views must be .B, K, 32, 32, 4.*another channel"),
        ("serve_views", (3, 32, 32, 4), "another rank"),
        ("serve_views", (1, 0, 32, 32, 4), "empty snippet or frame axis"),
        ("serve_views", (1, 3, 40, 40, 4), "another frame size"),
    ],
)
def test_signatures_reject_wrong_shapes_with_the_expected_shape(exported, signature, shape, match):
    _, _, _, path = exported
    fn = tf.saved_model.load(path).signatures[signature]
    name, dtype = ("clips", tf.uint8) if signature == "serving_default" else ("views", tf.float32)
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        fn(**{name: tf.zeros(shape, dtype)})


def test_keras_file_loads_in_a_fresh_process_with_safe_mode(exported, tmp_path):
    """README's promise: `import tsn_keras.models` registers the layers ("tsn_keras>..."), and
    keras.saving.load_model(path, safe_mode=True) then rebuilds the model in a new process."""
    model, _, _, path = exported
    x = np.random.default_rng(5).normal(size=(1, 3, 32, 32, 4)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    code = (
        "import sys, numpy as np, keras\n"
        "import tsn_keras.models\n"
        "m = keras.saving.load_model(sys.argv[1], safe_mode=True)\n"
        "np.save(sys.argv[3], keras.ops.convert_to_numpy(m(np.load(sys.argv[2]))))\n"
    )
    keras_file = os.path.join(path, export.KERAS_FILE)
    out = tmp_path / "y.npy"
    cmd = [sys.executable, "-c", code, keras_file, str(tmp_path / "x.npy"), str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_allclose(np.load(out), model(x), atol=1e-6)


@pytest.mark.parametrize(
    "argv,match",
    [
        ([], "--model_dir is required"),
        (["--model_dir=x", "--tflite=int4"], "--tflite must be among"),
        (["--model_dir=x", "--tflite=fp32,int8_full"], "needs --calibration_records"),
        (["--model_dir=x", "extra"], "unexpected arguments"),
    ],
)
def test_export_command_usage_errors(argv, match, capsys):
    assert export.main(["export", *argv]) == 2
    assert re.search(match, capsys.readouterr().err)


def test_export_command_missing_run(tmp_path, capsys):
    assert export.main(["export", f"--model_dir={tmp_path / 'nothing'}"]) == 2
    assert "train_config.json" in capsys.readouterr().err
