"""Synthetic action videos in the UCF101 layout, for tests and the demo.

(Over 500 lines on purpose: the class grid, the renderer and the writer define one dataset
whose pixels must stay identical for a seed; splitting them would spread one contract over
several files.)

    python -m tsn_keras.synthetic --out demo_out/videos                 # 8 classes x 30 clips
    python -m tsn_keras.synthetic --out /tmp/s --classes 4 --clips_per_class 3 --width 32 \
        --height 24 --fps 10 --seconds 1 --duration_jitter 0

Each class is one cell of an appearance x motion grid: a textured blob of one colour moving in
one direction (`RedBlobMoveUp`, `RedBlobMoveDown`, `GreenBlobMoveUp`, ...). The grid is
built so that each stream of a two-stream network sees only half of the label:

  * Appearance classes differ ONLY in hue. The colours are isoluminant (same luma under the
    BT.601 weights that cv2.COLOR_RGB2GRAY uses), the blob has the same shape, size
    distribution and texture in every class, so the grayscale frames that optical flow is
    computed on have the same distribution for every colour: flow alone cannot tell them apart.
  * Motion classes differ ONLY in direction. The start position is uniform over the frame and
    the blob wraps around the edges (a torus), there is no motion blur, and the speed is drawn
    from the same range for every direction, so a single RGB frame carries no information about
    the direction: RGB alone cannot tell them apart.

The background is a cluttered, textured, coloured scene that is static in the world, with fresh
noise on every frame; a fraction of the clips has camera jitter (a random walk of 1 px steps
within +-2% of the width that shifts the whole frame, the blob included). The blob moves
1.4-2.8% of the width per frame (2.2-4.5 px at 160 px, 0.35-0.7 widths a second at 25 fps) with a
small perpendicular drift. Clips are grouped as in UCF101 (`v_<Class>_gGG_cCC.avi`): the clips
of one group share a background, and a whole group goes to one side of the split (the
lowest-numbered groups are the test set, as in UCF101's split 1), so the test set shows
backgrounds never seen in training.

Grid rule for `classes=N` (N even, 2 <= N <= 48):
  * N <= 24: N/2 appearances x 2 motions (Up, Down). Not Left/Right: training flips clips
    horizontally (TSN's augmentation), which would turn a left-moving clip into a right-moving
    one under the same label (train with --random_flip=false for such classes).
  * N > 24: N must be a multiple of 4; N/4 appearances x 4 motions (Up, Down, Left, Right).
Appearances are taken in the order of `APPEARANCES` (Red, Green, Blue, Yellow, ...). Class
labels follow the alphabetical order of the class names, as in UCF101's classInd.txt, so the
`ucf101` and `folder` readers of tsn_keras.splits give the same labels.

Output (`<out>` is the video root; split files as UCF101 ships them, CRLF line endings):
    <out>/<Class>/v_<Class>_gGG_cCC.avi
    <out>/ucfTrainTestlist/classInd.txt      "1 BlueBlobMoveDown"
    <out>/ucfTrainTestlist/trainlist01.txt   "BlueBlobMoveDown/v_BlueBlobMoveDown_g04_c01.avi 1"
    <out>/ucfTrainTestlist/testlist01.txt    "BlueBlobMoveDown/v_BlueBlobMoveDown_g01_c01.avi"
    <out>/synthetic.json                     the parameters and the summary

Running twice with the same parameters reuses the files (a finished synthetic.json with the same
parameters and every video present); other parameters replace the files a previous run wrote.
A folder that holds other files and no synthetic.json is refused.

Codecs: `mp4v` (MPEG-4 Part 2) and `MJPG` (motion JPEG), both in .avi; with this OpenCV
(5.0, FFmpeg backend) both read back with the exact frame count and size. Width and height must
be even: the encoders round odd sizes down.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys

import cv2
import numpy as np
from absl import flags

from tsn_keras import cli, records
from tsn_keras import manifest as manifest_lib
from tsn_keras import video as video_lib

# Colour names and a reference RGB colour for each; only the reference's hue (its direction in
# the CbCr plane) is kept, the luma and the chroma radius are the same for all.
APPEARANCES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("Red", (255, 0, 0)),
    ("Green", (0, 255, 0)),
    ("Blue", (0, 0, 255)),
    ("Yellow", (255, 255, 0)),
    ("Magenta", (255, 0, 255)),
    ("Cyan", (0, 255, 255)),
    ("Orange", (255, 128, 0)),
    ("Purple", (128, 0, 255)),
    ("Lime", (128, 255, 0)),
    ("Azure", (0, 128, 255)),
    ("Pink", (255, 0, 128)),
    ("Teal", (0, 255, 128)),
)
# Unit direction (dx, dy) in image coordinates (y grows downwards).
# Up and Down come first: the 2-motion grid must survive TSN's horizontal-flip augmentation,
# which mirrors a left-moving clip into a right-moving one (and inverts its x flow).
MOTIONS: tuple[tuple[str, tuple[int, int]], ...] = (
    ("Up", (0, -1)),
    ("Down", (0, 1)),
    ("Left", (-1, 0)),
    ("Right", (1, 0)),
)
CODECS = ("mp4v", "MJPG")
SPLIT_DIR_NAME = "ucfTrainTestlist"
MARKER_NAME = "synthetic.json"

_OBJECT_LUMA = 150.0  # luma of the blob's colour before texture shading, 0-255
_OBJECT_CHROMA = 55.0  # radius in the CbCr plane; keeps every channel inside 0-255
_OBJECT_RADIUS = 0.16  # blob radius as a fraction of min(width, height)
_SPEED_RANGE = (0.014, 0.028)  # frame widths per frame (0.35-0.7 widths/s at 25 fps)
_DRIFT = 0.15  # perpendicular drift, up to this fraction of the speed
_NOISE_SIGMA = 6.0  # per-frame noise, 0-255 scale
_NOISE_SCALE = _NOISE_SIGMA * math.sqrt(12.0)  # width of a uniform with that deviation
_JITTER = 0.02  # camera jitter amplitude as a fraction of the width (at least 1 px)
_MIN_SIZE = 16


@dataclasses.dataclass(frozen=True)
class SyntheticClass:
    """One cell of the appearance x motion grid.

    Attributes:
      name: class name, e.g. "RedBlobMoveLeft".
      appearance: colour name, e.g. "Red".
      motion: direction name, "Left", "Right", "Up" or "Down".
      rgb: the blob's untextured colour, floats 0-255, luma `_OBJECT_LUMA` for every class.
      direction: unit motion direction (dx, dy), y pointing down.
    """

    name: str
    appearance: str
    motion: str
    rgb: tuple[float, float, float]
    direction: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class RenderedClip:
    """A rendered clip before encoding.

    Attributes:
      frames: uint8 [T, H, W, 3], RGB.
      alpha: float32 [T, H, W], the blob's coverage of each pixel (1 inside, soft edge).
      velocity: the blob's motion (vx, vy) in pixels per frame, world coordinates.
      camera_offsets: int [T, 2], the camera's (dx, dy) offset of each frame (zeros: no jitter).
    """

    frames: np.ndarray
    alpha: np.ndarray
    velocity: tuple[float, float]
    camera_offsets: np.ndarray


def _isoluminant_rgb(reference: tuple[int, int, int]) -> tuple[float, float, float]:
    """The reference colour's hue at luma `_OBJECT_LUMA` and chroma `_OBJECT_CHROMA`."""
    r, g, b = (float(v) for v in reference)
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    cb, cr = 0.564 * (b - luma), 0.713 * (r - luma)  # BT.601 colour differences
    norm = math.hypot(cb, cr)
    cb, cr = _OBJECT_CHROMA * cb / norm, _OBJECT_CHROMA * cr / norm
    y = _OBJECT_LUMA
    return (y + 1.403 * cr, y - 0.714 * cr - 0.344 * cb, y + 1.773 * cb)


