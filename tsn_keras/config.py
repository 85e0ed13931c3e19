"""The run configuration of `python -m tsn_keras.train`: one field per flag, the paper's recipe.

`TrainConfig` is the single place a training setting is written: its fields carry their flag help
(`define_flags` generates the command's flags from them) and their validation (`__post_init__`
names the flag on a bad value). TSN's per-modality recipe is data (`RECIPES`), applied by
`TrainConfig.for_modality` to the fields a user left unset, so a TrainConfig is always complete:

| modality            | lr (batch 128) | clip_norm | dropout | epochs | lr_steps (x0.1) |
|---------------------|----------------|-----------|---------|--------|-----------------|
| rgb, rgbdiff        | 0.001          | 40        | 0.8     | 80     | 30, 60          |
| flow, warped_flow   | 0.005          | 20        | 0.7     | 340    | 190, 300        |

(TSN, Wang et al. 2016; tsn-pytorch README; the Caffe solvers.) SGD momentum 0.9, weight decay
5e-4, K=3 segments, global batch 128. The recipe's lr is for a global batch of 128 and is scaled
linearly with batch_size; an explicit lr is used as given.

Value checks run on construction (also when a saved config is read back); checks of the
environment (the pretrained file exists, TF_CONFIG is set) run only where a run starts
(`check_environment`), so exporting or evaluating a finished run never depends on them.
Train and export both read this module; neither imports the other.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

from absl import flags

from tsn_keras import modalities
from tsn_keras.models import BACKBONES, TSNConfig

STRATEGIES = ("mirrored", "multi_worker", "one_device")
LR_SCHEDULES = ("step", "cosine")
MIXED_PRECISION = ("none", "mixed_bfloat16", "mixed_float16")
REFERENCE_BATCH = 128  # the effective batch of TSN's solvers; the recipe's lr is for it
CONFIG_NAME = "train_config.json"
CLASSES_NAME = "classes.txt"
CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass(frozen=True)
class Recipe:
    """TSN's per-modality training settings (lr at a global batch of REFERENCE_BATCH)."""

    lr: float
    clip_norm: float
    dropout: float
    epochs: int
    lr_steps: tuple[int, ...]


RECIPES = {
    "rgb": Recipe(lr=0.001, clip_norm=40.0, dropout=0.8, epochs=80, lr_steps=(30, 60)),
    "flow": Recipe(lr=0.005, clip_norm=20.0, dropout=0.7, epochs=340, lr_steps=(190, 300)),
}


