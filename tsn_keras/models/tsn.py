"""The TSN model: one shared backbone per snippet, dropout, classifier, segmental consensus.

    snippets [B, K, H, W, C] (preprocessed, see `tsn_keras.models.preprocess_input`)
      -> FoldSegments            [B*K, H, W, C]
      -> backbone (pooled)       [B*K, D]
      -> Dropout (0.8 rgb/rgbdiff, 0.7 flow)
      -> classifier Dense        [B*K, N]   init N(0, 0.001), bias 0
      -> UnfoldSegments          [B, K, N]
      -> Consensus               [B, N]     logits (float32)

Folding the segments into the batch (as tsn-pytorch's `view(-1, C, H, W)`) rather than
keras.layers.TimeDistributed: TimeDistributed in Keras 3 maps the backbone over K with
`vectorized_map`. bench/model.py times both round-robin (BN-Inception, B=2, K=3, 224, 2 shared
CPU cores): the fold ran 7.2 vs 6.8 snippets/s forward and 2.02 vs 1.90 forward+backward. The
fold also gives the first (trainable) BN its statistics over all B*K snippets, as in TSN.
K is dynamic: a model built with `num_segments=3` runs on 25 snippets with the same weights.

Partial BN (TSN section 3.2): every BatchNormalization but the backbone's first gets
`trainable=False`. In Keras 3 such a layer runs in inference mode (moving statistics) even when
the model is called with training=True, and its gamma/beta are not trainable variables; the flag
is part of each layer's config, so it survives `.keras` reloads, `load_weights` and
tf.distribute strategies (tests/test_tsn_model.py checks each). Do not set
`model.trainable = True` afterwards: that re-enables every BN.
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
from keras import layers, ops

from tsn_keras import modalities
from tsn_keras.models import backbones, transfer
from tsn_keras.models.consensus import MODES as CONSENSUS_MODES
from tsn_keras.models.consensus import Consensus

CLASSIFIER_NAME = "classifier"
CONSENSUS_NAME = "consensus"


@dataclasses.dataclass(frozen=True)
class TSNConfig:
    """What defines a TSN model.

    Attributes:
        num_classes: Output classes.
        modality: "rgb", "flow", "warped_flow" or "rgbdiff".
        backbone: One of `backbones.BACKBONES`.
        num_segments: K used in training (the model runs on any K).
        consensus: "avg", "max", "weighted", "topk" (k = ceil(K/2)) or "topk:<k>".
        dropout: Dropout before the classifier; None: 0.8 for rgb/rgbdiff, 0.7 for flow.
        partial_bn: Freeze every BN but the first (TSN's partial BN).
        input_size: Square crop side (224 in the paper; the tiny backbone takes 32+).
        snippet_length: L, frames per flow / rgbdiff snippet (5 in the paper).
        backbone_weights: None, a `.weights.h5` path (RGB weights initialise flow/rgbdiff by
            cross-modality init) or "imagenet" (keras.applications backbones only).
    """

    num_classes: int
    modality: str = "rgb"
    backbone: str = "bn_inception"
    num_segments: int = 3
    consensus: str = "avg"
    dropout: float | None = None
    partial_bn: bool = True
    input_size: int = 224
    snippet_length: int = 5
    backbone_weights: str | None = None

    def __post_init__(self):
        if self.num_classes < 1:
            raise ValueError(f"TSNConfig.num_classes must be >= 1. Received: {self.num_classes}")
        if self.modality not in modalities.MODALITIES:
            raise ValueError(
                f"TSNConfig.modality must be one of {modalities.MODALITIES}. "
                f"Received: {self.modality!r}"
            )
        if self.backbone not in backbones.BACKBONES:
            raise ValueError(
                f"TSNConfig.backbone must be one of {backbones.BACKBONES}. "
                f"Received: {self.backbone!r}"
            )
        if self.num_segments < 1:
            raise ValueError(f"TSNConfig.num_segments must be >= 1. Received: {self.num_segments}")
        _parse_consensus(self.consensus, self.num_segments)
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"TSNConfig.dropout must be in [0, 1). Received: {self.dropout}")
        if self.input_size < 8:
            raise ValueError(f"TSNConfig.input_size must be >= 8. Received: {self.input_size}")
        if self.snippet_length < 1:
            raise ValueError(
                f"TSNConfig.snippet_length must be >= 1. Received: {self.snippet_length}"
            )

    @property
    def effective_dropout(self) -> float:
        """The dropout rate used: `dropout`, or TSN's default for the modality."""
        return default_dropout(self.modality) if self.dropout is None else self.dropout


def _parse_consensus(consensus: str, num_segments: int) -> dict:
    """ "topk:3" -> {"mode": "topk", "k": 3}; validates the string."""
    mode, _, arg = consensus.partition(":")
    if mode not in CONSENSUS_MODES or (arg and mode != "topk"):
        raise ValueError(
            f"TSNConfig.consensus must be one of {CONSENSUS_MODES} or 'topk:<k>'. "
            f"Received: {consensus!r}"
        )
    if mode == "topk":
        if arg and (not arg.isdigit() or int(arg) < 1):
            raise ValueError(f"'topk:<k>' needs a positive integer k. Received: {consensus!r}")
        return {"mode": mode, "k": int(arg) if arg else (num_segments + 1) // 2}
    if mode == "weighted":
        return {"mode": mode, "num_segments": num_segments}
    return {"mode": mode}


def default_dropout(modality: str) -> float:
    """TSN's dropout before the classifier: 0.7 for flow, 0.8 for rgb and rgbdiff."""
    return 0.7 if modalities.is_flow(modality) else 0.8


@keras.saving.register_keras_serializable(package="tsn_keras")
class FoldSegments(layers.Layer):
    """[B, K, H, W, C] -> [B*K, H, W, C]: segments folded into the batch."""

    def call(self, inputs):
        shape = ops.shape(inputs)  # static ints where known, scalar tensors otherwise
        return ops.reshape(inputs, (-1, *shape[2:]))  # [B*K, H, W, C]

    def compute_output_shape(self, input_shape):
        lead = None if None in input_shape[:2] else input_shape[0] * input_shape[1]
        return (lead,) + tuple(input_shape[2:])


@keras.saving.register_keras_serializable(package="tsn_keras")
class UnfoldSegments(layers.Layer):
    """([B*K, N], snippets [B, K, ...]) -> [B, K, N]: the inverse of FoldSegments."""

    def call(self, inputs):
        scores, snippets = inputs
        k = ops.shape(snippets)[1]
        return ops.reshape(scores, (-1, k, scores.shape[-1]))  # [B, K, N]

    def compute_output_shape(self, input_shape):
        scores_shape, snippets_shape = input_shape
        return (snippets_shape[0], snippets_shape[1], scores_shape[-1])


def apply_partial_bn(model: keras.Model) -> list[layers.BatchNormalization]:
    """Freezes every BatchNormalization layer of `model` but the first (TSN's partial BN).

    Returns:
        The frozen layers (trainable=False: inference mode, gamma/beta not trained).
    """
    bns = transfer.batch_norm_layers(model)
    for bn in bns[1:]:
        bn.trainable = False
    return bns[1:]


def build_tsn(config: TSNConfig) -> keras.Model:
    """Builds a TSN model.

    Args:
        config: The model's configuration.

    Returns:
        keras.Model: float32 [B, K, H, W, C] preprocessed snippets (any K, H = W =
        config.input_size, C = modalities.network_channels(modality, snippet_length)) -> float32
        logits [B, num_classes]. Softmax belongs to the loss (from_logits=True) and to the export.
    """
    channels = modalities.network_channels(config.modality, config.snippet_length)
    size = config.input_size
    snippets = keras.Input(shape=(None, size, size, channels), name="snippets")  # [B, K, H, W, C]
    backbone = backbones.build_backbone(
        config.backbone, (size, size, channels), weights=config.backbone_weights
    )
    if config.partial_bn:
        apply_partial_bn(backbone)
    x = FoldSegments(name="fold_segments")(snippets)  # [B*K, H, W, C]
    x = backbone(x)  # [B*K, D]
    if config.effective_dropout > 0:
        x = layers.Dropout(config.effective_dropout, name="dropout")(x)
    x = layers.Dense(
        config.num_classes,
        kernel_initializer=keras.initializers.RandomNormal(mean=0.0, stddev=0.001),
        bias_initializer="zeros",
        name=CLASSIFIER_NAME,
    )(x)  # [B*K, N]
    x = UnfoldSegments(name="unfold_segments")([x, snippets])  # [B, K, N]
    logits = Consensus(
        **_parse_consensus(config.consensus, config.num_segments),
        dtype="float32",
        name=CONSENSUS_NAME,
    )(x)  # [B, N]
    return keras.Model(snippets, logits, name=f"tsn_{config.backbone}_{config.modality}")


def backbone_of(model: keras.Model) -> keras.Model:
    """The nested backbone model of a TSN model."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return layer
    raise ValueError(f"Model {model.name!r} has no nested backbone; was it built by build_tsn?")


def load_classifier_weights(model: keras.Model, path: str) -> None:
    """Loads the classifier of a converted TSN checkpoint into a TSN model's classifier.

    `scripts/convert_weights.py` writes a TSN checkpoint (`module.base_model.*` +
    `module.new_fc.*`) as a BN-Inception weights file whose `last_linear` is the TSN classifier.
    Build the model with `TSNConfig(backbone_weights=path, ...)` for the backbone, then call
    this for the classifier. The file is read with h5py in Keras 3's weights layout, where
    BN-Inception's only Dense layer (`last_linear`) is stored as `layers/dense/vars/{0,1}`.

    Args:
        model: A TSN model from `build_tsn` (any backbone whose feature width matches).
        path: The converted `.weights.h5` file (with a classifier of the model's width).
    """
    import h5py

    classifier = model.get_layer(CLASSIFIER_NAME)
    want = tuple(classifier.kernel.shape)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Classifier weights file {path!r} does not exist.")
    with h5py.File(path, "r") as f:
        kernel, bias = f.get("layers/dense/vars/0"), f.get("layers/dense/vars/1")
        if kernel is None or bias is None or tuple(kernel.shape) != want:
            found = None if kernel is None else tuple(kernel.shape)
            raise ValueError(
                f"{path} has no classifier of shape {want} (found {found}); convert a TSN "
                "checkpoint with module.new_fc.* keys of the model's class count."
            )
        classifier.set_weights([np.asarray(kernel), np.asarray(bias)])


@dataclasses.dataclass(frozen=True)
class ParamGroup:
    """Trainable variables that share a learning-rate and weight-decay multiplier."""

    name: str
    variables: list
    lr_mult: float
    decay_mult: float


def param_groups(model: keras.Model, modality: str) -> list[ParamGroup]:
    """Splits the trainable variables into TSN's optimiser groups (tsn-pytorch's policies).

    Groups (empty ones are left out):
        first_conv_weight (5, 1) / first_conv_bias (10, 0): the backbone's first convolution,
            flow / warped_flow / rgbdiff only (for rgb it belongs to weights / biases);
        weights (1, 1): other conv / dense kernels;
        biases (2, 0): other biases;
        bn (1, 0): trainable normalisation scale/shift (with partial BN: the first BN's only);
        consensus (1, 0): the weighted consensus' segment weights.

    Args:
        model: A model from `build_tsn`.
        modality: The model's modality.

    Returns:
        list of ParamGroup (name, variables, lr_mult, decay_mult); every trainable variable of
        the model is in exactly one group.
    """
    special_first = modalities.check(modality) != "rgb"
    first = transfer.first_conv_layer(model) if special_first else None
    norm_types = (layers.BatchNormalization, layers.LayerNormalization, layers.GroupNormalization)
    groups: dict[str, list] = {
        n: [] for n in ("first_conv_weight", "first_conv_bias", "weights", "biases", "bn")
    }
    groups["consensus"] = []
    for layer in transfer.leaf_layers(model):
        bias = getattr(layer, "bias", None)
        for var in layer.trainable_weights:
            if isinstance(layer, norm_types):
                groups["bn"].append(var)
            elif isinstance(layer, Consensus):
                groups["consensus"].append(var)
            elif layer is first:
                groups["first_conv_bias" if var is bias else "first_conv_weight"].append(var)
            else:
                groups["biases" if var is bias else "weights"].append(var)
    mults = {
        "first_conv_weight": (5.0, 1.0),
        "first_conv_bias": (10.0, 0.0),
        "weights": (1.0, 1.0),
        "biases": (2.0, 0.0),
        "bn": (1.0, 0.0),
        "consensus": (1.0, 0.0),
    }
    result = [ParamGroup(n, v, *mults[n]) for n, v in groups.items() if v]
    grouped = [id(v) for g in result for v in g.variables]
    expected = [id(v) for v in model.trainable_variables]
    if sorted(grouped) != sorted(expected):
        raise RuntimeError(
            f"param_groups covers {len(grouped)} variables, the model has {len(expected)} "
            "trainable ones; a layer type is not handled in tsn_keras/models/tsn.py."
        )
    return result
