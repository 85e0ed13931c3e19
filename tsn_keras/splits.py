"""Dataset split files -> (video path, label) lists and class names.

Six layouts, one result (`Split`):

  ucf101  <split_dir>/classInd.txt ("<1-based index> <class>"), trainlistNN.txt
          ("<class>/<video> <1-based label>") and testlistNN.txt ("<class>/<video>", the label
          comes from the folder), NN = 01..03. A label on a test line, or a train line without
          one, is accepted: a class folder must be in classInd.txt and agree with the label,
          when given. split_dir defaults to <video_root>/ucfTrainTestlist.
  hmdb51  <split_dir>/<class>_test_splitN.txt, lines "<video> <id>": 1 = train, 2 = test,
          0 = unused. The classes are the sorted class names of those files; the videos are at
          <video_root>/<class>/<video>. split_dir defaults to
          <video_root>/testTrainMulti_7030_splits (the folder HMDB51's archive unpacks to).
  kinetics  the official annotation CSVs in <split_dir> (default <video_root>/annotations):
          train.csv is the train list, validate.csv (or val.csv) the test list, test.csv (no
          labels) the unlabelled list, for prediction only. Columns by the header:
          label,youtube_id,time_start,time_end,split[,is_cc] (labels may hold spaces, commas
          and quotes, CSV-quoted). Classes = the sorted labels of train.csv, so the index is
          the same whatever part of the dataset is on disk. A video is the first of
          <video_root>[/<split>][/<label>]/<youtube_id>_<start:06d>_<end:06d>.<ext> or
          .../<youtube_id>.<ext> that exists (<split> as in the row, or train / val, validate /
          test, or mmaction2's videos_train / videos_val; <label> as written or with '_' for
          spaces; any VIDEO_EXTENSIONS; folder names compare case-insensitively).
  ssv2    something-something-v2-labels.json ({template: index}), -train.json and
          -validation.json (lists of {id, template, label, placeholders}) and -test.json ({id};
          unlabelled, for prediction only) in <split_dir> (default <video_root>/labels); the
          class is the template with its brackets removed ("Putting [something] on a surface"
          -> "Putting something on a surface"), its index the labels file's; videos are
          <video_root>/<id>.webm (any VIDEO_EXTENSIONS). Classes depend on left vs right: train
          with --random_flip=false.
          Kinetics and SSv2 downloads are always incomplete: a listed video that is not on
          disk is left out of the lists and reported in `Split.not_found` (and counted per
          list in `Split.listed`); `require_all` makes that an error.
  folder  <video_root>/<class>/.../<video> (one folder per class, sorted names; folders
          without videos are skipped); split by a stable hash, see below. Every other file in
          the class folders is counted by extension in `Split.ignored` (hidden files aside).
  csv     a CSV file of "path,label" lines (label = class name, path relative to video_root,
          an optional "path,label" header); classes = sorted label names; split by hash.

Real files are read as they are: UTF-8 with or without a BOM, CRLF or LF, trailing whitespace,
blank lines, backslashes as separators, and names whose case differs from the disk (UCF101's
`HandstandPushups/v_HandStandPushups_...`): a path that does not exist as written is looked up
case-insensitively, one directory listing per folder (cached).

Errors (a malformed line, an unknown class, a bad label, a path that leaves video_root,
the same video listed twice) raise ValueError("<file>:<line>: <what is wrong>; <what to do>";
JSON files name the entry and its id). A ucf101, hmdb51 or csv video that is not on disk does
not raise: it stays in its list, with the path it would have, and is reported in
`Split.missing` as "<file>:<line>: <path>" (the converter records it as a failure; the command
line exits with status 1); for kinetics and ssv2 see above. `require_all` turns either into a
ValueError that counts them.

The hash split (folder, csv) puts a video in the test set when
sha1(key) mod 10000 < round(test_fraction * 10000), where key is the lowercased relative path;
for UCF101-style names (`v_<Class>_gGG_cCC.ext`) the `_cCC` is dropped from the key, so the
clips of one group land on the same side, as UCF101's own splits keep them. The split depends
only on the file names: reruns and other machines agree, and adding videos moves no other.

Command line (checks a dataset before a long conversion):
    python -m tsn_keras.splits --dataset ucf101 --video_root UCF-101 \
        --split_dir ucfTrainTestlist --split 1
prints the train/test counts, the classes with their per-class counts, the missing videos (for
kinetics, ssv2: how many of each list were found, and which were not) and the ignored files;
exit status 0 when all is well, 1 when videos are missing (kinetics, ssv2: only with
--require_all), 2 on a bad flag or a bad split file.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import os
import posixpath
import re
import statistics
import sys
from collections.abc import Iterator, Sequence

from absl import flags

from tsn_keras import cli

DATASETS = ("ucf101", "hmdb51", "kinetics", "ssv2", "folder", "csv")
# Every container FFmpeg (hence OpenCV) commonly meets: Theora .ogg/.ogv and .gif decode too;
# .ts/.mts/.m2ts are camcorder and broadcast streams, .vob DVD video.
VIDEO_EXTENSIONS = (
    ".avi", ".mp4", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".flv", ".m4v", ".ogg", ".ogv",
    ".gif", ".3gp", ".3g2", ".wmv", ".asf", ".ts", ".mts", ".m2ts", ".vob",
)  # fmt: skip
UCF101_SPLIT_DIR = "ucfTrainTestlist"
HMDB51_SPLIT_DIR = "testTrainMulti_7030_splits"
KINETICS_SPLIT_DIR = "annotations"  # the folder the official annotation archive unpacks to
SSV2_SPLIT_DIR = "labels"  # the folder something-something-v2's labels archive unpacks to
DEFAULT_SPLIT_DIRS = {
    "ucf101": UCF101_SPLIT_DIR,
    "hmdb51": HMDB51_SPLIT_DIR,
    "kinetics": KINETICS_SPLIT_DIR,
    "ssv2": SSV2_SPLIT_DIR,
}

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
      not_found: kinetics, ssv2 (downloads are always incomplete): "<file>:<line>: <video>" for
        each listed train/test video that is not on disk; those are left out of train/test.
      listed: kinetics, ssv2: videos listed per list ("train", "test", "unlabelled"), found or
        not, so found / listed can be reported.
      unlabelled: kinetics, ssv2: absolute paths of the videos of the label-free test list that
        are on disk (for `tsn_keras.predict`; not used for training or evaluation).
      ignored: folder: files in the class folders that are not videos, by lowercase extension
        ("" for none): {".txt": 2, ".json": 1}.
    """

    train: list[tuple[str, int]]
    test: list[tuple[str, int]]
    classes: list[str]
    video_root: str
    missing: list[str]
    not_found: list[str] = dataclasses.field(default_factory=list)
    listed: dict[str, int] = dataclasses.field(default_factory=dict)
    unlabelled: list[str] = dataclasses.field(default_factory=list)
    ignored: dict[str, int] = dataclasses.field(default_factory=dict)


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
            elif folder is not None and folder_label is None:
                raise _line_error(
                    list_file,
                    lineno,
                    f"unknown class folder '{folder}' (not in {os.path.basename(class_file)}); "
                    "fix the folder name or add the class to classInd.txt",
                )
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
    ignored: dict[str, int] = {}
    for name in sorted(os.listdir(video_root)):
        if name.startswith(".") or not os.path.isdir(os.path.join(video_root, name)):
            continue
        videos = []
        for dirpath, dirnames, filenames in os.walk(os.path.join(video_root, name)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                ext = os.path.splitext(filename)[1].lower()
                if ext in VIDEO_EXTENSIONS:
                    rel = os.path.relpath(os.path.join(dirpath, filename), video_root)
                    videos.append(rel.replace(os.sep, "/"))
                elif not filename.startswith("."):  # hidden files (.DS_Store) are no one's data
                    ignored[ext] = ignored.get(ext, 0) + 1
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
    return Split(
        train=train, test=test, classes=classes, video_root=video_root, missing=[], ignored=ignored
    )


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


# ------------------------------------------------------------------------------------ Kinetics

_KINETICS_TEST_CSVS = ("validate.csv", "val.csv", "validation.csv")
# Folder names a downloader may give each list's videos (the CSV's split column, spelled out;
# videos_train / videos_val is mmaction2's layout).
_SPLIT_FOLDERS = {
    "train": ("train", "training", "videos_train"),
    "test": ("val", "validate", "validation", "videos_val"),
    "unlabelled": ("test", "testing", "videos_test"),
}


@dataclasses.dataclass(frozen=True)
class _KineticsRow:
    lineno: int
    label: str | None
    youtube_id: str
    start: int
    end: int
    split: str

    @property
    def clip_name(self) -> str:
        """The trimmed clip's file stem, as the official downloaders name it."""
        return f"{self.youtube_id}_{self.start:06d}_{self.end:06d}"


def _whole_seconds(text: str, column: str, path: str, lineno: int) -> int:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise _line_error(
            path, lineno, f"{column} '{text}' is not a whole number of seconds >= 0; fix the row"
        )
    return int(value)


def _read_kinetics_csv(path: str, labelled: bool) -> list[_KineticsRow]:
    """Rows of an official Kinetics CSV, by its header (`label` optional when not labelled)."""
    required = ("label", "youtube_id", "time_start", "time_end") if labelled else (
        "youtube_id", "time_start", "time_end"
    )  # fmt: skip
    columns: dict[str, int] | None = None
    rows: list[_KineticsRow] = []
    for lineno, text in _read_lines(path):
        fields = [f.strip() for f in next(csv.reader([text]))]
        if columns is None:
            columns = {name.lower(): i for i, name in enumerate(fields)}
            absent = [c for c in required if c not in columns]
            if absent:
                raise _line_error(
                    path,
                    lineno,
                    f"the header has no {', '.join(absent)} column; expected the official "
                    "header 'label,youtube_id,time_start,time_end,split' (test.csv: no label)",
                )
            continue
        if len(fields) != len(columns):
            raise _line_error(
                path,
                lineno,
                f"expected {len(columns)} comma-separated fields as in the header, got "
                f"{len(fields)}; quote a label that contains a comma",
            )
        label = fields[columns["label"]] if labelled else None
        if labelled and not label:
            raise _line_error(path, lineno, "the label is empty; write the class name")
        youtube_id = fields[columns["youtube_id"]]
        if not youtube_id or "/" in youtube_id or "\\" in youtube_id:
            raise _line_error(path, lineno, f"youtube_id '{youtube_id}' is empty or has a '/'")
        start = _whole_seconds(fields[columns["time_start"]], "time_start", path, lineno)
        end = _whole_seconds(fields[columns["time_end"]], "time_end", path, lineno)
        if end < start:
            raise _line_error(path, lineno, f"time_end {end} is before time_start {start}")
        split = fields[columns["split"]].lower() if "split" in columns else ""
        rows.append(_KineticsRow(lineno, label, youtube_id, start, end, split))
    if columns is None:
        raise ValueError(f"{path}: the file is empty; it should hold the official annotation CSV")
    return rows


class _VideoFiles:
    """Every video file under a root, by file stem (one walk of the tree)."""

    def __init__(self, root: str):
        self.by_stem: dict[str, list[str]] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
            for name in sorted(filenames):
                stem, ext = os.path.splitext(name)
                if ext.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                    rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                    self.by_stem.setdefault(stem, []).append(rel)

    def find(self, stems: Sequence[str], folders: set[str]) -> str | None:
        """The first file named `<stem>.<ext>` (stems in order) whose folder is one of
        `folders` (relative, lowercase; "" = the root)."""
        for stem in stems:
            for rel in self.by_stem.get(stem, ()):
                if posixpath.dirname(rel).lower() in folders:
                    return rel
        return None


class _Found:
    """Collects a downloaded dataset's lists: found videos go in, absent ones are counted."""

    def __init__(self, video_root: str):
        self.root = video_root
        self.lists: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
        self.unlabelled: list[str] = []
        self.not_found: list[str] = []
        self.listed = {"train": 0, "test": 0}  # "unlabelled" once that list is read
        self._seen: dict[str, str] = {}  # rel path or clip -> "<file>:<line>" of its first use

    def add(self, subset: str, key: str, rel: str | None, label: int, where: str) -> None:
        """One listed video: `key` names it in messages; rel is its file (None: not on disk)."""
        for name in (key, rel):
            if name is not None and name in self._seen:
                raise ValueError(
                    f"{where}: '{name}' is already listed at {self._seen[name]}; remove one of "
                    "the two rows (or name the videos <youtube_id>_<start>_<end>.<ext>)"
                )
        self._seen[key] = where
        if rel is not None:
            self._seen[rel] = where
        self.listed[subset] = self.listed.get(subset, 0) + 1
        if rel is None:
            if subset != "unlabelled":
                self.not_found.append(f"{where}: {key}")
            return
        full = os.path.join(self.root, *rel.split("/"))
        if subset == "unlabelled":
            self.unlabelled.append(full)
        else:
            self.lists[subset].append((full, label))

    def split(self, classes: list[str]) -> Split:
        return Split(
            train=self.lists["train"],
            test=self.lists["test"],
            classes=classes,
            video_root=self.root,
            missing=[],
            not_found=self.not_found,
            listed=self.listed,
            unlabelled=self.unlabelled,
        )


def _first_file(directory: str, names: Sequence[str], what: str) -> str:
    for name in names:
        try:
            return _find_file(directory, name, what)
        except ValueError:
            continue
    raise ValueError(
        f"{directory} has none of {', '.join(names)}; set split_dir (--split_dir) to the folder "
        f"of {what}"
    )


def _load_kinetics(video_root: str, split_dir: str) -> Split:
    what = "Kinetics' official train.csv, validate.csv (or val.csv) and test.csv"
    train_csv = _find_file(split_dir, "train.csv", what)
    test_csv = _first_file(split_dir, _KINETICS_TEST_CSVS, what)
    try:
        unlabelled_csv: str | None = _find_file(split_dir, "test.csv", what)
    except ValueError:
        unlabelled_csv = None  # optional: only prediction uses it
    train_rows = _read_kinetics_csv(train_csv, labelled=True)
    if not train_rows:
        raise ValueError(f"{train_csv}: no rows; the classes come from the train list")
    classes = sorted({row.label for row in train_rows})
    by_name = {name: i for i, name in enumerate(classes)}
    lists = [("train", train_csv, train_rows), ("test", test_csv, None)]
    if unlabelled_csv is not None:
        lists.append(("unlabelled", unlabelled_csv, None))
    files = _VideoFiles(video_root)
    found = _Found(video_root)
    for subset, path, rows in lists:
        if rows is None:
            rows = _read_kinetics_csv(path, labelled=subset != "unlabelled")
        found.listed.setdefault(subset, 0)
        for row in rows:
            label = -1
            if subset != "unlabelled":
                if row.label not in by_name:
                    raise _line_error(
                        path,
                        row.lineno,
                        f"class '{row.label}' is not in {os.path.basename(train_csv)}; fix the "
                        "label (classes come from the train list)",
                    )
                label = by_name[row.label]
            split_names = set(_SPLIT_FOLDERS[subset]) | ({row.split} if row.split else set())
            label_names = {""}
            if row.label:
                label_names |= {row.label.lower(), row.label.lower().replace(" ", "_")}
            folders = {
                posixpath.join(s, name).rstrip("/")
                for s in (split_names | {""})
                for name in label_names
            }
            rel = files.find((row.clip_name, row.youtube_id), folders)
            found.add(subset, row.clip_name, rel, label, f"{path}:{row.lineno}")
    return found.split(classes)


# ------------------------------------------------------------------------------ SSv2

_SSV2_PREFIX = "something-something-v2-"


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}: not valid JSON ({e.msg}); fix the file") from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e}); save the file as UTF-8") from e
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror}); check the path") from e


