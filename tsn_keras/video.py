"""Decoding a video file into RGB frames: streaming, resized, counting what really decodes.

Containers often report a frame count that is off by one, or 0 (`CAP_PROP_FRAME_COUNT`); the
number of frames here is always the number that decoded. The container's count is kept beside it
(`VideoInfo.declared_frames`) so that callers can tell a truncated file: an mp4 whose index
(moov atom) is at the front still opens when cut, declares every frame, and decodes only the
frames its remaining bytes hold. OpenCV's count is the stream's frame count, or duration x fps
rounded when the container stores none, so one number covers both.

Conversion needs only the frames of the sampled snippets, but which frames those are depends on
the frame count, known only after decoding to the end. `decode_selected` therefore:

1. decodes once, keeping only the frames the container's count (the hint) would select, while
   counting every frame that decodes (`grab()` decodes without the colour conversion);
2. if the count matches the hint (the usual case), that single pass is the answer; otherwise
   (or with no hint) it decodes a second time and keeps the frames the true count selects.

Frames go, in order, to a `FramePlan` that consumes them as they come (the converter encodes
JPEGs and computes flow with one previous frame held), so memory does not grow with the video's
length; `sample_frames` is the simple form that keeps the selected frames in a dict. The
two-pass variant (`mode="two_pass"`) always counts first; `bench/convert.py` measures both (one
pass is ~1.6-2x faster for RGB-only conversion, where decoding dominates).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Protocol

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
      declared_frames: the container's frame count (`container_frame_count`; 0 = none).
    """

    path: str
    num_frames: int
    fps: float
    height: int
    width: int
    declared_frames: int = 0


def open_video(path: str, threads: int = 0) -> cv2.VideoCapture:
    """An opened `cv2.VideoCapture`, or a DecodeError saying why the file cannot be read.

    Args:
      path: video file.
      threads: FFmpeg decoder threads; 0 = FFmpeg's choice (one per core). Conversion workers
        use 1: the workers already fill the cores.
    """
    if not os.path.exists(path):
        raise DecodeError(path, "missing: no such file (check --video_root and the split files)")
    if os.path.isdir(path):
        raise DecodeError(path, "not a file: it is a directory")
    if not os.access(path, os.R_OK):
        raise DecodeError(path, "unreadable: permission denied")
    if os.path.getsize(path) == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    params = [cv2.CAP_PROP_N_THREADS, threads] if threads > 0 else []
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise DecodeError(
            path, "not a video: OpenCV/FFmpeg cannot open it (corrupt, or unknown container)"
        )
    return cap


def _to_rgb(bgr: np.ndarray, resize: Resize) -> np.ndarray:
    h, w = resize.output_size(bgr.shape[0], bgr.shape[1])
    if (h, w) != bgr.shape[:2]:
        bgr = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # [h, w, 3]


def iter_frames(path: str, resize: Resize | None = Resize()) -> Iterator[np.ndarray]:
    """Yields every frame as RGB uint8 [H, W, 3], resized (None: decoded size), one at a time.

    Raises:
      DecodeError: if the file cannot be opened or no frame decodes.
    """
    cap = open_video(path)
    count = 0
    try:
        while True:
            ok, bgr = cap.read()
            if not ok or bgr is None:
                break
            count += 1
            if resize is None:
                yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # [h, w, 3]
            else:
                yield _to_rgb(bgr, resize)
    finally:
        cap.release()
    if count == 0:
        raise DecodeError(path, "zero frames: the file opens but no frame decodes (truncated?)")


def probe(path: str, threads: int = 0) -> VideoInfo:
    """Counts the frames that decode (one pass of `grab()`), with fps and the decoded size."""
    cap = open_video(path, threads)
    try:
        fps = _fps(cap)
        count, size = 0, (0, 0)
        while cap.grab():
            if count == 0:
                ok, bgr = cap.retrieve()
                if ok and bgr is not None:
                    size = bgr.shape[:2]
            count += 1
    finally:
        cap.release()
    if count == 0 or size == (0, 0):
        raise DecodeError(path, "zero frames: the file opens but no frame decodes (truncated?)")
    return VideoInfo(path, count, fps, size[0], size[1])


def container_frame_count(path: str) -> int:
    """The frame count the container claims (CAP_PROP_FRAME_COUNT; 0 if none): a hint only.

    OpenCV's FFmpeg backend reports the stream's frame count, or duration x fps rounded when
    the container stores no count.
    """
    cap = open_video(path)
    try:
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        cap.release()
    return int(count) if np.isfinite(count) and count > 0 else 0


def _fps(cap: cv2.VideoCapture) -> float:
    fps = cap.get(cv2.CAP_PROP_FPS)
    return float(fps) if np.isfinite(fps) and 0 < fps < 1000 else 0.0


class FramePlan(Protocol):
    """Which frames a pass needs, and what to do with each as it decodes (in frame order)."""

    indices: AbstractSet[int]

    def add(self, index: int, rgb: np.ndarray) -> None:
        """Receives frame `index` (RGB uint8 [H, W, 3], resized); frames arrive in order."""


def _decode_pass(
    path: str, plan: FramePlan, resize: Resize, threads: int
) -> tuple[int, float, tuple[int, int]]:
    """One decoding pass feeding `plan`; returns the decoded count, fps and decoded size."""
    cap = open_video(path, threads)
    size = (0, 0)
    wanted = plan.indices
    try:
        fps = _fps(cap)
        count = 0
        while cap.grab():
            if count in wanted or count == 0:
                ok, bgr = cap.retrieve()
                if not ok or bgr is None:
                    raise DecodeError(path, f"frame {count} is read but does not decode")
                if count == 0:
                    size = bgr.shape[:2]
                if count in wanted:
                    plan.add(count, _to_rgb(bgr, resize))
            count += 1
    finally:
        cap.release()
    return count, fps, size


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
      mode: "auto" (one pass when the container's count is right) or "two_pass" (count with
        `grab()` first, then decode).
      threads: FFmpeg decoder threads (`open_video`).

    Returns:
      (info, plan): the plan of the true frame count, fed every frame it asked for;
      `info.declared_frames` is the container's count, whatever the mode.

    Raises:
      DecodeError: missing / empty / not a video / zero frames / a frame that does not decode.
    """
    if mode not in ("auto", "two_pass"):
        raise ValueError(f"decode mode must be 'auto' or 'two_pass'. Received: {mode!r}")
    declared = container_frame_count(path)
    hint = declared if mode == "auto" else 0
    if hint > 0:
        plan = make_plan(hint)
        count, fps, size = _decode_pass(path, plan, resize, threads)
        if count == hint:
            return VideoInfo(path, count, fps, size[0], size[1], declared), plan
        del plan  # the container's count was wrong: decode again for the true count
        if count == 0:
            raise DecodeError(path, "zero frames: the file opens but no frame decodes (truncated?)")
    else:
        count = probe(path, threads).num_frames
    plan = _CheckedPlan(make_plan(count), count, path)
    _, fps, size = _decode_pass(path, plan, resize, threads)
    plan.check()
    return VideoInfo(path, count, fps, size[0], size[1], declared), plan.inner


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
    """Writes RGB uint8 [H, W, 3] frames to an .avi (tests and the benchmark).

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
