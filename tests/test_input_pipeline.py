"""tf.data pipeline on a few synthetic records: shapes, dtypes, determinism, sharding, padding."""

import os

import numpy as np
import pytest
import tensorflow as tf
from helpers import CLASSES, write_records

from tsn_keras import augment, input_pipeline, records, sampling


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return write_records(
        str(tmp_path_factory.mktemp("records")), modalities=("rgb", "flow", "rgbdiff")
    )


@pytest.mark.parametrize("modality,channels", [("rgb", 3), ("flow", 4), ("rgbdiff", 9)])
@pytest.mark.parametrize("training", [True, False])
def test_shapes_and_dtypes(records_dir, modality, channels, training):
    ds = input_pipeline.make_dataset(
        records_dir,
        "train",
        modality,
        num_segments=3,
        batch_size=4,
        training=training,
        input_size=32,
        seed=1,
    )
    clips, labels = next(iter(ds))
    assert clips.dtype == tf.uint8 and labels.dtype == tf.int32
    assert clips.shape == (4, 3, 32, 32, channels)
    assert ds.element_spec[0].shape.as_list() == [4 if training else None, 3, 32, 32, channels]
    assert np.all((labels.numpy() >= 0) & (labels.numpy() < len(CLASSES)))
    assert clips.numpy().std() > 5  # real pixels, not padding


def test_seeded_pipeline_is_deterministic_and_glob_works(records_dir):
    def batches(path, seed):
        ds = input_pipeline.make_dataset(
            path,
            "train",
            "flow",
            3,
            4,
            training=True,
            input_size=32,
            seed=seed,
        )
        return [(c.numpy(), y.numpy()) for c, y in ds.take(3)]

    a = batches(records_dir, 7)
    b = batches(os.path.join(records_dir, "train-flow-*.tfrecord"), 7)
    c = batches(records_dir, 8)
    for (ca, ya), (cb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ca, cb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))


def test_validation_pass_is_one_epoch_of_centre_views(records_dir):
    ds = input_pipeline.make_dataset(
        records_dir, "test", "rgb", 3, 2, training=False, input_size=32
    )
    labels = np.concatenate([y.numpy() for _, y in ds])
    assert sorted(labels.tolist()) == [0, 1, 2]  # 3 test videos, each once
    again = np.concatenate([c.numpy() for c, _ in ds])
    once = np.concatenate([c.numpy() for c, _ in ds])
    np.testing.assert_array_equal(np.sort(again.ravel()), np.sort(once.ravel()))


def test_input_context_shards_and_pads(records_dir):
    counts = input_pipeline.examples_per_pipeline(records_dir, "test", 2)
    assert counts == [2, 1]  # shard 0 has videos 0 and 2, shard 1 has video 1
    seen = []
    for pipeline_id in range(2):
        ctx = tf.distribute.InputContext(
            num_input_pipelines=2, input_pipeline_id=pipeline_id, num_replicas_in_sync=2
        )
        ds = input_pipeline.make_dataset(
            records_dir,
            "test",
            "rgb",
            3,
            batch_size=4,
            training=False,
            input_size=32,
            input_context=ctx,
            pad_to_batches=2,
        )
        got = list(ds)
        assert len(got) == 2 and all(c.shape == (2, 3, 32, 32, 3) for c, _ in got)
        labels = np.concatenate([y.numpy() for _, y in got])
        assert np.sum(labels == input_pipeline.PAD_LABEL) == 4 - counts[pipeline_id]
        seen += labels[labels >= 0].tolist()
    assert sorted(seen) == [0, 1, 2]


def test_preprocess_clip_and_batch_match(records_dir):
    clip = tf.constant(np.random.default_rng(0).integers(0, 256, (3, 40, 48, 3)), tf.uint8)
    one = input_pipeline.preprocess_clip(clip, "rgb", 32, training=False)
    batch = input_pipeline.preprocess_batch(tf.stack([clip, clip]), "rgb", 32)
    assert one.dtype == tf.uint8 and one.shape == (3, 32, 32, 3)
    assert batch.shape == (2, 3, 32, 32, 3)
    np.testing.assert_array_equal(batch[1], one)
    # short side 40 -> 36 (32 * 256 // 224), long side 48 -> 43; centre 32x32; rounded
    resized = tf.image.resize(tf.cast(clip, tf.float32), [36, 43])[:, 2:34, 6:38]
    np.testing.assert_array_equal(one, np.floor(resized.numpy() + 0.5).astype(np.uint8))
    with pytest.raises(ValueError, match="seed"):
        input_pipeline.preprocess_clip(clip, "rgb", 32, training=True)


def _parsed(records_dir, modality):
    files = input_pipeline.record_files(records_dir, "train", modality)
    serialized = next(iter(tf.data.TFRecordDataset(files)))
    return serialized, records.parse_example(serialized, [modality])


