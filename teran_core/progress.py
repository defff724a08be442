"""One progress reporter for every long step: done/total, rate and time left.

On a terminal it is a tqdm bar. Elsewhere (a Ray job's driver log, CI, a file) a bar's carriage
returns would be noise, so it writes a log line at most every ``interval_s`` seconds, and one when
the step finishes, in the same words tqdm uses.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

__all__ = ["Progress"]

LINE = "{n_fmt}/{total_fmt}{unit} done [{elapsed} elapsed, {remaining} left, {rate_fmt}]"


class Progress:
    """``Progress(log, "encode", total=40, unit="shards")``, then ``update(n)`` as work finishes.

    Args:
        log: the logger of the job (used when not on a terminal).
        what: what the step is called in each line.
        total: how many units the step has.
        unit: what one unit is, plural ("shards", "calls").
        interval_s: the least time between two log lines.
        bar: a tqdm bar (True) or log lines (False); None: a bar when stderr is a terminal.

    Example:
        >>> import logging
        >>> progress = Progress(logging.getLogger("teran.doc"), "encode", total=4, unit="shards", bar=False)
        >>> progress.update(4)  # the last unit: logged whatever the interval
        >>> progress.line().split(" [")[0]
        'encode: 4/4 shards done'
    """

    def __init__(self, log: logging.Logger, what: str, total: int, unit: str, *, interval_s: float = 20.0,
                 bar: bool | None = None):
        self.log, self.what, self.total, self.unit, self.interval_s = log, what, total, unit, interval_s
        self.done, self.note, self.logged = 0, "", None  # logged: (done, note) of the last line written
        self.started = self.last_line = time.monotonic()
        use_bar = sys.stderr.isatty() if bar is None else bar
        self.bar = tqdm(total=total, desc=what, unit=f" {unit}", mininterval=1.0) if use_bar else None

    def update(self, n: int = 1, note: str | None = None) -> None:
        """Counts ``n`` more units done (0: none, but a line is due if the interval has passed); ``note`` is
        shown after the count until replaced."""
        self.done += n
        if note is not None:
            self.note = note
        if self.bar is not None:
            if note is not None:
                self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(n)
            return
        now = time.monotonic()
        if now - self.last_line >= self.interval_s or (n and self.done >= self.total):
            self._write()
            self.last_line = now

    def _write(self) -> None:
        self.log.info(self.line())
        self.logged = (self.done, self.note)

    def line(self) -> str:
        """The progress as one line: ``encode: 3/10 shards done [00:12 elapsed, 00:29 left, 4.17s/ shards]; ...``."""
        meter = tqdm.format_meter(self.done, self.total, time.monotonic() - self.started, unit=f" {self.unit}", bar_format=LINE)
        return f"{self.what}: {meter}" + (f"; {self.note}" if self.note else "")

    def close(self) -> None:
        """Ends the bar; with log lines, writes the final state unless the last line already showed it."""
        if self.bar is not None:
            self.bar.close()
        elif self.logged != (self.done, self.note):
            self._write()
