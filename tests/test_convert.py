"""Converter: examples of short videos, flow through the records, failures, resume, workers, CLI."""

import dataclasses
import errno
import glob
import json
import os
import signal
import subprocess
import sys
import time
import tracemalloc

import cv2
import numpy as np
import pytest
import tensorflow as tf
from helpers import cut_file, write_index_first_mp4

from tsn_keras import convert, flow, records, sampling, splits, video
from tsn_keras.manifest import Manifest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = convert.ConvertConfig(
    modalities=("rgb", "flow", "rgbdiff", "warped_flow"),
    flow_algorithm="dis",
    num_snippets=4,
    snippet_length=5,
    width=32,
    height=24,
    jpeg_quality=95,
)


def _texture(height, width, seed):
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.uniform(0, 255, (height, width, 3)).astype(np.float32), (0, 0), 2)
    return ((noise - noise.min()) / (noise.max() - noise.min()) * 255).astype(np.uint8)


def write_pan(path, num_frames, dx=2, height=48, width=64, seed=0):
    """A textured scene whose content moves right by dx px per frame."""
    base = _texture(height, width, seed)
    video.write_video(str(path), [np.roll(base, dx * t, axis=1) for t in range(num_frames)])
    return str(path)


def _job(path, label=0):
    return convert.VideoJob(str(path), os.path.basename(str(path)), label, f"class{label}")


def _parse(result, modalities=SMALL.modalities):
    """The parsed examples of a VideoResult's modalities merged into one dict."""
    parsed = {}
    for m in modalities:
        parsed.update(records.parse_example(tf.constant(result.examples[m]), [m]))
    return parsed


@pytest.mark.parametrize(
    "num_frames,num_snippets", [(1, 4), (3, 4), (7, 4), (12, 4), (3, 0), (12, 25)]
)
def test_short_videos_give_valid_examples(tmp_path, num_frames, num_snippets):
    """Fewer frames than N and than L: indices clamp, every modality has N full snippets."""
    path = write_pan(tmp_path / "v.avi", num_frames)
    config = dataclasses.replace(SMALL, num_snippets=num_snippets)
    result = convert.convert_video(_job(path, 3), config)
    assert result.reason is None and result.num_frames == num_frames
    parsed = _parse(result)
    n = num_snippets or num_frames
    expected = sampling.snippet_frame_indices(num_frames, num_snippets, 5)[:, 0]
    np.testing.assert_array_equal(parsed["frame_indices"], expected)
    assert int(parsed["num_snippets"]) == n and int(parsed["num_frames"]) == num_frames
    assert int(parsed["label"]) == 3 and parsed["label_text"].numpy() == b"class3"
    assert (int(parsed["original_height"]), int(parsed["original_width"])) == (48, 64)
    idx = tf.range(n, dtype=tf.int32)
    for modality, channels in [("rgb", 3), ("rgbdiff", 18), ("flow", 10), ("warped_flow", 10)]:
        out = records.decode_snippets(parsed, modality, idx, 5)
        assert out.shape == (n, 24, 32, channels) and out.dtype == tf.uint8
    # rgbdiff of the last snippet: frames start..start+5 clamped to the last frame
    _, frames = video.sample_frames(path, lambda f: range(f), video.Resize(32, 24))
    stack = records.decode_snippets(parsed, "rgbdiff", [n - 1]).numpy()[0]  # [H, W, 18]
    start = int(expected[-1])
    for k in range(6):  # the right frame is the closest one, within JPEG error of 32x24 texture
        err = [
            np.abs(stack[..., 3 * k : 3 * k + 3].astype(int) - f).mean() for f in frames.values()
        ]
        want = min(start + k, num_frames - 1)
        assert err[want] < 10 and err[want] == min(err), (k, err)


