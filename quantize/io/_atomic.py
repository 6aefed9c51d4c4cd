"""All-or-nothing writing: each file staged as a temporary, ``fsync``-ed, then moved into place.

Every file is first written to a temporary file in the destination folder, flushed and
``fsync``-ed, then moved into place with :func:`os.replace` (or hard-linked when existing
files must not be overwritten, which makes the no-clobber check race-free).  A multi-file
export stages *all* files before moving any, so a failure (disk full, permission denied)
leaves the folder as it was: previous files byte-identical, no temporary file left.  New
files get the mode ``open()`` would give them (0666 minus the umask); an overwritten file
keeps its mode.

A *job* is ``(path, fill)``: ``fill(f)`` writes the file's bytes to ``f``, a write-only
file object.  :func:`run_jobs` checks the targets and commits the jobs as one transaction.
"""

from __future__ import annotations

import errno
import io
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from quantize.io.errors import ExportError, OutputExistsError

__all__ = [
    "Fill",
    "Job",
    "atomic_write_bytes",
    "bytes_fill",
    "check_targets",
    "commit_jobs",
    "lazy_fill",
    "reason",
    "run_jobs",
]

#: writes one file's content to a write-only file object
Fill = Callable[[IO[bytes]], None]
#: one file of a transaction: (destination, fill)
Job = tuple[Path, Fill]


def reason(exc: BaseException) -> str:
    """Say why a file operation failed, in words a user understands.

    Parameters
    ----------
    exc : BaseException
        Usually an :class:`OSError` (disk full, permission denied...).

    Returns
    -------
    text : str
        E.g. ``"disk full (no space left on device)"``.
    """
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return "disk full (no space left on device)"
        if exc.errno == errno.EDQUOT:
            return "disk quota exceeded"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        if exc.errno == errno.EROFS:
            return "read-only file system"
        if exc.errno == errno.ENOENT:
            return "folder does not exist"
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__


