"""Conversion on Apache Beam: the DirectRunner writes the local converter's files, byte for byte."""

import dataclasses
import os
import shutil
import subprocess
import sys

import pytest
import tensorflow as tf

from tsn_keras import convert, splits, synthetic
from tsn_keras.convert import shards as shard_lib
from tsn_keras.convert import snippets as snippet_lib

pytest.importorskip("apache_beam", reason="the beam extra: pip install '.[beam]'")
from tsn_keras import beam  # noqa: E402  (after the skip)
from tsn_keras.manifest import Manifest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = convert.ConvertConfig(
    modalities=("rgb", "flow"),
    flow_algorithm="dis",
    num_snippets=3,
    snippet_length=2,
    width=32,
    height=24,
)
SHARDS = 2
MULTI_PROCESSING = ["--direct_running_mode", "multi_processing", "--direct_num_workers", "2"]


def _files(folder: str) -> dict[str, bytes]:
    """Every file of an output folder (sidecars included, Beam's plan file left out) -> bytes."""
    gfile = tf.io.gfile
    out = {}
    for sub in ("", convert.PROGRESS_DIR):
        base = f"{folder}/{sub}" if sub else folder
        for name in gfile.listdir(base):
            path = f"{base.rstrip('/')}/{name}"
            if gfile.isdir(path) or name.startswith("beam-plan-"):
                continue
            with gfile.GFile(path, "rb") as f:
                out[f"{sub}/{name}" if sub else name] = f.read()
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """6 synthetic videos (64x48, ~15 frames) + a broken one, and the local converter's output."""
    root = str(tmp_path_factory.mktemp("videos"))
    summary = synthetic.write_dataset(
        root, classes=2, clips_per_class=3, width=64, height=48, seconds=0.6
    )
    split = splits.load_split("ucf101", root, split=1)
    broken = os.path.join(root, summary["classes"][0], "broken.avi")
    with open(broken, "w") as f:
        f.write("not a video")
    subsets = {
        "train": convert.jobs_from_pairs([*split.train, (broken, 0)], split.classes, root),
        "test": convert.jobs_from_pairs(split.test, split.classes, root),
    }
    local = str(tmp_path_factory.mktemp("local"))
    report = convert.convert(subsets, local, CONFIG, split.classes, SHARDS, 1, progress=False)
    assert report.failed == 1 and report.videos == 7
    return {
        "root": root,
        "broken": broken,
        "subsets": subsets,
        "classes": split.classes,
        "local": local,
        "files": _files(local),
        "frames": report.frames,
    }


def _beam(data, out, **kwargs):
    return beam.convert(data["subsets"], str(out), CONFIG, data["classes"], SHARDS, **kwargs)


@pytest.mark.parametrize(
    "pipeline_args",
    # each worker process imports TensorFlow: 11-26 s on 2 shared cores
    [[], pytest.param(MULTI_PROCESSING, marks=pytest.mark.slow)],
    ids=["in_process", "2_procs"],
)
def test_direct_runner_writes_the_local_converters_files(data, tmp_path, pipeline_args):
    report = _beam(data, tmp_path / "out", pipeline_args=pipeline_args)
    got = _files(str(tmp_path / "out"))
    assert sorted(got) == sorted(data["files"])  # 8 shard files, 4 sidecars, manifest, failures
    for name, content in data["files"].items():
        assert got[name] == content, name
    assert got["failures.txt"].decode().startswith(data["broken"] + "\tnot a video")
    assert (report.videos, report.failed, report.frames) == (7, 1, data["frames"])
    assert report.skipped_shards == [] and report.manifest["complete"]
    assert report.manifest == Manifest.read(str(tmp_path / "out")).to_dict()


def test_a_retried_bundle_writes_the_same_files(data, tmp_path, monkeypatch):
    """Every bundle run twice (Beam's replay option), as when a runner retries one."""
    written, write_shards = [], convert.write_shards

    def counted(out_dir, pending, *args):
        written.extend(s.name for s in pending)
        return write_shards(out_dir, pending, *args)

    monkeypatch.setattr(shard_lib, "write_shards", counted)
    report = _beam(data, tmp_path / "out", pipeline_args=["--direct_runner_bundle_repeat=1"])
    names = [s.name for s in convert.plan_shards(data["subsets"], CONFIG, SHARDS)]
    assert sorted(written) == sorted(names * 2)  # each shard's files written twice
    assert _files(str(tmp_path / "out")) == data["files"]
    assert report.videos == 7  # committed counters count each video once


