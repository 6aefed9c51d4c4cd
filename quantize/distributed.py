"""Run many independent tasks on Dask: a LocalCluster by default, or an existing cluster.

``vq batch`` and the desktop app's Batch window submit their per-file (or per-chunk) work
here.  The conventions are those of the Dask tools: with no address a
``distributed.LocalCluster`` of worker *processes* (one thread each, one per core by default)
is started and closed again; ``--scheduler tcp://HOST:8786``, the ``DASK_SCHEDULER_ADDRESS``
environment variable or ``--scheduler-file FILE`` connect to a running scheduler instead
(which is left running).

What a task computes never depends on where it runs: tasks are pure functions of their inputs
and seed, the workers run one thread each with single-threaded BLAS (Dask's pre-spawn
environment), and results are collected by input index, so a 1-worker and an N-worker run
write the same bytes.  A worker that dies mid-task (killed, out of memory) makes the scheduler
run its tasks again elsewhere (``distributed.scheduler.allowed-failures`` times).

Cancellation is cooperative and immediate for queued work: :meth:`Cluster.cancel` sets a
Dask ``Event`` that every task checks when it starts (then it does nothing) and while it runs
(through :func:`cancel_requested`, polled by the fit between iterations), cancels the
futures that have not reached a worker, and waits a short grace period for the running ones.

Dask is imported only when a :class:`Cluster` is entered: importing this module is cheap
(``vq quantize`` never pays for Dask).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SCHEDULER_ENV",
    "Cluster",
    "ClusterChoice",
    "TaskOutcome",
    "cancel_requested",
    "cancel_scope",
    "choose_cluster",
    "default_workers",
]

#: The environment variable the Dask tools read for a scheduler address.
SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
#: How often (s) a running task asks the scheduler whether the run was cancelled: a round
#: trip costs about a millisecond locally, so polling at most this often costs < 1 %.
_POLL_S = 0.25
#: How long to try to reach a scheduler before giving up (a refused connection is retried).
CONNECT_TIMEOUT_S = 10.0


def default_workers() -> int:
    """Return one worker per core this process may run on.

    Returns
    -------
    n : int
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ClusterChoice:
    """Where the tasks run.

    Attributes
    ----------
    kind : {"local", "address", "file"}
        A new LocalCluster, a scheduler address, or a scheduler file.
    target : str
        The address or the file ("" for a local cluster).
    n_workers : int
        Worker processes of a local cluster (ignored otherwise).
    """

    kind: str
    target: str
    n_workers: int

    def describe(self) -> str:
        """Say where the tasks run, for messages.

        Returns
        -------
        text : str
        """
        if self.kind == "local":
            plural = "es" if self.n_workers != 1 else ""
            return f"local Dask cluster ({self.n_workers} worker process{plural})"
        if self.kind == "file":
            return f"Dask scheduler of {self.target}"
        return f"Dask scheduler at {self.target}"


def choose_cluster(
    scheduler: str | None,
    scheduler_file: str | None,
    n_workers: int | None,
    environ: Mapping[str, str] | None = None,
) -> ClusterChoice:
    """Apply the Dask conventions: an option, else ``DASK_SCHEDULER_ADDRESS``, else local.

    Parameters
    ----------
    scheduler : str or None
        ``--scheduler`` (``tcp://HOST:8786``; a bare ``HOST:PORT`` gets ``tcp://``).
    scheduler_file : str or None
        ``--scheduler-file``.
    n_workers : int or None
        Workers of a local cluster; default one per core.
    environ : mapping, optional
        The environment (default ``os.environ``).

    Returns
    -------
    choice : ClusterChoice

    Raises
    ------
    ValueError
        Both a scheduler address and a scheduler file, or an empty address.
    """
    env = os.environ if environ is None else environ
    if scheduler is not None and scheduler_file is not None:
        raise ValueError("give either a scheduler address or a scheduler file, not both")
    workers = n_workers if n_workers is not None else default_workers()
    if scheduler_file is not None:
        return ClusterChoice("file", scheduler_file, workers)
    address = scheduler if scheduler is not None else env.get(SCHEDULER_ENV) or None
    if address is None:
        return ClusterChoice("local", "", workers)
    address = address.strip()
    if not address:
        raise ValueError("the scheduler address is empty")
    if "://" not in address:
        address = f"tcp://{address}"
    return ClusterChoice("address", address, workers)


