"""Train a TSN stream: `python -m tsn_keras.train --records DIR --modality rgb --model_dir DIR`.

One custom training loop serves every strategy (one device, mirrored, multi-worker), the way TF
Model Garden's trainers work; Keras 3's `Model.fit` fails under MultiWorkerMirroredStrategy
(keras-team/keras#20585, see DESIGN.md):

    strategy.distribute_datasets_from_function(make_dataset)  -> per-replica uint8 batches
    strategy.run(step): models.preprocess_input on the replica's device (the host ships uint8,
        4x fewer bytes than float32), GradientTape, tf.nn.compute_average_loss(global batch),
        then
        all-reduce the gradients (SUM)          -> the gradient of the global batch's mean loss
        clip by global norm (--clip_norm)        (TSN/Caffe clip before weight decay)
        + weight_decay * decay_mult * w          (L2 on the 'weights' groups only)
        * lr_mult                                (per parameter group)
        optimizer.apply_gradients(g / replicas)  (Keras sums the replicas' gradients again)
    metrics: per-replica sums, strategy.reduce(SUM) inside the same tf.function.

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

Paper defaults (TSN, Wang et al. 2016; tsn-pytorch README; Caffe solvers), chosen per modality
when the flag is not given:

| modality            | --lr  | --clip_norm | --dropout | --epochs | --lr_steps |
|---------------------|-------|-------------|-----------|----------|------------|
| rgb, rgbdiff        | 0.001 | 40          | 0.8       | 80       | 30,60      |
| flow, warped_flow   | 0.005 | 20          | 0.7       | 340      | 190,300    |

SGD momentum 0.9, weight decay 5e-4, K=3 segments, batch 128. The default --lr is for a
global batch of 128 and is scaled linearly with --batch_size; an explicit --lr is used as is.

TensorBoard (<model_dir>/train and /validation): epoch_loss, epoch_top1, epoch_top5 per epoch
for both; learning_rate, clips_per_second and batch_loss (every 10 steps) for training; the
flags as a text table and a grid of augmented input snippets of the first batch (flow: the
first x/y field as red/green) at the start. The console shows a keras Progbar per epoch.

Fault tolerance: every epoch a checkpoint (model, optimizer, epoch, step) goes to
<model_dir>/checkpoints; running the same command again restores the latest one and continues,
ending at the same --epochs. Under multi_worker every worker saves (the chief into model_dir,
the others into a temporary folder that is deleted), and every worker restores the chief's.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from tsn_keras import augment, input_pipeline, records
from tsn_keras.models import BACKBONES, TSNConfig, build_tsn, param_groups, preprocess_input

MODALITIES = augment.MODALITIES
STRATEGIES = ("mirrored", "multi_worker", "one_device")
LR_SCHEDULES = ("step", "cosine")
MIXED_PRECISION = ("none", "mixed_bfloat16", "mixed_float16")
REFERENCE_BATCH = 128  # the effective batch of TSN's solvers; default lr is scaled to it
CONFIG_NAME = "train_config.json"
CLASSES_NAME = "classes.txt"
CHECKPOINT_DIR = "checkpoints"
LOG_EVERY = 10  # steps between step-level TensorBoard scalars

# Paper defaults per stream: lr (at batch 128), clip_norm, dropout, epochs, lr_steps.
_RGB_DEFAULTS = dict(lr=0.001, clip_norm=40.0, dropout=0.8, epochs=80, lr_steps=(30, 60))
_FLOW_DEFAULTS = dict(lr=0.005, clip_norm=20.0, dropout=0.7, epochs=340, lr_steps=(190, 300))


def paper_defaults(modality: str) -> dict:
    """TSN's per-modality training settings (see the module docstring's table)."""
    if modality not in MODALITIES:
        raise ValueError(f"--modality must be one of {MODALITIES}. Received: {modality!r}")
    return dict(_FLOW_DEFAULTS if modality in augment.FLOW_MODALITIES else _RGB_DEFAULTS)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; one field per `python -m tsn_keras.train` flag.

    Fields left None take the paper default of the modality (`resolved()` fills them in).
    Construction validates every field and names the flag on error, before any data is read.
    """

    records: str
    model_dir: str
    modality: str = "rgb"
    backbone: str = "bn_inception"
    pretrained: str | None = None  # None, "imagenet" or a .weights.h5 file
    num_segments: int = 3
    consensus: str = "avg"
    partial_bn: bool = True
    dropout: float | None = None
    input_size: int = 224
    batch_size: int = 128  # global, over all replicas and workers
    epochs: int | None = None
    steps_per_epoch: int | None = None  # None: train examples // batch_size
    lr: float | None = None  # None: paper lr * batch_size / 128
    lr_schedule: str = "step"
    lr_steps: tuple[int, ...] | None = None  # epochs at which lr *= lr_decay
    lr_decay: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    clip_norm: float | None = None  # 0 disables clipping
    mixed_precision: str = "none"
    strategy: str = "mirrored"
    cpu_devices: int = 0  # >1: split the CPU into that many logical devices (mirrored tests)
    export_dir: str | None = None  # None: <model_dir>/export; "" : no export
    seed: int | None = None
    val_every: int = 1  # validate every N epochs; 0: never
    more_fix_crop: bool = True
    random_flip: bool = True
    shuffle_buffer: int = 256
    verbose: bool = True

    def __post_init__(self):
        def fail(flag, rule, value):
            raise ValueError(f"--{flag} {rule}. Received: --{flag}={value!r}")

        if not self.records:
            fail("records", "is required (a records folder with manifest.json)", self.records)
        if not self.model_dir:
            fail("model_dir", "is required", self.model_dir)
        if self.modality not in MODALITIES:
            fail("modality", f"must be one of {MODALITIES}", self.modality)
        if self.backbone not in BACKBONES:
            fail("backbone", f"must be one of {BACKBONES}", self.backbone)
        if self.pretrained == "imagenet" and self.backbone in ("bn_inception", "tiny"):
            fail(
                "pretrained",
                f"'imagenet' needs a keras.applications backbone, not --backbone="
                f"{self.backbone} (convert TSN/ImageNet BN-Inception weights with "
                "scripts/convert_weights.py and pass the .weights.h5 file)",
                self.pretrained,
            )
        if self.pretrained not in (None, "imagenet") and not os.path.isfile(self.pretrained):
            fail(
                "pretrained",
                "must be 'imagenet', 'none' or an existing weights file",
                self.pretrained,
            )
        for flag in ("num_segments", "batch_size", "input_size"):
            if getattr(self, flag) < 1:
                fail(flag, "must be >= 1", getattr(self, flag))
        if self.input_size < 32:
            fail("input_size", "must be >= 32", self.input_size)
        if self.epochs is not None and self.epochs < 1:
            fail("epochs", "must be >= 1", self.epochs)
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            fail(
                "steps_per_epoch",
                "must be >= 1 (leave it unset for one pass)",
                self.steps_per_epoch,
            )
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            fail("dropout", "must be in [0, 1)", self.dropout)
        if self.lr is not None and not self.lr > 0:
            fail("lr", "must be > 0", self.lr)
        if self.lr_schedule not in LR_SCHEDULES:
            fail("lr_schedule", f"must be one of {LR_SCHEDULES}", self.lr_schedule)
        if self.lr_schedule == "cosine" and self.lr_steps is not None:
            raise ValueError(
                "--lr_steps and --lr_schedule=cosine contradict each other: the cosine schedule "
                f"has no steps. Drop --lr_steps or use --lr_schedule=step. Received: "
                f"--lr_steps={','.join(map(str, self.lr_steps))}"
            )
        if self.lr_steps is not None:
            steps = list(self.lr_steps)
            if any(s < 1 for s in steps) or steps != sorted(set(steps)):
                fail("lr_steps", "must be increasing positive epochs", self.lr_steps)
            if self.epochs is not None and steps and steps[-1] >= self.epochs:
                fail("lr_steps", f"must all be < --epochs={self.epochs}", self.lr_steps)
        if not 0 < self.lr_decay <= 1:
            fail("lr_decay", "must be in (0, 1]", self.lr_decay)
        if not 0 <= self.momentum < 1:
            fail("momentum", "must be in [0, 1)", self.momentum)
        if self.weight_decay < 0:
            fail("weight_decay", "must be >= 0", self.weight_decay)
        if self.clip_norm is not None and self.clip_norm < 0:
            fail("clip_norm", "must be >= 0 (0 disables clipping)", self.clip_norm)
        if self.mixed_precision not in MIXED_PRECISION:
            fail("mixed_precision", f"must be one of {MIXED_PRECISION}", self.mixed_precision)
        if self.strategy not in STRATEGIES:
            fail("strategy", f"must be one of {STRATEGIES}", self.strategy)
        if self.strategy == "multi_worker" and not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable (cluster and "
                "task); set it on every worker, or use --strategy=mirrored on one machine"
            )
        if self.cpu_devices < 0 or (self.cpu_devices > 1 and self.strategy == "one_device"):
            raise ValueError(
                "--cpu_devices splits the CPU for --strategy=mirrored/multi_worker; it "
                f"contradicts --strategy=one_device. Received: --cpu_devices={self.cpu_devices}"
            )
        if self.val_every < 0:
            fail("val_every", "must be >= 0 (0 disables validation)", self.val_every)
        if self.shuffle_buffer < 1:
            fail("shuffle_buffer", "must be >= 1", self.shuffle_buffer)

    def resolved(self) -> TrainConfig:
        """A copy with every None field set to the modality's paper default."""
        d = paper_defaults(self.modality)
        return dataclasses.replace(
            self,
            lr=self.lr if self.lr is not None else d["lr"] * self.batch_size / REFERENCE_BATCH,
            clip_norm=d["clip_norm"] if self.clip_norm is None else self.clip_norm,
            dropout=d["dropout"] if self.dropout is None else self.dropout,
            epochs=d["epochs"] if self.epochs is None else self.epochs,
            lr_steps=(
                tuple(s for s in d["lr_steps"] if s < (self.epochs or d["epochs"]))
                if self.lr_steps is None and self.lr_schedule == "step"
                else self.lr_steps
            ),
            export_dir=(
                os.path.join(self.model_dir, "export")
                if self.export_dir is None
                else self.export_dir
            ),
        )

    def tsn_config(self, num_classes: int, snippet_length: int) -> TSNConfig:
        """The model part of this config."""
        return TSNConfig(
            num_classes=num_classes,
            modality=self.modality,
            backbone=self.backbone,
            num_segments=self.num_segments,
            consensus=self.consensus,
            dropout=self.dropout,
            partial_bn=self.partial_bn,
            input_size=self.input_size,
            snippet_length=snippet_length,
            backbone_weights=self.pretrained,
        )

    def to_json(self) -> dict:
        """The fields as a JSON-ready dict (saved in <model_dir>/train_config.json)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> TrainConfig:
        """Inverse of to_json; unknown keys (from newer versions) are ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if d.get("lr_steps") is not None:
            d["lr_steps"] = tuple(d["lr_steps"])
        return cls(**d)


