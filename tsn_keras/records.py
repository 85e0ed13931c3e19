"""THE TFRecord schema: one `tf.train.SequenceExample` per video (writer and reader).

Nothing else in the project names a feature key. (Over 500 lines on purpose: the writer, the
reader, the manifest and the shard-file framing of one format stay in one file, so a change
to a key or a layout is made, and reviewed, in one place.) Keys follow TF Model Garden /
MediaSequence where they fit (`clip/label/index`, `image/encoded`).

Context (one value per video unless noted):

| key | type | meaning |
|---|---|---|
| `clip/media_id` | bytes | video id (relative path with '/', `splits.video_id`) |
| `clip/label/index` | int64 | 0-based class index |
| `clip/label/string` | bytes | class name |
| `clip/frames` | int64 | frames that decoded (not the container's count) |
| `clip/frame_rate` | float | frames per second reported by the container (0 if unknown) |
| `clip/original/height`, `clip/original/width` | int64 | decoded frame size before resizing |
| `image/height`, `image/width` | int64 | stored frame size (all JPEGs) |
| `image/jpeg_quality` | int64 | JPEG quality used |
| `snippet/length` | int64 | L, consecutive frames per flow / rgbdiff snippet |
| `snippet/start_index` | int64 [N] | start frame of each of the N snippets |
| `flow/algorithm` | bytes | `tvl1`, `dis`, `farneback`, or empty when no flow is stored |
| `flow/bound` | float | flow clip bound in pixels (encoding: see `tsn_keras.flow`) |

Feature lists, one entry per snippet (N entries), only for the modalities stored:

| key | entry | modality |
|---|---|---|
| `image/encoded` | 1 RGB JPEG (frame at the start index) | rgb |
| `rgbdiff/image/encoded` | L+1 RGB JPEGs (frames start..start+L, clamped) | rgbdiff |
| `flow/x/encoded`, `flow/y/encoded` | L gray JPEGs each (flow fields start..start+L-1) | flow |
| `warped_flow/x/encoded`, `warped_flow/y/encoded` | same, camera motion removed | warped_flow |

The converter writes each modality to its own shard files (`shard_filename`, `shard_files`):
one example per video and modality, with the full context and that modality's feature lists
only, so a reader of one modality reads none of the others' bytes.

The writer (`serialize_example`) encodes the protobuf wire format directly, so conversion workers
never import TensorFlow (~3 s and ~600 MB per process); `tests/test_records.py` checks that the
bytes parse to the same message `tf.train.SequenceExample` builds. The reader functions import
TensorFlow on first use.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from tsn_keras.modalities import FLOW_MODALITIES, MODALITIES

_UNROLL_DECODES = 64  # decode_snippets: up to this many JPEGs as separate ops, not a loop

# Context keys.
_MEDIA_ID = "clip/media_id"
_LABEL_INDEX = "clip/label/index"
_LABEL_STRING = "clip/label/string"
_NUM_FRAMES = "clip/frames"
_FRAME_RATE = "clip/frame_rate"
_ORIGINAL_HEIGHT = "clip/original/height"
_ORIGINAL_WIDTH = "clip/original/width"
_HEIGHT = "image/height"
_WIDTH = "image/width"
_JPEG_QUALITY = "image/jpeg_quality"
_SNIPPET_LENGTH = "snippet/length"
_SNIPPET_START = "snippet/start_index"
_FLOW_ALGORITHM = "flow/algorithm"
_FLOW_BOUND = "flow/bound"

# Feature-list keys, by the name parse_example gives the parsed tensor.
_SEQUENCE_KEYS = {
    "rgb": "image/encoded",
    "rgbdiff": "rgbdiff/image/encoded",
    "flow_x": "flow/x/encoded",
    "flow_y": "flow/y/encoded",
    "warped_flow_x": "warped_flow/x/encoded",
    "warped_flow_y": "warped_flow/y/encoded",
}
# Parsed tensor names of each modality.
_MODALITY_TENSORS = {
    "rgb": ("rgb",),
    "rgbdiff": ("rgbdiff",),
    "flow": ("flow_x", "flow_y"),
    "warped_flow": ("warped_flow_x", "warped_flow_y"),
}


@dataclass(frozen=True)
class ClipInfo:
    """Context of one video's example (everything but the JPEGs).

    Attributes:
      video_id: relative path with '/' separators (`splits.video_id`).
      label: 0-based class index.
      label_text: class name.
      num_frames: frames that decoded.
      fps: container frame rate (0.0 if unknown).
      original_height: decoded frame height before resizing.
      original_width: decoded frame width before resizing.
      height: stored frame height.
      width: stored frame width.
      snippet_length: L, consecutive frames per flow / rgbdiff snippet.
      frame_indices: start frame of each snippet, N values.
      flow_algorithm: "tvl1", "dis", "farneback", or "" when no flow is stored.
      flow_bound: flow clip bound in pixels.
      jpeg_quality: JPEG quality used (0-100).
    """

    video_id: str
    label: int
    label_text: str
    num_frames: int
    fps: float
    original_height: int
    original_width: int
    height: int
    width: int
    snippet_length: int
    frame_indices: tuple[int, ...]
    flow_algorithm: str = ""
    flow_bound: float = 20.0
    jpeg_quality: int = 90


def check_modalities(modalities: Sequence[str]) -> tuple[str, ...]:
    """Validates modality names; returns them as a tuple without duplicates, order kept."""
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split(",") if m]
    unknown = [m for m in modalities if m not in MODALITIES]
    if unknown or not modalities:
        raise ValueError(
            f"modalities must be a non-empty subset of {list(MODALITIES)}. "
            f"Received: modalities={list(modalities)}"
        )
    return tuple(dict.fromkeys(modalities))


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of a uint8 image: RGB [H, W, 3] or grayscale [H, W] / [H, W, 1]."""
    if image.dtype != np.uint8:
        raise ValueError(f"encode_jpeg needs uint8 pixels. Received: dtype={image.dtype}")
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    elif image.ndim != 2:
        raise ValueError(
            f"encode_jpeg needs [H, W], [H, W, 1] or [H, W, 3]. Received: {image.shape}"
        )
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"OpenCV could not JPEG-encode an image of shape {image.shape}")
    return buf.tobytes()


