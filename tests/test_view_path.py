"""One path from a record to views: training, validation, evaluation, serving and LiteRT
calibration all call `input_pipeline.record_views`, so the same record gives each the same
tensors, eagerly and inside tf.data."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import CLASSES, write_records

from tsn_keras import augment, export, input_pipeline, records, sampling, scoring
from tsn_keras.input_pipeline import ViewSpec, record_views
from tsn_keras.manifest import Manifest
from tsn_keras.models import TSNConfig, build_tsn, preprocess_input

K, S, L = 3, 32, 2


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return write_records(str(tmp_path_factory.mktemp("views")), num_train=3, num_test=3, shards=1)


def _examples(records_dir, subset, modality):
    files = Manifest.read(records_dir).shard_files(subset, modality)
    return list(tf.data.TFRecordDataset(files))


def _by_hand(serialized, modality, mode, crops=1):
    """The steps written out: parse, pick snippets, decode, crop."""
    parsed = records.parse_example(serialized, [modality])
    idx = sampling.sample_snippet_indices(parsed["num_snippets"], K, mode)
    clip = records.decode_snippets(parsed, modality, idx, L)  # [K, H, W, C]
    return augment.crop_views(clip, modality, S, crops)  # [crops, K, S, S, C]


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_every_caller_gets_the_same_views_of_a_record(records_dir, modality):
    examples = _examples(records_dir, "test", modality)
    spec = ViewSpec(modality, K, S, L, "test")
    # tf.data: the same function inside a map
    mapped = tf.data.Dataset.from_tensor_slices(tf.stack(examples)).map(
        lambda e: record_views(e, spec)[0]
    )
    info = scoring.ModelInfo(modality, "tiny", S, L, tuple(CLASSES))
    config = TSNConfig(
        num_classes=len(CLASSES), modality=modality, backbone="tiny", input_size=S,
        snippet_length=L, num_segments=K,
    )  # fmt: skip
    calibration = export.calibration_views(records_dir, config, count=3)  # train subset
    train_examples = _examples(records_dir, "train", modality)
    for serialized, in_data, train_serialized, calib in zip(
        examples, mapped, train_examples, calibration, strict=True
    ):
        views, label, video_id = record_views(serialized, spec)
        expected = _by_hand(serialized, modality, "test")
        np.testing.assert_array_equal(views, expected)
        np.testing.assert_array_equal(in_data, expected)
        eval_views, eval_id, eval_label = scoring.test_views(serialized, info, K, crops=1)
        np.testing.assert_array_equal(eval_views, expected)
        assert eval_id.numpy() == video_id.numpy() and int(eval_label) == int(label)
        np.testing.assert_array_equal(calib, _by_hand(train_serialized, modality, "test"))
        assert views.dtype == tf.uint8 and views.shape == (
            1,
            K,
            S,
            S,
            3 if modality == "rgb" else 2 * L,
        )


def test_ten_crops_and_validation_views(records_dir):
    serialized = _examples(records_dir, "test", "flow")[0]
    views, _, _ = record_views(serialized, ViewSpec("flow", K, S, L, "test", crops=10))
    np.testing.assert_array_equal(views, _by_hand(serialized, "flow", "test", crops=10))
    info = scoring.ModelInfo("flow", "tiny", S, L, tuple(CLASSES))
    np.testing.assert_array_equal(scoring.test_views(serialized, info, K, 10)[0], views)
    # validation (segment centres, centre crop) is make_dataset(training=False), in file order
    ds = input_pipeline.make_dataset(
        records_dir, "test", "flow", K, 3, training=False, input_size=S
    )
    batch, labels = next(iter(ds))
    for i, example in enumerate(_examples(records_dir, "test", "flow")):
        np.testing.assert_array_equal(batch[i], _by_hand(example, "flow", "val")[0])
        assert int(labels[i]) == int(records.parse_example(example, ["flow"])["label"])


def test_serve_examples_scores_the_shared_views(records_dir, tmp_path):
    config = TSNConfig(
        num_classes=len(CLASSES), modality="rgb", backbone="tiny", input_size=S, snippet_length=L,
    )  # fmt: skip
    keras.utils.set_random_seed(3)
    model = build_tsn(config)
    path = export.export_saved_model(model, config, CLASSES, str(tmp_path / "export"), K)
    examples = _examples(records_dir, "test", "rgb")
    out = tf.saved_model.load(path).signatures["serve_examples"](serialized=tf.stack(examples))
    views = tf.concat([record_views(e, ViewSpec("rgb", K, S, L, "test"))[0] for e in examples], 0)
    logits = model(preprocess_input(views, "tiny", "rgb"), training=False)
    np.testing.assert_allclose(out["logits"], logits, atol=1e-5)


def test_train_views_are_the_whole_clips_augmentation(records_dir):
    serialized = _examples(records_dir, "train", "rgb")[0]
    spec = ViewSpec("rgb", K, S, L, "train")
    seeds = input_pipeline.example_seeds(tf.constant([5, 0], tf.int64), tf.constant(2, tf.int64))
    views, _, _ = record_views(serialized, spec, seeds)
    parsed = records.parse_example(serialized, ["rgb"])
    idx = sampling.sample_snippet_indices(parsed["num_snippets"], K, "train", seeds[0])
    clip = records.decode_snippets(parsed, "rgb", idx, L)
    expected = input_pipeline.preprocess_clip(clip, "rgb", S, True, seeds[1])
    np.testing.assert_array_equal(views[0], expected)
    with pytest.raises(ValueError, match="needs the example's seeds"):
        record_views(serialized, spec)


def test_a_view_spec_says_what_was_wrong():
    with pytest.raises(ValueError, match="sampling must be one of.*Received: sampling='dense'"):
        ViewSpec("rgb", K, S, L, "dense")
    with pytest.raises(ValueError, match="1 unless sampling='test'.*crops=10"):
        ViewSpec("rgb", K, S, L, "val", crops=10)
    with pytest.raises(ValueError, match="crops must be one of"):
        ViewSpec("rgb", K, S, L, "test", crops=5)
    with pytest.raises(ValueError, match="modality must be one of"):
        ViewSpec("depth", K, S, L)
    assert ViewSpec("rgbdiff", K, S, L, "test", crops=3).shape == [3, K, S, S, 3 * (L + 1)]
