"""Video-level evaluation and raw-video prediction, end to end on synthetic videos.

One module fixture makes a small synthetic dataset (2 colours x left/right), converts it with
the real converter, and trains a tiny RGB model for a few epochs. RGB sees colour, not motion,
so the trained model must put a video's colour first; the exact equalities below do not depend
on how well it trained.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tsn_keras import (
    augment,
    convert,
    evaluate,
    predict,
    records,
    sampling,
    scoring,
    splits,
    synthetic,
)
from tsn_keras import train as train_lib
from tsn_keras.config import TrainConfig
from tsn_keras.manifest import Manifest
from tsn_keras.models import preprocess_input

SIZE = 48  # network input side
CONVERT = dict(
    modalities=("rgb", "flow"),
    flow_algorithm="dis",
    dis_preset="ultrafast",
    num_snippets=6,
    snippet_length=2,
    width=64,
    height=48,
)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("evalpred")
    summary = synthetic.write_dataset(
        str(root / "videos"), classes=4, clips_per_class=8, seed=3, width=64, height=48,
        seconds=1.0, duration_jitter=0.0,
    )  # fmt: skip
    split = splits.load_split("ucf101", summary["out"], summary["split_dir"], 1)
    records_dir = str(root / "records")
    jobs = {
        "train": convert.jobs_from_pairs(split.train, split.classes, split.video_root),
        "test": convert.jobs_from_pairs(split.test, split.classes, split.video_root),
    }
    convert.convert(
        jobs, records_dir, convert.ConvertConfig(**CONVERT), split.classes, num_shards=1,
        workers=1, progress=False,
    )  # fmt: skip
    model_dir = str(root / "rgb")
    config = TrainConfig.for_modality(
        records=records_dir, model_dir=model_dir, modality="rgb", backbone="tiny",
        input_size=SIZE, num_segments=2, batch_size=8, epochs=30, lr=0.2,
        lr_schedule="cosine", partial_bn=False, dropout=0.2, weight_decay=1e-4,
        strategy="one_device", seed=0, val_every=0, verbose=False,
    )  # fmt: skip
    train_lib.run(config)
    return {"root": root, "split": split, "records": records_dir, "model_dir": model_dir}


def test_scores_are_the_model_on_the_ten_crops(trained):
    """evaluate's per-video score = mean over the 10 crops of the Keras model on K=6 snippets."""
    scorer = scoring.load_scorer(trained["model_dir"])
    files = Manifest.read(trained["records"]).shard_files("test", "rgb")
    serialized = next(iter(tf.data.TFRecordDataset(files)))
    video_id, label, logits = next(
        scoring.score_examples(scorer, tf.data.Dataset.from_tensors(serialized), 6, 10)
    )
    # The same computation by hand, from the library pieces.
    from tsn_keras import export

    model, tsn_config, _, _ = export.restore_from_model_dir(trained["model_dir"])
    parsed = records.parse_example(serialized, ["rgb"])
    idx = sampling.sample_snippet_indices(parsed["num_snippets"], 6, "test")
    np.testing.assert_array_equal(idx, np.arange(6))  # all 6 stored snippets
    clip = records.decode_snippets(parsed, "rgb", idx)
    views = augment.crop_views(clip, "rgb", SIZE, 10)  # [10, 6, S, S, 3]
    expected = model(preprocess_input(views, "tiny", "rgb"), training=False).numpy().mean(0)
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)
    assert video_id == parsed["video_id"].numpy().decode()
    assert label == int(parsed["label"])


def test_evaluate_command_from_model_dir_and_saved_model_agree(trained, tmp_path):
    outs = {}
    for flag, path in (
        ("--model_dir", trained["model_dir"]),
        ("--saved_model", os.path.join(trained["model_dir"], "export")),
    ):
        out = tmp_path / flag.strip("-")
        status = evaluate.main(
            ["evaluate", f"{flag}={path}", f"--records={trained['records']}",
             "--num_segments=6", "--crops=10", f"--output_dir={out}", "--noprogress"]
        )  # fmt: skip
        assert status == 0
        outs[flag] = out
    a = np.load(outs["--model_dir"] / "scores.npz")
    b = np.load(outs["--saved_model"] / "scores.npz")
    np.testing.assert_array_equal(a["video_ids"], b["video_ids"])
    np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-4, atol=1e-4)
    assert len(a["video_ids"]) == len(trained["split"].test)
    report = json.loads((outs["--model_dir"] / "metrics.json").read_text())
    assert set(report["per_class_accuracy"]) == set(trained["split"].classes)
    assert np.array(report["confusion_matrix"]).sum() == len(trained["split"].test)
    assert (outs["--model_dir"] / "confusion.png").stat().st_size > 0
    assert any(f.name.startswith("events.out.tfevents") for f in outs["--model_dir"].iterdir())


