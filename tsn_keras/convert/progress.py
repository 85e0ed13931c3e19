"""The parent process's stderr: one progress line (`Progress`) and warnings (`warn`).

Shared by the worker pool (a worker died, retried) and the shard writer (a short video): a
warning first ends a progress line that is showing, so the two never share a line.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """One stderr line: done/total, videos/s, ETA, failures (no dependency).

    `label` names the count of `update(True)` calls ("failed"; the dataset check's "with
    problems").
    """

    showing = False  # a progress line without its newline is on stderr (`warn` ends it)
    active: Progress | None = None  # the line being shown, for `note`
    note_text = ""  # appended to the line (the batched solver's compiling: `note`)

    def __init__(self, total: int, enabled: bool, stream=None, label: str = "failed"):
        self.total, self.enabled, self.label = total, enabled, label
        self.stream = stream or sys.stderr  # looked up now: tests replace sys.stderr
        self.start = time.monotonic()
        self.last = 0.0
        self.done = self.failed = 0
        Progress.active = self

    def update(self, failed: bool) -> None:
        self.done += 1
        self.failed += int(failed)
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.5 or self.done == self.total):
            self.last = now
            self.render()

    def render(self) -> None:
        rate = self.done / max(time.monotonic() - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        m, s = divmod(int(eta), 60)
        h, m = divmod(m, 60)
        note = f"  {Progress.note_text}" if Progress.note_text else ""
        self.stream.write(
            f"\r{self.done}/{self.total} videos  {rate:.2f} videos/s  "
            f"ETA {h}:{m:02d}:{s:02d}  {self.label} {self.failed}{note}   "
        )
        self.stream.flush()
        Progress.showing = True

    @staticmethod
    def note(text: str) -> None:
        """Shows `text` at the end of the progress line now and on later updates (the batched
        solver's first call compiles for 20-60 s, which should not look like a hang)."""
        Progress.note_text = text
        line = Progress.active
        if line is not None and line.enabled:
            line.render()

    def close(self) -> None:
        if self.enabled and self.total and Progress.showing:
            self.stream.write("\n")
            self.stream.flush()
        Progress.showing = False
        Progress.active, Progress.note_text = None, ""


def warn(message: str) -> None:
    """A warning on its own stderr line (ending the progress line first if one is showing)."""
    sys.stderr.write(("\n" if Progress.showing else "") + f"warning: {message}\n")
    sys.stderr.flush()
    Progress.showing = False
