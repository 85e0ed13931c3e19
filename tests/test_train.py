"""Training command: config validation, mirrored (2 logical CPUs) + kill/resume, multi-worker.

The runs are subprocesses (`python -m tsn_keras.train`): logical CPU devices and
MultiWorkerMirroredStrategy must be configured before TensorFlow initialises.
"""

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
from test_input_pipeline import write_records

from tsn_keras import train

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
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, train.CHECKPOINT_DIR))
    return int(tf.train.load_checkpoint(latest).get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory):
    return write_records(str(tmp_path_factory.mktemp("records")), num_train=8, num_test=3)


def test_paper_defaults_and_linear_lr_scaling(records_dir):
    rgb = train.TrainConfig(records=records_dir, model_dir="m").resolved()
    assert (rgb.lr, rgb.clip_norm, rgb.dropout, rgb.epochs, rgb.lr_steps) == (
        0.001,
        40.0,
        0.8,
        80,
        (30, 60),
    )
    flow = train.TrainConfig(records=records_dir, model_dir="m", modality="flow", batch_size=32)
    flow = flow.resolved()
    assert flow.lr == pytest.approx(0.005 * 32 / 128) and flow.clip_norm == 20.0
    assert (flow.dropout, flow.epochs, flow.lr_steps) == (0.7, 340, (190, 300))
    assert flow.export_dir == os.path.join("m", "export")
    explicit = train.TrainConfig(records=records_dir, model_dir="m", lr=0.1, batch_size=32)
    assert explicit.resolved().lr == 0.1  # an explicit --lr is used as given


@pytest.mark.parametrize(
    "kwargs,flag",
    [
        (dict(modality="depth"), "--modality"),
        (dict(backbone="vgg"), "--backbone"),
        (dict(lr_schedule="cosine", lr_steps=(3,)), "--lr_steps"),
        (dict(epochs=5, lr_steps=(2, 6)), "--lr_steps"),
        (dict(dropout=1.0), "--dropout"),
        (dict(backbone="tiny", pretrained="imagenet"), "--pretrained"),
        (dict(pretrained="/no/such.weights.h5"), "--pretrained"),
        (dict(strategy="one_device", cpu_devices=2), "--cpu_devices"),
        (dict(strategy="multi_worker"), "TF_CONFIG"),
        (dict(clip_norm=-1.0), "--clip_norm"),
        (dict(mixed_precision="float8"), "--mixed_precision"),
    ],
)
def test_bad_flags_fail_in_the_config(records_dir, kwargs, flag, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match=flag):
        train.TrainConfig(records=records_dir, model_dir="m", **kwargs)


def test_transform_gradients_clips_then_decays_then_scales():
    w = [tf.constant([1.0, 2.0]), tf.constant([3.0])]
    g = [tf.constant([3.0, 0.0]), tf.constant([4.0])]  # global norm 5
    out = train.transform_gradients(g, w, decays=[0.1, 0.0], lr_mults=[1.0, 2.0], clip_norm=2.5)
    np.testing.assert_allclose(out[0], [1.5 + 0.1, 0.0 + 0.2])  # halved, then + 0.1 * w
    np.testing.assert_allclose(out[1], [2.0 * 2.0])  # halved, no decay, lr_mult 2
    # With a loss scale of 8 the result is 8 times the unscaled one.
    scaled = train.transform_gradients(
        [x * 8 for x in g], w, decays=[0.1, 0.0], lr_mults=[1.0, 2.0], clip_norm=2.5, scale=8.0
    )
    for a, b in zip(scaled, out, strict=True):
        np.testing.assert_allclose(a, b * 8, rtol=1e-6)
    unclipped = train.transform_gradients(g, w, [0.0, 0.0], [1.0, 1.0], clip_norm=0.0)
    np.testing.assert_allclose(unclipped[1], [4.0])


def test_input_grid_shows_flow_as_an_image():
    clips = np.zeros((2, 3, 8, 8, 4), np.float32)
    clips[..., 0] = 255  # x: strongly rightward
    grid = train._input_grid(clips, "flow")
    assert grid.shape == (1, 16, 24, 3)
    np.testing.assert_allclose(grid[0, 0, 0], [1.0, 0.0, 128 / 255])


def test_main_rejects_contradictory_flags_before_reading_data(tmp_path):
    flag_values = flags.FlagValues()
    train.define_flags(flag_values)
    flag_values(
        [
            "train",
            f"--records={tmp_path / 'no_records'}",
            f"--model_dir={tmp_path / 'm'}",
            "--lr_schedule=cosine",
            "--lr_steps=3",
        ]
    )
    with pytest.raises(SystemExit, match="--lr_steps and --lr_schedule=cosine contradict"):
        train.main(["train"], flag_values)
    assert not (tmp_path / "m").exists()  # it stopped at the flags, before the records
    flag_values.unparse_flags()
    flag_values(["train", "--records=r", "--model_dir=m", "--consensus=median"])
    with pytest.raises(SystemExit, match="--consensus"):
        train.main(["train"], flag_values)


def test_nan_loss_stops_with_a_clear_message(records_dir, tmp_path):
    config = train.TrainConfig(
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
        train.run(config)


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
    index = model_dir / train.CHECKPOINT_DIR / "checkpoint"
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
    saved = json.loads((model_dir / train.CONFIG_NAME).read_text())
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
    assert not list((model_dir / train.CHECKPOINT_DIR).glob("worker_tmp_*"))
    assert list((model_dir / "validation").glob("events.out.tfevents.*"))
