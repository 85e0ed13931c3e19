"""Kinetics and Something-Something v2, as downloaded (always incomplete): the official
annotation files -> `Split`, with the videos not on disk reported (see the package docstring).
"""

from __future__ import annotations

import csv
import json
import math
import os
import posixpath
from collections.abc import Sequence

from tsn_keras.splits.common import (
    VIDEO_EXTENSIONS,
    Split,
    find_file,
    first_file,
    line_error,
    read_lines,
)

# ------------------------------------------------------------------------------------ Kinetics

# The names each list's CSV has: the official archive's, cvdf's (val.csv) and mmaction2's
# (its download_annotations.sh renames them kinetics_*.csv).
_KINETICS_CSVS = {
    "train": ("train.csv", "kinetics_train.csv"),
    "test": ("validate.csv", "val.csv", "validation.csv", "kinetics_val.csv"),
    "unlabelled": ("test.csv", "kinetics_test.csv"),
}
# Folder names a downloader may give each list's videos (the CSV's split column, spelled out;
# videos_<split> is mmaction2's layout; cvdf's arrange_by_classes.py adds videos/<split>/).
_SPLIT_FOLDERS = {
    "train": ("train", "training", "videos_train"),
    "test": ("val", "validate", "validation", "videos_val"),
    "unlabelled": ("test", "testing", "videos_test"),
}
_SPLIT_OF_VALUE = {name: subset for subset, names in _SPLIT_FOLDERS.items() for name in names}
# cvdf's Kinetics-400 download: clips that replace corrupted ones in train/ (1,392 of them);
# where both exist, the replacement is taken.
REPLACEMENT_DIR = "replacement/replacement_for_corrupted_k400"


# A CSV row: (line number, label or None, youtube_id, clip name, split value). The clip name
# is the trimmed clip's file stem, as the official downloaders name it. A plain tuple: 650k
# rows are made at start-up, and a NamedTuple took a third of the reading time.
_KineticsRow = tuple[int, str | None, str, str, str]


def _whole_seconds(text: str, column: str, path: str, lineno: int) -> int:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise line_error(
            path, lineno, f"{column} '{text}' is not a whole number of seconds >= 0; fix the row"
        )
    return int(value)


def _read_kinetics_csv(path: str, labelled: bool) -> list[_KineticsRow]:
    """Rows of an official Kinetics CSV, by its header.

    Args:
      path: the CSV.
      labelled: the `label` column is required; otherwise it is read where the header has it
        (DeepMind's newer test.csv files are labelled, the older ones are not).
    """
    required = ("label", "youtube_id", "time_start", "time_end") if labelled else (
        "youtube_id", "time_start", "time_end"
    )  # fmt: skip
    numbered = iter(read_lines(path))
    first = next(numbered, None)
    if first is None:
        raise ValueError(f"{path}: the file is empty; it should hold the official annotation CSV")
    header = [f.strip() for f in next(csv.reader([first[1]]))]
    columns = {name.lower(): i for i, name in enumerate(header)}
    absent = [c for c in required if c not in columns]
    if absent:
        raise line_error(
            path,
            first[0],
            f"the header has no {', '.join(absent)} column; expected the official header "
            "'label,youtube_id,time_start,time_end,split' (an older test.csv: no label)",
        )
    at_label = columns.get("label")
    at_id, at_start = columns["youtube_id"], columns["time_start"]
    at_end, at_split = columns["time_end"], columns.get("split")
    rows: list[_KineticsRow] = []
    for lineno, text in numbered:
        # the csv module only where a field is quoted (labels with commas or quotes): a third
        # of the start-up of a Kinetics-700-size conversion otherwise
        fields = next(csv.reader([text])) if '"' in text else text.split(",")
        if len(fields) != len(columns):
            raise line_error(
                path,
                lineno,
                f"expected {len(columns)} comma-separated fields as in the header, got "
                f"{len(fields)}; quote a label that contains a comma",
            )
        label = fields[at_label].strip() if at_label is not None else None
        if at_label is not None and not label:
            raise line_error(path, lineno, "the label is empty; write the class name")
        youtube_id = fields[at_id].strip()
        if not youtube_id or "/" in youtube_id or "\\" in youtube_id:
            raise line_error(path, lineno, f"youtube_id '{youtube_id}' is empty or has a '/'")
        start, end = fields[at_start].strip(), fields[at_end].strip()
        # whole seconds as nearly every row writes them, else checked (the calls cost ~10%)
        start = int(start) if start.isdigit() else _whole_seconds(start, "time_start", path, lineno)
        end = int(end) if end.isdigit() else _whole_seconds(end, "time_end", path, lineno)
        if end < start:
            raise line_error(path, lineno, f"time_end {end} is before time_start {start}")
        split = fields[at_split].strip().lower() if at_split is not None else ""
        clip_name = f"{youtube_id}_{start:06d}_{end:06d}"
        rows.append((lineno, label, youtube_id, clip_name, split))
    return rows


