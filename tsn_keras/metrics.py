"""Video-level metrics: top-k accuracy, mean class accuracy, confusion matrix.

UCF101 / HMDB51 results are reported as mean class accuracy over the test split: the mean of the
per-class recalls, so a large class counts no more than a small one. The pictures of these
numbers are drawn by `tsn_keras.visualize`.
"""

import numpy as np


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [videos, classes]. Received: shape={scores.shape}")
    if labels.shape != (scores.shape[0],):
        raise ValueError(
            f"labels must be [videos] = [{scores.shape[0]}]. Received: shape={labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= scores.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {scores.shape[1]}). "
            f"Received: min={labels.min()}, max={labels.max()}"
        )
    return scores, labels.astype(np.int64)


def top_k_accuracy(scores: np.ndarray, labels: np.ndarray, k: int = 1) -> float:
    """Fraction of videos whose label is among the k highest scores (ties broken by index)."""
    scores, labels = _check(scores, labels)
    k = min(k, scores.shape[1])
    # Stable sort on the negated scores: among equal scores the lower class index ranks first.
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # [V, k]
    return float(np.mean(np.any(top == labels[:, None], axis=1)))


def confusion_matrix(predictions: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """int64 [num_classes, num_classes]: row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(labels, np.int64), np.asarray(predictions, np.int64)), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Recall of each class from a confusion matrix; NaN for a class with no test video."""
    counts = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, np.diag(cm) / np.maximum(counts, 1), np.nan)


def summarize(scores: np.ndarray, labels: np.ndarray) -> dict:
    """All the metrics evaluate and fuse report, for scores [V, C] and labels [V].

    Returns a dict with top1, top5, mean_class_accuracy (over classes that have test videos),
    per_class_accuracy [C] and confusion_matrix [C, C].
    """
    scores, labels = _check(scores, labels)
    cm = confusion_matrix(np.argmax(scores, axis=1), labels, scores.shape[1])
    per_class = per_class_accuracy(cm)
    return {
        "num_videos": int(labels.size),
        "top1": top_k_accuracy(scores, labels, 1),
        "top5": top_k_accuracy(scores, labels, 5),
        "mean_class_accuracy": float(np.nanmean(per_class)) if labels.size else float("nan"),
        "per_class_accuracy": per_class,
        "confusion_matrix": cm,
    }


def format_table(rows: list[tuple[str, dict]]) -> str:
    """A plain-text table of top-1, top-5 and mean class accuracy, one row per (name, summary)."""
    lines = [f"{'stream':<24} {'videos':>6} {'top-1':>7} {'top-5':>7} {'mean class':>10}"]
    for name, s in rows:
        lines.append(
            f"{name:<24} {s['num_videos']:>6d} {100 * s['top1']:>6.2f}% {100 * s['top5']:>6.2f}% "
            f"{100 * s['mean_class_accuracy']:>9.2f}%"
        )
    return "\n".join(lines)
