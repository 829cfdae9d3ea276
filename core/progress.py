"""Progress of long jobs: how often a job saves it (`Throttle`), and the bars of the
command-line jobs, on standard error so output stays scriptable."""
from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable

from tqdm import tqdm

#: How often a running job writes its progress to its row: often enough for a moving bar,
#: rarely enough that the writes cost nothing beside the work.
SAVE_EVERY_SECONDS = 1.0


class Throttle:
    """Says when a job's progress report should be saved: at most once every `seconds`,
    and always for the final report.

        throttle = Throttle()
        def report(done, total):
            if throttle.due(final=done >= total):
                Job.objects.filter(pk=pk).update(progress=done / total)

    The first report is due at once, unless `wait_first` (then the first is due `seconds`
    after the throttle was made). `clock` (seconds, monotonic) is for tests.
    """

    def __init__(self, seconds: float = SAVE_EVERY_SECONDS, *, wait_first: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._last: float | None = clock() if wait_first else None

    def due(self, *, final: bool = False) -> bool:
        now = self._clock()
        if final or self._last is None or now - self._last >= self.seconds:
            self._last = now
            return True
        return False


class _ByteBar(tqdm):
    def update_rows(self, byte_count: int, rows: int) -> None:
        self.set_postfix_str(f"{rows:,} rows", refresh=False)
        self.update(byte_count)


@contextlib.contextmanager
def byte_progress_bar(total_bytes: int, description: str, *, disable: bool = False):
    """A bar over bytes read that also shows the rows handled so far."""
    bar = _ByteBar(
        total=total_bytes, desc=description, unit="B", unit_scale=True, unit_divisor=1024,
        mininterval=0.5, file=sys.stderr, disable=disable, dynamic_ncols=True,
    )
    try:
        yield bar
    finally:
        bar.close()


@contextlib.contextmanager
def done_of_total_bar(description: str, unit: str, *, disable: bool = False):
    """A bar fed by the services' ``progress(done, total)`` callbacks (both absolute counts;
    the total may only be known once the job starts). Yields that callback."""
    with tqdm(total=None, desc=description, unit=unit, mininterval=0.5, file=sys.stderr,
              disable=disable) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress
