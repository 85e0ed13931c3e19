"""Decoding: frame count, RGB order, resize, clear errors, one/two pass agree, flat memory."""

import itertools
import os
import tracemalloc

import numpy as np
import pytest
from helpers import cut_file, write_index_first_mp4

from tsn_keras import video


def _frames(num, height=48, width=64):
    """Frame t: red ramp across x, green = 8 t, blue 0 (distinct channels to check RGB order)."""
    ramp = np.linspace(0, 250, width).astype(np.uint8)
    for t in range(num):
        f = np.zeros((height, width, 3), np.uint8)
        f[..., 0] = ramp[None, :]
        f[..., 1] = min(8 * t, 255)
        yield f


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("video") / "clip.avi")
    video.write_video(path, _frames(17), fps=12.0)
    return path


def test_iter_frames_counts_and_keeps_rgb_order(clip):
    frames = list(video.iter_frames(clip, resize=None))
    assert len(frames) == 17
    assert frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    f = frames[5].astype(int)
    assert abs(f[:, :, 1].mean() - 40) < 4  # green = 8 * 5
    assert f[:, -4:, 0].mean() > 200 and f[:, :4, 0].mean() < 30  # red ramp, left to right
    assert f[:, :, 2].mean() < 8


@pytest.mark.parametrize(
    "resize,shape",
    [
        (video.Resize(), (256, 340)),
        (video.Resize(width=32, height=24), (24, 32)),
        (video.Resize(short_side=24), (24, 32)),  # 48x64 keeps 3:4
    ],
)
def test_resize(clip, resize, shape):
    frame = next(iter(video.iter_frames(clip, resize)))
    assert frame.shape == (*shape, 3)


def test_probe(clip):
    info = video.probe(clip)
    assert (info.num_frames, info.height, info.width) == (17, 48, 64)
    assert info.fps == pytest.approx(12.0)


def test_sample_frames_matches_streamed_frames(clip):
    every = list(video.iter_frames(clip, video.Resize(32, 24)))
    info, got = video.sample_frames(clip, lambda n: [0, n // 2, n - 1], video.Resize(32, 24))
    assert info.num_frames == 17 and sorted(got) == [0, 8, 16]
    for i, frame in got.items():
        np.testing.assert_array_equal(frame, every[i])


@pytest.mark.parametrize("hint", [0, 16, 18, 40])
def test_wrong_container_count_is_not_trusted(clip, monkeypatch, hint):
    """A container count that is 0, one off, or far off: same frames as counting first."""
    monkeypatch.setattr(video, "_hint", lambda decoder: hint)
    calls = []

    def select(n):
        calls.append(n)
        return [n - 1, n // 3]

    info, got = video.sample_frames(clip, select, video.Resize(32, 24))
    ref_info, ref = video.sample_frames(clip, lambda n: [n - 1, n // 3], mode="two_pass")
    assert info.num_frames == ref_info.num_frames == 17
    assert calls[-1] == 17 and sorted(got) == [5, 16]
    np.testing.assert_array_equal(got[16], list(video.iter_frames(clip, video.Resize(32, 24)))[16])


def _write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)
    return str(path)


def _fifo(path):
    os.mkfifo(path)
    return str(path)


@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda d: str(d / "nope.avi"), "missing"),
        (lambda d: _write_bytes(d / "empty.avi", b""), "empty"),
        (lambda d: _write_bytes(d / "text.avi", b"this is a text file\n" * 50), "not a video"),
        (lambda d: _write_bytes(d / "noise.avi", os.urandom(20000)), "not a video"),
        (lambda d: str(d), "directory"),
        (lambda d: _fifo(d / "pipe.avi"), "not a regular file"),  # never opened: it would block
    ],
)
def test_decode_errors_say_why(tmp_path, make, reason):
    path = make(tmp_path)
    for fn in (
        lambda: list(video.iter_frames(path)),
        lambda: video.probe(path),
        lambda: video.sample_frames(path, lambda n: [0]),
    ):
        with pytest.raises(video.DecodeError, match=reason) as e:
            fn()
        assert e.value.path == path and reason in e.value.reason


@pytest.mark.parametrize("mode", ["auto", "two_pass"])
def test_truncated_index_first_mp4_reports_the_declared_count(tmp_path, mode):
    """Cut to 30% of its bytes, the file still declares 41 frames; far fewer decode."""
    full = write_index_first_mp4(tmp_path / "full.mp4", 41)
    info, _ = video.sample_frames(full, lambda n: [n - 1], video.Resize(32, 24), mode)
    assert (info.num_frames, info.declared_frames) == (41, 41)
    cut = cut_file(full, tmp_path / "cut.mp4", 0.3)
    info, frames = video.sample_frames(cut, lambda n: [n - 1], video.Resize(32, 24), mode)
    assert info.declared_frames == 41 and 1 <= info.num_frames <= 0.3 * 41
    assert list(frames) == [info.num_frames - 1]
    assert video.container_frame_count(cut) == 41


def test_truncated_file_decodes_what_it_can(clip, tmp_path):
    data = open(clip, "rb").read()
    path = _write_bytes(tmp_path / "cut.avi", data[: len(data) // 2])
    try:
        info, frames = video.sample_frames(path, lambda n: [n - 1])
    except video.DecodeError as e:
        assert e.reason  # refused with a reason: also acceptable
    else:
        assert 1 <= info.num_frames <= 17 and list(frames) == [info.num_frames - 1]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    """300 frames of 320x240 (~70 MB decoded, ~78 MB at 340x256): must never be held."""
    path = str(tmp_path_factory.mktemp("long") / "long.avi")
    base = np.linspace(0, 255, 320 * 240 * 3).astype(np.uint8).reshape(240, 320, 3)
    video.write_video(path, (np.roll(base, t, axis=1) for t in range(300)))
    return path


def _peak_mb(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_memory_stays_flat_on_a_long_video(long_clip):
    def stream():
        count = sum(1 for _ in video.iter_frames(long_clip))
        assert count == 300

    def sample(mode):
        info, frames = video.sample_frames(long_clip, lambda n: [0, n // 2, n - 1], mode=mode)
        assert info.num_frames == 300 and len(frames) == 3

    def hold_100():
        held = list(itertools.islice(video.iter_frames(long_clip), 100))
        assert len(held) == 100

    one_frame = 256 * 340 * 3 / 2**20  # 0.25 MB
    assert _peak_mb(hold_100) > 90 * one_frame  # the measure sees OpenCV's frames
    assert _peak_mb(stream) < 4 * one_frame
    assert _peak_mb(lambda: sample("auto")) < 8 * one_frame
    assert _peak_mb(lambda: sample("two_pass")) < 8 * one_frame
