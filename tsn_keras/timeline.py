"""When does each action happen: a long video scored window by window (`predict --timeline`).

(A little over 500 lines on purpose: the window stream, its scoring and the JSON / CSV / PNG
outputs read one Timeline structure; the plot stays beside the structure it draws.)

    python -m tsn_keras.predict long_video.mp4 --models runs/rgb/export --timeline \
        --window_seconds 4 --stride_seconds 1 --num_segments 8 --crops 1

A window of `window_seconds` starts every `stride_seconds`; each window is one TSN clip: the
converter's own per-video plan (`convert.SnippetPlan`: K evenly spaced snippets by
`sampling.snippet_frame_indices`, the same resizing, flow and JPEG encoding) is built for the
window's frames and serialized as the record of a video holding just those frames, then scored
by the evaluation code (`scoring.score_examples`: snippet choice, test crops, the model's own
preprocessing). So a window is scored exactly as `predict` would score a video cut to it.
Several models are fused as `predict` fuses them (weighted softmax probabilities).

Memory is bounded whatever the video's length: frames stream through one decoder
(`video.Decoder`: every frame decoded, colour conversion and resizing only for the frames some
window needs); the open windows (ceil(window / stride) of them) hold only their snippets'
JPEGs, and finished windows are scored in passes of WINDOWS_PER_PASS. A progress line on
stderr shows the position in the video, windows done, frames/s and the time left.

Windows cover frames [i * S, i * S + W) with W = round(window_seconds * fps) and
S = round(stride_seconds * fps) (each >= 1); the last window is the last one that fits, so up
to S - 1 frames at the end are scored by no window. A video shorter than one window is one
window of all its frames. Times are frame / fps seconds, `end` exclusive.

Outputs per video (`write_outputs`): <stem>.timeline.json (settings, and per window start, end
and top classes with their scores), <stem>.timeline.csv (one row per window: start, end,
class_1, score_1, ...), and <stem>.timeline.png (drawn with OpenCV, no plotting dependency):
the scores over time of the classes that win windows, with a strip of each window's winner.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import tensorflow as tf

from tsn_keras import convert, fuse, scoring, visualize
from tsn_keras import video as video_lib

WINDOWS_PER_PASS = 32  # finished windows scored per tf.data pass (each ~K JPEGs, < 1 MB)


@dataclasses.dataclass(frozen=True)
class TimelineConfig:
    """How to cut and score a video.

    Attributes:
      window_seconds: length of a window (one TSN clip).
      stride_seconds: time between the starts of two windows.
      num_segments: K snippets per window.
      crops: test crops per snippet (1, 3 or 10).
      top: classes kept per window in the JSON and CSV.
    """

    window_seconds: float = 5.0
    stride_seconds: float = 1.0
    num_segments: int = 8
    crops: int = 1
    top: int = 5

    def __post_init__(self):
        for name in ("window_seconds", "stride_seconds"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"--{name} must be a number > 0. Received: {value}")
        if self.num_segments < 1:
            raise ValueError(f"--num_segments must be >= 1. Received: {self.num_segments}")
        if self.crops not in (1, 3, 10):
            raise ValueError(f"--crops must be 1, 3 or 10. Received: {self.crops}")
        if self.top < 1:
            raise ValueError(f"--top must be >= 1. Received: {self.top}")

    def window_frames(self, fps: float) -> tuple[int, int]:
        """(W, S): window length and stride in frames at `fps`."""
        return max(1, round(self.window_seconds * fps)), max(1, round(self.stride_seconds * fps))


@dataclasses.dataclass
class Timeline:
    """One video's windows and their fused class probabilities.

    Attributes:
      path: the video.
      fps: its frame rate.
      num_frames: frames that decoded.
      classes: class names, model order.
      starts: first frame of each window [windows].
      ends: one past the last frame of each window [windows].
      probs: fused probabilities [windows, classes].
      config: the settings used.
    """

    path: str
    fps: float
    num_frames: int
    classes: tuple[str, ...]
    starts: np.ndarray
    ends: np.ndarray
    probs: np.ndarray
    config: TimelineConfig

    def windows(self) -> list[dict]:
        """Per window: start and end in seconds, and the top classes with their scores."""
        rows = []
        for start, end, p in zip(self.starts, self.ends, self.probs, strict=True):
            order = np.argsort(-p, kind="stable")[: self.config.top]
            rows.append(
                {
                    "start": round(float(start) / self.fps, 3),
                    "end": round(float(end) / self.fps, 3),
                    "top": [[self.classes[i], round(float(p[i]), 6)] for i in order],
                }
            )
        return rows

    def to_json(self) -> dict:
        c = self.config
        return {
            "video": self.path,
            "fps": self.fps,
            "num_frames": self.num_frames,
            "window_seconds": c.window_seconds,
            "stride_seconds": c.stride_seconds,
            "num_segments": c.num_segments,
            "crops": c.crops,
            "windows": self.windows(),
        }


class _Progress:
    """One stderr line: seconds of video done, windows, frames/s, time left."""

    def __init__(self, name: str, total_frames: int, fps: float, enabled: bool, stream=None):
        self.name, self.total, self.fps, self.enabled = name, total_frames, fps, enabled
        self.stream = stream or sys.stderr
        self.start = self.last = time.monotonic()

    def update(self, frames: int, windows: int, final: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.5 and not final):
            return
        self.last = now
        rate = frames / max(now - self.start, 1e-9)
        line = f"\r{self.name}: {frames / self.fps:.1f}"
        if self.total >= frames:  # the container's count: a hint, for the percentage and ETA
            left = int((self.total - frames) / max(rate, 1e-9))
            line += f"/{self.total / self.fps:.1f} s ({100 * frames / self.total:.0f}%)"
            line += f"  ETA {left // 3600}:{left // 60 % 60:02d}:{left % 60:02d}"
        else:
            line += " s"
        self.stream.write(f"{line}  {windows} windows  {rate:.0f} frames/s   ")
        if final:
            self.stream.write("\n")
        self.stream.flush()


def _window_example(
    plan: convert.SnippetPlan,
    config: convert.ConvertConfig,
    decoded_size: tuple[int, int],
    fps: float,
    name: str,
) -> dict[str, bytes]:
    """A finished window as the converter would store a video of just its frames."""
    return plan.examples(name, 0, "", plan.num_frames, fps, decoded_size)


class WindowStream:
    """Iterates (start frame, end frame, {modality: serialized example}) over the full windows.

    Decodes the video once, in order, in a child process (`convert.ChildDecoder`: a wait of
    more than `video_timeout` seconds for the next frame kills it, "timed out after N s"; 0 =
    no limit); a window's example is built as its frames stream by and yielded when its last
    frame has passed. Yields nothing for a video shorter than one window
    (the caller scores it whole). After the iteration, `fps` and `num_frames` (frames that
    decoded) are set.

    Raises (while iterating):
      video.DecodeError: the file cannot be read, has no frame rate, or timed out.
    """

    def __init__(
        self,
        path: str,
        config: convert.ConvertConfig,
        timeline: TimelineConfig,
        progress: bool = True,
        video_timeout: float = convert.DEFAULT_VIDEO_TIMEOUT,
    ):
        self.path, self.config, self.timeline, self.progress = path, config, timeline, progress
        self.video_timeout = video_timeout
        self.fps = 0.0
        self.num_frames = 0
        self.max_open = 0  # windows held at once: ceil(W / S), whatever the video's length

    def __iter__(self) -> Iterator[tuple[int, int, dict[str, bytes]]]:
        path, config = self.path, self.config
        # The converter's per-video plan and flow engines, one plan per open window.
        engines = convert.Engines(config)
        with convert.ChildDecoder(path, config.resize, self.video_timeout) as decoder:
            fps, declared = decoder.info()
            if not fps:
                raise video_lib.DecodeError(path, "no frame rate: windows cannot be placed in time")
            self.fps = fps
            length, stride = self.timeline.window_frames(fps)
            needed = convert.SnippetPlan(length, config, engines).indices  # the same per window
            bar = _Progress(os.path.basename(path), declared, fps, self.progress)
            open_windows: list[tuple[int, convert.SnippetPlan]] = []  # (start frame, plan)
            decoded_size = (0, 0)
            frame = done = 0
            select = convert.WindowFrames(stride, length, needed)
            for _, size, rgb in decoder.frames(select):  # rgb [h, w, 3] of the needed frames
                if frame % stride == 0:
                    open_windows.append((frame, convert.SnippetPlan(length, config, engines)))
                self.max_open = max(self.max_open, len(open_windows))
                if frame == 0:
                    decoded_size = size
                if rgb is not None:
                    for start, plan in open_windows:
                        if frame - start in plan.indices:
                            plan.add(frame - start, rgb)
                frame += 1
                self.num_frames = frame
                while open_windows and open_windows[0][0] + length == frame:
                    start, plan = open_windows.pop(0)
                    name = f"{os.path.basename(path)}@{start}"
                    yield start, frame, _window_example(plan, config, decoded_size, fps, name)
                    done += 1
                bar.update(frame, done)
            bar.update(frame, done, final=True)
        if frame == 0:
            raise video_lib.DecodeError(path, "zero frames: the file opens but no frame decodes")


def score_timeline(
    path: str,
    scorers: Sequence[scoring.Scorer],
    weights: Sequence[float] | None = None,
    config: TimelineConfig = TimelineConfig(),
    progress: bool = True,
    video_timeout: float = convert.DEFAULT_VIDEO_TIMEOUT,
    **overrides,
) -> Timeline:
    """Scores every window of a video with every model and fuses them.

    Args:
      path: the video.
      scorers: the models (one per stream), with the same classes.
      weights: fusion weights (None: `fuse.DEFAULT_WEIGHTS`).
      config: window, stride, K, crops, top.
      progress: the stderr progress line.
      video_timeout: seconds the decoder may take to deliver the next frame (`WindowStream`).
      **overrides: converter settings that replace the models' (e.g. flow_algorithm).

    Raises:
      video.DecodeError: the video cannot be read (or timed out).
      ValueError: models with other classes, or a weight count that does not match.
    """
    weights = scoring.fusion_weights(scorers, weights)
    classes = scorers[0].info.classes
    probs: dict[int, np.ndarray] = {}  # window start -> [models, classes]
    bounds: dict[int, int] = {}  # window start -> end frame
    # One decoding pass per conversion setting (models trained on other flow share none).
    for convert_config, members in scoring.group_models(scorers, config.num_segments, **overrides):
        stream = WindowStream(path, convert_config, config, progress, video_timeout)
        batch: list[tuple[int, dict[str, bytes]]] = []
        windows = 0
        for start, end, examples in stream:
            bounds[start] = end
            windows += 1
            batch.append((start, examples))
            if len(batch) == WINDOWS_PER_PASS:
                _score(batch, scorers, members, config, probs)
                batch = []
        if batch:
            _score(batch, scorers, members, config, probs)
        if not windows:  # shorter than one window: the whole video is the window, as predict
            job = convert.VideoJob(path, os.path.basename(path), 0, "")
            result = convert.convert_video(job, convert_config)
            if result.examples is None:
                raise video_lib.DecodeError(path, result.reason)
            bounds[0] = result.num_frames
            _score([(0, result.examples)], scorers, members, config, probs)
    starts = sorted(bounds)
    stacked = np.stack([probs[s] for s in starts])  # [windows, models, classes]
    fused = np.tensordot(stacked, np.asarray(weights, np.float64), axes=([1], [0]))
    return Timeline(
        path=path,
        fps=stream.fps,
        num_frames=stream.num_frames,
        classes=tuple(classes),
        starts=np.array(starts, np.int64),
        ends=np.array([bounds[s] for s in starts], np.int64),
        probs=fused / float(sum(weights)),  # [windows, classes]
        config=config,
    )


def _score(
    batch: list[tuple[int, dict[str, bytes]]],
    scorers: Sequence[scoring.Scorer],
    members: Sequence[int],
    config: TimelineConfig,
    probs: dict[int, np.ndarray],
) -> None:
    """Scores a batch of windows with the models of one conversion group, into `probs`."""
    for m in members:
        modality = scorers[m].info.modality
        data = tf.data.Dataset.from_tensor_slices(tf.constant([e[modality] for _, e in batch]))
        scores = scoring.score_examples(scorers[m], data, config.num_segments, config.crops)
        for (start, _), (_, _, logits) in zip(batch, scores, strict=True):
            row = probs.setdefault(start, np.zeros((len(scorers), len(scorers[0].info.classes))))
            row[m] = fuse.softmax(logits[None].astype(np.float64))[0]


# ------------------------------------------------------------------------------------ outputs


def write_json(timeline: Timeline, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(timeline.to_json(), f, indent=1)
        f.write("\n")


def write_csv(timeline: Timeline, path: str) -> None:
    """One row per window: start, end (seconds), then class_k, score_k for the top classes."""
    k = min(timeline.config.top, len(timeline.classes))
    header = ["start", "end"] + [
        f"{name}_{i}" for i in range(1, k + 1) for name in ("class", "score")
    ]
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for window in timeline.windows():
            row = [f"{window['start']:.3f}", f"{window['end']:.3f}"]
            for name, score in window["top"]:
                row += [name, f"{score:.6f}"]
            writer.writerow(row)


def plotted_classes(timeline: Timeline, max_classes: int = 5) -> list[int]:
    """The classes worth a line: those that win windows, most windows first (ties: higher peak
    score), up to `max_classes`. A class that wins no window is left out (the legend names only
    what the strip under the plot shows)."""
    winners = np.argmax(timeline.probs, axis=1)  # [windows]
    wins = np.bincount(winners, minlength=len(timeline.classes))
    peak = timeline.probs.max(axis=0)
    order = sorted(np.flatnonzero(wins).tolist(), key=lambda c: (-wins[c], -peak[c], c))
    return order[:max_classes]


def render_plot(timeline: Timeline, width: int = 960, max_classes: int = 5) -> np.ndarray:
    """The timeline as an RGB uint8 image (`visualize.score_timeline`): the score curves of the
    plotted classes at each window's centre, a strip of the top class over time
    (`top_segments`), time ticks and a legend."""
    c = timeline.config
    title = f"{os.path.basename(timeline.path)}: class scores per window ({c.window_seconds:g} s "
    title += f"windows every {c.stride_seconds:g} s); strip: top class"
    index = {name: k for k, name in enumerate(timeline.classes)}
    return visualize.score_timeline(
        title,
        timeline.classes,
        timeline.probs,
        (timeline.starts + timeline.ends) / 2.0 / timeline.fps,  # [windows] seconds
        [(begin, end, index[name]) for begin, end, name, _ in top_segments(timeline)],
        max(timeline.num_frames, int(timeline.ends.max())) / timeline.fps,
        plotted_classes(timeline, max_classes),
        width,
    )


def write_outputs(timeline: Timeline, out_dir: str) -> dict[str, str]:
    """Writes <stem>.timeline.{json,csv,png} into out_dir; returns {kind: path}."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, os.path.splitext(os.path.basename(timeline.path))[0])
    paths = {kind: f"{stem}.timeline.{kind}" for kind in ("json", "csv", "png")}
    write_json(timeline, paths["json"])
    write_csv(timeline, paths["csv"])
    visualize.write_png(paths["png"], render_plot(timeline))
    return paths


