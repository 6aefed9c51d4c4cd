"""Animated GIF/APNG: every frame in, one animated PNG with one shared palette out.

A palette fitted per frame makes colours jump from frame to frame (flicker); with one palette
for every frame (fitted on the summed histogram of all frames, :mod:`quantize.histograms`)
the same colour maps to the same entry throughout.  Frames are read fully composited (as a
viewer shows them), so each output frame is complete and the output replaces every frame
(``blend`` 0, source: nothing depends on how the input was optimised).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from quantize.io.load import LoadError, load_image

__all__ = ["MAX_FRAMES", "Animation", "encode_animation", "load_animation"]

#: Frames read at most (a GIF of more is almost certainly a video: convert it first).
MAX_FRAMES = 5000


@dataclass
class Animation:
    """The frames of an animated image.

    Attributes
    ----------
    frames : list of ndarray of shape (M, N, 4), uint8
        Fully composited RGBA frames.
    durations : list of int
        Display time of each frame in milliseconds.
    loop : int
        Number of repetitions (0: forever).
    """

    frames: list[np.ndarray]
    durations: list[int]
    loop: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return len(self.frames)


def load_animation(path: str | os.PathLike[str], *, max_pixels: int) -> Animation:
    """Read every frame of a GIF, APNG or WebP animation.

    The file first passes :func:`quantize.io.load.load_image`'s checks (allow-listed format,
    dimensions before decoding); the frames together may hold at most ``4 * max_pixels``
    pixels.

    Parameters
    ----------
    path : str or Path
    max_pixels : int
        The per-image pixel cap.

    Returns
    -------
    animation : Animation
        One frame for a still image.

    Raises
    ------
    LoadError
        Unreadable, corrupt or too large.
    """
    p = Path(path)
    first = load_image(p, max_pixels=max_pixels)
    n = int(first.n_frames)
    if n > MAX_FRAMES:
        raise LoadError(p, f"{n} frames: more than {MAX_FRAMES} (convert the video first)")
    if n * first.width * first.height > 4 * max_pixels:
        raise LoadError(p, f"{n} frames of {first.width}x{first.height} exceed the pixel limit")
    if n == 1 or first.bit_depth != 8:
        px = first.pixels
        if px.dtype != np.uint8:
            px = (px.astype(np.uint32) // 257).astype(np.uint8)
        rgba = px if px.shape[2] == 4 else np.dstack([px, np.full(px.shape[:2], 255, np.uint8)])
        return Animation([rgba], [100], 0)
    frames: list[np.ndarray] = []
    durations: list[int] = []
    try:
        with Image.open(io.BytesIO(p.read_bytes())) as im:
            loop = int(im.info.get("loop", 0) or 0)
            for frame in ImageSequence.Iterator(im):
                durations.append(max(10, int(frame.info.get("duration", 100) or 100)))
                frames.append(np.asarray(frame.convert("RGBA")))
    except (OSError, ValueError, EOFError) as exc:
        raise LoadError(p, f"cannot decode frame {len(frames) + 1} ({exc})") from None
    if any(f.shape != frames[0].shape for f in frames):
        raise LoadError(p, "frames of different sizes")
    return Animation(frames, durations, loop)


def encode_animation(
    indices: list[np.ndarray],
    palette: np.ndarray,
    opaque: list[np.ndarray] | None,
    durations: list[int],
    loop: int = 0,
) -> bytes:
    """Encode palette indices of every frame as one animated PNG with one palette.

    Parameters
    ----------
    indices : list of ndarray of shape (M, N), integer
        Palette index of each pixel of each frame (K <= 255 entries with transparency,
        256 without).
    palette : ndarray of shape (K, 3), uint8
    opaque : list of ndarray of shape (M, N), bool, or None
        Per frame, False where the pixel is fully transparent (an extra entry, index K,
        is then fully transparent).
    durations : list of int
        Milliseconds per frame.
    loop : int, optional
        Repetitions, 0 = forever.

    Returns
    -------
    png : bytes
        An APNG (a single-frame input gives a plain indexed PNG).

    Raises
    ------
    ValueError
        More palette entries than an indexed PNG holds.
    """
    palette = np.asarray(palette, np.uint8).reshape(-1, 3)
    k = len(palette)
    transparent = opaque is not None and any(not bool(np.all(o)) for o in opaque)
    if k + (1 if transparent else 0) > 256:
        raise ValueError(f"{k} colours do not fit an indexed animated PNG (at most 256)")
    entries = np.vstack([palette, np.zeros((1, 3), np.uint8)]) if transparent else palette
    images = []
    for i, idx in enumerate(indices):
        arr = np.asarray(idx).astype(np.uint8)
        if transparent and opaque is not None:
            arr = np.where(opaque[i], arr, k).astype(np.uint8)
        img = Image.frombytes(
            "P", (arr.shape[1], arr.shape[0]), np.ascontiguousarray(arr).tobytes()
        )
        img.putpalette(entries.tobytes(), rawmode="RGB")
        images.append(img)
    params: dict[str, object] = {"format": "PNG", "optimize": False}
    if transparent:
        params["transparency"] = k
    buf = io.BytesIO()
    if len(images) == 1:
        images[0].save(buf, **params)  # type: ignore[arg-type]
    else:
        images[0].save(
            buf,
            save_all=True,
            append_images=images[1:],
            duration=list(durations),
            loop=int(loop),
            disposal=0,  # full frames with blend 0 (source): nothing to clear
            blend=0,
            default_image=False,
            **params,  # type: ignore[arg-type]
        )
    return buf.getvalue()