# ---------------------------------------------------------------------------------------------
# Writer: protobuf wire format of tensorflow/core/example/{example,feature}.proto.
#   SequenceExample { Features context = 1; FeatureLists feature_lists = 2; }
#   Features { map<string, Feature> feature = 1; }   FeatureLists { map<string, FeatureList> = 1 }
#   FeatureList { repeated Feature feature = 1; }
#   Feature { oneof { BytesList bytes_list = 1; FloatList float_list = 2;
#                     Int64List int64_list = 3; } }
#   BytesList { repeated bytes value = 1; }  FloatList/Int64List { repeated value = 1 [packed]; }
# A map entry is a message { key = 1; value = 2; }.


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64 -> two's complement, 10 bytes
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _bytes_feature(values: Sequence[bytes]) -> bytes:
    return _field(1, b"".join(_field(1, v) for v in values))


def _int64_feature(values: Sequence[int]) -> bytes:
    return _field(3, _field(1, b"".join(_varint(int(v)) for v in values)))


def _float_feature(values: Sequence[float]) -> bytes:
    return _field(2, _field(1, struct.pack(f"<{len(values)}f", *values)))


def _map(entries: Mapping[str, bytes]) -> bytes:
    return b"".join(
        _field(1, _field(1, key.encode()) + _field(2, entries[key])) for key in sorted(entries)
    )