def read_train_config(model_dir: str) -> tuple[TrainConfig, dict]:
    """The resolved TrainConfig and data facts a run saved in <model_dir>/train_config.json."""
    path = os.path.join(model_dir, CONFIG_NAME)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{path} not found: --model_dir must be a folder written by python -m tsn_keras.train"
        )
    with tf.io.gfile.GFile(path) as f:
        saved = json.load(f)
    return TrainConfig.from_json(saved["config"]), saved["data"]


# ---------------------------------------------------------------------------------------------
# Distribution.


def make_strategy(name: str) -> tf.distribute.Strategy:
    """mirrored: all local GPUs, else all (logical) CPUs; multi_worker: from TF_CONFIG;
    one_device: the first GPU, else the CPU."""
    if name == "multi_worker":  # must come before anything initialises the TF runtime
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)


def split_cpu(num_devices: int) -> None:
    """Splits the physical CPU into `num_devices` logical devices. Must run before TF starts."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    )


def _is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (
        not has_chief and resolver.task_type == "worker" and resolver.task_id == 0
    )


def _num_workers(strategy: tf.distribute.Strategy) -> int:
    """Workers (= input pipelines of distribute_datasets_from_function) in the cluster."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(len(spec.get("worker", [])) + len(spec.get("chief", [])), 1)


