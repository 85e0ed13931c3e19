"""The command line, `python -m tsn_keras.splits`: reads a split and prints its summary
(`format_split_summary`)."""

from __future__ import annotations

import statistics
import sys

from absl import flags

from tsn_keras import cli
from tsn_keras.splits.common import DATASETS, Split
from tsn_keras.splits.load import load_split
from tsn_keras.splits.web import REPLACEMENT_DIR


def format_split_summary(
    split: Split, max_classes: int = 30, max_listed: int | None = 20, max_empty: int = 20
) -> str:
    """Counts for a person: train/test videos, classes, per-class counts, absent and ignored
    files.

    Args:
      split: the split to describe.
      max_classes: classes up to this number get one line each; more get min/median/max.
      max_listed: videos not found (kinetics, ssv2) named at most, the rest counted; None: all.
      max_empty: classes without train (test) videos named at most, the rest counted.
    """
    num = len(split.classes)
    train = [0] * num
    test = [0] * num
    for _, label in split.train:
        train[label] += 1
    for _, label in split.test:
        test[label] += 1
    lines = [
        f"video_root: {split.video_root}",
        f"classes: {num}",
        f"train videos: {len(split.train)}",
        f"test videos: {len(split.test)}",
    ]
    if split.listed:
        found = {"train": len(split.train), "test": len(split.test)}
        found["unlabelled"] = len(split.unlabelled)
        lines.append(
            "found on disk: "
            + ", ".join(f"{name} {found[name]} of {n} listed" for name, n in split.listed.items())
            + (
                " (unlabelled: the test list without labels)"
                if "unlabelled" in split.listed and not split.unlabelled_has_labels
                else ""
            )
        )
        if split.unlabelled_has_labels:
            lines.append(
                "the unlabelled list (test.csv) has labels: to evaluate on it, convert it as the "
                "test list with --test_list test.csv"
            )
    if split.replaced:
        lines.append(
            f"taken from {REPLACEMENT_DIR}: {split.replaced} (cvdf's "
            "replacements of corrupted clips, preferred to the originals)"
        )
    if num <= max_classes:
        lines.append("  label  train   test  class")
        lines += [
            f"  {i:5d}  {train[i]:5d}  {test[i]:5d}  {c}" for i, c in enumerate(split.classes)
        ]
    else:
        for name, counts in (("train", train), ("test", test)):
            lo, hi = (
                min(range(num), key=counts.__getitem__),
                max(range(num), key=counts.__getitem__),
            )
            lines.append(
                f"{name} videos per class: min {counts[lo]} ({split.classes[lo]}), median "
                f"{statistics.median(counts):g}, max {counts[hi]} ({split.classes[hi]})"
            )
    for name, counts in (("train", train), ("test", test)):
        empty = [split.classes[i] for i in range(num) if counts[i] == 0]
        if empty:
            named = ", ".join(empty[:max_empty])
            more = f" ... and {len(empty) - max_empty} more" if len(empty) > max_empty else ""
            lines.append(f"warning: {len(empty)} classes have no {name} videos: {named}{more}")
    if split.ignored:
        total = sum(split.ignored.values())
        kinds = sorted(split.ignored.items(), key=lambda kv: (-kv[1], kv[0]))
        named = ", ".join(f"{ext or '(no extension)'} {n}" for ext, n in kinds)
        lines.append(f"ignored {total} files: {named}")
    lines.append(f"missing videos: {len(split.missing)}")
    lines += [f"  {m}" for m in split.missing]
    if split.listed:
        shown = split.not_found if max_listed is None else split.not_found[:max_listed]
        lines.append(
            f"not found (left out: not downloaded, or where noted): {len(split.not_found)}"
        )
        lines += [f"  {m}" for m in shown]
        if len(shown) < len(split.not_found):
            lines.append(f"  ... and {len(split.not_found) - len(shown)} more (--list_all)")
    return "\n".join(lines)