def grid_shape(num_classes: int) -> tuple[int, int]:
    """(appearances, motions) of the class grid for `num_classes` (see the module docstring).

    Raises:
      ValueError: `num_classes` is odd, below 2, above 48, or above 24 and not a multiple of 4.
    """
    max_classes = len(MOTIONS) * len(APPEARANCES)
    if num_classes < 2 or num_classes % 2 or num_classes > max_classes:
        raise ValueError(
            f"classes must be an even number from 2 to {max_classes} (appearances x motions); "
            f"Received: classes={num_classes}"
        )
    if num_classes <= 2 * len(APPEARANCES):
        return num_classes // 2, 2
    if num_classes % 4:
        raise ValueError(
            f"classes above {2 * len(APPEARANCES)} use 4 motions and must be a multiple of 4; "
            f"Received: classes={num_classes}"
        )
    return num_classes // 4, 4


def class_grid(num_classes: int) -> list[SyntheticClass]:
    """The classes for `num_classes`, sorted by name (the label order of classInd.txt)."""
    num_appearances, num_motions = grid_shape(num_classes)
    classes = []
    for appearance, reference in APPEARANCES[:num_appearances]:
        for motion, direction in MOTIONS[:num_motions]:
            classes.append(
                SyntheticClass(
                    name=f"{appearance}BlobMove{motion}",
                    appearance=appearance,
                    motion=motion,
                    rgb=_isoluminant_rgb(reference),
                    direction=direction,
                )
            )
    return sorted(classes, key=lambda c: c.name)


