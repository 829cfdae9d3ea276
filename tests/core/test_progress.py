"""The progress throttle every job uses to decide when to save its progress."""
from core.progress import SAVE_EVERY_SECONDS, Throttle


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_due_at_most_once_per_interval():
    clock = Clock()
    throttle = Throttle(1.0, clock=clock)
    assert throttle.due()          # the first report is saved at once
    assert not throttle.due()
    clock.now += 0.999
    assert not throttle.due()
    clock.now += 0.001
    assert throttle.due()
    clock.now += 0.5
    assert not throttle.due()


def test_the_interval_counts_from_the_last_save_not_the_last_call():
    clock = Clock()
    throttle = Throttle(2.0, clock=clock)
    assert throttle.due()
    for _ in range(3):
        clock.now += 0.6
        assert not throttle.due()
    clock.now += 0.3
    assert throttle.due()          # 2.1 s after the first save, however many calls between
    clock.now += 1.9
    assert not throttle.due()


def test_the_final_report_is_always_due_and_restarts_the_interval():
    clock = Clock()
    throttle = Throttle(1.0, clock=clock)
    assert throttle.due()
    assert throttle.due(final=True)
    clock.now += 0.5
    assert not throttle.due()


def test_wait_first_delays_the_first_save_by_one_interval():
    clock = Clock()
    throttle = Throttle(1.0, wait_first=True, clock=clock)
    assert not throttle.due()
    clock.now += 1.0
    assert throttle.due()
    assert Throttle(1.0, wait_first=True, clock=clock).due(final=True)


def test_default_interval():
    assert Throttle().seconds == SAVE_EVERY_SECONDS == 1.0