def serialize_example(info: ClipInfo, encoded: Mapping[str, Sequence]) -> bytes:
    """Serialized `tf.train.SequenceExample` of one video.

    Args:
      info: the context.
      encoded: JPEG bytes by parsed-tensor name, N = len(info.frame_indices) entries each:
        "rgb": [N] bytes; "rgbdiff": [N][L+1]; "flow_x"/"flow_y" and
        "warped_flow_x"/"warped_flow_y": [N][L]. Only the modalities to store.

    Returns:
      The serialized SequenceExample.

    Raises:
      ValueError: on an unknown key, an x without its y, or a wrong number of JPEGs.
    """
    n = len(info.frame_indices)
    length = info.snippet_length
    inner = {"rgbdiff": length + 1, "flow_x": length, "flow_y": length}
    inner.update(warped_flow_x=length, warped_flow_y=length)
    unknown = sorted(set(encoded) - set(_SEQUENCE_KEYS))
    if unknown:
        raise ValueError(f"unknown snippet keys {unknown}; expected some of {list(_SEQUENCE_KEYS)}")
    for base in FLOW_MODALITIES:
        if (f"{base}_x" in encoded) != (f"{base}_y" in encoded):
            raise ValueError(f"{base}_x and {base}_y must be given together")
    feature_lists = {}
    for name, snippets in encoded.items():
        if len(snippets) != n:
            raise ValueError(
                f"{info.video_id}: '{name}' has {len(snippets)} snippets, frame_indices has {n}"
            )
        if name == "rgb":
            entries = [_bytes_feature([jpeg]) for jpeg in snippets]
        else:
            bad = [len(s) for s in snippets if len(s) != inner[name]]
            if bad:
                raise ValueError(
                    f"{info.video_id}: '{name}' snippets need {inner[name]} JPEGs each "
                    f"(snippet_length={length}). Received: {bad[0]}"
                )
            entries = [_bytes_feature(list(s)) for s in snippets]
        feature_lists[_SEQUENCE_KEYS[name]] = b"".join(_field(1, e) for e in entries)
    context = {
        _MEDIA_ID: _bytes_feature([info.video_id.encode()]),
        _LABEL_INDEX: _int64_feature([info.label]),
        _LABEL_STRING: _bytes_feature([info.label_text.encode()]),
        _NUM_FRAMES: _int64_feature([info.num_frames]),
        _FRAME_RATE: _float_feature([float(info.fps)]),
        _ORIGINAL_HEIGHT: _int64_feature([info.original_height]),
        _ORIGINAL_WIDTH: _int64_feature([info.original_width]),
        _HEIGHT: _int64_feature([info.height]),
        _WIDTH: _int64_feature([info.width]),
        _JPEG_QUALITY: _int64_feature([info.jpeg_quality]),
        _SNIPPET_LENGTH: _int64_feature([info.snippet_length]),
        _SNIPPET_START: _int64_feature(list(info.frame_indices)),
        _FLOW_ALGORITHM: _bytes_feature([info.flow_algorithm.encode()]),
        _FLOW_BOUND: _float_feature([float(info.flow_bound)]),
    }
    return _field(1, _map(context)) + _field(2, _map(feature_lists))


# ---------------------------------------------------------------------------------------------
# Reader.


