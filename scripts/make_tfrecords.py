"""Videos -> sharded TFRecords of RGB / optical-flow snippets (one example per video and modality).

    python scripts/make_tfrecords.py --dataset ucf101 --split 1 --video_root UCF-101 \
        --split_dir ucfTrainTestlist --modalities rgb,flow --flow tvl1
    python scripts/make_tfrecords.py --dataset folder --video_root my_videos --test_fraction 0.2 \
        --modalities rgb --out tfrecords/mine

Writes <out>/{train,test}-<modality>-NNNNN-of-NNNNN.tfrecord (each modality in its own files,
so training one stream reads only its bytes), <out>/manifest.json and <out>/failures.txt
(`--out` defaults to tfrecords/<dataset>_split<N>). Rerunning the same command resumes: finished
shards are kept, unfinished ones redone. Videos that cannot be decoded are skipped and listed;
the exit status is 1 if any failed. Several machines can share the work with
`--shard_index k --num_shards_total M` on one shared --out. Record format: tsn_keras/records.py.
"""

import os
import sys

from absl import app, flags

from tsn_keras import convert, splits
from tsn_keras.flow import ALGORITHMS, DIS_PRESETS, TVL1_PRESETS
from tsn_keras.records import MODALITIES

_DATASET = flags.DEFINE_enum(
    "dataset", None, ["ucf101", "hmdb51", "folder", "csv"], "Dataset layout."
)
_VIDEO_ROOT = flags.DEFINE_string("video_root", None, "Folder holding the videos.")
_SPLIT_DIR = flags.DEFINE_string("split_dir", None, "Folder of the split files (ucf101/hmdb51).")
_SPLIT = flags.DEFINE_integer("split", 1, "Split number (1-3 for UCF101 / HMDB51).")
_CSV = flags.DEFINE_string("csv", None, "CSV file for --dataset csv.")
_TEST_FRACTION = flags.DEFINE_float(
    "test_fraction", 0.3, "folder/csv without split files: hash-decided test fraction."
)
_OUT = flags.DEFINE_string("out", None, "Output folder; default tfrecords/<dataset>_split<N>.")
_MODALITIES = flags.DEFINE_list(
    "modalities", ["rgb", "flow"], f"What to store, among {', '.join(MODALITIES)}."
)
_FLOW = flags.DEFINE_enum("flow", "tvl1", list(ALGORITHMS), "Optical flow algorithm.")
_DIS_PRESET = flags.DEFINE_enum("dis_preset", "medium", list(DIS_PRESETS), "DIS preset.")
_FLOW_PRESET = flags.DEFINE_enum(
    "flow_preset", "parity", list(TVL1_PRESETS), "tvl1_tensor preset (tsn_keras.tvl1.PRESETS)."
)
_FLOW_BOUND = flags.DEFINE_float("flow_bound", 20.0, "Flow clip bound (pixels) for uint8.")
_SNIPPETS = flags.DEFINE_integer("snippets", 25, "Snippets per video; 0 = every frame (dense).")
_SNIPPET_LENGTH = flags.DEFINE_integer("snippet_length", 5, "Frames per flow / rgbdiff snippet.")
_WIDTH = flags.DEFINE_integer("width", 340, "Stored frame width.")
_HEIGHT = flags.DEFINE_integer("height", 256, "Stored frame height.")
_SHORT_SIDE = flags.DEFINE_integer(
    "short_side", None, "Keep the aspect ratio, shorter side this long (overrides width/height)."
)
_JPEG_QUALITY = flags.DEFINE_integer("jpeg_quality", 90, "JPEG quality (0-100).")
_DECODE = flags.DEFINE_enum(
    "decode", "auto", ["auto", "two_pass"], "auto: one pass when the frame count is right."
)
_WORKERS = flags.DEFINE_integer("workers", 0, "Worker processes; 0 = all cores.")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 0, "Shards per subset; 0 = ~100 videos each.")
_SHARD_INDEX = flags.DEFINE_integer("shard_index", 0, "This machine's slice of the shards.")
_NUM_SHARDS_TOTAL = flags.DEFINE_integer(
    "num_shards_total", 1, "Machines sharing the work (slices); shard i goes to i % this."
)
_SUBSETS = flags.DEFINE_list("subsets", ["train", "test"], "Subsets to convert.")
_PROGRESS = flags.DEFINE_bool("progress", True, "Progress line on stderr.")


def main(argv):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the writer imports TensorFlow
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}; all options are --flags")
    config = convert.ConvertConfig(
        modalities=tuple(_MODALITIES.value),
        flow_algorithm=_FLOW.value,
        flow_bound=_FLOW_BOUND.value,
        dis_preset=_DIS_PRESET.value,
        flow_preset=_FLOW_PRESET.value,
        num_snippets=_SNIPPETS.value,
        snippet_length=_SNIPPET_LENGTH.value,
        width=_WIDTH.value,
        height=_HEIGHT.value,
        short_side=_SHORT_SIDE.value,
        jpeg_quality=_JPEG_QUALITY.value,
        decode_mode=_DECODE.value,
    )
    unknown = sorted(set(_SUBSETS.value) - set(convert.SUBSETS))
    if unknown:
        raise app.UsageError(f"--subsets must be among {list(convert.SUBSETS)}; got {unknown}")
    split = splits.load_split(
        _DATASET.value,
        _VIDEO_ROOT.value,
        split_dir=_SPLIT_DIR.value,
        split=_SPLIT.value,
        csv_path=_CSV.value,
        test_fraction=_TEST_FRACTION.value,
    )
    pairs = {"train": split.train, "test": split.test}
    subsets = {
        s: convert.jobs_from_pairs(pairs[s], split.classes, split.video_root)
        for s in convert.SUBSETS
        if s in _SUBSETS.value
    }
    out = _OUT.value or os.path.join("tfrecords", f"{_DATASET.value}_split{_SPLIT.value}")
    flag_values = {f.name: f.value for f in flags.FLAGS.get_key_flags_for_module(sys.argv[0])}
    report = convert.convert(
        subsets,
        out,
        config,
        split.classes,
        num_shards=_NUM_SHARDS.value,
        workers=_WORKERS.value,
        slice_index=_SHARD_INDEX.value,
        num_slices=_NUM_SHARDS_TOTAL.value,
        info={"dataset": _DATASET.value, "split": _SPLIT.value, "flags": flag_values},
        progress=_PROGRESS.value,
    )
    manifest = report.manifest
    counts = ", ".join(f"{k} {v['num_examples']}" for k, v in manifest["sets"].items())
    print(
        f"{out}: {counts} examples; this run {report.videos} videos in {report.seconds:.1f} s "
        f"({len(report.skipped_shards)} finished shards kept), {len(manifest['failures'])} "
        f"failed (see {os.path.join(out, convert.FAILURES_NAME)})"
        + ("" if manifest["complete"] else "; other slices still to do (--shard_index)")
    )
    return 1 if manifest["failures"] else 0


if __name__ == "__main__":
    flags.mark_flags_as_required(["dataset", "video_root"])
    app.run(main)
