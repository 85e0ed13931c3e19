"""Videos -> sharded TFRecords on Apache Beam (Dataflow, Flink, Spark, DirectRunner).

`convert` here is `tsn_keras.convert.convert` run by a Beam runner instead of a local process
pool, and writes the same files: the same shards per modality, the same videos in the same
order in each, the same sidecars, `manifest.json` and `failures.txt` (byte for byte; see
tests/test_beam.py). It reuses the local converter's pieces rather than Beam's sinks:

* Before the pipeline (in the launching process): `convert.plan_shards` deals each subset's
  videos to shards (MD5 order, round-robin: fixed by the video list), and `convert.shard_done`
  drops the shards already finished with these settings (the local resume rule). Nothing
  pending: no pipeline, the manifest is rebuilt and the call returns.
* The pending shards' job lists go to one plan file, `<out>/.progress/beam-plan-<digest>.json`,
  that the workers read (a Dataflow job graph is limited to ~10 MB: 240k video paths do not
  belong in it). The pipeline starts from the pending shards' names.
* Pipeline: shard name -> its (name, position, job) elements -> Reshuffle (spreads the videos
  over the workers) -> `convert.convert_video` (the per-video function of the local
  converter: decode, snippets, flow, JPEG, serialized examples) -> GroupByKey(shard) -> one
  `convert.write_shards` call per shard, results in job order (temporary names, sidecar,
  rename: a retried bundle writes the same bytes again) -> all shards done -> one
  `convert.write_manifest` call, which rebuilds manifest.json and failures.txt from the
  sidecars the shard writers left.
* `beam.io.WriteToTFRecord` is not used: it deals records to shards from a counter with a
  random start, so two modalities' files would not keep a shard's videos aligned, and it needs
  snappy/crc32c packages.
* A video that fails (cannot be read or decoded, or any exception in `convert_video`) becomes a
  failure record, never a failed bundle; with `video_timeout` each video is converted in a
  child process of the Beam worker, killed when the video passes the limit (a "timed out after
  N s" failure record); a worker that dies (killed, out of memory) makes the
  runner retry its bundle. Counters `tsn_keras:videos|failed|frames|flow_pairs|shards` show in
  the runner's UI; each failure is logged as a warning on the worker.
* Paths: videos and `out_dir` may be on any file system `tf.io.gfile` knows (`gs://`, `hdfs://`,
  local). A remote video is copied to a local temporary file for the decoder; a remote shard is
  written in a local temporary folder and copied up in the same order (files as
  `.incomplete`, sidecar, rename); the resume check and the manifest run on a local view of the
  remote folder (its file names and sidecars).

Cluster commands, worker set-up and what failures look like: docs/cluster.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence

import apache_beam as beam
from apache_beam.metrics import Metrics, MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions
from apache_beam.runners.runner import PipelineState

from tsn_keras.convert import progress as progress_lib
from tsn_keras.convert import shards as shard_lib
from tsn_keras.convert import snippets as snippet_lib
from tsn_keras.convert import workers as workers_lib
from tsn_keras.manifest import MANIFEST_NAME, Manifest

RUNNERS = ("DirectRunner", "DataflowRunner", "FlinkRunner", "SparkRunner", "PortableRunner")
COUNTERS = ("videos", "failed", "frames", "flow_pairs", "shards")
NAMESPACE = "tsn_keras"

_log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# Files: local paths directly, anything else through tf.io.gfile.


def _is_local(path: str) -> bool:
    return "://" not in path


def _join(root: str, *names: str) -> str:
    return os.path.join(root, *names) if _is_local(root) else "/".join([root.rstrip("/"), *names])


def _gfile():
    import tensorflow as tf  # only where a path is remote, or to read the plan

    return tf.io.gfile


@contextlib.contextmanager
def _local_view(out_dir: str) -> Iterator[str]:
    """A local folder that stands for `out_dir` in convert/shards.py's checks (which use os.path).

    Local: `out_dir` itself. Remote: a temporary folder holding an empty file per file of
    `out_dir` (`_shard_done` and `_write_manifest` look at names only) and a copy of each
    sidecar.
    """
    if _is_local(out_dir):
        yield out_dir
        return
    gfile = _gfile()
    with tempfile.TemporaryDirectory(prefix="tsn_beam_view_") as view:
        os.makedirs(os.path.join(view, shard_lib.PROGRESS_DIR))
        if gfile.isdir(out_dir):
            for name in gfile.listdir(out_dir):
                name = name.rstrip("/")  # GCS lists folders with a trailing '/'
                if name != shard_lib.PROGRESS_DIR:
                    open(os.path.join(view, name), "wb").close()
        progress = _join(out_dir, shard_lib.PROGRESS_DIR)
        if gfile.isdir(progress):
            for name in gfile.listdir(progress):
                if name.endswith(".json") and not name.startswith("beam-plan-"):
                    local = os.path.join(view, shard_lib.PROGRESS_DIR, name)
                    gfile.copy(_join(progress, name), local, overwrite=True)
        yield view


def _upload(local: str, remote: str) -> str:
    """Copies a local file to `<remote>.incomplete` and returns that name (rename it after)."""
    gfile = _gfile()
    temp = remote + ".incomplete"
    if gfile.exists(temp):  # a killed attempt's; some file systems (ram://) append to a file
        gfile.remove(temp)
    gfile.copy(local, temp)
    return temp


def _publish_shard(local_dir: str, out_dir: str, shard) -> None:
    """Copies a shard written under `local_dir` to remote `out_dir` by the local rule's steps."""
    gfile = _gfile()
    temps = {
        _join(out_dir, name): _upload(os.path.join(local_dir, name), _join(out_dir, name))
        for name in shard.files.values()
    }
    side = os.path.join(shard_lib.PROGRESS_DIR, f"{shard.name}.json")
    remote_side = _join(out_dir, shard_lib.PROGRESS_DIR, f"{shard.name}.json")
    gfile.rename(_upload(os.path.join(local_dir, side), remote_side), remote_side, True)
    for final, temp in temps.items():
        gfile.rename(temp, final, overwrite=True)
    combined = _join(out_dir, shard.name)  # the older layout's file of this shard
    if gfile.exists(combined):
        gfile.remove(combined)


