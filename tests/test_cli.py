"""Every command parses its flags one way: --help exits 0, a bad flag exits 2 with one `error:`
line naming it (no traceback), and list flags take `a,b` or `a b`."""

import importlib
import os
import subprocess
import sys

import pytest
from absl import flags

from tsn_keras import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = [
    "tsn_keras.splits",
    "tsn_keras.synthetic",
    "tsn_keras.train",
    "tsn_keras.export",
    "tsn_keras.evaluate",
    "tsn_keras.fuse",
    "tsn_keras.predict",
    "tsn_keras.check_videos",
    "tsn_keras.convert",  # scripts/make_tfrecords.py
    "tsn_keras.models.weights",  # scripts/convert_weights.py
]


@pytest.mark.parametrize("module", COMMANDS)
def test_help_exits_0_and_a_bad_flag_exits_2(module, capsys):
    main = importlib.import_module(module).main
    assert main(["prog", "--help"]) == 0
    assert "--" in capsys.readouterr().out  # the flags were listed
    assert main(["prog", "--no_such_flag=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no_such_flag" in err and "Traceback" not in err


@pytest.mark.parametrize("script", ["scripts/make_tfrecords.py", "scripts/convert_weights.py"])
def test_scripts_are_the_same_commands(script):
    done = subprocess.run(
        [sys.executable, script, "--no_such_flag=1"], cwd=REPO, capture_output=True, text=True,
        timeout=120, env=dict(os.environ, PYTHONPATH=REPO),
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-2000:]
    assert "error: " in done.stderr and "Traceback" not in done.stderr


def test_list_flags_take_commas_or_spaces():
    fv = flags.FlagValues()
    flags.DEFINE_list("weights", None, "", flag_values=fv)
    flags.DEFINE_integer("top", 5, "", flag_values=fv)
    rest = cli.parse_flags(fv, ["p", "--weights", "1", "1.5", "--top", "3", "v.mp4"], "", True)
    assert fv.weights == ["1", "1.5"] and fv.top == 3 and rest == ["v.mp4"]
    cli.parse_flags(fv, ["p", "--weights=2,3"], "")
    assert fv.weights == ["2", "3"]
    with pytest.raises(flags.Error, match="unexpected arguments"):
        cli.parse_flags(fv, ["p", "stray"], "")
