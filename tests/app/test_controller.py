"""Run control without widgets: the RunController driven through its methods and signals."""

from __future__ import annotations

import io
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from apphelpers import FAST, RUN_TIMEOUT_MS, make_image
from PIL import Image
from PySide6 import QtWidgets

from app.controller import RunController
from app.model import OpenedImage, RunOutput, RunParameters, Stage, png_size_verdict
from app.tasks import prepare

#: A fit that runs for many seconds on the sample photo (cancelled by the tests).
SLOW = replace(FAST, method="gmm", init="random", n_colors=24, n_init=20, max_iter=2000, tol=1e-12)


def opened(image: np.ndarray | None = None, name: str = "test.png") -> OpenedImage:
    from quantize.io.load import from_array

    return prepare(from_array(make_image() if image is None else image, name=name), name)


def sample() -> OpenedImage:
    from quantize.io.load import load_image
    from quantize.resources import sample_image_path

    return prepare(load_image(sample_image_path()), "sample.jpg")


@pytest.fixture
def controller(qapp):
    switch_interval = sys.getswitchinterval()
    ctrl = RunController(FAST)
    yield ctrl
    assert ctrl.shutdown(5000), "a worker thread did not stop"
    assert not ctrl.is_running() and not ctrl.is_loading()
    assert sys.getswitchinterval() == switch_interval
    ctrl.deleteLater()


def test_no_widgets_are_involved(controller):
    assert isinstance(controller, RunController)
    assert not isinstance(controller, QtWidgets.QWidget)
    assert controller.findChildren(QtWidgets.QWidget) == []


def test_run_signals_come_in_order_with_their_payloads(qtbot, controller):
    events = []
    controller.starting.connect(lambda job: events.append(("starting", job)))
    controller.started.connect(lambda gen: events.append(("started", gen)))
    controller.record.connect(lambda rec: events.append(("record", rec)))
    controller.stage.connect(lambda text: events.append(("stage", text)))
    controller.progress.connect(lambda pct, text: events.append(("progress", pct)))
    controller.shown.connect(lambda out: events.append(("shown", out)))
    controller.finished.connect(lambda out: events.append(("finished", out)))
    image = opened()
    controller.set_image(image)
    assert controller.image() is image.loaded.pixels
    with qtbot.waitSignals(
        [controller.starting, controller.started, controller.finished],
        order="strict",
        timeout=RUN_TIMEOUT_MS,
    ):
        assert controller.start()
        assert controller.is_active()
    (job,) = [e[1] for e in events if e[0] == "starting"]
    (generation,) = [e[1] for e in events if e[0] == "started"]
    (output,) = [e[1] for e in events if e[0] == "finished"]
    assert job.params == FAST and job.image is image.loaded.pixels and job.previous is None
    assert generation == controller.generation
    assert isinstance(output, RunOutput) and output is controller.output()
    assert len(output.result.palette) == FAST.n_colors
    assert not controller.is_active()
    kinds = [e[0] for e in events]
    # records (the fit), then the stages after it, then the result; progress never goes back
    first_stage = kinds.index("stage")
    assert "record" in kinds[:first_stage] and "record" not in kinds[first_stage:]
    assert kinds[-1] == "finished" and kinds.count("finished") == 1
    assert [e[1] for e in events if e[0] == "stage"] == [
        "Rendering the palette image…",
        "Preparing soft maps…",
        "Computing metrics…",
    ]
    # the result is shown once, before its metrics are computed
    (shown,) = [e[1] for e in events if e[0] == "shown"]
    stages = [e for e in events if e[0] in ("stage", "shown")]
    assert [e[0] for e in stages] == ["stage", "stage", "shown", "stage"]
    assert shown.metrics is None and shown.metrics_pending and not output.metrics_pending
    assert output.metrics is not None and output.result is shown.result
    assert output.rendering is shown.rendering
    assert png_size_verdict(shown) == png_size_verdict(output)
    assert png_size_verdict(shown)[0].startswith("PNG ")
    percents = [e[1] for e in events if e[0] == "progress"]
    assert percents == sorted(percents) and percents[0] == 0 and percents[-1] < 100
    records = [e[1] for e in events if e[0] == "record"]
    assert controller.record_count == len(records) == len(output.result.records)


def test_no_image_no_run(controller):
    assert not controller.start()
    assert not controller.is_active() and not controller.is_running()