def define_dataset_flags(fv: flags.FlagValues) -> None:
    """The flags that name a dataset and its split: this command's and the converter's."""
    flags.DEFINE_enum("dataset", None, list(DATASETS), "Split file layout.", flag_values=fv)
    flags.DEFINE_string("video_root", None, "Folder that holds the videos.", flag_values=fv)
    flags.DEFINE_string(
        "split_dir",
        None,
        "Folder of the split files (ucf101, hmdb51, kinetics, ssv2); default: the usual name "
        "in video_root.",
        flag_values=fv,
    )
    flags.DEFINE_integer("split", 1, "Split number 1-3 (ucf101, hmdb51).", flag_values=fv)
    flags.DEFINE_string("csv", None, "CSV file of path,label lines (dataset csv).", flag_values=fv)
    flags.DEFINE_float(
        "test_fraction", 0.3, "Test fraction of the hash split (folder, csv).", flag_values=fv
    )
    flags.DEFINE_bool(
        "require_all", False, "A listed video that is not on disk is an error.", flag_values=fv
    )
    flags.DEFINE_string(
        "train_list",
        None,
        "kinetics: the train list's CSV (a path, or a name in --split_dir); default train.csv "
        "or kinetics_train.csv.",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "test_list",
        None,
        "kinetics: the test list's CSV; default validate.csv, val.csv, validation.csv or "
        "kinetics_val.csv; test.csv (when labelled) evaluates on Kinetics' test set.",
        flag_values=fv,
    )
    flags.mark_flags_as_required(["dataset", "video_root"], flag_values=fv)


def split_from_flags(fv: flags.FlagValues, require_all: bool = False) -> Split:
    """`load_split` with the values of `define_dataset_flags`' flags.

    Raises:
      flags.Error: --dataset csv without --csv.
      ValueError: a bad split file (file:line) or, with require_all, videos not on disk.
    """
    if fv.dataset == "csv" and fv.csv is None:
        raise flags.Error("--csv is required with --dataset csv; pass the CSV file")
    return load_split(
        fv.dataset,
        fv.video_root,
        split_dir=fv.split_dir,
        split=fv.split,
        csv_path=fv.csv,
        test_fraction=fv.test_fraction,
        require_all=require_all,
        train_list=fv.train_list,
        test_list=fv.test_list,
    )


def write_unlabelled(split: Split, path: str) -> str:
    """Writes the paths of the unlabelled videos on disk to `path`, one a line.

    Returns:
      The line that says so.

    Raises:
      OSError: the file cannot be written.
    """
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"{video}\n" for video in split.unlabelled)
    return f"unlabelled videos: {len(split.unlabelled)} paths written to {path}"


def _flag_values() -> flags.FlagValues:
    """The command's flags, on a private FlagValues (see `main`)."""
    fv = flags.FlagValues()
    define_dataset_flags(fv)
    flags.DEFINE_bool(
        "list_all", False, "Name every video not found (default: the first 20).", flag_values=fv
    )
    flags.DEFINE_string(
        "unlabelled_out",
        None,
        "kinetics, ssv2: write the paths of the unlabelled test videos on disk here, one a line "
        "(for tsn_keras.predict).",
        flag_values=fv,
    )
    return fv


def main(argv: list[str] | None = None) -> int:
    """Command line: reads a split and prints its summary.

    The flags live on a private FlagValues made here, so importing tsn_keras.splits (as the
    converter does) defines no global flags that could clash with the importer's.

    Returns:
      0 when every listed video exists (kinetics, ssv2: also when some were not downloaded,
      unless --require_all), 1 when some are missing, 2 on a bad flag or split file.
    """
    return cli.run(_main, argv, usage_errors=(ValueError,))


def _main(argv: list[str]) -> int:
    fv = _flag_values()
    # The package docstring is the overview; the package is imported before this module, so
    # it is read from sys.modules rather than imported back (imports go one way).
    overview = sys.modules[__package__].__doc__
    usage = f"usage: python -m tsn_keras.splits --dataset D --video_root R [flags]\n\n{overview}"
    if cli.parse_flags(fv, argv, usage) is None:
        return 0
    split = split_from_flags(fv)  # --require_all: summarised below, exit 1
    header = f"dataset: {fv.dataset}"
    if fv.dataset in ("ucf101", "hmdb51"):
        header += f", split {fv.split}"
    elif fv.dataset in ("folder", "csv"):
        header += f", hash split with test_fraction {fv.test_fraction:g}"
    print(header)
    print(format_split_summary(split, max_listed=None if fv.list_all else 20))
    if fv.unlabelled_out:
        try:
            print(write_unlabelled(split, fv.unlabelled_out))
        except OSError as e:
            raise cli.Failure(f"--unlabelled_out {fv.unlabelled_out}: {e.strerror}") from e
    if split.missing or (fv.require_all and split.not_found):
        return 1
    return 0
