"""TSN models: BN-Inception and other backbones, consensus, the TSN builder, weight conversion.

Importing this package registers the custom layers (CeilMaxPooling2D, Consensus, FoldSegments,
UnfoldSegments) with Keras, so `.keras` files of TSN models load after `import tsn_keras.models`.
`weights` (the PyTorch converter) is not imported here: it is only needed to convert.
"""

from tsn_keras.models.backbones import BACKBONES, build_backbone, preprocess_input
from tsn_keras.models.bn_inception import BNInception
from tsn_keras.models.consensus import Consensus
from tsn_keras.models.tsn import (
    ParamGroup,
    TSNConfig,
    build_tsn,
    load_classifier_weights,
    param_groups,
)

__all__ = [
    "BACKBONES",
    "BNInception",
    "Consensus",
    "ParamGroup",
    "TSNConfig",
    "build_backbone",
    "build_tsn",
    "load_classifier_weights",
    "param_groups",
    "preprocess_input",
]
