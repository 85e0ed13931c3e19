"""Dataset split files -> (video path, label) lists and class names.

Four layouts, one result (`Split`):

  ucf101  <split_dir>/classInd.txt ("<1-based index> <class>"), trainlistNN.txt
          ("<class>/<video> <1-based label>") and testlistNN.txt ("<class>/<video>", the label
          comes from the folder), NN = 01..03. A label on a test line, or a train line without
          one, is accepted: the label, when given, must agree with the folder. split_dir
          defaults to <video_root>/ucfTrainTestlist.
  hmdb51  <split_dir>/<class>_test_splitN.txt, lines "<video> <id>": 1 = train, 2 = test,
          0 = unused. The classes are the sorted class names of those files; the videos are at
          <video_root>/<class>/<video>. split_dir defaults to
          <video_root>/testTrainMulti_7030_splits (the folder HMDB51's archive unpacks to).
  folder  <video_root>/<class>/.../<video> (one folder per class, sorted names; folders
          without videos are skipped); split by a stable hash, see below.
  csv     a CSV file of "path,label" lines (label = class name, path relative to video_root,
          an optional "path,label" header); classes = sorted label names; split by hash.

Real files are read as they are: UTF-8 with or without a BOM, CRLF or LF, trailing whitespace,
blank lines, backslashes as separators, and names whose case differs from the disk (UCF101's
`HandstandPushups/v_HandStandPushups_...`): a path that does not exist as written is looked up
case-insensitively, one directory listing per folder (cached).

Errors (a malformed line, an unknown class, a bad label, a path that leaves video_root,
the same video listed twice) raise ValueError("<file>:<line>: <what is wrong>; <what to do>").
A video that is not on disk does not raise: it stays in its list, with the path it would have,
and is reported in `Split.missing` as "<file>:<line>: <path>" (the converter records it as a
failure; the command line exits with status 1).

The hash split (folder, csv) puts a video in the test set when
sha1(key) mod 10000 < round(test_fraction * 10000), where key is the lowercased relative path;
for UCF101-style names (`v_<Class>_gGG_cCC.ext`) the `_cCC` is dropped from the key, so the
clips of one group land on the same side, as UCF101's own splits keep them. The split depends
only on the file names: reruns and other machines agree, and adding videos moves no other.

Command line (checks a dataset before a long conversion):
    python -m tsn_keras.splits --dataset ucf101 --video_root UCF-101 \
        --split_dir ucfTrainTestlist --split 1
prints the train/test counts, the classes with their per-class counts and the missing videos;
exit status 0 when all is well, 1 when videos are missing, 2 on a bad flag or a bad split file.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import posixpath
import re
import statistics
import sys
from collections.abc import Iterator

from absl import flags

from tsn_keras import cli

DATASETS = ("ucf101", "hmdb51", "folder", "csv")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".flv", ".m4v")
UCF101_SPLIT_DIR = "ucfTrainTestlist"
HMDB51_SPLIT_DIR = "testTrainMulti_7030_splits"

_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d+)\.txt$", re.IGNORECASE)
_UCF_CLIP = re.compile(r"^(?P<group>v_.+_g\d+)_c\d+(?P<ext>\.[^./]+)$", re.IGNORECASE)
_CSV_PATH_HEADERS = {"path", "video", "file", "filename", "video_path"}
_CSV_LABEL_HEADERS = {"label", "class", "class_name", "label_name"}


@dataclasses.dataclass(frozen=True)
class Split:
    """A dataset split.

    Attributes:
      train: (absolute video path, 0-based label) per training video, in file order.
      test: the same for the test videos.
      classes: class names; classes[label] is the name of a label.
      video_root: absolute path of the video root; every path above lies under it.
      missing: "<file>:<line>: <path>" for each listed video that is not on disk (those
        videos are still in train/test).
    """

    train: list[tuple[str, int]]
    test: list[tuple[str, int]]
    classes: list[str]
    video_root: str
    missing: list[str]


def video_id(path: str, video_root: str) -> str:
    """The id of a video: its path relative to video_root with '/' separators.

    Args:
      path: a video path (absolute, or relative to the working directory).
      video_root: the dataset's video root.

    Returns:
      e.g. "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi".

    Raises:
      ValueError: path is not under video_root.
    """
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(video_root))
    rel = rel.replace(os.sep, "/")
    if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise ValueError(
            f"{path} is not under video_root {video_root}; pass the video_root the split used"
        )
    return rel


def _read_lines(path: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) of each non-blank line; BOM and CRLF handled."""
    try:
        with open(path, encoding="utf-8-sig", newline=None) as f:
            lines = f.read().split("\n")  # newline=None has turned CRLF and CR into LF
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e}); save the file as UTF-8") from e
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror}); check the path") from e
    for number, line in enumerate(lines, start=1):
        text = line.strip().lstrip("\ufeff").strip()
        if text:
            yield number, text


