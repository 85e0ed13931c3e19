"""manifest.json as one typed object: the schema round-trips, older files read, errors name
the file, and a folder's shard files come out in shard order."""

import json

import pytest

from tsn_keras.manifest import MANIFEST_NAME, VERSION, Manifest, Shard, Subset

OLD = {  # a version-1 manifest as the converter wrote it (no "version" key)
    "dataset": "ucf101",
    "split": 1,
    "classes": ["A", "B"],
    "modalities": ["rgb", "flow"],
    "snippets": 25,
    "snippet_length": 5,
    "flow": {"algorithm": "tvl1", "bound": 20},
    "height": 256,
    "width": 340,
    "short_side": None,
    "jpeg_quality": 90,
    "config": {"modalities": ["rgb", "flow"], "num_snippets": 25},
    "complete": True,
    "sets": {
        "train": {"num_examples": 5, "num_shards": 2, "complete": True, "shards": [
            {"files": {"rgb": "train-rgb-00000-of-00002.tfrecord",
                       "flow": "train-flow-00000-of-00002.tfrecord"}, "num_examples": 3},
            {"files": {"rgb": "train-rgb-00001-of-00002.tfrecord",
                       "flow": "train-flow-00001-of-00002.tfrecord"}, "num_examples": 2},
        ]},
    },
    "failures": [{"path": "v/x.avi", "reason": "empty file (0 bytes)", "subset": "train"}],
    "short_videos": [],
    "warped_flow_fallbacks": 0,
    "flags": {"workers": 2},
    "elapsed_seconds": 12.5,
}  # fmt: skip


def _folder(tmp_path, data, touch=True):
    (tmp_path / MANIFEST_NAME).write_text(json.dumps(data))
    if touch:
        for subset in data["sets"].values():
            for s in subset["shards"]:
                for name in s.get("files", {}).values() or [s.get("file")]:
                    (tmp_path / name).write_bytes(b"")
    return str(tmp_path)


def test_an_older_file_reads_and_writes_back_with_every_key(tmp_path):
    m = Manifest.read(_folder(tmp_path, OLD))
    assert m.classes == ("A", "B") and m.modalities == ("rgb", "flow")
    assert m.snippet_length == 5 and m.flow["algorithm"] == "tvl1"
    assert m.subset("train").num_examples == 5 and m.subset("train").counts == [3, 2]
    assert m.failures[0]["reason"] == "empty file (0 bytes)"
    assert m.extra == {"flags": {"workers": 2}, "elapsed_seconds": 12.5}
    out = tmp_path / "again"
    m.write(str(out))
    back = json.loads((out / MANIFEST_NAME).read_text())
    assert back == {**OLD, "version": VERSION, "not_found": []}  # the field it lacked
    assert not list(out.glob("*.incomplete"))
    assert Manifest.read(str(out)).to_dict() == back


def test_shard_files_per_modality_in_shard_order(tmp_path):
    folder = _folder(tmp_path, OLD)
    m = Manifest.read(folder)
    assert m.shard_files("train", "flow") == [
        f"{folder}/train-flow-00000-of-00002.tfrecord",
        f"{folder}/train-flow-00001-of-00002.tfrecord",
    ]
    with pytest.raises(ValueError, match="stores \\['rgb', 'flow'\\] in separate files"):
        m.shard_files("train")
    with pytest.raises(ValueError, match="not 'rgbdiff'"):
        m.shard_files("train", "rgbdiff")
    with pytest.raises(ValueError, match="no subset 'test'; it has \\['train'\\]"):
        m.shard_files("test", "rgb")
    with pytest.raises(ValueError, match="modality must be one of"):
        m.shard_files("train", "depth")
    with pytest.raises(ValueError, match="--modality=rgbdiff is not stored in"):
        m.check_modality("rgbdiff")
    m.check_modality("flow")


def test_the_older_combined_layout_serves_any_modality(tmp_path):
    data = dict(OLD, sets={"test": {"num_examples": 1, "shards": [
        {"file": "test-00000-of-00001.tfrecord", "num_examples": 1}]}})  # fmt: skip
    folder = _folder(tmp_path, data)
    m = Manifest.read(folder)
    assert m.shard_files("test", "flow") == [f"{folder}/test-00000-of-00001.tfrecord"]
    assert m.subset("test").num_shards == 1 and m.subset("test").complete


def test_an_incomplete_subset_or_absent_file_says_to_rerun(tmp_path):
    folder = _folder(tmp_path, OLD, touch=False)
    with pytest.raises(ValueError, match="incomplete \\(2 shard files absent.*rerun"):
        Manifest.read(folder).shard_files("train", "rgb")
    data = json.loads(json.dumps(OLD))
    data["sets"]["train"]["complete"] = False
    with pytest.raises(ValueError, match="incomplete \\(0 shard files absent"):
        Manifest.read(_folder(tmp_path, data)).shard_files("train", "rgb")


def test_missing_damaged_and_newer_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/{MANIFEST_NAME} not found"):
        Manifest.read(str(tmp_path))
    (tmp_path / MANIFEST_NAME).write_text('{"classes": [')
    with pytest.raises(ValueError, match=f"{MANIFEST_NAME} is not valid JSON"):
        Manifest.read(str(tmp_path))
    _folder(tmp_path, dict(OLD, version=VERSION + 1))
    with pytest.raises(ValueError, match=f"manifest version {VERSION + 1}.*upgrade"):
        Manifest.read(str(tmp_path))


def test_a_built_manifest_counts_its_shards():
    sub = Subset((Shard({"rgb": "a"}, 4), Shard({"rgb": "b"}, 0)), num_shards=2)
    m = Manifest(classes=("x",), modalities=("rgb",), sets={"train": sub})
    d = m.to_dict()
    assert d["sets"]["train"] == {
        "num_examples": 4, "num_shards": 2, "complete": True,
        "shards": [{"files": {"rgb": "a"}, "num_examples": 4},
                   {"files": {"rgb": "b"}, "num_examples": 0}],
    }  # fmt: skip
    assert d["version"] == VERSION and Manifest.from_dict(d).to_dict() == d
