"""Ctrl-C and SIGTERM: stop within a second or two, leave no partial file, exit 130.

Python turns SIGINT into :class:`KeyboardInterrupt`; while a ``vq`` command runs, SIGTERM
does the same (:func:`sigterm_as_interrupt`), so both unwind alike: the atomic writers of
:mod:`quantize.io._atomic` remove their temporary files on the way (all or nothing), and
``vq batch`` cancels its queued files and stops its workers (:func:`stop_workers`).

The worker processes of ``vq batch`` ignore SIGINT (a Ctrl-C in a terminal reaches the
whole process group: the parent decides what stops) and take SIGTERM, sent by the parent,
as :class:`SystemExit` (:func:`init_worker`): a task unwinds through the same cleanups and an
idle worker exits quietly.  A task whose outputs are being written (:func:`begin_writing`)
finishes instead, so that the parent hears of every file in place, and no further task
starts (:func:`start_task`).  A worker still alive after a grace period is killed and its
temporary files are removed by the parent (:func:`remove_stray_files`).
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "GRACE_S",
    "begin_writing",
    "init_worker",
    "interrupts_ignored",
    "remove_stray_files",
    "sigterm_as_interrupt",
    "start_task",
    "stop_workers",
]

#: How long (s) stopped workers may take to unwind before they are killed; a task unwinds
#: at the next Python bytecode, i.e. within the longest single numpy call of a fit (well
#: under a second for images within the default pixel cap).
GRACE_S = 1.5
#: Exit status of an interrupted worker (as the command's own, 130).
_WORKER_EXIT = 130

# state of a worker process of `vq batch` (unused in the parent)
_in_worker = False
_stopping = False  # SIGTERM received: start no further task
_writing = False  # the current task is writing its outputs: let it finish


def _is_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Make SIGTERM raise :class:`KeyboardInterrupt` (as Ctrl-C does) inside the block.

    Only on the main thread (signal handlers live there), and not when SIGTERM was ignored
    on entry (e.g. under ``nohup``-like launchers that chose so).  The previous handler is
    restored on exit.

    Yields
    ------
    None
    """
    if not _is_main_thread() or signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


@contextlib.contextmanager
def interrupts_ignored() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM inside the block (a short cleanup that must not be cut).

    Processes started inside the block inherit the ignored SIGINT from their first
    instruction on, before any handler of theirs is installed.

    Yields
    ------
    None
    """
    if not _is_main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def _stop_worker(signum: int, frame: Any) -> None:
    global _stopping
    _stopping = True
    if not _writing:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: never cut the unwinding short
        raise SystemExit(_WORKER_EXIT)


def init_worker() -> None:
    """Set up a worker process of ``vq batch`` (the pool's ``initializer``).

    SIGINT is ignored; SIGTERM raises :class:`SystemExit` once (unless the task is writing,
    see :func:`begin_writing`), and afterwards :func:`start_task` refuses to start a task.
    """
    global _in_worker
    _in_worker = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)


def start_task() -> None:
    """Begin a task of a worker: refused once the worker was told to stop.

    Raises
    ------
    SystemExit
        The worker received SIGTERM (the task was queued before the interrupt).
    Cancelled
        The task belongs to a cancelled Dask batch.
    """
    global _writing
    _writing = False  # first: a SIGTERM from here on raises at once
    if _stopping:
        raise SystemExit(_WORKER_EXIT)
    _raise_if_cancelled()


def begin_writing() -> None:
    """Say that the current task starts writing its outputs.

    In a worker of ``vq batch``, a SIGTERM from now on lets the task finish and send its
    report (so the parent lists every file in place; writing takes a fraction of a second),
    and stops the worker before its next task.  Elsewhere nothing changes: an interrupt
    unwinds the all-or-nothing writers, which undo what they had begun.

    Raises
    ------
    Cancelled
        The task belongs to a cancelled Dask batch (nothing written yet).
    """
    global _writing
    _raise_if_cancelled()  # a cancelled Dask batch writes nothing more
    if _in_worker:
        _writing = True


def _raise_if_cancelled() -> None:
    """Raise :class:`~quantize.protocol.Cancelled` in a task of a cancelled Dask batch."""
    from quantize.distributed import cancel_requested
    from quantize.protocol import Cancelled

    if cancel_requested(fresh=True):
        raise Cancelled("cancelled by request")


def stop_workers(processes: Iterable[Any], grace_s: float = GRACE_S) -> list[int]:
    """Stop worker processes: SIGTERM, then SIGKILL for those alive after ``grace_s``.

    Parameters
    ----------
    processes : iterable of multiprocessing.Process
        The pool's workers (taken before the pool is shut down).
    grace_s : float, optional
        Time to unwind before being killed.

    Returns
    -------
    killed : list of int
        Process ids of the workers that had to be killed (their temporary files may remain;
        see :func:`remove_stray_files`).
    """
    sentinels: dict[Any, Any] = {}
    for p in processes:
        try:
            sentinel = p.sentinel
            if p.exitcode is None:
                p.terminate()
        except (OSError, ValueError):  # already reaped or closed
            continue
        sentinels[sentinel] = p
    _wait_exits(sentinels, grace_s)
    killed = []
    for p in sentinels.values():
        with contextlib.suppress(OSError, ValueError):
            p.kill()
            killed.append(int(p.pid))
    _wait_exits(sentinels, 2.0)
    return killed


def _wait_exits(sentinels: dict[Any, Any], timeout_s: float) -> None:
    """Remove from ``sentinels`` the processes that exit within ``timeout_s``."""
    from multiprocessing.connection import wait as wait_ready  # (9 ms: only when stopping)

    deadline = time.monotonic() + timeout_s
    while sentinels:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        for ready in wait_ready(list(sentinels), left):
            sentinels.pop(ready, None)


def remove_stray_files(targets: Iterable[Path], killed_pids: Iterable[int]) -> None:
    """Remove what killed writers left next to ``targets``; put overwritten files back.

    The atomic writers stage ``.<name>.<random>.part`` files and, when overwriting, keep the
    previous file as ``.<name>.<pid>.<id>.bak`` until the new one is in place.

    Parameters
    ----------
    targets : iterable of Path
        Output files of the tasks that did not finish.
    killed_pids : iterable of int
        Workers killed by :func:`stop_workers` (their backups are restored).
    """
    pids = {str(pid) for pid in killed_pids}
    for target in targets:
        name = glob.escape(target.name)
        for stray in target.parent.glob(f".{name}.*.part"):
            with contextlib.suppress(OSError):
                stray.unlink()
        for backup in target.parent.glob(f".{name}.*.bak"):
            if backup.name.split(".")[-3] in pids:  # .<name>.<pid>.<id>.bak
                with contextlib.suppress(OSError):
                    os.replace(backup, target)
