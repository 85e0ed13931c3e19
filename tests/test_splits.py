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
            "trainlist01.txt",  # a labelled train line in a folder classInd.txt does not know
            LINE_1 + "Zed/z1.avi 1\r\n",
            "trainlist01.txt:2: unknown class folder 'Zed' (not in classInd.txt)",
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


EVERY_CONTAINER = (".ogg", ".ogv", ".gif", ".3gp", ".wmv", ".ts", ".mts", ".m2ts", ".vob")


def test_folder_takes_every_container_and_names_the_files_it_ignores(tmp_path, capsys):
    root = str(tmp_path / "videos")
    videos = [f"jump/clip{ext}" for ext in EVERY_CONTAINER] + ["run/a.MP4"]
    _touch(root, *videos, "jump/notes.txt", "run/sub/readme.TXT", "run/meta.json", "run/.DS_Store")
    result = splits.load_split("folder", root, test_fraction=0.0)
    assert result.classes == ["jump", "run"]
    assert sorted(splits.video_id(p, root) for p, _ in result.train) == sorted(videos)
    assert result.ignored == {".txt": 2, ".json": 1}
    line = "ignored 3 files: .txt 2, .json 1"
    assert line in splits.format_split_summary(result).splitlines()
    assert splits.main(["splits", "--dataset=folder", f"--video_root={root}"]) == 0
    assert line in capsys.readouterr().out.splitlines()


# -------------------------------------------------------------------------------------- Kinetics

KINETICS_TRAIN = (  # the official header with is_cc; labels with spaces, commas and quotes
    "label,youtube_id,time_start,time_end,split,is_cc\r\n"
    "air drumming,-abc_123XY,10,20,train,0\r\n"
    '"passing American football (in game)",x1,0,10,train,0\r\n'
    '"tying knot (not on a tie, eg) bowtie",y2,5,15,train,1\r\n'
    '"say ""cheese""",q4,7,17,train,0\r\n'
    "air drumming,gone1,0,10,train,0\r\n"  # not downloaded
    "air drumming,z3,30,40,train,0\r\n"  # only in another class's folder
)
KINETICS_VAL = (  # no is_cc column, split spelled "validate"
    "label,youtube_id,time_start,time_end,split\n"
    "air drumming,v1,1,11,validate\n"
    '"say ""cheese""",v2,0,10,validate\n'
    "air drumming,gone2,0,10,validate\n"
)
KINETICS_TEST = "youtube_id,time_start,time_end,split\nt1,0,10,test\nt2,3,13,test\n"
KINETICS_DISK = (
    "train/air drumming/-abc_123XY_000010_000020.mp4",
    "train/passing_American_football_(in_game)/x1_000000_000010.mkv",  # '_' for spaces
    "y2.webm",  # <youtube_id>.<ext> at the root
    'Train/say "cheese"/q4_000007_000017.mp4',  # folder case differs
    "train/other class/z3_000030_000040.mp4",
    "validate/air drumming/v1_000001_000011.mp4",
    "videos_val/v2_000000_000010.mp4",  # mmaction2's layout
    "test/t1_000000_000010.mp4",
)


def _kinetics(tmp_path, val=KINETICS_VAL, val_name="validate.csv", train=KINETICS_TRAIN):
    root, split_dir = str(tmp_path / "kinetics400"), str(tmp_path / "annotations")
    _touch(root, *KINETICS_DISK)
    _write(os.path.join(split_dir, "train.csv"), train, bom=True)
    _write(os.path.join(split_dir, val_name), val)
    _write(os.path.join(split_dir, "test.csv"), KINETICS_TEST)
    return root, split_dir


