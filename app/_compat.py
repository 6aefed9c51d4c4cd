"""Work-arounds for bugs in the Qt binding.

PySide6 6.12.0 on CPython < 3.12 returns the singletons ``None``, ``True`` and ``False`` from
C++ calls without taking a reference (as if they were immortal, which they only became in
CPython 3.12): every ``signal.emit()`` steals a reference to ``True`` and every void Qt method
(``setText``, ``QTimer.start``, pyqtgraph's ``setData``...) one to ``None``.  After a few
thousand calls the interpreter aborts with "Fatal Python error: bool_dealloc" or
"none_dealloc".  pyproject.toml keeps that release out of new installs; for a user who has it
anyway, we give these singletons a huge reference count once, which is what CPython 3.12 does
by design; a correct program never deallocates them, so the extra count changes nothing else.
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["protect_bool_refcounts", "emit_steals_true"]

_EXTRA_REFS = 1 << 40
_done = False


def emit_steals_true() -> bool:
    """Return whether this PySide6 build's ``Signal.emit`` loses a reference to ``True``.

    Returns
    -------
    affected : bool
        ``True`` if 100 emits lower ``sys.getrefcount(True)``.
    """
    from PySide6 import QtCore

    class _Probe(QtCore.QObject):
        ping = QtCore.Signal()

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(100):
        probe.ping.emit()
    return sys.getrefcount(True) < before - 50


def protect_bool_refcounts() -> None:
    """Make ``None``/``True``/``False`` effectively immortal where the binding needs it.

    Only on CPython < 3.12 with a binding whose ``Signal.emit`` loses references (probed
    once); idempotent.
    """
    global _done
    if _done or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        _done = True
        return
    if not emit_steals_true():
        _done = True
        return
    for obj in (None, True, False, NotImplemented, Ellipsis):
        refcnt = ctypes.c_ssize_t.from_address(id(obj))  # ob_refcnt is PyObject's first field
        refcnt.value += _EXTRA_REFS
    _done = True


protect_bool_refcounts()
