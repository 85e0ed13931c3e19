"""Split files in each real format, written as real files are (CRLF, BOM, trailing spaces,
blank lines, case differences), parsed to exact counts, labels and class names."""

import hashlib
import os
import subprocess
import sys

import pytest

from tsn_keras import splits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _touch(root, *rels):
    for rel in rels:
        path = os.path.join(root, *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        open(path, "wb").close()


def _write(path, text, bom=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))


# ---------------------------------------------------------------------------------------- UCF101

UCF_CLASSIND = "1 ApplyEyeMakeup \r\n2 Basketball\r\n\r\n3 HandstandPushups  \r\n"
UCF_TRAIN = (
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1 \r\n"
    "Basketball/v_Basketball_g08_c01.avi 2\r\n"
    "\r\n"
    "HandstandPushups/v_HandStandPushups_g08_c01.avi 3\r\n"
    "HandstandPushups\\v_HandStandPushups_g09_c01.avi 3\r\n"
)
UCF_TEST = (  # no labels, as UCF101's testlists
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\r\n"
    "handstandpushups/v_HandstandPushups_g01_c01.avi  \r\n"
    "Basketball/v_Basketball_g01_c01.avi\r\n"
)
UCF_DISK = (  # the folder's case differs from classInd.txt, file names from the lists
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
    "Basketball/v_Basketball_g08_c01.avi",
    "HandStandPushups/v_HandStandPushups_g08_c01.avi",
    "HandStandPushups/v_HandStandPushups_g09_c01.avi",
    "HandStandPushups/v_HandStandPushups_g01_c01.avi",
)  # Basketball/v_Basketball_g01_c01.avi is missing


def _ucf(tmp_path, split=1, classind=UCF_CLASSIND, train=UCF_TRAIN, test=UCF_TEST):
    root, split_dir = str(tmp_path / "UCF-101"), str(tmp_path / "ucfTrainTestlist")
    _touch(root, *UCF_DISK)
    _write(os.path.join(split_dir, "classInd.txt"), classind, bom=True)
    _write(os.path.join(split_dir, f"trainlist{split:02d}.txt"), train)
    _write(os.path.join(split_dir, f"testlist{split:02d}.txt"), test, bom=True)
    return root, split_dir


@pytest.mark.parametrize("split", [1, 2, 3])
def test_ucf101(tmp_path, split):
    root, split_dir = _ucf(tmp_path, split=split)
    result = splits.load_split("ucf101", root, split_dir=split_dir, split=split)
    root = os.path.abspath(root)
    assert result.video_root == root
    assert result.classes == ["ApplyEyeMakeup", "Basketball", "HandstandPushups"]
    j = os.path.join
    assert result.train == [
        (j(root, "ApplyEyeMakeup", "v_ApplyEyeMakeup_g08_c01.avi"), 0),
        (j(root, "Basketball", "v_Basketball_g08_c01.avi"), 1),
        (j(root, "HandStandPushups", "v_HandStandPushups_g08_c01.avi"), 2),
        (j(root, "HandStandPushups", "v_HandStandPushups_g09_c01.avi"), 2),
    ]
    assert result.test == [
        (j(root, "ApplyEyeMakeup", "v_ApplyEyeMakeup_g01_c01.avi"), 0),
        (j(root, "HandStandPushups", "v_HandStandPushups_g01_c01.avi"), 2),
        (j(root, "Basketball", "v_Basketball_g01_c01.avi"), 1),
    ]
    test_file = os.path.join(split_dir, f"testlist{split:02d}.txt")
    assert result.missing == [f"{test_file}:3: {j(root, 'Basketball', 'v_Basketball_g01_c01.avi')}"]
    assert splits.video_id(result.train[2][0], root) == (
        "HandStandPushups/v_HandStandPushups_g08_c01.avi"
    )


def test_ucf101_split_dir_defaults_to_ucftraintestlist_in_video_root(tmp_path):
    root, split_dir = _ucf(tmp_path)
    os.rename(split_dir, os.path.join(root, "ucfTrainTestlist"))
    result = splits.load_split("ucf101", root)
    assert (len(result.train), len(result.test), len(result.missing)) == (4, 3, 1)


def test_ucf101_labelled_testlist_and_unlabelled_trainlist(tmp_path):
    root, split_dir = _ucf(
        tmp_path,
        train="ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi\n",
        test="HandstandPushups/v_HandStandPushups_g01_c01.avi 3\n",
    )
    result = splits.load_split("ucf101", root, split_dir=split_dir)
    assert [label for _, label in result.train] == [0]
    assert [label for _, label in result.test] == [2]


LINE_1 = "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\n"


