"""Starting on a bare Linux desktop: the missing X11 libraries and their packages are named."""

from __future__ import annotations

import sys

import pytest

from app import platform_check
from app.platform_check import install_hint, parse_ldd

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd)
\tlibQt6XcbQpa.so.6 => /opt/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f)
\tlibxcb-icccm.so.4 => not found
"""


def test_parse_ldd_and_hint():
    missing = parse_ldd(LDD)
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    hint = install_hint(missing)
    assert "libxcb-icccm.so.4" in hint and "sudo apt install libxcb-icccm4 libxcb-keysyms1" in hint
    assert "libfoo.so.9" in install_hint(["libfoo.so.9"])


def test_hint_only_when_qt_will_use_x11(monkeypatch):
    monkeypatch.setattr(platform_check, "missing_libraries", lambda: ["libxcb-keysyms.so.1"])
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    assert "libxcb-keysyms1" in platform_check.check_display_libraries()
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert platform_check.check_display_libraries() == ""
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert platform_check.check_display_libraries() == ""


def test_main_prints_the_hint_and_exits_1(monkeypatch, capsys):
    from app.__main__ import main

    monkeypatch.setattr(platform_check, "missing_libraries", lambda: ["libxcb-icccm.so.4"])
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main([]) == 1
    assert "sudo apt install libxcb-icccm4" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldd")
def test_every_library_of_the_plugin_is_known_or_present():
    # what the plugin links and this machine lacks must have a package name to offer
    for name in platform_check.missing_libraries():
        assert name in platform_check.DEBIAN_PACKAGES, name
