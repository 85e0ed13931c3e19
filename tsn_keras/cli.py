"""Command-line helpers shared by every command's `main` (flags stay at the edge).

Every command (`python -m tsn_keras.X`, `scripts/*.py`) works the same way: its flags live on a
private `flags.FlagValues` made inside `main(argv=None) -> int`, `parse_flags` reads argv, and
`main` returns the exit status: 0 done, 1 failed (e.g. some videos could not be read), 2 usage
error (a bad flag or input, reported by `usage_error` as one `error:` line). List flags take
both `--x a,b` and `--x a b`.
"""

import contextlib
import importlib
import os
import re
import signal
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence

from absl import flags


class UsageError(Exception):
    """Bad usage (a flag, an input file or folder): `run` prints it as one line, exit 2."""


class Failure(Exception):
    """The work failed (a damaged shard, a NaN loss, a full disk): one line, exit 1."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C's KeyboardInterrupt would be, so both stop the same way."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM (kill, a scheduler's stop) raises `Terminated`: the same clean
    stop as Ctrl-C (temporary files removed, workers stopped) instead of dying mid-write."""

    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# Lines that TensorFlow's and XLA's C++ code writes straight to file descriptor 2 when it loads
# (before Python's logging exists, so no environment variable hides them on TF 2.21): the CUDA
# stubs of a CPU-only machine, the CPU-feature notice, absl's pre-initialisation banner.
NATIVE_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|cudart_stub\.cc|cuda_platform\.cc|"
    r"cuda_(dnn|fft|blas)\.cc.*Unable to register|computation_placer\.cc.*already registered|"
    r"cpu_feature_guard\.cc|^To enable the following instructions:|TF-TRT Warning|"
    r"oneDNN custom operations are on|failed call to cuInit|Could not find cuda drivers|"
    r"Unable to register cu(DNN|FFT|BLAS) factory"
)


def is_command_line() -> bool:
    """Whether this process runs one of our commands: `python -m tsn_keras.X` or a `tsn-*` script.

    `sys.orig_argv` keeps `-m` and the module's name (sys.argv[0] is "-m" only while the
    package is being found), so a program of someone else's that imports tsn_keras is never
    touched.
    """
    orig = list(getattr(sys, "orig_argv", []))
    if "-m" in orig[:-1] and orig[orig.index("-m") + 1].split(".")[0] == "tsn_keras":
        return True
    return bool(sys.argv) and os.path.basename(sys.argv[0]).startswith("tsn-")


_quiet = False


