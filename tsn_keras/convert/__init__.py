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
  writes the shards with `tf.io.TFRecordWriter` in shard order. Each worker runs OpenCV and the
  decoder with one thread (the workers fill the cores); `workers=1` is one worker process
  too, with their default threads (all cores), so that the per-video time limit
  (`video_timeout`) can kill it; only `video_timeout=0` with one worker converts in the
  calling process. `--flow tvl1_tensor`'s
  solver is Keras code: the workers only queue its pairs, and the parent solves them in
  batches shared by consecutive videos (`flow_batches`), so one process owns the solver and
  the GPU where there is one (docs/flow_tvl1.md). The parent watches its workers
  (`WorkerPool`): a worker that dies (kill -9, the out-of-memory killer) has its video retried
  once in a fresh worker, then listed as a failure ("worker died (signal 9) while converting
  <path>"); the run goes on. A video still converting `video_timeout` seconds after its
  worker started it gets the worker killed and is listed as a failure ("timed out after
  N s"); a worker stuck in an uninterruptible read is left behind, never waited for.
* A video that decodes fewer than `min_decoded_fraction` of the frames its container declares
  is a failure; a smaller shortfall (`is_short`) is stored, warned about on stderr and listed in
  the sidecar and the manifest (`short_videos`).
* Memory per worker: the frames stream through (`video.decode_selected`); only the current
  and previous grayscale frame and the encoded JPEGs of one example are held, so it does not
  grow with the video's length (with `num_snippets=0`, dense, the example itself does).
  `--flow tvl1_tensor` holds the grayscale frames of a video's queued pairs until the parent
  solves them (~87 KB a 340x256 frame, ~11 MB for 25 snippets x 5 fields).
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
  the manifest. The manifest (`manifest.Manifest`) is rebuilt from all sidecars at the end.

Layout (imports go one way: snippets <- flow_batches <- workers <- shards <- command <- this
package; `progress` is used by workers and shards):
  snippets  ConvertConfig, VideoJob, VideoResult, PendingFlow, SnippetPlan, Engines,
            `convert_video`, `finish_video`: one video, the workers' code (never imports
            TensorFlow).
  flow_batches  the parent's batched tvl1_tensor solver calls across videos.
  progress  the parent's progress line and warnings on stderr.
  workers   the kill test hook, `_worker_main`, `WorkerPool`, `ConvertTask`, `video_results`.
  shards    shard planning, sidecars, the resume rule, `convert`, shard and manifest writing,
            `jobs_from_pairs`, `plan_shards`.
  command   USAGE, the flags, `main` (scripts/make_tfrecords.py).
No module here imports TensorFlow at module level (the shard writer imports it inside its
functions): a spawned worker imports this whole package to reach `workers._worker_main`.
`tsn_keras.beam` uses the names re-exported below; `command` imports it only inside `main`
(--runner), so plain conversion never loads Apache Beam.
"""

from tsn_keras.convert.command import USAGE, define_video_timeout_flag, main
from tsn_keras.convert.progress import Progress, warn
from tsn_keras.convert.shards import (
    FAILURES_NAME,
    NOT_FOUND_NAME,
    PROGRESS_DIR,
    SUBSETS,
    VIDEOS_PER_SHARD,
    ConvertReport,
    Shard,
    assign_shards,
    auto_num_shards,
    convert,
    jobs_from_pairs,
    pending_shards,
    plan_shards,
    shard_done,
    write_manifest,
    write_shards,
)
from tsn_keras.convert.snippets import (
    ConvertConfig,
    Engines,
    PendingFlow,
    SnippetPlan,
    VideoJob,
    VideoResult,
    convert_video,
    digest,
    finish_video,
    is_short,
    shortfall_text,
)
from tsn_keras.convert.workers import (
    DEFAULT_VIDEO_TIMEOUT,
    KILL_WORKER_ENV,
    PREFETCH,
    WORKER_TRIES,
    ChildDecoder,
    ConvertTask,
    WindowFrames,
    WorkerPool,
    timed_out_text,
    video_results,
)

__all__ = [
    "DEFAULT_VIDEO_TIMEOUT",
    "FAILURES_NAME",
    "KILL_WORKER_ENV",
    "NOT_FOUND_NAME",
    "PREFETCH",
    "PROGRESS_DIR",
    "SUBSETS",
    "USAGE",
    "VIDEOS_PER_SHARD",
    "WORKER_TRIES",
    "ConvertConfig",
    "ConvertReport",
    "ChildDecoder",
    "ConvertTask",
    "Engines",
    "PendingFlow",
    "Progress",
    "Shard",
    "SnippetPlan",
    "VideoJob",
    "VideoResult",
    "WindowFrames",
    "WorkerPool",
    "assign_shards",
    "auto_num_shards",
    "convert",
    "convert_video",
    "define_video_timeout_flag",
    "digest",
    "finish_video",
    "is_short",
    "jobs_from_pairs",
    "main",
    "pending_shards",
    "plan_shards",
    "shard_done",
    "shortfall_text",
    "timed_out_text",
    "video_results",
    "warn",
    "write_manifest",
    "write_shards",
]