def parse_example(serialized, modalities: Sequence[str]) -> dict:
    """Parses one serialized SequenceExample (eagerly or inside `tf.data.Dataset.map`).

    Args:
      serialized: tf.string scalar.
      modalities: the modalities to read (subset of MODALITIES); each must be stored.

    Returns:
      dict of tensors: "video_id" string [], "label" int64 [], "label_text" string [],
      "num_snippets" int32 [], "frame_indices" int64 [N], "num_frames" int64 [],
      "fps" float32 [], "height"/"width" int64 [] (stored size), "original_height"/
      "original_width" int64 [], "snippet_length" int64 [], "flow_algorithm" string [],
      "flow_bound" float32 [], "jpeg_quality" int64 [], and per modality: "rgb" string [N],
      "rgbdiff" string [N, L+1], "flow_x"/"flow_y" string [N, L],
      "warped_flow_x"/"warped_flow_y" string [N, L].
    """
    import tensorflow as tf

    modalities = check_modalities(modalities)
    context_features = {
        _MEDIA_ID: tf.io.FixedLenFeature([], tf.string),
        _LABEL_INDEX: tf.io.FixedLenFeature([], tf.int64),
        _LABEL_STRING: tf.io.FixedLenFeature([], tf.string, default_value=""),
        _NUM_FRAMES: tf.io.FixedLenFeature([], tf.int64),
        _FRAME_RATE: tf.io.FixedLenFeature([], tf.float32, default_value=0.0),
        _ORIGINAL_HEIGHT: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        _ORIGINAL_WIDTH: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        _HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        _WIDTH: tf.io.FixedLenFeature([], tf.int64),
        _JPEG_QUALITY: tf.io.FixedLenFeature([], tf.int64, default_value=0),
        _SNIPPET_LENGTH: tf.io.FixedLenFeature([], tf.int64),
        _SNIPPET_START: tf.io.VarLenFeature(tf.int64),
        _FLOW_ALGORITHM: tf.io.FixedLenFeature([], tf.string, default_value=""),
        _FLOW_BOUND: tf.io.FixedLenFeature([], tf.float32, default_value=20.0),
    }
    names = [name for m in modalities for name in _MODALITY_TENSORS[m]]
    sequence_features = {_SEQUENCE_KEYS[name]: tf.io.VarLenFeature(tf.string) for name in names}
    context, sequences = tf.io.parse_single_sequence_example(
        serialized, context_features=context_features, sequence_features=sequence_features
    )
    frame_indices = tf.sparse.to_dense(context[_SNIPPET_START])  # [N]
    num_snippets = tf.shape(frame_indices, out_type=tf.int32)[0]
    video_id = context[_MEDIA_ID]
    out = {
        "video_id": video_id,
        "label": context[_LABEL_INDEX],
        "label_text": context[_LABEL_STRING],
        "num_snippets": num_snippets,
        "frame_indices": frame_indices,
        "num_frames": context[_NUM_FRAMES],
        "fps": context[_FRAME_RATE],
        "height": context[_HEIGHT],
        "width": context[_WIDTH],
        "original_height": context[_ORIGINAL_HEIGHT],
        "original_width": context[_ORIGINAL_WIDTH],
        "snippet_length": context[_SNIPPET_LENGTH],
        "flow_algorithm": context[_FLOW_ALGORITHM],
        "flow_bound": context[_FLOW_BOUND],
        "jpeg_quality": context[_JPEG_QUALITY],
    }
    for name in names:
        sparse = sequences[_SEQUENCE_KEYS[name]]  # [N, JPEGs per snippet]
        # Every snippet holds the same number of JPEGs (the writer checks), so the values in
        # row-major order already are the dense [N, M] table: reshape instead of to_dense,
        # which would copy every JPEG's bytes once more.
        shape = tf.cast(sparse.dense_shape, tf.int32)
        check = tf.debugging.assert_equal(
            tf.stack([shape[0], shape[0] * shape[1]]),
            tf.stack([num_snippets, tf.size(sparse.values)]),
            message=(
                f"an example lacks the '{name}' snippets (feature list "
                f"'{_SEQUENCE_KEYS[name]}') or has uneven ones; convert with --modalities "
                "including it"
            ),
        )
        with tf.control_dependencies([check]):
            values = tf.identity(sparse.values)
        out[name] = values if name == "rgb" else tf.reshape(values, [num_snippets, -1])
    return out


