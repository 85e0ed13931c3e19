"""Shards: planning (`plan_shards`), the resume rule (`shard_done`), `convert`, and the shard
files, sidecars and manifest (`write_shards`, `write_manifest`), as the package docstring tells.

`tsn_keras.beam` runs the same planning, resume rule and writers on a Beam runner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from tsn_keras import manifest as manifest_lib
from tsn_keras import records, splits
from tsn_keras.convert.progress import Progress, warn
from tsn_keras.convert.snippets import ConvertConfig, VideoJob, VideoResult, digest, shortfall_text
from tsn_keras.convert.workers import DEFAULT_VIDEO_TIMEOUT, video_results

SUBSETS = ("train", "test")
FAILURES_NAME = "failures.txt"
NOT_FOUND_NAME = "not_found.txt"  # listed videos that are not on disk (kinetics, ssv2)
PROGRESS_DIR = ".progress"
# Automatic shard count: about 100 videos per shard, i.e. per modality file ~70 MB of rgb or
# ~110 MB of flow at 25 snippets of 340x256.
VIDEOS_PER_SHARD = 100


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


def assign_shards(jobs: Sequence[VideoJob], num_shards: int) -> list[list[VideoJob]]:
    """Deals the jobs to `num_shards` shards: MD5 order of video ids, round-robin."""
    if num_shards < 1:
        raise ValueError(f"--num_shards must be >= 1. Received: {num_shards}")
    seen: set[str] = set()
    dup: set[str] = set()
    for job in jobs:  # a set, not ids.count(): that was O(N^2)
        (dup if job.video_id in seen else seen).add(job.video_id)
    if dup:
        raise ValueError(f"duplicate video ids in one subset: {sorted(dup)[:3]}")
    order = sorted(jobs, key=lambda j: (hashlib.md5(j.video_id.encode()).hexdigest(), j.video_id))
    return [order[s::num_shards] for s in range(num_shards)]


def auto_num_shards(num_videos: int) -> int:
    """About VIDEOS_PER_SHARD videos per shard, at least 1."""
    return max(1, math.ceil(num_videos / VIDEOS_PER_SHARD))


@dataclass(frozen=True)
class Shard:
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


def shard_done(out_dir: str, shard: Shard) -> bool:
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


def _failed(out_dir: str, shard: Shard) -> bool:
    """Whether a finished shard's sidecar lists videos that failed."""
    return bool((_read_sidecar(out_dir, shard.name) or {}).get("failures"))


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
    retry_failed: bool = False,
    video_timeout: float = DEFAULT_VIDEO_TIMEOUT,
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
      retry_failed: also redo the finished shards whose sidecar lists failed videos (a worker
        killed by the out-of-memory killer, say); without it they are kept as they are.
      video_timeout: seconds one video may take before its worker is killed and the video
        listed as "timed out after N s" (`workers.WorkerPool`); 0 = no limit.

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
    pending, skipped = pending_shards(out_dir, mine, retry_failed)
    report = ConvertReport(manifest={}, skipped_shards=skipped)

    tasks = [job for s in pending for job in s.jobs]
    if pending:
        import tensorflow  # noqa: F401  (the writer's ~3 s import, before the clock starts)
    bar = Progress(len(tasks), progress)
    start = time.monotonic()
    if pending:
        results = video_results(tasks, config, min(workers, len(tasks)), video_timeout)
        try:
            write_shards(out_dir, pending, results, report, bar)
        finally:
            results.close()  # stops the pool on an error or Ctrl-C
    bar.close()
    report.seconds = time.monotonic() - start
    report.manifest = write_manifest(out_dir, shards, config, classes, info or {})
    return report


def pending_shards(
    out_dir: str, shards: Sequence[Shard], retry_failed: bool = False
) -> tuple[list[Shard], list[str]]:
    """(the shards still to convert, the names of those finished), by `shard_done`; with
    `retry_failed`, finished shards that hold failed videos are converted again too."""
    pending = [
        s for s in shards if not shard_done(out_dir, s) or (retry_failed and _failed(out_dir, s))
    ]
    todo = {s.name for s in pending}  # a set: list membership made this O(shards^2)
    return pending, [s.name for s in shards if s.name not in todo]