def _line_error(path: str, lineno: int, message: str) -> ValueError:
    return ValueError(f"{path}:{lineno}: {message}")


def _normalise(raw: str, path: str, lineno: int) -> str:
    """A list entry as a clean relative posix path; rejects absolute and escaping paths."""
    entry = raw.strip().replace("\\", "/")
    if entry.startswith("/") or re.match(r"^[A-Za-z]:", entry):
        raise _line_error(
            path,
            lineno,
            f"'{raw}' is an absolute path; write it relative to video_root",
        )
    rel = posixpath.normpath(entry)
    if rel == ".." or rel.startswith("../"):
        raise _line_error(
            path,
            lineno,
            f"'{raw}' resolves outside video_root; write it relative to video_root, without '..'",
        )
    if rel in ("", "."):
        raise _line_error(path, lineno, f"'{raw}' names no file; write <class>/<video>")
    return rel


class _DiskIndex:
    """Finds relative paths under a root, falling back to a case-insensitive match.

    Each directory is listed once; the listing maps every name and its lowercase form.
    """

    def __init__(self, root: str):
        self.root = root
        self._listings: dict[str, tuple[dict[str, bool], dict[str, str]] | None] = {}

    def _listing(self, rel_dir: str) -> tuple[dict[str, bool], dict[str, str]] | None:
        if rel_dir not in self._listings:
            try:
                with os.scandir(os.path.join(self.root, rel_dir)) as it:
                    names = {e.name: e.is_dir() for e in it}
            except OSError:
                self._listings[rel_dir] = None
            else:
                lower: dict[str, str] = {}
                for name in sorted(names):
                    lower.setdefault(name.lower(), name)
                self._listings[rel_dir] = (names, lower)
        return self._listings[rel_dir]

    def find(self, rel: str) -> str | None:
        """The on-disk spelling of the file `rel` (posix, relative), or None if there is none."""
        found = ""
        parts = rel.split("/")
        for i, part in enumerate(parts):
            listing = self._listing(found)
            if listing is None:
                return None
            names, lower = listing
            name = part if part in names else lower.get(part.lower())
            if name is None:
                return None
            if names[name] != (i < len(parts) - 1):  # folders on the way, a file at the end
                return None
            found = posixpath.join(found, name)
        return found


class _Collector:
    """Accumulates train/test entries, resolving paths, tracking duplicates and missing."""

    def __init__(self, video_root: str):
        self.root = video_root
        self.index = _DiskIndex(video_root)
        self.lists: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
        self.missing: list[str] = []
        self._seen: dict[str, str] = {}

    def add(self, subset: str, rel: str, label: int, path: str, lineno: int) -> None:
        key = rel.lower()
        if key in self._seen:
            raise _line_error(
                path,
                lineno,
                f"'{rel}' is already listed at {self._seen[key]}; remove one of the two lines",
            )
        self._seen[key] = f"{path}:{lineno}"
        found = self.index.find(rel)
        full = os.path.join(self.root, *(found or rel).split("/"))
        if found is None:
            self.missing.append(f"{path}:{lineno}: {full}")
        self.lists[subset].append((full, label))

    def split(self, classes: list[str]) -> Split:
        return Split(
            train=self.lists["train"],
            test=self.lists["test"],
            classes=classes,
            video_root=self.root,
            missing=self.missing,
        )


def _find_file(directory: str, name: str, what: str) -> str:
    """`directory/name`, matching the name case-insensitively; ValueError if absent."""
    exact = os.path.join(directory, name)
    if os.path.isfile(exact):
        return exact
    try:
        for entry in sorted(os.listdir(directory)):
            if entry.lower() == name.lower() and os.path.isfile(os.path.join(directory, entry)):
                return os.path.join(directory, entry)
    except OSError:
        pass
    raise ValueError(f"{exact} does not exist; set split_dir (--split_dir) to the folder of {what}")


