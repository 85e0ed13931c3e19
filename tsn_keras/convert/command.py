"""The command line of scripts/make_tfrecords.py (`main`): flags -> `shards.convert`, or
`tsn_keras.beam.convert` with --runner."""

from __future__ import annotations

import os
from collections.abc import Sequence

from absl import flags

from tsn_keras import cli, splits
from tsn_keras import flow as flow_lib
from tsn_keras.convert.shards import (
    FAILURES_NAME,
    NOT_FOUND_NAME,
    PROGRESS_DIR,
    SUBSETS,
    ConvertReport,
    convert,
    jobs_from_pairs,
)
from tsn_keras.convert.snippets import ConvertConfig
from tsn_keras.convert.workers import DEFAULT_VIDEO_TIMEOUT
from tsn_keras.modalities import MODALITIES

USAGE = """Videos -> sharded TFRecords of RGB / optical-flow snippets, one example per video and
modality.

    python scripts/make_tfrecords.py --dataset ucf101 --split 1 --video_root UCF-101 \\
        --split_dir ucfTrainTestlist --modalities rgb,flow --flow tvl1
    python scripts/make_tfrecords.py --dataset folder --video_root my_videos --test_fraction 0.2 \\
        --modalities rgb --out tfrecords/mine

Writes <out>/{train,test}-<modality>-NNNNN-of-NNNNN.tfrecord (each modality in its own files,
so training one stream reads only its bytes), <out>/manifest.json and <out>/failures.txt
(`--out` defaults to tfrecords/<dataset>_split<N>). Rerunning the same command resumes: finished
shards are kept, unfinished ones redone; --retry_failed also redoes the finished shards that
hold failed videos (a worker killed by the out-of-memory killer). Videos that cannot be decoded
(or decode fewer than --min_decoded_fraction of the frames their container declares) are
skipped and listed. Kinetics and SSv2 videos listed but not on disk are counted and named in
<out>/not_found.txt and the manifest's `not_found` (--require_all stops instead). Several
machines can share the work with `--shard_index k --num_shards_total M` on one shared --out.
Record format: tsn_keras/records.py.

Exit status: 0 done, 1 some videos failed (failures.txt) or writing failed (a full disk),
2 a bad flag, split file or --out, 130 interrupted (Ctrl-C), 143 stopped by SIGTERM (the same
clean stop: the unfinished shard's temporary files removed, a rerun resumes).
"""


def _define_flags(fv: flags.FlagValues) -> None:
    """The command's flags, on its private FlagValues (in --help they are sorted by name)."""
    _define_input_flags(fv)
    _define_record_flags(fv)
    _define_run_flags(fv)


def _define_input_flags(fv: flags.FlagValues) -> None:
    """Where the videos and the split come from, where the records go."""
    splits.define_dataset_flags(fv)  # --dataset, --video_root, --split_dir, ... as splits has them
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
    flags.DEFINE_string(
        "out", None, "Output folder; default tfrecords/<dataset>_split<N>.", flag_values=fv
    )
    flags.DEFINE_string(
        "unlabelled_out",
        None,
        "kinetics, ssv2: also write the paths of the unlabelled test videos on disk here, one a "
        "line (for tsn_keras.predict; they are not converted).",
        flag_values=fv,
    )


def _define_record_flags(fv: flags.FlagValues) -> None:
    """What each example stores (`ConvertConfig`)."""
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
        "tvl1_tensor preset (tsn_keras.tvl1.PRESETS): parity (OpenCV's defaults), fast, or tsn "
        "(OpenCV 2.4's GPU TV-L1 as TSN's dense_flow called it).",
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


def _define_run_flags(fv: flags.FlagValues) -> None:
    """How the work is shared: processes, shards, machines, subsets."""
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
    flags.DEFINE_bool(
        "retry_failed",
        False,
        "Also redo the finished shards that hold failed videos (a rerun keeps them otherwise).",
        flag_values=fv,
    )
    define_video_timeout_flag(fv)


def define_video_timeout_flag(fv: flags.FlagValues) -> None:
    """--video_timeout, shared by the converter, `predict` and `check_videos`."""
    flags.DEFINE_float(
        "video_timeout",
        DEFAULT_VIDEO_TIMEOUT,
        "Seconds one video may take; a worker still busy then is killed and the video listed "
        "as 'timed out after N s' (a hung mount, a decoder stuck in a loop). 0 = no limit.",
        lower_bound=0,
        flag_values=fv,
    )


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


