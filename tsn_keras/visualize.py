"""Pictures people read: the confusion matrix, per-class accuracy bars, input snippets.

Every function returns a uint8 RGB image [H, W, 3] (for PNG files via `write_png`, and for
`tf.summary.image`), drawn with OpenCV: no plotting library is needed.

- `confusion_image`: row-normalised confusion matrix with a title, axis labels, class names
  on both axes while they fit (up to ~100 classes at 8 px a cell; beyond that, ticks every
  10th class), a colour bar, and beside it the list of the most frequent confusions by name.
- `per_class_bars`: per-class accuracy as horizontal bars, worst class first, with the mean.
- `score_timeline`: class scores over time (`predict --timeline`): a curve per plotted class,
  a strip of the top class, time ticks and a legend.
- `input_grid`: a batch of input snippets [B, K, S, S, C] as a grid (row = clip, column =
  snippet). RGB shows the frame; flow shows the first x/y field colour-coded (hue = direction,
  brightness = magnitude) beside its x and y channels; rgbdiff shows the first frame beside
  the amplified difference of the next one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from tsn_keras import modalities

FONT = cv2.FONT_HERSHEY_SIMPLEX
BLACK = (0, 0, 0)
GREY = (110, 110, 110)
NAME_CHARS = 28  # class names are cut to this many characters


def _text_size(text: str, scale: float) -> tuple[int, int]:
    (w, h), base = cv2.getTextSize(text, FONT, scale, 1)
    return w, h + base


def _put(image, text, x, y, scale, color=BLACK):
    """Draws `text` with its top-left corner at (x, y)."""
    _, h = _text_size(text, scale)
    cv2.putText(image, text, (int(x), int(y + h * 0.75)), FONT, scale, color, 1, cv2.LINE_AA)


def _vertical_text(text: str, scale: float, height: int) -> np.ndarray:
    """Text rotated to read bottom to top, right-aligned to the bottom: [height, h, 3]."""
    w, h = _text_size(text, scale)
    strip = np.full((h, max(height, w), 3), 255, np.uint8)
    _put(strip, text, max(height, w) - w, 0, scale)
    return cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)[-height:]


def _viridis(values: np.ndarray) -> np.ndarray:
    """values in [0, 1] -> RGB uint8 [..., 3] (OpenCV's viridis map)."""
    v = np.clip(np.nan_to_num(values), 0, 1)
    bgr = cv2.applyColorMap((v * 255).astype(np.uint8).reshape(-1, 1), cv2.COLORMAP_VIRIDIS)
    return bgr.reshape(*v.shape, 3)[..., ::-1]


def normalize_rows(cm: np.ndarray) -> np.ndarray:
    """Each true class's row as fractions of its videos (0 for a class with none)."""
    cm = np.asarray(cm, np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    return np.where(rows > 0, cm / np.maximum(rows, 1), 0.0)


def top_confusions(cm: np.ndarray, class_names: Sequence[str], k: int = 20) -> list[dict]:
    """The k largest off-diagonal cells by share of the true class's videos.

    Returns dicts {"true", "predicted", "fraction", "count", "total"}, largest first (ties:
    more videos first, then class order).
    """
    cm = np.asarray(cm)
    norm = normalize_rows(cm)
    off = [(i, j) for i, j in zip(*np.nonzero(cm), strict=True) if i != j]
    off.sort(key=lambda ij: (-norm[ij], -cm[ij], ij))
    return [
        {
            "true": class_names[i],
            "predicted": class_names[j],
            "fraction": float(norm[i, j]),
            "count": int(cm[i, j]),
            "total": int(cm[i].sum()),
        }
        for i, j in off[:k]
    ]


def confusion_image(
    cm: np.ndarray,
    class_names: Sequence[str],
    title: str = "Confusion matrix",
    max_size: int = 1200,
    pairs: int = 25,
) -> np.ndarray:
    """The confusion matrix (rows true, columns predicted) as an RGB picture.

    Args:
      cm: int [C, C] counts, row = true class.
      class_names: C names.
      title: the heading; the number of videos and classes is added.
      max_size: the matrix's side in pixels at most (cells are 2-24 px).
      pairs: how many top confusions to list beside it.
    """
    cm = np.asarray(cm)
    n = cm.shape[0]
    if cm.shape != (n, n) or len(class_names) != n:
        raise ValueError(
            f"cm must be [C, C] with C = len(class_names) = {len(class_names)}. "
            f"Received: shape={cm.shape}"
        )
    norm = normalize_rows(cm)
    cell = int(np.clip(max_size // max(n, 1), 2, 24))
    side = cell * n
    named = cell >= 8  # names on the axes; else ticks every 10th class
    scale = 0.35
    if named:  # the largest font whose line fits in a cell
        scale = max(
            [s for s in (0.25, 0.28, 0.3, 0.33, 0.36, 0.4, 0.45) if _text_size("Ag", s)[1] <= cell]
            or [0.25]
        )
    names = [str(c)[:NAME_CHARS] for c in class_names]
    labels = names if named else [str(i) if i % 10 == 0 else "" for i in range(n)]
    label_w = max(_text_size(t, scale)[0] for t in labels + ["0"]) + 6
    _, axis_h = _text_size("predicted class", 0.5)
    title_h = 40
    top = title_h + axis_h + 6 + label_w  # title, axis label, column labels
    left = axis_h + 8 + label_w
    bar_w, bar_gap = 16, 20
    bar_x = left + side + bar_gap
    list_x = bar_x + bar_w + 50
    confusions = top_confusions(cm, class_names, pairs)
    lines = ["most confused (true -> predicted: share of true):"] + [
        f"{100 * c['fraction']:5.1f}%  {c['true'][:NAME_CHARS]} -> {c['predicted'][:NAME_CHARS]}"
        f"  ({c['count']}/{c['total']})"
        for c in confusions
    ]
    if not confusions:
        lines.append("none: every video on the diagonal")
    line_h = 18
    list_w = max(_text_size(t, 0.4)[0] for t in lines) + 10
    width = list_x + list_w
    height = max(top + side + 10, top + line_h * len(lines) + 10)
    image = np.full((height, width, 3), 255, np.uint8)

    videos = int(cm.sum())
    diag = float(np.trace(cm)) / max(videos, 1)
    _put(image, title, 10, 6, 0.6)
    _put(
        image,
        f"{videos} videos, {n} classes; rows normalised per true class; top-1 {100 * diag:.1f}%",
        10,
        24,
        0.4,
        GREY,
    )
    # The matrix.
    heat = _viridis(norm)
    image[top : top + side, left : left + side] = np.repeat(np.repeat(heat, cell, 0), cell, 1)
    if cell >= 24:  # counts fit in the cells
        for i, j in zip(*np.nonzero(cm), strict=True):
            color = BLACK if norm[i, j] > 0.5 else (255, 255, 255)
            _put(image, str(cm[i, j]), left + j * cell + 2, top + i * cell + 5, 0.35, color)
    _class_labels(image, labels, scale, left, top, cell, label_w)
    # Axis labels.
    w, _ = _text_size("predicted class", 0.5)
    _put(image, "predicted class", left + (side - w) / 2, title_h, 0.5)
    axis = _vertical_text("true class", 0.5, min(side, 200))
    y = top + max((side - axis.shape[0]) // 2, 0)
    image[y : y + axis.shape[0], 4 : 4 + axis.shape[1]] = axis
    _colour_bar(image, bar_x, bar_w, top, side)
    # The list of top confusions.
    for k, text in enumerate(lines):
        _put(image, text, list_x, top + k * line_h, 0.4, BLACK if k else GREY)
    return image


def _class_labels(image, labels, scale, left: int, top: int, cell: int, label_w: int) -> None:
    """Class names beside the matrix rows (true) and above its columns (predicted)."""
    width = image.shape[1]
    # Row labels (true classes), right-aligned against the matrix.
    for i, text in enumerate(labels):
        if text:
            w, h = _text_size(text, scale)
            _put(image, text, left - 4 - w, top + i * cell + (cell - h) / 2, scale)
    # Column labels (predicted classes), vertical, ending at the matrix.
    for j, text in enumerate(labels):
        if text:
            strip = _vertical_text(text, scale, label_w - 4)  # [label_w - 4, h, 3]
            sw = strip.shape[1]
            x = left + j * cell + (cell - sw) // 2
            x0, x1 = max(x, 0), min(x + sw, width)
            image[top - label_w : top - 4, x0:x1] = np.minimum(
                image[top - label_w : top - 4, x0:x1], strip[:, x0 - x : x1 - x]
            )


def _colour_bar(image, bar_x: int, bar_w: int, top: int, side: int) -> None:
    """The 0..1 colour scale beside the matrix, with ticks."""
    # Colour bar 0..1 with ticks.
    ramp = _viridis(np.linspace(1, 0, side))[:, None]  # [side, 1, 3], 1 at the top
    image[top : top + side, bar_x : bar_x + bar_w] = np.repeat(ramp, bar_w, 1)
    for value in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = top + int(round((1 - value) * (side - 1)))
        cv2.line(image, (bar_x + bar_w, y), (bar_x + bar_w + 4, y), BLACK, 1)
        _put(image, f"{value:.2f}", bar_x + bar_w + 6, y - 6, 0.35)


def per_class_bars(
    accuracy: np.ndarray, class_names: Sequence[str], title: str = "Per-class accuracy"
) -> np.ndarray:
    """Per-class accuracy as horizontal bars, worst first; NaN (no test video) last as n/a."""
    accuracy = np.asarray(accuracy, np.float64)
    n = len(class_names)
    if accuracy.shape != (n,):
        raise ValueError(f"accuracy must be [{n}] (one per class). Received: {accuracy.shape}")
    order = sorted(range(n), key=lambda i: (np.isnan(accuracy[i]), accuracy[i], i))
    row, scale, bar_len = 14, 0.38, 400
    names = [str(class_names[i])[:NAME_CHARS] for i in order]
    name_w = max(_text_size(t, scale)[0] for t in names) + 10
    top = 50
    width = name_w + bar_len + 70
    height = top + row * n + 24
    image = np.full((height, width, 3), 255, np.uint8)
    mean = float(np.nanmean(accuracy)) if np.any(~np.isnan(accuracy)) else float("nan")
    _put(image, title, 10, 6, 0.6)
    _put(
        image, f"{n} classes, worst first; mean class accuracy {100 * mean:.1f}%", 10, 26, 0.4, GREY
    )
    for k, (i, name) in enumerate(zip(order, names, strict=True)):
        y = top + k * row
        w, _ = _text_size(name, scale)
        _put(image, name, name_w - 6 - w, y, scale)
        if np.isnan(accuracy[i]):
            _put(image, "n/a", name_w + 4, y, scale, GREY)
            continue
        length = int(round(accuracy[i] * bar_len))
        color = tuple(int(c) for c in _viridis(np.array(accuracy[i])))
        cv2.rectangle(image, (name_w, y + 2), (name_w + length, y + row - 3), color, -1)
        _put(image, f"{100 * accuracy[i]:.0f}%", name_w + length + 4, y, scale)
    if not np.isnan(mean):
        x = name_w + int(round(mean * bar_len))
        cv2.line(image, (x, top - 4), (x, top + row * n), (200, 0, 0), 1)
        _put(image, "mean", x - 14, top + row * n + 4, 0.35, (200, 0, 0))
    cv2.line(image, (name_w, top - 4), (name_w, top + row * n), BLACK, 1)
    return image


def flow_to_rgb(dx: np.ndarray, dy: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """A flow field as colour: hue = direction, brightness = magnitude: uint8 RGB [H, W, 3].

    dx, dy are displacements (any unit; raw encoded flow minus 128 works). Hue follows the
    angle of (dx, dy) in image coordinates (x right, y down): right is red, down is
    yellow-green, left is cyan, up is violet. Brightness is magnitude / max_magnitude (default
    the field's largest), so zero motion is black.
    """
    dx = np.asarray(dx, np.float32)
    dy = np.asarray(dy, np.float32)
    magnitude, angle = cv2.cartToPolar(dx, dy, angleInDegrees=True)
    top = float(max_magnitude) if max_magnitude else float(magnitude.max())
    hsv = np.empty(dx.shape + (3,), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8) % 180  # OpenCV hue is 0-179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / max(top, 1e-6) * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def _snippet_tiles(snippet: np.ndarray, modality: str) -> list[np.ndarray]:
    """One snippet [S, S, C] as RGB tiles: rgb 1, flow 3 (colour, x, y), rgbdiff 2."""
    if modalities.is_flow(modality):  # ValueError naming it for an unknown modality
        x = snippet[..., 0]
        y = snippet[..., 1]
        colour = flow_to_rgb(x.astype(np.float32) - 128, y.astype(np.float32) - 128, 128)
        return [colour, np.repeat(x[..., None], 3, -1), np.repeat(y[..., None], 3, -1)]
    if modality == "rgbdiff":
        first = snippet[..., :3]
        diff = np.abs(snippet[..., 3:6].astype(np.int16) - first.astype(np.int16))
        return [first, np.clip(diff * 4, 0, 255).astype(np.uint8)]  # x4: differences are small
    return [snippet[..., :3]]  # rgb


def input_grid(clips: np.ndarray, modality: str, max_clips: int = 8, gap: int = 2) -> np.ndarray:
    """A batch of raw uint8 input snippets as one RGB picture (row = clip, column = snippet).

    Args:
      clips: uint8 [B, K, S, S, C], raw 0-255 values as the input pipeline yields them (RGB
        order; flow x1, y1, x2, y2, ...; rgbdiff L+1 RGB frames).
      modality: "rgb", "flow", "warped_flow" or "rgbdiff".
      max_clips: rows shown at most.
      gap: white pixels between snippets (tiles of one snippet touch).

    Returns:
      uint8 [rows * (S + gap) - gap, K * (tiles * S + gap) - gap, 3], tiles being 1 for rgb,
      3 for flow (colour-coded field 1, its x, its y) and 2 for rgbdiff.
    """
    clips = np.asarray(clips)
    if clips.ndim != 5 or clips.shape[0] == 0 or clips.shape[1] == 0:
        raise ValueError(f"clips must be uint8 [B, K, S, S, C], B, K > 0. Received: {clips.shape}")
    clips = clips[:max_clips]
    rows = []
    for clip in clips:
        snippets = [np.concatenate(_snippet_tiles(s, modality), axis=1) for s in clip]
        rows.append(_join(snippets, axis=1, gap=gap))
    return _join(rows, axis=0, gap=gap)


def _join(images: list[np.ndarray], axis: int, gap: int) -> np.ndarray:
    shape = list(images[0].shape)
    shape[axis] = gap
    spacer = np.full(shape, 255, np.uint8)
    parts = []
    for k, image in enumerate(images):
        parts += [spacer, image] if k else [image]
    return np.concatenate(parts, axis=axis)


# Distinct RGB line colours (Tableau 10), one per plotted class.
LINE_COLOURS = (
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
)  # fmt: skip


def score_timeline(
    title: str,
    classes: Sequence[str],
    probs: np.ndarray,
    centres: np.ndarray,
    segments: Sequence[tuple[float, float, int]],
    duration: float,
    shown: Sequence[int],
    width: int = 960,
) -> np.ndarray:
    """Scores over time as an RGB uint8 image.

    Args:
      title: the line on top.
      classes: class names, index order.
      probs: [windows, classes] scores.
      centres: [windows] the time (s) each window's scores are drawn at.
      segments: (begin s, end s, class index) runs of the top class, drawn as a strip under
        the plot (grey: a class not in `shown`).
      duration: seconds the time axis spans.
      shown: the classes that get a curve and a legend row, in legend order.
      width: image width in pixels.

    Returns:
      uint8 [H, width, 3]; the score axis ends at the next quarter above the highest score.
    """
    colour_of = {c: LINE_COLOURS[rank % len(LINE_COLOURS)] for rank, c in enumerate(shown)}
    other = (190, 190, 190)
    has_other = any(c not in colour_of for _, _, c in segments)
    left, right, top, plot_h, strip_h = 60, 20, 34, 240, 14
    y1 = top + plot_h  # bottom of the plot
    legend_top = y1 + strip_h + 50
    height = legend_top + 22 * (len(shown) + has_other) + 4
    image = np.full((height, width, 3), 255, np.uint8)
    x0, x1, y0 = left, width - right, top
    y_max = min(1.0, max(0.25, math.ceil(float(probs[:, list(shown)].max()) * 4) / 4))

    def to_x(seconds: float) -> int:
        return int(round(x0 + (x1 - x0) * seconds / max(duration, 1e-9)))

    grid = (215, 215, 215)
    cv2.putText(image, title, (x0, 20), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    for q in range(5):  # horizontal grid and score labels
        score = y_max * q / 4
        y = int(round(y1 - plot_h * q / 4))
        cv2.line(image, (x0, y), (x1, y), grid, 1)
        cv2.putText(image, f"{score:g}", (8, y + 4), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
    for t in np.arange(0.0, duration + 1e-9, _tick_step(duration)):  # time ticks
        x = to_x(float(t))
        cv2.line(image, (x, y1 + strip_h + 2), (x, y1 + strip_h + 6), BLACK, 1)
        label = clock(float(t))
        (w, _), _ = cv2.getTextSize(label, FONT, 0.4, 1)
        cv2.putText(image, label, (x - w // 2, y1 + strip_h + 20), FONT, 0.4, BLACK, 1,
                    cv2.LINE_AA)  # fmt: skip
    cv2.rectangle(image, (x0, y0), (x1, y1), BLACK, 1)
    for begin, end, c in segments:  # the strip of top classes
        colour = colour_of.get(c, other)
        cv2.rectangle(image, (to_x(begin), y1 + 2), (to_x(end), y1 + strip_h), colour, -1)
    xs = np.array([to_x(float(t)) for t in centres], np.float64)
    labels = [classes[k] for k in shown] + (["other classes"] if has_other else [])
    colours = [colour_of[k] for k in shown] + ([other] if has_other else [])
    for rank, (label, colour) in enumerate(zip(labels, colours, strict=True)):
        if rank < len(shown):
            ys = y1 - plot_h * np.minimum(probs[:, shown[rank]] / y_max, 1.0)
            points = np.round(np.stack([xs, ys], axis=1)).astype(np.int32)  # [windows, 2]
            cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
        y = legend_top + 22 * rank
        cv2.rectangle(image, (x0, y - 10), (x0 + 24, y + 2), colour, -1)
        cv2.putText(image, label, (x0 + 32, y), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    return image


def _tick_step(duration: float) -> float:
    """A round time step giving 4-10 ticks."""
    for step in (0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if duration / step <= 10:
            return float(step)
    return 7200.0


def clock(seconds: float) -> str:
    """A time for people: 1:02:03, 4:05 or 6.5s."""
    whole = int(seconds)
    if whole >= 3600:
        return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    if whole >= 60:
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{seconds:g}s"


def write_png(path: str, image: np.ndarray) -> str:
    """Writes an RGB image as PNG; returns path."""
    if not cv2.imwrite(path, cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    return path