def _looks_like_file(word: str) -> bool:
    return "/" in word or "\\" in word or word.lower().endswith(VIDEO_EXTENSIONS)


def _load_ucf101(video_root: str, split_dir: str, split: int) -> Split:
    what = "UCF101's classInd.txt, trainlist0N.txt and testlist0N.txt"
    class_file = _find_file(split_dir, "classInd.txt", what)
    by_index: dict[int, str] = {}
    for lineno, text in _read_lines(class_file):
        fields = text.split(None, 1)
        if len(fields) != 2 or not fields[0].isdigit():
            raise _line_error(
                class_file, lineno, f"expected '<index> <class name>', got '{text}'; fix the line"
            )
        index, name = int(fields[0]), fields[1].strip()
        if index in by_index:
            raise _line_error(
                class_file, lineno, f"index {index} is used twice; give each class its own index"
            )
        by_index[index] = name
    if not by_index:
        raise ValueError(f"{class_file}: no classes; it should hold '<index> <class name>' lines")
    if sorted(by_index) != list(range(1, len(by_index) + 1)):
        raise ValueError(
            f"{class_file}: class indices must be 1..{len(by_index)} without gaps; "
            f"found {sorted(by_index)[:5]}...; renumber the classes"
        )
    classes = [by_index[i] for i in range(1, len(by_index) + 1)]
    by_folder: dict[str, int] = {}
    for label, name in enumerate(classes):
        if name.lower() in by_folder:
            raise ValueError(
                f"{class_file}: class '{name}' is listed twice (names compare case-insensitively); "
                "remove one"
            )
        by_folder[name.lower()] = label

    collector = _Collector(video_root)
    for subset, stem in (("train", "trainlist"), ("test", "testlist")):
        list_file = _find_file(split_dir, f"{stem}{split:02d}.txt", what)
        for lineno, text in _read_lines(list_file):
            # "<path> <label>" or "<path>"; a last word that looks like a file is the path's.
            fields = text.rsplit(None, 1)
            label = None
            entry = text
            if len(fields) == 2 and not _looks_like_file(fields[1]):
                if not re.fullmatch(r"[+-]?\d+", fields[1]):
                    raise _line_error(
                        list_file,
                        lineno,
                        f"label '{fields[1]}' is not an integer; "
                        "write '<class>/<video> <1-based label>'",
                    )
                label = int(fields[1])
                if not 1 <= label <= len(classes):
                    raise _line_error(
                        list_file,
                        lineno,
                        f"label {label} is not in {os.path.basename(class_file)} "
                        f"(1..{len(classes)}); fix the label",
                    )
                label -= 1
                entry = fields[0]
            rel = _normalise(entry, list_file, lineno)
            folder = rel.split("/")[0] if "/" in rel else None
            folder_label = by_folder.get(folder.lower()) if folder else None
            if label is None:
                if folder is None:
                    raise _line_error(
                        list_file,
                        lineno,
                        f"'{rel}' has neither a class folder nor a label; "
                        "write '<class>/<video>' or '<video> <label>'",
                    )
                if folder_label is None:
                    raise _line_error(
                        list_file,
                        lineno,
                        f"unknown class '{folder}' (not in {os.path.basename(class_file)}); "
                        "fix the folder name or add the class to classInd.txt",
                    )
                label = folder_label
            elif folder_label is not None and folder_label != label:
                raise _line_error(
                    list_file,
                    lineno,
                    f"label {label + 1} ({classes[label]}) disagrees with the folder '{folder}' "
                    f"(class {folder_label + 1}); fix the label or the path",
                )
            collector.add(subset, rel, label, list_file, lineno)
    return collector.split(classes)


