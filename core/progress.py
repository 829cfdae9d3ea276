"""Progress bars for long command-line jobs, on standard error so output stays scriptable."""
from __future__ import annotations

import contextlib
import sys

from tqdm import tqdm


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