def test_rerun_does_no_work_and_a_half_finished_output_is_completed(data, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(data["local"], out)  # Beam resumes the local converter's output too
    again = _beam(data, out)
    assert again.videos == 0 and len(again.skipped_shards) == 2 * SHARDS
    assert not [n for n in os.listdir(out / ".progress") if n.startswith("beam-plan-")]  # no job
    assert _files(str(out)) == data["files"]
    # a half-finished run: train shard 1 never renamed; test shard 0 lost its rgb file
    for name in ("train-rgb-00001", "train-flow-00001", "test-rgb-00000"):
        os.remove(out / f"{name}-of-00002.tfrecord")
    (out / "train-flow-00001-of-00002.tfrecord.incomplete").write_bytes(b"half a shard")
    redo = _beam(data, out)
    assert redo.skipped_shards == ["train-00000-of-00002.tfrecord", "test-00001-of-00002.tfrecord"]
    planned = convert.plan_shards(data["subsets"], CONFIG, SHARDS)
    assert redo.videos == len(planned[1].jobs) + len(planned[2].jobs)
    assert _files(str(out)) == data["files"]
    assert not list(out.glob("*.incomplete"))


def test_remote_videos_and_output_go_through_gfile(data, tmp_path):
    """ram:// stands for gs://: videos copied from it, shards written to it, resume read from it."""
    videos, out = f"ram://{tmp_path.name}/videos", f"ram://{tmp_path.name}/out"
    for job in [j for jobs in data["subsets"].values() for j in jobs]:
        tf.io.gfile.makedirs(os.path.dirname(f"{videos}/{job.video_id}"))
        tf.io.gfile.copy(job.path, f"{videos}/{job.video_id}")
    report = _beam(data, out, worker_video_root=videos)
    got = _files(out)
    assert sorted(got) == sorted(data["files"])
    for name, content in data["files"].items():
        if name.endswith(".tfrecord"):
            assert got[name] == content, name
        else:  # the failure's path is where the worker read the video
            local = content.decode().replace(data["root"], videos)
            assert got[name].decode() == local, name
    assert report.failed == 1 and report.manifest["failures"][0]["path"].startswith(videos)
    tf.io.gfile.remove(f"{out}/test-flow-00001-of-00002.tfrecord")
    again = _beam(data, out, worker_video_root=videos)
    assert again.skipped_shards == [
        "train-00000-of-00002.tfrecord",
        "train-00001-of-00002.tfrecord",
        "test-00000-of-00002.tfrecord",
    ]
    assert _files(out) == got


def test_a_video_never_raises(data, monkeypatch):
    job = data["subsets"]["test"][0]
    gone = beam.convert_video(dataclasses.replace(job, path="ram://nowhere/v.avi"), CONFIG)
    assert gone.examples is None and gone.reason.startswith("missing")

    def boom(*args):
        raise MemoryError("cannot allocate")

    monkeypatch.setattr(snippet_lib, "convert_video", boom)
    result = beam.convert_video(job, CONFIG)
    assert result.examples is None and result.reason == "MemoryError: cannot allocate"
    assert result.job == job


def test_bad_arguments_name_the_flag(data, tmp_path):
    with pytest.raises(ValueError, match="--runner must be one of .* Received: 'Direct'"):
        _beam(data, tmp_path, runner="Direct")
    with pytest.raises(ValueError, match="--runner only"):
        _beam(data, tmp_path, pipeline_args=["--runner=FlinkRunner"])
    with pytest.raises(ValueError, match="subsets must be among"):
        beam.convert({"val": []}, str(tmp_path), CONFIG, ["a"])
    with pytest.raises(ValueError, match="other settings"):  # the local rule: refuse, name --out
        shutil.copytree(data["local"], tmp_path / "out")
        beam.convert(
            data["subsets"],
            str(tmp_path / "out"),
            dataclasses.replace(CONFIG, num_snippets=2),
            data["classes"],
            SHARDS,
        )


def _script(data, out, *extra):
    cmd = [
        sys.executable,
        os.path.join(REPO, "scripts", "make_tfrecords.py"),
        "--dataset=ucf101",
        f"--video_root={data['root']}",
        f"--out={out}",
        "--modalities=rgb,flow",
        "--flow=dis",
        "--snippets=3",
        "--snippet_length=2",
        "--width=32",
        "--height=24",
        f"--num_shards={SHARDS}",
        "--workers=1",
        "--noprogress",
        *extra,
    ]
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.mark.slow
def test_command_line_runner_flag_and_beam_options(data, tmp_path):
    local = _script(data, tmp_path / "local")
    assert local.returncode == 0, local.stderr[-2000:]
    run = _script(data, tmp_path / "beam", "--runner=DirectRunner", "--", "--direct_num_workers=1")
    assert run.returncode == 0, run.stderr[-2000:]
    assert [n for n in os.listdir(tmp_path / "beam" / ".progress") if n.startswith("beam-plan-")]
    shards = {n: c for n, c in _files(str(tmp_path / "local")).items() if n.endswith(".tfrecord")}
    assert len(shards) == 4 * SHARDS
    assert {n: _files(str(tmp_path / "beam"))[n] for n in shards} == shards
    # Beam's options reach Beam (which rejects this one); hand-made slices do not mix with it
    bogus = _script(data, tmp_path / "x", "--runner=DirectRunner", "--", "--direct_running_mode=no")
    assert bogus.returncode != 0 and "direct_running_mode" in bogus.stderr
    sliced = _script(data, tmp_path / "x", "--runner=DirectRunner", "--shard_index=1")
    assert sliced.returncode != 0 and "--shard_index" in sliced.stderr