def run(
    videos: Sequence[str],
    scorers: Sequence[scoring.Scorer],
    weights: Sequence[float] | None,
    config: TimelineConfig,
    out_dir: str,
    progress: bool = True,
    video_timeout: float = convert.DEFAULT_VIDEO_TIMEOUT,
    **overrides,
) -> int:
    """`predict --timeline`: each video's timeline, printed as its top-1 segments and written.

    Returns:
      0, or 1 when some video could not be read (reported, the others still done).
    """
    failed = 0
    for path in videos:
        try:
            timeline = score_timeline(
                path, scorers, weights, config, progress, video_timeout, **overrides
            )
        except video_lib.DecodeError as e:
            print(f"{path}\n  could not be read: {e.reason}")
            failed += 1
            continue
        except cv2.error as e:  # e.g. flow on a damaged frame, as the converter records it
            print(f"{path}\n  could not be read: OpenCV error: {str(e).strip().splitlines()[-1]}")
            failed += 1
            continue
        print(path)
        for start, end, name, score in top_segments(timeline):
            span = f"{visualize.clock(start):>9} - {visualize.clock(end):>9}"
            print(f"  {span}  {name} (max {100 * score:.1f}%)")
        for kind, written in write_outputs(timeline, out_dir).items():
            print(f"  {kind}: {written}")
    return 1 if failed else 0


def top_segments(timeline: Timeline) -> list[tuple[float, float, str, float]]:
    """Runs of consecutive windows with the same top class: (start s, end s, class, max score).

    The runs tile the scored time: a run ends half-way between the centre of its last window
    and the centre of the next run's first window (the first starts at 0, the last ends with
    its last window), so overlapping windows do not give overlapping runs.
    """
    winners = np.argmax(timeline.probs, axis=1)
    centres = (timeline.starts + timeline.ends) / 2.0 / timeline.fps  # [windows] seconds
    runs: list[tuple[float, float, str, float]] = []
    begin, begin_time = 0, float(timeline.starts[0]) / timeline.fps
    for i in range(1, len(winners) + 1):
        if i == len(winners) or winners[i] != winners[begin]:
            c = int(winners[begin])
            if i == len(winners):
                end_time = float(timeline.ends[-1]) / timeline.fps
            else:
                end_time = float(centres[i - 1] + centres[i]) / 2.0
            score = float(timeline.probs[begin:i, c].max())
            runs.append((begin_time, end_time, timeline.classes[c], score))
            begin, begin_time = i, end_time
    return runs