# ---------------------------------------------------------------------------------------------
# Optimisation.


def make_lr_schedule(config: TrainConfig, steps_per_epoch: int):
    """Step (x lr_decay at each of lr_steps epochs) or cosine decay over the whole run."""
    total = config.epochs * steps_per_epoch
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=total)
    steps = list(config.lr_steps or ())
    if not steps:
        return config.lr
    return keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=[s * steps_per_epoch for s in steps],
        values=[config.lr * config.lr_decay**i for i in range(len(steps) + 1)],
    )


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


def current_lr(optimizer) -> float:
    """The learning rate the optimizer applies at its current iteration."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return float(keras.ops.convert_to_numpy(inner.learning_rate))


def _input_grid(clips: np.ndarray, modality: str, max_clips: int = 4) -> np.ndarray:
    """[B, K, S, S, C] 0-255 snippets -> one RGB image [1, rows*S, K*S, 3] in [0, 1].

    rgb as is; rgbdiff its first frame; flow the first field as (R, G, B) = (x, y, 128), so
    rightward motion is red, leftward dark, up/down in green.
    """
    clips = clips[:max_clips]
    if modality in augment.FLOW_MODALITIES:
        rgb = np.stack([clips[..., 0], clips[..., 1], np.full_like(clips[..., 0], 128)], -1)
    else:
        rgb = clips[..., :3]
    n, k, s, _, _ = rgb.shape
    grid = rgb.transpose(0, 2, 1, 3, 4).reshape(n * s, k * s, 3)  # [n*S, K*S, 3]
    return np.clip(grid[None] / 255.0, 0.0, 1.0)


def _flags_markdown(config: TrainConfig) -> str:
    rows = "\n".join(f"| {k} | {v} |" for k, v in config.to_json().items())
    return "| flag | value |\n|---|---|\n" + rows


# ---------------------------------------------------------------------------------------------
# The run.


def run(config: TrainConfig, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains (or resumes) a TSN stream; returns the last epoch's metrics.

    A model_dir with checkpoints is resumed from its last completed epoch (the steps of an
    interrupted epoch are redone). The Keras mixed-precision policy is restored on return.

    Args:
      config: the run's settings; None fields take the modality's paper defaults.
      strategy: optional, built from config.strategy when None.

    Returns:
      dict with "epoch", "step", "train_loss", "train_top1", "train_top5", and when validated
      "val_loss", "val_top1", "val_top5"; "export_dir" when exported.

    Raises:
      FloatingPointError: the loss became NaN or infinite.
      ValueError / FileNotFoundError: records missing or not matching the flags.
    """
    policy = keras.mixed_precision.global_policy()
    try:
        return _run(config.resolved(), strategy)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _warn_if_config_changed(path: str, config: TrainConfig) -> None:
    if not tf.io.gfile.exists(path):
        return
    with tf.io.gfile.GFile(path) as f:
        saved = json.load(f)["config"]
    now = config.to_json()
    changed = [
        f"--{k}: {saved.get(k)!r} -> {now[k]!r}"
        for k in now
        if k != "verbose" and json.loads(json.dumps(now[k])) != saved.get(k)
    ]
    if changed:
        logging.warning("Resuming %s with changed flags: %s", path, "; ".join(changed))


