"""The synthetic dataset folder (UCF101 layout, split files, synthetic.json) and its records.

`write_dataset` renders every clip (`tsn_keras.synthetic.render`), encodes and checks it, and
writes the split files and the marker that lets a second run with the same parameters reuse the
folder; `write_records` writes generated examples as a records folder shaped like the
converter's (shards and manifest.json, no videos), for tests and benches that skip the converter.
"""

from __future__ import annotations

import json
import math
import os

import cv2
import numpy as np

from tsn_keras import manifest as manifest_lib
from tsn_keras import records
from tsn_keras import video as video_lib
from tsn_keras.synthetic.render import (
    APPEARANCES,
    MOTIONS,
    class_grid,
    grid_shape,
    make_background,
    render_clip,
)

CODECS = ("mp4v", "MJPG")
SPLIT_DIR_NAME = "ucfTrainTestlist"
MARKER_NAME = "synthetic.json"
_MIN_SIZE = 16


def _write_checked_video(path: str, frames: np.ndarray, fps: float, codec: str) -> None:
    """`video_lib.write_video`, then checks that the file reads back with all its frames.

    Raises:
      RuntimeError: the file does not report T frames (this OpenCV build does not round-trip
        the codec).
    """
    num_frames = len(frames)
    other = "MJPG" if codec != "MJPG" else "mp4v"
    try:
        video_lib.write_video(path, frames, fps, codec)
    except OSError as e:
        raise RuntimeError(f"{e}; try --codec {other}") from None
    capture = cv2.VideoCapture(path)
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    if count != num_frames:
        raise RuntimeError(
            f"{path}: wrote {num_frames} frames but the file reports {count}; this OpenCV build "
            f"does not round-trip codec {codec}; try --codec {other}"
        )


def write_records(
    out_dir: str,
    sets: dict[str, list[tuple[records.ClipInfo, dict]]],
    classes: list[str],
    modalities: tuple[str, ...],
    num_shards: int,
    combined: bool = False,
    **manifest_fields,
) -> str:
    """Writes generated examples as a records folder shaped like the converter's output.

    For tests and benchmarks that need records without videos: each subset's examples go
    round-robin into `num_shards` shards, one file per shard and modality (or, with `combined`,
    the older layout of one file per shard holding every modality), plus manifest.json.

    Args:
      out_dir: the folder (created if needed).
      sets: {"train" / "test": [(ClipInfo, encoded)]}; encoded maps "rgb", "rgbdiff", "flow_x",
        "flow_y", ... to JPEG bytes as `records.serialize_example` takes them.
      classes: class names, index order.
      modalities: what the examples hold.
      num_shards: shards per subset.
      combined: write the older one-file-per-shard layout.
      **manifest_fields: other `manifest.Manifest` fields (snippets, snippet_length, flow, ...).

    Returns:
      out_dir.
    """
    import tensorflow as tf  # the writer; the converter's workers never import this function

    os.makedirs(out_dir, exist_ok=True)
    parts = {None: None} if combined else {m: m for m in modalities}
    subsets = {}
    for subset, examples in sets.items():
        shards = []
        for s in range(num_shards):
            files = {}
            for m in parts:
                files[m] = records.shard_filename(subset, s, num_shards, m)
                with tf.io.TFRecordWriter(os.path.join(out_dir, files[m])) as writer:
                    for info, encoded in examples[s::num_shards]:
                        if m is not None:  # this modality's feature lists only
                            encoded = {k: v for k, v in encoded.items() if k.rsplit("_", 1)[0] == m}
                        writer.write(records.serialize_example(info, encoded))
            count = len(examples[s::num_shards])
            if combined:
                shards.append(manifest_lib.Shard({}, count, combined_file=files[None]))
            else:
                shards.append(manifest_lib.Shard(files, count))
        subsets[subset] = manifest_lib.Subset(tuple(shards), num_shards)
    manifest_lib.Manifest(
        classes=tuple(classes),
        modalities=tuple(modalities),
        sets=subsets,
        dataset="synthetic",
        split=1,
        extra={"flags": {}},
        **manifest_fields,
    ).write(out_dir)
    return out_dir