def _load_hmdb51(video_root: str, split_dir: str, split: int) -> Split:
    try:
        names = sorted(os.listdir(split_dir))
    except OSError as e:
        raise ValueError(
            f"split_dir {split_dir} cannot be listed ({e.strerror}); set split_dir "
            "(--split_dir) to the folder of HMDB51's <class>_test_splitN.txt files"
        ) from e
    files: dict[str, str] = {}
    for name in names:
        match = _HMDB_FILE.match(name)
        if match and int(match["split"]) == split:
            files[match["cls"]] = os.path.join(split_dir, name)
    if not files:
        raise ValueError(
            f"{split_dir}: no <class>_test_split{split}.txt files; set split_dir (--split_dir) "
            "to the folder of HMDB51's split files"
        )
    classes = sorted(files)
    collector = _Collector(video_root)
    for label, cls in enumerate(classes):
        list_file = files[cls]
        for lineno, text in _read_lines(list_file):
            fields = text.rsplit(None, 1)
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise _line_error(
                    list_file,
                    lineno,
                    f"expected '<video> <id>' with id 0 (unused), 1 (train) or 2 (test), "
                    f"got '{text}'; fix the line",
                )
            if fields[1] == "0":
                continue
            rel = f"{cls}/{_normalise(fields[0], list_file, lineno)}"
            collector.add("train" if fields[1] == "1" else "test", rel, label, list_file, lineno)
    return collector.split(classes)


def _hash_key(rel: str) -> str:
    """What the hash split hashes: the lowercased path, without a UCF101 clip number."""
    directory, name = posixpath.split(rel)
    match = _UCF_CLIP.match(name)
    if match:
        name = match["group"] + match["ext"]
    return posixpath.join(directory, name).lower()


