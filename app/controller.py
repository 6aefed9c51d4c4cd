"""Run control without widgets: the current image, runs and loads on worker threads.

:class:`RunController` owns what the window shows results of: the opened image, the running
fit and the last output.  It starts runs (each on a :class:`~app.workers.Worker`), cancels
them, forwards their progress, re-runs after parameter changes (debounced), opens files on a
worker thread, and ends every thread on :meth:`RunController.shutdown`.

Every run gets a *generation*; starting a run, cancelling, or setting a new image moves the
generation on, so whatever an older run still delivers (records, stages, its result or its
failure) is dropped.  Opens work the same way with a *ticket*: only the newest open counts.

The controller has no widgets: a window (or a test) connects to its signals and calls its
methods; the run parameters come from :meth:`RunController.set_parameters`, a fixed
:class:`~app.model.RunParameters` or a callable read when each run starts (the window passes
its panel's ``parameters``).
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Generator
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from PySide6 import QtCore

import app._compat  # noqa: F401  (PySide6 6.12 emit refcount bug, see module)
from app import tasks
from app.model import (
    OpenedImage,
    RunJob,
    RunOutput,
    RunParameters,
    Shown,
    Stage,
    describe_record,
    only_rendering_changed,
)
from app.progress import RunProgress
from app.workers import Worker
from quantize.cluster.registry import get_method

__all__ = [
    "RunController",
    "RUN_SWITCH_INTERVAL_S",
    "RERUN_DELAY_MS",
    "PROGRESS_INTERVAL_MS",
]

#: Interpreter switch interval (s) while a run's thread lives: the GUI thread waits at most
#: this long for the GIL when the worker runs Python code (CPython's default is 5 ms).
RUN_SWITCH_INTERVAL_S = 0.001
#: Debounce delay (ms) between a parameter change and the automatic re-run.
RERUN_DELAY_MS = 400
#: How often (ms) the progress of a running fit is reported.
PROGRESS_INTERVAL_MS = 200

Pipeline = Callable[[RunJob, Callable[[], bool]], Generator[Any, None, RunOutput]]


def _describe_open_error(path: Path, exc: BaseException) -> tuple[str, str]:
    """Message naming the file, and details, of a failed open (inside the ``except``)."""
    from quantize.io.load import LoadError

    if isinstance(exc, LoadError):
        return str(exc), ""
    return f"{path.name}: {type(exc).__name__}: {exc}", traceback.format_exc()


class RunController(QtCore.QObject):
    """Runs, cancels and reports quantizations of the current image; opens images.

    Signals (all emitted on the GUI thread, only for the current run or open):

    - ``image_set(opened, context)``: a new current image (:class:`~app.model.OpenedImage`);
      ``context`` is what :meth:`load` or :meth:`set_image` was given.
    - ``open_failed(path, message, context)``: the newest :meth:`load` failed.
    - ``starting(job)``: a run's :class:`~app.model.RunJob`, before its thread starts.
    - ``started(generation)``: the run's thread started.
    - ``record(record)``: an :class:`~quantize.protocol.IterationRecord` of the run.
    - ``stage(text)``: the run moved past the fit (rendering, soft maps, metrics).
    - ``progress(percent, text)``: status of the run (0–99 while it runs).
    - ``shown(output)``: the run's result is rendered (a :class:`~app.model.RunOutput`
      without metrics, ``metrics_pending``); :meth:`output` returns it from now on.
    - ``finished(output)``: the run's :class:`~app.model.RunOutput`, metrics included.
    - ``failed(message, details)``: the run raised.
    - ``cancelled()``: :meth:`cancel` stopped the run.
    - ``state_changed()``: image, output or whether a run is active changed.

    Parameters
    ----------
    parameters : RunParameters or callable, optional
        Parameters of the coming runs, or a callable returning them when a run starts
        (default ``RunParameters()``).
    parent : QObject, optional
        Parent object.
    pipeline : callable, optional
        ``pipeline(job, should_cancel)`` generator of records and stages returning the
        output (default :func:`app.tasks.run_pipeline`).
    rerun_delay_ms : int, optional
        Debounce of :meth:`schedule_run`.
    """

    image_set = QtCore.Signal(object, object)
    open_failed = QtCore.Signal(str, str, object)
    starting = QtCore.Signal(object)
    started = QtCore.Signal(int)
    record = QtCore.Signal(object)
    stage = QtCore.Signal(str)
    progress = QtCore.Signal(int, str)
    shown = QtCore.Signal(object)
    finished = QtCore.Signal(object)
    failed = QtCore.Signal(str, str)
    cancelled = QtCore.Signal()
    state_changed = QtCore.Signal()

    def __init__(
        self,
        parameters: RunParameters | Callable[[], RunParameters] | None = None,
        parent: QtCore.QObject | None = None,
        *,
        pipeline: Pipeline | None = None,
        rerun_delay_ms: int = RERUN_DELAY_MS,
    ) -> None:
        super().__init__(parent)
        self._parameters: Callable[[], RunParameters] = lambda: RunParameters()
        if parameters is not None:
            self.set_parameters(parameters)
        self._pipeline = pipeline
        self._opened: OpenedImage | None = None
        self._output: RunOutput | None = None
        self._importance: np.ndarray | None = None  # the painted map, see set_importance
        self._generation = 0
        self._worker: Worker | None = None  # the current run (None: no run active)
        self._job: RunJob | None = None
        self._workers: list[Worker] = []  # every run thread still alive
        self._loaders: list[Worker] = []
        self._load_ticket = 0
        self._load_requests: dict[int, tuple[Path, Any]] = {}
        self._last_record: Any = None
        self._record_count = 0
        self._percent = 0
        self._estimate: RunProgress | None = None
        self._stage_text = ""
        self._auto_run = False
        self._saved_switch_interval: float | None = None

        self._rerun_timer = QtCore.QTimer(self)
        self._rerun_timer.setSingleShot(True)
        self._rerun_timer.setInterval(rerun_delay_ms)
        self._rerun_timer.timeout.connect(self._auto_rerun)
        self._progress_timer = QtCore.QTimer(self)
        self._progress_timer.setInterval(PROGRESS_INTERVAL_MS)
        self._progress_timer.timeout.connect(self._report_progress)

    # ================================================================== state
    @property
    def generation(self) -> int:
        """The current run generation; results of other generations are dropped."""
        return self._generation

    @property
    def record_count(self) -> int:
        """Number of iteration records the current (or last) run delivered."""
        return self._record_count

    @property
    def active_worker(self) -> Worker | None:
        """The thread of the current run, or ``None`` when no run is active."""
        return self._worker

    def is_active(self) -> bool:
        """Return whether a run is going whose result will be used.

        Returns
        -------
        active : bool
            ``True`` between :meth:`start` and its result, failure or cancellation.
        """
        return self._worker is not None

    def run_pending(self) -> bool:
        """Return whether an automatic re-run is scheduled (parameters changed moments ago).

        Returns
        -------
        pending : bool
        """
        return self._rerun_timer.isActive()

    def is_running(self) -> bool:
        """Return whether any run thread is still alive (including cancelled ones).

        Returns
        -------
        running : bool
            ``True`` while a run thread runs.
        """
        return any(w.isRunning() for w in self._workers)

    def is_loading(self) -> bool:
        """Return whether a file is being decoded on a worker thread.

        Returns
        -------
        loading : bool
            ``True`` while a loader thread runs.
        """
        return any(w.isRunning() for w in self._loaders)

    def threads(self) -> list[QtCore.QThread]:
        """Return the run and loader threads not yet cleaned up.

        Returns
        -------
        threads : list of QThread
            Runs first, then loaders.
        """
        return [*self._workers, *self._loaders]

    def opened(self) -> OpenedImage | None:
        """Return the current image and its display data.

        Returns
        -------
        opened : OpenedImage or None
            ``None`` before an image was set.
        """
        return self._opened

    def image(self) -> np.ndarray | None:
        """Return the current image's pixels.

        Returns
        -------
        pixels : ndarray of shape (M, N, 3|4) or None
            The pixels runs quantize.
        """
        return None if self._opened is None else self._opened.loaded.pixels

    def output(self) -> RunOutput | None:
        """Return the last finished run's output (``None`` after a new image).

        Returns
        -------
        output : RunOutput or None
            Latest result and its display data.
        """
        return self._output

    def parameters(self) -> RunParameters:
        """Return the parameters the next run would use.

        Returns
        -------
        params : RunParameters
            Read now from what :meth:`set_parameters` was given.
        """
        return self._parameters()

    def set_parameters(self, parameters: RunParameters | Callable[[], RunParameters]) -> None:
        """Set the parameters of the coming runs (does not start or schedule a run).

        Parameters
        ----------
        parameters : RunParameters or callable
            Fixed parameters, or a callable returning them, called when a run starts.
        """
        if isinstance(parameters, RunParameters):
            self._parameters = lambda: parameters
        else:
            self._parameters = parameters

    @property
    def auto_run(self) -> bool:
        """Whether a new image and parameter changes start runs by themselves."""
        return self._auto_run

    def set_auto_run(self, on: bool) -> None:
        """Turn automatic runs on or off (off also drops a pending re-run).

        Parameters
        ----------
        on : bool
            Whether :meth:`set_image` and :meth:`schedule_run` start runs.
        """
        self._auto_run = bool(on)
        if not on:
            self._rerun_timer.stop()

    # ================================================================== images
    def set_image(self, opened: OpenedImage, context: Any = None) -> None:
        """Make ``opened`` the current image; stops the current run and any pending open.

        Emits ``image_set`` and, with automatic runs on, starts a run.

        Parameters
        ----------
        opened : OpenedImage
            The image (e.g. from :func:`app.tasks.open_file` or :func:`app.tasks.prepare`).
        context : object, optional
            Passed on with ``image_set``.
        """
        self._load_ticket += 1  # supersedes any file still loading
        self._cancel_current()
        self._opened = opened
        self._output = None
        self._importance = None  # painted for the previous image
        self.image_set.emit(opened, context)
        self.state_changed.emit()
        if self._auto_run:
            self.start()

    def load(self, path: str | Path, context: Any = None) -> None:
        """Open an image file on a worker thread; a newer load or image supersedes it.

        ``image_set`` (through :meth:`set_image`) or ``open_failed`` follows.

        Parameters
        ----------
        path : str or Path
            Image file.
        context : object, optional
            Passed on with ``image_set`` or ``open_failed``.
        """
        path = Path(path)
        self._load_ticket += 1
        ticket = self._load_ticket
        self._load_requests[ticket] = (path, context)
        loader = Worker(
            lambda _should_cancel: tasks.open_file(path),
            ticket,
            describe_error=partial(_describe_open_error, path),
            parent=self,
        )
        loader.succeeded.connect(self._on_loaded)
        loader.failed.connect(self._on_load_failed)
        loader.finished.connect(self._on_loader_finished)
        self._loaders.append(loader)
        loader.start()

    def cancel_loads(self) -> None:
        """Forget every pending :meth:`load`: what those threads still deliver is dropped."""
        self._load_ticket += 1

    def _on_loaded(self, ticket: int, opened: OpenedImage) -> None:
        request = self._load_requests.pop(ticket, None)
        if ticket != self._load_ticket or request is None:  # superseded by a newer open
            return
        self.set_image(opened, request[1])

    def _on_load_failed(self, ticket: int, message: str, details: str) -> None:
        request = self._load_requests.pop(ticket, None)
        if ticket == self._load_ticket and request is not None:
            self.open_failed.emit(str(request[0]), message, request[1])

    def _on_loader_finished(self) -> None:
        loader = self.sender()
        if not isinstance(loader, Worker):
            return
        self._load_requests.pop(loader.key, None)
        if loader in self._loaders:
            self._loaders.remove(loader)
        loader.deleteLater()

    # ================================================================== runs
    def set_importance(self, importance: np.ndarray | None) -> None:
        """Weight the next fits with an importance map (None: every pixel the same).

        Parameters
        ----------
        importance : ndarray of shape (M, N), uint8, or None
            0 ignore ... 255 most important, the current image's size.
        """
        self._importance = importance

    def start(
        self,
        params: RunParameters | None = None,
        *,
        result: Any = None,
        overrides: dict[str, Any] | None = None,
    ) -> bool:
        """Start quantizing the current image (cancelling any running fit).

        When only the dithering or the palette order differs from the last output's
        parameters, its fit is reused and only re-rendered.

        Parameters
        ----------
        params : RunParameters, optional
            Parameters of this run (default :meth:`parameters`).
        result : QuantizeResult, optional
            Show this result of the current image (an edited palette) instead of fitting.
        overrides : dict, optional
            Extra engine arguments of the fit (``init``, ``locked``, ``importance``; see
            :class:`~app.model.RunJob`).

        Returns
        -------
        started : bool
            ``False`` if there is no image.
        """
        self._rerun_timer.stop()
        if self._opened is None:
            return False
        self._cancel_current()
        generation = self._generation
        params = self.parameters() if params is None else params
        loaded = self._opened.loaded
        previous = self._output
        # the last output, when only the rendering changed: its fit is reused
        reused = (
            previous.result
            if previous is not None
            and not overrides
            and previous.result.image is loaded.pixels
            and only_rendering_changed(previous.params, params)
            else None
        )
        if result is not None:
            if result.image is not loaded.pixels:
                return False  # an edit of an image no longer open
            reused = result
        importance = self._importance
        if importance is not None and importance.shape == loaded.pixels.shape[:2]:
            overrides = {"importance": importance, **(overrides or {})}
        reuse = reused is not None
        # the image's distinct colours, found by the last run of this image
        table = (
            previous.result.table
            if previous is not None and previous.result.image is loaded.pixels
            else None
        )
        job = RunJob(
            image=loaded.pixels,
            params=params,
            original_bytes=loaded.file_size or None,
            previous=reused,
            overrides=dict(overrides) if overrides else None,
            table=table,
        )
        pipeline = self._pipeline or tasks.run_pipeline
        worker = Worker(lambda should_cancel: pipeline(job, should_cancel), generation, parent=self)
        worker.yielded.connect(self._on_item)
        worker.succeeded.connect(self._on_succeeded)
        worker.failed.connect(self._on_failed)
        worker.finished.connect(self._on_run_thread_finished)
        self._worker = worker
        self._job = job
        self._workers.append(worker)
        self._last_record = None
        self._record_count = 0
        self._percent = 0
        self._estimate = RunProgress(params, get_method(params.method).iterative)
        self._stage_text = ""
        self.starting.emit(job)
        self.progress.emit(
            0,
            "Showing the edited palette…"
            if result is not None
            else "Re-rendering with the new dithering…"
            if reuse
            else "Starting…",
        )
        self._progress_timer.start()
        if self._saved_switch_interval is None:
            self._saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._saved_switch_interval, RUN_SWITCH_INTERVAL_S))
        worker.start()
        self.state_changed.emit()
        self.started.emit(generation)
        return True

    def cancel(self) -> bool:
        """Cancel the running fit; whatever it still delivers is dropped.

        Returns
        -------
        cancelled : bool
            ``False`` when no run was active (then nothing is emitted).
        """
        if self._worker is None:
            return False
        self._cancel_current()
        self.state_changed.emit()
        self.cancelled.emit()
        return True

    def schedule_run(self) -> None:
        """Start a run after a quiet moment, if automatic runs are on and there is an image.

        Each call restarts the delay, so a burst of parameter changes gives one run.
        """
        if self._auto_run and self._opened is not None:
            self._rerun_timer.start()

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel every run, forget pending opens and wait for every thread to end.

        Parameters
        ----------
        timeout_ms : int, optional
            How long to wait per thread.

        Returns
        -------
        clean : bool
            ``True`` if every thread ended.
        """
        self._rerun_timer.stop()
        self._progress_timer.stop()
        self._cancel_current()
        self._load_ticket += 1
        clean = True
        for loader in list(self._loaders):
            clean = loader.wait(timeout_ms) and clean
        for worker in list(self._workers):
            worker.request_cancel()
            clean = worker.wait(timeout_ms) and clean
        self._restore_switch_interval()
        return clean

    # ================================================================== internals
    def _cancel_current(self) -> None:
        """Stop the current run (if any) and make everything still pending from it stale."""
        if self._worker is not None:
            self._worker.request_cancel()
            self._worker = None
        self._job = None
        self._generation += 1
        self._progress_timer.stop()

    def _auto_rerun(self) -> None:
        if self._auto_run and self._opened is not None:
            self.start()

    def _on_item(self, generation: int, item: Any) -> None:
        if generation != self._generation:
            return
        if isinstance(item, Shown):  # the result, before its metrics: show it now
            self._output = item.output
            self.shown.emit(item.output)
            self.state_changed.emit()
        elif isinstance(item, Stage):
            self._last_record = None
            self._stage_text = item.text
            if self._estimate is not None:
                self._estimate.stage()
            self.stage.emit(item.text)
        else:
            self._last_record = item
            if self._estimate is not None:
                self._estimate.record(item)
            self._record_count += 1
            self.record.emit(item)

    def _report_progress(self) -> None:
        if self._job is None or self._estimate is None:
            return
        record = self._last_record
        text = describe_record(record, self._job.params)[1] if record is not None else ""
        text = text or self._stage_text
        self._percent, eta = self._estimate.tick()
        self.progress.emit(self._percent, f"{text} · {eta}" if eta and text else text or eta)

    def _on_succeeded(self, generation: int, output: RunOutput) -> None:
        if generation != self._generation:
            return
        self._worker = None
        self._job = None
        self._progress_timer.stop()
        self._percent = 100
        self._output = output
        self.finished.emit(output)
        self.state_changed.emit()

    def _on_failed(self, generation: int, message: str, details: str) -> None:
        if generation != self._generation:
            return
        self._worker = None
        self._job = None
        self._progress_timer.stop()
        self.state_changed.emit()
        self.failed.emit(message, details)

    def _on_run_thread_finished(self) -> None:
        worker = self.sender()
        if not isinstance(worker, Worker):
            return
        if worker in self._workers:
            self._workers.remove(worker)
        if not self._workers:
            self._restore_switch_interval()
        if worker is self._worker:  # ended without a result (cancelled by the task itself)
            self._worker = None
            self._job = None
            self._progress_timer.stop()
        worker.deleteLater()
        self.state_changed.emit()

    def _restore_switch_interval(self) -> None:
        if self._saved_switch_interval is not None:
            sys.setswitchinterval(self._saved_switch_interval)
            self._saved_switch_interval = None