def _validate(
    classes: int,
    clips_per_class: int,
    seed: int,
    width: int,
    height: int,
    fps: float,
    seconds: float,
    duration_jitter: float,
    codec: str,
    test_fraction: float,
    jitter_fraction: float,
) -> None:
    grid_shape(classes)
    if clips_per_class < 2:
        raise ValueError(
            "clips_per_class must be >= 2 (every class needs a train and a test clip); "
            f"Received: clips_per_class={clips_per_class}"
        )
    if seed < 0:
        raise ValueError(f"seed must be >= 0; Received: seed={seed}")
    for name, value in (("width", width), ("height", height)):
        if value < _MIN_SIZE or value % 2:
            raise ValueError(
                f"{name} must be an even number >= {_MIN_SIZE} (the encoders round odd sizes "
                f"down); Received: {name}={value}"
            )
    if not fps > 0:
        raise ValueError(f"fps must be > 0; Received: fps={fps}")
    if not 0.0 <= duration_jitter < 1.0:
        raise ValueError(
            f"duration_jitter must be in [0, 1); Received: duration_jitter={duration_jitter}"
        )
    if round(fps * seconds * (1.0 - duration_jitter)) < 1:
        raise ValueError(
            "seconds x fps must give at least 1 frame for the shortest clip; "
            f"Received: seconds={seconds}, fps={fps}, duration_jitter={duration_jitter}"
        )
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {CODECS}; Received: codec={codec!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(
            f"test_fraction must be in (0, 1); Received: test_fraction={test_fraction}"
        )
    if not 0.0 <= jitter_fraction <= 1.0:
        raise ValueError(
            f"jitter_fraction must be in [0, 1]; Received: jitter_fraction={jitter_fraction}"
        )


def _group_sizes(clips_per_class: int) -> list[int]:
    """Clips per group: about 3 per group (UCF101 has 4-7), at least 2 and at most 25 groups."""
    num_groups = max(2, min(25, math.ceil(clips_per_class / 3)))
    base, extra = divmod(clips_per_class, num_groups)
    return [base + (1 if g < extra else 0) for g in range(num_groups)]


def _write_lines(path: str, lines: list[str]) -> None:
    """Writes `lines` with CRLF endings, as UCF101's split files have them."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(line + "\r\n" for line in lines))


def _remove_previous(out_dir: str, marker: dict) -> None:
    """Deletes the files a previous run listed in its marker (and class folders left empty)."""
    for video in marker.get("videos", []):
        path = os.path.join(out_dir, video["path"])
        if os.path.isfile(path):
            os.remove(path)
        folder = os.path.dirname(path)
        if os.path.isdir(folder) and not os.listdir(folder):
            os.rmdir(folder)
    split_dir = os.path.join(out_dir, SPLIT_DIR_NAME)
    for name in ("classInd.txt", "trainlist01.txt", "testlist01.txt"):
        if os.path.isfile(os.path.join(split_dir, name)):
            os.remove(os.path.join(split_dir, name))


def _read_marker(out_dir: str) -> dict | None:
    path = os.path.join(out_dir, MARKER_NAME)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(
            f"{path}: cannot read it ({e}); delete it (and the folder's videos) or pick another out"
        ) from e


def _write_marker(out_dir: str, marker: dict) -> None:
    path = os.path.join(out_dir, MARKER_NAME)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(marker, f, indent=1)
    os.replace(path + ".tmp", path)


def _reusable(out_dir: str, marker: dict | None, params: dict) -> bool:
    if not marker or not marker.get("complete") or marker.get("params") != params:
        return False
    return all(
        os.path.isfile(os.path.join(out_dir, v["path"]))
        and os.path.getsize(os.path.join(out_dir, v["path"])) == v["bytes"]
        for v in marker["videos"]
    )


def _plan_videos(grid: list, params: dict) -> list[dict]:
    """Every clip's path, label, subset, frame count and jitter, with its generator, in order."""
    seed, seconds, fps = params["seed"], params["seconds"], params["fps"]
    duration_jitter = params["duration_jitter"]
    appearance_index = {name: i for i, (name, _) in enumerate(APPEARANCES)}
    motion_index = {name: i for i, (name, _) in enumerate(MOTIONS)}
    sizes = _group_sizes(params["clips_per_class"])
    num_test_groups = min(len(sizes) - 1, max(1, round(params["test_fraction"] * len(sizes))))
    videos = []
    for label, cls in enumerate(grid):
        for g, size in enumerate(sizes):
            key = [seed, appearance_index[cls.appearance], motion_index[cls.motion], g + 1]
            background = make_background(
                params["width"], params["height"], np.random.default_rng(key)
            )
            for c in range(size):
                rel = f"{cls.name}/v_{cls.name}_g{g + 1:02d}_c{c + 1:02d}.avi"
                rng = np.random.default_rng([*key, c + 1])
                duration = seconds * rng.uniform(1.0 - duration_jitter, 1.0 + duration_jitter)
                jitter = bool(rng.random() < params["jitter_fraction"])
                num_frames = max(1, round(fps * duration))
                videos.append(
                    {
                        "path": rel,
                        "label": label,
                        "subset": "test" if g < num_test_groups else "train",
                        "frames": num_frames,
                        "camera_jitter": jitter,
                        "_render": (cls, rng, background),
                    }
                )
    return videos


def _write_split_files(split_dir: str, names: list[str], videos: list[dict]) -> None:
    """classInd.txt, trainlist01.txt and testlist01.txt as UCF101 ships them."""
    _write_lines(
        os.path.join(split_dir, "classInd.txt"), [f"{i + 1} {n}" for i, n in enumerate(names)]
    )
    _write_lines(
        os.path.join(split_dir, "trainlist01.txt"),
        [f"{v['path']} {v['label'] + 1}" for v in videos if v["subset"] == "train"],
    )
    _write_lines(
        os.path.join(split_dir, "testlist01.txt"),
        [v["path"] for v in videos if v["subset"] == "test"],
    )


def write_dataset(
    out_dir: str,
    classes: int = 8,
    clips_per_class: int = 30,
    seed: int = 0,
    width: int = 160,
    height: int = 120,
    fps: float = 25.0,
    seconds: float = 2.5,
    duration_jitter: float = 0.2,
    codec: str = "mp4v",
    test_fraction: float = 0.3,
    jitter_fraction: float = 0.5,
) -> dict:
    """Writes the synthetic dataset (videos + UCF101 split files) and returns its summary.

    Deterministic for a seed: every clip draws from its own generator seeded with
    (seed, appearance, motion, group, clip), every group's background from
    (seed, appearance, motion, group); so changing one class or one count leaves the others'
    pixels as they were.

    Args:
      out_dir: the video root to write (created if needed).
      classes: number of classes, see the module docstring for the grid rule.
      clips_per_class: clips per class (>= 2), spread over groups of about 3.
      seed: the random seed (>= 0).
      width, height: frame size (even, >= 16).
      fps: frames per second of the files.
      seconds: mean clip duration; each clip lasts seconds x U(1 - j, 1 + j), j = duration_jitter,
        so the defaults give 2-3 s. With duration_jitter=0 every clip has round(fps x seconds)
        frames.
      duration_jitter: relative spread of the durations, in [0, 1).
      codec: "mp4v" or "MJPG" (in .avi).
      test_fraction: fraction of each class's groups in testlist01 (the lowest-numbered
        groups, at least one, and at least one group left for training).
      jitter_fraction: fraction of clips (in expectation) with camera jitter.

    Returns:
      A dict: "out", "split_dir", "classes" (names, label order), "appearances", "motions",
      "clips", "train", "test", "frames", "bytes", "reused" (True when the files of an identical
      earlier run were kept), "params", and "videos": one dict per clip with "path" (relative
      to out), "label", "subset" ("train"/"test"), "frames", "bytes", "camera_jitter".

    Raises:
      ValueError: a parameter is out of range (the message names it), or out_dir holds other
        files and no synthetic.json.
      RuntimeError: OpenCV cannot write or read back a video.
    """
    _validate(classes, clips_per_class, seed, width, height, fps, seconds, duration_jitter,
              codec, test_fraction, jitter_fraction)  # fmt: skip
    params = {
        "classes": classes,
        "clips_per_class": clips_per_class,
        "seed": seed,
        "width": width,
        "height": height,
        "fps": float(fps),
        "seconds": float(seconds),
        "duration_jitter": float(duration_jitter),
        "codec": codec,
        "test_fraction": float(test_fraction),
        "jitter_fraction": float(jitter_fraction),
    }
    out_dir = os.path.abspath(out_dir)
    split_dir = os.path.join(out_dir, SPLIT_DIR_NAME)
    marker = _read_marker(out_dir)
    if _reusable(out_dir, marker, params):
        return {**marker["summary"], "out": out_dir, "split_dir": split_dir, "reused": True}
    if marker is None and os.path.isdir(out_dir) and os.listdir(out_dir):
        raise ValueError(
            f"out {out_dir} is not empty and holds no {MARKER_NAME}, so it was not written by "
            "tsn_keras.synthetic; pass an empty or new folder"
        )
    if marker is not None:
        _remove_previous(out_dir, marker)

    grid = class_grid(classes)
    videos = _plan_videos(grid, params)
    planned = {"complete": False, "params": params, "videos": [{"path": v["path"]} for v in videos]}
    os.makedirs(split_dir, exist_ok=True)
    _write_marker(out_dir, planned)

    for video in videos:
        cls, rng, background = video.pop("_render")
        clip = render_clip(
            cls,
            video["frames"],
            width,
            height,
            rng,
            background=background,
            camera_jitter=video["camera_jitter"],
        )
        path = os.path.join(out_dir, video["path"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        _write_checked_video(path, clip.frames, fps, codec)
        video["bytes"] = os.path.getsize(path)

    names = [cls.name for cls in grid]
    _write_split_files(split_dir, names, videos)
    num_appearances, num_motions = grid_shape(classes)
    summary = {
        "classes": names,
        "appearances": [name for name, _ in APPEARANCES[:num_appearances]],
        "motions": [name for name, _ in MOTIONS[:num_motions]],
        "clips": len(videos),
        "train": sum(v["subset"] == "train" for v in videos),
        "test": sum(v["subset"] == "test" for v in videos),
        "frames": sum(v["frames"] for v in videos),
        "bytes": sum(v["bytes"] for v in videos),
        "params": params,
        "videos": videos,
    }
    _write_marker(
        out_dir, {"complete": True, "params": params, "videos": videos, "summary": summary}
    )
    return {**summary, "out": out_dir, "split_dir": split_dir, "reused": False}


def format_dataset_summary(summary: dict) -> str:
    """The human-readable summary that the command line prints."""
    p = summary["params"]
    lengths = [v["frames"] for v in summary["videos"]]
    lines = [
        f"synthetic dataset in {summary['out']}"
        + (" (reused: same parameters as the files there)" if summary["reused"] else ""),
        f"classes: {len(summary['classes'])} = {len(summary['appearances'])} appearances "
        f"({', '.join(summary['appearances'])}) x {len(summary['motions'])} motions "
        f"({', '.join(summary['motions'])})",
        f"clips: {summary['clips']} (train {summary['train']}, test {summary['test']}), "
        f"{p['width']}x{p['height']} at {p['fps']:g} fps, {min(lengths)}-{max(lengths)} frames, "
        f"{sum(v['camera_jitter'] for v in summary['videos'])} with camera jitter, codec "
        f"{p['codec']}",
        f"size: {summary['frames']} frames, {summary['bytes']} bytes "
        f"({summary['bytes'] / 2**20:.1f} MiB)",
        f"split files: {summary['split_dir']} (classInd.txt, trainlist01.txt, testlist01.txt)",
    ]
    return "\n".join(lines)
