"""Converts a PyTorch BN-Inception state dict (.pth) into a Keras .weights.h5 file.

    python scripts/convert_weights.py --input bn_inception-52deb4733.pth \
        --output bn_inception.weights.h5
    python scripts/convert_weights.py --input ucf101_flow_checkpoint.pth.tar \
        --output tsn_flow.weights.h5

Accepts pretrainedmodels' `bninception` (`last_linear`), tsn-pytorch's BN-Inception (`fc`) and
TSN checkpoints (`module.base_model.*` + `module.new_fc.*`, also inside {"state_dict": ...}).
Load the result with `tsn_keras.models.BNInception(weights=...)`, or for a TSN checkpoint with
`TSNConfig(backbone_weights=...)` plus `tsn_keras.models.load_classifier_weights`. Needs torch
(`pip install 'tsn_keras[convert]'`), which nothing else in tsn_keras needs.
"""

from absl import app, flags

_INPUT = flags.DEFINE_string("input", None, "PyTorch state dict or TSN checkpoint (.pth).")
_OUTPUT = flags.DEFINE_string("output", None, "Keras weights file to write (*.weights.h5).")
_ALLOW_MISSING_CLASSIFIER = flags.DEFINE_bool(
    "allow_missing_classifier",
    False,
    "Write the backbone alone when the input has no classifier (last_linear/fc/new_fc).",
)
_ALLOW_UNUSED = flags.DEFINE_bool(
    "allow_unused", False, "Ignore (but list) input keys that map to no BN-Inception weight."
)
_TRUST_PICKLE = flags.DEFINE_bool(
    "trust_pickle",
    False,
    "Load with torch.load(weights_only=False); only for files from a source you trust.",
)
flags.mark_flags_as_required(["input", "output"])


def main(argv):
    del argv
    from tsn_keras.models.weights import ConversionError, convert_checkpoint

    try:
        report = convert_checkpoint(
            _INPUT.value,
            _OUTPUT.value,
            allow_missing_classifier=_ALLOW_MISSING_CLASSIFIER.value,
            allow_unused=_ALLOW_UNUSED.value,
            trust_pickle=_TRUST_PICKLE.value,
        )
    except (ConversionError, FileNotFoundError) as e:
        raise SystemExit(f"convert_weights: {e}") from None
    head = f"{report.classes}-way classifier from {report.classifier_source}*"
    print(
        f"Wrote {_OUTPUT.value}: {report.converted} tensors, {report.input_channels} input "
        f"channels, {head if report.classes else 'no classifier (backbone only)'}."
    )
    if report.skipped:
        print(f"Skipped {len(report.skipped)} num_batches_tracked entries.")
    if report.reshaped:
        print(f"Flattened {len(report.reshaped)} [1, C] BN statistics to [C].")
    if report.unused:
        print(f"Ignored {len(report.unused)} unused keys: {', '.join(report.unused)}")


if __name__ == "__main__":
    app.run(main)
