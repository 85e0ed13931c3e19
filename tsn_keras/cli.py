"""Command-line helpers shared by every command's `main` (flags stay at the edge).

Every command (`python -m tsn_keras.X`, `scripts/*.py`) works the same way: its flags live on a
private `flags.FlagValues` made inside `main(argv=None) -> int`, `parse_flags` reads argv, and
`main` returns the exit status: 0 done, 1 failed (e.g. some videos could not be read), 2 usage
error (a bad flag or input, reported by `usage_error` as one `error:` line). List flags take
both `--x a,b` and `--x a b`.
"""

import sys
from collections.abc import Sequence

from absl import flags


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
