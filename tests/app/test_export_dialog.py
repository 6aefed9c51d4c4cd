"""The export dialog: files planned, written, overwrite confirmation, errors."""

from __future__ import annotations

import hashlib
import json

import numpy as np
from apphelpers import run_and_wait
from PIL import Image
from PySide6 import QtWidgets


def finished_window(qtbot, window, small_png):
    window.open_image(small_png)
    return run_and_wait(qtbot, window)


def export_dialog(qtbot, window, folder, kind):
    """The main window's export dialog for one kind into ``folder``, stem "cup"."""
    dialog = window.make_export_dialog()
    qtbot.addWidget(dialog)
    dialog.folder.setText(str(folder))
    dialog.stem.setText("cup")
    for name, check in dialog.checks.items():
        check.setChecked(name == kind)
    return dialog


def test_export_writes_files_and_asks_before_overwriting(qtbot, window, small_png, tmp_path):
    output = finished_window(qtbot, window, small_png)
    dialog = window.make_export_dialog()
    qtbot.addWidget(dialog)
    out = tmp_path / "out"
    dialog.folder.setText(str(out))
    dialog.stem.setText("cup")
    for kind, check in dialog.checks.items():
        check.setChecked(kind in ("indexed_png", "gpl", "label_map", "sidecar"))
    planned = dialog.planned_files()
    assert [p.name for p in planned] and all(p.parent == out for p in planned)
    assert "cup" in dialog.preview.toPlainText()
    asked = []
    dialog.confirm_overwrite = lambda existing: asked.append(existing) or False
    written = dialog.export()
    assert asked == []  # nothing existed: no question
    assert sorted(written) == sorted(planned)
    png = next(p for p in written if p.name.endswith(".png") and "label" not in p.name)
    with Image.open(png) as im:
        assert im.mode == "P"  # its palette is stored dark to light: compare colours
        rgb = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(rgb, output.result.palette[output.result.labels])
    sidecar = next(p for p in written if p.suffix == ".json")
    meta = json.loads(sidecar.read_text())  # strict JSON
    assert meta["input"]["sha256"] == hashlib.sha256(small_png.read_bytes()).hexdigest()
    before = {p: p.read_bytes() for p in written}
    # second export: the user refuses to overwrite -> nothing touched
    assert dialog.export() is None
    assert len(asked) == 1 and sorted(asked[0]) == sorted(planned)
    assert {p: p.read_bytes() for p in written} == before
    # now agree: files are rewritten
    dialog.confirm_overwrite = lambda existing: True
    assert sorted(dialog.export()) == sorted(planned)


def test_export_error_is_reported(qtbot, window, small_png, tmp_path):
    finished_window(qtbot, window, small_png)
    dialog = window.make_export_dialog()
    qtbot.addWidget(dialog)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    dialog.folder.setText(str(blocker / "sub"))
    reported = []
    dialog.report_error = reported.append
    assert dialog.export() is None
    assert reported and dialog.last_error == reported[0]
    assert "not-a-folder" in reported[0] or "sub" in reported[0]
    # nothing selected -> clear message, nothing written
    for check in dialog.checks.values():
        check.setChecked(False)
    assert dialog.export() is None
    assert "at least one" in dialog.last_error
    assert not dialog.export_button.isEnabled()


def test_export_action_opens_dialog_only_with_a_result(qtbot, window, small_png):
    assert not window.export_action.isEnabled()
    assert window.export_dialog() is None
    finished_window(qtbot, window, small_png)
    assert window.export_action.isEnabled()
    dialog = window.export_dialog()
    assert isinstance(dialog, QtWidgets.QDialog) and dialog.isVisible()
    assert dialog.stem.text().startswith("small_kmeans")
    dialog.reject()


def test_export_button_writes_on_a_worker_thread(qtbot, window, small_png, tmp_path):
    finished_window(qtbot, window, small_png)
    dialog = window.export_dialog()  # shown, window-modal, deletes itself on close
    dialog.folder.setText(str(tmp_path / "async"))
    dialog.stem.setText("cup")
    for kind, check in dialog.checks.items():
        check.setChecked(kind in ("indexed_png", "hex", "binary_masks"))
    planned = dialog.planned_files()
    with qtbot.waitSignal(dialog.export_finished, timeout=30_000) as blocker:
        dialog.export_button.click()
    assert sorted(blocker.args[0]) == sorted(planned)
    assert all(p.is_file() for p in planned)
    # the dialog closes itself and the window reports where the files went
    qtbot.waitUntil(lambda: window.progress_label.text().startswith("Exported"))
    assert str(tmp_path / "async") in window.progress_label.text()
    assert window.settings.last_folder("export") == str(tmp_path / "async")