def _parse(fv: flags.FlagValues, argv: Sequence[str]) -> tuple[list[str], ConvertConfig] | None:
    """Parses and checks the flags: (Beam's arguments, config), None after --help.

    Raises:
      flags.Error: a bad flag or flag value (exit status 2).
    """
    beam_args = cli.parse_flags(fv, argv, USAGE, positional=True)
    if beam_args is None:
        return None
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
    for name, low, meaning in (("workers", 0, "0 = all cores"), ("num_shards", 0, "0 = automatic"),
                               ("num_shards_total", 1, "machines")):  # fmt: skip
        if fv[name].value < low:
            raise flags.Error(f"--{name} must be >= {low} ({meaning}). Received: {fv[name].value}")
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
    return beam_args, config


def _run(
    fv: flags.FlagValues, config: ConvertConfig, beam_args: list[str], out: str
) -> ConvertReport:
    """Reads the split and converts it, locally or with --runner (errors: see `main`)."""
    split = splits.split_from_flags(fv, require_all=fv.require_all)
    pairs = {"train": split.train, "test": split.test}
    subsets = {
        s: jobs_from_pairs(pairs[s], split.classes, split.video_root)
        for s in SUBSETS
        if s in fv.subsets
    }
    if fv.unlabelled_out:
        try:
            print(splits.write_unlabelled(split, fv.unlabelled_out))
        except OSError as e:
            raise flags.Error(f"--unlabelled_out {fv.unlabelled_out}: {e.strerror}") from None
    info = {"dataset": fv.dataset, "split": fv.split, "flags": fv.flag_values_dict()}
    absent = zip(split.not_found, split.not_found_subsets, strict=True)
    info["not_found"] = [m for m, s in absent if s in subsets]  # manifest, not_found.txt
    if fv.runner:  # no _check_out: --out may be on cloud storage (gs://)
        from tsn_keras import beam

        return beam.convert(
            subsets, out, config, split.classes, num_shards=fv.num_shards, info=info,
            runner=fv.runner, pipeline_args=beam_args,
            worker_video_root=fv.worker_video_root, video_timeout=fv.video_timeout,
        )  # fmt: skip
    _check_out(out)
    return convert(
        subsets, out, config, split.classes, num_shards=fv.num_shards,
        workers=fv.workers, slice_index=fv.shard_index, num_slices=fv.num_shards_total,
        info=info, progress=fv.progress, retry_failed=fv.retry_failed,
        video_timeout=fv.video_timeout,
    )  # fmt: skip


def _absent_text(manifest: dict, out: str) -> str:
    """The summary's words on listed videos that are not on disk (none: nothing)."""
    absent = manifest.get("not_found", [])  # manifests written before it lack the field
    if not absent:
        return ""
    return f"; listed but not on disk: {len(absent)}; list in {os.path.join(out, NOT_FOUND_NAME)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of scripts/make_tfrecords.py; returns the exit status (see USAGE).

    Bad split files, --out or settings of an older run are usage errors (2); a failed write (a
    full disk) is failed work (1); Ctrl-C (130) and SIGTERM (143) remove the shard's temporary
    files and stop the workers.
    """
    return cli.run(
        _main, argv, usage_errors=(ValueError,), stopped="; rerun the same command to resume"
    )


def _main(argv: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the writer imports TensorFlow
    fv = flags.FlagValues()
    _define_flags(fv)
    parsed = _parse(fv, argv)
    if parsed is None:
        return 0
    beam_args, config = parsed
    out = fv.out or os.path.join("tfrecords", f"{fv.dataset}_split{fv.split}")
    try:
        report = _run(fv, config, beam_args, out)
    except flags.Error as e:  # found while running (split files): no --help hint
        raise cli.UsageError(str(e)) from e
    manifest = report.manifest
    counts = ", ".join(f"{k} {v['num_examples']}" for k, v in manifest["sets"].items())
    print(
        f"{out}: {counts} examples; this run {report.videos} videos in {report.seconds:.1f} s "
        f"({len(report.skipped_shards)} finished shards kept), {len(manifest['failures'])} "
        f"failed (see {os.path.join(out, FAILURES_NAME)}), {len(manifest['short_videos'])} "
        "stored short of their declared frames"
        + ("" if manifest["complete"] else "; other slices still to do (--shard_index)")
        + (
            "; a rerun keeps the shards that hold failures: add --retry_failed to convert "
            "them again"
            if manifest["failures"] and not fv.retry_failed
            else ""
        )
        + _absent_text(manifest, out)
    )
    return 1 if manifest["failures"] else 0
