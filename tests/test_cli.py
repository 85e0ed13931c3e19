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


def _body(outcome):
    def body(argv):
        assert "--verbose" not in argv[1:]  # run takes it off before the command's parser
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return body


@pytest.mark.parametrize(
    "outcome, status, line",
    [
        (None, 0, None),
        (1, 1, None),
        (flags.Error("--lr must be > 0"), 2, "error: --lr must be > 0"),
        (cli.UsageError("--records x: no manifest.json"), 2, "error: --records x: no manifest"),
        (ValueError("a.txt:3: bad label"), 2, "error: a.txt:3: bad label"),  # usage_errors
        (cli.Failure("nan loss at epoch 2, step 7"), 1, "error: nan loss at epoch 2, step 7"),
        (FloatingPointError("inf weights"), 1, "error: inf weights"),  # failures
        (PermissionError(13, "Permission denied", "/ro/ckpt"), 1, "error: [Errno 13] Permissi"),
        (KeyboardInterrupt(), 130, "\nerror: interrupted"),
        (cli.Terminated(), 143, "\nerror: stopped by SIGTERM"),
    ],
)
def test_run_maps_how_a_command_ends_to_its_exit_status(outcome, status, line, capsys):
    got = cli.run(
        _body(outcome), ["prog", "--verbose"] if status == 0 else ["prog"],
        usage_errors=(ValueError,), failures=(FloatingPointError,),
    )  # fmt: skip
    assert got == status
    err = capsys.readouterr().err
    if line is None:
        assert err == ""
    else:
        assert err.startswith(line) and "Traceback" not in err
        lines = [line for line in err.splitlines() if line]
        assert len(lines) == (2 if isinstance(outcome, flags.Error) else 1)


def test_verbose_adds_the_traceback(capsys):
    assert cli.run(_body(cli.Failure("disk full")), ["prog", "--verbose"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.rstrip().endswith("error: disk full")


def test_an_unexpected_error_is_not_hidden():
    with pytest.raises(ZeroDivisionError):  # a bug keeps its traceback
        cli.run(_body(ZeroDivisionError("bug")), ["prog"])


FILTER_PROBE = """
import os, sys
from tsn_keras import cli
cli.quiet_native_logs()
os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written\\n")
os.write(2, b"I0000 00:00:1.2 26400 cudart_stub.cc:31] Could not find cuda drivers on your\\n")
os.write(2, b"I0000 00:00:1.3 26400 cpu_feature_guard.cc:227] This TensorFlow binary is\\n")
os.write(2, b"To enable the following instructions: AVX2 FMA, in other operations, rebuild\\n")
os.write(2, b"E0000 00:00:1.4 26400 real_error.cc:9] a native error line\\n")
print("error: from python", file=sys.stderr)
if sys.argv[1:2] == ["abort"]:
    os.write(2, b"F0000 00:00:1.5 26400 check.cc:1] Check failed: x\\n")
    os.abort()
"""


@pytest.mark.parametrize("args", [[], ["abort"], ["--verbose"]])
def test_native_start_up_noise_is_dropped_and_everything_else_kept(args):
    done = subprocess.run(
        [sys.executable, "-c", FILTER_PROBE, *args], capture_output=True, text=True,
        timeout=60, env=dict(os.environ, PYTHONPATH=REPO),
    )  # fmt: skip
    lines = set(done.stderr.splitlines())
    kept = {"E0000 00:00:1.4 26400 real_error.cc:9] a native error line", "error: from python"}
    if args == ["--verbose"]:
        assert len(lines) == 6 and kept <= lines  # nothing dropped
    elif args == ["abort"]:  # a native crash message still comes through the filter
        assert lines == kept | {"F0000 00:00:1.5 26400 check.cc:1] Check failed: x"}
        assert done.returncode != 0
    else:
        assert lines == kept and done.returncode == 0


@pytest.mark.parametrize("module", ["tsn_keras.convert", "tsn_keras.models.weights"])
def test_python_dash_m_runs_the_command_with_one_clean_error(module):
    done = subprocess.run(
        [sys.executable, "-m", module, "--no_such_flag=1"], capture_output=True, text=True,
        timeout=120, env=dict(os.environ, PYTHONPATH=REPO),
    )  # fmt: skip
    assert done.returncode == 2
    # TensorFlow's start-up lines (CUDA stubs, CPU features) are hidden: only our two lines.
    assert done.stderr.splitlines() == [
        "error: Unknown command line flag 'no_such_flag'",
        "Pass --help to list the flags.",
    ]


def test_synthetic_with_an_unwritable_out_is_one_error_line(tmp_path):
    (tmp_path / "file").write_text("a file where a folder should be")
    out = tmp_path / "file" / "data"  # read-only folders do not stop root; this stops anyone
    done = subprocess.run(
        [sys.executable, "-m", "tsn_keras.synthetic", f"--out={out}", "--classes=2",
         "--clips_per_class=2", "--seconds=0.2"],
        capture_output=True, text=True, timeout=120, env=dict(os.environ, PYTHONPATH=REPO),
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith(f"error: --out {out}: cannot write") and "Traceback" not in (
        done.stderr
    )


TSN_SCRIPTS = {
    "tsn-convert": "tsn_keras.convert.command",
    "tsn-splits": "tsn_keras.splits.command",
    "tsn-check-videos": "tsn_keras.check_videos",
    "tsn-synthetic": "tsn_keras.synthetic",
    "tsn-train": "tsn_keras.train",
    "tsn-evaluate": "tsn_keras.evaluate",
    "tsn-fuse": "tsn_keras.fuse",
    "tsn-export": "tsn_keras.export",
    "tsn-predict": "tsn_keras.predict",
}


def test_console_scripts_are_the_commands():
    """setup.py's console_scripts, as installed: each `tsn-*` is a command's `main`."""
    from importlib.metadata import entry_points

    installed = {e.name: e for e in entry_points(group="console_scripts") if e.name in TSN_SCRIPTS}
    assert {name: e.module for name, e in installed.items()} == TSN_SCRIPTS
    for entry in installed.values():
        assert entry.attr == "main" and entry.load() is importlib.import_module(entry.module).main
    script = os.path.join(os.path.dirname(sys.executable), "tsn-fuse")
    done = subprocess.run(
        [script, "--no_such_flag"], capture_output=True, text=True, timeout=120,
        env=dict(os.environ, PYTHONPATH=REPO),
    )  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("error: Unknown command line flag")