@pytest.mark.parametrize("val_name", ["validate.csv", "val.csv"])
def test_kinetics(tmp_path, val_name):
    root, split_dir = _kinetics(tmp_path, val_name=val_name)
    result = splits.load_split("kinetics", root, split_dir=split_dir)
    assert result.classes == [
        "air drumming",
        "passing American football (in game)",
        'say "cheese"',
        "tying knot (not on a tie, eg) bowtie",
    ]
    rows = lambda pairs: [(splits.video_id(p, root), label) for p, label in pairs]  # noqa: E731
    assert rows(result.train) == [
        ("train/air drumming/-abc_123XY_000010_000020.mp4", 0),
        ("train/passing_American_football_(in_game)/x1_000000_000010.mkv", 1),
        ("y2.webm", 3),
        ('Train/say "cheese"/q4_000007_000017.mp4', 2),
    ]
    assert rows(result.test) == [
        ("validate/air drumming/v1_000001_000011.mp4", 0),
        ("videos_val/v2_000000_000010.mp4", 2),
    ]
    assert result.unlabelled == [
        os.path.join(os.path.abspath(root), "test", "t1_000000_000010.mp4")
    ]
    train_csv = os.path.join(split_dir, "train.csv")
    assert result.not_found == [
        f"{train_csv}:6: gone1_000000_000010",
        f"{train_csv}:7: z3_000030_000040 (on disk as train/other class/z3_000030_000040.mp4: "
        "not a folder of this list or label)",
        f"{os.path.join(split_dir, val_name)}:4: gone2_000000_000010",
    ]
    assert result.listed == {"train": 6, "test": 3, "unlabelled": 2}
    assert result.missing == []
    summary = splits.format_split_summary(result)
    assert "found on disk: train 4 of 6 listed, test 2 of 3 listed, unlabelled 1 of 2" in summary
    assert "not found (left out: not downloaded, or where noted): 3" in summary


def test_kinetics_classes_come_from_train_csv_whatever_is_on_disk(tmp_path):
    root, split_dir = _kinetics(tmp_path)
    for rel in KINETICS_DISK:
        os.remove(os.path.join(root, *rel.split("/")))
    result = splits.load_split("kinetics", root, split_dir=split_dir)
    assert len(result.classes) == 4 and (result.train, result.test) == ([], [])
    assert len(result.not_found) == 9
    with pytest.raises(ValueError, match=r"^9 listed videos are not on disk .*require_all"):
        splits.load_split("kinetics", root, split_dir=split_dir, require_all=True)


def test_kinetics_without_test_csv(tmp_path):
    root, split_dir = _kinetics(tmp_path)
    os.remove(os.path.join(split_dir, "test.csv"))  # optional: only prediction uses it
    result = splits.load_split("kinetics", root, split_dir=split_dir)
    assert (result.listed, result.unlabelled) == ({"train": 6, "test": 3}, [])
    assert "found on disk: train 4 of 6 listed, test 2 of 3 listed\n" in (
        splits.format_split_summary(result)
    )


@pytest.mark.parametrize(
    "name, text, expected",
    [
        (
            "validate.csv",
            "youtube_id,time_start,time_end\n",
            "validate.csv:1: the header has no label",
        ),
        (
            "validate.csv",
            "label,youtube_id,time_start,time_end,split\nswimming,v9,0,10,validate\n",
            "validate.csv:2: class 'swimming' is not in train.csv",
        ),
        (
            "validate.csv",
            "label,youtube_id,time_start,time_end,split\nair drumming,v9,0.5,10,val\n",
            "validate.csv:2: time_start '0.5' is not a whole number",
        ),
        (
            "validate.csv",
            "label,youtube_id,time_start,time_end,split\nair drumming,v9,0,inf,val\n",
            "validate.csv:2: time_end 'inf' is not a whole number",
        ),
        (
            "validate.csv",
            "label,youtube_id,time_start,time_end,split\nair drumming, tying,v9,0,10,val\n",
            "validate.csv:2: expected 5 comma-separated fields as in the header, got 6",
        ),
        (
            "validate.csv",
            "label,youtube_id,time_start,time_end,split\nair drumming,x1,0,10,val\n",
            "validate.csv:2: 'x1_000000_000010' is already listed at {split_dir}/train.csv:3",
        ),
        ("train.csv", "label,youtube_id,time_start,time_end\n", "train.csv: no rows"),
    ],
)
def test_kinetics_bad_rows_name_file_and_line(tmp_path, name, text, expected):
    root, split_dir = _kinetics(tmp_path)
    _write(os.path.join(split_dir, name), text)
    with pytest.raises(ValueError) as info:
        splits.load_split("kinetics", root, split_dir=split_dir)
    assert str(info.value).startswith(os.path.join(split_dir, name)), str(info.value)
    assert expected.replace("{split_dir}", split_dir) in str(info.value)


