"""Shared helpers of the GUI tests."""

from __future__ import annotations

import numpy as np

from app.model import RunParameters

#: How long a test waits for a run on a small image.
RUN_TIMEOUT_MS = 30_000

#: Fast parameters for tests (small K, few restarts).
FAST = RunParameters(n_colors=6, n_init=2, max_iter=50, color_space="rgb")


def make_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth colourful test image with a little noise, (M, N, 3) uint8."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0, 1, height)[:, None]
    cols = np.linspace(0, 1, width)[None, :]
    img = np.stack(
        [255 * rows * np.ones_like(cols), 255 * cols * np.ones_like(rows), 255 * (1 - rows) * cols],
        axis=2,
    )
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def run_and_wait(qtbot, window) -> object:
    """Start a run in ``window`` and return its RunOutput once ``run_finished`` arrives."""
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS) as blocker:
        assert window.start_run()
    return blocker.args[0]