def test_a_second_start_drops_the_first_runs_result(qtbot, controller):
    controller.set_image(sample())
    controller.set_parameters(SLOW)
    first_generations = []
    controller.started.connect(first_generations.append)
    controller.start()
    qtbot.waitUntil(lambda: controller.record_count > 0, timeout=RUN_TIMEOUT_MS)
    first = controller.active_worker
    outputs = []
    controller.finished.connect(outputs.append)
    with qtbot.waitSignal(controller.finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert controller.start(FAST)  # the parameters changed mid-run: start again
        assert first.should_cancel()
        assert controller.active_worker is not first
    assert first_generations[0] < controller.generation
    qtbot.waitUntil(lambda: not controller.is_running(), timeout=5000)
    qtbot.wait(50)  # anything the first run still sent is dropped
    assert outputs == [blocker.args[0]]
    assert outputs[0].params == FAST


def test_what_a_superseded_run_already_sent_is_dropped(qtbot, controller):
    """The first run ends before its queued signals are delivered; a new start makes them stale."""
    controller.set_image(opened())
    controller.start(replace(FAST, seed=1))
    first = controller.active_worker
    assert first.wait(RUN_TIMEOUT_MS)  # finished: its records and result wait in the queue
    records, outputs = [], []
    controller.record.connect(records.append)
    controller.finished.connect(outputs.append)
    with qtbot.waitSignal(controller.finished, timeout=RUN_TIMEOUT_MS):
        controller.start(replace(FAST, seed=2))  # parameters changed before they arrived
    qtbot.waitUntil(lambda: not controller.is_running(), timeout=5000)
    qtbot.wait(50)
    assert [o.params.seed for o in outputs] == [2]
    assert controller.output() is outputs[0]
    assert len(records) == controller.record_count == len(outputs[0].result.records)
    assert all(any(r is s for s in outputs[0].result.records) for r in records)


def test_cancel_ends_the_run_and_leaves_no_thread(qtbot, controller):
    controller.set_image(sample())
    controller.set_parameters(SLOW)
    controller.start()
    qtbot.waitUntil(lambda: controller.record_count > 0, timeout=RUN_TIMEOUT_MS)
    finished = []
    controller.finished.connect(finished.append)
    start = time.perf_counter()
    with qtbot.waitSignals([controller.state_changed, controller.cancelled], order="strict"):
        assert controller.cancel()
    assert not controller.is_active()
    qtbot.waitUntil(lambda: not controller.is_running(), timeout=1000)
    assert time.perf_counter() - start < 1.0
    qtbot.waitUntil(lambda: controller.threads() == [], timeout=1000)  # cleaned up
    qtbot.wait(50)
    assert finished == [] and controller.output() is None
    assert not controller.cancel()  # nothing left to cancel: no second signal


def test_progress_reports_iterations_of_the_running_fit(qtbot, controller):
    controller.set_image(sample())
    controller.set_parameters(SLOW)
    with qtbot.waitSignal(
        controller.progress,
        timeout=RUN_TIMEOUT_MS,
        check_params_cb=lambda pct, text: "iteration" in text,
    ) as blocker:
        controller.start()
    percent, text = blocker.args
    assert 0 <= percent < 80
    assert "/20 · iteration" in text and "mean log-likelihood" in text
    controller.cancel()


def test_parameter_changes_rerun_once_after_a_quiet_moment(qtbot, qapp):
    params = {"value": FAST}
    ctrl = RunController(lambda: params["value"], rerun_delay_ms=100)
    try:
        ctrl.set_image(opened())  # auto-run is off: no run yet
        assert not ctrl.is_active()
        ctrl.set_auto_run(True)
        started = []
        ctrl.started.connect(started.append)
        for k in (3, 4, 5):
            params["value"] = replace(FAST, n_colors=k)
            ctrl.schedule_run()
        assert started == []  # debounced
        with qtbot.waitSignal(ctrl.finished, timeout=RUN_TIMEOUT_MS) as blocker:
            pass
        assert len(started) == 1
        assert len(blocker.args[0].result.palette) == 5  # read when the run started
        ctrl.set_auto_run(False)
        ctrl.schedule_run()
        qtbot.wait(200)
        assert len(started) == 1
        # with auto-run on, a new image starts a run by itself
        ctrl.set_auto_run(True)
        with qtbot.waitSignal(ctrl.finished, timeout=RUN_TIMEOUT_MS):
            ctrl.set_image(opened(make_image(seed=2)))
    finally:
        assert ctrl.shutdown(5000)


def test_a_new_image_stops_the_run_and_clears_the_output(qtbot, controller):
    controller.set_image(opened())
    with qtbot.waitSignal(controller.finished, timeout=RUN_TIMEOUT_MS):
        controller.start()
    assert controller.output() is not None
    controller.set_image(sample())
    controller.set_parameters(SLOW)
    controller.start()
    worker = controller.active_worker
    new = opened(make_image(seed=3))
    with qtbot.waitSignal(controller.image_set) as blocker:
        controller.set_image(new, "context")
    assert blocker.args[0] is new and blocker.args[1] == "context"
    assert worker.should_cancel() and not controller.is_active()
    assert controller.output() is None and controller.opened() is new


def test_only_dithering_changed_reuses_the_fit(qtbot, controller):
    controller.set_image(opened())
    with qtbot.waitSignal(controller.finished, timeout=RUN_TIMEOUT_MS) as first:
        controller.start()
    texts = []
    controller.progress.connect(lambda pct, text: texts.append(text))
    with qtbot.waitSignal(controller.starting) as starting:
        with qtbot.waitSignal(controller.finished, timeout=RUN_TIMEOUT_MS) as second:
            controller.start(replace(FAST, dither="fs"))
    assert starting.args[0].previous is first.args[0].result
    assert second.args[0].result is first.args[0].result
    assert texts[0] == "Re-rendering with the new dithering…"
    assert controller.record_count == 0


def test_a_rerun_of_the_same_image_reuses_its_distinct_colours(qtbot, controller):
    from quantize.features import unique_colors

    first_image = opened()
    controller.set_image(first_image)
    with qtbot.waitSignal(controller.starting) as starting:
        with qtbot.waitSignal(controller.finished, timeout=RUN_TIMEOUT_MS) as first:
            controller.start()
    assert starting.args[0].table is None  # the first run finds them
    table = first.args[0].result.table
    with qtbot.waitSignal(controller.starting) as starting:
        with qtbot.waitSignal(controller.finished, timeout=RUN_TIMEOUT_MS) as second:
            controller.start(replace(FAST, n_colors=FAST.n_colors + 1, color_space="oklab"))
    assert starting.args[0].table is table
    result = second.args[0].result
    assert result.table is table and len(result.palette) == FAST.n_colors + 1
    fresh = unique_colors(first_image.loaded.pixels)  # what the table must still be
    assert np.array_equal(table.colors, fresh.colors)
    assert np.array_equal(table.counts, fresh.counts)
    assert np.array_equal(table.inverse, fresh.inverse)
    # another image: its own colours, not the last run's
    other = opened(make_image(seed=5))
    controller.set_image(other)
    with qtbot.waitSignal(controller.starting) as starting:
        with qtbot.waitSignal(controller.finished, timeout=RUN_TIMEOUT_MS) as third:
            controller.start()
    assert starting.args[0].table is None
    assert np.array_equal(
        third.args[0].result.table.colors, unique_colors(other.loaded.pixels).colors
    )


def test_failure_is_reported_once_with_details(qtbot, qapp):
    def broken(job, should_cancel):
        yield Stage("about to fail")
        raise RuntimeError("engine exploded on purpose")

    ctrl = RunController(FAST, pipeline=broken)
    try:
        ctrl.set_image(opened())
        with qtbot.waitSignal(ctrl.failed, timeout=RUN_TIMEOUT_MS) as blocker:
            ctrl.start()
        message, details = blocker.args
        assert message == "RuntimeError: engine exploded on purpose"
        assert "Traceback" in details
        assert not ctrl.is_active() and ctrl.output() is None
    finally:
        assert ctrl.shutdown(5000)


def test_loads_on_a_thread_newest_wins(qtbot, controller, tmp_path, small_png):
    other = tmp_path / "other.png"
    Image.fromarray(make_image(seed=5)).save(other)
    names = []
    controller.image_set.connect(lambda image, context: names.append((image.name, context)))
    controller.load(small_png, "a")
    controller.load(other, "b")
    qtbot.waitUntil(lambda: not controller.is_loading(), timeout=10_000)
    qtbot.waitUntil(lambda: names != [], timeout=10_000)
    qtbot.wait(20)
    assert names == [("other.png", "b")]
    assert controller.image().shape == (48, 64, 3)
    # a failing load names the file; the current image stays
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with qtbot.waitSignal(controller.open_failed, timeout=10_000) as blocker:
        controller.load(bad, "c")
    path, message, context = blocker.args
    assert path == str(bad) and "broken.png" in message and context == "c"
    assert controller.opened().name == "other.png"
    # an image set meanwhile supersedes a pending load
    controller.load(small_png, "d")
    controller.set_image(opened(name="pasted"))
    qtbot.waitUntil(lambda: controller.threads() == [], timeout=10_000)
    qtbot.wait(20)
    assert controller.opened().name == "pasted"
    assert [n for n, _ in names] == ["other.png", "pasted"]


def test_parameters_source(qapp):
    ctrl = RunController()
    assert ctrl.parameters() == RunParameters()
    ctrl.set_parameters(FAST)
    assert ctrl.parameters() == FAST
    ctrl.set_parameters(lambda: replace(FAST, seed=9))
    assert ctrl.parameters().seed == 9
    ctrl.deleteLater()


def _drain(gen):
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


@pytest.mark.parametrize("dither", ["none", "fs"])
def test_the_palette_image_is_the_rendering_the_png_holds(dither):
    from app.model import RunJob
    from app.tasks import run_pipeline

    image = make_image(seed=4)
    params = replace(FAST, n_colors=5, dither=dither)
    out = _drain(run_pipeline(RunJob(image, params), lambda: False))
    indices, png = out.rendering
    palette = np.asarray(out.result.palette, np.uint8)
    np.testing.assert_array_equal(out.quantized[..., :3], palette[indices])
    with Image.open(io.BytesIO(png)) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), palette[indices])


def test_a_rendering_that_fails_before_its_indices_fails_the_run(monkeypatch):
    import quantize.metrics
    from app.model import RunJob
    from app.tasks import run_pipeline

    def broken(result, **kwargs):
        raise MemoryError("no room for the palette image")

    monkeypatch.setattr(quantize.metrics, "render_indexed", broken)
    params = replace(FAST, n_colors=4)
    with pytest.raises(MemoryError, match="no room"):  # raised, not waited for forever
        _drain(run_pipeline(RunJob(make_image(), params), lambda: False))
