"""Record schema: writer bytes == tf.train.SequenceExample; parse + decode eager / tf.data."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tsn_keras import modalities, records
from tsn_keras.manifest import Manifest

H, W, N, L = 24, 32, 4, 3


def _frames(seed):
    rng = np.random.default_rng(seed)
    # Smooth content so JPEG error stays small: a gradient plus a low-frequency blob.
    yy, xx = np.mgrid[0:H, 0:W]
    base = np.stack([xx * 7, yy * 9, (xx + yy) * 4], axis=-1).astype(np.float32)
    return np.clip(base + rng.integers(0, 40), 0, 255).astype(np.uint8)  # [H, W, 3]


def _gray(value):
    yy, xx = np.mgrid[0:H, 0:W]
    return np.clip(value + xx * 2 + yy, 0, 255).astype(np.uint8)  # [H, W]


def _make(modalities=("rgb", "flow", "rgbdiff", "warped_flow")):
    info = records.ClipInfo(
        video_id="Class A/v_1.avi",
        label=7,
        label_text="Class A",
        num_frames=11,
        fps=25.0,
        original_height=48,
        original_width=64,
        height=H,
        width=W,
        snippet_length=L,
        frame_indices=(0, 3, 5, 8),
        flow_algorithm="dis",
        flow_bound=20.0,
        jpeg_quality=95,
    )
    pixels = {
        "rgb": [_frames(i) for i in range(N)],
        "rgbdiff": [[_frames(10 * i + j) for j in range(L + 1)] for i in range(N)],
        "flow_x": [[_gray(10 * i + j) for j in range(L)] for i in range(N)],
        "flow_y": [[_gray(100 + 10 * i + j) for j in range(L)] for i in range(N)],
        "warped_flow_x": [[_gray(50 + 10 * i + j) for j in range(L)] for i in range(N)],
        "warped_flow_y": [[_gray(150 + 10 * i + j) for j in range(L)] for i in range(N)],
    }
    per_modality = {
        "rgb": ["rgb"],
        "rgbdiff": ["rgbdiff"],
        "flow": ["flow_x", "flow_y"],
        "warped_flow": ["warped_flow_x", "warped_flow_y"],
    }
    names = [n for m in modalities for n in per_modality[m]]
    encoded = {}
    for name in names:
        if name == "rgb":
            encoded[name] = [records.encode_jpeg(p, 95) for p in pixels[name]]
        else:
            encoded[name] = [[records.encode_jpeg(p, 95) for p in s] for s in pixels[name]]
    return info, pixels, records.serialize_example(info, encoded), encoded


def _reference_proto(info, encoded):
    """The same example built with TensorFlow's own protos (the wire-format oracle)."""

    def b(values):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))

    def i(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))

    def f(values):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))

    context = {
        "clip/media_id": b([info.video_id.encode()]),
        "clip/label/index": i([info.label]),
        "clip/label/string": b([info.label_text.encode()]),
        "clip/frames": i([info.num_frames]),
        "clip/frame_rate": f([info.fps]),
        "clip/original/height": i([info.original_height]),
        "clip/original/width": i([info.original_width]),
        "image/height": i([info.height]),
        "image/width": i([info.width]),
        "image/jpeg_quality": i([info.jpeg_quality]),
        "snippet/length": i([info.snippet_length]),
        "snippet/start_index": i(list(info.frame_indices)),
        "flow/algorithm": b([info.flow_algorithm.encode()]),
        "flow/bound": f([info.flow_bound]),
    }
    keys = {
        "rgb": "image/encoded",
        "rgbdiff": "rgbdiff/image/encoded",
        "flow_x": "flow/x/encoded",
        "flow_y": "flow/y/encoded",
        "warped_flow_x": "warped_flow/x/encoded",
        "warped_flow_y": "warped_flow/y/encoded",
    }
    lists = {}
    for name, snippets in encoded.items():
        feats = [b([s]) if name == "rgb" else b(list(s)) for s in snippets]
        lists[keys[name]] = tf.train.FeatureList(feature=feats)
    return tf.train.SequenceExample(
        context=tf.train.Features(feature=context),
        feature_lists=tf.train.FeatureLists(feature_list=lists),
    )


def test_writer_bytes_match_tensorflow_proto():
    info, _, serialized, encoded = _make()
    assert tf.train.SequenceExample.FromString(serialized) == _reference_proto(info, encoded)


def test_negative_and_large_ints_encode():
    info = records.ClipInfo("v", -1, "", 2**40, 0.0, 1, 1, 1, 1, 1, (0, 2**33))
    parsed = tf.train.SequenceExample.FromString(records.serialize_example(info, {}))
    assert parsed.context.feature["clip/label/index"].int64_list.value == [-1]
    assert list(parsed.context.feature["snippet/start_index"].int64_list.value) == [0, 2**33]


