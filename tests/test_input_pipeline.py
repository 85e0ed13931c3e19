"""tf.data pipeline on a few synthetic records: shapes, dtypes, determinism, sharding, padding.

`write_records` is also used by tests/test_train.py and tests/test_export.py.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tsn_keras import input_pipeline, records
from tsn_keras.models import preprocess_input

CLASSES = ("Alpha", "Beta", "Gamma")


def write_records(
    out_dir: str,
    num_train: int = 6,
    num_test: int = 3,
    num_snippets: int = 5,
    snippet_length: int = 2,
    height: int = 40,
    width: int = 48,
    shards: int = 2,
    modalities=("rgb", "flow"),
    seed: int = 0,
) -> str:
    """Writes a records folder (shards + manifest.json) of random-frame videos.

    Frames are random with a class-dependent mean, so labels are learnable; flow is random.
    Returns out_dir.
    """
    rng = np.random.default_rng(seed)
    os.makedirs(out_dir, exist_ok=True)
    sets = {}
    for subset, count in (("train", num_train), ("test", num_test)):
        per_shard = [[] for _ in range(shards)]
        for i in range(count):
            label = i % len(CLASSES)
            info = records.ClipInfo(
                video_id=f"{CLASSES[label]}/v_{subset}_{i:03d}.avi",
                label=label,
                label_text=CLASSES[label],
                num_frames=num_snippets * 4,
                fps=25.0,
                original_height=height * 2,
                original_width=width * 2,
                height=height,
                width=width,
                snippet_length=snippet_length,
                frame_indices=tuple(range(0, num_snippets * 4, 4)),
                flow_algorithm="dis" if "flow" in modalities else "",
            )

            def jpeg(channels, label=label):
                base = 40 + 80 * label
                shape = (height, width, channels) if channels == 3 else (height, width)
                pixels = rng.integers(base - 40, base + 40, shape).astype(np.uint8)
                return records.encode_jpeg(pixels)

            encoded = {}
            if "rgb" in modalities:
                encoded["rgb"] = [jpeg(3) for _ in range(num_snippets)]
            if "rgbdiff" in modalities:
                encoded["rgbdiff"] = [
                    [jpeg(3) for _ in range(snippet_length + 1)] for _ in range(num_snippets)
                ]
            if "flow" in modalities:
                for axis in ("flow_x", "flow_y"):
                    encoded[axis] = [
                        [jpeg(1) for _ in range(snippet_length)] for _ in range(num_snippets)
                    ]
            per_shard[i % shards].append(records.serialize_example(info, encoded))
        shard_info = []
        for s, examples in enumerate(per_shard):
            name = records.shard_filename(subset, s, shards)
            with tf.io.TFRecordWriter(os.path.join(out_dir, name)) as writer:
                for example in examples:
                    writer.write(example)
            shard_info.append({"file": name, "num_examples": len(examples)})
        sets[subset] = {"num_examples": count, "shards": shard_info, "complete": True}
    manifest = {
        "dataset": "synthetic",
        "split": 1,
        "classes": list(CLASSES),
        "modalities": list(modalities),
        "snippets": num_snippets,
        "snippet_length": snippet_length,
        "flow": {"algorithm": "dis", "bound": 20.0},
        "height": height,
        "width": width,
        "sets": sets,
        "failures": [],
        "warped_flow_fallbacks": 0,
        "flags": {},
    }
    with open(os.path.join(out_dir, records.MANIFEST_NAME), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1)
    return out_dir


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return write_records(
        str(tmp_path_factory.mktemp("records")), modalities=("rgb", "flow", "rgbdiff")
    )


@pytest.mark.parametrize("modality,channels", [("rgb", 3), ("flow", 4), ("rgbdiff", 6)])
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
        backbone="tiny",
    )
    clips, labels = next(iter(ds))
    assert clips.dtype == tf.float32 and labels.dtype == tf.int32
    assert clips.shape == (4, 3, 32, 32, channels)
    assert ds.element_spec[0].shape.as_list() == [4 if training else None, 3, 32, 32, channels]
    assert np.all((labels.numpy() >= 0) & (labels.numpy() < len(CLASSES)))
    # tiny preprocessing: rgb x/255 in [0, 1]; flow (x-128)/128 in [-1, 1); rgbdiff in [-1, 1]
    lo = 0.0 if modality == "rgb" else -1.0
    assert clips.numpy().min() >= lo - 1e-5 and clips.numpy().max() <= 1.0 + 1e-5


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
            backbone="tiny",
        )
        return [(c.numpy(), y.numpy()) for c, y in ds.take(3)]

    a = batches(records_dir, 7)
    b = batches(os.path.join(records_dir, "train-*.tfrecord"), 7)
    c = batches(records_dir, 8)
    for (ca, ya), (cb, yb) in zip(a, b, strict=True):
        np.testing.assert_array_equal(ca, cb)
        np.testing.assert_array_equal(ya, yb)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c, strict=True))


def test_validation_pass_is_one_epoch_of_centre_views(records_dir):
    ds = input_pipeline.make_dataset(
        records_dir, "test", "rgb", 3, 2, training=False, input_size=32, backbone="tiny"
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
            backbone="tiny",
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
    one = input_pipeline.preprocess_clip(clip, "rgb", "tiny", 32, training=False)
    batch = input_pipeline.preprocess_batch(tf.stack([clip, clip]), "rgb", "tiny", 32)
    assert one.shape == (3, 32, 32, 3) and batch.shape == (2, 3, 32, 32, 3)
    np.testing.assert_allclose(batch[1], one, atol=1e-6)
    expected = preprocess_input(
        tf.image.resize(tf.cast(clip, tf.float32), [36, 43])[:, 2:34, 6:38], "tiny", "rgb"
    )
    np.testing.assert_allclose(one, expected, atol=1e-5)
    with pytest.raises(ValueError, match="seed"):
        input_pipeline.preprocess_clip(clip, "rgb", "tiny", 32, training=True)


def test_unstored_modality_and_bad_path_fail_clearly(records_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="--records"):
        input_pipeline.make_dataset(str(tmp_path / "nothing*.tfrecord"), "train", "rgb", 3, 2, True)
    rgb_only = write_records(
        str(tmp_path / "rgb_only"), modalities=("rgb",), num_train=2, num_test=1
    )
    ds = input_pipeline.make_dataset(
        rgb_only, "train", "flow", 3, 2, True, 32, seed=0, backbone="tiny"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="flow"):
        next(iter(ds))
