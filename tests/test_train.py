"""Training command: config validation, mirrored (2 logical CPUs) + kill/resume, multi-worker.

The runs are subprocesses (`python -m tsn_keras.train`): logical CPU devices and
MultiWorkerMirroredStrategy must be configured before TensorFlow initialises.
"""

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from helpers import write_records

from tsn_keras import checkpoints, config, records, steps, train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    "--backbone=tiny",
    "--input_size=32",
    "--batch_size=4",
    "--steps_per_epoch=2",
    "--seed=0",
]


def _command(records_dir, model_dir, *extra):
    return [
        sys.executable,
        "-m",
        "tsn_keras.train",
        f"--records={records_dir}",
        f"--model_dir={model_dir}",
        *TINY,
        *extra,
    ]


def _env(**extra):
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **extra)


def _checkpoint_value(model_dir, name):
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, config.CHECKPOINT_DIR))
    return int(tf.train.load_checkpoint(latest).get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return write_records(str(tmp_path_factory.mktemp("records")), num_train=8, num_test=3)


def test_paper_defaults_and_linear_lr_scaling(records_dir):
    rgb = config.TrainConfig.for_modality(records=records_dir, model_dir="m")
    assert (rgb.lr, rgb.clip_norm, rgb.dropout, rgb.epochs, rgb.lr_steps) == (
        0.001,
        40.0,
        0.8,
        80,
        (30, 60),
    )
    flow = config.TrainConfig.for_modality(
        "flow", records=records_dir, model_dir="m", batch_size=32
    )
    assert flow.lr == pytest.approx(0.005 * 32 / 128) and flow.clip_norm == 20.0
    assert (flow.dropout, flow.epochs, flow.lr_steps) == (0.7, 340, (190, 300))
    assert flow.export_path == os.path.join("m", "export")
    explicit = config.TrainConfig.for_modality(records=records_dir, model_dir="m", lr=0.1)
    assert explicit.lr == 0.1  # an explicit --lr is used as given
    short = config.TrainConfig.for_modality("flow", records=records_dir, model_dir="m", epochs=200)
    assert short.lr_steps == (190,)  # recipe steps past --epochs are dropped
    cosine = config.TrainConfig.for_modality(records="r", model_dir="m", lr_schedule="cosine")
    assert cosine.lr_steps == ()


@pytest.mark.parametrize(
    "kwargs,flag",
    [
        (dict(modality="depth"), "--modality"),
        (dict(backbone="vgg"), "--backbone"),
        (dict(lr_schedule="cosine", lr_steps=(3,)), "--lr_steps"),
        (dict(epochs=5, lr_steps=(2, 6)), "--lr_steps"),
        (dict(dropout=1.0), "--dropout"),
        (dict(backbone="tiny", pretrained="imagenet"), "--pretrained"),
        (dict(strategy="one_device", cpu_devices=2), "--cpu_devices"),
        (dict(clip_norm=-1.0), "--clip_norm"),
        (dict(mixed_precision="float8"), "--mixed_precision"),
        (dict(lr=float("inf")), "--lr must be a finite number"),
        (dict(momentum=float("nan")), "--momentum must be a finite number"),
        (dict(consensus="median"), "--consensus"),
    ],
)
def test_bad_flags_fail_in_the_config(records_dir, kwargs, flag):
    with pytest.raises(ValueError, match=flag):
        config.TrainConfig.for_modality(records=records_dir, model_dir="m", **kwargs)


@pytest.mark.parametrize(
    "kwargs,flag",
    [
        (dict(pretrained="/no/such.weights.h5"), "--pretrained"),
        (dict(strategy="multi_worker"), "TF_CONFIG"),
    ],
)
def test_environment_is_checked_where_a_run_starts_not_where_a_config_is_read(
    records_dir, tmp_path, kwargs, flag, monkeypatch
):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    run_config = config.TrainConfig.for_modality(records=records_dir, model_dir="m", **kwargs)
    with pytest.raises(ValueError, match=flag):
        run_config.check_environment()
    with pytest.raises(ValueError, match=flag):
        train.run(run_config)
    # A finished run's saved config reads back on a machine without the file or TF_CONFIG.
    (tmp_path / config.CONFIG_NAME).write_text(
        json.dumps({"config": run_config.to_json(), "data": {"classes": ["a"]}})
    )
    assert config.read_train_config(str(tmp_path))[0] == run_config


def test_flags_are_the_config_fields(tmp_path):
    fv = flags.FlagValues()
    config.define_flags(fv)
    fields = {f.name for f in dataclasses.fields(config.TrainConfig)} - {"verbose"}
    assert set(fv) >= fields  # one flag per field
    fv(["train", "--records=r", "--model_dir=m", "--modality=flow", "--lr_steps=5,9",
        "--epochs=12", "--batch_size=32"])  # fmt: skip
    parsed = config.config_from_flags(fv)
    expected = config.TrainConfig.for_modality(
        "flow", records="r", model_dir="m", lr_steps=(5, 9), epochs=12, batch_size=32
    )
    assert parsed == expected and parsed.lr == pytest.approx(0.005 / 4)
    assert parsed.pretrained is None and parsed.dropout == 0.7


def test_transform_gradients_clips_then_decays_then_scales():
    w = [tf.constant([1.0, 2.0]), tf.constant([3.0])]
    g = [tf.constant([3.0, 0.0]), tf.constant([4.0])]  # global norm 5
    out = steps.transform_gradients(g, w, decays=[0.1, 0.0], lr_mults=[1.0, 2.0], clip_norm=2.5)
    np.testing.assert_allclose(out[0], [1.5 + 0.1, 0.0 + 0.2])  # halved, then + 0.1 * w
    np.testing.assert_allclose(out[1], [2.0 * 2.0])  # halved, no decay, lr_mult 2
    # With a loss scale of 8 the result is 8 times the unscaled one.
    scaled = steps.transform_gradients(
        [x * 8 for x in g], w, decays=[0.1, 0.0], lr_mults=[1.0, 2.0], clip_norm=2.5, scale=8.0
    )
    for a, b in zip(scaled, out, strict=True):
        np.testing.assert_allclose(a, b * 8, rtol=1e-6)
    unclipped = steps.transform_gradients(g, w, [0.0, 0.0], [1.0, 1.0], clip_norm=0.0)
    np.testing.assert_allclose(unclipped[1], [4.0])


def test_main_rejects_contradictory_flags_before_reading_data(tmp_path, capsys):
    argv = ["train", f"--records={tmp_path / 'no_records'}", f"--model_dir={tmp_path / 'm'}"]
    assert train.main([*argv, "--lr_schedule=cosine", "--lr_steps=3"]) == 2
    assert "--lr_steps and --lr_schedule=cosine contradict" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()  # it stopped at the flags, before the records
    assert train.main([*argv, "--consensus=median"]) == 2
    assert "--consensus" in capsys.readouterr().err
    assert train.main([*argv, "--lr=inf"]) == 2
    assert "--lr must be a finite number" in capsys.readouterr().err
    assert train.main([*argv, "--no_such_flag=1"]) == 2
    assert train.main(argv) == 2  # no manifest: a bad --records, named
    assert "no_records" in capsys.readouterr().err


def test_nan_loss_stops_with_a_clear_message(records_dir, tmp_path):
    nan_config = config.TrainConfig.for_modality(
        records=records_dir,
        model_dir=str(tmp_path / "nan"),
        backbone="tiny",
        input_size=32,
        batch_size=4,
        epochs=1,
        steps_per_epoch=6,
        lr=1e38,
        clip_norm=0.0,
        strategy="one_device",
        export_dir="",
        seed=0,
        verbose=False,
        val_every=0,
    )
    with pytest.raises(FloatingPointError, match="Lower --lr"):
        train.run(nan_config)


@pytest.mark.slow
def test_mirrored_two_devices_checkpoints_events_kill_and_resume(records_dir, tmp_path):
    model_dir = tmp_path / "run"
    epochs = 10
    cmd = _command(
        records_dir,
        model_dir,
        "--strategy=mirrored",
        "--cpu_devices=2",
        f"--epochs={epochs}",
        "--val_every=10",
    )
    first = subprocess.Popen(
        cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    index = model_dir / config.CHECKPOINT_DIR / "checkpoint"
    deadline = time.time() + 120
    while not index.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    _, err = first.communicate(timeout=30)
    assert first.returncode == -signal.SIGKILL, err[-3000:]
    killed_at = _checkpoint_value(model_dir, "epoch")
    assert 1 <= killed_at < epochs
    # After the first epoch: checkpoint, TensorBoard events (train), config.
    assert list((model_dir / "train").glob("events.out.tfevents.*"))
    saved = json.loads((model_dir / config.CONFIG_NAME).read_text())
    assert saved["data"]["replicas"] == 2 and saved["config"]["batch_size"] == 4

    second = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resumed from" in second.stderr and f"(epoch {killed_at}," in second.stderr
    assert _checkpoint_value(model_dir, "epoch") == epochs
    assert _checkpoint_value(model_dir, "step") == 2 * epochs
    assert list((model_dir / "validation").glob("events.out.tfevents.*"))
    tags = set()
    for event_file in (model_dir / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(v.tag for v in event.summary.value)
    assert {
        "epoch_loss",
        "epoch_top1",
        "epoch_top5",
        "learning_rate",
        "clips_per_second",
        "input_snippets",
        "flags",
    } <= tags
    assert (model_dir / "export" / "saved_model.pb").exists()
    assert (model_dir / "export" / "model.keras").exists()


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_two_processes_on_localhost(records_dir, tmp_path):
    model_dir = tmp_path / "mw"
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(
            subprocess.Popen(
                _command(
                    records_dir, model_dir, "--strategy=multi_worker", "--epochs=2", "--export_dir="
                ),
                cwd=REPO,
                env=_env(TF_CONFIG=tf_config),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    errs = []
    for p in procs:
        try:
            errs.append(p.communicate(timeout=240)[1])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, err in zip(procs, errs, strict=True):
        assert p.returncode == 0, err[-3000:]
    # Both workers saw the same globally reduced metrics; only the chief kept files.
    done = [
        line.split("Done: ", 1)[1] for err in errs for line in err.splitlines() if "Done: " in line
    ]
    assert len(done) == 2 and done[0] == done[1]
    assert _checkpoint_value(model_dir, "epoch") == 2
    assert not list((model_dir / config.CHECKPOINT_DIR).glob("worker_tmp_*"))
    assert list((model_dir / "validation").glob("events.out.tfevents.*"))


def _truncate(path, keep_fraction=0.5):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(int(size * keep_fraction))


def test_a_damaged_latest_checkpoint_falls_back_to_the_newest_intact_one(tmp_path):
    value = tf.Variable(np.zeros(1000, np.float32))
    checkpoint = tf.train.Checkpoint(v=value)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=3)
    for epoch in (1, 2, 3):
        value.assign(np.full(1000, epoch, np.float32))
        manager.save(checkpoint_number=epoch)
    _truncate(str(tmp_path / "ckpt-3.data-00000-of-00001"))
    value.assign(np.zeros(1000, np.float32))
    assert checkpoints.restore_latest_intact(checkpoint, str(tmp_path)) == str(tmp_path / "ckpt-2")
    np.testing.assert_array_equal(value.numpy(), 2.0)
    _truncate(str(tmp_path / "ckpt-2.index"), 0.3)
    _truncate(str(tmp_path / "ckpt-1.data-00000-of-00001"))
    with pytest.raises(
        checkpoints.DamagedCheckpointsError,
        match=r"Every checkpoint in .* is damaged.*ckpt-3.*ckpt-2.*ckpt-1",
    ):
        checkpoints.restore_latest_intact(checkpoint, str(tmp_path))
    assert checkpoints.restore_latest_intact(checkpoint, str(tmp_path / "none")) is None


def test_a_truncated_shard_is_named_or_skipped(tmp_path):
    records_dir = write_records(str(tmp_path / "records"), num_train=8, num_test=2, shards=2)
    shard = sorted((tmp_path / "records").glob("train-rgb-00001-*"))[0]
    complete, offset = records.scan_tfrecord(str(shard))
    assert (complete, offset) == (4, None)
    _truncate(str(shard), 0.6)
    complete, offset = records.scan_tfrecord(str(shard))
    assert complete == 2 and offset is not None  # 4 records of similar size, cut at 60%
    run_config = config.TrainConfig.for_modality(
        records=records_dir, model_dir=str(tmp_path / "run"), backbone="tiny", input_size=32,
        batch_size=4, epochs=1, steps_per_epoch=4, strategy="one_device", export_dir="",
        seed=0, verbose=False, val_every=0, shuffle_buffer=2,
    )  # fmt: skip
    with pytest.raises(
        records.DamagedRecordsError, match=rf"{shard} is truncated at byte {offset}"
    ):
        train.run(run_config)
    skipping = dataclasses.replace(
        run_config, skip_corrupt_records=True, model_dir=str(tmp_path / "skip")
    )
    result = train.run(skipping)
    assert result["epoch"] == 1 and result["skipped_records"] == 2