def test_kinetics_command_line(tmp_path, capsys):
    root, split_dir = _kinetics(tmp_path)
    argv = ["splits", "--dataset=kinetics", f"--video_root={root}", f"--split_dir={split_dir}"]
    assert splits.main(argv) == 0  # an incomplete download is normal
    out = capsys.readouterr().out
    assert "classes: 4\ntrain videos: 4\ntest videos: 2\n" in out
    assert f"  {split_dir}/train.csv:6: gone1_000000_000010\n" in out
    assert splits.main([*argv, "--require_all"]) == 1
    listing = tmp_path / "unlabelled.txt"
    assert splits.main([*argv, f"--unlabelled_out={listing}"]) == 0
    assert listing.read_text() == os.path.join(
        os.path.abspath(root), "test", "t1_000000_000010.mp4\n"
    )
    assert splits.main([*argv, f"--unlabelled_out={tmp_path}/no/such/dir.txt"]) == 1
    assert "error: --unlabelled_out" in capsys.readouterr().err


# Kinetics-400 as cvdf ships it (k400_downloader.sh + k400_extractor.sh): flat split folders,
# annotations/{train,val,test}.csv (test.csv labelled, DeepMind's current one), and
# replacement/replacement_for_corrupted_k400/ holding clips that replace corrupted train ones.
CVDF_TRAIN = (
    "label,youtube_id,time_start,time_end,split\r\n"
    "abseiling,--33Lscn6sk,4,14,train\r\n"
    "abseiling,-0Bq9d3QGy4,30,40,train\r\n"  # corrupted in train/, replaced
    '"tying knot (not on a tie, eg) bowtie",0IGrgDpxuXk,12,22,train\r\n'  # only replaced
    "air drumming,-5tWkXHPBoQ,0,10,train\r\n"  # never downloaded
)
CVDF_VAL = "label,youtube_id,time_start,time_end,split\r\nair drumming,0wR5jVB-WPk,17,27,val\r\n"
CVDF_TEST = (
    "label,youtube_id,time_start,time_end,split\r\n"
    '"tying knot (not on a tie, eg) bowtie",-Bf9j1tyUh8,80,90,test\r\n'
    "abseiling,0aJ4Vyk_1zE,2,12,test\r\n"
)
CVDF_CLIPS = {
    "train": ("--33Lscn6sk_000004_000014", "-0Bq9d3QGy4_000030_000040"),
    "val": ("0wR5jVB-WPk_000017_000027",),
    "test": ("-Bf9j1tyUh8_000080_000090", "0aJ4Vyk_1zE_000002_000012"),
}
CVDF_LABELS = {  # clip -> label folder, as arrange_by_classes.py makes them
    "--33Lscn6sk_000004_000014": "abseiling",
    "-0Bq9d3QGy4_000030_000040": "abseiling",
    "0IGrgDpxuXk_000012_000022": "tying knot (not on a tie, eg) bowtie",
    "0wR5jVB-WPk_000017_000027": "air drumming",
    "-Bf9j1tyUh8_000080_000090": "tying knot (not on a tie, eg) bowtie",
    "0aJ4Vyk_1zE_000002_000012": "abseiling",
}
REPLACED = ("-0Bq9d3QGy4_000030_000040", "0IGrgDpxuXk_000012_000022")


def _cvdf(tmp_path):
    root = str(tmp_path / "k400")
    _touch(root, *(f"{s}/{c}.mp4" for s, clips in CVDF_CLIPS.items() for c in clips))
    _touch(root, *(f"replacement/replacement_for_corrupted_k400/{c}.mp4" for c in REPLACED))
    for name, text in (("train", CVDF_TRAIN), ("val", CVDF_VAL), ("test", CVDF_TEST)):
        _write(os.path.join(root, "annotations", f"{name}.csv"), text)
    return root


def _ids(root, pairs):
    return [(splits.video_id(p, root), label) for p, label in pairs]


def test_kinetics_cvdf_download_prefers_the_replacement_clips(tmp_path, capsys):
    root = _cvdf(tmp_path)
    result = splits.load_split("kinetics", root)  # split_dir: <root>/annotations
    assert result.classes == ["abseiling", "air drumming", "tying knot (not on a tie, eg) bowtie"]
    assert _ids(root, result.train) == [
        ("train/--33Lscn6sk_000004_000014.mp4", 0),
        ("replacement/replacement_for_corrupted_k400/-0Bq9d3QGy4_000030_000040.mp4", 0),
        ("replacement/replacement_for_corrupted_k400/0IGrgDpxuXk_000012_000022.mp4", 2),
    ]
    assert _ids(root, result.test) == [("val/0wR5jVB-WPk_000017_000027.mp4", 1)]
    assert [splits.video_id(p, root) for p in result.unlabelled] == [
        "test/-Bf9j1tyUh8_000080_000090.mp4",
        "test/0aJ4Vyk_1zE_000002_000012.mp4",
    ]
    assert result.replaced == 2 and result.unlabelled_has_labels
    train_csv = os.path.join(root, "annotations", "train.csv")
    assert result.not_found == [f"{train_csv}:5: -5tWkXHPBoQ_000000_000010"]
    assert splits.main(["splits", "--dataset=kinetics", f"--video_root={root}"]) == 0
    out = capsys.readouterr().out
    assert (
        "found on disk: train 3 of 4 listed, test 1 of 1 listed, unlabelled 2 of 2 listed\n"
        "the unlabelled list (test.csv) has labels: to evaluate on it, convert it as the test "
        "list with --test_list test.csv\n"
        "taken from replacement/replacement_for_corrupted_k400: 2 (cvdf's replacements of "
        "corrupted clips, preferred to the originals)\n"
    ) in out


