"""The converter on a Kinetics download as it is: listed clips that were never downloaded are
counted, listed in not_found.txt and the manifest; the unlabelled list goes to a file; planning
stays linear in the number of videos."""

import json
import os
import time

import numpy as np
import pytest

from tsn_keras import convert, splits, video
from tsn_keras.manifest import Manifest

TRAIN = (  # DeepMind's header and CRLF; a quoted label with a comma; ids that begin with '-'
    "label,youtube_id,time_start,time_end,split\r\n"
    "abseiling,--33Lscn6sk,4,14,train\r\n"
    '"tying knot (not on a tie, eg) bowtie",-0Bq9d3QGy4,30,40,train\r\n'
    "abseiling,0IGrgDpxuXk,12,22,train\r\n"
    "air drumming,-5tWkXHPBoQ,0,10,train\r\n"  # not downloaded
    "air drumming,2Ew3zK9xLrE,3,13,train\r\n"
)
VALIDATE = (
    "label,youtube_id,time_start,time_end,split\r\n"
    "air drumming,0wR5jVB-WPk,17,27,validate\r\n"
    "abseiling,1kTaVJ2WdxY,0,10,validate\r\n"  # not downloaded
)
TEST = "youtube_id,time_start,time_end,split\r\n-Bf9j1tyUh8,80,90,test\r\n0aJ4Vyk_1zE,2,12,test\r\n"
ON_DISK = (
    "train/abseiling/--33Lscn6sk_000004_000014.mp4",
    "train/tying knot (not on a tie, eg) bowtie/-0Bq9d3QGy4_000030_000040.mp4",
    "train/abseiling/0IGrgDpxuXk_000012_000022.mp4",
    "train/air drumming/2Ew3zK9xLrE_000003_000013.mp4",
    "val/air drumming/0wR5jVB-WPk_000017_000027.mp4",
    "test/-Bf9j1tyUh8_000080_000090.mp4",
)


@pytest.fixture(scope="module")
def download(tmp_path_factory):
    """A Kinetics-400 folder as the official downloaders leave it, with tiny real clips."""
    root = tmp_path_factory.mktemp("kinetics400")
    rng = np.random.default_rng(0)
    for rel in ON_DISK:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        frames = rng.integers(0, 255, (6, 48, 64, 3), dtype=np.uint8)
        video.write_video(str(path), list(frames), fourcc="mp4v")
    for name, text in (("train", TRAIN), ("validate", VALIDATE), ("test", TEST)):
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"{name}.csv").write_bytes(text.encode())
    return root


def _main(root, out, *extra):
    return convert.main(
        [
            "make_tfrecords.py", "--dataset=kinetics", f"--video_root={root}", f"--out={out}",
            "--modalities=rgb", "--snippets=2", "--width=32", "--height=24", "--workers=1",
            "--noprogress", *extra,
        ]
    )  # fmt: skip


def test_clips_not_downloaded_are_counted_listed_and_in_the_manifest(download, tmp_path, capsys):
    out, listing = tmp_path / "out", tmp_path / "unlabelled.txt"
    assert _main(download, out, f"--unlabelled_out={listing}") == 0
    printed = capsys.readouterr().out
    assert f"unlabelled videos: 1 paths written to {listing}\n" in printed
    assert listing.read_text() == f"{download}/test/-Bf9j1tyUh8_000080_000090.mp4\n"
    annotations = download / "annotations"
    absent = [
        f"{annotations}/train.csv:5: -5tWkXHPBoQ_000000_000010",
        f"{annotations}/validate.csv:3: 1kTaVJ2WdxY_000000_000010",
    ]
    summary = printed.splitlines()[-1]
    assert summary.startswith(f"{out}: train 4, test 1 examples; this run 5 videos in ")
    assert summary.endswith(
        f"0 failed (see {out}/failures.txt), 0 stored short of their declared frames; "
        f"listed but not on disk: 2; list in {out}/not_found.txt"
    )
    assert (out / "not_found.txt").read_text() == "".join(f"{a}\n" for a in absent)
    manifest = Manifest.read(str(out)).to_dict()
    assert manifest["not_found"] == absent and manifest["failures"] == []
    assert manifest["classes"] == [
        "abseiling",
        "air drumming",
        "tying knot (not on a tie, eg) bowtie",
    ]
    # a rerun resumes: nothing converted, the same manifest and list, byte for byte
    before = {n: (out / n).read_bytes() for n in ("manifest.json", "not_found.txt")}
    assert _main(download, out, f"--unlabelled_out={listing}") == 0  # the same command
    assert "this run 0 videos" in capsys.readouterr().out
    assert before == {n: (out / n).read_bytes() for n in ("manifest.json", "not_found.txt")}


def test_one_subset_and_a_manifest_without_the_not_found_field(download, tmp_path, capsys):
    out = tmp_path / "out"
    assert _main(download, out, "--subsets=test") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    # only the converted list's absent clips
    assert manifest["not_found"] == [
        f"{download}/annotations/validate.csv:3: 1kTaVJ2WdxY_000000_000010"
    ]
    del manifest["not_found"]  # as written before the field existed
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert Manifest.read(str(out)).to_dict()["sets"]["test"]["num_examples"] == 1
    assert convert.command._absent_text(Manifest.read(str(out)).to_dict(), str(out)) == ""


def test_complete_download_says_nothing_of_absent_clips(download, tmp_path, capsys):
    out = tmp_path / "out"
    split = splits.load_split("kinetics", str(download))
    jobs = convert.jobs_from_pairs(split.test, split.classes, split.video_root)
    config = convert.ConvertConfig(modalities=("rgb",), num_snippets=2, width=32, height=24)
    report = convert.convert({"test": jobs}, str(out), config, split.classes, workers=1,
                             progress=False)  # fmt: skip
    assert report.manifest["not_found"] == [] and (out / "not_found.txt").read_text() == ""
    assert convert.command._absent_text(report.manifest, str(out)) == ""


def test_unlabelled_out_that_cannot_be_written_is_a_usage_error(download, tmp_path, capsys):
    assert _main(download, tmp_path / "out", f"--unlabelled_out={tmp_path}/no/dir.txt") == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --unlabelled_out {tmp_path}/no/dir.txt: No such file")


def test_planning_is_linear_in_the_number_of_videos(tmp_path):
    """40k ids with a duplicate (ids.count() took 76 s) and 6,000 shards' resume check
    (list membership of the shards took 7.4 s at 6,501): well under a second each now."""
    jobs = [convert.VideoJob(f"/v/{i}.mp4", f"{i}.mp4", 0, "c") for i in range(40_000)]
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"duplicate video ids in one subset: \['7\.mp4'\]"):
        convert.assign_shards([*jobs, jobs[7]], 100)
    assert time.monotonic() - start < 5.0
    config = convert.ConvertConfig(modalities=("rgb",))
    shards = convert.plan_shards({"train": jobs[:6000]}, config, num_shards=6000)
    done = shards[::2]
    for shard in done:  # finished shards: the sidecar with the digest, and the file
        for name in shard.files.values():
            (tmp_path / name).write_bytes(b"")
    os.makedirs(tmp_path / convert.PROGRESS_DIR)
    for shard in done:
        side = {"digest": shard.digest, "files": shard.files}
        (tmp_path / convert.PROGRESS_DIR / f"{shard.name}.json").write_text(json.dumps(side))
    start = time.monotonic()
    pending, skipped = convert.pending_shards(str(tmp_path), shards)
    assert time.monotonic() - start < 5.0
    assert [s.name for s in pending] == [s.name for s in shards[1::2]]
    assert skipped == [s.name for s in done]
