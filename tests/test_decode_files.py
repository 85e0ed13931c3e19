"""Files of many kinds decode to FFmpeg's own frame count: eagerly and through the converter.

The files are written by Debian's ffmpeg (tests/media_files.py); `ffprobe -count_frames` is
the reference count. The damaged Theora file is the case OpenCV's `VideoCapture` gets wrong.
"""

import glob
import os
import subprocess

import cv2
import numpy as np
import pytest
import tensorflow as tf
from media_files import FFMPEG, KINDS, ffprobe_frames, make, needs_ffmpeg

from tsn_keras import convert, records, video
from tsn_keras.manifest import Manifest

pytestmark = needs_ffmpeg


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """kind -> path, each file in its own class folder (the converter test's dataset)."""
    root = tmp_path_factory.mktemp("kinds")
    paths = {}
    for kind in KINDS:
        (root / kind).mkdir()
        paths[kind] = make(kind, root / kind)
    return paths


@pytest.mark.parametrize("kind", list(KINDS))
def test_frame_count_is_ffmpegs(files, kind):
    path = files[kind]
    expected = ffprobe_frames(path)
    assert video.probe(path, threads=1).num_frames == expected
    every = list(video.iter_frames(path, None))
    assert len(every) == expected and every[0].dtype == np.uint8 and every[0].shape[2] == 3
    resize = video.Resize(32, 24)
    for mode in ("auto", "two_pass"):
        info, got = video.sample_frames(path, lambda n: [0, n // 2, n - 1], resize, mode)
        assert info.num_frames == expected and sorted(got) == [0, expected // 2, expected - 1]
        want = cv2.resize(every[-1], (32, 24), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_array_equal(got[expected - 1], want)


def test_declared_counts(files):
    """The container's count beside the decoded one: 0 for an MPEG-1 elementary stream."""
    declared = {k: video.container_frame_count(p) for k, p in files.items()}
    assert declared.pop("mpeg1_es") == 0
    assert declared.pop("theora_damaged") == 100  # 4 s x 25 fps; one packet does not decode
    assert set(declared.values()) == {40}


def test_opencv_stops_at_the_damaged_packet_where_ffmpeg_goes_on(files):
    path = files["theora_damaged"]
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    opencv = 0
    while cap.grab():
        opencv += 1
    cap.release()
    assert ffprobe_frames(path) == 99  # 100 written, 1 damaged packet skipped
    assert opencv < 60  # OpenCV stops at the damaged packet in the middle
    assert video.probe(path).num_frames == 99


def _ffmpeg_rgb(path: str, height: int, width: int) -> np.ndarray:
    """Every frame as the ffmpeg tool decodes it, RGB uint8 [N, height, width, 3].

    One decoder thread: the ffmpeg 5.1 tool's frame threading gives up on Theora at the
    damaged packet ("midstream reconfiguration with multithreading is unsupported"); PyAV's
    decoder and ffprobe go on either way.
    """
    raw = subprocess.run(
        [FFMPEG, "-v", "error", "-threads", "1", "-i", path, "-fps_mode", "passthrough",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def test_converter_workers_store_ffmpegs_frames(files, tmp_path):
    """Two worker processes convert every kind: FFmpeg's frame count in each record, and the
    damaged file's stored frames are the frames the ffmpeg tool decodes."""
    root = os.path.dirname(os.path.dirname(files["gif"]))
    kinds = list(KINDS)
    jobs = [convert.VideoJob(files[k], f"{k}/{os.path.basename(files[k])}", i, k) for i, k in
            enumerate(kinds)]  # fmt: skip
    config = convert.ConvertConfig(("rgb",), num_snippets=6, width=32, height=24, jpeg_quality=95)
    out = tmp_path / "out"
    report = convert.convert({"train": jobs}, str(out), config, kinds, 1, 2, progress=False)
    assert report.manifest["failures"] == [] and report.videos == len(kinds)
    assert os.path.commonpath([root, files["gif"]]) == root
    ds = tf.data.TFRecordDataset(Manifest.read(str(out)).shard_files("train", "rgb"))
    stored = {}
    for e in ds.map(lambda s: records.parse_example(s, ["rgb"])):
        kind = e["video_id"].numpy().decode().split("/")[0]
        stored[kind] = e
        assert int(e["num_frames"]) == ffprobe_frames(files[kind]), kind
    assert sorted(stored) == sorted(kinds)
    damaged = stored["theora_damaged"]
    reference = _ffmpeg_rgb(files["theora_damaged"], 120, 160)  # [99, 120, 160, 3]
    assert len(reference) == 99
    indices = damaged["frame_indices"].numpy()
    assert indices[-1] > 60  # frames past the damaged packet, which OpenCV never reaches
    for i, jpeg in zip(indices, damaged["rgb"].numpy(), strict=True):
        want = cv2.resize(reference[i], (32, 24), interpolation=cv2.INTER_LINEAR)
        assert jpeg == records.encode_jpeg(want, 95), i  # the same pixels, the same JPEG
    assert not glob.glob(str(out / "*.incomplete"))


@pytest.mark.parametrize("exact", [False, True])
def test_the_dataset_check_finds_no_problem_in_any_kind(files, exact):
    """Fast mode (the first frame and the seeked tail) and exact mode: no false alarm on any
    container, the variable frame rate and the damaged packet included."""
    from tsn_keras import check_videos

    settings = check_videos.CheckSettings(exact=exact, min_side=1)
    for kind, path in files.items():
        assert check_videos.check_video(path, kind, settings) == [], kind