def write_shards(
    out_dir: str,
    pending: Sequence[Shard],
    results: Iterator[VideoResult],
    report: ConvertReport,
    bar: Progress,
) -> None:
    """Writes the pending shards in order: temp file, sidecar, rename (see the package docstring).

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
    shard: Shard,
    finals: Mapping[str, str],
    results: Iterator[VideoResult],
    report: ConvertReport,
    bar: Progress,
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
                        warn(f"{result.job.path}: {text}; stored with the frames that decoded")
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


def write_manifest(
    out_dir: str, shards: Sequence[Shard], config: ConvertConfig, classes, info: Mapping
) -> dict:
    """Rebuilds manifest.json and failures.txt from the sidecars of every finished shard.

    The manifest is a `manifest.Manifest` (the schema's one owner); the dict returned is what
    was written. `info["not_found"]` (the split's `not_found`: listed videos that are not on
    disk) goes to the manifest's `not_found` and to not_found.txt, one a line; the other `info`
    keys (dataset, split, flags, ...) are stored as given.
    """
    subsets: dict[str, list] = {}  # subset -> [shards, num_shards, complete]
    failures, short, fallbacks = [], [], 0
    for shard in shards:
        entry = subsets.setdefault(shard.subset, [[], shard.count, True])
        side = _read_sidecar(out_dir, shard.name)
        done = side is not None and side.get("digest") == shard.digest and shard.finished(out_dir)
        if not done:
            entry[2] = False
            continue
        entry[0].append(manifest_lib.Shard(dict(shard.files), side["num_examples"]))
        failures += [dict(f, subset=shard.subset) for f in side["failures"]]
        short += [dict(v, subset=shard.subset) for v in side.get("short_videos", [])]
        fallbacks += side["warped_flow_fallbacks"]
    flow = {
        "algorithm": config.flow_algorithm if config.has_flow else "",
        "bound": config.flow_bound,
    }
    if config.has_flow and config.flow_algorithm == "tvl1_tensor":
        flow["preset"] = config.flow_preset
    manifest = manifest_lib.Manifest(
        classes=tuple(classes),
        modalities=tuple(config.modalities),
        sets={k: manifest_lib.Subset(tuple(v[0]), v[1], v[2]) for k, v in subsets.items()},
        snippets=config.num_snippets,
        snippet_length=config.snippet_length,
        flow=flow,
        height=config.height if config.short_side is None else None,
        width=config.width if config.short_side is None else None,
        short_side=config.short_side,
        jpeg_quality=config.jpeg_quality,
        config=dataclasses.asdict(config),
        complete=all(v[2] for v in subsets.values()),
        failures=tuple(failures),
        short_videos=tuple(short),
        warped_flow_fallbacks=fallbacks,
        not_found=tuple(info.get("not_found", ())),
        dataset=info.get("dataset", ""),
        split=info.get("split", 0),
        extra={"flags": {}, **{k: v for k, v in info.items() if k not in _MANIFEST_INFO}},
    )
    manifest.write(out_dir)
    failed = "".join(f"{x['path']}\t{x['reason']}\n" for x in failures)
    _write_text(os.path.join(out_dir, FAILURES_NAME), failed)
    _write_text(
        os.path.join(out_dir, NOT_FOUND_NAME), "".join(f"{p}\n" for p in manifest.not_found)
    )
    return manifest.to_dict()


_MANIFEST_INFO = ("dataset", "split", "not_found")  # info keys that are Manifest fields


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
) -> list[Shard]:
    """Every subset's shards with their jobs and settings digest (`convert`, `tsn_keras.beam`).

    Args:
      subsets: jobs per subset name.
      config: what to store (part of each shard's digest).
      num_shards: shards per subset (int for all, or per subset); 0 = `auto_num_shards`; at
        most one per video.
    """
    config_digest = config.digest()
    shards: list[Shard] = []
    for subset, jobs in subsets.items():
        count = num_shards.get(subset, 0) if isinstance(num_shards, Mapping) else num_shards
        if count > max(len(jobs), 1):  # more shards than videos would write empty files
            warn(f"--num_shards={count} > {len(jobs)} {subset} videos: writing {len(jobs)} shards")
            count = max(len(jobs), 1)
        count = count or auto_num_shards(len(jobs))
        for index, shard_jobs in enumerate(assign_shards(jobs, count)):
            key = [config_digest, [[j.video_id, j.label, j.label_text] for j in shard_jobs]]
            shard = Shard(subset, index, count, tuple(shard_jobs), digest(key), config.modalities)
            shards.append(shard)
    return shards