def test_flow_sign_survives_the_records(tmp_path):
    path = write_pan(tmp_path / "pan.avi", 10, dx=2)
    config = dataclasses.replace(SMALL, modalities=("flow",), width=64, height=48)
    parsed = _parse(convert.convert_video(_job(path), config), ["flow"])
    stack = records.decode_snippets(parsed, "flow", [1], 5).numpy()[0]  # [H, W, 10]
    for k in range(5):  # x1, y1, x2, y2, ... interleaved
        f = flow.decode_flow(stack[..., 2 * k], stack[..., 2 * k + 1], 20.0)[8:-8, 8:-8]
        assert np.median(f[..., 0]) == pytest.approx(2.0, abs=0.5)
        assert np.median(f[..., 1]) == pytest.approx(0.0, abs=0.5)


def test_warped_flow_fallbacks_are_counted(tmp_path):
    path = write_pan(tmp_path / "tiny.avi", 8)  # 32x24: too small for ORB -> plain flow
    result = convert.convert_video(_job(path), SMALL)
    fields = sampling.snippet_frame_indices(8, 4, 5)[:, 0:1] + np.arange(5)
    assert result.warped_fallbacks == len(np.unique(np.minimum(fields, 6)))
    parsed = _parse(result)
    np.testing.assert_array_equal(parsed["warped_flow_x"], parsed["flow_x"])


@pytest.mark.slow
def test_converter_memory_is_flat_in_video_length(tmp_path):
    """Peak traced memory of convert_video: 60 vs 400 frames (64x48 source, stored 340x256)."""
    config = dataclasses.replace(SMALL, modalities=("rgb", "flow"), width=340, height=256)
    config = dataclasses.replace(config, num_snippets=3)
    engines = convert.Engines(config)
    peaks = []
    for frames in (60, 400):
        path = write_pan(tmp_path / f"v{frames}.avi", frames, dx=1)
        convert.convert_video(_job(path), config, engines)  # warm-up (lazy allocations)
        tracemalloc.start()
        result = convert.convert_video(_job(path), config, engines)
        peaks.append(tracemalloc.get_traced_memory()[1] / 2**20)
        tracemalloc.stop()
        assert result.num_frames == frames
    one_frame = 340 * 256 * 3 / 2**20
    assert peaks[1] < peaks[0] * 1.25 + 0.5, peaks  # flat, not x6.7
    assert peaks[1] < 12 * one_frame, peaks  # a few frames at a time, never the video


def _dataset(root, good=6, broken=True):
    """root/<class>/*.avi with `good` videos per class (+ broken files in class A)."""
    paths = {"A": [], "B": []}
    for label, name in enumerate(paths):
        os.makedirs(root / name, exist_ok=True)
        for i in range(good):
            p = write_pan(root / name / f"v{i}.avi", 6 + i, dx=1 + label, seed=10 * label + i)
            paths[name].append(p)
    if broken:
        (root / "A" / "empty.avi").write_bytes(b"")
        (root / "A" / "text.avi").write_text("a text file renamed .avi\n" * 20)
        (root / "A" / "corrupt.avi").write_bytes(b"RIFF" + os.urandom(5000))
        paths["A"] += [str(root / "A" / n) for n in ("empty.avi", "text.avi", "corrupt.avi")]
        paths["A"].append(str(root / "A" / "missing.avi"))
    return paths


def _jobs(root, paths):
    pairs = [(p, label) for label, name in enumerate(paths) for p in paths[name]]
    return convert.jobs_from_pairs(pairs, list(paths), str(root))


def read_examples(out_dir, subset, modality="rgb"):
    """(video_id, label) of every example of a subset's files of one modality, in shard order."""
    files = Manifest.read(str(out_dir)).shard_files(subset, modality)
    ds = tf.data.TFRecordDataset(files).map(lambda s: records.parse_example(s, [modality]))
    return [(e["video_id"].numpy().decode(), int(e["label"])) for e in ds]


def _shard_bytes(out_dir):
    return {
        os.path.basename(f): open(f, "rb").read()
        for f in sorted(glob.glob(os.path.join(str(out_dir), "*.tfrecord")))
    }