def _flag(default=dataclasses.MISSING, help: str = "", **meta):
    """A field that is also a flag: `help` is its --help text; meta: enum, flag_default."""
    return dataclasses.field(default=default, metadata={"help": help, **meta})


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig:
    """Everything a training run needs; one field per `python -m tsn_keras.train` flag.

    Build one with `TrainConfig.for_modality(...)` to take the paper's recipe for the fields
    you leave out; the plain constructor needs them all. Construction validates every field and
    names the flag on error, before any data is read.
    """

    records: str = _flag(help="Records folder (manifest.json + shards).")
    model_dir: str = _flag(
        help="Checkpoints, TensorBoard logs, config; rerun the same command to resume."
    )
    modality: str = _flag("rgb", f"One of {', '.join(modalities.MODALITIES)}.")
    backbone: str = _flag(
        "bn_inception", "bn_inception, resnet50, inception_v3, mobilenet_v2, tiny."
    )
    pretrained: str | None = _flag(
        None,
        "Backbone weights: 'none', 'imagenet' (keras.applications backbones) or a .weights.h5 "
        "file (RGB weights initialise flow/rgbdiff by cross-modality init).",
        flag_default="none",
    )
    num_segments: int = _flag(3, "K segments (snippets) sampled per video.")
    consensus: str = _flag("avg", "avg, max, weighted, topk or topk:<k>.")
    partial_bn: bool = _flag(True, "Freeze all BN layers but the first.")
    dropout: float = _flag(help="Before the classifier. Default .8 rgb, .7 flow.")
    input_size: int = _flag(224, "Crop side fed to the network.")
    batch_size: int = _flag(128, "GLOBAL batch over all replicas and workers.")
    epochs: int = _flag(help="Default 80 rgb, 340 flow.")
    steps_per_epoch: int | None = _flag(None, "Default: train videos // batch_size.")
    lr: float = _flag(
        help="Learning rate as used. Default .001 rgb / .005 flow at batch 128, scaled "
        "linearly with --batch_size."
    )
    lr_schedule: str = _flag("step", "Step decay or cosine.", enum=LR_SCHEDULES)
    lr_steps: tuple[int, ...] = _flag(
        help="Epochs at which lr *= --lr_decay (step schedule). Default 30,60 rgb; 190,300 flow."
    )
    lr_decay: float = _flag(0.1, "Step-decay factor.")
    momentum: float = _flag(0.9, "SGD momentum.")
    weight_decay: float = _flag(5e-4, "L2 on conv/dense kernels only (not BN, biases).")
    clip_norm: float = _flag(
        help="Clip gradients by global norm. Default 40 rgb, 20 flow; 0 disables."
    )
    mixed_precision: str = _flag(
        "none",
        "Keras mixed-precision policy (mixed_float16 uses loss scaling).",
        enum=MIXED_PRECISION,
    )
    strategy: str = _flag(
        "mirrored",
        "mirrored: all local GPUs (else CPUs); multi_worker: the cluster in TF_CONFIG; "
        "one_device: one GPU or the CPU.",
        enum=STRATEGIES,
    )
    cpu_devices: int = _flag(
        0, "Split the CPU into N logical devices (mirrored training without GPUs, for tests)."
    )
    export_dir: str | None = _flag(
        None, "SavedModel written at the end. Default <model_dir>/export; '' skips the export."
    )
    seed: int | None = _flag(None, "Seed of weights and data (deterministic input).")
    val_every: int = _flag(1, "Validate every N epochs (and after the last); 0 never.")
    more_fix_crop: bool = _flag(True, "13 multi-scale crop positions (else 5).")
    random_flip: bool = _flag(
        True,
        "Flip training clips horizontally at random (flow: x inverted). Turn off when classes "
        "depend on left vs right.",
    )
    shuffle_buffer: int = _flag(256, "Serialized videos in the shuffle buffer.")
    skip_corrupt_records: bool = _flag(
        False,
        "Skip damaged records of the training shards (counted and logged) instead of stopping.",
    )
    verbose: bool = dataclasses.field(default=True, metadata={"flag": False})

    @classmethod
    def for_modality(cls, modality: str = "rgb", **fields) -> TrainConfig:
        """A config whose unset recipe fields (lr, clip_norm, dropout, epochs, lr_steps) take
        the paper's values for `modality` (lr scaled to batch_size; lr_steps kept < epochs)."""
        # An unknown modality gets rgb's recipe here and a --modality error from __post_init__.
        base = RECIPES["flow" if modality in modalities.FLOW_MODALITIES else "rgb"]
        batch = fields.get("batch_size", 128)
        epochs = fields.get("epochs") or base.epochs
        defaults = {
            "lr": base.lr * batch / REFERENCE_BATCH,
            "clip_norm": base.clip_norm,
            "dropout": base.dropout,
            "epochs": base.epochs,
            "lr_steps": (
                tuple(s for s in base.lr_steps if s < epochs)
                if fields.get("lr_schedule", "step") == "step"
                else ()
            ),
        }
        for name, value in defaults.items():
            if fields.get(name) is None:
                fields[name] = value
        return cls(modality=modality, **fields)

    def __post_init__(self):
        def fail(flag, rule, value):
            raise ValueError(f"--{flag} {rule}. Received: --{flag}={value!r}")

        for f in dataclasses.fields(self):  # --lr=inf would die at step 2; stop it here
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                fail(f.name, "must be a finite number", value)
        if not self.records:
            fail("records", "is required (a records folder with manifest.json)", self.records)
        if not self.model_dir:
            fail("model_dir", "is required", self.model_dir)
        if self.modality not in modalities.MODALITIES:
            fail("modality", f"must be one of {modalities.MODALITIES}", self.modality)
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
        for flag in ("num_segments", "batch_size", "input_size", "epochs"):
            if getattr(self, flag) < 1:
                fail(flag, "must be >= 1", getattr(self, flag))
        if self.input_size < 32:
            fail("input_size", "must be >= 32", self.input_size)
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            fail(
                "steps_per_epoch",
                "must be >= 1 (leave it unset for one pass)",
                self.steps_per_epoch,
            )
        if not 0.0 <= self.dropout < 1.0:
            fail("dropout", "must be in [0, 1)", self.dropout)
        if not self.lr > 0:
            fail("lr", "must be > 0", self.lr)
        if self.lr_schedule not in LR_SCHEDULES:
            fail("lr_schedule", f"must be one of {LR_SCHEDULES}", self.lr_schedule)
        if self.lr_schedule == "cosine" and self.lr_steps:
            raise ValueError(
                "--lr_steps and --lr_schedule=cosine contradict each other: the cosine schedule "
                f"has no steps. Drop --lr_steps or use --lr_schedule=step. Received: "
                f"--lr_steps={','.join(map(str, self.lr_steps))}"
            )
        steps = list(self.lr_steps)
        if any(s < 1 for s in steps) or steps != sorted(set(steps)):
            fail("lr_steps", "must be increasing positive epochs", self.lr_steps)
        if steps and steps[-1] >= self.epochs:
            fail("lr_steps", f"must all be < --epochs={self.epochs}", self.lr_steps)
        if not 0 < self.lr_decay <= 1:
            fail("lr_decay", "must be in (0, 1]", self.lr_decay)
        if not 0 <= self.momentum < 1:
            fail("momentum", "must be in [0, 1)", self.momentum)
        if self.weight_decay < 0:
            fail("weight_decay", "must be >= 0", self.weight_decay)
        if self.clip_norm < 0:
            fail("clip_norm", "must be >= 0 (0 disables clipping)", self.clip_norm)
        if self.mixed_precision not in MIXED_PRECISION:
            fail("mixed_precision", f"must be one of {MIXED_PRECISION}", self.mixed_precision)
        if self.strategy not in STRATEGIES:
            fail("strategy", f"must be one of {STRATEGIES}", self.strategy)
        if self.cpu_devices < 0 or (self.cpu_devices > 1 and self.strategy == "one_device"):
            raise ValueError(
                "--cpu_devices splits the CPU for --strategy=mirrored/multi_worker; it "
                f"contradicts --strategy=one_device. Received: --cpu_devices={self.cpu_devices}"
            )
        if self.val_every < 0:
            fail("val_every", "must be >= 0 (0 disables validation)", self.val_every)
        if self.shuffle_buffer < 1:
            fail("shuffle_buffer", "must be >= 1", self.shuffle_buffer)
        if self.seed is not None and not 0 <= self.seed < 2**32:
            fail("seed", "must be in [0, 2**32) (NumPy's and TensorFlow's seed range)", self.seed)
        try:  # the model's own check of --consensus, before any data is read
            TSNConfig(num_classes=1, consensus=self.consensus, num_segments=self.num_segments)
        except ValueError as e:
            raise ValueError(f"--consensus: {e}") from None
        mode, _, k = self.consensus.partition(":")
        if mode == "topk" and k and int(k) > self.num_segments:
            raise ValueError(
                f"--consensus=topk:{k} averages the best {k} of --num_segments="
                f"{self.num_segments} snippets: k must be <= --num_segments"
            )

    def check_environment(self) -> None:
        """Checks what a run needs from this machine (called where a run starts, not on load).

        Raises:
          ValueError: naming the flag: --pretrained file missing, multi_worker without TF_CONFIG,
            a batch of network input larger than this machine's memory.
        """
        self._check_input_memory()
        if self.pretrained not in (None, "imagenet") and not os.path.isfile(self.pretrained):
            raise ValueError(
                "--pretrained must be 'imagenet', 'none' or an existing weights file. "
                f"Received: --pretrained={self.pretrained!r}"
            )
        if self.strategy == "multi_worker" and not os.environ.get("TF_CONFIG"):
            raise ValueError(
                "--strategy=multi_worker needs the TF_CONFIG environment variable (cluster and "
                "task); set it on every worker, or use --strategy=mirrored on one machine"
            )

    def _check_input_memory(self) -> None:
        """Refuses sizes whose input batch alone cannot fit, before anything is allocated.

        The float32 network input of one global batch is a lower bound on what a step holds
        (the activations take many times more), so a batch that exceeds this machine's memory
        can never run: --input_size 100000 or --num_segments 1000000 would otherwise end in a
        traceback or the out-of-memory killer.
        """
        channels = 2 if modalities.is_flow(self.modality) else 3  # the fewest any snippet has
        needed = self.batch_size * self.num_segments * self.input_size**2 * channels * 4
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):  # not a POSIX system: no check
            return
        if needed > memory:
            raise ValueError(
                f"--input_size={self.input_size}, --num_segments={self.num_segments} and "
                f"--batch_size={self.batch_size}: one batch of network input alone is "
                f"{self.batch_size} x {self.num_segments} x {self.input_size}^2 x {channels} "
                f"float32 values = {needed / 2**30:.3g} GiB, more than this machine's "
                f"{memory / 2**30:.3g} GiB of memory; lower --input_size (224 in the paper), "
                "--num_segments (3) or --batch_size"
            )

    @property
    def export_path(self) -> str:
        """Where the run exports at its end ('' for no export)."""
        if self.export_dir is None:
            return os.path.join(self.model_dir, "export")
        return self.export_dir

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
        """Inverse of to_json; unknown keys (from newer versions) are ignored, and fields that
        older versions saved as null take the recipe. No environment checks."""
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if d.get("lr_steps") is not None:
            d["lr_steps"] = tuple(d["lr_steps"])
        return cls.for_modality(**d)