def _write_manifest(out_dir: str, shards, config, classes, info) -> dict:
    """convert.write_manifest on `out_dir`, or on its local view and copied up."""
    with _local_view(out_dir) as view:
        manifest = shard_lib.write_manifest(view, shards, config, classes, info)
        if view != out_dir:
            gfile = _gfile()
            for name in (MANIFEST_NAME, shard_lib.FAILURES_NAME, shard_lib.NOT_FOUND_NAME):
                remote = _join(out_dir, name)
                gfile.rename(_upload(os.path.join(view, name), remote), remote, overwrite=True)
    return manifest


# ---------------------------------------------------------------------------------------------
# The plan file: the pending shards' jobs, read by the workers.


def _shard_to_json(shard) -> dict:
    return {
        "subset": shard.subset,
        "index": shard.index,
        "count": shard.count,
        "digest": shard.digest,
        "modalities": list(shard.modalities),
        "jobs": [dataclasses.astuple(j) for j in shard.jobs],
    }


def _shard_from_json(d: dict):
    jobs = tuple(snippet_lib.VideoJob(*j) for j in d["jobs"])
    return shard_lib.Shard(
        d["subset"], d["index"], d["count"], jobs, d["digest"], tuple(d["modalities"])
    )


def _read_plan(path: str) -> dict:
    with _gfile().GFile(path, "rb") as f:
        plan = json.load(f)
    shards = [_shard_from_json(s) for s in plan["shards"]]
    return {"shards": shards, "pending": plan["pending"], "not_found": plan.get("not_found", [])}


# ---------------------------------------------------------------------------------------------
# Pipeline steps.


class _ShardJobs(beam.DoFn):
    """Shard name -> (name, position, job) for each of its videos."""

    def __init__(self, plan_path: str):
        self.plan_path = plan_path

    def setup(self):
        self.shards = {s.name: s for s in _read_plan(self.plan_path)["shards"]}

    def process(self, name: str) -> Iterable[tuple[str, int, snippet_lib.VideoJob]]:
        for position, job in enumerate(self.shards[name].jobs):
            yield name, position, job