@pytest.mark.parametrize("video_root", ["k400", "k400/videos"])
def test_kinetics_cvdf_arranged_by_classes(tmp_path, video_root):
    """arrange_by_classes.py: videos/<split>/<label>/<clip>.mp4, symlinks to the clips (the
    replacement where there is one); --video_root the download or its videos/ folder."""
    root = _cvdf(tmp_path)
    for split, clips in CVDF_CLIPS.items():
        for clip in clips:
            os.remove(os.path.join(root, split, f"{clip}.mp4"))
    for clip, label in CVDF_LABELS.items():
        split = {"0w": "val", "-B": "test", "0a": "test"}.get(clip[:2], "train")
        folder = os.path.join(root, "videos", split, label)
        os.makedirs(folder, exist_ok=True)
        target = os.path.join(root, "replacement", "replacement_for_corrupted_k400", clip + ".mp4")
        if clip not in REPLACED:
            target = os.path.join(tmp_path, "store", clip + ".mp4")
            _touch(str(tmp_path / "store"), clip + ".mp4")
        os.symlink(target, os.path.join(folder, clip + ".mp4"))
    split_dir = os.path.join(root, "annotations")
    result = splits.load_split("kinetics", str(tmp_path / video_root), split_dir=split_dir)
    prefix = "videos/" if video_root == "k400" else ""
    assert _ids(str(tmp_path / video_root), result.train) == [
        (f"{prefix}train/abseiling/--33Lscn6sk_000004_000014.mp4", 0),
        *(
            [("replacement/replacement_for_corrupted_k400/-0Bq9d3QGy4_000030_000040.mp4", 0)]
            if prefix
            else [("train/abseiling/-0Bq9d3QGy4_000030_000040.mp4", 0)]
        ),
        *(
            [("replacement/replacement_for_corrupted_k400/0IGrgDpxuXk_000012_000022.mp4", 2)]
            if prefix
            else [("train/tying knot (not on a tie, eg) bowtie/0IGrgDpxuXk_000012_000022.mp4", 2)]
        ),
    ]
    assert _ids(str(tmp_path / video_root), result.test) == [
        (f"{prefix}val/air drumming/0wR5jVB-WPk_000017_000027.mp4", 1)
    ]
    assert len(result.unlabelled) == 2 and len(result.not_found) == 1
    assert result.replaced == (2 if prefix else 0)


def test_kinetics_labelled_test_csv_as_the_test_list(tmp_path, capsys, monkeypatch):
    """DeepMind's labelled test.csv, its clips in test/<label>/ (as mmaction2's download.py
    leaves a labelled list), evaluated with --test_list test.csv."""
    root = _cvdf(tmp_path)
    for clip in CVDF_CLIPS["test"]:
        folder = os.path.join(root, "test", CVDF_LABELS[clip])
        os.makedirs(folder, exist_ok=True)
        os.rename(os.path.join(root, "test", clip + ".mp4"), os.path.join(folder, clip + ".mp4"))
    default = splits.load_split("kinetics", root)
    assert len(default.unlabelled) == 2 and default.unlabelled_has_labels
    monkeypatch.chdir(tmp_path)  # a test.csv here is not split_dir's
    _write(str(tmp_path / "test.csv"), "not,a,kinetics,list\n")
    result = splits.load_split("kinetics", root, test_list="test.csv")
    assert _ids(root, result.test) == [
        ("test/tying knot (not on a tie, eg) bowtie/-Bf9j1tyUh8_000080_000090.mp4", 2),
        ("test/abseiling/0aJ4Vyk_1zE_000002_000012.mp4", 0),
    ]
    assert result.unlabelled == [] and result.listed == {"train": 4, "test": 2}
    argv = ["splits", "--dataset=kinetics", f"--video_root={root}", "--test_list=test.csv"]
    assert splits.main(argv) == 0
    assert "test videos: 2\n" in capsys.readouterr().out
    # a label the train list lacks is the test list's error, with its line
    test_csv = os.path.join(root, "annotations", "test.csv")
    _write(test_csv, CVDF_TEST + "swimming,1aJ4Vyk_1zE,0,10,test\r\n")
    with pytest.raises(ValueError, match=r"test\.csv:4: class 'swimming' is not in train\.csv"):
        splits.load_split("kinetics", root, test_list="test.csv")
    # the older test.csv, without labels, cannot be the test list
    _write(test_csv, "youtube_id,time_start,time_end,split\r\n-Bf9j1tyUh8,80,90,test\r\n")
    with pytest.raises(ValueError, match=r"test\.csv:1: the header has no label column"):
        splits.load_split("kinetics", root, test_list="test.csv")
    assert splits.load_split("kinetics", root).unlabelled_has_labels is False