# --------------------------------------------------------------------------------------
# in the workers: cancellation and the registries of the parent
# --------------------------------------------------------------------------------------

_scope = threading.local()


@contextlib.contextmanager
def cancel_scope(check: Callable[[bool], bool]) -> Iterator[None]:
    """Make :func:`cancel_requested` ask ``check`` inside the block (on this thread).

    Parameters
    ----------
    check : callable
        ``check(fresh)`` returns True once the run was cancelled; ``fresh`` asks for an
        up-to-date answer (otherwise a recent one may be reused).

    Yields
    ------
    None
    """
    previous = getattr(_scope, "check", None)
    _scope.check = check
    try:
        yield
    finally:
        _scope.check = previous


def cancel_requested(fresh: bool = False) -> bool:
    """Return whether the run the current task belongs to was cancelled.

    False outside a task of :class:`Cluster` (e.g. ``vq batch --jobs 1`` or ``vq quantize``).

    Parameters
    ----------
    fresh : bool, optional
        Ask the scheduler now (before writing files); by default an answer up to
        0.25 s old is reused (between the iterations of a fit).

    Returns
    -------
    cancelled : bool
    """
    check = getattr(_scope, "check", None)
    return bool(check(fresh)) if check is not None else False


def _event_check(name: str) -> Callable[[bool], bool]:
    """Return a rate-limited check of the Dask Event ``name`` (True once set)."""
    from distributed import Event

    event = Event(name)
    last = [0.0]
    cancelled = [False]

    def check(fresh: bool = False) -> bool:
        if cancelled[0]:
            return True
        now = time.monotonic()
        if fresh or now - last[0] >= _POLL_S:
            last[0] = now
            try:
                cancelled[0] = bool(event.is_set())
            except Exception:  # scheduler gone: the run is over
                cancelled[0] = True
        return cancelled[0]

    return check


#: what a cancelled task returns instead of its result
CANCELLED = "vq-cancelled"


def _run_task(fn: Callable[[Any], Any], item: Any, event: str) -> Any:
    """Run ``fn(item)`` on a worker unless the run was cancelled (checked first, unthrottled)."""
    check = _event_check(event)
    from distributed import Event

    if Event(event).is_set():
        return CANCELLED
    with cancel_scope(check):
        return fn(item)


def _setup_worker(specs: Sequence[Any], ignore_sigint: bool, nthreads: int = 0) -> None:
    """Prepare a worker: the parent's run-time methods registered, SIGINT ignored if local.

    The engine's own threads (the K-means E step) are capped at the worker's thread count
    (``VQ_NUM_THREADS``) unless the worker's environment already says.
    """
    from quantize._blas import limit_blas_threads
    from quantize.cluster.registry import METHODS, register_method

    if nthreads > 0:
        os.environ.setdefault("VQ_NUM_THREADS", str(nthreads))
    limit_blas_threads()  # also on clusters whose nannies do not set OPENBLAS_NUM_THREADS

    for spec in specs:
        if spec.name not in METHODS:
            register_method(spec)
    if ignore_sigint and threading.current_thread() is threading.main_thread():
        # Ctrl-C in a terminal reaches the whole process group: the parent decides
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_plugin(specs: Sequence[Any], ignore_sigint: bool) -> Any:
    """Make the worker plugin that carries the parent's registries to every worker.

    A method registered by a plug-in or a script (``register_method``) exists only in the
    process that registered it; the plugin carries the specs (pickled by cloudpickle: their
    factory must be importable on the workers, or be a lambda or a ``__main__`` function)
    to every worker, including those that join or restart later.
    """
    from distributed.diagnostics.plugin import WorkerPlugin

    class VqWorkerSetup(WorkerPlugin):
        idempotent = False
        name = "vq-worker-setup"

        def __init__(self) -> None:
            self.specs = list(specs)
            self.ignore_sigint = ignore_sigint

        def setup(self, worker: Any) -> None:
            nthreads = int(getattr(getattr(worker, "state", None), "nthreads", 0) or 0)
            _setup_worker(self.specs, self.ignore_sigint, nthreads)

    return VqWorkerSetup()


