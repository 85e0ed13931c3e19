"""`manifest.json`: what a records folder holds, as one typed object.

The converter (`convert.shards.write_manifest`, the Beam path) and the synthetic records
writer build a `Manifest` and `write` it; training, evaluation, export and the input pipeline
`read` it once and pass the object down. Reading and writing go through `tf.io.gfile`, so a
records folder on `gs://` works like a local one. This module owns the schema and its version;
`records.py` owns the examples inside the shard files.

Schema (version 2; a file without `version` is version 1, the same fields):

    {"version": 2, "dataset": "ucf101", "split": 1, "classes": [...], "modalities": ["rgb"],
     "snippets": 25, "snippet_length": 5, "flow": {"algorithm": "tvl1", "bound": 20},
     "height": 256, "width": 340, "short_side": null, "jpeg_quality": 90,
     "config": {...ConvertConfig fields...}, "complete": true,
     "sets": {"train": {"num_examples": N, "num_shards": S, "complete": true,
                        "shards": [{"files": {"rgb": "train-rgb-00000-of-00004.tfrecord"},
                                    "num_examples": n}, ...]}},
     "failures": [{"path": ..., "reason": ..., "subset": ...}], "short_videos": [...],
     "warped_flow_fallbacks": 0, "flags": {...}, ...}

A shard of the older layout (one file holding every modality) is `{"file": name, ...}`. Keys
this version does not name (the converter's run information) are kept in `extra` and written
back unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from tsn_keras import modalities as modalities_lib

MANIFEST_NAME = "manifest.json"
VERSION = 2


def _gfile():
    import tensorflow as tf  # only here: the converter's workers import this module's users

    return tf.io.gfile


@dataclass(frozen=True)
class Shard:
    """One shard of a subset: its file per modality (or one combined file) and its count."""

    files: Mapping[str, str]
    num_examples: int
    combined_file: str | None = None  # the older layout: one file holding every modality

    def to_dict(self) -> dict:
        if self.combined_file is not None:
            return {"file": self.combined_file, "num_examples": self.num_examples}
        return {"files": dict(self.files), "num_examples": self.num_examples}

    @classmethod
    def from_dict(cls, d: Mapping) -> Shard:
        if "file" in d:
            return cls(files={}, num_examples=int(d["num_examples"]), combined_file=d["file"])
        return cls(files=dict(d["files"]), num_examples=int(d["num_examples"]))


@dataclass(frozen=True)
class Subset:
    """A subset ("train", "test"): its shards in order; `complete` once every shard is done."""

    shards: tuple[Shard, ...]
    num_shards: int
    complete: bool = True

    @property
    def num_examples(self) -> int:
        return sum(s.num_examples for s in self.shards)

    @property
    def counts(self) -> list[int]:
        """Examples per shard, in shard order."""
        return [s.num_examples for s in self.shards]

    def to_dict(self) -> dict:
        return {
            "num_examples": self.num_examples,
            "num_shards": self.num_shards,
            "complete": self.complete,
            "shards": [s.to_dict() for s in self.shards],
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Subset:
        shards = tuple(Shard.from_dict(s) for s in d.get("shards", []))
        return cls(shards, int(d.get("num_shards", len(shards))), bool(d.get("complete", True)))


@dataclass(frozen=True)
class Manifest:
    """A records folder's manifest.

    Attributes:
      classes: class names in label-index order.
      modalities: the modalities the shards store.
      sets: subset name -> `Subset`.
      snippets: stored snippets per video (0: every frame).
      snippet_length: L.
      flow: {"algorithm": ..., "bound": ...} (+ "preset" for tvl1_tensor).
      height, width: stored frame size (None with short_side).
      short_side: the stored short side, or None.
      jpeg_quality: of every stored image.
      config: the converter's settings (`convert.ConvertConfig.from_dict` reads them back).
      complete: every subset's every shard is done.
      failures, short_videos: one dict per video (path, reason or counts, subset).
      warped_flow_fallbacks: snippets whose warped flow fell back to plain flow.
      not_found: listed videos that were not on disk (Kinetics, SSv2 downloads miss some).
      dataset, split: where the videos came from.
      extra: every other key of the file (flags, run information), written back as read.
      folder: where it was read from (not stored; "" for a manifest being built).
      version: the schema version.
    """

    classes: tuple[str, ...]
    modalities: tuple[str, ...]
    sets: Mapping[str, Subset]
    snippets: int = 25
    snippet_length: int = 1
    flow: Mapping = field(default_factory=lambda: {"algorithm": "", "bound": 20})
    height: int | None = None
    width: int | None = None
    short_side: int | None = None
    jpeg_quality: int = 90
    config: Mapping = field(default_factory=dict)
    complete: bool = True
    failures: Sequence[Mapping] = ()
    short_videos: Sequence[Mapping] = ()
    warped_flow_fallbacks: int = 0
    not_found: Sequence[str] = ()
    dataset: str = ""
    split: int = 0
    extra: Mapping = field(default_factory=dict)
    folder: str = ""
    version: int = VERSION

    # -- the file ---------------------------------------------------------------------------

    def to_dict(self) -> dict:
        out = {"version": self.version}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "folder", "version"):
                continue
            value = getattr(self, f.name)
            if f.name == "sets":
                value = {name: s.to_dict() for name, s in value.items()}
            elif isinstance(value, tuple):
                value = [dict(v) if isinstance(v, Mapping) else v for v in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out

    @classmethod
    def from_dict(cls, d: Mapping, folder: str = "") -> Manifest:
        """Reads a manifest's JSON object (version 1 or 2); `ValueError` for a newer one."""
        version = int(d.get("version", 1))
        if version > VERSION:
            raise ValueError(
                f"{os.path.join(folder, MANIFEST_NAME)} has manifest version {version}; this "
                f"tsn_keras reads up to {VERSION}: upgrade tsn_keras"
            )
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "folder", "version"}
        kwargs = {k: d[k] for k in names if k in d}
        kwargs["classes"] = tuple(d.get("classes", ()))
        kwargs["modalities"] = tuple(d.get("modalities", ()))
        kwargs["sets"] = {name: Subset.from_dict(s) for name, s in d.get("sets", {}).items()}
        for key in ("failures", "short_videos"):
            kwargs[key] = tuple(dict(v) for v in d.get(key, ()))
        kwargs["not_found"] = tuple(d.get("not_found", ()))
        extra = {k: v for k, v in d.items() if k not in names and k != "version"}
        return cls(**kwargs, extra=extra, folder=folder, version=VERSION)

    @classmethod
    def read(cls, records_dir: str) -> Manifest:
        """Reads `<records_dir>/manifest.json` (local or `gs://`).

        Raises:
          FileNotFoundError: the folder has no manifest (the message says how to make one).
          ValueError: the file is not a manifest this version reads.
        """
        path = os.path.join(records_dir, MANIFEST_NAME)
        gfile = _gfile()
        if not gfile.exists(path):
            raise FileNotFoundError(
                f"{path} not found: convert videos first, e.g. "
                f"`python scripts/make_tfrecords.py --out {records_dir} ...`, or fix --records"
            )
        with gfile.GFile(path, "r") as f:
            text = f.read()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); reconvert or restore it") from e
        return cls.from_dict(data, folder=records_dir)

    def write(self, out_dir: str) -> str:
        """Writes `<out_dir>/manifest.json` whole: a temporary file renamed into place."""
        gfile = _gfile()
        path = os.path.join(out_dir, MANIFEST_NAME)
        gfile.makedirs(out_dir)
        with gfile.GFile(path + ".incomplete", "w") as f:
            f.write(json.dumps(self.to_dict(), indent=1))
        gfile.rename(path + ".incomplete", path, overwrite=True)
        return path

    # -- questions readers ask ----------------------------------------------------------------

    def subset(self, name: str) -> Subset:
        """The subset `name`; `ValueError` naming what the folder has when it has no such one."""
        if name not in self.sets:
            raise ValueError(
                f"{os.path.join(self.folder, MANIFEST_NAME)} has no subset '{name}'; it has "
                f"{sorted(self.sets)}. Convert it with --subsets {name}"
            )
        return self.sets[name]

    def check_modality(self, modality: str, flag: str = "--modality") -> None:
        """`ValueError` unless the shards store `modality`."""
        if modality not in self.modalities:
            raise ValueError(
                f"{flag}={modality} is not stored in {self.folder} (it holds "
                f"{list(self.modalities)}); convert with --modalities including it or pick "
                f"another {flag}"
            )

    def shard_files(self, subset: str, modality: str | None = None) -> list[str]:
        """Paths of a subset's shard files of one modality, in shard order.

        Each modality has its own files, so a reader of one modality reads only its bytes. A
        folder of the older layout (one file per shard holding every modality) gives those
        files for any modality.

        Args:
          subset: "train" or "test".
          modality: whose files; None is allowed when the folder stores one modality only or
            is in the older combined layout.

        Raises:
          ValueError: no such subset, the folder does not store `modality` (or stores several
            and `modality` is None), or the subset is incomplete.
        """
        entry = self.subset(subset)
        if modality is not None:
            modalities_lib.check(modality)
        stored = list(
            dict.fromkeys(m for s in entry.shards for m in s.files) or list(self.modalities)
        )
        names = []
        for s in entry.shards:
            if s.combined_file is not None:
                names.append(s.combined_file)
            elif modality is None and len(s.files) == 1:
                names.append(next(iter(s.files.values())))
            elif modality is None:
                raise ValueError(
                    f"{self.folder} stores {stored} in separate files: pass the modality to read"
                )
            elif modality not in s.files:
                raise ValueError(
                    f"{self.folder} stores {stored}, not '{modality}'; convert with --modalities "
                    "including it"
                )
            else:
                names.append(s.files[modality])
        files = [os.path.join(self.folder, name) for name in names]
        gfile = _gfile()
        absent = [f for f in files if not gfile.exists(f)]
        if absent or not entry.complete:
            raise ValueError(
                f"{self.folder}: subset '{subset}' is incomplete ({len(absent)} shard files "
                f"absent, e.g. {absent[:1]}); rerun scripts/make_tfrecords.py with the same "
                "flags to finish it"
            )
        return files
