"""Train a TSN stream: `python -m tsn_keras.train --records DIR --modality rgb --model_dir DIR`.

The loop, top to bottom (`run`): read the records' manifest -> write the run's config -> build
the model, optimizer and step functions under the strategy (tsn_keras/distribute.py,
tsn_keras/steps.py) -> restore the newest intact checkpoint -> per epoch: train steps, log,
validate, checkpoint -> export. The flags are TrainConfig's fields (tsn_keras/config.py, where
the paper's per-modality recipe is written).

TensorBoard (<model_dir>/train and /validation): epoch_loss, epoch_top1, epoch_top5 per epoch
for both; learning_rate, clips_per_second and batch_loss (every 10 steps) for training; the
flags as a text table and a grid of augmented input snippets of the first batch at the start.
The console shows a keras Progbar per epoch.

Fault tolerance (tsn_keras/checkpoints.py): every epoch a checkpoint (model, optimizer, epoch,
step, data seed) goes to <model_dir>/checkpoints; running the same command again restores the
newest intact one (a damaged checkpoint or state file is named and skipped) and continues,
ending at the same --epochs. SIGTERM (a preemption, a scheduler) lets the current step finish,
saves a checkpoint of that step and exits with status 143 and one line; the rerun resumes at
that step, mid-epoch. Every epoch reads its examples in an order fixed by the data seed and the
epoch, so the resumed run skips (reads, does not decode) the examples already trained on and
sees exactly the rest. Under multi_worker every worker saves (the chief into model_dir, the
others into a temporary folder that is deleted), every worker restores the chief's, and SIGTERM
keeps its default (the run resumes from the last epoch's checkpoint). A NaN or infinite loss,
validation loss or weight stops the run (exit 1) before anything of that epoch is saved or
exported. A damaged training or validation record stops the run naming its shard and byte
offset, unless --skip_corrupt_records.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import flags, logging

from tsn_keras import (
    checkpoints,
    cli,
    distribute,
    input_pipeline,
    modalities,
    records,
    steps,
    visualize,
)
from tsn_keras.config import (
    CLASSES_NAME,
    CONFIG_NAME,
    TrainConfig,
    config_from_flags,
    define_flags,
)
from tsn_keras.manifest import Manifest
from tsn_keras.models import build_tsn

LOG_EVERY = 10  # steps between step-level TensorBoard scalars
DATA_SEED_STRIDE = 7919  # epoch e reads its examples in the order of seed data_seed + stride * e
PREEMPTED_STATUS = 143  # exit status after a SIGTERM (128 + 15, what the signal gives unhandled)


class Preempted(Exception):
    """SIGTERM stopped the run after saving a checkpoint of its last step."""


def run(config: TrainConfig, strategy: tf.distribute.Strategy | None = None) -> dict:
    """Trains (or resumes) a TSN stream; returns the last epoch's metrics.

    A model_dir with checkpoints is resumed from its newest intact checkpoint: at an epoch's
    end, or mid-epoch after a SIGTERM. The Keras mixed-precision policy is restored on return.

    Args:
      config: the run's settings.
      strategy: optional, built from config.strategy when None.

    Returns:
      dict with "epoch", "step", "train_loss", "train_top1", "train_top5", and when validated
      "val_loss", "val_top1", "val_top5"; "export_dir" when exported; "skipped_records" with
      --skip_corrupt_records.

    Raises:
      FloatingPointError: a loss, validation loss or weight became NaN or infinite.
      Preempted: SIGTERM arrived; a checkpoint of the last step was saved.
      records.DamagedRecordsError: a training or validation shard is damaged.
      OSError: model_dir cannot be written (read-only, full).
      ValueError / FileNotFoundError: records missing or not matching the flags, or no intact
        checkpoint to resume from.
    """
    config.check_environment()
    policy = keras.mixed_precision.global_policy()
    try:
        return _run(config, strategy)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _run(config: TrainConfig, strategy: tf.distribute.Strategy | None) -> dict:
    manifest, classes, snippet_length = _stored_facts(config)
    strategy = strategy or distribute.make_strategy(config.strategy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(
            f"--batch_size={config.batch_size} (global) must be a multiple of the "
            f"{replicas} replicas of --strategy={config.strategy}"
        )
    num_train = manifest.subset("train").num_examples
    steps_per_epoch = config.steps_per_epoch or max(num_train // config.batch_size, 1)
    chief = distribute.is_chief(strategy)
    if chief:
        run_data = {
            "classes": classes,
            "snippet_length": snippet_length,
            "steps_per_epoch": steps_per_epoch,
            "replicas": replicas,
            "conversion": dict(manifest.config) or None,
        }
        with checkpoints.writing(config.model_dir):
            _write_run_files(config, run_data)
    if config.mixed_precision != "none":
        keras.mixed_precision.set_global_policy(config.mixed_precision)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)

    with strategy.scope():
        model = build_tsn(config.tsn_config(len(classes), snippet_length))
        optimizer = steps.make_optimizer(config, steps_per_epoch)
    step_fns = steps.make_steps(model, optimizer, strategy, config, len(classes))
    # Without --seed the data order is still fixed per run (drawn once, kept in the checkpoint)
    # so that a resumed run can skip exactly the examples it trained on.
    data_seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    with checkpoints.writing(config.model_dir):
        ckpt = checkpoints.RunCheckpoints(config.model_dir, strategy, model, optimizer, data_seed)
    start_epoch = ckpt.epoch
    if start_epoch >= config.epochs:
        logging.info("Already trained %d of --epochs=%d.", start_epoch, config.epochs)
    data = _Data(config, strategy, manifest, ckpt.data_seed)
    writers = _writers(config.model_dir, chief)
    if chief and start_epoch < config.epochs:
        with checkpoints.writing(config.model_dir):
            _write_run_summaries(config, writers[0], ckpt.step, data)

    result = {"epoch": ckpt.epoch, "step": ckpt.step}
    sigterm = checkpoints.Sigterm(enabled=config.strategy != "multi_worker")
    with sigterm:
        for epoch in range(start_epoch, config.epochs):
            first = min(ckpt.epoch_step, steps_per_epoch) if epoch == start_epoch else 0
            verbose = chief and config.verbose
            position = (epoch, ckpt.step - first, first)  # epoch, its first step, steps done
            totals, seconds, done = _train_epoch(step_fns, data, optimizer, steps_per_epoch,
                                                 config, position, writers[0], verbose, ckpt,
                                                 sigterm)  # fmt: skip
            step = ckpt.step + done - first
            if done < steps_per_epoch:  # SIGTERM mid-epoch
                with checkpoints.writing(config.model_dir):
                    path = ckpt.save(epoch, step, epoch_step=done)
                raise Preempted(
                    f"SIGTERM at epoch {epoch + 1}, step {done} of {steps_per_epoch} (global "
                    f"step {step}): saved {path}; rerun the same command to resume there"
                )
            result = {"epoch": epoch + 1, "step": step}
            result.update({f"train_{k}": v for k, v in _means(totals).items()})
            _log_scalars(writers[0], step, result, "train_", epoch=epoch + 1,
                         learning_rate=steps.current_lr(optimizer),
                         clips_per_second=totals[3] / seconds)  # fmt: skip
            if data.has_val and ((epoch + 1) % config.val_every == 0 or epoch + 1 == config.epochs):
                result.update({f"val_{k}": v for k, v in _validate(step_fns, data).items()})
                if not math.isfinite(result["val_loss"]):
                    raise FloatingPointError(
                        f"the validation loss is {result['val_loss']} after epoch {epoch + 1} "
                        f"(global step {step}); {_stopped(ckpt)}"
                    )
                _log_scalars(writers[1], step, result, "val_")
            with checkpoints.writing(config.model_dir):
                for writer in writers:
                    writer.flush()
                path = ckpt.save(epoch + 1, step)
            if verbose:
                shown = ", ".join(f"{k} {v:.4f}" for k, v in result.items() if "_" in k)
                logging.info("epoch %d/%d: %s (%.1f clips/s)", epoch + 1, config.epochs, shown,
                             totals[3] / seconds)  # fmt: skip
            if sigterm.received and epoch + 1 < config.epochs:
                raise Preempted(
                    f"SIGTERM at the end of epoch {epoch + 1} (global step {step}): saved "
                    f"{path}; rerun the same command to resume there"
                )

    if config.skip_corrupt_records:
        result["skipped_records"] = data.skipped_records
    if chief and config.export_path:
        from tsn_keras import export  # export reads tsn_keras.config, never this module

        with checkpoints.writing(config.export_path, "--export_dir"):
            result["export_dir"] = export.export_from_model_dir(
                config.model_dir, config.export_path
            )
        logging.info("Exported to %s", result["export_dir"])
    return result


def _stopped(ckpt: checkpoints.RunCheckpoints) -> str:
    """The end of a non-finite error: what was kept, and what to change."""
    return (
        "training stopped: nothing of this epoch is saved and nothing is exported. Last good "
        f"checkpoint: {ckpt.latest or 'none'}. Lower --lr, set --clip_norm, or check the records"
    )


def _stored_facts(config: TrainConfig) -> tuple[Manifest, list[str], int]:
    """The records' manifest (read once for the run), classes and snippet length; checks the
    modality is stored."""
    manifest = Manifest.read(config.records)
    manifest.check_modality(config.modality)
    return manifest, list(manifest.classes), manifest.snippet_length


# ---------------------------------------------------------------------------------------------
# The run's files and checkpoints.


def _write_run_files(config: TrainConfig, run_data: dict) -> None:
    """train_config.json (the config and the data facts export/evaluate need) and classes.txt;
    warns when a resumed run's flags differ from the saved ones."""
    tf.io.gfile.makedirs(config.model_dir)
    path = os.path.join(config.model_dir, CONFIG_NAME)
    now = config.to_json()
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            saved = json.load(f)["config"]
        changed = [
            f"--{k}: {saved.get(k)!r} -> {now[k]!r}"
            for k in now
            if k != "verbose" and json.loads(json.dumps(now[k])) != saved.get(k)
        ]
        if changed:
            logging.warning("Resuming %s with changed flags: %s", path, "; ".join(changed))
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump({"config": now, "data": run_data}, f, indent=1)
    with tf.io.gfile.GFile(os.path.join(config.model_dir, CLASSES_NAME), "w") as f:
        f.write("\n".join(run_data["classes"]) + "\n")


