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

import threading
import traceback
from collections.abc import Callable, Generator
from typing import Any

from PySide6 import QtCore

import app._compat  # noqa: F401  (PySide6 6.12 emit refcount bug, see module)
from quantize.protocol import Cancelled

__all__ = ["Worker", "Task", "describe_exception"]

#: ``task(should_cancel) -> value`` or a generator returning the value.
Task = Callable[[Callable[[], bool]], Any]


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