class _FdWriter(io.RawIOBase):
    """A write-only, non-seekable file over a descriptor; every write goes via os.write."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            done += os.write(self._fd, view[done:])
        self._pos += done
        return done

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:  # the descriptor is owned by the transaction
        super().close()


class _Transaction:
    """Stage several files as temporaries, then move them all into place."""

    def __init__(self, overwrite: bool) -> None:
        self.overwrite = overwrite
        self.staged: list[tuple[Path, Path]] = []  # (temporary, final)

    def stage(self, path: Path, fill: Fill) -> None:
        path = Path(path)
        folder = path.parent
        tmp_path: Path | None = None
        fd = -1
        try:
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
            tmp_path = Path(name)
            self.staged.append((tmp_path, path))
            _set_mode(fd, path)
            writer = _FdWriter(fd)
            fill(writer)  # type: ignore[arg-type]
            os.fsync(fd)
        except ExportError:
            raise
        except Exception as exc:
            raise ExportError(f"{path}: cannot write ({reason(exc)})", [path]) from exc
        finally:
            if fd >= 0:
                os.close(fd)

    def commit(self) -> list[Path]:
        folders: set[Path] = set()
        # (final, backup or None): how to undo each placed file if a later one fails
        undo: list[tuple[Path, Path | None]] = []
        try:
            for tmp, final in self.staged:
                if self.overwrite:
                    backup = self._backup(final)
                    try:
                        os.replace(tmp, final)
                    except BaseException:
                        if backup is not None:
                            _unlink_quiet(backup)
                        raise
                    undo.append((final, backup))
                else:
                    self._place_new(tmp, final)
                    undo.append((final, None))
                folders.add(final.parent)
        except BaseException as exc:
            failed = self.staged[len(undo)][1] if len(undo) < len(self.staged) else None
            self._undo(undo)
            self.discard()
            if isinstance(exc, ExportError) or not isinstance(exc, Exception):
                raise
            failed_paths = [failed] if failed is not None else []
            raise ExportError(f"{failed}: cannot write ({reason(exc)})", failed_paths) from exc
        for _, backup in undo:
            if backup is not None:
                _unlink_quiet(backup)
        self.discard()
        for folder in folders:
            _fsync_dir(folder)
        return [final for _, final in self.staged]

    @staticmethod
    def _backup(final: Path) -> Path | None:
        if not final.exists():
            return None
        backup = final.with_name(f".{final.name}.{os.getpid()}.{id(final):x}.bak")
        try:
            os.link(final, backup)
        except OSError:
            return None
        return backup

    @staticmethod
    def _undo(undo: list[tuple[Path, Path | None]]) -> None:
        for final, backup in reversed(undo):
            try:
                if backup is not None:
                    os.replace(backup, final)
                else:
                    os.unlink(final)
            except OSError:
                pass

    def _place_new(self, tmp: Path, final: Path) -> None:
        try:
            os.link(tmp, final)  # fails if final exists: no-clobber without a race
        except FileExistsError:
            raise OutputExistsError(
                f"{final}: already exists (use overwrite/--force)", [final]
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            if final.exists():  # filesystem without hard links
                raise OutputExistsError(
                    f"{final}: already exists (use overwrite/--force)", [final]
                ) from None
            os.replace(tmp, final)
            return
        os.unlink(tmp)

    def discard(self) -> None:
        for tmp, _ in self.staged:
            _unlink_quiet(tmp)


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _current_umask()  # read once at import (os.umask cannot be read without setting)


def _set_mode(fd: int, final: Path) -> None:
    """Give the temporary file the mode the final file should have (mkstemp uses 0600)."""
    try:
        mode = final.stat().st_mode & 0o7777  # keep an overwritten file's permissions
    except OSError:
        mode = 0o666 & ~_UMASK
    try:
        os.fchmod(fd, mode)
    except (OSError, AttributeError):  # e.g. Windows or exotic filesystems
        pass


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_targets(paths: Sequence[Path], overwrite: bool) -> None:
    """Refuse a set of targets before anything is written.

    Parameters
    ----------
    paths : sequence of Path
        Every file of the transaction.
    overwrite : bool
        Whether existing files may be replaced.

    Raises
    ------
    ExportError
        A file named twice, a target that is a folder or whose folder is missing.
    OutputExistsError
        A target exists and ``overwrite`` is false (the message counts the others).
    """
    seen: set[Path] = set()
    for p in paths:
        key = Path(os.path.abspath(p))
        if key in seen:
            raise ExportError(f"{p}: written twice by one export", [p])
        seen.add(key)
    folders = [p for p in paths if p.is_dir()]
    if folders:
        raise ExportError(f"{folders[0]}: is a folder, not a file name", folders)
    missing = sorted({p.parent for p in paths if not p.parent.is_dir()})
    if missing:
        raise ExportError(f"{missing[0]}: folder does not exist", missing)
    if overwrite:
        return
    existing = [p for p in paths if p.exists() or p.is_symlink()]
    if existing:
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise OutputExistsError(
            f"{existing[0]}: already exists{more} (use overwrite/--force)", existing
        )


def run_jobs(jobs: Sequence[Job], overwrite: bool) -> list[Path]:
    """Check the targets, then write every job, all or nothing.

    Parameters
    ----------
    jobs : sequence of (Path, fill)
    overwrite : bool
        Replace existing files; otherwise :class:`OutputExistsError` before writing any.

    Returns
    -------
    paths : list of Path
        The files written, in job order.

    Raises
    ------
    ExportError
        Nothing was changed.
    """
    check_targets([Path(p) for p, _ in jobs], overwrite)
    return commit_jobs(jobs, overwrite)


def commit_jobs(jobs: Sequence[Job], overwrite: bool) -> list[Path]:
    """Stage every job, then move them all into place (targets already checked).

    Parameters
    ----------
    jobs : sequence of (Path, fill)
    overwrite : bool

    Returns
    -------
    paths : list of Path

    Raises
    ------
    ExportError
        Nothing was changed (staged files removed, placed files put back).
    """
    tx = _Transaction(overwrite)
    try:
        for path, fill in jobs:
            tx.stage(Path(path), fill)
    except BaseException:
        tx.discard()
        raise
    return tx.commit()


def bytes_fill(data: bytes) -> Fill:
    """Make a fill that writes ``data``.

    Parameters
    ----------
    data : bytes

    Returns
    -------
    fill : callable
    """

    def fill(f: IO[bytes]) -> None:
        f.write(data)

    return fill


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, overwrite: bool = False
) -> Path:
    """Write ``data`` to ``path`` atomically.

    Parameters
    ----------
    path : str or Path
        Destination; its folder must exist.
    data : bytes
        Content.
    overwrite : bool, optional
        Replace an existing file; otherwise :class:`OutputExistsError`.

    Returns
    -------
    path : Path

    Raises
    ------
    ExportError
        Disk full, permission denied, missing folder, ...; the old file is untouched.
    """
    return run_jobs([(Path(path), bytes_fill(bytes(data)))], overwrite)[0]


def lazy_fill(make: Callable[[], bytes]) -> Fill:
    """Make a fill that calls ``make()`` only when the file is written.

    Parameters
    ----------
    make : callable
        Returns the file's bytes.

    Returns
    -------
    fill : callable
    """

    def fill(f: IO[bytes]) -> None:
        f.write(make())

    return fill
