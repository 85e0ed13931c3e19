"""What every split reader shares: the `Split` result, video ids, the dataset constants,
reading list files (UTF-8, BOM, CRLF), "<file>:<line>: ..." errors, relative-path checks,
the case-insensitive disk index and the collector of train/test entries.

Nothing here knows a dataset's layout; the readers (`ucf_hmdb`, `folder_csv`, `web`) do.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from collections.abc import Iterator, Sequence

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
      not_found_subsets: the list ("train" or "test") of each `not_found` entry.
      replaced: kinetics: listed videos taken from cvdf's replacements for corrupted clips
        (`<video_root>/replacement/replacement_for_corrupted_k400/`).
      unlabelled_has_labels: kinetics: the unlabelled list (test.csv) has a label column
        (DeepMind's newer test.csv files): it can be the test list (`test_list`).
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
    not_found_subsets: list[str] = dataclasses.field(default_factory=list)
    replaced: int = 0
    unlabelled_has_labels: bool = False


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
    prefix = video_root.rstrip(os.sep) + os.sep
    rest = path[len(prefix) :]
    sep = os.sep
    normal = f"{sep}." not in sep + rest and sep * 2 not in rest
    if os.path.isabs(prefix) and path.startswith(prefix) and normal:
        rel = rest  # the splits' own absolute, normal paths: no normalising needed (faster)
    else:
        rel = os.path.relpath(os.path.abspath(path), os.path.abspath(video_root))
    rel = rel.replace(os.sep, "/")
    if rel == ".." or rel.startswith("../") or os.path.isabs(rel):
        raise ValueError(
            f"{path} is not under video_root {video_root}; pass the video_root the split used"
        )
    return rel


def read_lines(path: str) -> Iterator[tuple[int, str]]:
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


def line_error(path: str, lineno: int, message: str) -> ValueError:
    return ValueError(f"{path}:{lineno}: {message}")


def normalise(raw: str, path: str, lineno: int) -> str:
    """A list entry as a clean relative posix path; rejects absolute and escaping paths."""
    entry = raw.strip().replace("\\", "/")
    if entry.startswith("/") or re.match(r"^[A-Za-z]:", entry):
        raise line_error(
            path,
            lineno,
            f"'{raw}' is an absolute path; write it relative to video_root",
        )
    rel = posixpath.normpath(entry)
    if rel == ".." or rel.startswith("../"):
        raise line_error(
            path,
            lineno,
            f"'{raw}' resolves outside video_root; write it relative to video_root, without '..'",
        )
    if rel in ("", "."):
        raise line_error(path, lineno, f"'{raw}' names no file; write <class>/<video>")
    return rel


class DiskIndex:
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


class Collector:
    """Accumulates train/test entries, resolving paths, tracking duplicates and missing."""

    def __init__(self, video_root: str):
        self.root = video_root
        self.index = DiskIndex(video_root)
        self.lists: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
        self.missing: list[str] = []
        self._seen: dict[str, str] = {}

    def add(self, subset: str, rel: str, label: int, path: str, lineno: int) -> None:
        key = rel.lower()
        if key in self._seen:
            raise line_error(
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


def find_file(directory: str, name: str, what: str) -> str:
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


def first_file(directory: str, names: Sequence[str], what: str) -> str:
    for name in names:
        try:
            return find_file(directory, name, what)
        except ValueError:
            continue
    raise ValueError(
        f"{directory} has none of {', '.join(names)}; set split_dir (--split_dir) to the folder "
        f"of {what}"
    )
