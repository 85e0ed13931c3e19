"""Beam writes the local converter's not_found.txt and manifest `not_found`, the list carried
in its plan file (a Dataflow job graph has no room for 65k names), not in the pipeline."""

import os

import pytest

from tsn_keras import convert, splits, synthetic

pytest.importorskip("apache_beam", reason="the beam extra: pip install '.[beam]'")
from tsn_keras import beam  # noqa: E402  (after the skip)

CONFIG = convert.ConvertConfig(modalities=("rgb",), num_snippets=2, width=32, height=24)
ABSENT = [
    "/data/k400/annotations/train.csv:4: -5tWkXHPBoQ_000000_000010",
    "/data/k400/annotations/val.csv:3: 1kTaVJ2WdxY_000000_000010",
]


def test_beam_writes_the_not_found_list_as_the_local_converter(tmp_path, monkeypatch):
    root = str(tmp_path / "videos")
    synthetic.write_dataset(root, classes=2, clips_per_class=2, width=64, height=48, seconds=0.4)
    split = splits.load_split("ucf101", root, split=1)
    subsets = {"train": convert.jobs_from_pairs(split.train, split.classes, root)}
    info = {"dataset": "kinetics", "not_found": ABSENT}
    local = tmp_path / "local"
    convert.convert(subsets, str(local), CONFIG, split.classes, 1, 1, info=info, progress=False)
    graphs = []
    build = beam.build_pipeline

    def spy(pipeline, plan_path, pending, out_dir, config, classes, info, *rest):
        graphs.append(dict(info))
        return build(pipeline, plan_path, pending, out_dir, config, classes, info, *rest)

    monkeypatch.setattr(beam, "build_pipeline", spy)
    out = tmp_path / "beam"
    report = beam.convert(subsets, str(out), CONFIG, split.classes, 1, info=info)
    assert "not_found" not in graphs[0] and info["not_found"] == ABSENT  # the caller's intact
    assert report.manifest["not_found"] == ABSENT
    for name in ("not_found.txt", "manifest.json"):
        assert (out / name).read_bytes() == (local / name).read_bytes(), name
    assert (out / "not_found.txt").read_text() == "".join(f"{a}\n" for a in ABSENT)
    # nothing pending: no pipeline, the manifest rebuilt with the same list
    os.remove(out / "not_found.txt")
    again = beam.convert(subsets, str(out), CONFIG, split.classes, 1, info=info)
    assert again.videos == 0 and len(graphs) == 1
    assert (out / "not_found.txt").read_bytes() == (local / "not_found.txt").read_bytes()