class _ConvertVideo(beam.DoFn):
    """(name, position, job) -> (name, (position, VideoResult)); failures become results.

    threads: OpenCV and decoder threads per worker; 0 = their default (all cores).
    video_timeout: seconds per video; the conversion then runs in a child process
      (`convert.workers.WorkerPool`, one per DoFn instance) that is killed when a video
      passes it, the video becoming a "timed out after N s" failure. 0 = no limit, converted
      in the Beam worker's own process.
    """

    def __init__(
        self, config: snippet_lib.ConvertConfig, threads: int = 1, video_timeout: float = 0.0
    ):
        self.config, self.threads, self.video_timeout = config, threads, video_timeout

    def setup(self):
        self.pool = None
        if self.video_timeout:
            task = workers_lib.ConvertTask(self.config, solve_flow=True, threads=self.threads)
            self.pool = workers_lib.WorkerPool(task, 1, self.video_timeout)
        elif self.threads:
            import cv2

            cv2.setNumThreads(self.threads)
        self.engines = snippet_lib.Engines(self.config, decode_threads=self.threads)
        self.videos = Metrics.counter(NAMESPACE, "videos")
        self.failed = Metrics.counter(NAMESPACE, "failed")
        self.frames = Metrics.counter(NAMESPACE, "frames")
        self.flow_pairs = Metrics.counter(NAMESPACE, "flow_pairs")

    def teardown(self):
        if self.pool is not None:
            self.pool.close()

    def process(self, element):
        name, position, job = element
        result = convert_video(job, self.config, self.engines, self.pool)
        self.videos.inc()
        self.frames.inc(result.num_frames)
        self.flow_pairs.inc(result.flow_pairs)
        if result.examples is None:
            self.failed.inc()
            _log.warning("tsn_keras: skipped %s: %s", job.path, result.reason)
        yield name, (position, result)


def convert_video(
    job: snippet_lib.VideoJob,
    config: snippet_lib.ConvertConfig,
    engines=None,
    pool: workers_lib.WorkerPool | None = None,
) -> snippet_lib.VideoResult:
    """`convert.convert_video` for a video on any file system; never raises for one video.

    A remote video (`gs://...`) is copied to a local temporary file first (the decoder reads
    local files). With `pool` (a `ConvertTask` pool), the local file is converted in its worker
    process under the pool's time limit. An unexpected exception is returned as the failure
    reason, so one bad video cannot fail a bundle that the runner would retry, then fail the
    whole job.
    """

    def convert_local(local_job: snippet_lib.VideoJob) -> snippet_lib.VideoResult:
        if pool is None:
            return snippet_lib.convert_video(local_job, config, engines)
        return next(pool.run([local_job], workers_lib.failed_video))

    try:
        if _is_local(job.path):
            return convert_local(job)
        gfile = _gfile()
        with tempfile.TemporaryDirectory(prefix="tsn_beam_video_") as tmp:
            local = os.path.join(tmp, "video" + os.path.splitext(job.path)[1])
            if not gfile.exists(job.path):
                return snippet_lib.VideoResult(job, None, "missing (no such file)")
            gfile.copy(job.path, local)
            staged = dataclasses.replace(job, path=local)
            result = convert_local(staged)
        return dataclasses.replace(result, job=job)
    except Exception as e:  # recorded as this video's failure, not raised
        return snippet_lib.VideoResult(job, None, f"{type(e).__name__}: {e}")


class _WriteShard(beam.DoFn):
    """(name, [(position, result)]) -> name, after writing the shard's files and sidecar."""

    def __init__(self, plan_path: str, out_dir: str):
        self.plan_path, self.out_dir = plan_path, out_dir

    def setup(self):
        self.shards = {s.name: s for s in _read_plan(self.plan_path)["shards"]}
        self.counter = Metrics.counter(NAMESPACE, "shards")

    def process(self, element):
        name, items = element
        shard = self.shards[name]
        by_position = dict(items)
        if sorted(by_position) != list(range(len(shard.jobs))):
            raise RuntimeError(
                f"{name}: got results for positions {sorted(by_position)[:10]}..., want "
                f"0..{len(shard.jobs) - 1}"
            )
        results = iter(by_position[i] for i in range(len(shard.jobs)))  # the jobs' order
        report = shard_lib.ConvertReport(manifest={})
        bar = progress_lib.Progress(len(shard.jobs), enabled=False)
        if _is_local(self.out_dir):
            shard_lib.write_shards(self.out_dir, [shard], results, report, bar)
        else:
            with tempfile.TemporaryDirectory(prefix="tsn_beam_shard_") as tmp:
                os.makedirs(os.path.join(tmp, shard_lib.PROGRESS_DIR))
                shard_lib.write_shards(tmp, [shard], results, report, bar)
                _publish_shard(tmp, self.out_dir, shard)
        self.counter.inc()
        yield name


