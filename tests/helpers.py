"""Helpers shared by the tests: small generated records folders, index-first mp4 files.

pytest puts tests/ on sys.path (rootdir-relative imports), so tests import these as
`from helpers import ...`.
"""

import struct

import numpy as np

from tsn_keras import records, synthetic, video

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


# Index-first mp4 files (as phones and web encoders write them), for truncation tests.

_CONTAINER_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _boxes(data, start, end):
    """(type, offset, size) of the MP4 boxes in data[start:end] (32-bit sizes, as OpenCV writes)."""
    i = start
    while i + 8 <= end:
        size, kind = struct.unpack(">I4s", data[i : i + 8])
        assert size >= 8, "64-bit or open-ended box sizes are not handled here"
        yield kind, i, size
        i += size


def _shift_chunk_offsets(moov, start, end, delta):
    """Adds delta to every chunk offset (stco / co64) inside moov[start:end], in place."""
    for kind, i, size in _boxes(moov, start, end):
        if kind in _CONTAINER_BOXES:
            _shift_chunk_offsets(moov, i + 8, i + size, delta)
        elif kind in (b"stco", b"co64"):
            fmt = ">I" if kind == b"stco" else ">Q"
            width = struct.calcsize(fmt)
            (count,) = struct.unpack(">I", moov[i + 12 : i + 16])
            for k in range(count):
                p = i + 16 + k * width
                (offset,) = struct.unpack(fmt, moov[p : p + width])
                moov[p : p + width] = struct.pack(fmt, offset + delta)


def write_index_first_mp4(path, num_frames=41, height=48, width=64, seed=0):
    """An .mp4 (MPEG-4 Part 2) with its index (moov box) before the frames, as phones write.

    OpenCV writes the moov box last (cutting such a file loses the index: it does not open);
    moving it in front of the frame data (mdat), with the chunk offsets shifted by its size, is
    what `ffmpeg -movflags faststart` does. A cut copy of this file opens, declares every
    frame and decodes only those its bytes hold. Noise frames: every frame costs about the
    same bytes, so a cut at fraction x keeps about x of the frames.
    """
    rng = np.random.default_rng(seed)
    frames = (rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(num_frames))
    video.write_video(str(path), frames, fps=25.0, fourcc="mp4v")
    data = open(path, "rb").read()
    top = {kind: (i, size) for kind, i, size in _boxes(data, 0, len(data))}
    (moov_at, moov_size), (mdat_at, _) = top[b"moov"], top[b"mdat"]
    assert moov_at > mdat_at, "OpenCV wrote the index first already"
    moov = bytearray(data[moov_at : moov_at + moov_size])
    _shift_chunk_offsets(moov, 8, len(moov), moov_size)
    rest = data[mdat_at:moov_at] + data[moov_at + moov_size :]
    with open(path, "wb") as f:
        f.write(data[:mdat_at] + bytes(moov) + rest)
    return str(path)


def cut_file(src, dst, fraction):
    """Copies the first `fraction` of src's bytes to dst (a truncated download)."""
    data = open(src, "rb").read()
    with open(dst, "wb") as f:
        f.write(data[: int(len(data) * fraction)])
    return str(dst)
