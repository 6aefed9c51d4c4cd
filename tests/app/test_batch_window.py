"""The Batch window: files listed, the run on vq batch's machinery, status, cancel."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6 import QtWidgets

from app.batch_window import BatchWindow, matching_files
from quantize.cli import main

pytestmark = pytest.mark.slow


def photo(path: Path, seed: int, size: int = 40) -> Path:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    base = np.stack([x, y, 1 - x * y], -1) * rng.uniform(120, 250, 3)
    img = np.clip(base + rng.normal(0, 10, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


@pytest.fixture
def boxes(monkeypatch):
    """Message boxes are recorded, not shown (they would block the test)."""
    shown: list[tuple[str, str]] = []
    for kind in ("warning", "critical"):
        monkeypatch.setattr(
            QtWidgets.QMessageBox,
            kind,
            staticmethod(lambda parent, title, text, *a, k=kind: shown.append((k, text))),
        )
    return shown


@pytest.fixture
def batch(qtbot):
    win = BatchWindow()
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    assert win.worker is None


def folder_of_photos(root: Path, n: int) -> Path:
    folder = root / "in"
    folder.mkdir()
    for i in range(n):
        photo(folder / f"p{i}.png", i)
    (folder / "notes.txt").write_text("not an image")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return folder


def run_to_end(qtbot, win: BatchWindow, timeout: int = 60_000) -> int:
    with qtbot.waitSignal(win.finished, timeout=timeout) as blocker:
        win.start_button.click()
    qtbot.waitUntil(lambda: win.worker is None, timeout=10_000)
    return int(blocker.args[0])


def test_pattern_lists_the_files(tmp_path):
    folder = folder_of_photos(tmp_path, 2)
    assert [p.name for p in matching_files(folder, "*.PNG")] == ["broken.png", "p0.png", "p1.png"]
    assert [p.name for p in matching_files(folder, "*.txt, p1.*")] == ["notes.txt", "p1.png"]
    assert matching_files(tmp_path / "missing", "*") == []


def test_a_run_in_this_process_reports_each_file(qtbot, batch, boxes, tmp_path):
    folder = folder_of_photos(tmp_path, 3)
    batch.in_edit.setText(str(folder))
    batch.out_edit.setText(str(tmp_path / "out"))
    assert batch.table.rowCount() == 4 and batch.start_button.isEnabled()
    batch.k_spin.setValue(5)
    batch.workers_spin.setValue(1)
    assert run_to_end(qtbot, batch) == 3  # the broken file: an unreadable input
    statuses = {batch.files[r].name: batch.status_of(r) for r in range(4)}
    assert statuses == {
        "broken.png": "failed",
        "p0.png": "done",
        "p1.png": "done",
        "p2.png": "done",
    }
    assert "broken.png" in batch.table.item(0, 2).text()
    assert len(boxes) == 1 and "1 of 4 files" in boxes[0][1] and "broken.png" in boxes[0][1]
    assert batch.progress.value() == 4
    # the same files as the command line writes
    inputs = [str(folder / f"p{i}.png") for i in range(3)]
    argv = ["batch", *inputs, "-o", str(tmp_path / "cli")]
    assert main([*argv, "-k", "5", "-j", "1", "-q"]) == 0
    for i in range(3):
        name = f"p{i}.png"
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes()
    # run again: the results exist and are skipped (the default)
    boxes.clear()
    assert run_to_end(qtbot, batch) == 3
    assert [batch.status_of(r) for r in range(1, 4)] == ["skipped"] * 3


def test_a_local_cluster_run_with_a_shared_palette(qtbot, batch, boxes, tmp_path):
    folder = folder_of_photos(tmp_path, 3)
    (folder / "broken.png").unlink()
    batch.in_edit.setText(str(folder))
    batch.out_edit.setText(str(tmp_path / "out"))
    batch.k_spin.setValue(6)
    batch.workers_spin.setValue(2)
    batch.shared_check.setChecked(True)
    assert run_to_end(qtbot, batch) == 0
    assert [batch.status_of(r) for r in range(3)] == ["done"] * 3
    assert "local Dask cluster (2 worker processes)" in batch.status_label.text() or (
        "Finished" in batch.status_label.text()
    )
    palettes = set()
    for i in range(3):
        with Image.open(tmp_path / "out" / f"p{i}.png") as im:
            palettes.add(tuple(sorted(map(tuple, np.asarray(im.getpalette()).reshape(-1, 3)))))
    assert len(palettes) == 1  # one palette for every file
    assert boxes == []
    batch.resize(820, 640)
    shot = batch.grab()
    assert not shot.isNull() and shot.width() >= 820


@pytest.mark.parametrize("workers", [1, 2], ids=["in this process", "local cluster"])
def test_cancel_stops_soon_and_leaves_nothing_partial(qtbot, batch, boxes, tmp_path, workers):
    folder = tmp_path / "in"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(8):  # noise: every fit takes a while
        Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)).save(
            folder / f"n{i}.png"
        )
    batch.in_edit.setText(str(folder))
    batch.out_edit.setText(str(tmp_path / "out"))
    batch.k_spin.setValue(32)
    batch.workers_spin.setValue(workers)
    with qtbot.waitSignal(batch.finished, timeout=60_000) as blocker:
        batch.start_button.click()
        qtbot.waitUntil(lambda: "done" in map(batch.status_of, range(8)), timeout=60_000)
        cancelled_at = time.monotonic()
        batch.cancel_button.click()
    assert time.monotonic() - cancelled_at < 8.0  # a fit stops at its next iteration
    assert blocker.args == [130]
    qtbot.waitUntil(lambda: batch.worker is None, timeout=10_000)
    statuses = [batch.status_of(r) for r in range(8)]
    assert "done" in statuses and statuses[-1] == "not processed", statuses
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == [f"n{i}.png" for i in range(8) if statuses[i] == "done"]  # no .part
    assert "Cancelled" in batch.status_label.text()
    assert batch.start_button.isEnabled() and batch.in_edit.isEnabled()


def test_a_file_written_as_the_batch_was_cancelled_shows_as_done(batch, tmp_path):
    # a worker can put a file in place just before the cancel reaches it, its summary lost:
    # vq batch reports the file without one, and the row must not say "not processed"
    folder = folder_of_photos(tmp_path, 2)
    batch.in_edit.setText(str(folder))
    row = [batch.files[r].name for r in range(len(batch.files))].index("p1.png")
    out = str(tmp_path / "out" / "p1.png")
    batch._on_report(row, {"ok": True, "written_without_summary": True, "outputs": [out]})
    assert batch.status_of(row) == "done"
    assert batch.table.item(row, 2).text() == "written as it was cancelled → p1.png"
    batch._on_cancelled(0)
    assert batch.status_of(row) == "done" and "1 done" in batch.status_label.text()


def test_the_file_menu_opens_the_batch_window(qtbot, window):
    window.batch_action.trigger()
    assert window.batch_window.isVisible()
    assert window.batch_window.workers_spin.value() >= 1
    window.batch_window.close()


def test_the_settings_become_vq_batch_arguments(batch, tmp_path):
    folder = folder_of_photos(tmp_path, 1)
    batch.in_edit.setText(str(folder))
    batch.out_edit.setText(str(tmp_path / "out"))
    batch.k_spin.setValue(12)
    batch.shared_check.setChecked(True)
    batch.existing_combo.setCurrentIndex(batch.existing_combo.findData("force"))
    batch.scheduler_edit.setText(" tcp://head:8786 ")
    argv = batch.argv()
    assert argv[:3] == ["batch", str(folder / "broken.png"), str(folder / "p0.png")]
    assert argv[argv.index("-o") + 1] == str(tmp_path / "out")
    assert argv[argv.index("-k") + 1] == "12" and "--shared-palette" in argv
    assert argv[argv.index("--scheduler") + 1] == "tcp://head:8786" and "--jobs" not in argv
    assert "--force" in argv and "--skip-existing" not in argv
    from quantize.cli import build_parser

    args = build_parser().parse_args(argv)  # the command accepts what the window builds
    assert args.scheduler == "tcp://head:8786" and args.colors == 12
    batch.scheduler_edit.clear()
    batch.workers_spin.setValue(3)
    assert batch.argv()[batch.argv().index("--jobs") + 1] == "3"