def quiet_native_logs() -> None:
    """Drops TensorFlow's known start-up noise from this process's file descriptor 2.

    A command calls this before TensorFlow loads (`tsn_keras/__init__.py` does, for `python -m
    tsn_keras.X` and the `tsn-*` scripts; `--verbose` skips it). Python's own `sys.stderr`
    keeps the real stream, so `error:` lines and tracebacks never wait on the filter. Native
    writes to descriptor 2 go through a pipe to a forked filter process that drops the lines
    matching `NATIVE_NOISE` and passes every other line on. A process, not a thread, so that a
    native crash message (`F ... Check failed`) is still passed on after this one aborts; it
    ignores Ctrl-C and ends when every writer (this process and its children) has closed the
    pipe.
    """
    global _quiet
    if _quiet or os.name != "posix" or "--verbose" in sys.argv[1:]:
        return
    _quiet = True
    real = os.dup(2)
    read_end, write_end = os.pipe()
    sys.stderr.flush()
    if os.fork() == 0:  # the filter
        os.close(write_end)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with os.fdopen(read_end, "rb") as lines, os.fdopen(real, "wb", buffering=0) as out:
            for line in lines:
                if not NATIVE_NOISE.search(line.decode("utf-8", "replace")):
                    out.write(line)
        os._exit(0)
    os.close(read_end)
    os.dup2(write_end, 2)
    os.close(write_end)
    os.set_inheritable(real, False)
    sys.stderr = os.fdopen(real, "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    sys.__stderr__ = sys.stderr


def run_module(module: str) -> int:
    """Runs `module`'s `main` as a command (the thin scripts in scripts/ use it).

    The module is imported here, after `quiet_native_logs`, so that TensorFlow's start-up lines
    are filtered for the scripts as they are for `python -m`.
    """
    quiet_native_logs()
    return importlib.import_module(module).main()


def run(
    command: Callable[[list[str]], int | None],
    argv: Sequence[str] | None = None,
    usage_errors: tuple[type[BaseException], ...] = (),
    failures: tuple[type[BaseException], ...] = (),
    stopped: str = "",
) -> int:
    """Runs a command's body and turns how it ended into the exit status.

    Every command's `main(argv=None)` is `return cli.run(_main, argv, ...)`. The statuses:
    0 done (or what the body returned), 1 failed work (`Failure`, `failures`, any other
    `OSError`: a full disk, a read-only folder), 2 bad usage (`flags.Error`, which also
    points to --help, `UsageError`, `usage_errors`), 130 Ctrl-C, 143 SIGTERM (inside the body
    SIGTERM stops the run as Ctrl-C does). Each is reported as one `error:` line on stderr;
    `--verbose` (any command) also prints the traceback and keeps TensorFlow's start-up lines.

    Args:
      command: the body; takes the program name and its arguments, returns a status or None.
      argv: the command line (default `sys.argv`).
      usage_errors: the command's exceptions that mean bad input (e.g. `FileNotFoundError`
        for a missing --model_dir), checked first.
      failures: the command's exceptions that mean failed work.
      stopped: what Ctrl-C and SIGTERM leave, said after "interrupted" (e.g. "; rerun the same
        command to resume").
    """
    argv = list(sys.argv if argv is None else argv)
    verbose = "--verbose" in argv[1:]
    argv = [a for i, a in enumerate(argv) if i == 0 or a != "--verbose"]
    try:
        with sigterm_as_interrupt():
            status = command(argv)
    except KeyboardInterrupt as e:  # after a progress line: the message gets its own line
        by = "stopped by SIGTERM" if isinstance(e, Terminated) else "interrupted"
        print(f"\nerror: {by}{stopped}", file=sys.stderr)
        return 143 if isinstance(e, Terminated) else 130
    except flags.Error as e:
        return usage_error(e)
    except (UsageError, *usage_errors) as e:
        return _error(e, 2, verbose)
    except (Failure, *failures, OSError) as e:
        return _error(e, 1, verbose)
    return 0 if status is None else int(status)


def _error(error: BaseException, status: int, verbose: bool) -> int:
    if verbose:
        traceback.print_exc()
    print(f"error: {error}", file=sys.stderr)
    return status


def expand_space_separated(argv: Sequence[str], names: Sequence[str]) -> list[str]:
    """Rewrites `--name a b c` as `--name=a,b,c` for the list flags `names`.

    absl's DEFINE_list wants `--scores=a.npz,b.npz`; the documented usage
    `--scores a.npz b.npz --weights 1 1.5` reads more naturally. The values that follow such a
    flag, up to the next `-`-prefixed token, are joined with commas before absl parses argv.
    Values that start with '-' (a negative number) must use the comma form.
    """
    out = [argv[0]] if argv else []
    i = 1
    while i < len(argv):
        token = argv[i]
        name = token[2:] if token.startswith("--") else None
        if name in names:
            values = []
            i += 1
            while i < len(argv) and not argv[i].startswith("-"):
                values.append(argv[i])
                i += 1
            out.append(f"--{name}={','.join(values)}")
            continue
        out.append(token)
        i += 1
    return out


def parse_flags(
    fv: flags.FlagValues, argv: Sequence[str], usage: str, positional: bool = False
) -> list[str] | None:
    """Parses argv into the command's private FlagValues.

    Each command keeps its flags on its own FlagValues, so importing a command's module (the
    converter imports splits, evaluate imports fuse) defines no global flags.

    Args:
      fv: the command's flags.
      argv: the program name and its arguments.
      usage: printed with the flags' help for -h / --help.
      positional: whether non-flag arguments are allowed (predict's video files).

    Returns:
      the positional arguments, or None when help was printed (exit 0).

    Raises:
      flags.Error: a bad flag or an unexpected argument (report it with `usage_error`).
    """
    if any(a in ("-h", "-help", "--help", "--helpfull") for a in argv[1:]):
        print(usage)
        print(fv.get_help(include_special_flags=False))
        return None
    list_flags = [name for name in fv if isinstance(fv[name].parser, flags.ListParser)]
    rest = fv(expand_space_separated(list(argv), list_flags))[1:]
    if rest and not positional:
        raise flags.Error(f"unexpected arguments {rest}; all inputs are flags")
    return rest


def usage_error(error: Exception) -> int:
    """Prints a flag error the way every command does; returns exit status 2."""
    print(f"error: {error}\nPass --help to list the flags.", file=sys.stderr)
    return 2


def float_list(values: Sequence[str] | None, flag: str) -> list[float] | None:
    """A DEFINE_list flag's values as floats (None stays None); flags.Error names the flag."""
    if not values:
        return None
    try:
        return [float(v) for v in values]
    except ValueError:
        raise flags.Error(f"--{flag} must be numbers. Received: {list(values)}") from None