def test_failed_export_leaves_no_new_folder(qtbot, window, small_png, tmp_path, monkeypatch):
    import quantize.io.export

    finished_window(qtbot, window, small_png)
    dialog = window.make_export_dialog()
    qtbot.addWidget(dialog)
    target = tmp_path / "new" / "deeper"
    dialog.folder.setText(str(target))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(quantize.io.export, "export_all", disk_full)
    dialog.report_error = lambda message: None
    assert dialog.export() is None
    assert "no space left" in dialog.last_error.lower()
    assert "Errno" not in dialog.last_error and str(target) in dialog.last_error
    assert not (tmp_path / "new").exists()


def test_dialog_labels_show_no_stray_mnemonic_ampersands(qtbot, window, small_png):
    finished_window(qtbot, window, small_png)
    dialog = window.make_export_dialog()
    qtbot.addWidget(dialog)
    labels = dialog.findChildren(QtWidgets.QLabel)
    assert labels
    for label in labels:
        # an '&' only becomes a keyboard shortcut when the label has a buddy to focus
        if "&" in label.text() and "&&" not in label.text():
            assert label.buddy() is not None, f"label {label.text()!r} shows a literal '&'"


def test_export_uses_the_hash_of_the_decoded_file(qtbot, window, small_png, tmp_path, monkeypatch):
    finished_window(qtbot, window, small_png)
    dialog = window.make_export_dialog()
    qtbot.addWidget(dialog)
    assert dialog.source_sha256 == hashlib.sha256(small_png.read_bytes()).hexdigest()
    import quantize.io.sidecar as sidecar

    def no_rehash(path):
        raise AssertionError(f"{path} was read again to hash it")

    monkeypatch.setattr(sidecar, "_sha256", no_rehash)
    dialog.folder.setText(str(tmp_path))
    for kind, check in dialog.checks.items():
        check.setChecked(kind == "sidecar")
    written = dialog.export()
    assert written and json.loads(written[0].read_text())["input"]["sha256"] == (
        dialog.source_sha256
    )


def test_dialog_offers_every_registered_export_kind(qtbot, tmp_path):
    # the check boxes come from the export-kind table: a new kind appears, with its label
    from app.export_dialog import ExportDialog
    from quantize.io import export
    from quantize.io.palettes import PaletteFormat
    from quantize.pipeline import quantize_image

    def encode(palette, shares, *, name, transparent_index):
        return "".join(f"{r} {g} {b}\n" for r, g, b in palette).encode()

    toy = export.ExportKind(
        name="toy_palette",
        label="Toy palette (.toy)",
        description="space-separated RGB",
        suffix=".toy",
        palette=PaletteFormat("toy", (".toy",), encode),
    )
    export.register_export_kind(toy, before="sidecar")
    try:
        rng = np.random.default_rng(2)
        result = quantize_image(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8), 3, seed=0)
        dialog = ExportDialog(result, "cup", str(tmp_path), kinds=("toy_palette",))
        qtbot.addWidget(dialog)
        assert list(dialog.checks) == list(export.EXPORT_KINDS)
        check = dialog.checks["toy_palette"]
        assert check.text() == "Toy palette (.toy)" and check.toolTip() == "space-separated RGB"
        assert dialog.checks["gpl"].text() == "GIMP palette (.gpl)"
        assert dialog.selected_kinds() == ["toy_palette"]
        assert [p.name for p in dialog.planned_files()] == ["cup.toy"]
        assert "cup.toy" in dialog.preview.toPlainText()
        written = dialog.export()
        assert written == [tmp_path / "cup.toy"]
        assert written[0].read_text().count("\n") == 3
    finally:
        export.unregister_export_kind("toy_palette")


def test_overwrite_question_lists_stale_masks_of_an_earlier_export(
    qtbot, window, small_png, tmp_path
):
    output = finished_window(qtbot, window, small_png)
    k = len(output.result.palette)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / f"cup.mask-{k + 2:02d}.png"  # as left by an export with more colours
    stale.write_bytes(b"earlier")
    dialog = export_dialog(qtbot, window, out, "binary_masks")
    asked = []
    dialog.confirm_overwrite = lambda existing: asked.append(existing) or False
    assert dialog.export() is None  # declined: nothing written, nothing removed
    assert stale in asked[0] and stale.read_bytes() == b"earlier"
    assert not any(p.name.startswith("cup.mask-00") for p in out.iterdir())
    dialog.confirm_overwrite = lambda existing: True
    written = dialog.export()
    assert written and not stale.exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)


def test_overlay_export_uses_the_overlay_views_opacity(qtbot, window, small_png, tmp_path):
    from quantize.io.overlay import overlay_image

    output = finished_window(qtbot, window, small_png)
    panel = window.segmentation
    panel.opacity.setValue(85)
    panel.outlines.setChecked(False)
    dialog = export_dialog(qtbot, window, tmp_path, "overlay_png")
    (written,) = dialog.export()
    with Image.open(written) as im:
        got = np.asarray(im.convert("RGB"))
    result = output.result
    expected = overlay_image(
        result.image, result.labels, result.palette, opacity=0.85, outlines=False
    )
    np.testing.assert_array_equal(got, expected)
    assert not np.array_equal(got, overlay_image(result.image, result.labels, result.palette))
