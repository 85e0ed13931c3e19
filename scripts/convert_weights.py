"""Converts a PyTorch BN-Inception state dict (.pth) into a Keras .weights.h5 file.

    python scripts/convert_weights.py --input bn_inception-52deb4733.pth \
        --output bn_inception.weights.h5

The command lives in tsn_keras/models/weights.py (`main`); `--help` lists the flags. Load the
result with `tsn_keras.models.BNInception(weights=...)`, or for a TSN checkpoint with
`TSNConfig(backbone_weights=...)` plus `tsn_keras.models.load_classifier_weights`.
"""

import sys

from tsn_keras import cli

if __name__ == "__main__":
    sys.exit(cli.run_module("tsn_keras.models.weights"))
