"""`python -m tsn_keras.synthetic` (also `tsn-synthetic`): the dataset from flags."""

from __future__ import annotations

import sys

from absl import flags

from tsn_keras import cli
from tsn_keras.synthetic.dataset import CODECS, format_dataset_summary, write_dataset


def main(argv: list[str] | None = None) -> int:
    """Command line: parses the flags, writes the dataset, prints the summary.

    Returns:
      0 on success, 1 when writing failed (an unwritable or full --out), 2 on a bad flag (the
      message names it; parameter names are the flag names: "width must be ..." is --width).
    """
    return cli.run(_main, argv, usage_errors=(ValueError,), failures=(RuntimeError,))


def _main(argv: list[str]) -> int:
    # The flags live on a private FlagValues made here, so importing this module defines no
    # global flags (later commands import the library and define their own).
    fv = flags.FlagValues()
    flags.DEFINE_string("out", None, "Folder to write (the video root).", flag_values=fv)
    flags.DEFINE_integer(
        "classes", 8, "Number of classes (even; grid rule in the module doc).", flag_values=fv
    )
    flags.DEFINE_integer("clips_per_class", 30, "Clips per class (>= 2).", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "Random seed (>= 0).", flag_values=fv)
    flags.DEFINE_integer("width", 160, "Frame width (even).", flag_values=fv)
    flags.DEFINE_integer("height", 120, "Frame height (even).", flag_values=fv)
    flags.DEFINE_float("fps", 25.0, "Frames per second.", flag_values=fv)
    flags.DEFINE_float("seconds", 2.5, "Mean clip duration in seconds.", flag_values=fv)
    flags.DEFINE_float(
        "duration_jitter", 0.2, "Durations vary by +- this fraction (0: all equal).", flag_values=fv
    )
    flags.DEFINE_enum("codec", "mp4v", list(CODECS), "Video codec (in .avi).", flag_values=fv)
    flags.DEFINE_float(
        "test_fraction", 0.3, "Fraction of each class's groups in the test list.", flag_values=fv
    )
    flags.DEFINE_float(
        "jitter_fraction", 0.5, "Fraction of clips with camera jitter.", flag_values=fv
    )
    flags.mark_flag_as_required("out", flag_values=fv)
    usage = f"usage: python -m tsn_keras.synthetic --out DIR [flags]\n\n{_package_doc()}"
    if cli.parse_flags(fv, argv, usage) is None:
        return 0
    try:
        summary = write_dataset(
            fv.out,
            classes=fv.classes,
            clips_per_class=fv.clips_per_class,
            seed=fv.seed,
            width=fv.width,
            height=fv.height,
            fps=fv.fps,
            seconds=fv.seconds,
            duration_jitter=fv.duration_jitter,
            codec=fv.codec,
            test_fraction=fv.test_fraction,
            jitter_fraction=fv.jitter_fraction,
        )
    except OSError as e:  # not a traceback: the folder is read-only, or the disk full
        raise cli.Failure(f"--out {fv.out}: cannot write {e.filename or ''}: {e.strerror}") from e
    print(format_dataset_summary(summary))
    return 0


def _package_doc() -> str:
    # the package's docstring is the user's guide; the package is imported before this module
    # (read from sys.modules: importing it here would make an import cycle)
    return sys.modules["tsn_keras.synthetic"].__doc__ or ""