def test_broken_videos_are_skipped_and_listed(tmp_path):
    paths = _dataset(tmp_path / "videos")
    jobs = _jobs(tmp_path / "videos", paths)
    out = tmp_path / "out"
    report = convert.convert(
        {"train": jobs[:9], "test": jobs[9:]}, str(out), SMALL, ["A", "B"], 2, 1, progress=False
    )
    assert report.failed == 4 and report.videos == len(jobs)
    reasons = {os.path.basename(f["path"]): f["reason"] for f in report.manifest["failures"]}
    assert set(reasons) == {"empty.avi", "text.avi", "corrupt.avi", "missing.avi"}
    assert "empty" in reasons["empty.avi"] and "missing" in reasons["missing.avi"]
    assert "not a video" in reasons["text.avi"]
    lines = (out / "failures.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in lines) == sorted(
        f["path"] for f in report.manifest["failures"]
    )
    got = read_examples(out, "train") + read_examples(out, "test")
    good = {j.video_id for j in jobs} - {f"A/{n}" for n in reasons}
    assert sorted(v for v, _ in got) == sorted(good)
    for m in SMALL.modalities[1:]:  # every modality's files hold the same videos, same order
        assert read_examples(out, "train", m) + read_examples(out, "test", m) == got
    manifest = Manifest.read(str(out)).to_dict()
    assert manifest["classes"] == ["A", "B"] and manifest["snippets"] == 4
    assert manifest["sets"]["train"]["num_examples"] + manifest["sets"]["test"][
        "num_examples"
    ] == len(good)
    assert manifest["warped_flow_fallbacks"] > 0  # 32x24 frames: ORB finds too little


def _rgb_flow_run(tmp_path, good: int, shards: int):
    """Converts `good` videos to rgb + flow in `shards` shards: (jobs, out, config, report)."""
    paths = _dataset(tmp_path / "videos", good=good, broken=False)
    jobs = {"train": _jobs(tmp_path / "videos", paths)}
    out = tmp_path / "out"
    config = dataclasses.replace(SMALL, modalities=("rgb", "flow"))
    report = convert.convert(jobs, str(out), config, ["A", "B"], shards, 1, progress=False)
    return jobs, out, config, report


def test_resume_redoes_only_unfinished_shards(tmp_path):
    jobs, out, config, first = _rgb_flow_run(tmp_path, good=4, shards=3)
    assert first.skipped_shards == []
    before = _shard_bytes(out)
    # an interrupted run: shard 1 never renamed, a stale temp file left behind
    for m in ("rgb", "flow"):
        os.remove(out / f"train-{m}-00001-of-00003.tfrecord")
    (out / "train-flow-00001-of-00003.tfrecord.incomplete").write_bytes(b"half a shard")
    again = convert.convert(jobs, str(out), config, ["A", "B"], 3, 1, progress=False)
    assert again.skipped_shards == [
        "train-00000-of-00003.tfrecord",
        "train-00002-of-00003.tfrecord",
    ]
    assert again.videos == len(convert.assign_shards(jobs["train"], 3)[1])
    assert _shard_bytes(out) == before
    assert not glob.glob(str(out / "*.incomplete"))
    with pytest.raises(ValueError, match="--out"):
        convert.convert(
            jobs, str(out), dataclasses.replace(config, num_snippets=3), ["A", "B"], 3, 1
        )
    with pytest.raises(ValueError, match="--out"):  # other modalities: the rgb files exist
        convert.convert(
            jobs, str(out), dataclasses.replace(config, modalities=("rgb",)), ["A", "B"], 3, 1
        )


def _records(path):
    return [r.numpy() for r in tf.data.TFRecordDataset(str(path))]