def read_train_config(model_dir: str) -> tuple[TrainConfig, dict]:
    """The TrainConfig and data facts a run saved in <model_dir>/train_config.json."""
    import tensorflow as tf  # gfile: model_dir may be on cloud storage

    path = os.path.join(model_dir, CONFIG_NAME)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"{path} not found: --model_dir must be a folder written by python -m tsn_keras.train"
        )
    with tf.io.gfile.GFile(path) as f:
        saved = json.load(f)
    return TrainConfig.from_json(saved["config"]), saved["data"]


# ---------------------------------------------------------------------------------------------
# Flags, generated from the fields.

_DEFINE = {
    "str": flags.DEFINE_string,
    "str | None": flags.DEFINE_string,
    "int": flags.DEFINE_integer,
    "int | None": flags.DEFINE_integer,
    "float": flags.DEFINE_float,
    "bool": flags.DEFINE_boolean,
    "tuple[int, ...]": flags.DEFINE_list,
}


def _flag_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(TrainConfig) if f.metadata.get("flag", True)]


def define_flags(fv: flags.FlagValues) -> None:
    """Defines one flag per TrainConfig field on `fv` (recipe fields default to unset)."""
    for f in _flag_fields():
        if f.default is dataclasses.MISSING:
            default = None  # required (records, model_dir) or from the recipe
        else:
            default = f.metadata.get("flag_default", f.default)
        help_text = f.metadata["help"]
        if "enum" in f.metadata:
            flags.DEFINE_enum(f.name, default, list(f.metadata["enum"]), help_text, flag_values=fv)
        else:
            _DEFINE[f.type](f.name, default, help_text, flag_values=fv)


def config_from_flags(fv: flags.FlagValues) -> TrainConfig:
    """Reads the parsed flags once into a TrainConfig (ValueError names a bad flag)."""
    values = {f.name: fv[f.name].value for f in _flag_fields()}
    if values["lr_steps"] is not None:
        try:
            values["lr_steps"] = tuple(int(s) for s in values["lr_steps"])
        except ValueError:
            raise ValueError(
                f"--lr_steps must be integers. Received: {values['lr_steps']}"
            ) from None
    if values["pretrained"] in ("", "none"):
        values["pretrained"] = None
    for name in ("records", "model_dir"):
        if not values[name]:
            raise ValueError(f"--{name} is required. Pass --help for the flags.")
    return TrainConfig.for_modality(**values)  # unset recipe fields (None) take the recipe
