"""A training run's checkpoints: find them, restore the newest intact one, save without loss.

`<model_dir>/checkpoints` holds `ckpt-<global step>.index` / `.data-*` files and TensorFlow's
state file `checkpoint`, which lists them. Both are read: the checkpoints are the union of
those the state file lists and those found by their `.index` files, so a state file that is
damaged (garbage appended, cut short) or missing loses nothing. A checkpoint that does not read
back whole is named and the next older one tried (`restore_latest_intact`).

Rotation (`tf.train.CheckpointManager`, 3 kept) deletes only checkpoints the state file lists.
When that file could not be read, `RunCheckpoints` rewrites it to list only the checkpoint it
restored: the other `ckpt-*` files stay on disk untouched, never rotated away unread.

train and export both use this module (export restores the model alone). Also here, for the
training loop: `Sigterm` (a preemption becomes a checkpoint, not lost work) and `writing`
(a read-only or full --model_dir becomes one error naming it).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading

import tensorflow as tf
from absl import logging

from tsn_keras import distribute
from tsn_keras.config import CHECKPOINT_DIR

STATE_NAME = "checkpoint"  # TensorFlow's state file
KEEP = 3  # checkpoints the manager keeps
_INDEX = re.compile(r"^ckpt-(\d+)\.index$")


def _number(path: str) -> int:
    match = re.search(r"ckpt-(\d+)$", path)
    return int(match.group(1)) if match else -1


def find_checkpoints(ckpt_dir: str) -> tuple[list[str], str | None]:
    """Every checkpoint of ckpt_dir, oldest first, and why the state file was unreadable.

    Returns:
      (paths, problem): the union of the checkpoints the state file lists and those whose
      `.index` file is in ckpt_dir, ordered by their number; problem is None when the state
      file read back (or there is none), else a sentence naming it and the reason.
    """
    paths: dict[str, str] = {}
    problem = None
    state_path = os.path.join(ckpt_dir, STATE_NAME)
    if tf.io.gfile.exists(state_path):
        state = tf.train.get_checkpoint_state(ckpt_dir)  # None when it does not parse
        if state is None:
            problem = f"{state_path} cannot be read (damaged)"
        else:
            listed = [*state.all_model_checkpoint_paths, state.model_checkpoint_path]
            for p in filter(None, listed):
                path = p if os.path.isabs(p) or "://" in p else os.path.join(ckpt_dir, p)
                paths[os.path.basename(path)] = path
    if tf.io.gfile.isdir(ckpt_dir):
        for name in tf.io.gfile.listdir(ckpt_dir):
            match = _INDEX.match(name)
            if match:
                base = name[: -len(".index")]
                paths[base] = os.path.join(ckpt_dir, base)
    return sorted(paths.values(), key=_number), problem


class DamagedCheckpointsError(RuntimeError):
    """Every checkpoint of a run is damaged (the message names each one): failed work."""


def restore_latest_intact(checkpoint: tf.train.Checkpoint, ckpt_dir: str) -> str | None:
    """Restores the newest checkpoint in ckpt_dir that reads back whole; returns its path.

    A checkpoint whose files are truncated or damaged (a disk that filled, a copy cut short) is
    named in a warning and the next older one is tried, so a run loses at most the steps after
    the newest intact checkpoint. A damaged state file is named, and the checkpoints are found
    by their files.

    Returns:
      the restored checkpoint's path, or None when ckpt_dir holds no checkpoint.

    Raises:
      DamagedCheckpointsError: every checkpoint in ckpt_dir is damaged (names each one).
    """
    paths, problem = find_checkpoints(ckpt_dir)
    if problem:
        found = ", ".join(os.path.basename(p) for p in paths) or "none"
        logging.warning("%s; checkpoints found by their files: %s", problem, found)
    if not paths:
        return None
    damaged = []
    for path in reversed(paths):  # newest first
        try:
            checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
            if damaged or problem:
                logging.warning("Resuming from %s, the newest intact checkpoint", path)
            return path
        except (tf.errors.OpError, ValueError, IndexError, AssertionError) as e:
            reason = getattr(e, "message", None) or str(e)
            logging.warning(
                "Checkpoint %s is damaged (%s); trying an older one", path, reason[:300]
            )
            damaged.append(f"{path}: {reason[:200]}")
    raise DamagedCheckpointsError(
        f"Every checkpoint in {ckpt_dir} is damaged, so the run cannot resume: "
        + "; ".join(damaged)
        + f". Move {ckpt_dir} away to start the run from scratch."
    )


def read_int(path: str, name: str, default: int) -> int:
    """The int variable `name` a checkpoint holds, or default (checkpoints written before it)."""
    reader = tf.train.load_checkpoint(path)
    key = f"{name}/.ATTRIBUTES/VARIABLE_VALUE"
    return int(reader.get_tensor(key)) if reader.has_tensor(key) else default


def _seed_states(layer) -> list:
    """The states of the random generators (Dropout's) of `layer` and the layers inside it.

    Keras keeps them out of `model.weights`, so a model checkpoint alone would restart the
    dropout masks' sequence on resume.
    """
    generator = getattr(layer, "seed_generator", None)
    states = [generator.state] if generator is not None else []
    for inner in getattr(layer, "layers", []):
        states += _seed_states(inner)
    return states


class RunCheckpoints:
    """The run's checkpoint (model, optimizer, position, data seed, the dropout generators'
    states), restored on construction.

    The position is `epoch` (epochs completed), `step` (global step) and `epoch_step` (steps
    done of the unfinished epoch: 0 at an epoch's end, more after a SIGTERM mid-epoch). The
    data seed fixes the order of every epoch's examples, so a resumed run skips exactly the
    examples of the steps already done. Every worker saves (a multi-worker save needs all of
    them); the chief into <model_dir>/checkpoints, the others into a temporary folder deleted
    after each save.
    """

    def __init__(self, model_dir: str, strategy, model, optimizer, data_seed: int):
        self._vars = {
            name: tf.Variable(value, dtype=tf.int64, trainable=False, name=name)
            for name, value in (("epoch", 0), ("step", 0), ("epoch_step", 0), ("data_seed", 0))
        }
        self._rng = _seed_states(model)
        self._checkpoint = tf.train.Checkpoint(
            model=model, optimizer=optimizer, rng=self._rng, **self._vars
        )
        # Restored through the part every checkpoint has; epoch_step, data_seed and rng are
        # read apart, so a checkpoint written before they existed still restores.
        core = tf.train.Checkpoint(
            model=model, optimizer=optimizer, epoch=self._vars["epoch"], step=self._vars["step"]
        )
        self.dir = os.path.join(model_dir, CHECKPOINT_DIR)
        self._chief = distribute.is_chief(strategy)
        self._write_dir = (
            self.dir
            if self._chief
            else os.path.join(self.dir, f"worker_tmp_{distribute.task_id(strategy)}")
        )
        _, state_problem = find_checkpoints(self.dir)
        self.restored = restore_latest_intact(core, self.dir)
        seed = data_seed
        if self.restored:
            self._vars["epoch_step"].assign(read_int(self.restored, "epoch_step", 0))
            seed = read_int(self.restored, "data_seed", data_seed)
            reader = tf.train.load_checkpoint(self.restored)
            for i, state in enumerate(self._rng):
                key = f"rng/{i}/.ATTRIBUTES/VARIABLE_VALUE"
                if reader.has_tensor(key):
                    state.assign(reader.get_tensor(key))
            logging.info(
                "Resumed from %s (epoch %d, step %d%s)", self.restored, self.epoch, self.step,
                f", {self.epoch_step} steps into epoch {self.epoch + 1}" if self.epoch_step else "",
            )  # fmt: skip
        self._vars["data_seed"].assign(seed)
        if state_problem and self._chief:  # list only what was read: nothing unread rotates away
            paths = [self.restored] if self.restored else []
            tf.compat.v1.train.update_checkpoint_state(
                self.dir, self.restored or "", all_model_checkpoint_paths=paths
            )
        self._manager = tf.train.CheckpointManager(self._checkpoint, self._write_dir, KEEP)

    @property
    def epoch(self) -> int:
        return int(self._vars["epoch"].numpy())

    @property
    def step(self) -> int:
        return int(self._vars["step"].numpy())

    @property
    def epoch_step(self) -> int:
        return int(self._vars["epoch_step"].numpy())

    @property
    def latest(self) -> str | None:
        """The newest checkpoint this run saved or restored (None before any)."""
        saved = self._manager.latest_checkpoint if self._chief else None
        return saved or self.restored

    @property
    def data_seed(self) -> int:
        return int(self._vars["data_seed"].numpy())

    def save(self, epoch: int, step: int, epoch_step: int = 0) -> str:
        """Saves as ckpt-<step>; returns its path (the chief's)."""
        for name, value in (("epoch", epoch), ("step", step), ("epoch_step", epoch_step)):
            self._vars[name].assign(value)
        try:
            path = self._manager.save(checkpoint_number=step)
        except BaseException:  # a full disk: remove TensorFlow's half-written temp folder
            for temp in tf.io.gfile.glob(os.path.join(self._write_dir, f"ckpt-{step}_temp")):
                with contextlib.suppress(tf.errors.OpError):
                    tf.io.gfile.rmtree(temp)
            raise
        if not self._chief:
            tf.io.gfile.rmtree(self._write_dir)
        return os.path.join(self.dir, os.path.basename(path))


class Sigterm:
    """While active, SIGTERM only sets `received` (the loop saves and stops after its step).

    Installed only in the main thread (signal handlers must be), and not under multi_worker,
    where a save needs every worker and one worker's signal alone would hang it.
    """

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.received = False
        self._previous = None

    def _handle(self, signum, frame):
        self.received = True
        logging.warning("SIGTERM received: saving a checkpoint after this step")

    def __enter__(self):
        if self.enabled:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGTERM, self._previous)


@contextlib.contextmanager
def writing(path: str, flag: str = "--model_dir"):
    """Turns the file errors of writing the run's files (a read-only folder, a full disk) into
    one OSError naming the flag and folder."""
    write_errors = (
        tf.errors.PermissionDeniedError,  # a read-only folder
        tf.errors.ResourceExhaustedError,  # a full disk
        tf.errors.FailedPreconditionError,  # a file where a folder should be
        tf.errors.UnknownError,
        OSError,  # from Python's and Keras' own writes
    )
    try:
        yield
    except FileNotFoundError:  # a missing input (records), not a failed write
        raise
    except write_errors as e:
        reason = getattr(e, "message", None) or str(e)
        reason = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*", "", reason)  # TF's
        raise OSError(f"cannot write to {flag} {path}: {reason}") from None