def decode_snippets(
    parsed: dict,
    modality: str,
    snippet_idx,
    snippet_length: int | None = None,
    window=None,
):
    """Decodes the JPEGs of the sampled snippets only, optionally cropped to a window.

    Args:
      parsed: output of `parse_example` holding `modality`.
      modality: "rgb", "flow", "warped_flow" or "rgbdiff".
      snippet_idx: int32 [K], indices into the N stored snippets.
      snippet_length: optional L; when given, the channel dimension of flow / rgbdiff gets a
        static size (rgb's 3 is always static).
      window: optional int32 [4] (y, x, height, width): each decoded image is cropped to it
        before the snippets' frames are stacked along channels, so the stacking (a transpose,
        the costliest step for flow) only moves the window's pixels. The result equals
        cropping the whole decoded clip.

    Returns:
      uint8 [K, H, W, C] (H, W = the window's size when given): rgb C=3 (RGB); flow /
      warped_flow C=2L interleaved x1,y1,x2,y2,... (raw encoded 0-255 values); rgbdiff
      C=3(L+1), the L+1 RGB frames stacked along channels.
    """
    import tensorflow as tf

    check_modalities([modality])
    snippet_idx = tf.convert_to_tensor(snippet_idx, tf.int32)
    height = tf.cast(parsed["height"], tf.int32)
    width = tf.cast(parsed["width"], tf.int32)
    if window is not None:
        window = tf.convert_to_tensor(window, tf.int32)
        height, width = window[2], window[3]
    k = tf.shape(snippet_idx)[0]

    def decode(jpeg, channels):
        image = tf.io.decode_jpeg(jpeg, channels=channels)
        if window is None:
            return image
        return image[window[0] : window[0] + window[2], window[1] : window[1] + window[3]]

    def decode_all(jpegs, channels, count):  # [M] -> [M, H, W, channels]
        if count is not None and count <= _UNROLL_DECODES:
            # One decode op per JPEG, no while loop: ~0.3 ms less CPU per RGB clip (K=3) than
            # map_fn in the training pipeline on this machine.
            return tf.stack([decode(jpegs[i], channels) for i in range(count)])
        return tf.map_fn(
            lambda s: decode(s, channels),
            jpegs,
            fn_output_signature=tf.TensorSpec([None, None, channels], tf.uint8),
        )

    num = snippet_idx.shape[0]  # static K, or None
    static = num is not None and snippet_length is not None  # count of JPEGs known

    def check_length(stored):  # the static count trusts snippet_length: say so if it is wrong
        if snippet_length is None:
            return []
        return [
            tf.debugging.assert_equal(
                stored,
                snippet_length,
                message=f"decode_snippets: the example stores another snippet length than "
                f"snippet_length={snippet_length} (the records' manifest)",
            )
        ]

    if modality == "rgb":
        images = decode_all(tf.gather(parsed["rgb"], snippet_idx), 3, num)  # [K, H, W, 3]
        return tf.ensure_shape(tf.reshape(images, [k, height, width, 3]), [None, None, None, 3])
    if modality == "rgbdiff":
        jpegs = tf.gather(parsed["rgbdiff"], snippet_idx)  # [K, L+1]
        frames = tf.shape(jpegs)[1]
        with tf.control_dependencies(check_length(frames - 1)):
            jpegs = tf.identity(jpegs)
        count = num * (snippet_length + 1) if static else None
        images = decode_all(tf.reshape(jpegs, [-1]), 3, count)  # [K*(L+1), H, W, 3]
        images = tf.reshape(images, [k, frames, height, width, 3])  # [K, L+1, H, W, 3]
        images = tf.transpose(images, [0, 2, 3, 1, 4])  # [K, H, W, L+1, 3]
        images = tf.reshape(images, [k, height, width, frames * 3])  # [K, H, W, 3(L+1)]
        channels = None if snippet_length is None else 3 * (snippet_length + 1)
        return tf.ensure_shape(images, [None, None, None, channels])
    x = tf.gather(parsed[f"{modality}_x"], snippet_idx)  # [K, L]
    y = tf.gather(parsed[f"{modality}_y"], snippet_idx)  # [K, L]
    fields = tf.shape(x)[1]
    with tf.control_dependencies(check_length(fields)):
        jpegs = tf.reshape(tf.stack([x, y], axis=2), [-1])  # [K*L*2]: x1, y1, x2, y2, ...
    count = num * 2 * snippet_length if static else None
    images = decode_all(jpegs, 1, count)  # [K*2L, H, W, 1]
    images = tf.reshape(images, [k, 2 * fields, height, width])  # [K, 2L, H, W]
    images = tf.transpose(images, [0, 2, 3, 1])  # [K, H, W, 2L]
    channels = None if snippet_length is None else 2 * snippet_length
    return tf.ensure_shape(images, [None, None, None, channels])


