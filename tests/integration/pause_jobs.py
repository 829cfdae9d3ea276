"""Test instrumentation loaded into a worker with `celery worker --include
tests.integration.pause_jobs` (tests/integration/test_worker_deaths.py), never by the platform.

Every job kind reports its progress through `core.progress.Throttle.due` from inside its work
loop: an import while it reads rows in its transaction, an export between batches, a training
after an optimizer step, scoring after a batch, a simulation shard between steps. With
FRAMELAB_TEST_PAUSE_DIR set, the first such call in any process of this worker writes
`paused` (its pid) in that folder and then sleeps, so that a test knows the job is in the
middle of its work and which process to kill. Later calls (the job's retry) do not pause.
"""
import os
import time
from pathlib import Path

from core.progress import Throttle

PAUSE_DIR = os.environ.get("FRAMELAB_TEST_PAUSE_DIR")
PAUSE_SECONDS = 120.0

if PAUSE_DIR:
    _due = Throttle.due

    def due(self, *, final: bool = False) -> bool:
        folder = Path(PAUSE_DIR)
        try:  # only the first call of all: the lock file stays
            os.close(os.open(folder / "pause.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return _due(self, final=final)
        (folder / "paused.tmp").write_text(str(os.getpid()))
        os.rename(folder / "paused.tmp", folder / "paused")
        time.sleep(PAUSE_SECONDS)
        return _due(self, final=final)

    Throttle.due = due
