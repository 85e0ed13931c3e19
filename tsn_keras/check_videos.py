"""Check a dataset's videos before a long conversion: one row per problem in a CSV or JSON file.

    python -m tsn_keras.check_videos --dataset ucf101 --video_root UCF-101 \\
        --split_dir ucfTrainTestlist --report ucf101_check.csv [--exact] [--workers 8]

Every video of the split (train and test, the dataset flags of `tsn_keras.splits`) is opened
with the converter's decoder (`video.Decoder`, PyAV) in worker processes under the converter's
per-video time limit (`--video_timeout`), with a progress line (videos/s, ETA). The fast mode
(default) reads the container's metadata, decodes the first frame and the last
`TAIL_SECONDS` seconds (a seek), and compares where the decoded frames end with the declared
end; `--exact` decodes every frame and compares the frame count with the declared count (as
the converter will). Problems (the `problem` column):

  cannot_open     missing, not a regular file, empty, not a video (FFmpeg's reason)
  zero_frames     opens, but no frame decodes
  count_mismatch  decoded and declared differ by more than 2 frames and 5% (exact), or the
                  decoded frames end more than 5% (and 2 frames) before the declared end (fast)
  too_short       fewer frames than --snippet_length (flow/rgbdiff snippets repeat frames)
  tiny            shorter side below --min_side pixels
  too_long        longer than --max_seconds (slow to convert; --video_timeout may cut it)
  timed_out       still being read after --video_timeout seconds (a hung mount, a stuck decoder)
  worker_died     its worker process died twice (out of memory, a decoder crash)

Columns: path, video_id, problem, detail, declared_frames, decoded_frames (exact mode; fast:
empty), fps, width, height, seconds. The last line printed is the summary; exit status 0 when
no problem was found, 1 when some were, 2 for a bad flag or split file.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from absl import flags

from tsn_keras import cli, splits
from tsn_keras import video as video_lib
from tsn_keras.convert import command as convert_command
from tsn_keras.convert import progress as progress_lib
from tsn_keras.convert import snippets as snippet_lib
from tsn_keras.convert import workers as workers_lib

PROBLEMS = (
    "cannot_open",
    "zero_frames",
    "count_mismatch",
    "too_short",
    "tiny",
    "too_long",
    "timed_out",
    "worker_died",
)
TAIL_SECONDS = 2.0  # fast mode: decode from the keyframe before the last 2 s to the end


@dataclass(frozen=True)
class CheckSettings:
    """What counts as a problem (the flags of the same names).

    Attributes:
      exact: decode every frame (else the first frame and the tail).
      snippet_length: fewer frames than this is `too_short`.
      min_side: a shorter side below this many pixels is `tiny`.
      max_seconds: longer than this is `too_long`.
    """

    exact: bool = False
    snippet_length: int = 5
    min_side: int = 64
    max_seconds: float = 1800.0


@dataclass(frozen=True)
class Problem:
    """One row of the report."""

    path: str
    video_id: str
    problem: str
    detail: str
    declared_frames: int | None = None
    decoded_frames: int | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class CheckJob:
    path: str
    video_id: str


class CheckTask:
    """The workers' task (`workers.WorkerPool`): one video -> its problems."""

    def __init__(self, settings: CheckSettings):
        self.settings = settings

    def setup(self) -> None:
        pass

    def __call__(self, job: CheckJob) -> list[Problem]:
        return check_video(job.path, job.video_id, self.settings)


def check_video(path: str, video_id: str, settings: CheckSettings) -> list[Problem]:
    """The problems of one video (empty: none)."""
    try:
        with video_lib.Decoder(path) as decoder:
            return _check_open(decoder, video_id, settings)
    except video_lib.DecodeError as e:
        return [Problem(path, video_id, "cannot_open", e.reason)]


def _check_open(decoder: video_lib.Decoder, video_id: str, settings: CheckSettings) -> list:
    """The problems of an opened video: decodes the first frame and the tail, or all."""
    path, fps, declared = decoder.path, decoder.fps, decoder.declared_frames
    frames = decoder.frames()
    first = next(frames, None)
    if first is None:
        return [Problem(path, video_id, "zero_frames", video_lib.ZERO_FRAMES, declared, 0, fps)]
    height, width = first.height, first.width
    found: list[tuple[str, str]] = []
    decoded = None
    if settings.exact:
        decoded = 1 + sum(1 for _ in frames)
        seconds = decoded / fps if fps else decoder.end_time()
        if declared and _differs(decoded, declared):
            found.append(("count_mismatch", snippet_lib.shortfall_text(decoded, declared)))
        frame_count = decoded
    else:
        seconds = decoder.end_time()
        frame_count = declared
        found += _check_tail(decoder, fps, seconds)
    if frame_count and frame_count < settings.snippet_length:
        found.append(
            ("too_short", f"{frame_count} frames < --snippet_length {settings.snippet_length}")
        )
    if min(height, width) < settings.min_side:
        found.append(("tiny", f"{width}x{height} pixels, shorter side < --min_side"))
    if seconds > settings.max_seconds:
        found.append(("too_long", f"{seconds:.0f} s > --max_seconds {settings.max_seconds:g}"))
    return [
        Problem(path, video_id, kind, detail, declared, decoded, fps, width, height, seconds)
        for kind, detail in found
    ]