def test_each_modality_has_its_own_files(tmp_path):
    """One example per video and modality: full context, that modality's feature lists only."""
    jobs, out, config, report = _rgb_flow_run(tmp_path, good=3, shards=2)
    assert sorted(_shard_bytes(out)) == [
        f"train-{m}-{i:05d}-of-00002.tfrecord" for m in ("flow", "rgb") for i in range(2)
    ]
    shards = report.manifest["sets"]["train"]["shards"]
    assert [s["files"] for s in shards] == [
        {m: f"train-{m}-{i:05d}-of-00002.tfrecord" for m in ("rgb", "flow")} for i in range(2)
    ]
    by_id = {j.video_id: j for j in jobs["train"]}
    seen = []
    for shard in shards:
        rgb = _records(out / shard["files"]["rgb"])
        flw = _records(out / shard["files"]["flow"])
        assert len(rgb) == len(flw) == shard["num_examples"]
        for rgb_bytes, flow_bytes in zip(rgb, flw, strict=True):
            rgb_ex = tf.train.SequenceExample.FromString(rgb_bytes)
            flow_ex = tf.train.SequenceExample.FromString(flow_bytes)
            assert set(rgb_ex.feature_lists.feature_list) == {"image/encoded"}
            assert set(flow_ex.feature_lists.feature_list) == {"flow/x/encoded", "flow/y/encoded"}
            assert rgb_ex.context == flow_ex.context  # same video, same order, same context
            video_id = rgb_ex.context.feature["clip/media_id"].bytes_list.value[0].decode()
            seen.append(video_id)
            # the files hold exactly convert_video's per-modality examples
            result = convert.convert_video(by_id[video_id], config)
            assert result.examples == {"rgb": rgb_bytes, "flow": flow_bytes}
            # each parses to the arrays the older combined example (every modality) gave
            combined = tf.train.SequenceExample.FromString(rgb_bytes)
            combined.feature_lists.MergeFrom(flow_ex.feature_lists)
            both = records.parse_example(tf.constant(combined.SerializeToString()), ["rgb", "flow"])
            one = {
                **records.parse_example(tf.constant(flow_bytes), ["flow"]),
                **records.parse_example(tf.constant(rgb_bytes), ["rgb"]),
            }
            assert set(one) == set(both)
            for key, value in both.items():
                np.testing.assert_array_equal(one[key].numpy(), value.numpy(), err_msg=key)
            with pytest.raises(tf.errors.InvalidArgumentError, match="--modalities"):
                records.parse_example(tf.constant(flow_bytes), ["rgb"])
    assert sorted(seen) == sorted(by_id)


def test_resume_redoes_a_shard_missing_one_modality_file(tmp_path):
    jobs, out, config, first = _rgb_flow_run(tmp_path, good=4, shards=3)
    before = _shard_bytes(out)
    os.remove(out / "train-rgb-00002-of-00003.tfrecord")  # its flow file and sidecar remain
    with pytest.raises(ValueError, match="incomplete"):
        Manifest.read(str(out)).shard_files("train", "rgb")
    again = convert.convert(jobs, str(out), config, ["A", "B"], 3, 1, progress=False)
    assert again.skipped_shards == [
        "train-00000-of-00003.tfrecord",
        "train-00001-of-00003.tfrecord",
    ]
    assert again.videos == len(convert.assign_shards(jobs["train"], 3)[2])
    assert _shard_bytes(out) == before
    assert again.manifest["sets"] == first.manifest["sets"]


def test_a_shard_of_the_older_layout_is_redone_per_modality(tmp_path):
    """A shard whose sidecar names one combined file (older layout) is converted again."""
    jobs, out, config, _ = _rgb_flow_run(tmp_path, good=2, shards=2)
    before = _shard_bytes(out)
    side_path = out / convert.PROGRESS_DIR / "train-00000-of-00002.tfrecord.json"
    side = json.loads(side_path.read_text())
    for name in side.pop("files").values():
        os.remove(out / name)
    side["file"] = "train-00000-of-00002.tfrecord"
    side_path.write_text(json.dumps(side))
    (out / "train-00000-of-00002.tfrecord").write_bytes(b"rgb and flow in one file")
    again = convert.convert(jobs, str(out), config, ["A", "B"], 2, 1, progress=False)
    assert again.skipped_shards == ["train-00001-of-00002.tfrecord"]
    assert _shard_bytes(out) == before  # the combined file is gone, the new ones are back
    assert "files" in json.loads(side_path.read_text())