def ssv2_class_name(template: str) -> str:
    """A Something-Something v2 template as its class name: the brackets removed, as
    the dataset's labels file spells it ("Putting [something] on [something]" ->
    "Putting something on something")."""
    return template.replace("[", "").replace("]", "")


def _load_ssv2(video_root: str, split_dir: str) -> Split:
    what = "something-something-v2-labels.json, -train.json, -validation.json and -test.json"

    def find(kind: str, required: bool = True) -> str | None:
        names = (f"{_SSV2_PREFIX}{kind}.json", f"{kind}.json")
        try:
            return _first_file(split_dir, names, what)
        except ValueError:
            if required:
                raise
            return None

    labels_file = find("labels")
    table = _read_json(labels_file)
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{labels_file}: expected an object {{template: index}}; fix the file")
    by_index: dict[int, str] = {}
    for name, index in table.items():
        if not str(index).strip().isdigit() or int(index) in by_index:
            raise ValueError(
                f"{labels_file}: '{name}' has index {index!r}, not a new whole number; fix it"
            )
        by_index[int(index)] = name
    if sorted(by_index) != list(range(len(by_index))):
        raise ValueError(
            f"{labels_file}: indices must be 0..{len(by_index) - 1} without gaps; fix the file"
        )
    classes = [by_index[i] for i in range(len(by_index))]
    exact = {name: i for i, name in enumerate(classes)}
    folded = {name.lower(): i for i, name in enumerate(classes)}
    on_disk: dict[str, str] = {}  # video id -> file name (any video extension)
    with os.scandir(video_root) as it:
        for entry in sorted(it, key=lambda e: e.name):
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in VIDEO_EXTENSIONS and entry.is_file():
                on_disk.setdefault(stem, entry.name)
    found = _Found(video_root)
    for subset, kind in (("train", "train"), ("test", "validation"), ("unlabelled", "test")):
        path = find(kind, required=subset != "unlabelled")
        if path is None:
            continue
        entries = _read_json(path)
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a list of {{id, template, ...}}; fix the file")
        found.listed.setdefault(subset, 0)
        for number, entry in enumerate(entries, start=1):
            where = f"{path}: entry {number}"
            if not isinstance(entry, dict) or not str(entry.get("id", "")).strip():
                raise ValueError(f"{where}: has no 'id'; each entry needs its video id")
            video = str(entry["id"]).strip()
            where += f" (id {video})"
            label = -1
            if subset != "unlabelled":
                if not isinstance(entry.get("template"), str):
                    raise ValueError(f"{where}: has no 'template'; the class comes from it")
                name = ssv2_class_name(entry["template"])
                label = exact.get(name, folded.get(name.lower(), -1))
                if label < 0:
                    raise ValueError(
                        f"{where}: class '{name}' is not in {os.path.basename(labels_file)}; "
                        "fix the template"
                    )
            found.add(subset, video, on_disk.get(video), label, where)
    return found.split(classes)


