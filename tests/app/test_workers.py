"""The one worker thread: functions and generators, progress, cancel, failures."""

from __future__ import annotations

import sys
import threading

import pytest
from PySide6 import QtCore

from app.workers import WORKER_NICENESS, Worker, lower_thread_priority
from quantize.protocol import Cancelled


def _run(qtbot, worker: Worker, outcome) -> list:
    """Start ``worker``, wait for ``outcome`` and the thread's end; return what it yielded."""
    items = []
    worker.yielded.connect(lambda key, item: items.append((key, item)))
    with qtbot.waitSignals([outcome, worker.finished], order="strict", timeout=5000):
        worker.start()
    assert worker.wait(1000)
    return items


def test_function_task_reports_its_value(qtbot):
    worker = Worker(lambda should_cancel: 6 * 7, key=3)
    with qtbot.waitSignal(worker.succeeded, timeout=5000) as blocker:
        worker.start()
    assert blocker.args == [3, 42]
    assert worker.wait(1000)


def test_generator_items_are_forwarded_in_order_then_its_return_value(qtbot):
    def task(should_cancel):
        yield from range(5)
        return "done"

    worker = Worker(task, key=7)
    results = []
    worker.succeeded.connect(lambda key, value: results.append((key, value)))
    items = _run(qtbot, worker, worker.succeeded)
    assert items == [(7, i) for i in range(5)]
    assert results == [(7, "done")]


def test_cancel_between_yields_closes_the_generator(qtbot):
    may_go_on = threading.Event()
    closed = threading.Event()

    def task(should_cancel):
        try:
            yield "first"
            may_go_on.wait(5)
            yield "second"  # may still be forwarded; then the worker sees the cancel
            yield "third"
        finally:
            closed.set()

    worker = Worker(task, key=1)
    got = []
    worker.yielded.connect(lambda key, item: got.append(item))
    worker.succeeded.connect(lambda key, value: got.append(("succeeded", value)))
    with qtbot.waitSignal(worker.yielded, timeout=5000):
        worker.start()
    worker.request_cancel()
    assert worker.should_cancel()
    with qtbot.waitSignals([worker.cancelled, worker.finished], order="strict", timeout=5000):
        may_go_on.set()
    assert worker.wait(1000)
    assert closed.is_set()
    assert "third" not in got and not any(isinstance(g, tuple) for g in got)


def test_task_polling_should_cancel_ends_as_cancelled(qtbot):
    started = threading.Event()

    def task(should_cancel):
        started.set()
        while True:  # like the engine: poll, then raise Cancelled
            if should_cancel():
                raise Cancelled
            threading.Event().wait(0.001)

    worker = Worker(task, key=2)
    worker.start()
    assert started.wait(5)
    with qtbot.waitSignal(worker.cancelled, timeout=5000) as blocker:
        worker.request_cancel()
    assert blocker.args == [2]
    assert worker.wait(1000)


def test_failure_reports_message_and_traceback(qtbot):
    def task(should_cancel):
        yield 1
        raise ValueError("bad input on purpose")

    worker = Worker(task, key=5)
    with qtbot.waitSignal(worker.failed, timeout=5000) as blocker:
        worker.start()
    key, message, details = blocker.args
    assert key == 5
    assert message == "ValueError: bad input on purpose"
    assert "Traceback" in details and "bad input on purpose" in details
    assert worker.wait(1000)


def test_custom_error_description(qtbot):
    def describe(exc):
        return f"photo.png: {exc}", ""

    def task(should_cancel):
        raise OSError("unreadable")

    worker = Worker(task, describe_error=describe)
    with qtbot.waitSignal(worker.failed, timeout=5000) as blocker:
        worker.start()
    assert blocker.args == [0, "photo.png: unreadable", ""]
    assert worker.wait(1000)


@pytest.mark.parametrize("outcome", ["succeeded", "failed", "cancelled"])
def test_exactly_one_outcome_before_finished(qtbot, outcome):
    def task(should_cancel):
        if outcome == "failed":
            raise RuntimeError("x")
        if outcome == "cancelled":
            raise Cancelled
        return 1

    worker = Worker(task)
    seen = []
    for name in ("succeeded", "failed", "cancelled"):
        getattr(worker, name).connect(lambda *args, n=name: seen.append(n))
    worker.finished.connect(lambda: seen.append("finished"))
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    QtCore.QCoreApplication.processEvents()
    assert seen == [outcome, "finished"]


def _niceness(native_id: int) -> int:
    with open(f"/proc/self/task/{native_id}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_the_task_and_the_threads_it_starts_run_below_the_gui_thread(qtbot):
    def task(should_cancel):
        return _niceness(threading.get_native_id())

    def child_nice(should_cancel):
        seen = []
        helper = threading.Thread(target=lambda: seen.append(_niceness(threading.get_native_id())))
        helper.start()
        helper.join()
        return seen[0]

    gui = _niceness(threading.get_native_id())
    worker = Worker(task)
    with qtbot.waitSignal(worker.succeeded, timeout=5000) as blocker:
        worker.start()
    assert worker.wait(1000)
    worker_nice = blocker.args[1]
    assert worker_nice == min(19, gui + WORKER_NICENESS)
    assert worker_nice > gui or gui == 19  # (a suite run at the least priority stays there)
    worker = Worker(child_nice)
    with qtbot.waitSignal(worker.succeeded, timeout=5000) as blocker:
        worker.start()
    assert worker.wait(1000)
    assert blocker.args[1] == worker_nice  # the engine's pools, made inside the run, inherit it
    assert _niceness(threading.get_native_id()) == gui  # the GUI thread is left as it was


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_lowering_the_priority_leaves_the_main_thread_alone():
    before = _niceness(threading.get_native_id())
    lower_thread_priority()
    assert _niceness(threading.get_native_id()) == before
