"""The event loop keeps turning while a 12-megapixel photo is quantized."""

from __future__ import annotations

import gc
import time
from dataclasses import replace

import numpy as np
import pytest
from apphelpers import FAST
from PIL import Image
from PySide6 import QtCore

from quantize.resources import sample_image_path

#: Longest tolerated pause of the GUI thread during a run (ms).
MAX_GAP_MS = 50.0


@pytest.fixture(scope="module")
def photo_12mp() -> np.ndarray:
    """The sample photo scaled to 4000 x 3000 (12 MP) with bicubic interpolation."""
    with Image.open(sample_image_path()) as im:
        big = im.convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    return np.asarray(big)


def _worst_gap_ms(qtbot, window) -> tuple[float, float, int]:
    """Run once with a 5 ms heartbeat; return (worst gap, p99 gap, beats) in ms."""
    beats: list[float] = []
    heartbeat = QtCore.QTimer()
    heartbeat.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(lambda: beats.append(time.perf_counter()))
    records = []
    window.run_started.connect(lambda _: records.append(time.perf_counter()))
    # Earlier tests' windows may still wait for the cyclic collector, and a collection that
    # tears down a widget tree holds the GUI thread for 100-200 ms: not this run's doing.
    gc.collect()
    heartbeat.start()
    qtbot.waitUntil(lambda: len(beats) >= 2, timeout=1000)
    with qtbot.waitSignal(window.run_finished, timeout=240_000) as blocker:
        window.start_run()
    # let the result be painted once, inside the measured window
    window.compare.right_view.repaint()
    beats.append(time.perf_counter())
    heartbeat.stop()
    output = blocker.args[0]
    assert output.quantized.shape == (3000, 4000, 3)
    assert window.compare.has_result()
    run_beats = np.array([b for b in beats if b >= records[-1] - 0.05])
    gaps_ms = np.diff(run_beats) * 1000.0
    assert len(gaps_ms) > 20, "the run was too short to measure anything"
    return float(gaps_ms.max()), float(np.percentile(gaps_ms, 99)), len(gaps_ms)


@pytest.mark.slow
def test_event_loop_never_blocked_during_12mp_run(qtbot, window, photo_12mp):
    assert window.open_array(photo_12mp, "photo-12mp.png")
    window.params.set_parameters(replace(FAST, n_colors=8, n_init=1, max_iter=30))
    worst, p99, n = _worst_gap_ms(qtbot, window)
    for _again in range(2):
        if worst < MAX_GAP_MS:
            break
        # The machine is a shared 2-core VM whose host also takes CPU time: a run's worst
        # pause is 25-45 ms and one run in six or so crosses 50 ms when the host is busy
        # (benchmarks/README.md, "The event loop during a run").  A GUI thread that blocks
        # (a long slot, a held interpreter lock) fails every run; the best of three must
        # stay under the limit throughout.
        worst, p99, n = _worst_gap_ms(qtbot, window)
    assert worst < MAX_GAP_MS, (
        f"GUI thread blocked for {worst:.1f} ms (beats: {n}, p99 {p99:.1f} ms)"
    )


def test_the_window_readies_the_process_for_runs_beside_the_gui(window):
    """Made by the app, its self-test or a test alike: the engine's own threads do the
    parallel work (BLAS keeps one), and the modules imported for runs are frozen out of the
    collector's full walks (0.1 s of held interpreter lock in the middle of a run)."""
    from threadpoolctl import threadpool_info

    assert gc.get_freeze_count() > 10_000
    blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and all(pool["num_threads"] == 1 for pool in blas)


def test_result_views_are_updated_one_step_per_turn_of_the_event_loop(qtbot, window):
    """Between two view updates the event loop's timers get a turn (input, repaints), so a
    result's views never add up to one long pause."""
    events: list[str] = []
    heartbeat = QtCore.QTimer()
    heartbeat.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
    heartbeat.setInterval(2)
    heartbeat.timeout.connect(lambda: events.append("beat"))

    def step(_output) -> None:
        start = time.perf_counter()
        while time.perf_counter() - start < 0.01:  # a view that takes 10 ms to update
            pass
        events.append("step")

    heartbeat.start()
    qtbot.waitUntil(lambda: "beat" in events, timeout=1000)
    events.clear()
    window._queue_views(None, [step] * 6)
    qtbot.waitUntil(lambda: events.count("step") == 6, timeout=5000)
    heartbeat.stop()
    steps = [i for i, event in enumerate(events) if event == "step"]
    gaps = [b - a for a, b in zip(steps[:-1], steps[1:], strict=True)]
    assert min(gaps) > 1, events  # a beat between every two steps