def load_split(
    dataset: str,
    video_root: str,
    split_dir: str | None = None,
    split: int = 1,
    csv_path: str | None = None,
    test_fraction: float = 0.3,
    require_all: bool = False,
) -> Split:
    """Reads a dataset's split into (path, label) lists.

    The one entry point for every dataset: the command lines pass their flags through to it.

    Args:
      dataset: one of DATASETS (see the module docstring).
      video_root: folder that holds the videos.
      split_dir: folder of the split files (ucf101, hmdb51, kinetics, ssv2); None: the
        dataset's usual folder name inside video_root (DEFAULT_SPLIT_DIRS).
      split: 1, 2 or 3 (ucf101, hmdb51).
      csv_path: the CSV file (csv).
      test_fraction: fraction of videos in the test set (folder, csv), in [0, 1].
      require_all: a listed video that is not on disk (`Split.missing`, `Split.not_found`)
        raises instead of being reported.

    Returns:
      The Split: absolute paths under video_root, 0-based labels, class names, missing videos.

    Raises:
      ValueError: a bad argument (named), a bad split file ("file:line: what; what to do"), or,
        with require_all, listed videos that are not on disk (counted, the first ones named).
    """
    result = _load(dataset, video_root, split_dir, split, csv_path, test_fraction)
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
            "ucf101": lambda: _load_ucf101(video_root, split_dir, split),
            "hmdb51": lambda: _load_hmdb51(video_root, split_dir, split),
            "kinetics": lambda: _load_kinetics(video_root, split_dir),
            "ssv2": lambda: _load_ssv2(video_root, split_dir),
        }
        return loaders[dataset]()
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