class _WriteManifest(beam.DoFn):
    """The list of written shard names (all of them) -> the manifest, rebuilt from sidecars."""

    def __init__(self, plan_path: str, out_dir: str, config, classes, info):
        self.plan_path, self.out_dir = plan_path, out_dir
        self.config, self.classes, self.info = config, list(classes), dict(info)

    def process(self, names: list[str]):
        plan = _read_plan(self.plan_path)
        missing = sorted(set(plan["pending"]) - set(names))
        if missing:
            raise RuntimeError(f"shards not written: {missing[:5]}")
        shards = plan["shards"]
        info = dict(self.info, not_found=plan.get("not_found", []))
        manifest = _write_manifest(self.out_dir, shards, self.config, self.classes, info)
        yield manifest["complete"]


def build_pipeline(
    pipeline: beam.Pipeline,
    plan_path: str,
    pending: Sequence[str],
    out_dir: str,
    config: snippet_lib.ConvertConfig,
    classes: Sequence[str],
    info: Mapping,
    threads: int = 1,
    video_timeout: float = 0.0,
) -> None:
    """Adds the conversion's steps to `pipeline` (see the module docstring)."""
    written = (
        pipeline
        | "PendingShards" >> beam.Create(list(pending))
        | "Videos" >> beam.ParDo(_ShardJobs(plan_path))
        | "Spread" >> beam.Reshuffle()
        | "Convert" >> beam.ParDo(_ConvertVideo(config, threads, video_timeout))
        | "ByShard" >> beam.GroupByKey()
        | "WriteShards" >> beam.ParDo(_WriteShard(plan_path, out_dir))
    )
    _ = (
        written
        | "AllShards" >> beam.combiners.ToList()
        | "WriteManifest" >> beam.ParDo(_WriteManifest(plan_path, out_dir, config, classes, info))
    )


# ---------------------------------------------------------------------------------------------
# The launcher.