def test_assign_shards_is_deterministic():
    jobs = [convert.VideoJob(f"/v/{i}.avi", f"c/{i}.avi", i % 3, "x") for i in range(23)]
    shards = convert.assign_shards(jobs, 4)
    assert shards == convert.assign_shards(list(reversed(jobs)), 4)
    assert sorted(j.video_id for s in shards for j in s) == sorted(j.video_id for j in jobs)
    assert [len(s) for s in shards] == [6, 6, 6, 5]
    with pytest.raises(ValueError, match="duplicate"):
        convert.assign_shards(jobs + jobs[:1], 2)


def test_slices_split_the_shards(tmp_path):
    paths = _dataset(tmp_path / "videos", good=2, broken=False)
    jobs = {"train": _jobs(tmp_path / "videos", paths)}
    config = dataclasses.replace(SMALL, modalities=("rgb",))
    out = tmp_path / "out"
    part = convert.convert(jobs, str(out), config, ["A", "B"], 2, 1, 1, 2, progress=False)
    assert not part.manifest["complete"]
    assert [s["files"] for s in part.manifest["sets"]["train"]["shards"]] == [
        {"rgb": "train-rgb-00001-of-00002.tfrecord"}
    ]
    done = convert.convert(jobs, str(out), config, ["A", "B"], 2, 1, 0, 2, progress=False)
    assert done.manifest["complete"] and done.manifest["sets"]["train"]["num_examples"] == 4


@pytest.mark.slow
def test_two_workers_write_the_same_shards(tmp_path):
    paths = _dataset(tmp_path / "videos", good=3)
    jobs = {"train": _jobs(tmp_path / "videos", paths)}
    one = convert.convert(jobs, str(tmp_path / "w1"), SMALL, ["A", "B"], 2, 1, progress=False)
    two = convert.convert(jobs, str(tmp_path / "w2"), SMALL, ["A", "B"], 2, 2, progress=False)
    assert _shard_bytes(tmp_path / "w1") == _shard_bytes(tmp_path / "w2")
    assert one.manifest["failures"] == two.manifest["failures"]


def _cli(videos, out, *extra):
    return [
        sys.executable,
        os.path.join(REPO, "scripts", "make_tfrecords.py"),
        "--dataset=folder",
        f"--video_root={videos}",
        f"--out={out}",
        "--modalities=rgb,flow",
        "--flow=dis",
        "--snippets=4",
        "--width=160",
        "--height=120",
        "--num_shards=4",
        "--workers=1",
        "--noprogress",
        *extra,
    ]


