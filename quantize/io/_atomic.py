"""File access rules: all-or-nothing writing, and bounded reading of regular files only.

**Writing.**
Every file is first written to a temporary file in the destination folder, flushed and
``fsync``-ed, then moved into place with :func:`os.replace` (or hard-linked when existing
files must not be overwritten, which makes the no-clobber check race-free).  A multi-file
export stages *all* files before moving any, so a failure (disk full, permission denied)
leaves the folder as it was: previous files byte-identical, no temporary file left.  New
files get the mode ``open()`` would give them (0666 minus the umask); an overwritten file
keeps its mode.

A *job* is ``(path, fill)``: ``fill(f)`` writes the file's bytes to ``f``, a write-only
file object.  :func:`run_jobs` checks the targets and commits the jobs as one transaction;
:func:`commit_jobs` can also remove files (stale ones of an earlier export) in that same
transaction: they are moved aside and only deleted once everything else is in place.

**Reading.**  Every non-image file the program reads (palettes; the source file it hashes for
the sidecar) goes through :func:`open_regular_file` / :func:`read_regular_file`: regular
files only (a FIFO, device, socket or folder is refused after an ``os.stat`` and before it
is opened, and the file is opened with ``O_NONBLOCK`` so that nothing can block), and at
most a given number of bytes (the size is checked before reading, and at most one byte past
the cap is ever read, whatever the size claims).  Failures are the caller's typed error.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from quantize.io.errors import ExportError, OutputExistsError

__all__ = [
    "ErrorFactory",
    "Fill",
    "Job",
    "atomic_write_bytes",
    "bytes_fill",
    "check_targets",
    "commit_jobs",
    "lazy_fill",
    "open_regular_file",
    "read_regular_file",
    "reason",
    "run_jobs",
]

#: writes one file's content to a write-only file object
Fill = Callable[[IO[bytes]], None]
#: one file of a transaction: (destination, fill)
Job = tuple[Path, Fill]
#: makes the caller's typed error from (file as the caller named it, problem): ``LoadError``
ErrorFactory = Callable[[str | os.PathLike[str], str], Exception]


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

    def commit(self, remove: Sequence[Path] = ()) -> list[Path]:
        folders: set[Path] = set()
        # (final, backup or None): how to undo each placed or removed file if a later one fails
        undo: list[tuple[Path, Path | None]] = []
        current: Path | None = None
        action = "write"
        try:
            for tmp, final in self.staged:
                current = final
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
            action = "remove"
            placed = {os.path.abspath(final) for _, final in self.staged}
            for old in remove:
                if os.path.abspath(old) in placed:
                    continue
                current = Path(old)
                tag = f"{os.getpid()}.{secrets.token_hex(6)}"
                aside = current.with_name(f".{current.name}.{tag}.removed")
                try:
                    os.rename(current, aside)  # deleted only when everything is in place
                except FileNotFoundError:
                    continue  # already gone
                undo.append((current, aside))
                folders.add(current.parent)
        except BaseException as exc:
            self._undo(undo)
            self.discard()
            if isinstance(exc, ExportError) or not isinstance(exc, Exception):
                raise
            failed_paths = [current] if current is not None else []
            raise ExportError(f"{current}: cannot {action} ({reason(exc)})", failed_paths) from exc
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


def commit_jobs(jobs: Sequence[Job], overwrite: bool, *, remove: Sequence[Path] = ()) -> list[Path]:
    """Stage every job, then move them all into place (targets already checked).

    Parameters
    ----------
    jobs : sequence of (Path, fill)
    overwrite : bool
    remove : sequence of Path, optional
        Files to delete in the same transaction (stale files of an earlier export): moved
        aside after the new files are in place, deleted once all is done, put back if
        anything fails.  Needs ``overwrite``.

    Returns
    -------
    paths : list of Path

    Raises
    ------
    ExportError
        Nothing was changed (staged files removed, placed files put back).
    OutputExistsError
        Files to remove without ``overwrite`` (nothing was written).
    """
    if remove and not overwrite:
        first = Path(remove[0])
        raise OutputExistsError(
            f"{first}: would be removed (use overwrite/--force)", [Path(p) for p in remove]
        )
    tx = _Transaction(overwrite)
    try:
        for path, fill in jobs:
            tx.stage(Path(path), fill)
    except BaseException:
        tx.discard()
        raise
    return tx.commit(remove)


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


# --------------------------------------------------------------------------------------
# reading: regular files only, bounded
# --------------------------------------------------------------------------------------


def _not_regular(mode: int) -> str | None:
    """Say what a file that is not a regular file is (``None`` for a regular file)."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "is a folder"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "is a character device"
    if stat.S_ISBLK(mode):
        return "is a block device"
    if stat.S_ISSOCK(mode):
        return "is a socket"
    return "is not a regular file"