def _check_tail(decoder: video_lib.Decoder, fps: float, end: float) -> list[tuple[str, str]]:
    """Fast mode: whether the decoded frames reach the declared end (a truncated file's do not).

    The tail is decoded from the keyframe before its start; a container that cannot seek, or
    declares no duration, is decoded whole instead.
    """
    if end <= 0:
        return []
    try:
        tail = list(decoder.tail(TAIL_SECONDS))
    except video_lib.DecodeError:
        tail = list(decoder.frames())
    times = [f.time for f in tail if f.time is not None]
    frame_s = 1 / fps if fps else 0.0
    reached = max(times) - decoder.start_time() + frame_s if times else 0.0
    missing = end - reached
    if missing > 0.05 * end and missing > 2 * frame_s:
        where = f"{reached:.2f} s" if times else "nowhere (the tail does not decode)"
        return [("count_mismatch", f"frames end at {where} of the declared {end:.2f} s")]
    return []


def _differs(decoded: int, declared: int) -> bool:
    """More than 2 frames and 5% apart, either way (containers are often 1-2 frames off)."""
    gap = abs(decoded - declared)
    return gap > 2 and gap > 0.05 * declared


def check_videos(
    jobs: Sequence[CheckJob],
    settings: CheckSettings,
    workers: int,
    video_timeout: float = workers_lib.DEFAULT_VIDEO_TIMEOUT,
    progress: bool = True,
) -> list[Problem]:
    """Every video's problems, in job order, checked over `workers` processes."""
    if not jobs:
        return []

    def failed(job: CheckJob, reason: str) -> list[Problem]:
        kind = "timed_out" if reason.startswith("timed out") else "worker_died"
        return [Problem(job.path, job.video_id, kind, reason)]

    bar = progress_lib.Progress(len(jobs), progress, label="with problems")
    problems: list[Problem] = []
    pool = workers_lib.WorkerPool(CheckTask(settings), workers, video_timeout)
    try:
        for found in pool.run(jobs, failed):
            problems += found
            bar.update(bool(found))
    finally:
        pool.close()
        bar.close()
    return problems


def write_report(path: str, problems: Sequence[Problem]) -> None:
    """A .json file (a list of rows) or, for any other name, a CSV file with a header."""
    rows = [asdict(p) for p in problems]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        if path.endswith(".json"):
            json.dump(rows, f, indent=1)
            f.write("\n")
        else:
            writer = csv.DictWriter(f, fieldnames=list(Problem.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(rows)
    os.replace(tmp, path)


def summary(num_videos: int, problems: Sequence[Problem], seconds: float, report: str) -> str:
    counts = Counter(p.problem for p in problems)
    videos = len({p.path for p in problems})
    kinds = ", ".join(f"{k} {counts[k]}" for k in PROBLEMS if counts[k])
    return (
        f"checked {num_videos} videos in {seconds:.1f} s: {videos} with problems"
        + (f" ({kinds})" if kinds else "")
        + f"; report {report}"
    )


USAGE = __doc__


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns 0 (no problem), 1 (problems, see the report) or 2 (bad usage)."""
    return cli.run(_main, argv, usage_errors=(ValueError,), stopped="; no report written")


def _main(argv: list[str]) -> int:
    fv = flags.FlagValues()
    splits.define_dataset_flags(fv)
    flags.DEFINE_string("report", "video_check.csv", "CSV, or JSON for *.json.", flag_values=fv)
    flags.DEFINE_bool("exact", False, "Decode every frame, not the ends.", flag_values=fv)
    flags.DEFINE_integer("workers", 0, "Worker processes; 0 = all cores.", flag_values=fv)
    flags.DEFINE_integer(
        "snippet_length", 5, "Fewer frames than this is too_short.", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_integer(
        "min_side", 64, "Shorter side below this (pixels) is tiny.", lower_bound=1, flag_values=fv
    )
    flags.DEFINE_float(
        "max_seconds", 1800.0, "Longer than this is too_long.", lower_bound=0, flag_values=fv
    )
    flags.DEFINE_bool("progress", True, "Progress line on stderr.", flag_values=fv)
    convert_command.define_video_timeout_flag(fv)
    if cli.parse_flags(fv, argv, USAGE) is None:
        return 0
    split = splits.split_from_flags(fv, require_all=fv.require_all)
    paths = dict.fromkeys(path for path, _ in [*split.train, *split.test])  # in order, once
    jobs = [CheckJob(p, splits.video_id(p, split.video_root)) for p in paths]
    settings = CheckSettings(fv.exact, fv.snippet_length, fv.min_side, fv.max_seconds)
    start = time.monotonic()
    workers = min(fv.workers or os.cpu_count() or 1, max(1, len(jobs)))
    problems = check_videos(jobs, settings, workers, fv.video_timeout, fv.progress)
    try:
        write_report(fv.report, problems)
    except OSError as e:
        raise cli.UsageError(f"--report {fv.report}: cannot write it ({e.strerror or e})") from e
    print(summary(len(jobs), problems, time.monotonic() - start, fv.report))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