def _runtime_methods() -> list[Any]:
    """Return the registered method specs that a fresh interpreter does not have."""
    from quantize.cluster.registry import METHODS

    builtin = {"kmeans", "gmm", "minibatch", "optimal1d"}
    return [spec for name, spec in METHODS.items() if name not in builtin]


# --------------------------------------------------------------------------------------
# in the parent: the cluster and the run
# --------------------------------------------------------------------------------------


@dataclass
class TaskOutcome:
    """What became of one submitted task.

    Attributes
    ----------
    index : int
        Position of the item in the submitted sequence.
    result : object
        The task's return value (None if it failed or was cancelled).
    error : BaseException or None
        The exception of a task that failed on every attempt (e.g. ``KilledWorker``).
    cancelled : bool
        Never run, or stopped by :meth:`Cluster.cancel`.
    """

    index: int
    result: Any = None
    error: BaseException | None = None
    cancelled: bool = False


@dataclass
class Cluster:
    """A Dask client for one run, on a new LocalCluster or an existing scheduler.

    Use as a context manager; entering imports Dask and connects (starting a local
    cluster if so chosen), leaving closes the client and the local cluster.

    Parameters
    ----------
    choice : ClusterChoice
        From :func:`choose_cluster`.
    quiet : bool, optional
        Silence Dask's own log messages below ERROR (CRITICAL when ``True``); a worker
        restarted after a crash is expected here and said by the caller.
    """

    choice: ClusterChoice
    quiet: bool = True
    client: Any = field(default=None, init=False)
    _local: Any = field(default=None, init=False)
    _event: str = field(default="", init=False)
    _futures: list[Any] = field(default_factory=list, init=False)
    _log_levels: dict[str, int] = field(default_factory=dict, init=False)

    @property
    def dashboard_link(self) -> str | None:
        """URL of the Dask dashboard (None if the scheduler serves none)."""
        if self.client is None:
            return None
        try:
            link = self.client.dashboard_link
        except Exception:
            return None
        return str(link) if link else None

    @property
    def is_local(self) -> bool:
        """Whether this run started (and will close) its own LocalCluster."""
        return self._local is not None

    def worker_pids(self) -> dict[str, int]:
        """Return the process id of every worker (by worker address).

        Returns
        -------
        pids : dict of str to int
        """
        try:
            return {str(k): int(v) for k, v in self.client.run(os.getpid).items()}
        except Exception:
            return {}

    def __enter__(self) -> Cluster:
        for name in ("distributed", "bokeh", "tornado"):
            logger = logging.getLogger(name)
            self._log_levels[name] = logger.level
            if self.quiet:
                logger.setLevel(logging.CRITICAL)
        try:
            self._connect()
        except BaseException:
            self._restore_logs()
            raise
        return self

    def _connect(self) -> None:
        import dask
        from distributed import Client, LocalCluster

        choice = self.choice
        if choice.kind == "local":
            config = {
                # quiet workers: their crashes are reported by the parent
                "distributed.nanny.pre-spawn-environ.DASK_LOGGING__DISTRIBUTED": "critical"
                if self.quiet
                else "warning",
                # one thread per worker, also inside the K-means E step
                "distributed.nanny.pre-spawn-environ.VQ_NUM_THREADS": "1",
                "distributed.worker.daemon": False,
            }
            with dask.config.set(config), _sigint_ignored():
                # started with SIGINT ignored, the workers inherit it: a Ctrl-C in a
                # terminal reaches the whole process group, and the parent decides
                self._local = LocalCluster(
                    n_workers=choice.n_workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # any free port: two runs never collide
                    silence_logs=logging.CRITICAL if self.quiet else logging.WARNING,
                )
                self.client = Client(self._local, set_as_default=False)
        elif choice.kind == "file":
            try:
                self.client = Client(scheduler_file=choice.target, timeout=CONNECT_TIMEOUT_S)
            except (OSError, ValueError) as exc:
                raise ConnectionError(
                    f"{choice.target}: cannot read the scheduler file ({exc})"
                ) from None
        else:
            try:
                self.client = Client(choice.target, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            except (OSError, TimeoutError) as exc:
                raise ConnectionError(
                    f"cannot connect to the Dask scheduler at {choice.target} ({exc})"
                ) from None
        self.client.register_plugin(_worker_plugin(_runtime_methods(), choice.kind == "local"))
        self._event = f"vq-cancel-{uuid.uuid4().hex}"

    def _restore_logs(self) -> None:
        for name, level in self._log_levels.items():
            logging.getLogger(name).setLevel(level)

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the client and, if this run started it, the local cluster (kills workers)."""
        try:
            if self.client is not None:
                with contextlib.suppress(Exception):
                    self.client.close(timeout=5)
            if self._local is not None:
                with contextlib.suppress(Exception):
                    self._local.close(timeout=5)
        finally:
            self.client = None
            self._local = None
            self._restore_logs()

    # ---------------------------------------------------------------------- the run

    def submit_all(
        self, fn: Callable[[Any], Any], items: Sequence[Any], *, name: str = "vq-task"
    ) -> list[Any]:
        """Submit ``fn(item)`` for every item; return the futures in the items' order.

        Parameters
        ----------
        fn : callable
            A top-level (importable) function of one argument.
        items : sequence
        name : str, optional
            Prefix of the task keys (the dashboard shows it).

        Returns
        -------
        futures : list of distributed.Future
        """
        run = uuid.uuid4().hex[:8]
        keys = [f"{name}-{run}-{i}" for i in range(len(items))]
        # pure=False: a task is run even if an identical one ran before (outputs may have
        # been removed meanwhile); the keys keep the dashboard readable
        futures = [
            self.client.submit(_run_task, fn, item, self._event, key=key, pure=False)
            for key, item in zip(keys, items, strict=True)
        ]
        self._futures.extend(futures)
        return futures

    def as_completed(
        self, futures: Sequence[Any], should_stop: Callable[[], bool] | None = None
    ) -> Iterator[TaskOutcome]:
        """Yield the outcome of every future as it completes.

        Parameters
        ----------
        futures : sequence of distributed.Future
            As returned by :meth:`submit_all`.
        should_stop : callable, optional
            Polled while waiting (every 50 ms); True raises :class:`KeyboardInterrupt`, as
            Ctrl-C does (the desktop app's Cancel button).

        Yields
        ------
        outcome : TaskOutcome

        Raises
        ------
        KeyboardInterrupt
            ``should_stop`` said so.
        """
        from distributed import as_completed

        index = {f.key: i for i, f in enumerate(futures)}
        pending = as_completed(list(futures), loop=self.client.loop)
        if should_stop is None:
            for fut in pending:
                yield self._outcome(fut, index[fut.key])
            return
        while not pending.is_empty():
            if should_stop():
                raise KeyboardInterrupt
            if not pending.has_ready():
                time.sleep(0.05)
                continue
            for fut in pending.next_batch(block=False):
                yield self._outcome(fut, index[fut.key])

    def outcome(self, future: Any, should_stop: Callable[[], bool] | None = None) -> TaskOutcome:
        """Wait for one future; return its outcome.

        Parameters
        ----------
        future : distributed.Future
        should_stop : callable, optional
            As for :meth:`as_completed`.

        Returns
        -------
        outcome : TaskOutcome
            With ``index`` 0.

        Raises
        ------
        KeyboardInterrupt
            ``should_stop`` said so.
        """
        return next(iter(self.as_completed([future], should_stop)))

    def n_workers(self) -> int:
        """Return the number of workers the scheduler knows now.

        Returns
        -------
        n : int
        """
        try:
            return len(self.client.scheduler_info(n_workers=-1)["workers"])
        except Exception:
            return 1

    @staticmethod
    def _outcome(fut: Any, index: int) -> TaskOutcome:
        if fut.status == "cancelled":
            return TaskOutcome(index, cancelled=True)
        if fut.status == "error":
            try:
                exc = fut.exception(timeout=5)
            except Exception as err:  # the exception itself could not be fetched
                exc = err
            return TaskOutcome(index, error=exc)
        try:
            value = fut.result(timeout=30)
        except Exception as exc:
            return TaskOutcome(index, error=exc)
        if isinstance(value, str) and value == CANCELLED:
            return TaskOutcome(index, cancelled=True)
        return TaskOutcome(index, result=value)

    def cancel(self, futures: Sequence[Any], grace_s: float = 3.0) -> list[TaskOutcome]:
        """Cancel a run: queued tasks never start, running ones stop at their next check.

        Parameters
        ----------
        futures : sequence of distributed.Future
            The run's futures (as returned by :meth:`submit_all`).
        grace_s : float, optional
            How long running tasks may take to stop or to finish writing.

        Returns
        -------
        outcomes : list of TaskOutcome
            Of every future, in order: finished ones with their result (those that had
            begun writing finish their file), the others ``cancelled``.
        """
        from distributed import Event

        with contextlib.suppress(Exception):
            Event(self._event, client=self.client).set()  # first: a task starting now stops
        running: set[str] = set()
        with contextlib.suppress(Exception):
            for keys in self.client.processing().values():
                running.update(str(k) for k in keys)
        queued = [f for f in futures if not f.done() and str(f.key) not in running]
        with contextlib.suppress(Exception):
            self.client.cancel(queued)
        active = [f for f in futures if str(f.key) in running]
        _wait_done(active, grace_s)
        return [
            self._outcome(f, i) if f.done() else TaskOutcome(i, cancelled=True)
            for i, f in enumerate(futures)
        ]

    def reduce_tree(
        self, combine: Callable[[Any, Any], Any], futures: Sequence[Any], *, name: str
    ) -> Any:
        """Combine futures pairwise on the cluster (a tree of depth log2 n); return a future.

        Parameters
        ----------
        combine : callable
            Associative function of two values (``None`` values are skipped by it).
        futures : sequence of distributed.Future
        name : str
            Prefix of the task keys.

        Returns
        -------
        future : distributed.Future
        """
        level = list(futures)
        depth = 0
        while len(level) > 1:
            nxt = []
            for i in range(0, len(level) - 1, 2):
                key = f"{name}-{depth}-{i // 2}-{uuid.uuid4().hex[:6]}"
                nxt.append(
                    self.client.submit(
                        _run_task, _Pair(combine), (level[i], level[i + 1]), self._event, key=key
                    )
                )
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
            depth += 1
        self._futures.extend(level)
        return level[0]


def _wait_done(futures: Sequence[Any], timeout_s: float | None) -> None:
    """Wait until every future is done (finished, failed or cancelled), or the time is up."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    for fut in futures:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        with contextlib.suppress(Exception):  # failed, cancelled or timed out: done waiting
            fut.result(timeout=left)


class _Pair:
    """Apply a two-argument function to a pair (what :func:`_run_task` hands over)."""

    def __init__(self, fn: Callable[[Any, Any], Any]) -> None:
        self.fn = fn

    def __call__(self, pair: tuple[Any, Any]) -> Any:
        a, b = pair
        if isinstance(a, str) and a == CANCELLED:
            return a
        if isinstance(b, str) and b == CANCELLED:
            return b
        return self.fn(a, b)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while worker processes are spawned (they inherit it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
