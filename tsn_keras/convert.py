"""Videos -> sharded TFRecords, one set of shard files per modality: jobs, workers, resume.

`main` is the command line over `convert` (`scripts/make_tfrecords.py` calls it). The steps:

* Each subset's videos are put in a fixed order (by MD5 of the video id) and dealt round-robin
  to `num_shards` shards, so the assignment depends only on the video list, never on timing,
  and every shard mixes classes. `num_slices > 1` splits the shards between machines: slice k
  converts the shards whose index % num_slices == k (all slices write into one shared --out).
* Each modality goes to its own files (`records.shard_filename`: `train-rgb-00000-of-00004`,
  `train-flow-00000-of-00004`, ...): one SequenceExample per video and modality, the full
  context with that modality's feature lists only, videos in the same order in every
  modality's file of a shard. Training reads one modality, so an RGB clip reads RGB bytes only
  (~0.7 MB of a ~1.8 MB rgb+flow video at 25 snippets, 340x256).
* Workers (`multiprocessing`, spawn start method) decode a video, compute flow and encode the
  JPEGs and the serialized SequenceExamples; they never import TensorFlow. The parent process
  writes the shards with `tf.io.TFRecordWriter` in shard order. Each worker runs OpenCV with
  one thread (the workers fill the cores); `workers=1` converts in the calling process with
  OpenCV's default threads. Exception: `--flow tvl1_tensor`'s solver is Keras code, which each
  worker imports and runs on one thread (docs/flow_tvl1.md). The parent watches its workers
  (`_WorkerPool`): a worker that dies (kill -9, the out-of-memory killer) has its video retried
  once in a fresh worker, then listed as a failure ("worker died (signal 9) while converting
  <path>"); the run goes on.
* A video that decodes fewer than `min_decoded_fraction` of the frames its container declares
  is a failure; a smaller shortfall (`is_short`) is stored, warned about on stderr and listed in
  the sidecar and the manifest (`short_videos`).
* Memory per worker: the frames stream through (`video.decode_selected`); only the current
  and previous grayscale frame and the encoded JPEGs of one example are held, so it does not
  grow with the video's length (with `num_snippets=0`, dense, the example itself does).
* A shard's files (one per modality) are written to `<file>.incomplete`, its sidecar
  `.progress/<base name>.json` (file per modality, example count, failures, settings digest;
  base name = `records.shard_filename` without a modality) is written next, then each file is
  renamed to its final name. A rerun skips shards whose every modality file and sidecar exist
  with the same settings digest, redoes the rest (all of a shard's files); nothing is
  duplicated. Reusing an --out made with other settings is refused. A shard redone in a folder
  of the older layout (one file per shard holding every modality) loses that older file. A
  write that fails (a full disk, Ctrl-C) removes the shard's `.incomplete` files (and any
  `.tmp` of a JSON / text file) before the error goes on.
* A video that cannot be decoded is skipped; its path and reason go to `<out>/failures.txt` and
  the manifest. The manifest (`records.MANIFEST_NAME`) is rebuilt from all sidecars at the end.

Frames for a video with F decoded frames, N snippets (0 = dense: every frame) of length L:
starts = `sampling.snippet_frame_indices(F, N, L)[:, 0]`; rgb stores frame `start`; rgbdiff
frames `start..start+L` clamped to F-1; flow field j = flow(frame j -> frame j+1) for
j = start..start+L-1 clamped to max(F-2, 0) (a 1-frame video gives one zero field).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from absl import flags

from tsn_keras import cli, records, sampling, splits
from tsn_keras import flow as flow_lib
from tsn_keras import video as video_lib
from tsn_keras.modalities import MODALITIES

SUBSETS = ("train", "test")
FAILURES_NAME = "failures.txt"
PROGRESS_DIR = ".progress"
# Automatic shard count: about 100 videos per shard, i.e. per modality file ~70 MB of rgb or
# ~110 MB of flow at 25 snippets of 340x256.
VIDEOS_PER_SHARD = 100


@dataclass(frozen=True)
class ConvertConfig:
    """What to store for each video (everything that changes the examples).

    Attributes:
      modalities: subset of modalities.MODALITIES.
      flow_algorithm: "tvl1", "tvl1_tensor", "dis" or "farneback" (flow and warped_flow).
      flow_bound: clip bound in pixels for the uint8 encoding.
      dis_preset: DIS preset, "ultrafast", "fast" or "medium".
      flow_preset: tvl1_tensor's preset, "parity" or "fast" (tsn_keras.tvl1.PRESETS).
      num_snippets: N evenly spaced snippets per video; 0 = every frame (dense).
      snippet_length: L consecutive frames per flow / rgbdiff snippet.
      width: stored width (ignored with short_side).
      height: stored height (ignored with short_side).
      short_side: keep the aspect ratio, shorter side this many pixels.
      jpeg_quality: 0-100.
      decode_mode: "auto" (one pass when the container's frame count is right) or "two_pass".
      warp: warped-flow settings.
      min_decoded_fraction: a video that decodes fewer than this fraction of the frames its
        container declares is a failure (truncated); above it, a shortfall is stored, warned
        about and listed in the manifest (`short_videos`).
    """

    modalities: tuple[str, ...] = ("rgb", "flow")
    flow_algorithm: str = "tvl1"
    flow_bound: float = flow_lib.DEFAULT_BOUND
    dis_preset: str = "medium"
    flow_preset: str = "parity"
    num_snippets: int = 25
    snippet_length: int = 5
    width: int = video_lib.DEFAULT_WIDTH
    height: int = video_lib.DEFAULT_HEIGHT
    short_side: int | None = None
    jpeg_quality: int = 90
    decode_mode: str = "auto"
    warp: flow_lib.WarpSettings = flow_lib.WarpSettings()
    min_decoded_fraction: float = 0.5

    def __post_init__(self):
        object.__setattr__(self, "modalities", records.check_modalities(self.modalities))
        if self.flow_algorithm not in flow_lib.ALGORITHMS:
            raise ValueError(
                f"--flow must be one of {list(flow_lib.ALGORITHMS)}. "
                f"Received: {self.flow_algorithm!r}"
            )
        if self.flow_preset not in flow_lib.TVL1_PRESETS:
            raise ValueError(
                f"--flow_preset must be one of {list(flow_lib.TVL1_PRESETS)}. "
                f"Received: {self.flow_preset!r}"
            )
        if not (math.isfinite(self.flow_bound) and self.flow_bound > 0):
            raise ValueError(f"--flow_bound must be a number > 0. Received: {self.flow_bound}")
        if self.num_snippets < 0:
            raise ValueError(f"--snippets must be >= 0 (0 = dense). Received: {self.num_snippets}")
        if self.snippet_length < 1:
            raise ValueError(f"--snippet_length must be >= 1. Received: {self.snippet_length}")
        if not 0 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg_quality must be in [0, 100]. Received: {self.jpeg_quality}")
        if self.decode_mode not in ("auto", "two_pass"):
            raise ValueError(
                f"decode_mode must be 'auto' or 'two_pass'. Received: {self.decode_mode!r}"
            )
        if not 0 <= self.min_decoded_fraction <= 1:  # also refuses nan
            raise ValueError(
                f"--min_decoded_fraction must be in [0, 1]. Received: {self.min_decoded_fraction}"
            )
        video_lib.Resize(self.width, self.height, self.short_side)  # validates the size

    @property
    def resize(self) -> video_lib.Resize:
        return video_lib.Resize(self.width, self.height, self.short_side)

    @property
    def has_flow(self) -> bool:
        return "flow" in self.modalities or "warped_flow" in self.modalities

    def digest(self) -> str:
        """Short hash of every setting (shards made with other settings are not reused)."""
        fields = dataclasses.asdict(self)
        # Added after folders were converted: left out at their defaults so those still resume.
        if self.min_decoded_fraction == 0.5:
            del fields["min_decoded_fraction"]
        if self.flow_algorithm != "tvl1_tensor":
            del fields["flow_preset"]
        return _digest(fields)


@dataclass(frozen=True)
class VideoJob:
    """One video to convert.

    Attributes:
      path: the file.
      video_id: relative path with '/' (`splits.video_id`), stored in the example.
      label: 0-based class index.
      label_text: class name.
    """

    path: str
    video_id: str
    label: int
    label_text: str


@dataclass(frozen=True)
class VideoResult:
    """A worker's answer: the serialized examples, or why there are none, and counters.

    Attributes:
      examples: modality -> serialized SequenceExample holding that modality only (and the
        full context), one per `ConvertConfig.modalities`; None when the video failed.
      num_frames: frames that decoded.
      declared_frames: the frame count the container declares (0 = none).
    """

    job: VideoJob
    examples: dict[str, bytes] | None
    reason: str | None = None
    num_frames: int = 0
    flow_pairs: int = 0
    warped_fallbacks: int = 0
    declared_frames: int = 0

    @property
    def short(self) -> bool:
        """Decoded clearly fewer frames than declared (`is_short`)."""
        return is_short(self.num_frames, self.declared_frames)


def is_short(decoded: int, declared: int) -> bool:
    """Whether `decoded` falls short of the container's `declared` count by more than noise.

    Containers are often one or two frames off (B-frames, edit lists): a shortfall counts when
    it is more than 2 frames and more than 5% of the declared count.
    """
    missing = declared - decoded
    return declared > 0 and missing > 2 and missing > 0.05 * declared


def shortfall_text(decoded: int, declared: int) -> str:
    """'decoded 10 of 41 declared frames': the words of the warning and the failure."""
    return f"decoded {decoded} of {declared} declared frames"


@dataclass
class ConvertReport:
    """What one `convert` call did (the manifest is on disk; rates are for this run only)."""

    manifest: dict
    videos: int = 0
    failed: int = 0
    frames: int = 0
    flow_pairs: int = 0
    seconds: float = 0.0
    skipped_shards: list[str] = field(default_factory=list)


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# One video (runs in the workers).


class _SnippetPlan:
    """Frames one example needs for F frames; consumes them in order (video.FramePlan)."""

    def __init__(self, num_frames: int, config: ConvertConfig, engines: _Engines):
        self.config, self.engines = config, engines
        n, length = num_frames, config.snippet_length
        idx = sampling.snippet_frame_indices(n, config.num_snippets, length)  # [N, L]
        self.starts = idx[:, 0]  # [N]
        self.rgbdiff_idx = np.minimum(self.starts[:, None] + np.arange(length + 1), n - 1)
        self.field_idx = np.minimum(self.starts[:, None] + np.arange(length), max(n - 2, 0))
        mods = config.modalities
        jpeg = set()
        if "rgb" in mods:
            jpeg |= set(self.starts.tolist())
        if "rgbdiff" in mods:
            jpeg |= set(self.rgbdiff_idx.ravel().tolist())
        self.fields = set(self.field_idx.ravel().tolist()) if config.has_flow else set()
        self.jpeg_frames = jpeg
        self.indices = frozenset(jpeg | self.fields | {min(f + 1, n - 1) for f in self.fields})
        self.num_frames = n
        self.jpegs: dict[int, bytes] = {}
        self.flow_jpegs: dict[str, dict[int, tuple[bytes, bytes]]] = {"flow": {}, "warped_flow": {}}
        self.prev: tuple[int, np.ndarray] | None = None
        self.flow_pairs = 0
        self.fallbacks = 0
        # batched flow (tvl1_tensor): (modality, field, first, second) waiting for `finish`;
        # warped-flow fields that fell back to the plain flow of the same field
        self.pending: list[tuple[str, int, np.ndarray, np.ndarray]] = []
        self.fallback_fields: list[int] = []

    def add(self, index: int, rgb: np.ndarray) -> None:
        q = self.config.jpeg_quality
        if index in self.jpeg_frames:
            self.jpegs[index] = records.encode_jpeg(rgb, q)
        if not self.fields:
            return
        gray = flow_lib.to_gray(rgb)
        if self.num_frames == 1:
            self._flow_field(0, gray, gray)
        elif self.prev is not None and self.prev[0] == index - 1:
            self._flow_field(index - 1, self.prev[1], gray)
        self.prev = (index, gray) if index in self.fields else None

    def _flow_field(self, j: int, first: np.ndarray, second: np.ndarray) -> None:
        bound, q = self.config.flow_bound, self.config.jpeg_quality
        mods = self.config.modalities
        if self.engines.flow.batched:  # all of the video's pairs go through the solver at once
            self._queue_field(j, first, second)
            return
        plain = None
        if "flow" in mods:
            plain = self.engines.flow(first, second)
            x, y = flow_lib.encode_flow(plain, bound)
            self.flow_jpegs["flow"][j] = (records.encode_jpeg(x, q), records.encode_jpeg(y, q))
            self.flow_pairs += 1
        if "warped_flow" in mods:
            f, fell_back = self.engines.warped(first, second, plain)
            x, y = flow_lib.encode_flow(f, bound)
            enc = (records.encode_jpeg(x, q), records.encode_jpeg(y, q))
            self.flow_jpegs["warped_flow"][j] = enc
            self.flow_pairs += 1
            self.fallbacks += int(fell_back)

    def _queue_field(self, j: int, first: np.ndarray, second: np.ndarray) -> None:
        mods = self.config.modalities
        if "flow" in mods:
            self.pending.append(("flow", j, first, second))
        if "warped_flow" in mods:
            warped = self.engines.warped.warp_second(first, second)
            self.fallbacks += int(warped is None)
            if warped is None and "flow" in mods:  # the plain flow, computed once
                self.fallback_fields.append(j)
            else:
                self.pending.append(("warped_flow", j, first, second if warped is None else warped))

    def finish(self) -> None:
        """Computes and encodes the queued flow fields in one batched solver call."""
        if not self.pending:
            return
        firsts = np.stack([p[2] for p in self.pending])  # [P, H, W]
        seconds = np.stack([p[3] for p in self.pending])  # [P, H, W]
        flows = self.engines.flow.batch(firsts, seconds)  # [P, H, W, 2]
        bound, q = self.config.flow_bound, self.config.jpeg_quality
        for (modality, j, _, _), f in zip(self.pending, flows, strict=True):
            x, y = flow_lib.encode_flow(f, bound)
            self.flow_jpegs[modality][j] = (records.encode_jpeg(x, q), records.encode_jpeg(y, q))
            self.flow_pairs += 1
        for j in self.fallback_fields:
            self.flow_jpegs["warped_flow"][j] = self.flow_jpegs["flow"][j]
            self.flow_pairs += 1
        self.pending, self.fallback_fields = [], []

    def encoded(self, modality: str) -> dict[str, list]:
        """One modality's JPEGs, keyed as `records.serialize_example` takes them."""
        if modality == "rgb":
            return {"rgb": [self.jpegs[s] for s in self.starts.tolist()]}
        if modality == "rgbdiff":
            return {"rgbdiff": [[self.jpegs[i] for i in row] for row in self.rgbdiff_idx.tolist()]}
        table = self.flow_jpegs[modality]  # flow, warped_flow
        rows = self.field_idx.tolist()
        return {
            f"{modality}_x": [[table[j][0] for j in row] for row in rows],
            f"{modality}_y": [[table[j][1] for j in row] for row in rows],
        }


class _Engines:
    """Per-process resources: OpenCV flow objects (built once per worker), decoder threads."""

    def __init__(self, config: ConvertConfig, decode_threads: int = 0):
        self.decode_threads = decode_threads
        self.flow = None
        self.warped = None
        if config.has_flow:
            self.flow = flow_lib.OpticalFlow(
                config.flow_algorithm, config.dis_preset, config.flow_preset
            )
            self.warped = flow_lib.WarpedFlow(self.flow, config.warp)


def convert_video(
    job: VideoJob, config: ConvertConfig, engines: _Engines | None = None
) -> VideoResult:
    """Decodes one video and builds its serialized examples, one per modality.

    Args:
      job: the video.
      config: what to store.
      engines: reuse flow objects across videos (built from config when None).

    Returns:
      VideoResult: examples {modality: bytes} for `config.modalities`, or examples None and the
      reason (DecodeError / OpenCV error / fewer decoded frames than
      `config.min_decoded_fraction` of the declared count).
    """
    engines = engines or _Engines(config)
    try:
        info, plan = video_lib.decode_selected(
            job.path,
            lambda n: _SnippetPlan(n, config, engines),
            config.resize,
            config.decode_mode,
            engines.decode_threads,
        )
        plan.finish()  # batched flow (tvl1_tensor): the video's pairs in one solver call
    except video_lib.DecodeError as e:
        return VideoResult(job, None, e.reason)
    except cv2.error as e:
        return VideoResult(job, None, f"OpenCV error: {str(e).strip().splitlines()[-1]}")
    decoded, declared = info.num_frames, info.declared_frames
    if declared > 0 and decoded < config.min_decoded_fraction * declared:
        reason = (
            f"{shortfall_text(decoded, declared)} ({decoded / declared:.2f} < "
            f"--min_decoded_fraction {config.min_decoded_fraction:g}): truncated or damaged"
        )
        return VideoResult(job, None, reason, decoded, declared_frames=declared)
    height, width = config.resize.output_size(info.height, info.width)
    clip = records.ClipInfo(
        video_id=job.video_id,
        label=job.label,
        label_text=job.label_text,
        num_frames=info.num_frames,
        fps=info.fps,
        original_height=info.height,
        original_width=info.width,
        height=height,
        width=width,
        snippet_length=config.snippet_length,
        frame_indices=tuple(plan.starts.tolist()),
        flow_algorithm=config.flow_algorithm if config.has_flow else "",
        flow_bound=config.flow_bound,
        jpeg_quality=config.jpeg_quality,
    )
    examples = {m: records.serialize_example(clip, plan.encoded(m)) for m in config.modalities}
    return VideoResult(
        job, examples, None, decoded, plan.flow_pairs, plan.fallbacks, declared_frames=declared
    )


# Test-only hook (tests/test_convert.py), read only in worker processes, never in the calling
# process: "<video path>" makes the worker SIGKILL itself when it starts on that video, as the
# out-of-memory killer would; "<video path>,<marker file>" does so only while the marker file
# does not exist (the worker creates it first), i.e. once.
KILL_WORKER_ENV = "TSN_KERAS_TEST_KILL_WORKER"


def _test_kill_hook(path: str) -> None:
    value = os.environ.get(KILL_WORKER_ENV)
    if not value:
        return
    target, _, marker = value.partition(",")
    if path != target:
        return
    if marker:
        if os.path.exists(marker):
            return
        open(marker, "w").close()
    os.kill(os.getpid(), signal.SIGKILL)


def _worker_main(conn, config: ConvertConfig, threads: int) -> None:
    """A worker process: receives jobs on `conn`, sends back ("ok", result) or ("error", text)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent stops the workers
    cv2.setNumThreads(threads)
    if config.has_flow and config.flow_algorithm == "tvl1_tensor":
        from tsn_keras import tvl1

        tvl1.limit_threads(threads)  # the workers already fill the cores
    engines = _Engines(config, decode_threads=threads)
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):  # the parent is gone (killed)
            return
        if job is None:
            return
        _test_kill_hook(job.path)
        try:
            message = ("ok", convert_video(job, config, engines))
        except Exception:  # a bug, not a bad video: the parent stops the run with this text
            message = ("error", traceback.format_exc())
        try:
            conn.send(message)
        except OSError:  # the parent is gone
            return


# ---------------------------------------------------------------------------------------------
# Shards.


def assign_shards(jobs: Sequence[VideoJob], num_shards: int) -> list[list[VideoJob]]:
    """Deals the jobs to `num_shards` shards: MD5 order of video ids, round-robin."""
    if num_shards < 1:
        raise ValueError(f"--num_shards must be >= 1. Received: {num_shards}")
    ids = [j.video_id for j in jobs]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"duplicate video ids in one subset: {dup[:3]}")
    order = sorted(jobs, key=lambda j: (hashlib.md5(j.video_id.encode()).hexdigest(), j.video_id))
    return [order[s::num_shards] for s in range(num_shards)]


def auto_num_shards(num_videos: int) -> int:
    """About VIDEOS_PER_SHARD videos per shard, at least 1."""
    return max(1, math.ceil(num_videos / VIDEOS_PER_SHARD))


@dataclass(frozen=True)
class _Shard:
    subset: str
    index: int
    count: int
    jobs: tuple[VideoJob, ...]
    digest: str
    modalities: tuple[str, ...]

    @property
    def name(self) -> str:
        """Base name (the sidecar's; the older layout's one file)."""
        return records.shard_filename(self.subset, self.index, self.count)

    @property
    def files(self) -> dict[str, str]:
        """modality -> file name."""
        return {
            m: records.shard_filename(self.subset, self.index, self.count, m)
            for m in self.modalities
        }

    def finished(self, out_dir: str) -> bool:
        """Every modality's final file exists (the sidecar is checked apart)."""
        return all(os.path.isfile(os.path.join(out_dir, f)) for f in self.files.values())


def _sidecar_path(out_dir: str, name: str) -> str:
    return os.path.join(out_dir, PROGRESS_DIR, name + ".json")


def _read_sidecar(out_dir: str, name: str) -> dict | None:
    try:
        with open(_sidecar_path(out_dir, name), encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_text(path: str, text: str) -> None:
    """Writes through `<path>.tmp` and a rename; the temp file is removed if writing fails."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:  # a full disk, Ctrl-C: leave no temp file behind
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _write_json(path: str, obj: dict) -> None:
    _write_text(path, json.dumps(obj, indent=1, sort_keys=False) + "\n")


def _shard_done(out_dir: str, shard: _Shard) -> bool:
    """Finished with these settings; a shard whose files were made with others is refused."""
    side = _read_sidecar(out_dir, shard.name)
    if side is None:
        return False
    # this run's files, the sidecar's (other modalities?) and the older layout's combined file
    names = [*shard.files.values(), *side.get("files", {}).values(), side.get("file", shard.name)]
    made = [n for n in dict.fromkeys(names) if os.path.isfile(os.path.join(out_dir, n))]
    if made and side.get("digest") != shard.digest:
        raise ValueError(
            f"{os.path.join(out_dir, made[0])} was made with other settings or another video "
            f"list (settings digest {side.get('digest')} != {shard.digest}). Use another --out, "
            f"or delete {out_dir} to convert again"
        )
    return side.get("digest") == shard.digest and shard.finished(out_dir)


class _Progress:
    """One stderr line: done/total, videos/s, ETA, failures (no dependency)."""

    showing = False  # a progress line without its newline is on stderr (`_warn` ends it)

    def __init__(self, total: int, enabled: bool, stream=sys.stderr):
        self.total, self.enabled, self.stream = total, enabled, stream
        self.start = time.monotonic()
        self.last = 0.0
        self.done = self.failed = 0

    def update(self, failed: bool) -> None:
        self.done += 1
        self.failed += int(failed)
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.5 or self.done == self.total):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            m, s = divmod(int(eta), 60)
            h, m = divmod(m, 60)
            self.stream.write(
                f"\r{self.done}/{self.total} videos  {rate:.2f} videos/s  "
                f"ETA {h}:{m:02d}:{s:02d}  failed {self.failed}   "
            )
            self.stream.flush()
            _Progress.showing = True

    def close(self) -> None:
        if self.enabled and self.total and _Progress.showing:
            self.stream.write("\n")
            self.stream.flush()
        _Progress.showing = False


def _results(
    jobs: Sequence[VideoJob], config: ConvertConfig, workers: int
) -> Iterator[VideoResult]:
    """Converted videos in job order (in-process with one worker, else `_WorkerPool`)."""
    if workers <= 1:
        engines = _Engines(config)
        for job in jobs:
            yield convert_video(job, config, engines)
        return
    pool = _WorkerPool(config, workers)
    try:
        yield from pool.run(jobs)
    finally:
        pool.close()  # also on an error or Ctrl-C in the caller (generator close)


# Tries per video when its worker process dies (killed, crashed): the first in the worker that
# died, the retry in a fresh one.
WORKER_TRIES = 2
# Jobs each worker holds at a time (`_WorkerPool.run`).
PREFETCH = 2


class _WorkerPool:
    """`workers` spawned processes, each holding up to PREFETCH jobs, their deaths watched.

    multiprocessing.Pool replaces a worker that dies (kill -9, the out-of-memory killer) but
    loses its task, so `imap` waits forever. Here the parent knows which jobs each process holds
    and waits on the processes' sentinels as well as their pipes: a death is seen at once, the
    job goes to a fresh process once more, and a second death makes it a failed video
    ("worker died (signal 9) while converting <path>"). Spawn, not fork: the parent may hold
    TensorFlow state. One OpenCV thread per worker: the workers already fill the cores.
    """

    def __init__(self, config: ConvertConfig, workers: int):
        self.config = config
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list = [self._start() for _ in range(workers)]  # [process, pipe] per slot

    def _start(self) -> list:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=_worker_main, args=(child, self.config, 1), daemon=True)
        proc.start()
        child.close()
        return [proc, parent]

    def _restart(self, slot: int) -> str:
        """Replaces a dead worker with a fresh one; returns how it died ("signal 9")."""
        proc, conn = self.procs[slot]
        proc.join()
        conn.close()
        self.procs[slot] = self._start()
        code = proc.exitcode
        return f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"

    def _send(self, slot: int, job: VideoJob) -> None:
        with contextlib.suppress(OSError):  # it died: its sentinel says so in `run`
            self.procs[slot][1].send(job)

    def _receive(self, slot: int):
        """The worker's next answer, or None when there is none (yet, or ever: it died)."""
        conn = self.procs[slot][1]
        try:
            return conn.recv() if conn.poll() else None
        except (EOFError, OSError):  # died while sending
            return None

    def run(self, jobs: Sequence[VideoJob]) -> Iterator[VideoResult]:
        """Yields the results in job order.

        Each worker holds up to PREFETCH jobs (the next waits in its pipe, so the worker never
        idles while the parent writes) and converts them in order, so a dead worker was
        converting the oldest job it had not answered: that job is charged with the death; the
        others go back to the queue. Jobs more than 4 x workers past the next one to yield are
        not sent yet, which bounds the results waiting in the parent.
        """
        window = 4 * len(self.procs)
        todo = list(range(len(jobs)))[::-1]  # job indices, next last
        deaths = [0] * len(jobs)
        done: dict[int, VideoResult] = {}
        held = [collections.deque() for _ in self.procs]  # per slot: job indices unanswered
        following = 0  # the next job index to yield
        while following < len(jobs):
            for slot, queue in enumerate(held):
                if not queue and not self.procs[slot][0].is_alive():  # died idle: none lost
                    self._restart(slot)
                while len(queue) < PREFETCH and todo and todo[-1] < following + window:
                    queue.append(todo.pop())
                    self._send(slot, jobs[queue[-1]])
            while following in done:
                yield done.pop(following)
                following += 1
            waits = {}
            for slot, queue in enumerate(held):
                if queue:
                    proc, conn = self.procs[slot]
                    waits[conn] = waits[proc.sentinel] = slot
            if not waits:  # all yielded, or the window moved on: send more
                continue
            for slot in {waits[w] for w in multiprocessing.connection.wait(list(waits))}:
                queue = held[slot]
                while queue and (message := self._receive(slot)) is not None:
                    index = queue.popleft()
                    status, value = message
                    if status == "error":
                        raise RuntimeError(f"worker failed on {jobs[index].path}:\n{value}")
                    done[index] = value
                if not queue or self.procs[slot][0].is_alive():
                    continue
                why = self._restart(slot)
                index = queue.popleft()  # the one it was converting
                todo = sorted([*todo, *queue], reverse=True)  # never started: not charged
                queue.clear()
                deaths[index] += 1
                job = jobs[index]
                if deaths[index] < WORKER_TRIES:  # once more, in the fresh worker of this slot
                    _warn(f"worker died ({why}) while converting {job.path}; retrying it")
                    queue.append(index)
                    self._send(slot, job)
                else:
                    reason = f"worker died ({why}) while converting {job.path}"
                    done[index] = VideoResult(job, None, reason)

    def close(self) -> None:
        """Asks every worker to stop; kills those still busy after a second (an error, Ctrl-C)."""
        for _, conn in self.procs:
            with contextlib.suppress(OSError):
                conn.send(None)
        deadline = time.monotonic() + 1
        for proc, conn in self.procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():  # busy with a video the caller no longer wants
                proc.kill()
                proc.join()
            conn.close()


def _warn(message: str) -> None:
    """A warning on its own stderr line (ending the progress line first if one is showing)."""
    sys.stderr.write(("\n" if _Progress.showing else "") + f"warning: {message}\n")
    sys.stderr.flush()
    _Progress.showing = False


def convert(
    subsets: Mapping[str, Sequence[VideoJob]],
    out_dir: str,
    config: ConvertConfig,
    classes: Sequence[str],
    num_shards: int | Mapping[str, int] = 0,
    workers: int = 0,
    slice_index: int = 0,
    num_slices: int = 1,
    info: Mapping | None = None,
    progress: bool = True,
) -> ConvertReport:
    """Converts videos to sharded TFRecords in `out_dir`, resuming a previous run.

    Args:
      subsets: jobs per subset name ("train", "test").
      out_dir: output folder (created).
      config: what to store.
      classes: class names (label index -> name), stored in the manifest.
      num_shards: shards per subset (int for all, or per subset); 0 = automatic
        (`auto_num_shards`).
      workers: processes; 0 = all cores.
      slice_index: which slice of the shards this process converts (many machines).
      num_slices: how many slices (machines) share the work.
      info: extra manifest fields, e.g. {"dataset": ..., "split": ..., "flags": {...}}.
      progress: print the progress line on stderr.

    Returns:
      ConvertReport with the manifest written to `<out_dir>/manifest.json`.
    """
    if not 0 <= slice_index < num_slices:
        raise ValueError(
            f"--shard_index must be in [0, --num_shards_total). Received: "
            f"shard_index={slice_index}, num_shards_total={num_slices}"
        )
    unknown = sorted(set(subsets) - set(SUBSETS))
    if unknown:
        raise ValueError(f"subsets must be among {list(SUBSETS)}. Received: {unknown}")
    workers = workers or os.cpu_count() or 1
    os.makedirs(os.path.join(out_dir, PROGRESS_DIR), exist_ok=True)

    shards = plan_shards(subsets, config, num_shards)
    mine = [s for s in shards if s.index % num_slices == slice_index]
    pending = [s for s in mine if not _shard_done(out_dir, s)]
    report = ConvertReport(manifest={}, skipped_shards=[s.name for s in mine if s not in pending])

    tasks = [job for s in pending for job in s.jobs]
    if pending:
        import tensorflow  # noqa: F401  (the writer's ~3 s import, before the clock starts)
    bar = _Progress(len(tasks), progress)
    start = time.monotonic()
    if pending:
        results = _results(tasks, config, min(workers, len(tasks)))
        try:
            _write_shards(out_dir, pending, results, report, bar)
        finally:
            results.close()  # stops the pool on an error or Ctrl-C
    bar.close()
    report.seconds = time.monotonic() - start
    report.manifest = _write_manifest(out_dir, shards, config, classes, info or {})
    return report


def _write_shards(
    out_dir: str,
    pending: Sequence[_Shard],
    results: Iterator[VideoResult],
    report: ConvertReport,
    bar: _Progress,
) -> None:
    """Writes the pending shards in order: temp file, sidecar, rename (see module docstring).

    Raises:
      OSError: a file cannot be written (a full disk); the shard's temp files are removed.
    """
    for shard in pending:
        finals = {m: os.path.join(out_dir, name) for m, name in shard.files.items()}
        try:
            side = _write_shard_files(shard, finals, results, report, bar)
            _write_json(_sidecar_path(out_dir, shard.name), side)
            for final in finals.values():
                os.replace(final + ".incomplete", final)
        except BaseException:  # a full disk, Ctrl-C: no temp file outlives the run
            for final in finals.values():
                with contextlib.suppress(OSError):
                    os.remove(final + ".incomplete")
            raise
        combined = os.path.join(out_dir, shard.name)  # the older layout's file of this shard
        if os.path.isfile(combined):
            os.remove(combined)


def _write_shard_files(
    shard: _Shard,
    finals: Mapping[str, str],
    results: Iterator[VideoResult],
    report: ConvertReport,
    bar: _Progress,
) -> dict:
    """Writes one shard's `<file>.incomplete` files; returns its sidecar."""
    import tensorflow as tf  # the parent writes; workers never import TensorFlow

    failures, short, fallbacks, written = [], [], 0, 0
    temps = {m: final + ".incomplete" for m, final in finals.items()}
    try:
        with contextlib.ExitStack() as stack:
            writers = {m: stack.enter_context(tf.io.TFRecordWriter(p)) for m, p in temps.items()}
            for _ in shard.jobs:
                result = next(results)
                report.videos += 1
                report.frames += result.num_frames
                report.flow_pairs += result.flow_pairs
                fallbacks += result.warped_fallbacks
                if result.examples is None:
                    failures.append({"path": result.job.path, "reason": result.reason})
                    report.failed += 1
                else:
                    for m, writer in writers.items():  # same videos, same order in every file
                        writer.write(result.examples[m])
                    written += 1
                    if result.short:
                        text = shortfall_text(result.num_frames, result.declared_frames)
                        _warn(f"{result.job.path}: {text}; stored with the frames that decoded")
                        short.append(
                            {
                                "path": result.job.path,
                                "decoded_frames": result.num_frames,
                                "declared_frames": result.declared_frames,
                            }
                        )
                bar.update(result.examples is None)
    except tf.errors.OpError as e:  # TensorFlow's I/O errors: an OSError naming the files
        raise OSError(f"cannot write {', '.join(temps.values())}: {e.message}") from e
    return {
        "files": shard.files,
        "num_examples": written,
        "failures": failures,
        "short_videos": short,
        "warped_flow_fallbacks": fallbacks,
        "digest": shard.digest,
        "video_ids": [j.video_id for j in shard.jobs],
    }


def _write_manifest(
    out_dir: str, shards: Sequence[_Shard], config: ConvertConfig, classes, info: Mapping
) -> dict:
    """Rebuilds manifest.json and failures.txt from the sidecars of every finished shard."""
    sets: dict[str, dict] = {}
    failures, short, fallbacks = [], [], 0
    for shard in shards:
        entry = sets.setdefault(
            shard.subset,
            {"num_examples": 0, "num_shards": shard.count, "complete": True, "shards": []},
        )
        side = _read_sidecar(out_dir, shard.name)
        done = side is not None and side.get("digest") == shard.digest and shard.finished(out_dir)
        if not done:
            entry["complete"] = False
            continue
        entry["shards"].append({"files": shard.files, "num_examples": side["num_examples"]})
        entry["num_examples"] += side["num_examples"]
        failures += [dict(f, subset=shard.subset) for f in side["failures"]]
        short += [dict(v, subset=shard.subset) for v in side.get("short_videos", [])]
        fallbacks += side["warped_flow_fallbacks"]
    manifest = {
        "dataset": info.get("dataset", ""),
        "split": info.get("split", 0),
        "classes": list(classes),
        "modalities": list(config.modalities),
        "snippets": config.num_snippets,
        "snippet_length": config.snippet_length,
        "flow": (
            {"algorithm": config.flow_algorithm, "bound": config.flow_bound}
            if config.has_flow
            else {"algorithm": "", "bound": config.flow_bound}
        ),
        "height": config.height if config.short_side is None else None,
        "width": config.width if config.short_side is None else None,
        "short_side": config.short_side,
        "jpeg_quality": config.jpeg_quality,
        "config": dataclasses.asdict(config),
        "complete": all(s["complete"] for s in sets.values()),
        "sets": sets,
        "failures": failures,
        "short_videos": short,
        "warped_flow_fallbacks": fallbacks,
    }
    if config.has_flow and config.flow_algorithm == "tvl1_tensor":
        manifest["flow"]["preset"] = config.flow_preset
    manifest.update({k: v for k, v in info.items() if k not in ("dataset", "split")})
    manifest.setdefault("flags", {})
    _write_json(os.path.join(out_dir, records.MANIFEST_NAME), manifest)
    failed = "".join(f"{x['path']}\t{x['reason']}\n" for x in failures)
    _write_text(os.path.join(out_dir, FAILURES_NAME), failed)
    return manifest


def jobs_from_pairs(
    pairs: Sequence[tuple[str, int]], classes: Sequence[str], video_root: str
) -> list[VideoJob]:
    """VideoJobs from (path, label) pairs (`splits.Split.train`); id = `splits.video_id`."""
    jobs = []
    for path, label in pairs:
        if not 0 <= label < len(classes):
            raise ValueError(f"{path}: label {label} outside the {len(classes)} classes")
        jobs.append(VideoJob(path, splits.video_id(path, video_root), int(label), classes[label]))
    return jobs


def plan_shards(
    subsets: Mapping[str, Sequence[VideoJob]],
    config: ConvertConfig,
    num_shards: int | Mapping[str, int] = 0,
) -> list[_Shard]:
    """Every subset's shards with their jobs and settings digest (`convert`, `tsn_keras.beam`).

    Args:
      subsets: jobs per subset name.
      config: what to store (part of each shard's digest).
      num_shards: shards per subset (int for all, or per subset); 0 = `auto_num_shards`.
    """
    config_digest = config.digest()
    shards: list[_Shard] = []
    for subset, jobs in subsets.items():
        count = num_shards.get(subset, 0) if isinstance(num_shards, Mapping) else num_shards
        count = count or auto_num_shards(len(jobs))
        for index, shard_jobs in enumerate(assign_shards(jobs, count)):
            key = [config_digest, [[j.video_id, j.label, j.label_text] for j in shard_jobs]]
            shard = _Shard(subset, index, count, tuple(shard_jobs), _digest(key), config.modalities)
            shards.append(shard)
    return shards


# ---------------------------------------------------------------------------------------------
# Command line (scripts/make_tfrecords.py).

USAGE = """Videos -> sharded TFRecords of RGB / optical-flow snippets, one example per video and
modality.

    python scripts/make_tfrecords.py --dataset ucf101 --split 1 --video_root UCF-101 \\
        --split_dir ucfTrainTestlist --modalities rgb,flow --flow tvl1
    python scripts/make_tfrecords.py --dataset folder --video_root my_videos --test_fraction 0.2 \\
        --modalities rgb --out tfrecords/mine

Writes <out>/{train,test}-<modality>-NNNNN-of-NNNNN.tfrecord (each modality in its own files,
so training one stream reads only its bytes), <out>/manifest.json and <out>/failures.txt
(`--out` defaults to tfrecords/<dataset>_split<N>). Rerunning the same command resumes: finished
shards are kept, unfinished ones redone. Videos that cannot be decoded (or decode fewer than
--min_decoded_fraction of the frames their container declares) are skipped and listed. Several
machines can share the work with `--shard_index k --num_shards_total M` on one shared --out.
Record format: tsn_keras/records.py.

Exit status: 0 done, 1 some videos failed (failures.txt) or writing failed (a full disk),
2 a bad flag, split file or --out, 130 interrupted (Ctrl-C).
"""


def _define_flags(fv: flags.FlagValues) -> None:
    """The command's flags, on its private FlagValues."""
    flags.DEFINE_enum("dataset", None, list(splits.DATASETS), "Dataset layout.", flag_values=fv)
    flags.DEFINE_enum(
        "runner",
        None,
        ["DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner"],
        "Convert on Apache Beam (tsn_keras.beam; Beam's options go after `--`, see "
        "docs/cluster.md); unset: local worker processes.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "worker_video_root",
        None,
        "With --runner: where workers read the videos (gs://...).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "require_all",
        False,
        "Stop if a listed video is not on disk (kinetics, ssv2 skip those).",
        flag_values=fv,
    )
    flags.DEFINE_string("video_root", None, "Folder holding the videos.", flag_values=fv)
    flags.DEFINE_string("split_dir", None, "Split files folder (ucf101/hmdb51).", flag_values=fv)
    flags.DEFINE_integer("split", 1, "Split number (1-3 for UCF101 / HMDB51).", flag_values=fv)
    flags.DEFINE_string("csv", None, "CSV file for --dataset csv.", flag_values=fv)
    flags.DEFINE_float(
        "test_fraction", 0.3, "folder/csv: hash-decided test fraction.", flag_values=fv
    )
    flags.DEFINE_string(
        "out", None, "Output folder; default tfrecords/<dataset>_split<N>.", flag_values=fv
    )
    flags.DEFINE_list(
        "modalities",
        ["rgb", "flow"],
        f"What to store, among {', '.join(MODALITIES)}.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "flow", "tvl1", list(flow_lib.ALGORITHMS), "Optical flow algorithm.", flag_values=fv
    )
    flags.DEFINE_enum(
        "dis_preset", "medium", list(flow_lib.DIS_PRESETS), "DIS preset.", flag_values=fv
    )
    flags.DEFINE_enum(
        "flow_preset",
        "parity",
        list(flow_lib.TVL1_PRESETS),
        "tvl1_tensor preset (tsn_keras.tvl1.PRESETS): parity (OpenCV's defaults) or fast.",
        flag_values=fv,
    )
    flags.DEFINE_float("flow_bound", 20.0, "Flow clip bound (pixels) for uint8.", flag_values=fv)
    flags.DEFINE_integer("snippets", 25, "Snippets per video; 0 = every frame.", flag_values=fv)
    flags.DEFINE_integer("snippet_length", 5, "Frames per flow/rgbdiff snippet.", flag_values=fv)
    flags.DEFINE_integer("width", 340, "Stored frame width.", flag_values=fv)
    flags.DEFINE_integer("height", 256, "Stored frame height.", flag_values=fv)
    flags.DEFINE_integer(
        "short_side", None, "Keep the aspect, shorter side this long.", flag_values=fv
    )
    flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality (0-100).", flag_values=fv)
    flags.DEFINE_enum(
        "decode",
        "auto",
        ["auto", "two_pass"],
        "auto: one pass when the frame count is right.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "min_decoded_fraction",
        0.5,
        "A video that decodes fewer than this fraction of the frames its container declares "
        "(truncated) is a failure; above it, a shortfall is stored with a warning.",
        flag_values=fv,
    )
    flags.DEFINE_integer("workers", 0, "Worker processes; 0 = all cores.", flag_values=fv)
    flags.DEFINE_integer(
        "num_shards", 0, "Shards per subset; 0 = ~100 videos each.", flag_values=fv
    )
    flags.DEFINE_integer("shard_index", 0, "This machine's slice of the shards.", flag_values=fv)
    flags.DEFINE_integer(
        "num_shards_total", 1, "Machines sharing the work; shard i -> i % this.", flag_values=fv
    )
    flags.DEFINE_list("subsets", ["train", "test"], "Subsets to convert.", flag_values=fv)
    flags.DEFINE_bool("progress", True, "Progress line on stderr.", flag_values=fv)
    flags.mark_flags_as_required(["dataset", "video_root"], flag_values=fv)


def _check_out(out: str) -> None:
    """Creates --out and writes a probe file there: a usage error now, not after an hour."""
    try:
        os.makedirs(os.path.join(out, PROGRESS_DIR), exist_ok=True)
        probe = os.path.join(out, PROGRESS_DIR, f".write-test-{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise flags.Error(
            f"--out {out}: cannot write there ({e.strerror or e}); pick a writable folder"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of scripts/make_tfrecords.py; returns the exit status (see USAGE)."""
    argv = sys.argv if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the writer imports TensorFlow
    fv = flags.FlagValues()
    _define_flags(fv)
    try:
        beam_args = cli.parse_flags(fv, argv, USAGE, positional=True)
        if beam_args is None:
            return 0
        if beam_args and not fv.runner:
            raise flags.Error(
                f"unexpected arguments {beam_args}; all inputs are flags (Beam's own options, "
                "after `--`, need --runner)"
            )
        if fv.runner and (fv.shard_index or fv.num_shards_total != 1):
            raise flags.Error(
                "--shard_index/--num_shards_total: with --runner the runner shares the work"
            )
        unknown = sorted(set(fv.subsets) - set(SUBSETS))
        if unknown:
            raise flags.Error(f"--subsets must be among {list(SUBSETS)}. Received: {unknown}")
        try:
            config = ConvertConfig(
                modalities=tuple(fv.modalities),
                flow_algorithm=fv.flow,
                flow_bound=fv.flow_bound,
                dis_preset=fv.dis_preset,
                flow_preset=fv.flow_preset,
                num_snippets=fv.snippets,
                snippet_length=fv.snippet_length,
                width=fv.width,
                height=fv.height,
                short_side=fv.short_side,
                jpeg_quality=fv.jpeg_quality,
                decode_mode=fv.decode,
                min_decoded_fraction=fv.min_decoded_fraction,
            )
        except ValueError as e:
            raise flags.Error(str(e)) from None
    except flags.Error as e:
        return cli.usage_error(e)
    out = fv.out or os.path.join("tfrecords", f"{fv.dataset}_split{fv.split}")
    try:
        split = splits.load_split(
            fv.dataset,
            fv.video_root,
            split_dir=fv.split_dir,
            split=fv.split,
            csv_path=fv.csv,
            test_fraction=fv.test_fraction,
            require_all=fv.require_all,
        )
        pairs = {"train": split.train, "test": split.test}
        subsets = {
            s: jobs_from_pairs(pairs[s], split.classes, split.video_root)
            for s in SUBSETS
            if s in fv.subsets
        }
        info = {"dataset": fv.dataset, "split": fv.split, "flags": fv.flag_values_dict()}
        if fv.runner:  # no _check_out: --out may be on cloud storage (gs://)
            from tsn_keras import beam

            report = beam.convert(
                subsets, out, config, split.classes, num_shards=fv.num_shards, info=info,
                runner=fv.runner, pipeline_args=beam_args,
                worker_video_root=fv.worker_video_root,
            )  # fmt: skip
        else:
            _check_out(out)
            report = convert(
                subsets, out, config, split.classes, num_shards=fv.num_shards,
                workers=fv.workers, slice_index=fv.shard_index, num_slices=fv.num_shards_total,
                info=info, progress=fv.progress,
            )  # fmt: skip
    except (ValueError, flags.Error) as e:  # split files, --out, settings of an older run
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # writing failed (a full disk); the run's temp files are removed
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # the shard's temp files are removed, the workers stopped
        print("\nerror: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    manifest = report.manifest
    counts = ", ".join(f"{k} {v['num_examples']}" for k, v in manifest["sets"].items())
    print(
        f"{out}: {counts} examples; this run {report.videos} videos in {report.seconds:.1f} s "
        f"({len(report.skipped_shards)} finished shards kept), {len(manifest['failures'])} "
        f"failed (see {os.path.join(out, FAILURES_NAME)}), {len(manifest['short_videos'])} "
        "stored short of their declared frames"
        + ("" if manifest["complete"] else "; other slices still to do (--shard_index)")
    )
    return 1 if manifest["failures"] else 0
