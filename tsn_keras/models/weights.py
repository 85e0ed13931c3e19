"""PyTorch BN-Inception state dicts -> Keras `.weights.h5` for `BNInception(weights=...)`.

Accepted inputs (keys as docs/design.md lists them):
- pretrainedmodels `bninception` (`conv1_7x7_s2.weight`, ..., classifier `last_linear.*`);
- tsn-pytorch's BN-Inception (`tf_model_zoo`; classifier `fc.*`; its Caffe-converted BN
  statistics stored as [1, C] are accepted);
- TSN checkpoints: `module.base_model.*` plus the TSN classifier `module.new_fc.*`, possibly
  wrapped as {"state_dict": ..., "epoch": ..., "arch": ...}; flow / rgbdiff checkpoints have a
  10 / 15-channel conv1, which sets the converted model's input channels.

Mapping per Keras layer (named as the PyTorch module): Conv2D kernel = weight transposed
[O, I, kh, kw] -> [kh, kw, I, O], bias = bias; BatchNormalization gamma/beta/moving_mean/
moving_variance = weight/bias/running_mean/running_var; the classifier Dense `last_linear`
kernel = weight.T, bias = bias. `num_batches_tracked` entries carry no weights and are skipped.
Every key and shape is checked; missing and unused keys are named in the error. The written file
is read back and compared before the converter returns.

torch is imported only inside `load_torch_state_dict` (the `convert` extra).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence

import numpy as np

CLASSIFIER_PREFIXES = ("new_fc.", "last_linear.", "fc.")  # TSN, pretrainedmodels, tsn-pytorch
_SKIPPED_SUFFIXES = (".num_batches_tracked",)
_CLASSIFIER = "last_linear"


class ConversionError(ValueError):
    """A state dict does not match BN-Inception; the message names the keys."""


@dataclasses.dataclass(frozen=True)
class ConversionReport:
    """What a conversion did.

    Attributes:
        input_channels: conv1's input channels (3 rgb, 10 flow, 15 rgbdiff).
        classes: Classifier width, or None when the file holds the backbone only.
        classifier_source: The classifier's key prefix in the input ("new_fc." etc.) or None.
        converted: Number of state-dict tensors written.
        skipped: Keys without weights that were skipped (num_batches_tracked).
        unused: Keys that matched nothing (only with allow_unused).
        reshaped: Keys whose [1, C] BN statistics were flattened to [C].
    """

    input_channels: int
    classes: int | None
    classifier_source: str | None
    converted: int
    skipped: list[str]
    unused: list[str]
    reshaped: list[str]


def load_torch_state_dict(path: str, trust_pickle: bool = False) -> dict[str, np.ndarray]:
    """Reads a `.pth` file into {key: float32 numpy array} (imports torch lazily).

    Args:
        path: A PyTorch state dict, or a checkpoint dict with a "state_dict" entry.
        trust_pickle: Allow arbitrary pickled objects (torch.load weights_only=False). Only for
            files from a source you trust; needed for some old Python 2 pickles.
    """
    try:
        import torch
    except ImportError as e:
        raise ImportError(
            "Converting PyTorch weights needs torch: pip install 'tsn_keras[convert]' "
            "(or `pip install torch`); training and serving do not need it."
        ) from e
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--input {path!r} does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:
        if trust_pickle:
            raise
        raise ConversionError(
            f"torch.load({path!r}, weights_only=True) failed ({type(e).__name__}: {e}). If the "
            "file comes from a source you trust, rerun with --trust_pickle."
        ) from e
    return state_dict_to_numpy(obj)


def state_dict_to_numpy(obj) -> dict[str, np.ndarray]:
    """{key: tensor or array} (or {"state_dict": {...}, ...}) -> {key: float32 numpy array}."""
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ConversionError(
            f"Expected a state dict (a mapping of names to tensors). Received: {type(obj)}"
        )
    out = {}
    for key, value in obj.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        out[str(key)] = np.asarray(value)
    return out


def canonical_state_dict(
    state_dict: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], str | None]:
    """Strips `module.` / `base_model.` and renames the classifier to `last_linear.`.

    Returns:
        (state dict with pretrainedmodels' key names, the classifier prefix found or None).
    """
    out: dict[str, np.ndarray] = {}
    for key, value in state_dict.items():
        for prefix in ("module.", "base_model."):
            if key.startswith(prefix):
                key = key[len(prefix) :]
        out[key] = value
    found = [p for p in CLASSIFIER_PREFIXES if any(k.startswith(p) for k in out)]
    if len(found) > 1:
        raise ConversionError(
            f"The state dict has more than one classifier ({', '.join(found)} keys); keep one "
            "(a TSN checkpoint's is new_fc.) and convert again."
        )
    if not found:
        return out, None
    renamed = {}
    for key, value in out.items():
        if key.startswith(found[0]):
            key = f"{_CLASSIFIER}." + key[len(found[0]) :]
        renamed[key] = value
    return renamed, found[0]


def _expected_arrays(model) -> dict[str, tuple]:
    """{state-dict key: (keras variable, transform)} for every variable of a BNInception."""
    import keras

    table = {}
    for layer in model.layers:
        n = layer.name
        if isinstance(layer, keras.layers.Conv2D):
            table[f"{n}.weight"] = (layer.kernel, lambda w: np.transpose(w, (2, 3, 1, 0)))
            table[f"{n}.bias"] = (layer.bias, None)
        elif isinstance(layer, keras.layers.BatchNormalization):
            table[f"{n}.weight"] = (layer.gamma, None)
            table[f"{n}.bias"] = (layer.beta, None)
            table[f"{n}.running_mean"] = (layer.moving_mean, None)
            table[f"{n}.running_var"] = (layer.moving_variance, None)
        elif isinstance(layer, keras.layers.Dense):
            table[f"{n}.weight"] = (layer.kernel, lambda w: np.transpose(w))
            table[f"{n}.bias"] = (layer.bias, None)
        elif layer.weights:
            raise RuntimeError(f"Unexpected weighted layer {n} in BN-Inception.")
    n_vars = len(model.weights)
    if len(table) != n_vars:
        raise RuntimeError(f"Mapped {len(table)} of {n_vars} BN-Inception variables.")
    return table


def _fit_shape(key: str, value: np.ndarray, shape: tuple, reshaped: list[str]) -> np.ndarray:
    if value.shape == shape:
        return value
    if len(shape) == 1 and value.size == shape[0] and max(value.shape, default=1) == value.size:
        reshaped.append(key)  # Caffe-converted BN statistics stored as [1, C]
        return value.reshape(shape)
    raise ConversionError(f"{key}: shape {value.shape} does not fit the Keras variable {shape}.")


def convert_state_dict(
    state_dict: Mapping[str, np.ndarray],
    output_path: str,
    allow_missing_classifier: bool = False,
    allow_unused: bool = False,
    source: str = "the state dict",
) -> ConversionReport:
    """Writes a BN-Inception state dict as a Keras `.weights.h5` file, checking every key.

    Args:
        state_dict: {key: numpy array or tensor}; see the module docstring for key layouts.
        output_path: Output path ending in `.weights.h5`.
        allow_missing_classifier: Without classifier keys, write the backbone alone (loads with
            `BNInception(include_top=False, ...)`) instead of failing.
        allow_unused: Ignore keys that map to nothing (they are listed in the report) instead
            of failing.
        source: How to name the input in messages (e.g. the --input path).

    Returns:
        ConversionReport.
    """
    from tsn_keras.models.bn_inception import BNInception

    if not output_path.endswith(".weights.h5"):
        raise ConversionError(
            f"--output must end in .weights.h5 (Keras' weights format). Received: {output_path}"
        )
    state, classifier_source = canonical_state_dict(state_dict_to_numpy(state_dict))
    skipped = sorted(k for k in state if k.endswith(_SKIPPED_SUFFIXES))
    for key in skipped:
        del state[key]
    conv1 = state.get("conv1_7x7_s2.weight")
    if conv1 is None or conv1.ndim != 4:
        raise ConversionError(
            f"{source} has no 4-D conv1_7x7_s2.weight (after stripping module./base_model.); "
            f"is it a BN-Inception state dict? First keys: {sorted(state)[:5]}"
        )
    channels = int(conv1.shape[1])
    include_top = classifier_source is not None
    if include_top and state.get(f"{_CLASSIFIER}.weight") is None:
        raise ConversionError(
            f"{source} has classifier keys ({classifier_source}) but no {classifier_source}weight."
        )
    classes = int(state[f"{_CLASSIFIER}.weight"].shape[0]) if include_top else None
    model = BNInception(
        include_top=include_top,
        input_shape=(None, None, channels),
        input_channels=channels,
        classes=classes or 1000,
        classifier_activation=None,
    )
    table = _expected_arrays(model)
    missing = sorted(set(table) - set(state))
    unused = sorted(set(state) - set(table))
    problems = []
    if missing:
        problems.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
    if unused and not allow_unused:
        problems.append(
            f"unused keys ({len(unused)}): {', '.join(unused)} (pass --allow_unused to ignore)"
        )
    if not include_top and not allow_missing_classifier:
        problems.append(
            "no classifier (last_linear. / fc. / new_fc. keys); pass "
            "--allow_missing_classifier to write the backbone alone"
        )
    if problems:
        raise ConversionError(f"{source} does not match BN-Inception: " + "; ".join(problems))

    reshaped: list[str] = []
    expected = {}
    for key, (var, transform) in table.items():
        value = state[key].astype(np.float32)
        value = transform(value) if transform else value
        value = _fit_shape(key, value, tuple(var.shape), reshaped)
        var.assign(value)
        expected[key] = value
    out_dir = os.path.dirname(os.path.abspath(output_path))
    os.makedirs(out_dir, exist_ok=True)
    model.save_weights(output_path)

    # Read the file back (into the same model, zeroed first) and compare every variable.
    for var in model.weights:
        var.assign(np.zeros(var.shape, np.float32))
    model.load_weights(output_path)
    for key, (var, _) in table.items():
        if not np.array_equal(var.numpy(), expected[key]):
            raise RuntimeError(f"{output_path}: {key} did not read back as written.")
    return ConversionReport(
        input_channels=channels,
        classes=classes,
        classifier_source=classifier_source,
        converted=len(table),
        skipped=skipped,
        unused=unused,
        reshaped=reshaped,
    )


def convert_checkpoint(
    input_path: str,
    output_path: str,
    allow_missing_classifier: bool = False,
    allow_unused: bool = False,
    trust_pickle: bool = False,
) -> ConversionReport:
    """`.pth` file -> `.weights.h5` file; see `convert_state_dict`."""
    state = load_torch_state_dict(input_path, trust_pickle=trust_pickle)
    return convert_state_dict(
        state,
        output_path,
        allow_missing_classifier=allow_missing_classifier,
        allow_unused=allow_unused,
        source=input_path,
    )


USAGE = """Converts a PyTorch BN-Inception state dict (.pth) into a Keras .weights.h5 file.

    python scripts/convert_weights.py --input bn_inception-52deb4733.pth \\
        --output bn_inception.weights.h5
    python scripts/convert_weights.py --input ucf101_flow_checkpoint.pth.tar \\
        --output tsn_flow.weights.h5

Accepts pretrainedmodels' `bninception` (`last_linear`), tsn-pytorch's BN-Inception (`fc`) and
TSN checkpoints (`module.base_model.*` + `module.new_fc.*`, also inside {"state_dict": ...}).
Needs torch (`pip install 'tsn_keras[convert]'`), which nothing else in tsn_keras needs.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """`scripts/convert_weights.py`: exit 0 written, 1 conversion failed, 2 bad flags or input."""
    from tsn_keras import cli

    return cli.run(_main, argv, usage_errors=(FileNotFoundError,), failures=(ConversionError,))


def _main(argv: list[str]) -> int:
    from absl import flags

    from tsn_keras import cli

    fv = flags.FlagValues()
    flags.DEFINE_string(
        "input", None, "PyTorch state dict or TSN checkpoint (.pth).", flag_values=fv
    )
    flags.DEFINE_string(
        "output", None, "Keras weights file to write (*.weights.h5).", flag_values=fv
    )
    flags.DEFINE_bool(
        "allow_missing_classifier",
        False,
        "Write the backbone alone when the input has no classifier (last_linear/fc/new_fc).",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "allow_unused",
        False,
        "Ignore (but list) input keys that map to no BN-Inception weight.",
        flag_values=fv,
    )
    flags.DEFINE_bool(
        "trust_pickle",
        False,
        "Load with torch.load(weights_only=False); only for files from a source you trust.",
        flag_values=fv,
    )
    if cli.parse_flags(fv, argv, USAGE) is None:
        return 0
    for name in ("input", "output"):
        if not fv[name].value:
            raise flags.Error(f"--{name} is required")
    report = convert_checkpoint(
        fv.input,
        fv.output,
        allow_missing_classifier=fv.allow_missing_classifier,
        allow_unused=fv.allow_unused,
        trust_pickle=fv.trust_pickle,
    )
    head = f"{report.classes}-way classifier from {report.classifier_source}*"
    print(
        f"Wrote {fv.output}: {report.converted} tensors, {report.input_channels} input "
        f"channels, {head if report.classes else 'no classifier (backbone only)'}."
    )
    if report.skipped:
        print(f"Skipped {len(report.skipped)} num_batches_tracked entries.")
    if report.reshaped:
        print(f"Flattened {len(report.reshaped)} [1, C] BN statistics to [C].")
    if report.unused:
        print(f"Ignored {len(report.unused)} unused keys: {', '.join(report.unused)}")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