def _run(config: TrainConfig, strategy: tf.distribute.Strategy | None) -> dict:
    manifest = records.read_manifest(config.records)
    stored = manifest.get("modalities", [])
    if config.modality not in stored:
        raise ValueError(
            f"--modality={config.modality} is not stored in {config.records} (it holds "
            f"{stored}); convert with --modalities including it or pick another --modality"
        )
    classes = list(manifest["classes"])
    snippet_length = int(manifest.get("snippet_length", 1))
    num_train = int(manifest["sets"]["train"]["num_examples"])
    has_val = "test" in manifest["sets"] and config.val_every > 0
    strategy = strategy or make_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    num_workers = _num_workers(strategy)
    if config.batch_size % replicas:
        raise ValueError(
            f"--batch_size={config.batch_size} (global) must be a multiple of the "
            f"{replicas} replicas of --strategy={config.strategy}"
        )
    steps_per_epoch = config.steps_per_epoch or max(num_train // config.batch_size, 1)
    chief = _is_chief(strategy)
    tsn_config = config.tsn_config(len(classes), snippet_length)
    if config.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(config.mixed_precision)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)

    model_dir = config.model_dir
    ckpt_dir = os.path.join(model_dir, CHECKPOINT_DIR)
    if chief:
        tf.io.gfile.makedirs(model_dir)
        _warn_if_config_changed(os.path.join(model_dir, CONFIG_NAME), config)
        with tf.io.gfile.GFile(os.path.join(model_dir, CONFIG_NAME), "w") as f:
            data = {
                "classes": classes,
                "snippet_length": snippet_length,
                "steps_per_epoch": steps_per_epoch,
                "replicas": replicas,
                "conversion": manifest.get("config"),
            }
            json.dump({"config": config.to_json(), "data": data}, f, indent=1)
        with tf.io.gfile.GFile(os.path.join(model_dir, CLASSES_NAME), "w") as f:
            f.write("\n".join(classes) + "\n")

    with strategy.scope():
        model = build_tsn(tsn_config)
        groups = param_groups(model, config.modality)
        variables = [v for g in groups for v in g.variables]
        lr_mults = [g.lr_mult for g in groups for _ in g.variables]
        decays = [config.weight_decay * g.decay_mult for g in groups for _ in g.variables]
        optimizer = keras.optimizers.SGD(
            learning_rate=make_lr_schedule(config, steps_per_epoch), momentum=config.momentum
        )
        loss_scaling = config.mixed_precision == "mixed_float16"
        if loss_scaling:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(variables)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, epoch=epoch_var, step=step_var
    )
    # Every worker writes (the save needs all of them); only the chief's copy is kept.
    task_id = getattr(getattr(strategy, "cluster_resolver", None), "task_id", 0) or 0
    write_dir = ckpt_dir if chief else os.path.join(ckpt_dir, f"worker_tmp_{task_id}")
    manager = tf.train.CheckpointManager(checkpoint, write_dir, max_to_keep=3)
    latest = tf.train.latest_checkpoint(ckpt_dir)
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resumed from %s (epoch %d, step %d)", latest, int(epoch_var), int(step_var))
    start_epoch = int(epoch_var.numpy())
    if start_epoch >= config.epochs:
        logging.info(
            "Already trained %d of --epochs=%d; nothing to do.", start_epoch, config.epochs
        )

    # Data: a fresh seed per (re)start so a resumed run does not replay the first batches.
    data_seed = None if config.seed is None else config.seed + 7919 * start_epoch
    global_batch = config.batch_size

    def train_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
        return input_pipeline.make_dataset(
            config.records,
            "train",
            config.modality,
            config.num_segments,
            global_batch,
            training=True,
            input_size=config.input_size,
            seed=data_seed,
            input_context=ctx,
            more_fix_crop=config.more_fix_crop,
            random_flip=config.random_flip,
            shuffle_buffer=config.shuffle_buffer,
        )

    if has_val:
        per_pipeline = input_pipeline.examples_per_pipeline(config.records, "test", num_workers)
        per_step = global_batch // num_workers  # examples a pipeline feeds per step
        val_steps = max(math.ceil(max(per_pipeline) / per_step), 1)
        local_replicas = replicas // num_workers

        def val_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            return input_pipeline.make_dataset(
                config.records,
                "test",
                config.modality,
                config.num_segments,
                global_batch,
                training=False,
                input_size=config.input_size,
                input_context=ctx,
                pad_to_batches=val_steps * local_replicas,
            )

        val_data = strategy.distribute_datasets_from_function(val_fn)
    train_iter = iter(strategy.distribute_datasets_from_function(train_fn))

    top_k = min(5, len(classes))
    sum_op = tf.distribute.ReduceOp.SUM
    clip_norm = float(config.clip_norm or 0.0)

    def _sums(logits, labels, weights, per_example):
        labels = tf.cast(labels, tf.int32)
        top1 = tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32) * weights
        top5 = tf.cast(tf.math.in_top_k(labels, logits, top_k), tf.float32) * weights
        return tf.stack(
            [
                tf.reduce_sum(per_example * weights),
                tf.reduce_sum(top1),
                tf.reduce_sum(top5),
                tf.reduce_sum(weights),
            ]
        )

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
        return _sums(logits, labels, tf.ones_like(per_example), per_example)

    @tf.function
    def train_step(iterator):
        clips, labels = next(iterator)
        sums = strategy.run(train_replica_step, args=(clips, labels))
        return strategy.reduce(sum_op, sums, axis=None)

    def eval_replica_step(clips, labels):
        weights = tf.cast(labels >= 0, tf.float32)  # padding clips carry PAD_LABEL = -1
        labels = tf.maximum(labels, 0)
        logits = tf.cast(model(network_input(clips), training=False), tf.float32)
        per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return _sums(logits, labels, weights, per_example)

    @tf.function
    def eval_step(iterator):
        clips, labels = next(iterator)
        sums = strategy.run(eval_replica_step, args=(clips, labels))
        return strategy.reduce(sum_op, sums, axis=None)

    if chief:
        train_writer = tf.summary.create_file_writer(os.path.join(model_dir, "train"))
        val_writer = tf.summary.create_file_writer(os.path.join(model_dir, "validation"))
    else:
        train_writer = val_writer = tf.summary.create_noop_writer()

    if chief and start_epoch < config.epochs:
        _write_run_summaries(config, train_writer, int(step_var.numpy()))

    result: dict = {}
    for epoch in range(start_epoch, config.epochs):
        progbar = keras.utils.Progbar(
            steps_per_epoch,
            verbose=1 if (chief and config.verbose) else 0,
            stateful_metrics=["loss", "top1", "top5", "lr"],
        )
        totals = np.zeros(4)
        start = time.perf_counter()
        for i in range(steps_per_epoch):
            sums = train_step(train_iter).numpy()
            if not np.isfinite(sums[0]):
                raise FloatingPointError(
                    f"Loss is {sums[0] / max(sums[3], 1)} at epoch {epoch + 1}, step {i + 1} "
                    f"(lr {current_lr(optimizer):g}); training stopped. Lower --lr, set "
                    f"--clip_norm, or check the records. Last good checkpoint: "
                    f"{tf.train.latest_checkpoint(ckpt_dir)}"
                )
            totals += sums
            global_step = int(step_var.numpy()) + i + 1
            if global_step % LOG_EVERY == 0:
                with train_writer.as_default(step=global_step):
                    tf.summary.scalar("batch_loss", sums[0] / sums[3])
                    tf.summary.scalar("learning_rate", current_lr(optimizer))
            progbar.update(
                i + 1,
                [
                    ("loss", totals[0] / totals[3]),
                    ("top1", totals[1] / totals[3]),
                    ("top5", totals[2] / totals[3]),
                    ("lr", current_lr(optimizer)),
                ],
            )
        elapsed = time.perf_counter() - start
        step = int(step_var.numpy()) + steps_per_epoch
        epoch_var.assign(epoch + 1)
        step_var.assign(step)
        result = {
            "epoch": epoch + 1,
            "step": step,
            "train_loss": totals[0] / totals[3],
            "train_top1": totals[1] / totals[3],
            "train_top5": totals[2] / totals[3],
        }
        with train_writer.as_default(step=step):
            tf.summary.scalar("epoch_loss", result["train_loss"])
            tf.summary.scalar("epoch_top1", result["train_top1"])
            tf.summary.scalar("epoch_top5", result["train_top5"])
            tf.summary.scalar("learning_rate", current_lr(optimizer))
            tf.summary.scalar("clips_per_second", totals[3] / elapsed)
            tf.summary.scalar("epoch", epoch + 1)
        if has_val and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs):
            val_iter = iter(val_data)
            vals = np.zeros(4)
            for _ in range(val_steps):
                vals += eval_step(val_iter).numpy()
            count = max(vals[3], 1.0)
            result.update(
                val_loss=vals[0] / count, val_top1=vals[1] / count, val_top5=vals[2] / count
            )
            with val_writer.as_default(step=step):
                tf.summary.scalar("epoch_loss", result["val_loss"])
                tf.summary.scalar("epoch_top1", result["val_top1"])
                tf.summary.scalar("epoch_top5", result["val_top5"])
        train_writer.flush()
        val_writer.flush()
        manager.save(checkpoint_number=epoch + 1)
        if not chief:
            tf.io.gfile.rmtree(write_dir)
        if chief and config.verbose:
            shown = ", ".join(
                f"{k} {v:.4f}" for k, v in result.items() if k not in ("epoch", "step")
            )
            logging.info(
                "epoch %d/%d: %s (%.1f clips/s)",
                epoch + 1,
                config.epochs,
                shown,
                totals[3] / elapsed,
            )

    result.setdefault("epoch", int(epoch_var.numpy()))
    result.setdefault("step", int(step_var.numpy()))
    if chief and config.export_dir:
        from tsn_keras import export

        result["export_dir"] = export.export_from_model_dir(model_dir, config.export_dir)
        logging.info("Exported to %s", result["export_dir"])
    return result


