"""The training and evaluation steps of a TSN run, testable alone on one batch.

`make_steps` returns two tf.functions over an iterator of (uint8 views, labels) batches:

    train(iterator): on each replica
        models.preprocess_input (on the replica's device: the host ships uint8, 4x fewer bytes)
        GradientTape, tf.nn.compute_average_loss(global batch)
        all-reduce the gradients (SUM)          -> the gradient of the global batch's mean loss
        clip by global norm (clip_norm)          (TSN/Caffe clip before weight decay)
        + weight_decay * decay_mult * w          (L2 on the 'weights' groups only)
        * lr_mult                                (per parameter group)
        optimizer.apply_gradients(g / replicas)  (Keras sums the replicas' gradients again)
    evaluate(iterator): logits in inference mode; padding clips (label PAD_LABEL) weigh 0.
Both return the global sums [loss, top-1 hits, top-5 hits, clips, non-finite weights] (SUMS),
reduced in-graph; the last counts the model's weight values that are NaN or infinite after
train's update (0 from evaluate), so a run stops at the step that broke the weights, not at a
later loss.

Per-group learning rates as gradient scaling: Keras' SGD with momentum updates
m <- momentum * m - lr * g; w <- w + m, which is linear in g, so scaling g by lr_mult is
exactly a learning rate of lr * lr_mult for that group (the same holds for Caffe's update, which
TSN used). The L2 term is added after clipping and before the multiplier, as in Caffe and
PyTorch (grad + wd * w, then lr * lr_mult).

Why all-reduce before apply_gradients: clipping by the global norm needs the norm of the whole
batch's gradient, not of each replica's share. Keras' optimizer only all-reduces inside
apply_gradients, after any clipping it would do, so the step reduces first and hands Keras
g / replicas, which its own reduction sums back to g. The price is a second all-reduce of the
gradients per step; the alternative, overriding the optimizer's private update path, breaks
with Keras releases. BatchNorm statistics (the one BN partial BN keeps training) are computed
per replica, as tsn-pytorch's DataParallel does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from tsn_keras.config import TrainConfig
from tsn_keras.models import param_groups, preprocess_input

# What both steps return, summed over the batch (and the replicas).
SUMS = ("loss", "top1", "top5", "count", "nonfinite_weights")


def make_lr_schedule(config: TrainConfig, steps_per_epoch: int):
    """Step (x lr_decay at each of lr_steps epochs) or cosine decay over the whole run."""
    total = config.epochs * steps_per_epoch
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=total)
    steps = list(config.lr_steps)
    if not steps:
        return config.lr
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=[s * steps_per_epoch for s in steps],
        values=[config.lr * config.lr_decay**i for i in range(len(steps) + 1)],
    )


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """SGD with momentum on the run's schedule; wrapped for loss scaling under mixed_float16."""
    optimizer = keras.optimizers.SGD(
        learning_rate=make_lr_schedule(config, steps_per_epoch), momentum=config.momentum
    )
    if config.mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def current_lr(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate the optimizer applies at its current iteration."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return float(keras.ops.convert_to_numpy(inner.learning_rate))


def transform_gradients(grads, variables, decays, lr_mults, clip_norm: float, scale=1.0):
    """TSN's gradient rule on the full-batch gradient: clip, add L2, apply lr multipliers.

    g <- clip_by_global_norm(g, clip_norm)   (skipped when clip_norm is 0)
    g <- (g + decay * w) * lr_mult           per variable (decay = weight_decay * decay_mult)

    Caffe and tsn-pytorch clip first and add the L2 term after, as here. With loss scaling the
    gradients arrive multiplied by `scale`; the clip norm and the L2 term are scaled alike so
    the result is `scale` times the unscaled rule.

    Args:
      grads: list of gradient tensors (all-reduced: the same on every replica).
      variables: the matching variables.
      decays: per variable weight_decay * decay_mult.
      lr_mults: per variable learning-rate multiplier.
      clip_norm: global-norm threshold; 0 disables.
      scale: the loss scale (1.0 without loss scaling).

    Returns:
      the transformed gradients, same order.
    """
    if clip_norm > 0:
        grads, _ = tf.clip_by_global_norm(grads, clip_norm * scale)
    out = []
    for g, v, d, m in zip(grads, variables, decays, lr_mults, strict=True):
        value = v.value if isinstance(v, keras.Variable) else v
        if d:
            g = g + (d * scale) * value
        out.append(g * m if m != 1.0 else g)
    return out


@dataclasses.dataclass(frozen=True)
class Steps:
    """The step functions of a run and the per-variable rule they apply.

    Attributes:
      train: tf.function(iterator) -> SUMS of the global batch, after one SGD update (with
        the count of non-finite weight values after it).
      evaluate: tf.function(iterator) -> SUMS of the global batch, no update.
      variables: the trained variables, in parameter-group order.
      decays: per variable, weight_decay * the group's decay_mult.
      lr_mults: per variable, the group's learning-rate multiplier.
    """

    train: Callable
    evaluate: Callable
    variables: Sequence
    decays: Sequence[float]
    lr_mults: Sequence[float]


def _nonfinite_count(weights: Sequence) -> tf.Tensor:
    """How many values of the float `weights` are NaN or infinite (float32 scalar)."""
    counts = [
        tf.reduce_sum(tf.cast(tf.logical_not(tf.math.is_finite(w.value)), tf.float32))
        for w in weights
        if keras.backend.is_float_dtype(w.dtype)
    ]
    return tf.add_n(counts) if counts else tf.constant(0.0)


def _sums(logits, labels, weights, per_example, top_k: int, nonfinite=0.0) -> tf.Tensor:
    labels = tf.cast(labels, tf.int32)
    top1 = tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32) * weights
    top5 = tf.cast(tf.math.in_top_k(labels, logits, top_k), tf.float32) * weights
    return tf.stack(
        [
            tf.reduce_sum(per_example * weights),
            tf.reduce_sum(top1),
            tf.reduce_sum(top5),
            tf.reduce_sum(weights),
            tf.cast(nonfinite, tf.float32),
        ]
    )


