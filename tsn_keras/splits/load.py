"""`load_split`: the one entry point that checks its arguments and runs a dataset's reader."""

from __future__ import annotations

import os

from tsn_keras.splits.common import DATASETS, DEFAULT_SPLIT_DIRS, Split
from tsn_keras.splits.folder_csv import load_csv, load_folder
from tsn_keras.splits.ucf_hmdb import load_hmdb51, load_ucf101
from tsn_keras.splits.web import load_kinetics, load_ssv2


def load_split(
    dataset: str,
    video_root: str,
    split_dir: str | None = None,
    split: int = 1,
    csv_path: str | None = None,
    test_fraction: float = 0.3,
    require_all: bool = False,
    train_list: str | None = None,
    test_list: str | None = None,
) -> Split:
    """Reads a dataset's split into (path, label) lists.

    The one entry point for every dataset: the command lines pass their flags through to it.

    Args:
      dataset: one of DATASETS (see the tsn_keras.splits docstring).
      video_root: folder that holds the videos.
      split_dir: folder of the split files (ucf101, hmdb51, kinetics, ssv2); None: the
        dataset's usual folder name inside video_root (DEFAULT_SPLIT_DIRS).
      split: 1, 2 or 3 (ucf101, hmdb51).
      csv_path: the CSV file (csv).
      test_fraction: fraction of videos in the test set (folder, csv), in [0, 1].
      require_all: a listed video that is not on disk (`Split.missing`, `Split.not_found`)
        raises instead of being reported.
      train_list: kinetics: the train list's CSV (a path, or a name in split_dir) instead of
        train.csv (or kinetics_train.csv).
      test_list: kinetics: the test list's CSV instead of validate.csv (val.csv,
        validation.csv, kinetics_val.csv); e.g. a labelled test.csv, to evaluate on it.

    Returns:
      The Split: absolute paths under video_root, 0-based labels, class names, missing videos.

    Raises:
      ValueError: a bad argument (named), a bad split file ("file:line: what; what to do"), or,
        with require_all, listed videos that are not on disk (counted, the first ones named).
    """
    if dataset != "kinetics" and (train_list or test_list):
        raise ValueError(
            f"train_list / test_list (--train_list, --test_list) name Kinetics CSVs; dataset "
            f"{dataset} takes its lists by their usual names. Received: train_list={train_list!r}"
            f", test_list={test_list!r}"
        )
    lists = (train_list, test_list)
    result = _load(dataset, video_root, split_dir, split, csv_path, test_fraction, lists)
    absent = result.missing + result.not_found
    if require_all and absent:
        shown = "\n  ".join(absent[:10])
        more = f"\n  ... and {len(absent) - 10} more" if len(absent) > 10 else ""
        raise ValueError(
            f"{len(absent)} listed videos are not on disk under {result.video_root} "
            f"(require_all, --require_all):\n  {shown}{more}\ndownload them, or drop "
            "--require_all to use the videos that are there"
        )
    return result


def _load(
    dataset: str,
    video_root: str,
    split_dir: str | None,
    split: int,
    csv_path: str | None,
    test_fraction: float,
    lists: tuple[str | None, str | None] = (None, None),
) -> Split:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; Received: {dataset!r}")
    if not os.path.isdir(video_root):
        raise ValueError(
            f"video_root {video_root} is not a folder; set video_root (--video_root) to the "
            "folder that holds the videos"
        )
    video_root = os.path.abspath(video_root)
    if dataset in DEFAULT_SPLIT_DIRS:
        if dataset in ("ucf101", "hmdb51") and split not in (1, 2, 3):
            raise ValueError(f"split must be 1, 2 or 3 for {dataset}; Received: split={split}")
        if split_dir is None:
            split_dir = os.path.join(video_root, DEFAULT_SPLIT_DIRS[dataset])
            if not os.path.isdir(split_dir):
                raise ValueError(
                    f"split_dir is not set and {split_dir} does not exist; set split_dir "
                    f"(--split_dir) to the folder of the {dataset} split files"
                )
        elif not os.path.isdir(split_dir):
            raise ValueError(
                f"split_dir {split_dir} is not a folder; set split_dir (--split_dir) to the "
                f"folder of the {dataset} split files"
            )
        loaders = {
            "ucf101": lambda: load_ucf101(video_root, split_dir, split),
            "hmdb51": lambda: load_hmdb51(video_root, split_dir, split),
            "kinetics": lambda: load_kinetics(video_root, split_dir, *lists),
            "ssv2": lambda: load_ssv2(video_root, split_dir),
        }
        return loaders[dataset]()
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(
            f"test_fraction must be in [0, 1]; Received: test_fraction={test_fraction}"
        )
    if dataset == "folder":
        return load_folder(video_root, test_fraction)
    if csv_path is None:
        raise ValueError("csv_path (--csv) is required for dataset csv; pass the CSV file")
    if not os.path.isfile(csv_path):
        raise ValueError(f"csv_path {csv_path} is not a file; pass the CSV file (--csv)")
    return load_csv(video_root, csv_path, test_fraction)
