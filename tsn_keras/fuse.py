"""`python -m tsn_keras.fuse`: fuse the saved video scores of several streams.

    python -m tsn_keras.fuse --scores runs/rgb/scores.npz runs/flow/scores.npz --weights 1 1.5

Each stream's scores (logits averaged over crops and snippets, as written by
`python -m tsn_keras.evaluate --scores_out`) become probabilities with a softmax, are weighted
and summed, as TSN's `eval_scores.py` does. The videos of all files must be the same set; the
order may differ. Prints top-1, top-5 and mean class accuracy per stream and for the fusion.
"""

import json
import os
import sys
from collections.abc import Sequence

import numpy as np
from absl import flags

from tsn_keras import cli, metrics

# Default weights: RGB:flow = 1:1.5 (the paper); with warped flow 1:1:0.5 (the TSN repo's).
DEFAULT_WEIGHTS = {1: [1.0], 2: [1.0, 1.5], 3: [1.0, 1.0, 0.5]}


def save_scores(
    path: str,
    video_ids: Sequence[str],
    labels: np.ndarray,
    scores: np.ndarray,
    class_names: Sequence[str],
    modality: str = "",
) -> None:
    """Writes one stream's video scores to `path` (.npz): the format evaluate and fuse share."""
    scores = np.asarray(scores, np.float32)
    if scores.shape != (len(video_ids), len(class_names)):
        raise ValueError(
            f"scores must be [videos, classes] = [{len(video_ids)}, {len(class_names)}]. "
            f"Received: shape={scores.shape}"
        )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(
        path,
        video_ids=np.asarray(video_ids, dtype=str),
        labels=np.asarray(labels, np.int64),
        scores=scores,
        class_names=np.asarray(class_names, dtype=str),
        modality=np.asarray(modality),
    )


def load_scores(path: str) -> dict:
    """Reads a scores .npz; errors name the file and the missing key."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such scores file (write one with tsn_keras.evaluate)")
    with np.load(path, allow_pickle=False) as data:
        missing = {"video_ids", "labels", "scores", "class_names"} - set(data.files)
        if missing:
            raise ValueError(f"{path}: not a scores file, missing {sorted(missing)}")
        return {
            "path": path,
            "video_ids": data["video_ids"].astype(str),
            "labels": data["labels"].astype(np.int64),
            "scores": data["scores"].astype(np.float64),
            "class_names": [str(c) for c in data["class_names"]],
            "modality": str(data["modality"]) if "modality" in data.files else "",
        }


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def align(streams: list[dict]) -> list[dict]:
    """Puts every stream's videos in the first stream's order; checks they are the same videos.

    Raises:
      ValueError: the class names differ, a video is missing from a stream (named), a video
        appears twice, or a video's label differs between streams.
    """
    ref = streams[0]
    order = {v: i for i, v in enumerate(ref["video_ids"])}
    if len(order) != len(ref["video_ids"]):
        raise ValueError(f"{ref['path']}: a video id appears more than once")
    out = [ref]
    for s in streams[1:]:
        if s["class_names"] != ref["class_names"]:
            raise ValueError(f"{s['path']}: class names differ from {ref['path']}'s")
        ids = list(s["video_ids"])
        only_here = sorted(set(ids) - set(order))
        only_ref = sorted(set(order) - set(ids))
        if only_here or only_ref or len(ids) != len(order):
            raise ValueError(
                f"{s['path']} and {ref['path']} hold different videos: "
                f"{len(only_ref)} only in the first (e.g. {only_ref[:3]}), "
                f"{len(only_here)} only in the second (e.g. {only_here[:3]})"
            )
        perm = np.argsort([order[v] for v in ids])  # position in s of each reference video
        aligned = dict(s, video_ids=s["video_ids"][perm], labels=s["labels"][perm])
        aligned["scores"] = s["scores"][perm]
        bad = np.nonzero(aligned["labels"] != ref["labels"])[0]
        if bad.size:
            raise ValueError(
                f"{s['path']}: label of video {ref['video_ids'][bad[0]]} differs from "
                f"{ref['path']} ({aligned['labels'][bad[0]]} vs {ref['labels'][bad[0]]})"
            )
        out.append(aligned)
    return out


def fuse(streams: list[dict], weights: Sequence[float], normalize: bool = True) -> np.ndarray:
    """Weighted sum of the aligned streams' softmax probabilities (or raw scores): [V, C]."""
    if len(weights) != len(streams):
        raise ValueError(
            f"one weight per scores file is needed. Received: {len(weights)} weights for "
            f"{len(streams)} files"
        )
    total = 0.0
    for s, w in zip(streams, weights, strict=True):
        total = total + w * (softmax(s["scores"]) if normalize else s["scores"])
    return total


def fuse_files(
    paths: Sequence[str], weights: Sequence[float] | None = None, normalize: bool = True
) -> tuple[list[tuple[str, dict]], np.ndarray, dict]:
    """Loads, aligns and fuses; returns (table rows per stream + fusion, fused scores, ref)."""
    if not paths:
        raise ValueError("--scores: at least one scores file is needed")
    if weights is None:
        if len(paths) not in DEFAULT_WEIGHTS:
            raise ValueError(f"--weights: no default for {len(paths)} streams; pass one each")
        weights = DEFAULT_WEIGHTS[len(paths)]
    streams = align([load_scores(p) for p in paths])
    rows = []
    for s in streams:
        name = s["modality"] or os.path.basename(s["path"])
        rows.append((name, metrics.summarize(s["scores"], s["labels"])))
    fused = fuse(streams, weights, normalize)
    label = "fused " + ":".join(f"{w:g}" for w in weights)
    rows.append((label, metrics.summarize(fused, streams[0]["labels"])))
    return rows, fused, streams[0]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (0 ok, 2 bad flags or files)."""
    return cli.run(_main, argv, usage_errors=(ValueError, FileNotFoundError))


def _main(argv: list[str]) -> int:
    # The flags live on a private FlagValues so that importing this module (evaluate does, for
    # save_scores) defines no global flags.
    fv = flags.FlagValues()
    flags.DEFINE_list("scores", None, "Scores .npz files (from evaluate).", flag_values=fv)
    flags.DEFINE_list(
        "weights",
        None,
        "One per scores file; default 1 1.5 (two), 1 1 0.5 (three).",
        flag_values=fv,
    )
    flags.DEFINE_bool("raw_scores", False, "Fuse raw scores, not softmax.", flag_values=fv)
    flags.DEFINE_string(
        "out", None, "Optional: write the fused scores (.npz) here.", flag_values=fv
    )
    flags.DEFINE_string("json", None, "Optional: write the table as JSON here.", flag_values=fv)
    if cli.parse_flags(fv, argv, __doc__) is None:
        return 0
    if not fv.scores:
        raise flags.Error("--scores is required: two or more .npz files from evaluate")
    weights = cli.float_list(fv.weights, "weights")
    rows, fused, ref = fuse_files(fv.scores, weights, normalize=not fv.raw_scores)
    print(metrics.format_table(rows))
    if fv.out:
        save_scores(fv.out, ref["video_ids"], ref["labels"], fused, ref["class_names"], "fused")
    if fv.json:
        table = {
            name: {k: s[k] for k in ("num_videos", "top1", "top5", "mean_class_accuracy")}
            for name, s in rows
        }
        with open(fv.json, "w") as f:
            json.dump(table, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