def make_steps(
    model: keras.Model,
    optimizer: keras.optimizers.Optimizer,
    strategy: tf.distribute.Strategy,
    config: TrainConfig,
    num_classes: int,
) -> Steps:
    """Builds the optimizer's slots and the train / evaluate step functions of `model`.

    Args:
      model: a TSN model built under `strategy.scope()`.
      optimizer: from `make_optimizer` (built here, under the strategy's scope).
      strategy: the run's strategy (tf.distribute.get_strategy() for none).
      config: uses modality, backbone, batch_size (global), weight_decay, clip_norm,
        mixed_precision.
      num_classes: for top-5 (top-k with k = min(5, classes)).
    """
    groups = param_groups(model, config.modality)
    variables = [v for g in groups for v in g.variables]
    lr_mults = [g.lr_mult for g in groups for _ in g.variables]
    decays = [config.weight_decay * g.decay_mult for g in groups for _ in g.variables]
    with strategy.scope():
        optimizer.build(variables)
    loss_scaling = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    replicas = strategy.num_replicas_in_sync
    global_batch = config.batch_size
    top_k = min(5, num_classes)
    clip_norm = float(config.clip_norm)
    sum_op = tf.distribute.ReduceOp.SUM

    def network_input(views):  # uint8 views -> normalised input, on the replica's device
        return preprocess_input(views, backbone=config.backbone, modality=config.modality)

    def train_replica_step(clips, labels):
        with tf.GradientTape() as tape:
            logits = tf.cast(model(network_input(clips), training=True), tf.float32)
            per_example = keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            )
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled = optimizer.scale_loss(loss) if loss_scaling else loss
        grads = tape.gradient(scaled, variables)
        ctx = tf.distribute.get_replica_context()
        grads = ctx.all_reduce(sum_op, grads)  # gradient of the global batch's mean loss
        scale = optimizer.dynamic_scale if loss_scaling else 1.0  # grads are scale * g
        grads = transform_gradients(grads, variables, decays, lr_mults, clip_norm, scale)
        # Keras' apply_gradients all-reduces (sums) the replicas' gradients once more.
        grads = [g / replicas for g in grads]
        optimizer.apply_gradients(zip(grads, variables, strict=True))
        nonfinite = _nonfinite_count(model.weights)  # after the update, so it sees its result
        return _sums(logits, labels, tf.ones_like(per_example), per_example, top_k, nonfinite)

    def eval_replica_step(clips, labels):
        weights = tf.cast(labels >= 0, tf.float32)  # padding clips carry PAD_LABEL = -1
        labels = tf.maximum(labels, 0)
        logits = tf.cast(model(network_input(clips), training=False), tf.float32)
        per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return _sums(logits, labels, weights, per_example, top_k)

    @tf.function
    def train(iterator):
        clips, labels = next(iterator)
        sums = strategy.run(train_replica_step, args=(clips, labels))
        return strategy.reduce(sum_op, sums, axis=None)

    @tf.function
    def evaluate(iterator):
        clips, labels = next(iterator)
        sums = strategy.run(eval_replica_step, args=(clips, labels))
        return strategy.reduce(sum_op, sums, axis=None)

    return Steps(train, evaluate, variables, decays, lr_mults)