# ---------------------------------------------------------------------------------------------
# Output folder.


def shard_filename(subset: str, index: int, num_shards: int, modality: str | None = None) -> str:
    """File name of one shard's file of one modality, e.g. `train-rgb-00000-of-00004.tfrecord`.

    Without a modality: `train-00000-of-00004.tfrecord`, the shard's base name (its progress
    sidecar's name) and the file name of the older layout, one file holding every modality.
    """
    if modality is None:
        return f"{subset}-{index:05d}-of-{num_shards:05d}.tfrecord"
    return f"{subset}-{modality}-{index:05d}-of-{num_shards:05d}.tfrecord"


# ---------------------------------------------------------------------------------------------
# Damaged shards: finding them and saying what to do.


class DamagedRecordsError(RuntimeError):
    """A shard file holds a truncated or corrupted record (the message names file and offset)."""


def scan_tfrecord(path: str) -> tuple[int, int | None]:
    """Walks a TFRecord file's framing (lengths only, no CRCs, no payload reads).

    A record is uint64 length, uint32 CRC of the length, the payload, uint32 CRC of the payload.
    A file cut short (a full disk, an interrupted copy) ends inside a record: found here with
    one small read per record. A flipped bit inside a payload is not (TF's CRC check finds it).

    Returns:
      (records that are complete, byte offset of the first incomplete record or None).
    """
    import tensorflow as tf  # gfile: shards may live on cloud storage

    size = tf.io.gfile.stat(path).length
    offset = count = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            header = f.read(12)
            if len(header) < 12:
                return count, offset
            (length,) = struct.unpack("<Q", header[:8])
            end = offset + 12 + length + 4
            if end > size:
                return count, offset
            offset, count = end, count + 1
    return count, None


def damaged_records_error(files: Sequence[str], tf_message: str) -> DamagedRecordsError:
    """The error to raise when reading `files` failed with TF's DataLossError `tf_message`.

    TF's message gives the byte offset but not the file; this finds the file (framing scan, then
    a full read of each file on this error path only) and says how to go on.
    """
    import tensorflow as tf

    where = None
    for path in files:
        complete, offset = scan_tfrecord(path)
        if offset is not None:
            where = f"{path} is truncated at byte {offset} (after {complete} complete records)"
            break
    if where is None:
        for path in files:
            try:
                for _ in tf.data.TFRecordDataset(path):
                    pass
            except tf.errors.DataLossError as e:
                where = f"{path} is damaged ({e.message.strip()})"
                break
    where = where or f"a shard of {len(files)} is damaged ({tf_message.strip()})"
    return DamagedRecordsError(
        f"{where}. Rerun with --skip_corrupt_records to read only the intact records (the "
        "damaged file is read up to the damage), or reconvert: delete that shard's files and "
        "rerun scripts/make_tfrecords.py with the same flags, which redoes missing shards."
    )


@contextlib.contextmanager
def damage_named(files: Sequence[str]):
    """Turns TF's DataLossError (which names no file) into a DamagedRecordsError that does."""
    import tensorflow as tf

    try:
        yield
    except tf.errors.DataLossError as e:
        raise damaged_records_error(files, e.message) from None


def report_damage(files: Sequence[str], counts: Sequence[int]) -> int:
    """Logs the truncated shards --skip_corrupt_records reads around; returns records lost.

    Args:
      files: the shard files of a subset, in shard order.
      counts: the examples each holds when whole (`manifest.Subset.counts`).
    """
    from absl import logging

    lost = 0
    for path, expected in zip(files, counts, strict=True):
        complete, offset = scan_tfrecord(path)
        if offset is not None:
            missing = max(expected - complete, 1)
            lost += missing
            logging.warning(
                "%s is damaged at byte %d: skipping its last %d of %d records "
                "(--skip_corrupt_records)",
                path,
                offset,
                missing,
                expected,
            )
    return lost
