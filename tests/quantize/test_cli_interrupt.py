"""Ctrl-C (SIGINT) and SIGTERM stop ``vq quantize`` and ``vq batch`` soon, cleanly, with 130.

Real processes: each test starts ``python -m quantize``, waits (by polling, not by sleeping a
fixed time) until the work is visibly under way, sends the signal and checks the exit code,
the time to exit, and the files left behind: no partial or temporary file, nothing written
for the files that had not started, and every file in place reported.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

#: From the signal to the exit (the requirement is a second or two; slack for busy machines).
EXIT_WITHIN_S = 6.0
#: How long the work may take to get visibly under way (worker processes start first).
START_WITHIN_S = 90.0
N_INPUTS = 8


def noise_image(path: Path, size: int, seed: int) -> Path:
    """Noise: every pixel its own colour, so each fit takes a while."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return path


def live_processes_of_group(pgid: int) -> list[int]:
    """Processes of a process group that still run (zombies waiting for a reaper excluded)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state not in "ZX":
            alive.append(int(stat.parent.name))
    return alive


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Vq:
    """A running ``vq`` in a process group of its own; its output is collected as it comes.

    The group makes the cleanup complete even when the command under test leaves worker
    processes behind (they would hold its pipes open), and lets a test send a signal to
    every process at once, as a terminal does for Ctrl-C.
    """

    def __init__(self, argv: list[str], cwd: Path) -> None:
        env = {**os.environ, "PYTHONWARNINGS": "error"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "quantize", *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            # a shell starts background jobs with SIGINT ignored, and Python keeps an ignored
            # SIGINT ignored: give vq the default disposition a terminal gives it
            preexec_fn=_default_sigint,
        )
        self.pgid = self.proc.pid
        self._out = bytearray()
        self._err = bytearray()
        self._readers = [
            threading.Thread(target=self._collect, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _collect(stream: Any, into: bytearray) -> None:
        for chunk in iter(lambda: stream.read1(4096), b""):
            into.extend(chunk)

    @property
    def stderr(self) -> str:
        return self._err.decode(errors="replace")

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + START_WITHIN_S
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"vq exited ({self.proc.returncode}) before {what}: {self.stderr}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {START_WITHIN_S} s: {self.stderr}")
            time.sleep(0.01)

    def interrupt(self, sig: int, whole_group: bool = False) -> tuple[int, float, str, str]:
        """Send ``sig`` to vq (or to its whole group, as a terminal's Ctrl-C does).

        Returns (exit code, seconds to exit, stdout, stderr).
        """
        sent = time.monotonic()
        if whole_group:
            os.killpg(self.pgid, sig)
        else:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"vq did not exit within 30 s of {signal.Signals(sig).name}")
        elapsed = time.monotonic() - sent
        left = self.wait_for_group()
        self.close()
        assert left == [], "processes of vq outlived it"
        return code, elapsed, self._out.decode(), self.stderr

    def wait_for_group(self, timeout_s: float = 5.0) -> list[int]:
        """Wait for every process of the group to end; return those still running."""
        if not Path("/proc/self/stat").exists():
            return []
        deadline = time.monotonic() + timeout_s
        while (left := live_processes_of_group(self.pgid)) and time.monotonic() < deadline:
            time.sleep(0.05)
        return left

    def close(self) -> None:
        """Kill whatever of the group still runs, then collect the output."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGKILL)
        self.proc.wait()
        for reader in self._readers:
            reader.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None and not any(r.is_alive() for r in self._readers):
                stream.close()


@pytest.fixture
def start_vq(tmp_path):
    """Start ``vq`` in ``tmp_path``; whatever happens, no process or pipe outlives the test."""
    started: list[Vq] = []

    def start(argv: list[str]) -> Vq:
        started.append(Vq(argv, tmp_path))
        return started[-1]

    yield start
    for vq in started:
        vq.close()


def outputs(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def assert_clean(folder: Path) -> None:
    """No temporary, backup or partial file; every output decodes completely."""
    leftovers = [p.name for p in folder.iterdir() if p.name.startswith(".") or ".part" in p.name]
    assert leftovers == []
    for p in outputs(folder):
        if p.suffix == ".png" and p.read_bytes() != OLD:
            with Image.open(p) as im:
                im.load()


OLD = b"previous output, must survive unless its input was processed"


@pytest.mark.parametrize(
    ("sig", "whole_group"),
    [(signal.SIGINT, False), (signal.SIGINT, True), (signal.SIGTERM, False)],
    ids=["SIGINT", "Ctrl-C in a terminal", "SIGTERM"],
)
def test_batch_stops_soon_and_starts_nothing_more(tmp_path, start_vq, sig, whole_group):
    inputs = [noise_image(tmp_path / f"in{i}.png", 200, i).name for i in range(N_INPUTS)]
    out = tmp_path / "out"
    vq = start_vq(["batch", *inputs, "-o", "out", "--jobs", "2", "--n-init", "2"])
    vq.wait_until(lambda: bool(outputs(out)), "first output")
    code, elapsed, stdout, stderr = vq.interrupt(sig, whole_group)
    written = [p.name for p in outputs(out)]
    context = f"after {elapsed:.2f} s, files {written}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    assert code == 130, context
    assert elapsed < EXIT_WITHIN_S, context
    assert "Traceback" not in stderr, context
    assert_clean(out)
    # 2 workers: the finished file, at most the 2 running and the 1 handed over early
    assert 1 <= len(written) <= 4, context
    assert f"in{N_INPUTS - 1}.png" not in written, context  # queued: never started
    # what was written is said, and exactly that
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("vq: interrupted - wrote "), context
    for name in written:
        assert f"out/{name}" in last, context
        assert f"-> {name}" in stdout, context
    n_left = N_INPUTS - len(written)
    assert last.endswith(f"; {n_left} of {N_INPUTS} files not processed"), context


def test_batch_with_force_keeps_the_outputs_it_did_not_reach(tmp_path, start_vq):
    """With -f, the existing outputs of files not yet processed stay byte-identical."""
    inputs = [noise_image(tmp_path / f"in{i}.png", 200, i).name for i in range(N_INPUTS)]
    out = tmp_path / "out"
    out.mkdir()
    for name in inputs:
        (out / name).write_bytes(OLD)
    vq = start_vq(["batch", *inputs, "-o", "out", "-j", "2", "--n-init", "2", "-f", "-q"])
    vq.wait_until(lambda: any(p.read_bytes() != OLD for p in outputs(out)), "replaced output")
    code, elapsed, stdout, stderr = vq.interrupt(signal.SIGTERM)
    replaced = [p.name for p in outputs(out) if p.read_bytes() != OLD]
    kept = [p.name for p in outputs(out) if p.read_bytes() == OLD]
    context = f"after {elapsed:.2f} s, replaced {replaced}\nstderr:\n{stderr}"
    assert code == 130 and elapsed < EXIT_WITHIN_S, context
    assert stdout == ""  # --quiet: no summary, but the interrupt is said on stderr
    assert_clean(out)
    assert sorted(replaced + kept) == sorted(inputs)
    assert 1 <= len(replaced) <= 4 and f"in{N_INPUTS - 1}.png" in kept, context
    last = stderr.strip().splitlines()[-1]
    assert all(f"out/{name}" in last for name in replaced), context


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_quantize_stops_during_the_fit(tmp_path, start_vq, sig):
    noise_image(tmp_path / "big.png", 700, 0)
    argv = ["quantize", "big.png", "-k", "64", "-o", "big-vq.png", "--report", "big.json"]
    vq = start_vq([*argv, "--progress"])
    vq.wait_until(lambda: "run 1 it " in vq.stderr, "fit iteration")
    code, elapsed, stdout, stderr = vq.interrupt(sig)
    assert code == 130, stderr
    assert elapsed < EXIT_WITHIN_S, f"{elapsed:.2f} s"
    assert stdout == "" and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "vq: interrupted - nothing written"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sweep_stops_between_or_during_fits(tmp_path, start_vq, sig):
    noise_image(tmp_path / "big.png", 600, 1)
    vq = start_vq(["sweep", "big.png", "--ks", "2-256", "--plot", "k.png", "--progress"])
    vq.wait_until(lambda: b"\n    2  " in vq._out, "first row of the table")
    code, elapsed, stdout, stderr = vq.interrupt(sig)
    assert code == 130, stderr
    assert elapsed < EXIT_WITHIN_S, f"{elapsed:.2f} s"
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("vq: interrupted after K=") and last.endswith("nothing written"), last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.png"]  # no chart, no temp file
    assert "  256  " not in stdout  # it stopped before the end
