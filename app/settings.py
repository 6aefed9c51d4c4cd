"""Remembered state (QSettings): window layout, last folder, recent files, parameters."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import cast

from PySide6 import QtCore

from app.model import RunParameters

__all__ = ["AppSettings", "ORGANIZATION", "APPLICATION", "MAX_RECENT"]

ORGANIZATION = "VQStudio"
APPLICATION = "VQ Studio"
MAX_RECENT = 10


class AppSettings:
    """Typed access to the application's QSettings.

    Parameters
    ----------
    settings : QSettings, optional
        Storage to use; by default an INI file in the user scope named after the
        application's organisation (tests set their own organisation and path).
    """

    def __init__(self, settings: QtCore.QSettings | None = None) -> None:
        if settings is None:
            org = QtCore.QCoreApplication.organizationName() or ORGANIZATION
            settings = QtCore.QSettings(
                QtCore.QSettings.Format.IniFormat,
                QtCore.QSettings.Scope.UserScope,
                org,
                APPLICATION,
            )
        self.qsettings = settings

    # recent files -------------------------------------------------------------
    def recent_files(self) -> list[str]:
        """Return recently opened files, newest first.

        Returns
        -------
        paths : list of str
            At most ``MAX_RECENT`` paths.
        """
        # QSettings.value is typed object; this key holds the list add_recent_file stores,
        # read back as a list, a str (one entry) or None (an empty list)
        value = cast("Iterable[object] | None", self.qsettings.value("recentFiles", []))
        if isinstance(value, str):
            value = [value]
        return [str(v) for v in (value or [])][:MAX_RECENT]

    def add_recent_file(self, path: str | Path) -> list[str]:
        """Put ``path`` at the front of the recent files.

        Parameters
        ----------
        path : str or Path
            Opened file.

        Returns
        -------
        paths : list of str
            The updated list.
        """
        text = str(Path(path).resolve())
        paths = [text] + [p for p in self.recent_files() if p != text]
        paths = paths[:MAX_RECENT]
        self.qsettings.setValue("recentFiles", paths)
        return paths

    def remove_recent_file(self, path: str | Path) -> None:
        """Forget ``path`` (e.g. after it failed to open).

        Parameters
        ----------
        path : str or Path
            File to drop from the list.
        """
        text = str(Path(path).resolve())
        self.qsettings.setValue("recentFiles", [p for p in self.recent_files() if p != text])

    def clear_recent_files(self) -> None:
        """Forget all recent files."""
        self.qsettings.setValue("recentFiles", [])

    # folders ------------------------------------------------------------------
    def last_folder(self, key: str = "open") -> str:
        """Return the folder last used for ``key`` ("open" or "export").

        Parameters
        ----------
        key : str
            Which dialog.

        Returns
        -------
        folder : str
            A folder path (the home folder if none was remembered).
        """
        value = self.qsettings.value(f"lastFolder/{key}", "")
        folder = str(value) if value else ""
        return folder if folder and Path(folder).is_dir() else str(Path.home())

    def set_last_folder(self, folder: str | Path, key: str = "open") -> None:
        """Remember ``folder`` for ``key``.

        Parameters
        ----------
        folder : str or Path
            Folder path.
        key : str
            Which dialog.
        """
        self.qsettings.setValue(f"lastFolder/{key}", str(folder))

    # parameters ---------------------------------------------------------------
    def parameters(self) -> RunParameters:
        """Return the remembered run parameters (defaults if none or invalid).

        Returns
        -------
        params : RunParameters
            Parameters.
        """
        # QSettings.value is typed object; this key holds the to_json() text set_parameters
        # stores (from_json gives the defaults for anything else)
        text = cast("str | None", self.qsettings.value("parameters", ""))
        return RunParameters.from_json(text or None)

    def set_parameters(self, params: RunParameters) -> None:
        """Remember ``params``.

        Parameters
        ----------
        params : RunParameters
            Parameters to store.
        """
        self.qsettings.setValue("parameters", params.to_json())

    # generic values -------------------------------------------------------------
    def value(self, key: str, default: object = None) -> object:
        """Return a raw stored value.

        Parameters
        ----------
        key : str
            Settings key.
        default : object, optional
            Returned when missing.

        Returns
        -------
        value : object
            Stored value.
        """
        return self.qsettings.value(key, default)

    def set_value(self, key: str, value: object) -> None:
        """Store a raw value.

        Parameters
        ----------
        key : str
            Settings key.
        value : object
            Value (QByteArray, str, bool, int, list of str).
        """
        self.qsettings.setValue(key, value)

    def flag(self, key: str, default: bool) -> bool:
        """Return a stored boolean (INI files store them as strings).

        Parameters
        ----------
        key : str
            Settings key.
        default : bool
            Returned when missing.

        Returns
        -------
        value : bool
            Stored flag.
        """
        value = self.qsettings.value(key, default)
        if isinstance(value, str):
            return value.lower() in ("1", "true", "yes")
        return bool(value)
