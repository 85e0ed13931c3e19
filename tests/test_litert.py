"""LiteRT export: every format loads, carries its metadata and agrees with the SavedModel;
evaluate and predict run .tflite files."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_input_pipeline import CLASSES, write_records

from tsn_keras import evaluate, export, litert, predict, scoring
from tsn_keras.models import TSNConfig, build_tsn
from tsn_keras.video import write_video

SIZE = 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("litert")
    records_dir = write_records(str(root / "records"), num_train=6, num_test=9, modalities=["rgb"])
    config = TSNConfig(
        num_classes=len(CLASSES),
        modality="rgb",
        backbone="tiny",
        input_size=SIZE,
        snippet_length=1,
        num_segments=3,
        dropout=0.5,
    )
    keras.utils.set_random_seed(0)
    model = build_tsn(config)
    # A strong random classifier: clear top-1 margins, as a trained model has.
    kernel = model.get_layer("classifier").kernel
    kernel.assign(np.random.default_rng(0).normal(0, 3, kernel.shape).astype("float32"))
    path = export.export_saved_model(model, config, CLASSES, str(root / "export"), 3)
    report = export.export_tflite(
        model, config, CLASSES, path, litert.FORMATS, calibration_records=records_dir
    )
    return {"model": model, "path": path, "records": records_dir, "report": report}


@pytest.mark.parametrize("fmt", litert.FORMATS)
def test_each_format_agrees_with_the_saved_model(exported, fmt):
    path = exported["path"]
    assert exported["report"][fmt]["path"] == export.tflite_path(path, fmt)
    model = litert.LiteRTModel(export.tflite_path(path, fmt))
    views = np.random.default_rng(7).integers(0, 256, (4, 3, SIZE, SIZE, 3), np.uint8)
    got = model(views)["probabilities"]
    serve = tf.saved_model.load(path).signatures[export.VIEWS_SIGNATURE]
    want = serve(views=tf.constant(views, tf.float32))["probabilities"].numpy()
    assert got.shape == want.shape == (4, len(CLASSES))
    assert np.all(np.isfinite(got))
    if fmt == "fp32":
        np.testing.assert_allclose(got, want, atol=1e-4 * want.max())
    elif fmt == "fp16":
        np.testing.assert_allclose(got, want, atol=1e-2 * want.max())
    else:  # int8: the same answer, probabilities within a few percent
        np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
        np.testing.assert_allclose(got, want, atol=0.1)
    # Another batch and snippet count in the same interpreter (it resizes).
    assert model(views[:1, :2])["probabilities"].shape == (1, len(CLASSES))


def test_sizes_shrink_and_metadata_is_in_the_file(exported):
    sizes = {f: r["bytes"] for f, r in exported["report"].items()}
    assert sizes["fp16"] < sizes["fp32"] and sizes["int8_dynamic"] < sizes["fp16"]
    for fmt in litert.FORMATS:
        with open(export.tflite_path(exported["path"], fmt), "rb") as f:
            meta = litert.read_metadata(f.read())
        assert meta["classes"] == list(CLASSES) and meta["format"] == fmt
        assert (meta["modality"], meta["input_size"], meta["raw_channels"]) == ("rgb", SIZE, 3)


def test_bad_input_and_foreign_files_are_named(exported, tmp_path):
    model = litert.LiteRTModel(export.tflite_path(exported["path"], "fp32"))
    with pytest.raises(ValueError, match=r"views must be uint8 \[B, K, 32, 32, 3\]"):
        model(np.zeros((1, 3, SIZE, SIZE, 6), np.uint8))
    with pytest.raises(ValueError, match="K > 0"):
        model(np.zeros((1, 0, SIZE, SIZE, 3), np.uint8))
    # A .tflite written by someone else (no tsn_keras metadata).
    plain = tf.lite.TFLiteConverter.from_concrete_functions(
        [tf.function(lambda x: x + 1).get_concrete_function(tf.TensorSpec([1], tf.float32))]
    ).convert()
    with pytest.raises(ValueError, match="other.tflite has no 'tsn_keras' metadata"):
        litert.read_metadata(plain, "other.tflite")
    with pytest.raises(FileNotFoundError, match="missing.tflite"):
        litert.LiteRTModel(str(tmp_path / "missing.tflite"))


def test_int8_keeps_top1_on_the_test_set_and_evaluate_reports_both(exported, tmp_path, capsys):
    path, records_dir = exported["path"], exported["records"]
    reference = scoring.evaluate(scoring.load_scorer(path), records_dir, "test", 3, 1)
    for fmt in ("int8_dynamic", "int8_full"):
        scorer = scoring.load_scorer(export.tflite_path(path, fmt))
        result = scoring.evaluate(scorer, records_dir, "test", 3, 1, verbose=False)
        assert result["video_ids"] == reference["video_ids"] and len(result["video_ids"]) == 9
        np.testing.assert_array_equal(
            result["scores"].argmax(1), reference["scores"].argmax(1), err_msg=fmt
        )
    out_dir = tmp_path / "eval"
    argv = ["evaluate", f"--tflite={export.tflite_path(path, 'int8_full')}"]
    argv += [f"--records={records_dir}", "--num_segments=3", "--crops=1", f"--output_dir={out_dir}"]
    assert evaluate.main(argv + ["--noprogress"]) == 0
    printed = capsys.readouterr().out
    assert "LiteRT int8_full" in printed and "SavedModel" in printed
    assert "top-1 agreement with the SavedModel 100.00%" in printed
    ref = json.loads((out_dir / "metrics.json").read_text())["settings"]["reference"]
    assert ref["source"] == path and ref["top1_agreement"] == 1.0
    assert ref["top1"] == pytest.approx(reference["summary"]["top1"])


def test_predict_tflite_json_to_stdout(exported, tmp_path, capsys):
    video = str(tmp_path / "clip.avi")
    rng = np.random.default_rng(0)
    write_video(video, [rng.integers(0, 256, (48, 64, 3), np.uint8) for _ in range(12)], fps=25)
    fp32 = export.tflite_path(exported["path"], "fp32")
    argv = ["predict", video, f"--tflite={fp32}", "--num_segments=3", "--crops=1", "--json=-"]
    assert predict.main(argv) == 0
    captured = capsys.readouterr()
    [row] = json.loads(captured.out)  # stdout holds only the JSON
    assert row["path"] == video and video in captured.err
    assert [sorted(t) for t in row["top5"]] == [["label", "score"]] * len(CLASSES)
    assert sorted(t["label"] for t in row["top5"]) == sorted(CLASSES)
    assert sum(t["score"] for t in row["top5"]) == pytest.approx(1.0, abs=1e-5)
    # The same video through the SavedModel gives the same top class.
    [saved] = predict.predict_videos([video], [scoring.load_scorer(exported["path"])], None, 3, 1)
    assert saved["top5"][0]["label"] == row["top5"][0]["label"]
    np.testing.assert_allclose(saved["top5"][0]["score"], row["top5"][0]["score"], atol=1e-4)
    assert os.path.isfile(fp32)