@pytest.mark.parametrize(
    "name, text, expected",
    [
        ("classInd.txt", "1 A\r\nx B\r\n", "classInd.txt:2: expected '<index> <class name>'"),
        ("classInd.txt", "1 A\r\n1 B\r\n", "classInd.txt:2: index 1 is used twice"),
        ("classInd.txt", "1 A\r\n3 B\r\n", "class indices must be 1..2 without gaps"),
        (
            "trainlist01.txt",
            LINE_1 + "\r\nBasketball/v_Basketball_g08_c01.avi 4\r\n",
            "trainlist01.txt:3: label 4 is not in classInd.txt (1..3); fix the label",
        ),
        (
            "trainlist01.txt",
            "Basketball/v_Basketball_g08_c01.avi two\r\n",
            "trainlist01.txt:1: label 'two' is not an integer",
        ),
        (
            "trainlist01.txt",
            "Basketball/v_Basketball_g08_c01.avi 1\r\n",
            "trainlist01.txt:1: label 1 (ApplyEyeMakeup) disagrees with the folder 'Basketball'",
        ),
        (
            "testlist01.txt",
            "\r\nJuggling/v_Juggling_g01_c01.avi\r\n",
            "testlist01.txt:2: unknown class 'Juggling' (not in classInd.txt)",
        ),
        (
            "testlist01.txt",
            "v_Basketball_g01_c01.avi\r\n",
            "testlist01.txt:1: 'v_Basketball_g01_c01.avi' has neither a class folder nor a label",
        ),
        (
            "trainlist01.txt",
            LINE_1 + "../../etc/v_x.avi 1\r\n",
            "trainlist01.txt:2: '../../etc/v_x.avi' resolves outside video_root",
        ),
        (
            "trainlist01.txt",
            "Basketball/../../v_x.avi 2\r\n",
            "trainlist01.txt:1: 'Basketball/../../v_x.avi' resolves outside video_root",
        ),
        (
            "testlist01.txt",
            "/data/Basketball/v_Basketball_g01_c01.avi\r\n",
            "testlist01.txt:1: '/data/Basketball/v_Basketball_g01_c01.avi' is an absolute path",
        ),
        (
            "testlist01.txt",
            "applyeyemakeup/v_ApplyEyeMakeup_g08_c01.avi\r\n",
            "testlist01.txt:1: 'applyeyemakeup/v_ApplyEyeMakeup_g08_c01.avi' is already listed at "
            "{split_dir}/trainlist01.txt:1; remove one",
        ),
    ],
)
def test_ucf101_bad_lines_name_file_and_line(tmp_path, name, text, expected):
    root, split_dir = _ucf(tmp_path)
    _write(os.path.join(split_dir, name), text)
    with pytest.raises(ValueError) as info:
        splits.load_split("ucf101", root, split_dir=split_dir)
    expected = expected.replace("{split_dir}", split_dir)
    assert str(info.value).startswith(os.path.join(split_dir, name))
    assert expected in str(info.value)


def test_ucf101_missing_split_file_names_the_flag(tmp_path):
    root, split_dir = _ucf(tmp_path)
    with pytest.raises(ValueError, match=r"trainlist02\.txt does not exist; set split_dir"):
        splits.load_split("ucf101", root, split_dir=split_dir, split=2)


# ---------------------------------------------------------------------------------------- HMDB51

HMDB_FILES = {
    "brush_hair_test_split1.txt": (
        "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 1 \r\n"
        "April_09_brush_hair_u_nm_np1_ba_goo_1.avi 2 \r\n"
        "\r\n"
        "April_09_brush_hair_u_nm_np1_ba_goo_2.avi 0 \r\n"
        "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi 1 \r\n"
    ),
    "cartwheel_test_split1.txt": (
        "(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi 2\r\n"
        "Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi 1\r\n"
    ),
    "brush_hair_test_split2.txt": "April_09_brush_hair_u_nm_np1_ba_goo_0.avi 2\r\n",
    "cartwheel_test_split2.txt": "Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi 2\r\n",
}
HMDB_DISK = (
    "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi",
    "brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1.avi",
    "brush_hair/Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi",
    "Cartwheel/(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi",  # folder case differs
)  # the id-0 video and Acrobacias... are not on disk


def _hmdb(tmp_path, files=HMDB_FILES):
    root, split_dir = str(tmp_path / "hmdb51"), str(tmp_path / "splits")
    _touch(root, *HMDB_DISK)
    for name, text in files.items():
        _write(os.path.join(split_dir, name), text, bom=name.startswith("cartwheel"))
    return root, split_dir