def convert(
    subsets: Mapping[str, Sequence[snippet_lib.VideoJob]],
    out_dir: str,
    config: snippet_lib.ConvertConfig,
    classes: Sequence[str],
    num_shards: int | Mapping[str, int] = 0,
    info: Mapping | None = None,
    runner: str = "DirectRunner",
    pipeline_args: Sequence[str] = (),
    worker_video_root: str | None = None,
    video_timeout: float = workers_lib.DEFAULT_VIDEO_TIMEOUT,
) -> shard_lib.ConvertReport:
    """Converts videos to sharded TFRecords with a Beam runner; same output as convert.convert.

    Blocks until the job ends (a Dataflow job's log is streamed meanwhile).

    Args:
      subsets: jobs per subset name ("train", "test").
      out_dir: output folder, local or on a file system tf.io.gfile knows (gs://...).
      config: what to store.
      classes: class names (label index -> name), stored in the manifest.
      num_shards: shards per subset (int for all, or per subset); 0 = automatic.
      info: extra manifest fields, e.g. {"dataset": ..., "split": ..., "flags": {...}}.
      runner: one of RUNNERS.
      pipeline_args: Beam's own options, e.g. ["--project", "p", "--region", "europe-west4",
        "--temp_location", "gs://b/tmp", "--setup_file", "./setup.py"].
      worker_video_root: where the workers find the videos, e.g. "gs://b/UCF-101": each job's
        path becomes `<worker_video_root>/<video_id>` (the split was listed from a local copy
        or mount). None: the jobs' paths as they are.
      video_timeout: seconds per video (`_ConvertVideo`); 0 = no limit.

    Returns:
      ConvertReport: the manifest, this run's counts (from the runner's counters; zeros where
      a runner reports none) and seconds, and the shards that were already finished.

    Raises:
      ValueError: an unknown runner or subset, `--runner` inside pipeline_args, or an `out_dir`
        made with other settings (the message names the file).
      RuntimeError: the pipeline failed (the runner's error is chained).
    """
    if runner not in RUNNERS:
        raise ValueError(f"--runner must be one of {list(RUNNERS)}. Received: {runner!r}")
    clash = [a for a in pipeline_args if a == "--runner" or a.startswith("--runner=")]
    if clash:
        raise ValueError(f"give the runner with --runner only, not among Beam's options: {clash}")
    unknown = sorted(set(subsets) - set(shard_lib.SUBSETS))
    if unknown:
        raise ValueError(f"subsets must be among {list(shard_lib.SUBSETS)}. Received: {unknown}")
    if worker_video_root:
        root = worker_video_root.rstrip("/")
        subsets = {
            s: [dataclasses.replace(j, path=f"{root}/{j.video_id}") for j in jobs]
            for s, jobs in subsets.items()
        }
    info = dict(info or {})

    shards = shard_lib.plan_shards(subsets, config, num_shards)
    if _is_local(out_dir):
        os.makedirs(os.path.join(out_dir, shard_lib.PROGRESS_DIR), exist_ok=True)
    else:
        _gfile().makedirs(_join(out_dir, shard_lib.PROGRESS_DIR))
    with _local_view(out_dir) as view:
        pending, skipped = shard_lib.pending_shards(view, shards)
    report = shard_lib.ConvertReport(manifest={}, skipped_shards=skipped)
    start = time.monotonic()
    if pending:
        # every shard (the manifest step needs them all), which ones to convert, and the
        # videos not on disk (the manifest lists them; a Dataflow job graph has no room)
        plan = {"shards": [_shard_to_json(s) for s in shards], "pending": [s.name for s in pending]}
        plan["not_found"] = list(info.pop("not_found", []))
        text = json.dumps(plan, sort_keys=True)
        digest = hashlib.sha1(text.encode()).hexdigest()[:16]
        plan_path = _join(out_dir, shard_lib.PROGRESS_DIR, f"beam-plan-{digest}.json")
        if not _gfile().exists(plan_path):  # the same name holds the same plan
            with _gfile().GFile(plan_path, "w") as f:
                f.write(text)
        options = PipelineOptions(list(pipeline_args), runner=runner)
        pipeline = beam.Pipeline(options=options)
        names = plan["pending"]
        threads = _opencv_threads(runner, options)
        build_pipeline(
            pipeline, plan_path, names, out_dir, config, classes, info, threads, video_timeout
        )
        try:
            result = pipeline.run()
            state = result.wait_until_finish()
        except Exception as e:
            raise RuntimeError(f"the {runner} job failed: {e}") from e
        if state not in (None, PipelineState.DONE):  # cancelled, drained, ...
            raise RuntimeError(f"the {runner} job ended {state}; run again to resume")
        counts = _counters(result)
        report.videos, report.failed = counts["videos"], counts["failed"]
        report.frames, report.flow_pairs = counts["frames"], counts["flow_pairs"]
        report.manifest = Manifest.read(out_dir).to_dict()
    else:  # nothing to convert: no pipeline, only the manifest (as the local converter does)
        report.manifest = _write_manifest(out_dir, shards, config, classes, info)
    report.seconds = time.monotonic() - start
    return report


def _opencv_threads(runner: str, options: PipelineOptions) -> int:
    """OpenCV threads per worker: 1 where the runner runs a worker per core (clusters, the
    DirectRunner's worker processes); OpenCV's default (0: all cores) for the DirectRunner with
    one worker, which converts one video at a time (as the local converter's --workers 1)."""
    workers = options.view_as(DirectOptions).direct_num_workers
    return 0 if runner == "DirectRunner" and workers == 1 else 1


def _counters(result) -> dict[str, int]:
    """This job's COUNTERS (committed values where the runner has them, else attempted)."""
    counts = dict.fromkeys(COUNTERS, 0)
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except (NotImplementedError, AttributeError, KeyError):
        return counts
    for m in found:
        value = m.committed if m.committed is not None else m.attempted
        if m.key.metric.name in counts and value is not None:
            counts[m.key.metric.name] += int(value)
    return counts