def _read_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "no such file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOTDIR:
        return "a folder in its path is a file"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    if exc.errno == errno.ENAMETOOLONG:
        return "file name too long"
    return f"cannot read ({exc.strerror or exc})"


def _size_text(n: int) -> str:
    if n >= 1 << 20 and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    return f"{n:,} bytes"


_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO swapped in after the check still cannot block
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


def open_regular_file(
    path: str | os.PathLike[str],
    what: str,
    error: ErrorFactory,
    *,
    max_bytes: int | None = None,
) -> io.FileIO:
    """Open a regular file for reading, refusing anything else before opening it.

    Parameters
    ----------
    path : str or Path
    what : str
        What the file should be, for messages (``"palette file"``).
    error : callable
        ``error(path, problem)`` makes the exception to raise.
    max_bytes : int, optional
        Refuse a file whose size is larger (checked before opening).

    Returns
    -------
    file : io.FileIO
        Unbuffered, read-only; the caller closes it.

    Raises
    ------
    Exception
        ``error(path, problem)``: missing, unreadable, not a regular file (folder, FIFO,
        device, socket) or too large.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError as exc:
        raise error(path, _read_reason(exc)) from None
    kind = _not_regular(st.st_mode)
    if kind is not None:
        raise error(path, f"{kind}, not a {what}")
    if max_bytes is not None and st.st_size > max_bytes:
        raise error(path, f"{what} is larger than {_size_text(max_bytes)} ({st.st_size:,} bytes)")
    try:
        fd = os.open(p, _OPEN_FLAGS)
    except OSError as exc:
        raise error(path, _read_reason(exc)) from None
    try:
        now = os.fstat(fd)
        kind = _not_regular(now.st_mode)
        if kind is not None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            raise error(path, f"{kind or 'was replaced while being opened'}, not a {what}")
        return io.FileIO(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(
    path: str | os.PathLike[str], max_bytes: int, what: str, error: ErrorFactory
) -> bytes:
    """Read a whole regular file of at most ``max_bytes`` bytes (the one reader policy).

    Parameters
    ----------
    path : str or Path
    max_bytes : int
        The cap: checked against the size before reading, and at most ``max_bytes + 1``
        bytes are read whatever the size said (a file that grows, a ``/proc`` file).
    what : str
        What the file should be, for messages (``"palette file"``).
    error : callable
        ``error(path, problem)`` makes the exception to raise.

    Returns
    -------
    data : bytes

    Raises
    ------
    Exception
        ``error(path, problem)``, as :func:`open_regular_file`, or when more than
        ``max_bytes`` bytes could be read.
    """
    p = Path(path)
    with open_regular_file(p, what, error, max_bytes=max_bytes) as f:
        chunks: list[bytes] = []
        left = max_bytes + 1
        try:
            while left > 0:
                chunk = f.read(min(left, 1 << 20))
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
        except OSError as exc:
            raise error(path, _read_reason(exc)) from None
    if left <= 0:
        raise error(path, f"{what} is larger than {_size_text(max_bytes)}")
    return b"".join(chunks)
