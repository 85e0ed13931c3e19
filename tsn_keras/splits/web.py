"""Kinetics and Something-Something v2, as downloaded (always incomplete): the official
annotation files -> `Split`, with the videos not on disk reported (see the package docstring).
"""

from __future__ import annotations

import csv
import dataclasses
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
        raise line_error(
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
    for lineno, text in read_lines(path):
        fields = [f.strip() for f in next(csv.reader([text]))]
        if columns is None:
            columns = {name.lower(): i for i, name in enumerate(fields)}
            absent = [c for c in required if c not in columns]
            if absent:
                raise line_error(
                    path,
                    lineno,
                    f"the header has no {', '.join(absent)} column; expected the official "
                    "header 'label,youtube_id,time_start,time_end,split' (test.csv: no label)",
                )
            continue
        if len(fields) != len(columns):
            raise line_error(
                path,
                lineno,
                f"expected {len(columns)} comma-separated fields as in the header, got "
                f"{len(fields)}; quote a label that contains a comma",
            )
        label = fields[columns["label"]] if labelled else None
        if labelled and not label:
            raise line_error(path, lineno, "the label is empty; write the class name")
        youtube_id = fields[columns["youtube_id"]]
        if not youtube_id or "/" in youtube_id or "\\" in youtube_id:
            raise line_error(path, lineno, f"youtube_id '{youtube_id}' is empty or has a '/'")
        start = _whole_seconds(fields[columns["time_start"]], "time_start", path, lineno)
        end = _whole_seconds(fields[columns["time_end"]], "time_end", path, lineno)
        if end < start:
            raise line_error(path, lineno, f"time_end {end} is before time_start {start}")
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


def load_kinetics(video_root: str, split_dir: str) -> Split:
    what = "Kinetics' official train.csv, validate.csv (or val.csv) and test.csv"
    train_csv = find_file(split_dir, "train.csv", what)
    test_csv = first_file(split_dir, _KINETICS_TEST_CSVS, what)
    try:
        unlabelled_csv: str | None = find_file(split_dir, "test.csv", what)
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
                    raise line_error(
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
