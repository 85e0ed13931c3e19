"""LiteRT (.tflite) models of tsn_keras: the metadata in the file, and running it.

`python -m tsn_keras.export --tflite ...` writes `model_<format>.tflite` files; each takes uint8
views [B, K, S, S, C] (raw 0-255 crops at the model's input size: RGB order, or raw encoded
flow x1, y1, x2, y2, ...) and returns {"logits", "probabilities"} [B, classes]. The backbone's
preprocessing is inside the file. The export's metadata (classes, modality, backbone,
input_size, snippet_length, conversion, format) is stored in the file's flatbuffer metadata
under "tsn_keras" as JSON, so a `.tflite` file is self-describing.

Runs with the `ai-edge-litert` interpreter (the `litert` extra; `tf.lite.Interpreter` is
deprecated). Neither this module nor the interpreter imports TensorFlow.
"""

from __future__ import annotations

import json
import os

import numpy as np

METADATA_NAME = "tsn_keras"
FORMATS = ("fp32", "fp16", "int8_dynamic", "int8_full")
SIGNATURE = "serving_default"
INPUT_NAME = "views"


def _litert(module: str):
    """A module of the `ai-edge-litert` package (the `litert` extra), or a clear ImportError."""
    import importlib

    try:
        return importlib.import_module(f"ai_edge_litert.{module}")
    except ImportError as e:
        raise ImportError(
            f"running .tflite files needs ai-edge-litert: pip install 'tsn_keras[litert]' ({e})"
        ) from e


def _schema():
    return _litert("schema_py_generated")


def add_metadata(model_bytes: bytes, meta: dict) -> bytes:
    """The flatbuffer `model_bytes` with `meta` (JSON) added as metadata "tsn_keras"."""
    import flatbuffers

    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(model_bytes), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if m.name != METADATA_NAME] + [entry]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def read_metadata(model_bytes: bytes, source: str = "model") -> dict:
    """The "tsn_keras" metadata of a .tflite flatbuffer.

    Raises:
      ValueError: the file has none (not written by tsn_keras.export); names `source`.
    """
    schema = _schema()
    model = schema.Model.GetRootAs(model_bytes, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode("utf-8") == METADATA_NAME:
            data = model.Buffers(entry.Buffer()).DataAsNumpy()
            return json.loads(bytes(data).decode("utf-8"))
    raise ValueError(
        f"{source} has no '{METADATA_NAME}' metadata: it was not written by "
        "python -m tsn_keras.export --tflite"
    )


class LiteRTModel:
    """A tsn_keras .tflite file under the LiteRT interpreter.

    Call with uint8 views [B, K, S, S, C] and get {"logits", "probabilities"} as float32
    numpy [B, classes]. `meta` holds the export's metadata (classes, modality, ...).

    Args:
      path: a `model_<format>.tflite` of `python -m tsn_keras.export --tflite`.
      num_threads: interpreter threads (None: LiteRT's default).

    The default XNNPACK delegate cannot prepare some fully int8 graphs (seen on BN-Inception);
    then the file runs on LiteRT's built-in kernels and `delegate` says "none".
    """

    def __init__(self, path: str, num_threads: int | None = None):
        litert_interpreter = _litert("interpreter")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"--tflite {path}: no such file")
        with open(path, "rb") as f:
            self._bytes = f.read()
        self.path = path
        self.meta = read_metadata(self._bytes, path)
        self.size_bytes = len(self._bytes)
        size = int(self.meta["input_size"])
        self.channels = int(self.meta["raw_channels"])
        self.expected = f"uint8 [B, K, {size}, {size}, {self.channels}]"
        self.delegate = "default"
        try:
            self._interpreter = litert_interpreter.Interpreter(
                model_content=self._bytes, num_threads=num_threads
            )
            self._interpreter.allocate_tensors()
        except RuntimeError:
            self.delegate = "none"
            self._interpreter = litert_interpreter.Interpreter(
                model_content=self._bytes,
                num_threads=num_threads,
                experimental_op_resolver_type=litert_interpreter.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            )
            self._interpreter.allocate_tensors()
        runner = self._interpreter.get_signature_runner(SIGNATURE)
        self._input = runner.get_input_details()[INPUT_NAME]["index"]
        self._outputs = {name: d["index"] for name, d in runner.get_output_details().items()}
        self._shape: tuple[int, ...] | None = None

    def __call__(self, views: np.ndarray) -> dict[str, np.ndarray]:
        views = np.asarray(views)
        size = int(self.meta["input_size"])
        if views.ndim != 5 or views.shape[2:] != (size, size, self.channels):
            raise ValueError(f"views must be {self.expected}. Received: shape={views.shape}")
        if views.shape[1] == 0:
            raise ValueError(f"views must be {self.expected} with K > 0. Received: {views.shape}")
        views = views.astype(np.uint8, copy=False)  # raw 0-255 values
        if views.shape != self._shape:  # resizing re-plans the interpreter: only on change
            self._interpreter.resize_tensor_input(self._input, views.shape, strict=False)
            self._interpreter.allocate_tensors()
            self._shape = views.shape
        self._interpreter.set_tensor(self._input, np.ascontiguousarray(views))
        self._interpreter.invoke()
        return {k: self._interpreter.get_tensor(i).copy() for k, i in self._outputs.items()}