class _VideoFiles:
    """Every video file under a root, by file stem (one walk of the tree); the files of
    REPLACEMENT_DIR apart."""

    def __init__(self, root: str):
        self.by_stem: dict[str, list[str]] = {}
        self.replacements: dict[str, str] = {}
        self.stems: set[str] = set()  # every stem of either
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
            replacing = rel_dir.lower() == REPLACEMENT_DIR
            for name in sorted(filenames):
                stem, ext = os.path.splitext(name)
                if ext.lower() in VIDEO_EXTENSIONS and not name.startswith("."):
                    rel = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if replacing:
                        self.replacements.setdefault(stem, rel)
                    else:
                        self.by_stem.setdefault(stem, []).append(rel)
        self.stems = set(self.by_stem) | set(self.replacements)

    def find(self, stems: Sequence[str], folders: set[str]) -> tuple[str | None, str | None]:
        """(file, elsewhere): the replacement of the first of `stems` that has one, else the
        first file named `<stem>.<ext>` (stems in order) whose folder is one of `folders`
        (relative, lowercase; "" = the root); elsewhere: when there is none, a file of that
        name in another folder (a clip in another class's folder), else None."""
        for stem in stems:
            if stem in self.replacements:
                return self.replacements[stem], None
        elsewhere = None
        for stem in stems:
            for rel in self.by_stem.get(stem, ()):
                if posixpath.dirname(rel).lower() in folders:
                    return rel, None
                elsewhere = elsewhere or rel
        return None, elsewhere


class _Found:
    """Collects a downloaded dataset's lists: found videos go in, absent ones are counted.

    Args:
      video_root: the dataset's video root.
      duplicate_hint: what to do, after "remove one of the two rows", when a video is listed
        twice.
    """

    def __init__(self, video_root: str, duplicate_hint: str = ""):
        self.root = video_root
        self.duplicate_hint = duplicate_hint
        self.lists: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
        self.unlabelled: list[str] = []
        self.not_found: list[str] = []
        self.not_found_subsets: list[str] = []
        self.listed = {"train": 0, "test": 0}  # "unlabelled" once that list is read
        self.replaced = 0
        self.unlabelled_has_labels = False
        self._seen: dict[str, str] = {}  # rel path or clip -> "<file>:<line>" of its first use

    def add(
        self, subset: str, key: str, rel: str | None, label: int, where: str, note: str = ""
    ) -> None:
        """One listed video: `key` names it in messages; rel is its file (None: not on disk,
        `note` says why where it is known)."""
        seen = self._seen
        if key in seen or rel in seen:
            name = key if key in seen else rel
            raise ValueError(
                f"{where}: '{name}' is already listed at {seen[name]}; remove one of "
                f"the two rows{self.duplicate_hint}"
            )
        seen[key] = where
        if rel is not None:
            seen[rel] = where
        self.listed[subset] = self.listed.get(subset, 0) + 1
        if rel is None:
            if subset != "unlabelled":
                self.not_found.append(f"{where}: {key}{note}")
                self.not_found_subsets.append(subset)
            return
        full = os.path.join(self.root, rel.replace("/", os.sep))
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
            not_found_subsets=self.not_found_subsets,
            listed=self.listed,
            unlabelled=self.unlabelled,
            replaced=self.replaced,
            unlabelled_has_labels=self.unlabelled_has_labels,
        )


def _list_file(split_dir: str, given: str | None, subset: str, what: str) -> str | None:
    """A list's CSV: `given` (a path, or a name in split_dir), else the first of its usual
    names in split_dir; None for an absent unlabelled list (only prediction uses it)."""
    if given:  # a name in split_dir first: a test.csv in the working folder is another file
        if not os.path.isfile(os.path.join(split_dir, given)) and os.path.isfile(given):
            return given
        return find_file(split_dir, given, f"the list named by --{subset}_list")
    try:
        return first_file(split_dir, _KINETICS_CSVS[subset], what)
    except ValueError:
        if subset == "unlabelled":
            return None
        raise