def _write_run_summaries(config: TrainConfig, writer, step: int) -> None:
    """Flags as text and a grid of the first batch's input snippets (after augmentation)."""
    ds = input_pipeline.make_dataset(
        config.records,
        "train",
        config.modality,
        config.num_segments,
        min(config.batch_size, 4),
        training=True,
        input_size=config.input_size,
        seed=config.seed,
        shuffle_buffer=4,
    )
    clips, _ = next(iter(ds))
    with writer.as_default(step=step):
        tf.summary.text("flags", _flags_markdown(config))
        tf.summary.image(
            "input_snippets",
            _input_grid(clips.numpy(), config.modality),
            max_outputs=1,
            description="rows: clips of the first batch; columns: the K snippets"
            + (" (flow: R = x, G = y)" if config.modality in augment.FLOW_MODALITIES else ""),
        )
    writer.flush()


# ---------------------------------------------------------------------------------------------
# Command line.

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """Defines the command's flags (called only when this module is the program, or by tests
    on their own FlagValues)."""
    string = functools.partial(flags.DEFINE_string, flag_values=flag_values)
    integer = functools.partial(flags.DEFINE_integer, flag_values=flag_values)
    floating = functools.partial(flags.DEFINE_float, flag_values=flag_values)
    boolean = functools.partial(flags.DEFINE_boolean, flag_values=flag_values)
    enum = functools.partial(flags.DEFINE_enum, flag_values=flag_values)
    string_list = functools.partial(flags.DEFINE_list, flag_values=flag_values)
    string("records", None, "Records folder (manifest.json + shards).")
    string(
        "model_dir",
        None,
        "Checkpoints, TensorBoard logs, config; rerun the same command to resume.",
    )
    string("modality", "rgb", f"One of {MODALITIES}.")
    string("backbone", "bn_inception", f"One of {BACKBONES}.")
    string(
        "pretrained",
        "none",
        "Backbone weights: 'none', 'imagenet' (keras.applications "
        "backbones) or a .weights.h5 file (RGB weights initialise flow/rgbdiff by "
        "cross-modality init).",
    )
    integer("num_segments", 3, "K segments (snippets) per video.")
    string("consensus", "avg", "avg, max, weighted, topk or topk:<k>.")
    boolean("partial_bn", True, "Freeze all BN layers but the first.")
    floating("dropout", None, "Before the classifier. Default .8 rgb, .7 flow.")
    integer("input_size", 224, "Crop side fed to the network.")
    integer("batch_size", 128, "GLOBAL batch over all replicas and workers.")
    integer("epochs", None, "Default 80 rgb, 340 flow.")
    integer("steps_per_epoch", None, "Default: train videos // batch_size.")
    floating(
        "lr",
        None,
        "Learning rate as used. Default .001 rgb / .005 flow at "
        "batch 128, scaled linearly with --batch_size.",
    )
    enum("lr_schedule", "step", list(LR_SCHEDULES), "Step decay or cosine.")
    string_list(
        "lr_steps",
        None,
        "Epochs at which lr *= --lr_decay (step schedule). Default 30,60 rgb; 190,300 flow.",
    )
    floating("lr_decay", 0.1, "Step-decay factor.")
    floating("momentum", 0.9, "SGD momentum.")
    floating("weight_decay", 5e-4, "L2 on conv/dense kernels only (not BN, biases).")
    floating(
        "clip_norm", None, "Clip gradients by global norm. Default 40 rgb, 20 flow; 0 disables."
    )
    enum(
        "mixed_precision",
        "none",
        list(MIXED_PRECISION),
        "Keras mixed-precision policy (mixed_float16 uses loss scaling).",
    )
    enum(
        "strategy",
        "mirrored",
        list(STRATEGIES),
        "mirrored: all local GPUs (else CPUs); multi_worker: the cluster in "
        "TF_CONFIG; one_device: one GPU or the CPU.",
    )
    integer(
        "cpu_devices",
        0,
        "Split the CPU into N logical devices (mirrored "
        "training without GPUs, for tests and demos).",
    )
    string(
        "export_dir",
        None,
        "SavedModel written at the end. Default <model_dir>/export; '' skips the export.",
    )
    integer("seed", None, "Seed of weights and data (deterministic input).")
    integer("val_every", 1, "Validate every N epochs (and after the last); 0 never.")
    boolean("more_fix_crop", True, "13 multi-scale crop positions (else 5).")
    boolean(
        "random_flip",
        True,
        "Flip training clips horizontally at random (flow: x inverted). Turn off when classes "
        "depend on left vs right.",
    )
    integer("shuffle_buffer", 256, "Serialized videos in the shuffle buffer.")
    flags.mark_flags_as_required(["records", "model_dir"], flag_values=flag_values)