def test_kinetics_mmaction2_names_and_lists_named_by_flag(tmp_path):
    """mmaction2: download_annotations.sh renames the CSVs kinetics_{train,val,test}.csv,
    download.py puts the clips in videos_<split>/<label>/ (test: videos_test/test/)."""
    root = str(tmp_path / "data" / "kinetics400")
    for name, text in (("train", CVDF_TRAIN), ("val", CVDF_VAL)):
        _write(os.path.join(root, "annotations", f"kinetics_{name}.csv"), text)
    _write(
        os.path.join(root, "annotations", "kinetics_test.csv"),
        "youtube_id,time_start,time_end,split\n-Bf9j1tyUh8,80,90,test\n",
    )
    _touch(
        root,
        "videos_train/abseiling/--33Lscn6sk_000004_000014.mp4",
        "videos_val/air drumming/0wR5jVB-WPk_000017_000027.mp4",
        "videos_test/test/-Bf9j1tyUh8_000080_000090.mp4",
    )
    result = splits.load_split("kinetics", root)
    assert _ids(root, result.train) == [("videos_train/abseiling/--33Lscn6sk_000004_000014.mp4", 0)]
    assert _ids(root, result.test) == [("videos_val/air drumming/0wR5jVB-WPk_000017_000027.mp4", 1)]
    assert result.listed == {"train": 4, "test": 1, "unlabelled": 1}
    assert [splits.video_id(p, root) for p in result.unlabelled] == [
        "videos_test/test/-Bf9j1tyUh8_000080_000090.mp4"
    ]
    assert result.not_found_subsets == ["train"] * 3 and len(result.not_found) == 3
    # any name, by flag: a path, or a name in split_dir
    mine = str(tmp_path / "my lists" / "k400 train subset.csv")
    _write(
        mine,
        CVDF_TRAIN.replace(
            '"tying knot (not on a tie, eg) bowtie",0IGrgDpxuXk,12,22,train\r\n', ""
        ),
    )
    os.rename(
        os.path.join(root, "annotations", "kinetics_val.csv"),
        os.path.join(root, "annotations", "holdout.csv"),
    )
    result = splits.load_split("kinetics", root, train_list=mine, test_list="holdout.csv")
    assert (len(result.train), len(result.test), result.listed["train"]) == (1, 1, 3)
    with pytest.raises(ValueError, match="validate.csv, val.csv, validation.csv, kinetics_val"):
        splits.load_split("kinetics", root)
    with pytest.raises(ValueError, match="nothere.csv does not exist"):
        splits.load_split("kinetics", root, test_list="nothere.csv")
    with pytest.raises(ValueError, match="name Kinetics CSVs; dataset folder"):
        splits.load_split("folder", root, test_list="holdout.csv")


# ------------------------------------------------------------------------------------------ SSv2

SSV2_LABELS = {
    "Moving something from left to right": "0",
    "Moving something from right to left": "1",
    "Putting something on a surface": "2",
}
SSV2_TRAIN = [
    {"id": "78687", "label": "moving pen from left to right",
     "template": "Moving [something] from left to right", "placeholders": ["pen"]},
    {"id": "42326", "label": "putting a cup on a table",
     "template": "Putting [something] on a surface", "placeholders": ["a cup"]},
    {"id": "100", "label": "moving box from right to left",
     "template": "Moving [something] from right to left", "placeholders": ["box"]},
]  # fmt: skip
SSV2_VAL = [{"id": "74225", "template": "Moving [Something] from right to left"}]  # case differs
SSV2_TEST = [{"id": "1420"}, {"id": "1421"}]