@pytest.mark.slow
def test_kill_mid_run_then_rerun_gives_the_same_examples(tmp_path):
    videos = tmp_path / "videos"
    _dataset(videos, good=8)
    full, killed = tmp_path / "full", tmp_path / "killed"
    # the uninterrupted reference, in-process, with the settings the command line gets
    split = splits.load_split("folder", str(videos))
    subsets = {
        "train": convert.jobs_from_pairs(split.train, split.classes, split.video_root),
        "test": convert.jobs_from_pairs(split.test, split.classes, split.video_root),
    }
    config = convert.ConvertConfig(("rgb", "flow"), "dis", num_snippets=4, width=160, height=120)
    ref = convert.convert(subsets, str(full), config, split.classes, 4, 1, progress=False)
    assert len(ref.manifest["failures"]) == 3  # empty, text, corrupt (a folder scan: no missing)

    proc = subprocess.Popen(
        _cli(videos, killed),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        # a shard's flow file is renamed after its rgb file: it marks a finished shard
        while not glob.glob(str(killed / "*-flow-*.tfrecord")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the converter exited before finishing a shard"
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)  # the first shard is complete
    finally:
        proc.wait(timeout=60)
    finished = glob.glob(str(killed / "*-flow-*.tfrecord"))
    assert 1 <= len(finished) < 8, "the run finished before the kill: make the videos longer"
    assert not (killed / "manifest.json").exists()

    rerun = subprocess.run(_cli(videos, killed), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 1, rerun.stderr[-2000:]  # the broken videos make the status 1
    assert "3 failed" in rerun.stdout
    assert f"({len(finished)} finished shards kept)" in rerun.stdout
    for subset in ("train", "test"):
        for m in ("rgb", "flow"):
            got = read_examples(killed, subset, m)
            assert sorted(got) == sorted(read_examples(full, subset, m))
            assert len(set(got)) == len(got)
    assert _shard_bytes(killed) == _shard_bytes(full)
    assert (
        json.loads((killed / "manifest.json").read_text())["sets"]
        == json.loads((full / "manifest.json").read_text())["sets"]
    )


# ---------------------------------------------------------------------------------------------
# Hardening: truncated videos, killed workers, a full disk, the command line's errors.


def test_config_digest_of_older_folders_is_unchanged():
    """min_decoded_fraction was added later: at its default, older --out folders still resume."""
    assert convert.ConvertConfig().digest() == "e08d0d3ce0c14388"  # the digest before it
    config = convert.ConvertConfig(("rgb",), "dis", num_snippets=4, width=32, height=24)
    assert config.digest() == "6f4d18e44ff9e5f4"
    assert dataclasses.replace(config, min_decoded_fraction=0.4).digest() != config.digest()
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="--min_decoded_fraction"):
            dataclasses.replace(config, min_decoded_fraction=bad)
    with pytest.raises(ValueError, match="--flow_bound"):
        dataclasses.replace(config, flow_bound=float("inf"))


def test_is_short_allows_a_container_count_a_little_off():
    assert [convert.is_short(d, 41) for d in (41, 42, 39, 38, 10)] == [0, 0, 0, 1, 1]
    assert [convert.is_short(d, 100) for d in (95, 94)] == [False, True]
    assert not convert.is_short(7, 0)  # no declared count: nothing to compare
    assert convert.shortfall_text(10, 41) == "decoded 10 of 41 declared frames"


def test_truncated_videos_are_stored_short_or_failed(tmp_path, capsys):
    """Index-first mp4s cut to 80% / 30%: a warned, listed shortfall / a failure (< 0.5)."""
    videos = tmp_path / "videos" / "A"
    os.makedirs(videos)
    full = write_index_first_mp4(videos / "full.mp4", 41)
    cut80 = cut_file(full, videos / "cut80.mp4", 0.8)
    cut30 = cut_file(full, videos / "cut30.mp4", 0.3)
    n80, n30 = video.probe(cut80).num_frames, video.probe(cut30).num_frames
    assert 0.5 * 41 <= n80 < 38 and n30 < 0.5 * 41  # what the cuts must give for this test
    jobs = {"train": [_job(p) for p in (full, cut80, cut30)]}
    config = dataclasses.replace(SMALL, modalities=("rgb",))
    report = convert.convert(jobs, str(tmp_path / "out"), config, ["A"], 1, 1, progress=False)
    assert report.manifest["failures"] == [
        {
            "path": cut30,
            "reason": f"decoded {n30} of 41 declared frames ({n30 / 41:.2f} < "
            "--min_decoded_fraction 0.5): truncated or damaged",
            "subset": "train",
        }
    ]
    assert report.manifest["short_videos"] == [
        {"path": cut80, "decoded_frames": n80, "declared_frames": 41, "subset": "train"}
    ]
    assert (tmp_path / "out" / "failures.txt").read_text().startswith(f"{cut30}\tdecoded {n30} ")
    err = capsys.readouterr().err
    assert f"warning: {cut80}: decoded {n80} of 41 declared frames" in err
    stored = {v: n for v, n in _frame_counts(tmp_path / "out")}
    assert stored == {"full.mp4": 41, "cut80.mp4": n80}
    # a lower threshold stores the 30% cut too, as a listed shortfall
    low = dataclasses.replace(config, min_decoded_fraction=0.05)
    report = convert.convert(jobs, str(tmp_path / "low"), low, ["A"], 1, 1, progress=False)
    assert report.manifest["failures"] == []
    assert sorted(v["path"] for v in report.manifest["short_videos"]) == sorted([cut30, cut80])


def _frame_counts(out_dir):
    files = Manifest.read(str(out_dir)).shard_files("train", "rgb")
    ds = tf.data.TFRecordDataset(files).map(lambda s: records.parse_example(s, ["rgb"]))
    return [(e["video_id"].numpy().decode(), int(e["num_frames"])) for e in ds]


class _Deadline:
    """Fails the test with TimeoutError if the block runs past `seconds` (a hang, not a pass)."""

    def __init__(self, seconds):
        self.seconds = seconds

    def _expired(self, signum, frame):
        raise TimeoutError(f"still running after {self.seconds} s: the converter hangs")

    def __enter__(self):
        self.previous = signal.signal(signal.SIGALRM, self._expired)
        signal.alarm(self.seconds)

    def __exit__(self, *exc):
        signal.alarm(0)
        signal.signal(signal.SIGALRM, self.previous)


def _kill_run(tmp_path, monkeypatch, hook):
    """Converts 6 videos with 2 workers while the test hook SIGKILLs the worker on `victim`."""
    paths = _dataset(tmp_path / "videos", good=3, broken=False)
    jobs = {"train": _jobs(tmp_path / "videos", paths)}
    victim = paths["B"][1]
    monkeypatch.setenv(convert.KILL_WORKER_ENV, hook(victim))
    config = dataclasses.replace(SMALL, modalities=("rgb",))
    with _Deadline(120):
        report = convert.convert(
            jobs, str(tmp_path / "out"), config, ["A", "B"], 2, 2, progress=False
        )
    return jobs, victim, report


def test_a_worker_killed_twice_fails_its_video_and_the_run_goes_on(tmp_path, monkeypatch, capsys):
    jobs, victim, report = _kill_run(tmp_path, monkeypatch, lambda victim: victim)
    assert report.manifest["failures"] == [
        {
            "path": victim,
            "reason": f"worker died (signal 9) while converting {victim}",
            "subset": "train",
        }
    ]
    stored = sorted(v for v, _ in read_examples(tmp_path / "out", "train"))
    assert stored == sorted(j.video_id for j in jobs["train"] if j.path != victim)
    err = capsys.readouterr().err
    assert f"warning: worker died (signal 9) while converting {victim}; retrying" in err
    assert err.count("worker died") == 1  # no other video charged (one it held never started)


def test_a_worker_killed_once_is_retried_in_a_fresh_one(tmp_path, monkeypatch):
    marker = tmp_path / "killed-once"
    jobs, victim, report = _kill_run(tmp_path, monkeypatch, lambda v: f"{v},{marker}")
    assert marker.exists()  # the hook did kill a worker
    assert report.manifest["failures"] == []
    stored = sorted(v for v, _ in read_examples(tmp_path / "out", "train"))
    assert stored == sorted(j.video_id for j in jobs["train"])


def _enospc():
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "the test's full disk")


