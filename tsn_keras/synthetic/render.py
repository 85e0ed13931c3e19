"""The synthetic clips: the appearance x motion class grid and the renderer.

The rules the pixels follow (isoluminant colours, motion only in direction, the background,
the noise, the camera jitter) are in the package docstring, `tsn_keras.synthetic`. The pixels of
a clip are a contract: the same seed gives the same frames (tests/test_synthetic.py).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

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

_OBJECT_LUMA = 150.0  # luma of the blob's colour before texture shading, 0-255
_OBJECT_CHROMA = 55.0  # radius in the CbCr plane; keeps every channel inside 0-255
_OBJECT_RADIUS = 0.16  # blob radius as a fraction of min(width, height)
_SPEED_RANGE = (0.014, 0.028)  # frame widths per frame (0.35-0.7 widths/s at 25 fps)
_DRIFT = 0.15  # perpendicular drift, up to this fraction of the speed
_NOISE_SIGMA = 6.0  # per-frame noise, 0-255 scale
_NOISE_SCALE = _NOISE_SIGMA * math.sqrt(12.0)  # width of a uniform with that deviation
_JITTER = 0.02  # camera jitter amplitude as a fraction of the width (at least 1 px)


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
