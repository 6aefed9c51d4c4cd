"""The exceptions of the exports: :class:`ExportError` and :class:`OutputExistsError`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["ExportError", "OutputExistsError"]


class ExportError(Exception):
    """An export failed; the message names the file and the reason.

    Parameters
    ----------
    message : str
        ``"<file>: <problem>"``.
    paths : sequence of Path, optional
        Files concerned.
    """

    def __init__(self, message: str, paths: Sequence[Path] = ()) -> None:
        super().__init__(message)
        self.paths = [Path(p) for p in paths]


class OutputExistsError(ExportError):
    """A target file exists and overwriting was not allowed."""