def _check_parsed(parsed):
    assert parsed["video_id"].numpy() == b"Class A/v_1.avi"
    assert parsed["label"].dtype == tf.int64 and int(parsed["label"]) == 7
    assert parsed["num_snippets"].dtype == tf.int32 and int(parsed["num_snippets"]) == N
    np.testing.assert_array_equal(parsed["frame_indices"], [0, 3, 5, 8])
    assert parsed["frame_indices"].dtype == tf.int64
    assert int(parsed["num_frames"]) == 11
    assert parsed["fps"].dtype == tf.float32 and float(parsed["fps"]) == 25.0
    assert (int(parsed["height"]), int(parsed["width"])) == (H, W)
    assert parsed["flow_bound"].dtype == tf.float32 and float(parsed["flow_bound"]) == 20.0
    assert parsed["flow_algorithm"].numpy() == b"dis"
    assert parsed["rgb"].shape == (N,) and parsed["rgb"].dtype == tf.string
    assert parsed["rgbdiff"].shape == (N, L + 1)
    for name in ("flow_x", "flow_y", "warped_flow_x", "warped_flow_y"):
        assert parsed[name].shape == (N, L)


def test_parse_eager_and_in_dataset_map():
    _, _, serialized, _ = _make()
    mods = ["rgb", "flow", "rgbdiff", "warped_flow"]
    _check_parsed(records.parse_example(tf.constant(serialized), mods))
    ds = tf.data.Dataset.from_tensors(serialized).map(lambda s: records.parse_example(s, mods))
    _check_parsed(next(iter(ds)))


def _expected(pixels, modality, idx):
    if modality == "rgb":
        return np.stack([pixels["rgb"][i] for i in idx])  # [K, H, W, 3]
    if modality == "rgbdiff":
        return np.stack([np.concatenate(pixels["rgbdiff"][i], axis=-1) for i in idx])
    out = []
    for i in idx:
        chans = []
        for j in range(L):
            chans += [pixels[f"{modality}_x"][i][j], pixels[f"{modality}_y"][i][j]]
        out.append(np.stack(chans, axis=-1))  # [H, W, 2L], x1, y1, x2, y2, ...
    return np.stack(out)


@pytest.mark.parametrize(
    "modality,channels", [("rgb", 3), ("flow", 2 * L), ("warped_flow", 2 * L), ("rgbdiff", 12)]
)
@pytest.mark.parametrize("in_dataset", [False, True])
def test_decode_snippets_round_trip(modality, channels, in_dataset):
    _, pixels, serialized, _ = _make()
    idx = [3, 1]

    def fn(s):
        parsed = records.parse_example(s, [modality])
        return records.decode_snippets(parsed, modality, tf.constant(idx, tf.int32), L)

    if in_dataset:
        ds = tf.data.Dataset.from_tensors(serialized).map(fn)
        assert ds.element_spec.shape.as_list() == [2, None, None, channels]
        out = next(iter(ds))
    else:
        out = fn(tf.constant(serialized))
    assert out.dtype == tf.uint8 and out.shape == (2, H, W, channels)
    err = np.abs(out.numpy().astype(int) - _expected(pixels, modality, idx).astype(int))
    assert err.mean() < 2.0 and err.max() <= 12, (err.mean(), err.max())


def test_decode_without_static_length_and_rgb_static_channels():
    _, _, serialized, _ = _make(("rgb", "flow"))
    ds = tf.data.Dataset.from_tensors(serialized).map(
        lambda s: records.decode_snippets(records.parse_example(s, ["flow"]), "flow", [0])
    )
    assert ds.element_spec.shape.as_list() == [1, None, None, None]
    assert next(iter(ds)).shape == (1, H, W, 2 * L)
    ds = tf.data.Dataset.from_tensors(serialized).map(
        lambda s: records.decode_snippets(records.parse_example(s, ["rgb"]), "rgb", [0])
    )
    assert ds.element_spec.shape.as_list() == [1, None, None, 3]


def test_missing_modality_is_a_clear_error():
    _, _, serialized, _ = _make(("rgb",))
    with pytest.raises(tf.errors.InvalidArgumentError, match="--modalities"):
        records.parse_example(tf.constant(serialized), ["flow"])


@pytest.mark.parametrize(
    "encoded,match",
    [
        ({"rgb": [b"x"]}, "snippets"),
        ({"flow_x": [[b"x"] * L] * N}, "together"),
        ({"depth": []}, "unknown"),
        ({"rgbdiff": [[b"x"] * L] * N}, "JPEGs each"),
    ],
)
def test_writer_validates(encoded, match):
    info, _, _, _ = _make()
    with pytest.raises(ValueError, match=match):
        records.serialize_example(info, encoded)