def _jitter_pad(width: int) -> int:
    return max(1, round(_JITTER * width))


def make_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A cluttered, textured, coloured static scene, float32 [H + 2p, W + 2p, 3] RGB 0-255.

    The margin p is the camera jitter amplitude, so a jittered crop never leaves the scene.
    """
    pad = _jitter_pad(width)
    h, w = height + 2 * pad, width + 2 * pad
    # Smooth colour blotches: a coarse random grid, upsampled.
    coarse = rng.normal(0.0, 1.0, size=(max(2, h // 12), max(2, w // 12), 3)).astype(np.float32)
    scene = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)  # [h, w, 3]
    gray = scene.mean(axis=2, keepdims=True)
    scene = 110.0 + 30.0 * (0.6 * gray + 0.4 * (scene - gray))  # mostly luminance, a little hue
    # Clutter: rectangles, discs and lines of random colours and sizes.
    scale = min(w, h)
    for _ in range(max(6, (w * h) // 800)):
        colour = tuple(float(v) for v in rng.uniform(20.0, 235.0, size=3))
        kind = rng.integers(3)
        x0, y0 = int(rng.integers(w)), int(rng.integers(h))
        size = max(1, int(rng.uniform(0.04, 0.2) * scale))
        if kind == 0:
            x1 = x0 + int(rng.integers(-size, size + 1))
            y1 = y0 + int(rng.integers(-size, size + 1))
            cv2.rectangle(scene, (x0, y0), (x1, y1), colour, thickness=-1)
        elif kind == 1:
            cv2.circle(scene, (x0, y0), max(1, size // 2), colour, thickness=-1)
        else:
            x1, y1 = int(rng.integers(w)), int(rng.integers(h))
            cv2.line(scene, (x0, y0), (x1, y1), colour, thickness=max(1, size // 6))
    # Fine static texture, so the background itself has structure for optical flow.
    scene += rng.normal(0.0, 12.0, size=(h, w, 1)).astype(np.float32)
    return np.clip(scene, 0.0, 255.0).astype(np.float32)


def render_clip(
    cls: SyntheticClass,
    num_frames: int,
    width: int,
    height: int,
    rng: np.random.Generator,
    *,
    background: np.ndarray | None = None,
    camera_jitter: bool = False,
) -> RenderedClip:
    """Renders one clip of `cls`: the textured blob moving over the background.

    The random draws do not depend on the class or on `camera_jitter`, so two calls with
    generators in the same state render the same scene, path and noise: only the blob's colour
    (or its direction) changes. That is what makes the appearance/motion split testable.

    Args:
      cls: the class (colour and direction).
      num_frames: frames to render (>= 1).
      width, height: frame size in pixels.
      rng: the clip's generator (consumed).
      background: float32 [H + 2p, W + 2p, 3] from `make_background`; None draws one from rng.
      camera_jitter: shift every frame by a small global offset (a random walk).

    Returns:
      The frames (uint8 RGB), the blob's alpha, its velocity and the camera offsets.
    """
    if background is None:
        background = make_background(width, height, rng)
    pad = _jitter_pad(width)
    if background.shape != (height + 2 * pad, width + 2 * pad, 3):
        raise ValueError(
            f"background must be [{height + 2 * pad}, {width + 2 * pad}, 3] for a {width}x{height} "
            f"clip; Received: shape={background.shape}"
        )
    speed = rng.uniform(*_SPEED_RANGE) * width  # px per frame
    drift = rng.uniform(-_DRIFT, _DRIFT) * speed
    dx, dy = cls.direction
    velocity = (dx * speed - dy * drift, dy * speed + dx * drift)  # along + perpendicular
    start = (rng.uniform(0.0, width), rng.uniform(0.0, height))
    radius = _OBJECT_RADIUS * min(width, height) * rng.uniform(0.85, 1.15)
    # Camera jitter: a random walk of 1 px steps, kept within +-pad (a shaky hand-held camera).
    steps = rng.integers(-1, 2, size=(num_frames, 2))
    steps[0] = rng.integers(-pad, pad + 1, size=2)
    offsets = np.zeros((num_frames, 2), dtype=np.int64)
    if camera_jitter:
        position = np.zeros(2, dtype=np.int64)
        for t in range(num_frames):
            position = np.clip(position + steps[t], -pad, pad)
            offsets[t] = position

    colour = np.asarray(cls.rgb, dtype=np.float32)
    period = 0.9 * radius  # wavelength of the blob's texture
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    alphas = np.empty((num_frames, height, width), dtype=np.float32)
    for t in range(num_frames):
        ox, oy = int(offsets[t, 0]), int(offsets[t, 1])
        # Blob centre in image coordinates: world position (wrapped) minus the camera offset.
        cx = start[0] + velocity[0] * t - ox
        cy = start[1] + velocity[1] * t - oy
        # Shortest signed distance on the torus, so the blob wraps around the frame edges.
        u = (xs - cx + width / 2.0) % width - width / 2.0  # [W]
        v = (ys - cy + height / 2.0) % height - height / 2.0  # [H]
        # Only the rows and columns the blob touches (possibly wrapped) are blended.
        cols = np.nonzero(np.abs(u) < radius + 1.0)[0]
        rows = np.nonzero(np.abs(v) < radius + 1.0)[0]
        u, v = u[cols], v[rows]
        dist = np.sqrt(u[None, :] ** 2 + v[:, None] ** 2)  # [rows, cols]
        alpha = np.clip(radius - dist + 0.5, 0.0, 1.0)[..., None]  # anti-aliased disc
        shade = 0.775 + 0.225 * (
            np.cos(2 * np.pi * u / period)[None, :] * np.cos(2 * np.pi * v / period)[:, None]
        )  # [rows, cols], a texture that moves with the blob
        image = background[pad + oy : pad + oy + height, pad + ox : pad + ox + width].copy()
        box = np.ix_(rows, cols)
        image[box] = image[box] * (1.0 - alpha) + (shade[..., None] * colour) * alpha
        # Uniform noise with standard deviation _NOISE_SIGMA (cheaper to draw than Gaussian).
        image += (rng.random(size=image.shape, dtype=np.float32) - 0.5) * _NOISE_SCALE
        alphas[t] = 0.0
        alphas[t][box] = alpha[..., 0]
        frames[t] = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return RenderedClip(frames=frames, alpha=alphas, velocity=velocity, camera_offsets=offsets)


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


def main(argv: list[str] | None = None) -> int:
    """Command line: parses the flags, writes the dataset, prints the summary.

    Returns:
      0 on success, 1 when writing failed (an unwritable or full --out), 2 on a bad flag (the
      message names it; parameter names are the flag names: "width must be ..." is --width).
    """
    return cli.run(_main, argv, usage_errors=(ValueError,), failures=(RuntimeError,))


def _main(argv: list[str]) -> int:
    # The flags live on a private FlagValues made here, so importing this module defines no
    # global flags (later commands import the library and define their own).
    fv = flags.FlagValues()
    flags.DEFINE_string("out", None, "Folder to write (the video root).", flag_values=fv)
    flags.DEFINE_integer(
        "classes", 8, "Number of classes (even; grid rule in the module doc).", flag_values=fv
    )
    flags.DEFINE_integer("clips_per_class", 30, "Clips per class (>= 2).", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Random seed (>= 0).", flag_values=fv)
    flags.DEFINE_integer("width", 160, "Frame width (even).", flag_values=fv)
    flags.DEFINE_integer("height", 120, "Frame height (even).", flag_values=fv)
    flags.DEFINE_float("fps", 25.0, "Frames per second.", flag_values=fv)
    flags.DEFINE_float("seconds", 2.5, "Mean clip duration in seconds.", flag_values=fv)
    flags.DEFINE_float(
        "duration_jitter", 0.2, "Durations vary by +- this fraction (0: all equal).", flag_values=fv
    )
    flags.DEFINE_enum("codec", "mp4v", list(CODECS), "Video codec (in .avi).", flag_values=fv)
    flags.DEFINE_float(
        "test_fraction", 0.3, "Fraction of each class's groups in the test list.", flag_values=fv
    )
    flags.DEFINE_float(
        "jitter_fraction", 0.5, "Fraction of clips with camera jitter.", flag_values=fv
    )
    flags.mark_flag_as_required("out", flag_values=fv)
    usage = f"usage: python -m tsn_keras.synthetic --out DIR [flags]\n\n{__doc__}"
    if cli.parse_flags(fv, argv, usage) is None:
        return 0
    try:
        summary = write_dataset(
            fv.out,
            classes=fv.classes,
            clips_per_class=fv.clips_per_class,
            seed=fv.seed,
            width=fv.width,
            height=fv.height,
            fps=fv.fps,
            seconds=fv.seconds,
            duration_jitter=fv.duration_jitter,
            codec=fv.codec,
            test_fraction=fv.test_fraction,
            jitter_fraction=fv.jitter_fraction,
        )
    except OSError as e:  # not a traceback: the folder is read-only, or the disk full
        raise cli.Failure(f"--out {fv.out}: cannot write {e.filename or ''}: {e.strerror}") from e
    print(format_dataset_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
