"""Training and export under faults, through the real command line where it matters.

SIGTERM mid-epoch (checkpoint, exit 143, the rerun skips exactly the examples already trained
on: its final weights equal an unbroken run's bit for bit), a damaged checkpoint state file
(nothing restarts, nothing unread is rotated away), NaN weights and validation loss (exit 1,
nothing saved or exported; export refuses them), an unwritable --model_dir or export folder,
sizes that cannot fit in memory.
"""

import dataclasses
import math
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from helpers import write_records

from tsn_keras import checkpoints, config, export, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 12  # steps per epoch of the command-line runs


def _command(records_dir, model_dir, *extra):
    return [
        sys.executable, "-m", "tsn_keras.train", f"--records={records_dir}",
        f"--model_dir={model_dir}", "--backbone=tiny", "--input_size=32", "--batch_size=4",
        f"--steps_per_epoch={STEPS}", "--seed=0", "--strategy=one_device", "--export_dir=",
        "--val_every=0", "--shuffle_buffer=4", *extra,
    ]  # fmt: skip


def _run(cmd, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    return subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, **kwargs
    )


def _tensors(path, prefixes=("model/", "optimizer/")):
    reader = tf.train.load_checkpoint(path)
    names = [n for n in reader.get_variable_to_shape_map() if n.startswith(prefixes)]
    return {n: reader.get_tensor(n) for n in names}


def _value(path, name):
    return checkpoints.read_int(path, name, -1)


def _ckpt_dir(model_dir):
    return os.path.join(model_dir, config.CHECKPOINT_DIR)


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return write_records(str(tmp_path_factory.mktemp("records")), num_train=8, num_test=3)


def test_sigterm_mid_epoch_saves_and_the_rerun_continues_as_if_unbroken(records_dir, tmp_path):
    reference = tmp_path / "unbroken"
    done = _run(_command(records_dir, reference, "--epochs=2"))
    assert done.returncode == 0, done.stderr[-3000:]

    model_dir = tmp_path / "preempted"
    cmd = _command(records_dir, model_dir, "--epochs=2")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    first = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    state = model_dir / config.CHECKPOINT_DIR / "checkpoint"
    deadline = time.time() + 120
    while not state.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    first.send_signal(signal.SIGTERM)  # during epoch 2: its first checkpoint is epoch 1's
    _, err = first.communicate(timeout=60)
    assert first.returncode == train.PREEMPTED_STATUS, err[-3000:]
    stopped = [line for line in err.splitlines() if line.startswith("stopped: SIGTERM")]
    assert len(stopped) == 1 and "rerun the same command to resume" in stopped[0], err[-3000:]
    saved = tf.train.latest_checkpoint(_ckpt_dir(model_dir))
    epoch_step = _value(saved, "epoch_step")
    assert 1 <= epoch_step < STEPS, stopped  # mid-epoch, not at its end
    assert (_value(saved, "epoch"), _value(saved, "step")) == (1, STEPS + epoch_step)
    assert f"epoch 2, step {epoch_step} of {STEPS}" in stopped[0]

    second = _run(cmd)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"{epoch_step} steps into epoch 2" in second.stderr
    final = tf.train.latest_checkpoint(_ckpt_dir(model_dir))
    assert (_value(final, "epoch"), _value(final, "step")) == (2, 2 * STEPS)
    # The resumed run trained on exactly the batches the unbroken run did after that step:
    # every weight and optimizer slot is bit for bit the same.
    ours, theirs = _tensors(final), _tensors(tf.train.latest_checkpoint(_ckpt_dir(reference)))
    assert ours.keys() == theirs.keys() and len(ours) > 10
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)