def format_split_summary(split: Split, max_classes: int = 30, max_listed: int | None = 20) -> str:
    """Counts for a person: train/test videos, classes, per-class counts, absent and ignored
    files.

    Args:
      split: the split to describe.
      max_classes: classes up to this number get one line each; more get min/median/max.
      max_listed: videos not found (kinetics, ssv2) named at most, the rest counted; None: all.
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
                if "unlabelled" in split.listed
                else ""
            )
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
            lines.append(f"warning: {len(empty)} classes have no {name} videos: {', '.join(empty)}")
    if split.ignored:
        total = sum(split.ignored.values())
        kinds = sorted(split.ignored.items(), key=lambda kv: (-kv[1], kv[0]))
        named = ", ".join(f"{ext or '(no extension)'} {n}" for ext, n in kinds)
        lines.append(f"ignored {total} files: {named}")
    lines.append(f"missing videos: {len(split.missing)}")
    lines += [f"  {m}" for m in split.missing]
    if split.listed:
        shown = split.not_found if max_listed is None else split.not_found[:max_listed]
        lines.append(f"not found (left out; not downloaded?): {len(split.not_found)}")
        lines += [f"  {m}" for m in shown]
        if len(shown) < len(split.not_found):
            lines.append(f"  ... and {len(split.not_found) - len(shown)} more (--list_all)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: reads a split and prints its summary.

    The flags live on a private FlagValues made here, so importing this module (as the
    converter does) defines no global flags that could clash with the importer's.

    Returns:
      0 when every listed video exists (kinetics, ssv2: also when some were not downloaded,
      unless --require_all), 1 when some are missing, 2 on a bad flag or split file.
    """
    argv = sys.argv if argv is None else argv
    fv = flags.FlagValues()
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
    elif fv.dataset in ("folder", "csv"):
        header += f", hash split with test_fraction {fv.test_fraction:g}"
    print(header)
    print(format_split_summary(split, max_listed=None if fv.list_all else 20))
    if fv.unlabelled_out:
        try:
            with open(fv.unlabelled_out, "w", encoding="utf-8") as f:
                f.writelines(f"{path}\n" for path in split.unlabelled)
        except OSError as e:
            print(f"error: --unlabelled_out {fv.unlabelled_out}: {e.strerror}", file=sys.stderr)
            return 1
        print(f"unlabelled videos: {len(split.unlabelled)} paths written to {fv.unlabelled_out}")
    if split.missing or (fv.require_all and split.not_found):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
