"""Decoding a video file into RGB frames with PyAV: streaming, resized, counting what decodes.

PyAV (FFmpeg's own binding) is the one decoder of the project: the converter, `predict`, the
timeline, the dataset check and the benchmarks read frames through `Decoder`. It decodes as the
ffmpeg tools do: a packet that does not decode (a damaged packet in a camera clip) is skipped
and decoding goes on, where OpenCV's `VideoCapture` stops at the first such packet (the test
Theora `.ogg` with one damaged packet in the middle: 99 frames with ffprobe and PyAV, 32 with
OpenCV; tests/test_decode_files.py). The frame count here is always the number of frames that
decoded, the number `ffprobe -count_frames` reports. The colour conversion is FFmpeg's swscale
to RGB24 at the decoded size, as OpenCV's FFmpeg backend does, so the RGB frames are the same
bytes; the resizing stays `cv2.resize` (INTER_LINEAR).

Each video is opened once: `Decoder` reads the container's declared frame count and frame rate
from the same open that decodes. The declared count is the stream's frame count, or the
duration x fps rounded when the container stores none (OpenCV's `CAP_PROP_FRAME_COUNT` rule,
so truncated-file checks see the same numbers); it is kept beside the decoded count
(`VideoInfo.declared_frames`) so that callers can tell a truncated file: an mp4 whose index
(moov atom) is at the front still opens when cut, declares every frame, and decodes only the
frames its remaining bytes hold.

Conversion needs only the frames of the sampled snippets, but which frames those are depends on
the frame count, known only after decoding to the end. `decode_selected` therefore:

1. decodes once, keeping only the frames the declared count (the hint) would select, while
   counting every frame that decodes (a decoded frame not kept is never colour-converted);
2. if the count matches the hint (the usual case), that single pass is the answer; otherwise
   (or with no hint) it decodes a second time and keeps the frames the true count selects.

Frames go, in order, to a `FramePlan` that consumes them as they come (the converter encodes
JPEGs and computes flow with one previous frame held), so memory does not grow with the video's
length; `sample_frames` is the simple form that keeps the selected frames in a dict. The
two-pass variant (`mode="two_pass"`) always counts first.

Threads: `threads=1` decodes in the calling thread (the converter's workers already fill the
cores); otherwise FFmpeg's frame threading (`frame_threads`) and slice threading decode with
`threads` threads (0 = one per core). `bench/convert.py` measures the choices.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Protocol

import av
import cv2
import numpy as np

DEFAULT_WIDTH = 340
DEFAULT_HEIGHT = 256


class DecodeError(Exception):
    """A video that cannot be decoded; `path` and `reason` say which and why."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


ZERO_FRAMES = "zero frames: the file opens but no frame decodes (truncated?)"


