"""Command-line helpers shared by the tools' `main` functions (flags stay at the edge)."""

from collections.abc import Sequence


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