def _in_test(rel: str, test_fraction: float) -> bool:
    digest = hashlib.sha1(_hash_key(rel).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 10000 < round(test_fraction * 10000)


def _load_folder(video_root: str, test_fraction: float) -> Split:
    by_class: dict[str, list[str]] = {}
    for name in sorted(os.listdir(video_root)):
        if name.startswith(".") or not os.path.isdir(os.path.join(video_root, name)):
            continue
        videos = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(video_root, name)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if os.path.splitext(filename)[1].lower() in VIDEO_EXTENSIONS:
                    rel = os.path.relpath(os.path.join(dirpath, filename), video_root)
                    videos.append(rel.replace(os.sep, "/"))
        if videos:
            by_class[name] = videos
    if not by_class:
        raise ValueError(
            f"video_root {video_root} has no class folders with videos "
            f"({' '.join(VIDEO_EXTENSIONS)}); point video_root (--video_root) at the folder "
            "that holds one folder per class"
        )
    classes = sorted(by_class)
    train, test = [], []
    for label, cls in enumerate(classes):
        for rel in by_class[cls]:
            item = (os.path.join(video_root, *rel.split("/")), label)
            (test if _in_test(rel, test_fraction) else train).append(item)
    return Split(train=train, test=test, classes=classes, video_root=video_root, missing=[])


def _load_csv(video_root: str, csv_path: str, test_fraction: float) -> Split:
    rows: list[tuple[int, str, str]] = []
    for position, (lineno, text) in enumerate(_read_lines(csv_path)):
        fields = [f.strip() for f in next(csv.reader([text]))]
        if position == 0 and len(fields) == 2:
            if fields[0].lower() in _CSV_PATH_HEADERS and fields[1].lower() in _CSV_LABEL_HEADERS:
                continue  # the optional header
        if len(fields) != 2:
            raise _line_error(
                csv_path,
                lineno,
                f"expected 2 comma-separated fields 'path,label', got {len(fields)}; "
                "quote a path that contains a comma",
            )
        if not fields[1]:
            raise _line_error(csv_path, lineno, "the label is empty; write 'path,<class name>'")
        rel = _normalise(fields[0], csv_path, lineno)
        rows.append((lineno, rel, fields[1]))
    if not rows:
        raise ValueError(f"{csv_path}: no 'path,label' lines; fill it or pick another csv")
    classes = sorted({label for _, _, label in rows})
    by_name = {name: i for i, name in enumerate(classes)}
    collector = _Collector(video_root)
    for lineno, rel, name in rows:
        subset = "test" if _in_test(rel, test_fraction) else "train"
        collector.add(subset, rel, by_name[name], csv_path, lineno)
    return collector.split(classes)


def load_split(
    dataset: str,
    video_root: str,
    split_dir: str | None = None,
    split: int = 1,
    csv_path: str | None = None,
    test_fraction: float = 0.3,
) -> Split:
    """Reads a dataset's split into (path, label) lists.

    Args:
      dataset: "ucf101", "hmdb51", "folder" or "csv" (see the module docstring).
      video_root: folder that holds the videos.
      split_dir: folder of the split files (ucf101, hmdb51); None: the dataset's usual folder
        name inside video_root.
      split: 1, 2 or 3 (ucf101, hmdb51).
      csv_path: the CSV file (csv).
      test_fraction: fraction of videos in the test set (folder, csv), in [0, 1].

    Returns:
      The Split: absolute paths under video_root, 0-based labels, class names, missing videos.

    Raises:
      ValueError: a bad argument (named) or a bad split file ("file:line: what; what to do").
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)}; Received: {dataset!r}")
    if not os.path.isdir(video_root):
        raise ValueError(
            f"video_root {video_root} is not a folder; set video_root (--video_root) to the "
            "folder that holds the videos"
        )
    video_root = os.path.abspath(video_root)
    if dataset in ("ucf101", "hmdb51"):
        if split not in (1, 2, 3):
            raise ValueError(f"split must be 1, 2 or 3 for {dataset}; Received: split={split}")
        if split_dir is None:
            default = UCF101_SPLIT_DIR if dataset == "ucf101" else HMDB51_SPLIT_DIR
            split_dir = os.path.join(video_root, default)
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
        if dataset == "ucf101":
            return _load_ucf101(video_root, split_dir, split)
        return _load_hmdb51(video_root, split_dir, split)
    if not 0.0 <= test_fraction <= 1.0:
        raise ValueError(
            f"test_fraction must be in [0, 1]; Received: test_fraction={test_fraction}"
        )
    if dataset == "folder":
        return _load_folder(video_root, test_fraction)
    if csv_path is None:
        raise ValueError("csv_path (--csv) is required for dataset csv; pass the CSV file")
    if not os.path.isfile(csv_path):
        raise ValueError(f"csv_path {csv_path} is not a file; pass the CSV file (--csv)")
    return _load_csv(video_root, csv_path, test_fraction)


def format_summary(split: Split, max_classes: int = 30) -> str:
    """Counts for a person: train/test videos, classes, per-class counts, missing videos.

    Args:
      split: the split to describe.
      max_classes: classes up to this number get one line each; more get min/median/max.
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
            lines.append(f"warning: {len(empty)} classes have no {name} videos: {', '.join(empty)}")
    lines.append(f"missing videos: {len(split.missing)}")
    lines += [f"  {m}" for m in split.missing]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: reads a split and prints its summary.

    The flags live on a private FlagValues made here, so importing this module (as the
    converter does) defines no global flags that could clash with the importer's.

    Returns:
      0 when every listed video exists, 1 when some are missing, 2 on a bad flag or split file.
    """
    argv = sys.argv if argv is None else argv
    fv = flags.FlagValues()
    flags.DEFINE_enum("dataset", None, list(DATASETS), "Split file layout.", flag_values=fv)
    flags.DEFINE_string("video_root", None, "Folder that holds the videos.", flag_values=fv)
    flags.DEFINE_string(
        "split_dir",
        None,
        "Folder of the split files (ucf101, hmdb51); default: the usual name in video_root.",
        flag_values=fv,
    )
    flags.DEFINE_integer("split", 1, "Split number 1-3 (ucf101, hmdb51).", flag_values=fv)
    flags.DEFINE_string("csv", None, "CSV file of path,label lines (dataset csv).", flag_values=fv)
    flags.DEFINE_float(
        "test_fraction", 0.3, "Test fraction of the hash split (folder, csv).", flag_values=fv
    )
    flags.mark_flags_as_required(["dataset", "video_root"], flag_values=fv)
    usage = f"usage: python -m tsn_keras.splits --dataset D --video_root R [flags]\n\n{__doc__}"
    try:
        if cli.parse_flags(fv, argv, usage) is None:
            return 0
        if fv.dataset == "csv" and fv.csv is None:
            raise flags.Error("--csv is required with --dataset csv; pass the CSV file")
    except flags.Error as e:
        return cli.usage_error(e)
    try:
        split = load_split(
            fv.dataset,
            fv.video_root,
            split_dir=fv.split_dir,
            split=fv.split,
            csv_path=fv.csv,
            test_fraction=fv.test_fraction,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    header = f"dataset: {fv.dataset}"
    if fv.dataset in ("ucf101", "hmdb51"):
        header += f", split {fv.split}"
    else:
        header += f", hash split with test_fraction {fv.test_fraction:g}"
    print(header)
    print(format_summary(split))
    return 1 if split.missing else 0


if __name__ == "__main__":
    sys.exit(main())