@dataclass(frozen=True)
class Resize:
    """Stored frame size: `width` x `height`, or, with `short_side`, aspect kept.

    Attributes:
      width: output width when short_side is None.
      height: output height when short_side is None.
      short_side: if set, scale so the shorter side has this many pixels (aspect kept).
    """

    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT
    short_side: int | None = None

    def __post_init__(self):
        if self.short_side is not None and self.short_side < 1:
            raise ValueError(f"short_side must be >= 1. Received: short_side={self.short_side}")
        if self.short_side is None and (self.width < 1 or self.height < 1):
            raise ValueError(
                f"width and height must be >= 1. Received: width={self.width}, height={self.height}"
            )

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) of a decoded `height` x `width` frame after resizing."""
        if self.short_side is None:
            return self.height, self.width
        scale = self.short_side / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))


@dataclass(frozen=True)
class VideoInfo:
    """What decoding found.

    Attributes:
      path: the file.
      num_frames: frames that decoded.
      fps: the container's frame rate (0.0 if it reports none).
      height: decoded frame height (before resizing).
      width: decoded frame width (before resizing).
      declared_frames: the container's frame count (`Decoder.declared_frames`; 0 = none).
    """

    path: str
    num_frames: int
    fps: float
    height: int
    width: int
    declared_frames: int = 0


def check_file(path: str) -> None:
    """Raises a DecodeError saying why `path` cannot be a video file, before opening it."""
    if not os.path.exists(path):
        raise DecodeError(path, "missing: no such file (check --video_root and the split files)")
    if os.path.isdir(path):
        raise DecodeError(path, "not a file: it is a directory")
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the reader forever
        raise DecodeError(path, "not a regular file (a FIFO, socket or device)")
    if not os.access(path, os.R_OK):
        raise DecodeError(path, "unreadable: permission denied")
    if os.path.getsize(path) == 0:
        raise DecodeError(path, "empty file (0 bytes)")


class Decoder:
    """One open video: its metadata at once, then its frames in order (`frames`).

    Use as a context manager (closes the file). Attributes, known after opening:
      declared_frames: the container's frame count (module docstring; 0 = none).
      fps: the stream's average frame rate, else FFmpeg's guess (as OpenCV reports it; 0.0 =
        none).
      height, width: the coded frame size the stream declares.
      duration: seconds the container declares (0.0 = unknown).

    Args:
      path: video file.
      threads: decoder threads; 1 = decode in the calling thread, 0 = one per core.
      frame_threads: with threads != 1, also FFmpeg's frame threading (several frames in
        flight; faster on most codecs, a few frames of delay).

    Raises:
      DecodeError: missing / a directory / not a regular file / unreadable / empty / not a
        video (FFmpeg cannot open it, or it holds no video stream).
    """

    def __init__(self, path: str, threads: int = 1, frame_threads: bool = True):
        check_file(path)
        self.path = path
        try:
            self.container = av.open(path, metadata_errors="ignore")
        except (av.FFmpegError, UnicodeDecodeError) as e:
            raise DecodeError(
                path, f"not a video: FFmpeg cannot open it ({_why(e)}; corrupt or unknown format)"
            ) from None
        if not self.container.streams.video:
            self.container.close()
            raise DecodeError(path, "not a video: the file holds no video stream")
        self.stream = self.container.streams.video[0]
        codec = self.stream.codec_context
        codec.thread_count = threads
        if threads != 1:
            codec.thread_type = "AUTO" if frame_threads else "SLICE"
        # the average rate (OpenCV's CAP_PROP_FPS), else FFmpeg's guess (Ogg declares none)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = float(rate) if rate and 0 < float(rate) < 1000 else 0.0
        self.height, self.width = codec.height, codec.width
        self.duration = self._duration()
        self.declared_frames = self.stream.frames or round(self.duration * self.fps)

    def _duration(self) -> float:
        """The container's duration, else the stream's, in seconds (OpenCV's order)."""
        if self.container.duration and self.container.duration > 0:
            return self.container.duration / av.time_base
        stream = self.stream
        if stream.duration and stream.duration > 0 and stream.time_base:
            return float(stream.duration * stream.time_base)
        return 0.0

    def frames(self) -> Iterator[av.VideoFrame]:
        """Every frame that decodes, in order, not colour-converted yet (`to_rgb`).

        A packet the decoder refuses is skipped, as the ffmpeg tools do; a read error ends the
        stream (what decoded before it stands) after the frames the decoder still holds.
        """
        codec = self.stream.codec_context
        packets = self.container.demux(self.stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.FFmpegError:  # truncated or unreadable past here: flush the decoder
                packet = None
            try:
                decoded = codec.decode(packet)
            except av.FFmpegError:  # a damaged packet: skipped, decoding goes on
                decoded = []
            yield from decoded
            if packet is None:
                return

    def tail(self, seconds: float) -> Iterator[av.VideoFrame]:
        """The frames from the keyframe before `seconds` ahead of the declared end to the end.

        Reads only the end of the file (the dataset check's fast mode); `frame.time` says
        where each frame lies.

        Raises:
          DecodeError: the container cannot seek (read the whole file with `frames` instead).
        """
        target = max(0.0, self.duration - seconds) + (self.container.start_time or 0) / 1e6
        try:  # in AV_TIME_BASE units when no stream is given; to the keyframe before
            self.container.seek(int(target * av.time_base), backward=True, any_frame=False)
        except av.FFmpegError as e:
            raise DecodeError(self.path, f"cannot seek: {_why(e)}") from None
        self.stream.codec_context.flush_buffers()
        yield from self.frames()

    def end_time(self) -> float:
        """Seconds from the stream's first timestamp at which its declared last frame ends."""
        stream = self.stream
        if stream.duration and stream.duration > 0 and stream.time_base:
            return float(stream.duration * stream.time_base)
        return self.duration

    def start_time(self) -> float:
        """The stream's first timestamp in seconds (frames' `time` count from it)."""
        stream = self.stream
        if stream.start_time is not None and stream.time_base:
            return float(stream.start_time * stream.time_base)
        return 0.0

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _why(error: Exception) -> str:
    """FFmpeg's message without the errno and the path PyAV adds."""
    return getattr(error, "strerror", None) or str(error)


def to_rgb(frame: av.VideoFrame, resize: Resize | None) -> np.ndarray:
    """A decoded frame as RGB uint8 [H, W, 3], resized (None: decoded size)."""
    # [h, w, 3], swscale at the decoded size; one thread: PyAV's default (automatic threads)
    # runs 2-4x slower on small frames and competes with the converter's workers for cores
    rgb = frame.to_ndarray(format="rgb24", threads=1)
    if resize is None:
        return rgb
    h, w = resize.output_size(rgb.shape[0], rgb.shape[1])
    if (h, w) != rgb.shape[:2]:
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    return rgb


def iter_frames(
    path: str, resize: Resize | None = Resize(), threads: int = 0
) -> Iterator[np.ndarray]:
    """Yields every frame as RGB uint8 [H, W, 3], resized (None: decoded size), one at a time.

    Raises:
      DecodeError: if the file cannot be opened or no frame decodes.
    """
    count = 0
    with Decoder(path, threads) as decoder:
        for frame in decoder.frames():
            count += 1
            yield to_rgb(frame, resize)
    if count == 0:
        raise DecodeError(path, ZERO_FRAMES)


def probe(path: str, threads: int = 0) -> VideoInfo:
    """Counts the frames that decode, with fps, the decoded size and the declared count."""
    count, size = 0, (0, 0)
    with Decoder(path, threads) as decoder:
        for frame in decoder.frames():
            if count == 0:
                size = (frame.height, frame.width)
            count += 1
    if count == 0:
        raise DecodeError(path, ZERO_FRAMES)
    return VideoInfo(path, count, decoder.fps, size[0], size[1], decoder.declared_frames)


def container_frame_count(path: str) -> int:
    """The frame count the container declares (`Decoder.declared_frames`; 0 = none): a hint."""
    with Decoder(path) as decoder:
        return decoder.declared_frames


class FramePlan(Protocol):
    """Which frames a pass needs, and what to do with each as it decodes (in frame order)."""

    indices: AbstractSet[int]

    def add(self, index: int, rgb: np.ndarray) -> None:
        """Receives frame `index` (RGB uint8 [H, W, 3], resized); frames arrive in order."""


def _decode_pass(decoder: Decoder, plan: FramePlan, resize: Resize) -> tuple[int, tuple[int, int]]:
    """One decoding pass feeding `plan`; returns the decoded count and the decoded size."""
    wanted = plan.indices
    count, size = 0, (0, 0)
    for frame in decoder.frames():
        if count == 0:
            size = (frame.height, frame.width)
        if count in wanted:
            plan.add(count, to_rgb(frame, resize))
        count += 1
    return count, size


def decode_selected(
    path: str,
    make_plan: Callable[[int], FramePlan],
    resize: Resize = Resize(),
    mode: str = "auto",
    threads: int = 0,
) -> tuple[VideoInfo, FramePlan]:
    """Streams the frames a plan needs; the plan depends on the frame count (module docstring).

    Args:
      path: video file.
      make_plan: builds the plan for a given frame count; its `indices` must lie in
        [0, num_frames).
      resize: stored size.
      mode: "auto" (one pass when the declared count is right) or "two_pass" (count first,
        then decode).
      threads: decoder threads (`Decoder`).

    Returns:
      (info, plan): the plan of the true frame count, fed every frame it asked for;
      `info.declared_frames` is the container's count, whatever the mode.

    Raises:
      DecodeError: missing / empty / not a video / zero frames / frames that do not decode the
        same way twice.
    """
    if mode not in ("auto", "two_pass"):
        raise ValueError(f"decode mode must be 'auto' or 'two_pass'. Received: {mode!r}")
    with Decoder(path, threads) as decoder:
        declared, fps = decoder.declared_frames, decoder.fps
        hint = _hint(decoder) if mode == "auto" else 0
        if hint > 0:
            plan = make_plan(hint)
            count, size = _decode_pass(decoder, plan, resize)
            if count == hint:
                return VideoInfo(path, count, fps, size[0], size[1], declared), plan
            del plan  # the declared count was wrong: decode again for the true count
        else:
            count = sum(1 for _ in decoder.frames())
    if count == 0:
        raise DecodeError(path, ZERO_FRAMES)
    plan = _CheckedPlan(make_plan(count), count, path)
    with Decoder(path, threads) as decoder:
        _, size = _decode_pass(decoder, plan, resize)
    plan.check()
    return VideoInfo(path, count, fps, size[0], size[1], declared), plan.inner


def _hint(decoder: Decoder) -> int:
    """The frame count the first pass plans for: the declared one (a seam for tests)."""
    return decoder.declared_frames


class _CheckedPlan:
    """Wraps a plan for the second pass: indices in range, and every one delivered."""

    def __init__(self, inner: FramePlan, count: int, path: str):
        self.inner, self.path, self.count = inner, path, count
        self.indices = inner.indices
        if self.indices and (min(self.indices) < 0 or max(self.indices) >= count):
            raise ValueError(f"a frame plan for {count} frames asked for {sorted(self.indices)}")
        self.seen: set[int] = set()

    def add(self, index: int, rgb: np.ndarray) -> None:
        self.seen.add(index)
        self.inner.add(index, rgb)

    def check(self) -> None:
        missing = sorted(set(self.indices) - self.seen)
        if missing:
            raise DecodeError(
                self.path,
                f"decoding is not repeatable: frame {missing[0]} of {self.count} did not decode "
                "on the second pass",
            )


class _KeepFrames:
    def __init__(self, indices):
        self.indices = frozenset(int(i) for i in np.ravel(indices))
        self.frames: dict[int, np.ndarray] = {}

    def add(self, index: int, rgb: np.ndarray) -> None:
        self.frames[index] = rgb


def sample_frames(
    path: str,
    select: Callable[[int], np.ndarray | Sequence[int]],
    resize: Resize = Resize(),
    mode: str = "auto",
) -> tuple[VideoInfo, dict[int, np.ndarray]]:
    """The frames `select(num_frames)` names (any shape of indices), RGB uint8 [H, W, 3] each.

    Memory holds only the selected frames (see `decode_selected` for the streaming form).
    """
    info, plan = decode_selected(path, lambda n: _KeepFrames(select(n)), resize, mode)
    return info, plan.frames


def write_video(
    path: str,
    frames: Sequence[np.ndarray] | Iterator[np.ndarray],
    fps: float = 25.0,
    fourcc: str = "MJPG",
) -> None:
    """Writes RGB uint8 [H, W, 3] frames to an .avi with OpenCV (tests and the benchmark).

    Args:
      path: output file (.avi).
      frames: RGB frames, one size.
      fps: frame rate stored in the container.
      fourcc: "MJPG" (motion JPEG) or "mp4v" / "XVID" (MPEG-4 Part 2, as UCF101's files).
    """
    writer = None
    try:
        for rgb in frames:
            if writer is None:
                h, w = rgb.shape[:2]
                writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write {path} ({fourcc}); is the folder there?")
            writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    if writer is None:
        raise ValueError(f"write_video({path}) got no frames")