@pytest.mark.parametrize(
    "split, train, test, missing",
    [
        (
            1,
            [
                ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0),
                ("brush_hair/Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi", 0),
                ("cartwheel/Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi", 1),
            ],
            [
                ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_1.avi", 0),
                ("Cartwheel/(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi", 1),
            ],
            [
                "cartwheel_test_split1.txt:2: "
                "cartwheel/Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi"
            ],
        ),
        (
            2,
            [],
            [
                ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0),
                ("cartwheel/Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi", 1),
            ],
            [
                "cartwheel_test_split2.txt:1: "
                "cartwheel/Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi"
            ],
        ),
    ],
)
def test_hmdb51(tmp_path, split, train, test, missing):
    root, split_dir = _hmdb(tmp_path)
    result = splits.load_split("hmdb51", root, split_dir=split_dir, split=split)
    root = os.path.abspath(root)
    assert result.classes == ["brush_hair", "cartwheel"]
    assert [(splits.video_id(p, root), label) for p, label in result.train] == train
    assert [(splits.video_id(p, root), label) for p, label in result.test] == test
    assert result.missing == [
        os.path.join(split_dir, m.split(": ")[0]) + ": " + os.path.join(root, m.split(": ")[1])
        for m in missing
    ]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("video_a.avi 3", "brush_hair_test_split1.txt:2: expected '<video> <id>' with id 0"),
        ("video_a.avi", "brush_hair_test_split1.txt:2: expected '<video> <id>'"),
        (
            "../../outside.avi 1",
            "brush_hair_test_split1.txt:2: '../../outside.avi' resolves outside",
        ),
    ],
)
def test_hmdb51_bad_lines(tmp_path, line, expected):
    files = {"brush_hair_test_split1.txt": f"ok.avi 1\r\n{line}\r\n"}
    root, split_dir = _hmdb(tmp_path, files)
    with pytest.raises(ValueError) as info:
        splits.load_split("hmdb51", root, split_dir=split_dir)
    assert str(info.value).startswith(os.path.join(split_dir, expected))


def test_hmdb51_without_files_for_the_split(tmp_path):
    root, split_dir = _hmdb(tmp_path)
    with pytest.raises(ValueError, match=r"no <class>_test_split3\.txt files; set split_dir"):
        splits.load_split("hmdb51", root, split_dir=split_dir, split=3)


# ---------------------------------------------------------------------------------- folder / csv

FOLDER_DISK = (
    "walk/a.mp4",
    "walk/deep/b.MKV",
    "walk/.hidden/c.avi",
    "run/v_run_g01_c01.avi",
    "run/notes.txt",
    "docs/readme.txt",  # no videos: not a class
    "loose.avi",  # not in a class folder
)


def _golden_in_test(key, fraction):
    digest = hashlib.sha1(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 10000 < round(fraction * 10000)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 1.0])
def test_folder(tmp_path, fraction):
    root = str(tmp_path / "videos")
    _touch(root, *FOLDER_DISK)
    result = splits.load_split("folder", root, test_fraction=fraction)
    assert result.classes == ["run", "walk"]
    videos = [("run/v_run_g01_c01.avi", 0), ("walk/a.mp4", 1), ("walk/deep/b.MKV", 1)]
    keys = {"run/v_run_g01_c01.avi": "run/v_run_g01.avi"}  # the group, without the clip number
    expected_test = [v for v in videos if _golden_in_test(keys.get(v[0], v[0]).lower(), fraction)]
    expected_train = [v for v in videos if v not in expected_test]
    assert [(splits.video_id(p, root), label) for p, label in result.train] == expected_train
    assert [(splits.video_id(p, root), label) for p, label in result.test] == expected_test
    assert result.missing == []
    if fraction in (0.0, 1.0):
        assert len(result.test) == (3 if fraction else 0)


def test_folder_hash_split_keeps_ucf_groups_together(tmp_path):
    root = str(tmp_path / "videos")
    rels = [f"Jump/v_Jump_g{g:02d}_c{c:02d}.avi" for g in range(1, 21) for c in range(1, 5)]
    _touch(root, *rels)
    first = splits.load_split("folder", root, test_fraction=0.5)
    assert first == splits.load_split("folder", root, test_fraction=0.5)  # stable
    side = {}
    for subset in ("train", "test"):
        for path, _ in getattr(first, subset):
            group = os.path.basename(path)[: -len("_c01.avi")]
            side.setdefault(group, set()).add(subset)
    assert len(side) == 20 and all(len(s) == 1 for s in side.values())
    assert 0 < len(first.test) < len(rels)


