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


@pytest.mark.slow
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


def test_a_damaged_state_file_resumes_from_the_files_and_rotates_nothing_unread(
    records_dir, tmp_path
):
    model_dir = tmp_path / "run"
    cmd = _command(records_dir, model_dir, "--steps_per_epoch=2")  # the last flag counts
    assert train.main([*cmd[2:], "--epochs=4"]) == 0  # in-process: faster
    ckpt_dir = _ckpt_dir(model_dir)
    assert sorted(f for f in os.listdir(ckpt_dir) if f.endswith(".index")) == [
        "ckpt-4.index", "ckpt-6.index", "ckpt-8.index",
    ]  # fmt: skip
    with open(os.path.join(ckpt_dir, "checkpoint"), "a") as f:
        f.write("garbage {{{\n")
    second = _run([*cmd, "--epochs=6"])
    assert second.returncode == 0, second.stderr[-3000:]
    assert "checkpoint cannot be read" in second.stderr
    assert f"Resuming from {os.path.join(ckpt_dir, 'ckpt-8')}" in second.stderr
    final = tf.train.latest_checkpoint(ckpt_dir)
    assert (_value(final, "epoch"), _value(final, "step")) == (6, 12)  # no restart at epoch 1
    # ckpt-4 and ckpt-6 were not read: they stay; ckpt-8 (read) rotates as usual later.
    for number in (4, 6, 8, 10, 12):
        assert os.path.exists(os.path.join(ckpt_dir, f"ckpt-{number}.index")), number


def test_nan_weights_stop_the_command_with_one_error_line_and_no_export(records_dir, tmp_path):
    model_dir, export_dir = tmp_path / "nan", tmp_path / "export"
    cmd = _command(records_dir, model_dir, "--lr=1e308", "--clip_norm=0", "--epochs=2",
                   f"--export_dir={export_dir}")  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    done = subprocess.run(  # the progress bar (stdout) and the error (stderr) interleaved
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:]
    errors = [line for line in done.stdout.splitlines() if "NaN or infinite" in line]
    assert len(errors) == 1 and errors[0].startswith("error: "), done.stdout[-3000:]
    assert "NaN or infinite after the update at epoch 1, step 1 " in errors[0]
    assert "Last good checkpoint: none" in errors[0]
    assert not export_dir.exists() and tf.train.latest_checkpoint(_ckpt_dir(model_dir)) is None


def _tiny_config(records_dir, model_dir, **overrides):
    fields = dict(
        records=records_dir, model_dir=str(model_dir), backbone="tiny", input_size=32,
        batch_size=4, epochs=1, steps_per_epoch=2, strategy="one_device", export_dir="",
        seed=0, verbose=False, val_every=1, shuffle_buffer=4,
    )  # fmt: skip
    return config.TrainConfig.for_modality(**{**fields, **overrides})


def test_a_nan_validation_loss_stops_before_saving_or_exporting(records_dir, tmp_path, monkeypatch):
    nan = {"loss": math.nan, "top1": 0.0, "top5": 1.0}
    monkeypatch.setattr(train, "_validate", lambda step_fns, data: nan)
    run_config = _tiny_config(records_dir, tmp_path / "run", export_dir=str(tmp_path / "x"))
    with pytest.raises(FloatingPointError, match="validation loss is nan after epoch 1"):
        train.run(run_config)
    assert tf.train.latest_checkpoint(_ckpt_dir(tmp_path / "run")) is None
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def trained(records_dir, tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("trained") / "run"
    train.run(_tiny_config(records_dir, model_dir))
    return str(model_dir)


def test_export_refuses_non_finite_weights(trained, tmp_path, capsys):
    model, *_ = export.restore_from_model_dir(trained)
    model.weights[0].assign(np.full(model.weights[0].shape, np.nan, np.float32))
    nan_dir = tmp_path / "nan_run"
    os.makedirs(nan_dir / config.CHECKPOINT_DIR)
    for name in (config.CONFIG_NAME, config.CLASSES_NAME):
        (nan_dir / name).write_bytes(open(os.path.join(trained, name), "rb").read())
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), _ckpt_dir(nan_dir), 1)
    manager.save(checkpoint_number=2)
    argv = ["export", f"--model_dir={nan_dir}", f"--export_dir={tmp_path / 'export'}"]
    assert export.main(argv) == 1
    assert "NaN or infinite values" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["nan_run"]  # no export, no temporary folder


def test_a_failed_export_leaves_no_half_written_folder_and_keeps_the_older_one(
    trained, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "export"
    argv = ["export", f"--model_dir={trained}", f"--export_dir={out}"]
    assert export.main(argv) == 0
    before = (out / "saved_model.pb").read_bytes()

    def full_disk(self, path, *args, **kwargs):
        raise OSError(28, "No space left on device", path)

    monkeypatch.setattr(keras_model_class(), "save", full_disk)
    assert export.main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: cannot write the export to {out}: [Errno 28] No space left on "
                   f"device: '{out}.incomplete/model.keras'"]  # fmt: skip
    assert sorted(os.listdir(tmp_path)) == ["export"]  # no .incomplete folder left
    assert (out / "saved_model.pb").read_bytes() == before and (out / "model.keras").exists()


def keras_model_class():
    import keras

    return keras.Model


def test_an_unwritable_model_dir_is_one_error_line(records_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert train.main(_command(records_dir, blocker / "run", "--epochs=1")[2:]) == 1
    err = capsys.readouterr().err
    expected = f"cannot write to --model_dir {blocker / 'run'}: {blocker} is not a directory"
    assert err == f"error: {expected}\n"


@pytest.mark.parametrize(
    "flag", ["--input_size=100000", "--num_segments=1000000", "--seed=-5", "--consensus=topk:5"]
)
def test_impossible_sizes_and_bad_values_are_refused_naming_the_flag(tmp_path, capsys, flag):
    argv = ["train", f"--records={tmp_path}", f"--model_dir={tmp_path / 'm'}", flag]
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {flag.split('=')[0]}") or f"{flag}" in err.splitlines()[0]
    if "size" in flag or "segments" in flag:
        assert "more than this machine's" in err and "GiB of memory" in err
    assert not (tmp_path / "m").exists()  # refused before anything was written


def test_a_damaged_test_shard_is_skipped_in_validation_with_the_flag(tmp_path):
    records_dir = write_records(str(tmp_path / "records"), num_train=8, num_test=4, shards=2)
    shard = sorted((tmp_path / "records").glob("test-rgb-00001-*"))[0]
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) * 6 // 10)
    run_config = _tiny_config(records_dir, tmp_path / "run")
    with pytest.raises(train.records.DamagedRecordsError, match=f"{shard} is truncated"):
        train.run(run_config)
    skipping = dataclasses.replace(
        run_config, skip_corrupt_records=True, model_dir=str(tmp_path / "skip")
    )
    result = train.run(skipping)
    assert result["epoch"] == 1 and result["skipped_records"] == 1
    assert math.isfinite(result["val_loss"])


@pytest.fixture
def small_disk(tmp_path, request):
    """A tmpfs mounted with `request.param` options (root only; skipped elsewhere)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    options = f"size=48k,{request.param}" if request.param else "size=48k"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


@pytest.mark.parametrize("small_disk", ["", "ro"], indirect=True, ids=["full", "read_only"])
def test_a_full_or_read_only_model_dir_is_one_error_line(records_dir, small_disk, capsys):
    argv = _command(records_dir, small_disk / "run", "--epochs=2")[2:]
    assert train.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot write to --model_dir {small_disk / 'run'}: ")
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not list(small_disk.glob("run/checkpoints/*_temp"))  # no half-written checkpoint