def config_from_flags(flag_values: flags.FlagValues = FLAGS) -> TrainConfig:
    """Reads the parsed flags once into a TrainConfig (raises ValueError naming a bad flag)."""
    f = flag_values
    try:
        steps = None if f.lr_steps is None else tuple(int(s) for s in f.lr_steps)
    except ValueError:
        raise ValueError(f"--lr_steps must be integers. Received: {f.lr_steps}") from None
    config = TrainConfig(
        records=f.records,
        model_dir=f.model_dir,
        modality=f.modality,
        backbone=f.backbone,
        pretrained=None if f.pretrained in (None, "", "none") else f.pretrained,
        num_segments=f.num_segments,
        consensus=f.consensus,
        partial_bn=f.partial_bn,
        dropout=f.dropout,
        input_size=f.input_size,
        batch_size=f.batch_size,
        epochs=f.epochs,
        steps_per_epoch=f.steps_per_epoch,
        lr=f.lr,
        lr_schedule=f.lr_schedule,
        lr_steps=steps,
        lr_decay=f.lr_decay,
        momentum=f.momentum,
        weight_decay=f.weight_decay,
        clip_norm=f.clip_norm,
        mixed_precision=f.mixed_precision,
        strategy=f.strategy,
        cpu_devices=f.cpu_devices,
        export_dir=f.export_dir,
        seed=f.seed,
        val_every=f.val_every,
        more_fix_crop=f.more_fix_crop,
        random_flip=f.random_flip,
        shuffle_buffer=f.shuffle_buffer,
    )
    # --consensus is checked by the model's config; do it now, before any data is read.
    try:
        TSNConfig(num_classes=1, consensus=config.consensus, num_segments=config.num_segments)
    except ValueError as e:
        raise ValueError(f"--consensus: {e}") from None
    return config


def main(argv: Sequence[str], flag_values: flags.FlagValues = FLAGS) -> None:
    """Flags -> TrainConfig -> run(); exits with a message naming the flag on bad flags."""
    if len(argv) > 1:
        raise SystemExit(f"FATAL unexpected arguments {argv[1:]}: flags need --name=value.")
    try:
        config = config_from_flags(flag_values)
    except ValueError as e:
        raise SystemExit(f"FATAL flags error: {e}\nPass --help for the flags.") from None
    if config.cpu_devices > 1:
        split_cpu(config.cpu_devices)
    result = run(config)
    logging.info("Done: %s", result)


if __name__ == "__main__":
    define_flags()
    app.run(main)