@pytest.mark.parametrize("header", ["", "path,label\r\n", "\ufeffvideo , class \r\n"])
def test_csv(tmp_path, header):
    root = str(tmp_path / "videos")
    _touch(root, "clips/a.mp4", "clips/b, c.mp4", "Other/d.avi")
    body = (
        "clips/a.mp4,jump \r\n"
        "\r\n"
        '"clips/b, c.mp4", run\r\n'
        "other/d.avi,jump\r\n"  # folder case differs from the disk
        "clips/gone.mp4,walk\r\n"
    )
    csv_path = str(tmp_path / "labels.csv")
    _write(csv_path, header + body, bom=not header)
    result = splits.load_split("csv", root, csv_path=csv_path, test_fraction=0.0)
    first_line = 2 if header else 1
    root = os.path.abspath(root)
    assert result.classes == ["jump", "run", "walk"]
    assert [(splits.video_id(p, root), label) for p, label in result.train] == [
        ("clips/a.mp4", 0),
        ("clips/b, c.mp4", 1),
        ("Other/d.avi", 0),
        ("clips/gone.mp4", 2),
    ]
    assert result.test == []
    gone = os.path.join(root, "clips", "gone.mp4")
    assert result.missing == [f"{csv_path}:{first_line + 4}: {gone}"]
    all_test = splits.load_split("csv", root, csv_path=csv_path, test_fraction=1.0)
    assert (len(all_test.train), len(all_test.test)) == (0, 4)


@pytest.mark.parametrize(
    "line, expected",
    [
        ("a.mp4,jump,extra", "labels.csv:2: expected 2 comma-separated fields 'path,label', got 3"),
        ("a.mp4", "labels.csv:2: expected 2 comma-separated fields 'path,label', got 1"),
        ("a.mp4, ", "labels.csv:2: the label is empty"),
        ("../a.mp4,jump", "labels.csv:2: '../a.mp4' resolves outside video_root"),
    ],
)
def test_csv_bad_lines(tmp_path, line, expected):
    csv_path = str(tmp_path / "labels.csv")
    _write(csv_path, f"path,label\r\n{line}\r\n")
    with pytest.raises(ValueError) as info:
        splits.load_split("csv", str(tmp_path), csv_path=csv_path)
    assert str(info.value).startswith(os.path.join(str(tmp_path), expected))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dataset="kinetics"), "dataset must be one of"),
        (dict(video_root="nowhere"), "is not a folder; set video_root"),
        (dict(dataset="ucf101", split=4), "split must be 1, 2 or 3"),
        (dict(dataset="ucf101"), "split_dir is not set"),
        (dict(dataset="hmdb51", split_dir="nowhere"), "split_dir nowhere is not a folder"),
        (dict(dataset="csv"), r"csv_path \(--csv\) is required"),
        (dict(dataset="folder", test_fraction=1.5), "test_fraction must be in"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, message):
    kwargs = {"dataset": "folder", "video_root": str(tmp_path), **kwargs}
    if kwargs["video_root"] == "nowhere":
        kwargs["video_root"] = str(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=message):
        splits.load_split(**kwargs)


@pytest.mark.parametrize(
    "path, expected",
    [("Class/v.avi", "Class/v.avi"), ("Class/sub/v.avi", "Class/sub/v.avi"), ("../v.avi", None)],
)
def test_video_id(tmp_path, path, expected):
    root = str(tmp_path / "root")
    full = os.path.join(root, *path.split("/"))
    if expected is None:
        with pytest.raises(ValueError, match="is not under video_root"):
            splits.video_id(full, root)
    else:
        assert splits.video_id(full, root) == expected


# ----------------------------------------------------------------------------------- command line


def test_command_line_exit_status_1_lists_missing(tmp_path):
    root, split_dir = _ucf(tmp_path)
    argv = ["--dataset", "ucf101", "--video_root", root, "--split_dir", split_dir, "--split", "1"]
    done = subprocess.run(
        [sys.executable, "-m", "tsn_keras.splits", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert "classes: 3\ntrain videos: 4\ntest videos: 3\n" in done.stdout
    assert "      2      2      1  HandstandPushups" in done.stdout
    assert "missing videos: 1\n" in done.stdout
    assert f"testlist01.txt:3: {os.path.abspath(root)}" in done.stdout


@pytest.mark.parametrize(
    "argv, status, message",
    [
        (["--dataset", "folder"], 0, "classes: 2"),
        (["--dataset", "movies"], 2, "--dataset"),
        (["--split", "1"], 2, "--dataset"),
        (["--dataset", "csv"], 2, "--csv is required"),
        (["--dataset", "folder", "--test_fraction", "x"], 2, "--test_fraction"),
        (["--dataset", "ucf101", "--split_dir", "{root}/run"], 2, "classInd.txt does not exist"),
    ],
)
def test_command_line_exit_status(tmp_path, capsys, argv, status, message):
    root = str(tmp_path / "videos")
    _touch(root, *FOLDER_DISK)
    argv = [a.replace("{root}", root) for a in argv]
    assert splits.main(["splits", "--video_root", root, *argv]) == status
    captured = capsys.readouterr()
    assert message in (captured.out if status == 0 else captured.err)