def _tf_enospc():  # what TFRecordWriter itself raises on a full disk (seen on /dev/full)
    return tf.errors.ResourceExhaustedError(None, None, "/x.tfrecord; No space left on device")


class _FullDisk(tf.io.TFRecordWriter):
    """A TFRecordWriter whose disk fills after `room` records (all writers together)."""

    room = 0
    error = _enospc

    def write(self, record):
        if _FullDisk.room == 0:
            raise _FullDisk.error()
        _FullDisk.room -= 1
        super().write(record)


def _all_files(folder):
    """Every file under folder (hidden ones too), relative paths, sorted."""
    return sorted(
        os.path.relpath(os.path.join(d, name), folder)
        for d, _, names in os.walk(folder)
        for name in names
    )


@pytest.mark.parametrize("error", [_enospc, _tf_enospc])
def test_a_full_disk_leaves_no_temporary_files(tmp_path, monkeypatch, error):
    paths = _dataset(tmp_path / "videos", good=3, broken=False)
    jobs = {"train": _jobs(tmp_path / "videos", paths)}
    config = dataclasses.replace(SMALL, modalities=("rgb", "flow"))
    out = tmp_path / "out"
    monkeypatch.setattr(tf.io, "TFRecordWriter", _FullDisk)
    monkeypatch.setattr(_FullDisk, "error", error)
    _FullDisk.room = 5  # shard 0 (3 videos x 2 files) fills the disk at its last record
    with pytest.raises(OSError, match="No space left"):
        convert.convert(jobs, str(out), config, ["A", "B"], 2, 1, progress=False)
    assert _all_files(out) == []  # no .incomplete, no sidecar, no .tmp
    _FullDisk.room = 9  # shard 0 written; shard 1 fills the disk mid-shard
    with pytest.raises(OSError, match="No space left"):
        convert.convert(jobs, str(out), config, ["A", "B"], 2, 1, progress=False)
    assert [f for f in _all_files(out) if f.endswith((".incomplete", ".tmp"))] == []
    assert sorted(_shard_bytes(out)) == [
        "train-flow-00000-of-00002.tfrecord",
        "train-rgb-00000-of-00002.tfrecord",
    ]
    monkeypatch.undo()  # room again: the rerun keeps shard 0 and writes shard 1
    again = convert.convert(jobs, str(out), config, ["A", "B"], 2, 1, progress=False)
    assert again.skipped_shards == ["train-00000-of-00002.tfrecord"]
    assert again.manifest["complete"] and again.manifest["sets"]["train"]["num_examples"] == 6