@pytest.mark.parametrize("modality", ["rgb", "flow", "rgbdiff"])
def test_decode_snippets_window_equals_cropping_the_clip(records_dir, modality):
    serialized, parsed = _parsed(records_dir, modality)
    idx = tf.constant([0, 2, 4])
    full = records.decode_snippets(parsed, modality, idx, 2).numpy()  # [3, 40, 48, C]
    for box in ([0, 0, 40, 48], [3, 5, 28, 33], [12, 15, 28, 33]):
        y, x, h, w = box
        got = records.decode_snippets(parsed, modality, idx, 2, window=tf.constant(box))
        np.testing.assert_array_equal(got, full[:, y : y + h, x : x + w])
    # Dynamic K (the map_fn loop) gives the same as the unrolled decode, inside tf.data too.
    box = tf.constant([3, 5, 28, 33])

    def dynamic(s, n):
        p = records.parse_example(s, [modality])
        return records.decode_snippets(p, modality, tf.range(0, n, 2), None, box)

    ds = tf.data.Dataset.from_tensors((serialized, tf.constant(5))).map(dynamic)
    np.testing.assert_array_equal(next(iter(ds)), full[:, 3:31, 5:38])


@pytest.mark.parametrize("modality", ["rgb", "flow", "rgbdiff"])
def test_pipeline_training_views_equal_train_augment_of_the_whole_clip(records_dir, modality):
    """The pipeline crops while decoding; the views are exactly preprocess_clip(training=True)."""
    serialized, parsed = _parsed(records_dir, modality)
    idx = tf.constant([1, 2, 3])
    clip = records.decode_snippets(parsed, modality, idx, 2)

    def split_path(s, seed):
        p = records.parse_example(s, [modality])
        box = augment.train_crop_box(p["height"], p["width"], modality, 32, seed, True)
        window = records.decode_snippets(p, modality, idx, 2, window=box)
        return augment.train_augment_window(window, modality, 32, seed, True)

    flips = set()
    for i in range(12):
        seed = tf.constant([i, 3], tf.int64)
        expected = input_pipeline.preprocess_clip(clip, modality, 32, True, seed)
        assert expected.dtype == tf.uint8
        np.testing.assert_array_equal(split_path(serialized, seed), expected)
        graph = tf.data.Dataset.from_tensors((serialized, seed)).map(split_path)
        np.testing.assert_array_equal(next(iter(graph)), expected)
        box = augment.train_crop_box(40, 48, modality, 32, seed)
        window = augment.crop_box(clip, box)
        plain = np.floor(tf.image.resize(tf.cast(window, tf.float32), [32, 32]).numpy() + 0.5)
        flips.add(bool(np.array_equal(expected, plain.astype(np.uint8))))
    assert flips == {True, False}  # some clips flipped, some not


@pytest.mark.parametrize("modality", ["rgb", "flow"])
def test_make_dataset_training_views_are_preprocess_clip_of_the_sampled_snippets(
    tmp_path, modality
):
    """make_dataset itself (not a copy of its steps): one video, so element i is that video with
    the seeds of position i; each view is preprocess_clip(training=True) of its K snippets."""
    one = write_records(str(tmp_path / "one"), num_train=1, num_test=1, shards=1)
    serialized = next(
        iter(tf.data.TFRecordDataset(input_pipeline.record_files(one, "train", modality)))
    )
    parsed = records.parse_example(serialized, [modality])
    ds = input_pipeline.make_dataset(one, "train", modality, 3, 1, True, 32, seed=11)
    for i, (views, label) in enumerate(ds.take(6)):
        sample_seed, augment_seed = input_pipeline.example_seeds(
            tf.constant([11, 0], tf.int64), tf.constant(i, tf.int64)
        )
        idx = sampling.sample_snippet_indices(parsed["num_snippets"], 3, "train", sample_seed)
        clip = records.decode_snippets(parsed, modality, idx, 2)
        expected = input_pipeline.preprocess_clip(clip, modality, 32, True, augment_seed)
        np.testing.assert_array_equal(views[0], expected)
        assert int(label[0]) == int(parsed["label"])


def test_decode_snippets_names_a_wrong_snippet_length(records_dir):
    _, parsed = _parsed(records_dir, "flow")  # stored L = 2
    with pytest.raises(tf.errors.InvalidArgumentError, match="snippet length"):
        records.decode_snippets(parsed, "flow", tf.constant([0, 1, 2]), 3)


def test_unstored_modality_and_bad_path_fail_clearly(records_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="--records"):
        input_pipeline.make_dataset(str(tmp_path / "nothing*.tfrecord"), "train", "rgb", 3, 2, True)
    rgb_only = write_records(
        str(tmp_path / "rgb_only"), modalities=("rgb",), num_train=2, num_test=1
    )
    with pytest.raises(ValueError, match="flow"):
        input_pipeline.make_dataset(rgb_only, "train", "flow", 3, 2, True, 32, seed=0)
    # The older layout (one file holding every modality) fails when parsing.
    combined = write_records(
        str(tmp_path / "combined"), modalities=("rgb",), num_train=2, num_test=1, combined=True
    )
    ds = input_pipeline.make_dataset(combined, "train", "flow", 3, 2, True, 32, seed=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match="flow"):
        next(iter(ds))


def test_combined_layout_reads_the_same_views(records_dir, tmp_path):
    combined = write_records(
        str(tmp_path / "combined"), modalities=("rgb", "flow", "rgbdiff"), combined=True
    )
    for modality in ("rgb", "flow"):
        a, b = (
            next(iter(input_pipeline.make_dataset(d, "train", modality, 3, 4, True, 32, seed=5)))
            for d in (records_dir, combined)
        )
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