def test_evaluate_flag_errors_name_the_flag(trained, capsys):
    assert evaluate.main(["evaluate", f"--records={trained['records']}"]) == 2
    assert "--model_dir" in capsys.readouterr().err
    status = evaluate.main(["evaluate", "--model_dir=/nonexistent", "--records=/x"])
    assert status == 2
    assert "/nonexistent" in capsys.readouterr().err


def test_predict_equals_evaluate_on_the_same_video(trained):
    """predict converts a raw video with the converter's code: same scores as its record."""
    export_dir = os.path.join(trained["model_dir"], "export")
    scorer = scoring.load_scorer(export_dir)
    assert scorer.info.conversion["flow_algorithm"] == "dis"
    path, label = trained["split"].test[0]
    [result] = predict.predict_videos([path], [scorer], num_segments=6, crops=10)
    # The record of the same video, scored by evaluate's code.
    vid = splits.video_id(path, trained["split"].video_root)
    files = Manifest.read(trained["records"]).shard_files("test", "rgb")
    for serialized in tf.data.TFRecordDataset(files):
        parsed = records.parse_example(serialized, ["rgb"])
        if parsed["video_id"].numpy().decode() == vid:
            break
    _, _, logits = next(
        scoring.score_examples(scorer, tf.data.Dataset.from_tensors(serialized), 6, 10)
    )
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    classes = trained["split"].classes
    expected = sorted(zip(classes, probs, strict=True), key=lambda cp: -cp[1])[:5]
    assert [t["label"] for t in result["top5"]] == [c for c, _ in expected]
    np.testing.assert_allclose(
        [t["score"] for t in result["top5"]], [p for _, p in expected], atol=1e-5
    )
    # A model that sees colour: the top class has the video's colour.
    colour = classes[label].split("Blob")[0]
    assert result["top5"][0]["label"].startswith(colour), result


def test_predict_command_json_short_and_broken_videos(trained, tmp_path):
    from tsn_keras.video import write_video

    short = str(tmp_path / "short.avi")  # 3 frames: fewer than the 6 snippets
    frames = [np.full((48, 64, 3), 200, np.uint8) for _ in range(3)]
    write_video(short, frames, fps=25)
    broken = tmp_path / "broken.avi"
    broken.write_text("not a video")
    good = trained["split"].test[0][0]
    out = tmp_path / "pred.json"
    cmd = [sys.executable, "-m", "tsn_keras.predict", good, short, str(broken)]
    cmd += ["--models", os.path.join(trained["model_dir"], "export"), "--num_segments=6"]
    cmd += ["--crops=1", f"--json={out}"]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 1, result.stderr  # one video failed
    rows = json.loads(out.read_text())
    assert [r["path"] for r in rows] == [good, short, str(broken)]
    for r in rows[:2]:
        assert len(r["top5"]) == 4  # only 4 classes
        names = [t["label"] for t in r["top5"]]
        assert sorted(names) == sorted(trained["split"].classes)
        assert sum(t["score"] for t in r["top5"]) == pytest.approx(1.0, abs=1e-4)
    assert "error" in rows[2] and "top5" not in rows[2]
    assert "broken.avi" in result.stdout


def test_predict_in_several_passes_gives_the_same_answers(trained, monkeypatch):
    scorer = scoring.load_scorer(os.path.join(trained["model_dir"], "export"))
    paths = [p for p, _ in trained["split"].test[:3]]
    whole = predict.predict_videos(paths, [scorer], num_segments=6, crops=1)
    monkeypatch.setattr(predict, "VIDEOS_PER_PASS", 2)
    chunked = predict.predict_videos(paths, [scorer], num_segments=6, crops=1)
    assert [r["path"] for r in chunked] == paths
    for a, b in zip(whole, chunked, strict=True):
        assert [t["label"] for t in a["top5"]] == [t["label"] for t in b["top5"]]
        scores = [[t["score"] for t in r["top5"]] for r in (a, b)]
        np.testing.assert_allclose(*scores, atol=1e-6)


def test_evaluate_command_names_a_truncated_test_shard_or_skips_it(trained, tmp_path, capsys):
    import shutil

    records_dir = tmp_path / "records"
    shutil.copytree(trained["records"], records_dir)
    shard = sorted(records_dir.glob("test-rgb-*"))[0]
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) * 6 // 10)
    complete, offset = records.scan_tfrecord(str(shard))
    cmd = [sys.executable, "-m", "tsn_keras.evaluate", f"--model_dir={trained['model_dir']}",
           f"--records={records_dir}", "--num_segments=2", "--crops=1", "--noprogress",
           f"--output_dir={tmp_path / 'eval'}"]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    failed = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert failed.returncode == 1
    lines = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in failed.stderr, failed.stderr[-3000:]
    assert lines[0].startswith(f"error: {shard} is truncated at byte {offset}")
    assert evaluate.main([*cmd[2:], "--skip_corrupt_records"]) == 0  # in-process: faster
    out = capsys.readouterr().out
    lost = len(trained["split"].test) - complete
    assert f"{complete} videos in" in out
    assert f"{lost} damaged records skipped (--skip_corrupt_records)" in out