def _folders(subset: str, split_value: str, label: str | None) -> set[str]:
    """The folders (relative, lowercase) where a row's clip may be: the root, the list's
    folder names and the row's split value, each alone or with videos/ before it (cvdf's
    arrange_by_classes.py), each alone or with the label (as written, or '_' for spaces)."""
    splits = {"", *_SPLIT_FOLDERS[subset]}
    if split_value:
        splits |= {split_value, *_SPLIT_FOLDERS.get(_SPLIT_OF_VALUE.get(split_value, ""), ())}
    splits |= {f"videos/{s}" for s in splits if s}
    labels = {""}
    if label:
        labels |= {label.lower(), label.lower().replace(" ", "_")}
    else:  # mmaction2's download.py puts an unlabelled list's clips in <its folder>/test/
        labels.add("test")
    return {posixpath.join(s, name).rstrip("/") for s in splits for name in labels}


def load_kinetics(
    video_root: str, split_dir: str, train_list: str | None = None, test_list: str | None = None
) -> Split:
    """Kinetics' lists (see the package docstring); train_list / test_list: another CSV for
    that list (a path, or a name in split_dir), e.g. a labelled test.csv as the test list."""
    what = "Kinetics' official train.csv, validate.csv (or val.csv) and test.csv"
    train_csv = _list_file(split_dir, train_list, "train", what)
    test_csv = _list_file(split_dir, test_list, "test", what)
    unlabelled_csv = _list_file(split_dir, None, "unlabelled", what)
    if unlabelled_csv is not None and os.path.samefile(unlabelled_csv, test_csv):
        unlabelled_csv = None  # test.csv is the test list (--test_list)
    train_rows = _read_kinetics_csv(train_csv, labelled=True)
    if not train_rows:
        raise ValueError(f"{train_csv}: no rows; the classes come from the train list")
    classes = sorted({row[1] for row in train_rows})
    by_name = {name: i for i, name in enumerate(classes)}
    lists = [("train", train_csv, train_rows), ("test", test_csv, None)]
    if unlabelled_csv is not None:
        lists.append(("unlabelled", unlabelled_csv, None))
    files = _VideoFiles(video_root)
    found = _Found(video_root, " (or name the videos <youtube_id>_<start>_<end>.<ext>)")
    folders: dict[tuple[str, str, str | None], set[str]] = {}  # the same for many rows
    for subset, path, rows in lists:
        if rows is None:
            rows = _read_kinetics_csv(path, labelled=subset != "unlabelled")
        found.listed.setdefault(subset, 0)
        for lineno, name, youtube_id, clip_name, split_value in rows:
            label = -1
            if name is not None:
                label = by_name.get(name, -1)
                if label < 0:
                    raise line_error(
                        path,
                        lineno,
                        f"class '{name}' is not in {os.path.basename(train_csv)}; fix the "
                        "label (classes come from the train list)",
                    )
            rel, note = None, ""
            if clip_name in files.stems or youtube_id in files.stems:  # most are not on disk
                key = (subset, split_value, name)
                if key not in folders:
                    folders[key] = _folders(subset, split_value, name)
                rel, elsewhere = files.find((clip_name, youtube_id), folders[key])
                if elsewhere is not None:
                    note = f" (on disk as {elsewhere}: not a folder of this list or label)"
                if rel is not None and rel.lower().startswith(REPLACEMENT_DIR + "/"):
                    found.replaced += 1
            found.add(subset, clip_name, rel, label, f"{path}:{lineno}", note)
        if subset == "unlabelled":
            found.unlabelled_has_labels = bool(rows) and rows[0][1] is not None
    return found.split(classes)


# ------------------------------------------------------------------------------ SSv2

_SSV2_PREFIX = "something-something-v2-"


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        # the column and offset too: SSv2's files are one line each, where "line 1" says nothing
        raise ValueError(
            f"{path}:{e.lineno}: not valid JSON at column {e.colno}, character offset {e.pos} "
            f"({e.msg}); fix the file"
        ) from e
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e}); save the file as UTF-8") from e
    except OSError as e:
        raise ValueError(f"{path}: cannot read it ({e.strerror}); check the path") from e


def ssv2_class_name(template: str) -> str:
    """A Something-Something v2 template as its class name: the brackets removed, as
    the dataset's labels file spells it ("Putting [something] on [something]" ->
    "Putting something on something")."""
    return template.replace("[", "").replace("]", "")


def load_ssv2(video_root: str, split_dir: str) -> Split:
    what = "something-something-v2-labels.json, -train.json, -validation.json and -test.json"

    def find(kind: str, required: bool = True) -> str | None:
        names = (f"{_SSV2_PREFIX}{kind}.json", f"{kind}.json")
        try:
            return first_file(split_dir, names, what)
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
    found = _Found(video_root, " (each SSv2 id names one video)")
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
