"""Helpers shared by the tests: small generated records folders.

pytest puts tests/ on sys.path (rootdir-relative imports), so tests import these as
`from helpers import ...`.
"""

import numpy as np

from tsn_keras import records, synthetic

CLASSES = ("Alpha", "Beta", "Gamma")


def write_records(
    out_dir: str,
    num_train: int = 6,
    num_test: int = 3,
    num_snippets: int = 5,
    snippet_length: int = 2,
    height: int = 40,
    width: int = 48,
    shards: int = 2,
    modalities=("rgb", "flow"),
    seed: int = 0,
    combined: bool = False,
) -> str:
    """Writes a records folder (shards + manifest.json) of random-frame videos.

    Frames are random with a class-dependent mean, so labels are learnable; flow is random.
    Layout as the converter writes it: one file per shard and modality; `combined=True` writes
    the older layout, one file per shard holding every modality. Returns out_dir.
    """
    rng = np.random.default_rng(seed)
    sets = {}
    for subset, count in (("train", num_train), ("test", num_test)):
        sets[subset] = []
        for i in range(count):
            label = i % len(CLASSES)
            info = records.ClipInfo(
                video_id=f"{CLASSES[label]}/v_{subset}_{i:03d}.avi",
                label=label,
                label_text=CLASSES[label],
                num_frames=num_snippets * 4,
                fps=25.0,
                original_height=height * 2,
                original_width=width * 2,
                height=height,
                width=width,
                snippet_length=snippet_length,
                frame_indices=tuple(range(0, num_snippets * 4, 4)),
                flow_algorithm="dis" if "flow" in modalities else "",
            )

            def jpeg(channels, label=label):
                base = 40 + 80 * label
                shape = (height, width, channels) if channels == 3 else (height, width)
                pixels = rng.integers(base - 40, base + 40, shape).astype(np.uint8)
                return records.encode_jpeg(pixels)

            encoded = {}
            if "rgb" in modalities:
                encoded["rgb"] = [jpeg(3) for _ in range(num_snippets)]
            if "rgbdiff" in modalities:
                encoded["rgbdiff"] = [
                    [jpeg(3) for _ in range(snippet_length + 1)] for _ in range(num_snippets)
                ]
            if "flow" in modalities:
                for axis in ("flow_x", "flow_y"):
                    encoded[axis] = [
                        [jpeg(1) for _ in range(snippet_length)] for _ in range(num_snippets)
                    ]
            sets[subset].append((info, encoded))
    return synthetic.write_records(
        out_dir, sets, list(CLASSES), tuple(modalities), shards, combined,
        snippets=num_snippets, snippet_length=snippet_length,
        flow={"algorithm": "dis", "bound": 20.0}, height=height, width=width,
    )  # fmt: skip
