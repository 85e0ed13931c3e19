"""UCF101 and HMDB51: their official split files -> `Split` (see the package docstring)."""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from tsn_keras.splits.common import (
    VIDEO_EXTENSIONS,
    Collector,
    Split,
    find_file,
    line_error,
    normalise,
    read_lines,
)

_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<split>\d+)\.txt$", re.IGNORECASE)


def _looks_like_file(word: str) -> bool:
    return "/" in word or "\\" in word or word.lower().endswith(VIDEO_EXTENSIONS)


class _ClassInd(NamedTuple):
    """UCF101's classInd.txt: its path, class names by 0-based label, lowercase name -> label."""

    path: str
    classes: list[str]
    by_folder: dict[str, int]


def _read_class_ind(class_file: str) -> _ClassInd:
    """Reads "<1-based index> <class>" lines; indices 1..N without gaps, names unique."""
    by_index: dict[int, str] = {}
    for lineno, text in read_lines(class_file):
        fields = text.split(None, 1)
        if len(fields) != 2 or not fields[0].isdigit():
            raise line_error(
                class_file, lineno, f"expected '<index> <class name>', got '{text}'; fix the line"
            )
        index, name = int(fields[0]), fields[1].strip()
        if index in by_index:
            raise line_error(
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
    return _ClassInd(class_file, classes, by_folder)


def _written_label(word: str, ind: _ClassInd, list_file: str, lineno: int) -> int:
    """The 0-based label of a list line's "<1-based label>" word."""
    if not re.fullmatch(r"[+-]?\d+", word):
        raise line_error(
            list_file,
            lineno,
            f"label '{word}' is not an integer; write '<class>/<video> <1-based label>'",
        )
    label = int(word)
    if not 1 <= label <= len(ind.classes):
        raise line_error(
            list_file,
            lineno,
            f"label {label} is not in {os.path.basename(ind.path)} "
            f"(1..{len(ind.classes)}); fix the label",
        )
    return label - 1


def _list_entry(text: str, ind: _ClassInd, list_file: str, lineno: int) -> tuple[str, int]:
    """(relative path, 0-based label) of a trainlist/testlist line; the label and the class
    folder, whichever are given, must agree."""
    # "<path> <label>" or "<path>"; a last word that looks like a file is the path's.
    fields = text.rsplit(None, 1)
    label = None
    entry = text
    if len(fields) == 2 and not _looks_like_file(fields[1]):
        label = _written_label(fields[1], ind, list_file, lineno)
        entry = fields[0]
    rel = normalise(entry, list_file, lineno)
    folder = rel.split("/")[0] if "/" in rel else None
    folder_label = ind.by_folder.get(folder.lower()) if folder else None
    class_file = os.path.basename(ind.path)
    if label is None:
        if folder is None:
            raise line_error(
                list_file,
                lineno,
                f"'{rel}' has neither a class folder nor a label; "
                "write '<class>/<video>' or '<video> <label>'",
            )
        if folder_label is None:
            raise line_error(
                list_file,
                lineno,
                f"unknown class '{folder}' (not in {class_file}); "
                "fix the folder name or add the class to classInd.txt",
            )
        label = folder_label
    elif folder is not None and folder_label is None:
        raise line_error(
            list_file,
            lineno,
            f"unknown class folder '{folder}' (not in {class_file}); "
            "fix the folder name or add the class to classInd.txt",
        )
    elif folder_label is not None and folder_label != label:
        raise line_error(
            list_file,
            lineno,
            f"label {label + 1} ({ind.classes[label]}) disagrees with the folder '{folder}' "
            f"(class {folder_label + 1}); fix the label or the path",
        )
    return rel, label


def load_ucf101(video_root: str, split_dir: str, split: int) -> Split:
    """UCF101: classInd.txt and trainlist0N.txt / testlist0N.txt in split_dir."""
    what = "UCF101's classInd.txt, trainlist0N.txt and testlist0N.txt"
    ind = _read_class_ind(find_file(split_dir, "classInd.txt", what))
    collector = Collector(video_root)
    for subset, stem in (("train", "trainlist"), ("test", "testlist")):
        list_file = find_file(split_dir, f"{stem}{split:02d}.txt", what)
        for lineno, text in read_lines(list_file):
            rel, label = _list_entry(text, ind, list_file, lineno)
            collector.add(subset, rel, label, list_file, lineno)
    return collector.split(ind.classes)


def load_hmdb51(video_root: str, split_dir: str, split: int) -> Split:
    """HMDB51: <class>_test_splitN.txt files in split_dir (1 = train, 2 = test, 0 = unused)."""
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
    collector = Collector(video_root)
    for label, cls in enumerate(classes):
        list_file = files[cls]
        for lineno, text in read_lines(list_file):
            fields = text.rsplit(None, 1)
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise line_error(
                    list_file,
                    lineno,
                    f"expected '<video> <id>' with id 0 (unused), 1 (train) or 2 (test), "
                    f"got '{text}'; fix the line",
                )
            if fields[1] == "0":
                continue
            rel = f"{cls}/{normalise(fields[0], list_file, lineno)}"
            collector.add("train" if fields[1] == "1" else "test", rel, label, list_file, lineno)
    return collector.split(classes)