def _ssv2(tmp_path, **override):
    import json

    root = str(tmp_path / "20bn-something-something-v2")
    split_dir = os.path.join(root, "labels")  # the default split_dir
    _touch(root, "78687.webm", "42326.webm", "74225.webm", "1420.webm", "notes.txt")
    files = {"labels": SSV2_LABELS, "train": SSV2_TRAIN, "validation": SSV2_VAL, "test": SSV2_TEST}
    files.update(override)
    for kind, obj in files.items():
        text = obj if isinstance(obj, str) else json.dumps(obj, indent=1)
        _write(os.path.join(split_dir, f"something-something-v2-{kind}.json"), text)
    return root, split_dir


def test_ssv2(tmp_path):
    root, split_dir = _ssv2(tmp_path)
    result = splits.load_split("ssv2", root)
    assert result.classes == list(SSV2_LABELS)
    assert [(splits.video_id(p, root), label) for p, label in result.train] == [
        ("78687.webm", 0),
        ("42326.webm", 2),
    ]
    assert [(splits.video_id(p, root), label) for p, label in result.test] == [("74225.webm", 1)]
    assert result.unlabelled == [os.path.join(os.path.abspath(root), "1420.webm")]
    train_json = os.path.join(split_dir, "something-something-v2-train.json")
    assert result.not_found == [f"{train_json}: entry 3 (id 100): 100"]
    assert result.listed == {"train": 3, "test": 1, "unlabelled": 2}
    assert splits.ssv2_class_name("Putting [something] on [something]") == (
        "Putting something on something"
    )


@pytest.mark.parametrize(
    "override, expected",
    [
        (
            {"train": [{"id": "1", "template": "Juggling [something]"}]},
            "-train.json: entry 1 (id 1): class 'Juggling something' is not in "
            "something-something-v2-labels.json",
        ),
        ({"train": [{"template": "x"}]}, "-train.json: entry 1: has no 'id'"),
        ({"validation": [{"id": "7"}]}, "-validation.json: entry 1 (id 7): has no 'template'"),
        ({"train": '[\n {"id": "1",,}\n]'}, "-train.json:2: not valid JSON"),
        (  # SSv2's files are one line: the column and offset say where
            {"validation": '[{"id": "1",,}]'},
            "-validation.json:1: not valid JSON at column 13, character offset 12 (Expecting "
            "property name enclosed in double quotes)",
        ),
        ({"labels": {"A": "0", "B": "2"}}, "-labels.json: indices must be 0..1 without gaps"),
    ],
)
def test_ssv2_bad_files_name_file_and_entry(tmp_path, override, expected):
    root, split_dir = _ssv2(tmp_path, **override)
    with pytest.raises(ValueError) as info:
        splits.load_split("ssv2", root, split_dir=split_dir)
    assert str(info.value).startswith(split_dir), str(info.value)
    assert expected in str(info.value)


def test_ssv2_duplicate_id_advice_is_ssv2s(tmp_path):
    dup = [*SSV2_TRAIN, {"id": "78687", "template": "Putting [something] on a surface"}]
    root, split_dir = _ssv2(tmp_path, train=dup)
    with pytest.raises(ValueError) as info:
        splits.load_split("ssv2", root)
    assert str(info.value).endswith("remove one of the two rows (each SSv2 id names one video)")
    assert "youtube_id" not in str(info.value)


def test_a_partial_download_names_20_empty_classes_then_counts(tmp_path):
    labels = {f"Pretending to put something {i:03d}": str(i) for i in range(174)}  # as SSv2
    train = [{"id": "78687", "template": "Pretending to put [something] 005"}]
    root, _ = _ssv2(tmp_path, labels=labels, train=train, validation=[])
    summary = splits.format_split_summary(splits.load_split("ssv2", root))
    named = ", ".join(f"Pretending to put something {i:03d}" for i in [*range(5), *range(6, 21)])
    assert f"warning: 173 classes have no train videos: {named} ... and 153 more\n" in summary
    assert "warning: 174 classes have no test videos: " in summary


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(dataset="movies"), "dataset must be one of"),
        (dict(dataset="kinetics"), "split_dir is not set"),
        (dict(dataset="ssv2", split_dir="nowhere"), "split_dir nowhere is not a folder"),
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
