"""One worker thread for everything that must not run on the GUI thread.

A :class:`Worker` runs a *task*: a callable taking a ``should_cancel`` callable and returning
either a value or a generator.  A generator is iterated on the worker thread; each item it
yields is forwarded (``yielded``) and its return value is the result.  Cancellation is
cooperative: :meth:`Worker.request_cancel` sets a flag that the task may poll through
``should_cancel`` (the engine does, between iterations and chunks, and raises
:class:`~quantize.protocol.Cancelled`) and that the worker checks between yields, closing the
generator.  Exactly one of ``succeeded``, ``failed`` or ``cancelled`` is emitted, before the
thread's ``finished``.

Every signal carries the worker's ``key``, an integer the receiver chose (a run generation, an
open ticket), so that it can drop what a superseded worker still delivers.  Signals are
emitted from the worker thread and delivered queued to receivers on the GUI thread.
"""

from __future__ import annotations

import os
import sys
import threading
import traceback
from collections.abc import Callable, Generator
from typing import Any

from PySide6 import QtCore

import app._compat  # noqa: F401  (PySide6 6.12 emit refcount bug, see module)
from quantize.protocol import Cancelled

__all__ = ["Worker", "Task", "describe_exception", "lower_thread_priority", "WORKER_NICENESS"]

#: ``task(should_cancel) -> value`` or a generator returning the value.
Task = Callable[[Callable[[], bool]], Any]

#: How much "nicer" than the GUI thread a worker thread runs on Linux (0 = equal, 19 = the
#: least priority).  On two busy cores the GUI thread then gets the CPU within a slice when an
#: event arrives, instead of sharing it evenly with the worker and the engine's own threads
#: (a 12 MP run: the event loop's longest pause 80-160 ms -> about 55 ms with 10).
WORKER_NICENESS = 10


def lower_thread_priority(niceness: int = WORKER_NICENESS) -> None:
    """Run the calling thread (and the threads it starts) below the GUI thread's priority.

    On Linux the thread's nice value rises by ``niceness`` (threads started from it inherit
    it: the engine's thread pools are made inside the run).  Elsewhere the calling
    :class:`QThread` gets :attr:`QThread.Priority.LowPriority`.  A thread that may not change
    its priority keeps it: this is a courtesy to the GUI, never an error.  On the main (GUI)
    thread it does nothing.

    Parameters
    ----------
    niceness : int, optional
        Nice increment on Linux (default :data:`WORKER_NICENESS`).
    """
    if threading.current_thread() is threading.main_thread():
        return
    if sys.platform.startswith("linux"):
        try:
            tid = threading.get_native_id()
            current = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, current + niceness))
        except OSError:
            pass
        return
    application = QtCore.QCoreApplication.instance()
    thread = QtCore.QThread.currentThread()
    if application is not None and thread is not application.thread():  # never the GUI's
        thread.setPriority(QtCore.QThread.Priority.LowPriority)


def describe_exception(exc: BaseException) -> tuple[str, str]:
    """Return the default (message, details) of a task's failure.

    Call it inside the ``except`` block, so that the traceback is the failure's.

    Parameters
    ----------
    exc : BaseException
        The exception the task raised.

    Returns
    -------
    message : str
        ``"TypeName: text"``.
    details : str
        The formatted traceback.
    """
    return f"{type(exc).__name__}: {exc}", traceback.format_exc()


class Worker(QtCore.QThread):
    """Runs one task on its own thread and reports its items and outcome.

    Parameters
    ----------
    task : callable
        ``task(should_cancel)``; returns a value, or a generator whose yielded items are
        forwarded and whose return value is the result.
    key : int, optional
        Carried by every signal (e.g. the run generation).
    describe_error : callable, optional
        ``describe_error(exc) -> (message, details)`` for a failure, called inside the
        ``except`` block (default :func:`describe_exception`).
    parent : QObject, optional
        Parent object.
    """

    yielded = QtCore.Signal(int, object)  # key, item
    succeeded = QtCore.Signal(int, object)  # key, result
    failed = QtCore.Signal(int, str, str)  # key, message, details
    cancelled = QtCore.Signal(int)  # key

    def __init__(
        self,
        task: Task,
        key: int = 0,
        *,
        describe_error: Callable[[BaseException], tuple[str, str]] | None = None,
        parent: QtCore.QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.key = key
        self._task = task
        self._describe = describe_error or describe_exception
        self._cancel = threading.Event()

    def request_cancel(self) -> None:
        """Ask the task to stop; it does so at its next cancel check or yield."""
        self._cancel.set()

    def should_cancel(self) -> bool:
        """Return whether a cancel was requested (the task polls this).

        Returns
        -------
        cancel : bool
            ``True`` once :meth:`request_cancel` was called.
        """
        return self._cancel.is_set()

    def run(self) -> None:  # noqa: D102 (QThread override, runs on the worker thread)
        gen = None
        lower_thread_priority()
        try:
            value = self._task(self.should_cancel)
            if isinstance(value, Generator):
                gen = value
                while True:
                    if self._cancel.is_set():
                        gen.close()
                        self.cancelled.emit(self.key)
                        return
                    try:
                        item = next(gen)
                    except StopIteration as stop:
                        value = stop.value
                        break
                    self.yielded.emit(self.key, item)
            if self._cancel.is_set():
                self.cancelled.emit(self.key)
            else:
                self.succeeded.emit(self.key, value)
        except Cancelled:
            self.cancelled.emit(self.key)
        except BaseException as exc:  # every failure must reach the GUI as a message
            message, details = self._describe(exc)
            if gen is not None:
                gen.close()
            self.failed.emit(self.key, message, details)