def test_check_modalities():
    assert records.check_modalities("rgb,flow,rgb") == ("rgb", "flow")
    with pytest.raises(ValueError, match="Received"):
        records.check_modalities(["rgb", "optical"])


def _write_folder(path, shards, modalities=("rgb", "flow"), complete=True):
    """A records folder: manifest.json with these shard entries, and empty shard files."""
    for s in shards:
        for name in s["files"].values() if "files" in s else [s["file"]]:
            (path / name).write_bytes(b"")
    manifest = {
        "modalities": list(modalities),
        "sets": {"train": {"num_examples": 2, "complete": complete, "shards": shards}},
    }
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_shard_filename():
    assert records.shard_filename("train", 0, 4, "rgb") == "train-rgb-00000-of-00004.tfrecord"
    assert records.shard_filename("test", 12, 100, "warped_flow") == (
        "test-warped_flow-00012-of-00100.tfrecord"
    )
    assert records.shard_filename("train", 3, 4) == "train-00003-of-00004.tfrecord"


def _shard_files(folder, subset, modality=None):
    return Manifest.read(str(folder)).shard_files(subset, modality)


def test_shard_files_per_modality(tmp_path):
    files = [
        {m: records.shard_filename("train", i, 2, m) for m in ("rgb", "flow")} for i in range(2)
    ]
    _write_folder(tmp_path, [{"files": f, "num_examples": 1} for f in files])
    for m in ("rgb", "flow"):
        assert _shard_files(tmp_path, "train", m) == [str(tmp_path / f[m]) for f in files]
    with pytest.raises(ValueError, match=r"stores \['rgb', 'flow'\], not 'rgbdiff'.*--modalities"):
        _shard_files(tmp_path, "train", "rgbdiff")
    with pytest.raises(ValueError, match="pass the modality"):  # two stored: which one?
        _shard_files(tmp_path, "train")
    with pytest.raises(ValueError, match="modality must be one of"):
        _shard_files(tmp_path, "train", "depth")
    (tmp_path / files[1]["flow"]).unlink()  # one modality's file absent: only it is incomplete
    assert len(_shard_files(tmp_path, "train", "rgb")) == 2
    with pytest.raises(ValueError, match="incomplete.*same flags"):
        _shard_files(tmp_path, "train", "flow")


def test_shard_files_of_one_modality_need_no_modality(tmp_path):
    files = [records.shard_filename("train", i, 2, "flow") for i in range(2)]
    _write_folder(tmp_path, [{"files": {"flow": f}, "num_examples": 1} for f in files], ["flow"])
    expected = [str(tmp_path / f) for f in files]
    assert _shard_files(tmp_path, "train") == expected
    assert _shard_files(tmp_path, "train", "flow") == expected
    with pytest.raises(ValueError, match=r"stores \['flow'\], not 'rgb'"):
        _shard_files(tmp_path, "train", "rgb")


def test_shard_files_of_the_older_combined_layout(tmp_path):
    """One file per shard holding every modality: the same files for any modality, or None."""
    names = [records.shard_filename("train", i, 2) for i in range(2)]
    _write_folder(tmp_path, [{"file": n, "num_examples": 1} for n in names])
    expected = [str(tmp_path / n) for n in names]
    assert _shard_files(tmp_path, "train") == expected
    for m in modalities.MODALITIES:  # what a file lacks, parse_example reports
        assert _shard_files(tmp_path, "train", m) == expected


def test_shard_files_of_an_unfinished_conversion(tmp_path):
    files = {m: records.shard_filename("train", 1, 2, m) for m in ("rgb", "flow")}
    _write_folder(tmp_path, [{"files": files, "num_examples": 1}], complete=False)
    with pytest.raises(ValueError, match="incomplete"):
        _shard_files(tmp_path, "train", "rgb")
    _write_folder(tmp_path, [], complete=False)  # no shard finished yet
    with pytest.raises(ValueError, match="incomplete"):
        _shard_files(tmp_path, "train", "rgb")


def test_manifest_and_shard_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_tfrecords"):
        Manifest.read(str(tmp_path))
    names = [records.shard_filename("train", i, 2) for i in range(2)]
    assert names == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    manifest = {
        "sets": {
            "train": {
                "num_examples": 3,
                "complete": True,
                "shards": [{"file": n, "num_examples": 1 + i} for i, n in enumerate(names)],
            }
        }
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert _shard_files(tmp_path, "train") == [str(tmp_path / n) for n in names]
    with pytest.raises(ValueError, match="--subsets test"):
        _shard_files(tmp_path, "test")
    (tmp_path / names[1]).unlink()
    with pytest.raises(ValueError, match="incomplete"):
        _shard_files(tmp_path, "train")