# ---------------------------------------------------------------------------------------------
# Data.


class _Data:
    """The run's distributed training iterator and validation dataset."""

    def __init__(self, config: TrainConfig, strategy, manifest: Manifest, data_seed: int):
        self.config = config
        self.strategy = strategy
        self.data_seed = data_seed
        self.manifest = manifest
        self.train_files = manifest.shard_files("train", config.modality)
        self.skipped_records = 0
        if config.skip_corrupt_records:
            counts = manifest.subset("train").counts
            self.skipped_records = records.report_damage(self.train_files, counts)
        global_batch = config.batch_size
        replicas = strategy.num_replicas_in_sync
        workers = distribute.num_workers(strategy)
        self.has_val = "test" in manifest.sets and config.val_every > 0
        self.val_steps = 0
        if not self.has_val:
            return
        self.val_files = manifest.shard_files("test", config.modality)
        per_pipeline = input_pipeline.examples_per_pipeline(manifest, "test", workers)
        per_step = global_batch // workers  # examples a pipeline feeds per step
        self.val_steps = max(math.ceil(max(per_pipeline) / per_step), 1)

        def val_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            return input_pipeline.make_dataset(
                manifest,
                "test",
                config.modality,
                config.num_segments,
                global_batch,
                training=False,
                input_size=config.input_size,
                input_context=ctx,
                pad_to_batches=self.val_steps * (replicas // workers),
                skip_corrupt_records=config.skip_corrupt_records,
            )

        self.val_data = strategy.distribute_datasets_from_function(val_fn)
        if config.skip_corrupt_records:
            counts = manifest.subset("test").counts
            self.skipped_records += records.report_damage(self.val_files, counts)

    def train_iterator(self, epoch: int, skip_steps: int):
        """Epoch `epoch`'s batches (its own seeded order), after the first skip_steps steps'."""
        config = self.config
        seed = self.data_seed + DATA_SEED_STRIDE * epoch
        # Each input pipeline feeds global batch / workers examples per step.
        skip = skip_steps * (config.batch_size // distribute.num_workers(self.strategy))

        def train_fn(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            return input_pipeline.make_dataset(
                self.manifest,
                "train",
                config.modality,
                config.num_segments,
                config.batch_size,
                training=True,
                input_size=config.input_size,
                seed=seed,
                input_context=ctx,
                more_fix_crop=config.more_fix_crop,
                random_flip=config.random_flip,
                shuffle_buffer=config.shuffle_buffer,
                skip_corrupt_records=config.skip_corrupt_records,
                skip_examples=skip,
            )

        return iter(self.strategy.distribute_datasets_from_function(train_fn))


# ---------------------------------------------------------------------------------------------
# Epochs.


def _means(totals: np.ndarray) -> dict:
    count = max(totals[3], 1.0)
    return {"loss": totals[0] / count, "top1": totals[1] / count, "top5": totals[2] / count}


def _train_epoch(step_fns, data, optimizer, steps_per_epoch, config, position, writer, verbose,
                 ckpt, sigterm):  # fmt: skip
    """Epoch training steps from position = (epoch, global step at its start, steps already
    done); stops early after a SIGTERM. Returns the summed SUMS, the seconds and the steps done
    of the epoch."""
    epoch, epoch_start, first = position
    progbar = keras.utils.Progbar(
        steps_per_epoch,
        verbose=1 if verbose else 0,
        stateful_metrics=["loss", "top1", "top5", "lr"],
    )
    totals = np.zeros(len(steps.SUMS))
    start = time.perf_counter()
    train_iter = data.train_iterator(epoch, first)
    try:
        for i in range(first, steps_per_epoch):
            if sigterm.received and i > first:  # after a step: no checkpoint is saved twice
                return totals, time.perf_counter() - start, i
            with records.damage_named(data.train_files):
                sums = step_fns.train(train_iter).numpy()
            if not np.all(np.isfinite(sums)) or sums[4]:
                what = (
                    "the weights are NaN or infinite after the update"
                    if np.isfinite(sums[0])
                    else f"the loss is {sums[0] / max(sums[3], 1)}"
                )
                raise FloatingPointError(
                    f"{what} at epoch {epoch + 1}, step {i + 1} (global step "
                    f"{epoch_start + i + 1}, lr {steps.current_lr(optimizer):g}); {_stopped(ckpt)}"
                )
            totals += sums
            if (epoch_start + i + 1) % LOG_EVERY == 0:
                with writer.as_default(step=epoch_start + i + 1):
                    tf.summary.scalar("batch_loss", sums[0] / sums[3])
                    tf.summary.scalar("learning_rate", steps.current_lr(optimizer))
            means = _means(totals)
            progbar.update(i + 1, [*means.items(), ("lr", steps.current_lr(optimizer))])
    except (FloatingPointError, records.DamagedRecordsError):
        if verbose:  # end the progress bar's line: the error gets a line of its own
            sys.stdout.write("\n")
            sys.stdout.flush()
        raise
    return totals, time.perf_counter() - start, steps_per_epoch


def _validate(step_fns, data: _Data) -> dict:
    """Loss, top-1 and top-5 over the whole validation set (padding clips weigh 0)."""
    val_iter = iter(data.val_data)
    totals = np.zeros(len(steps.SUMS))
    for _ in range(data.val_steps):
        with records.damage_named(data.val_files):
            totals += step_fns.evaluate(val_iter).numpy()
    return _means(totals)


# ---------------------------------------------------------------------------------------------
# TensorBoard.


def _writers(model_dir: str, chief: bool):
    """(train, validation) summary writers; no-op writers on the other workers."""
    if not chief:
        return tf.summary.create_noop_writer(), tf.summary.create_noop_writer()
    return (
        tf.summary.create_file_writer(os.path.join(model_dir, "train")),
        tf.summary.create_file_writer(os.path.join(model_dir, "validation")),
    )


def _log_scalars(writer, step: int, result: dict, prefix: str, **extra) -> None:
    with writer.as_default(step=step):
        for name in ("loss", "top1", "top5"):
            tf.summary.scalar(f"epoch_{name}", result[prefix + name])
        for name, value in extra.items():
            tf.summary.scalar(name, value)


def _write_run_summaries(config: TrainConfig, writer, step: int, data: _Data) -> None:
    """Flags as text and a grid of the first batch's input snippets (after augmentation)."""
    ds = input_pipeline.make_dataset(
        data.manifest,
        "train",
        config.modality,
        config.num_segments,
        min(config.batch_size, 4),
        training=True,
        input_size=config.input_size,
        seed=config.seed,
        shuffle_buffer=4,
        skip_corrupt_records=config.skip_corrupt_records,
    )
    with records.damage_named(data.train_files):
        clips, _ = next(iter(ds))
    rows = "\n".join(f"| {k} | {v} |" for k, v in config.to_json().items())
    with writer.as_default(step=step):
        tf.summary.text("flags", "| flag | value |\n|---|---|\n" + rows)
        grid = visualize.input_grid(clips.numpy(), config.modality, max_clips=4)
        tf.summary.image(
            "input_snippets",
            grid[None].astype(np.float32) / 255.0,  # [1, H, W, 3] in [0, 1]
            max_outputs=1,
            description="rows: clips of the first batch; columns: the K snippets"
            + (
                " (flow: the first field colour-coded, hue = direction, brightness = "
                "magnitude, then its x and y)"
                if modalities.is_flow(config.modality)
                else ""
            ),
        )
    writer.flush()


# ---------------------------------------------------------------------------------------------
# Command line.


def main(argv: Sequence[str] | None = None) -> int:
    """Flags -> TrainConfig -> run(). Exit status 0 done, 1 failed (a damaged shard, a NaN, an
    unwritable --model_dir), 2 bad flags or inputs, 143 stopped by SIGTERM (checkpoint saved)."""
    failed = (FloatingPointError, records.DamagedRecordsError, checkpoints.DamagedCheckpointsError)
    return cli.run(_main, argv, usage_errors=(FileNotFoundError, ValueError), failures=failed)


def _main(argv: list[str]) -> int:
    fv = flags.FlagValues()
    define_flags(fv)
    if cli.parse_flags(fv, argv, __doc__) is None:
        return 0
    try:
        config = config_from_flags(fv)
        config.check_environment()
    except ValueError as e:  # a flag's value: the usage line that points to --help
        raise flags.Error(str(e)) from e
    if config.cpu_devices > 1:
        distribute.split_cpu(config.cpu_devices)
    logging.set_verbosity(logging.INFO)
    try:
        result = run(config)
    except Preempted as e:
        print(f"stopped: {e}", file=sys.stderr)
        return PREEMPTED_STATUS
    logging.info("Done: %s", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
