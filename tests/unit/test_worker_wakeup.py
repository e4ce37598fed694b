"""The doorbell idle worker threads sleep on: no ring is lost, shutdown ends the sleep."""

from __future__ import annotations

import threading

from dataset_worker.worker.runtime.wakeup import Doorbell


def test_a_ring_between_the_ticket_and_the_sleep_is_not_lost() -> None:
    bell, shutdown = Doorbell(), threading.Event()
    ticket = bell.ticket()  # taken before the (empty) claim …
    bell.ring()  # … a job is queued meanwhile …
    assert bell.sleep(ticket, 3600, shutdown) is False  # … so the sleep returns at once


def test_a_ring_wakes_every_sleeping_thread() -> None:
    bell, shutdown = Doorbell(), threading.Event()
    woke: list[bool] = []
    asleep = threading.Barrier(4)

    def sleeper() -> None:
        ticket = bell.ticket()
        asleep.wait()
        woke.append(bell.sleep(ticket, 3600, shutdown))

    threads = [threading.Thread(target=sleeper) for _ in range(3)]
    for thread in threads:
        thread.start()
    asleep.wait()
    bell.ring()
    for thread in threads:
        thread.join(30)
    assert woke == [False, False, False]


def test_shutdown_ends_the_sleep_and_is_reported() -> None:
    bell, shutdown = Doorbell(), threading.Event()
    ticket = bell.ticket()
    shutdown.set()
    assert bell.sleep(ticket, 3600, shutdown) is True


def test_without_a_ring_the_sleep_lasts_its_time() -> None:
    bell, shutdown = Doorbell(), threading.Event()
    assert bell.sleep(bell.ticket(), 0.01, shutdown) is False