def _main(videos, out, *extra):
    """convert.main in-process (scripts/make_tfrecords.py runs exactly this)."""
    argv = [
        "make_tfrecords.py",
        "--dataset=folder",
        f"--video_root={videos}",
        f"--out={out}",
        "--modalities=rgb",
        "--snippets=2",
        "--width=32",
        "--height=24",
        "--workers=1",
        "--noprogress",
        *extra,
    ]
    return convert.main(argv)


def _ucf_split(root, trainlist):
    """A UCF101-style split folder with one class and the given trainlist01.txt text."""
    split_dir = root / "lists"
    os.makedirs(split_dir)
    (split_dir / "classInd.txt").write_text("1 A\n")
    (split_dir / "trainlist01.txt").write_text(trainlist)
    (split_dir / "testlist01.txt").write_text("")
    return split_dir


def test_command_line_errors_are_one_line_with_exit_2(tmp_path, capsys):
    videos = tmp_path / "videos"
    _dataset(videos, good=1, broken=False)
    split_dir = _ucf_split(tmp_path, "A/v0.avi 1\nA/v1.avi one\n")
    argv = ["--dataset=ucf101", f"--split_dir={split_dir}"]
    cases = [
        (argv, f"error: {split_dir / 'trainlist01.txt'}:2:"),  # a bad split line
        ([f"--csv={tmp_path / 'none.csv'}", "--dataset=csv"], "csv_path"),
        ([f"--out={videos / 'A' / 'v0.avi' / 'out'}"], "error: --out "),  # a file on the way
        (["--min_decoded_fraction=1.5"], "error: --min_decoded_fraction must be in [0, 1]"),
        (["--flow_bound=inf", "--modalities=flow"], "error: --flow_bound must be a number > 0"),
        (["--subsets=train,val"], "error: --subsets must be among"),
        (["--nosuchflag"], "error: Unknown command line flag 'nosuchflag'"),
    ]
    for extra, message in cases:
        assert _main(videos, tmp_path / "out", *extra) == 2, extra
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (extra, err)
        assert err.startswith("error: ") and len(err.splitlines()) <= 2, err
    assert not (tmp_path / "out").exists()  # nothing was converted


def test_command_line_exit_status_1_for_failed_videos_and_a_full_disk(
    tmp_path, capsys, monkeypatch
):
    videos = tmp_path / "videos"
    _dataset(videos, good=1)
    assert _main(videos, tmp_path / "out") == 1  # the broken videos
    out = capsys.readouterr().out
    assert "3 failed" in out and "0 stored short" in out
    monkeypatch.setattr(tf.io, "TFRecordWriter", _FullDisk)
    _FullDisk.room = 0
    assert _main(videos, tmp_path / "full") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "No space left on device" in err, err
    assert "Traceback" not in err
    assert _all_files(tmp_path / "full") == []
