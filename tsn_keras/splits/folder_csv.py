"""Folder per class and CSV datasets, split by a stable hash of the file names (see the
package docstring) -> `Split`."""

from __future__ import annotations

import csv
import hashlib
import os
import posixpath
import re

from tsn_keras.splits.common import (
    VIDEO_EXTENSIONS,
    Collector,
    Split,
    line_error,
    normalise,
    read_lines,
)

_UCF_CLIP = re.compile(r"^(?P<group>v_.+_g\d+)_c\d+(?P<ext>\.[^./]+)$", re.IGNORECASE)
_CSV_PATH_HEADERS = {"path", "video", "file", "filename", "video_path"}
_CSV_LABEL_HEADERS = {"label", "class", "class_name", "label_name"}


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


def load_folder(video_root: str, test_fraction: float) -> Split:
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


def load_csv(video_root: str, csv_path: str, test_fraction: float) -> Split:
    rows: list[tuple[int, str, str]] = []
    for position, (lineno, text) in enumerate(read_lines(csv_path)):
        fields = [f.strip() for f in next(csv.reader([text]))]
        if position == 0 and len(fields) == 2:
            if fields[0].lower() in _CSV_PATH_HEADERS and fields[1].lower() in _CSV_LABEL_HEADERS:
                continue  # the optional header
        if len(fields) != 2:
            raise line_error(
                csv_path,
                lineno,
                f"expected 2 comma-separated fields 'path,label', got {len(fields)}; "
                "quote a path that contains a comma",
            )
        if not fields[1]:
            raise line_error(csv_path, lineno, "the label is empty; write 'path,<class name>'")
        rel = normalise(fields[0], csv_path, lineno)
        rows.append((lineno, rel, fields[1]))
    if not rows:
        raise ValueError(f"{csv_path}: no 'path,label' lines; fill it or pick another csv")
    classes = sorted({label for _, _, label in rows})
    by_name = {name: i for i, name in enumerate(classes)}
    collector = Collector(video_root)
    for lineno, rel, name in rows:
        subset = "test" if _in_test(rel, test_fraction) else "train"
        collector.add(subset, rel, by_name[name], csv_path, lineno)
    return collector.split(classes)
