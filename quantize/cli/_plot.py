"""The chart of ``vq sweep --plot``: PNG size and quality against K, drawn with Pillow.

No display and no plotting library: three panels stacked on one log-scale K axis (indexed
PNG size, with the original file's size as a dashed line; PSNR; mean CIEDE2000), each with
its grid, tick labels and a marker per K swept.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image, ImageDraw, ImageFont

__all__ = ["nice_ticks", "render_sweep_plot"]

_W, _PANEL_H, _TOP, _BOTTOM, _LEFT, _RIGHT, _GAP = 960, 210, 54, 58, 92, 28, 26
_INK = (40, 40, 48)
_GRID = (222, 224, 230)
_COLORS = ((31, 119, 180), (214, 39, 40), (44, 160, 44))


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2 or 5 times a power of ten) covering a range.

    Parameters
    ----------
    lo, hi : float
    count : int, optional

    Returns
    -------
    ticks : list of float
        Increasing, within ``[lo, hi]`` (one value if the range is empty).
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def render_sweep_plot(
    ks: Sequence[int],
    series: Sequence[tuple[str, Sequence[float | None], Callable[[float], str]]],
    *,
    title: str,
    reference: tuple[int, float, str] | None = None,
) -> Image.Image:
    """Draw one panel per series against K (log scale), stacked, sharing the K axis.

    Parameters
    ----------
    ks : sequence of int
        The K swept (increasing).
    series : sequence of (label, values, format)
        One panel each: its title, one value per K (``None`` or non-finite values are
        skipped) and how its tick labels are written.
    title : str
        Above the chart.
    reference : (panel index, value, label), optional
        A dashed horizontal line in a panel (e.g. the original file's size).

    Returns
    -------
    chart : PIL.Image.Image
        RGB, 960 pixels wide.
    """
    n = len(series)
    height = _TOP + n * _PANEL_H + (n - 1) * _GAP + _BOTTOM
    img = Image.new("RGB", (_W, height), "white")
    draw = ImageDraw.Draw(img)
    font, small, big = _font(15), _font(13), _font(18)
    draw.text((_LEFT, 16), title, fill=_INK, font=big)
    k_lo, k_hi = math.log2(max(min(ks), 1)), math.log2(max(max(ks), 1))
    if k_hi <= k_lo:
        k_lo, k_hi = k_lo - 1, k_hi + 1
    x0, x1 = _LEFT, _W - _RIGHT

    def x_of(k: float) -> float:
        return x0 + (math.log2(k) - k_lo) / (k_hi - k_lo) * (x1 - x0)

    k_ticks = [2**e for e in range(math.ceil(k_lo), math.floor(k_hi) + 1)]
    for i, (label, values, fmt) in enumerate(series):
        top = _TOP + i * (_PANEL_H + _GAP)
        y0, y1 = top + 22, top + _PANEL_H
        pts = [
            (k, float(v))
            for k, v in zip(ks, values, strict=True)
            if v is not None and math.isfinite(float(v))
        ]
        vals = [v for _, v in pts]
        if reference is not None and reference[0] == i:
            vals.append(reference[1])
        lo, hi = (min(vals), max(vals)) if vals else (0.0, 1.0)
        pad = (hi - lo) * 0.08 or max(abs(hi) * 0.1, 1.0)
        lo, hi = lo - pad, hi + pad

        def y_of(v: float, lo: float = lo, hi: float = hi, y0: float = y0, y1: float = y1) -> float:
            return y1 - (v - lo) / (hi - lo) * (y1 - y0)

        color = _COLORS[i % len(_COLORS)]
        draw.text((x0, top), label, fill=color, font=font)
        for t in nice_ticks(lo, hi):
            y = y_of(t)
            draw.line([(x0, y), (x1, y)], fill=_GRID)
            text = fmt(t)
            w = draw.textlength(text, font=small)
            draw.text((x0 - 8 - w, y - 8), text, fill=_INK, font=small)
        for k in k_ticks:
            x = x_of(k)
            draw.line([(x, y0), (x, y1)], fill=_GRID)
        draw.rectangle([x0, y0, x1, y1], outline=_INK)
        if reference is not None and reference[0] == i:
            y = y_of(reference[1])
            for xa in range(int(x0), int(x1), 14):
                draw.line([(xa, y), (min(xa + 7, x1), y)], fill=(110, 110, 110), width=2)
            text = reference[2]
            w = draw.textlength(text, font=small)
            ty = y - 18 if y - 18 > y0 + 2 else y + 4  # below the line near the top
            draw.text((x1 - w - 6, ty), text, fill=(90, 90, 90), font=small)
        xy = [(x_of(k), y_of(v)) for k, v in pts]
        if len(xy) > 1:
            draw.line(xy, fill=color, width=3, joint="curve")
        for x, y in xy:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=color, outline="white")
    base = _TOP + n * _PANEL_H + (n - 1) * _GAP
    for k in k_ticks:
        text = str(k)
        w = draw.textlength(text, font=small)
        draw.text((x_of(k) - w / 2, base + 6), text, fill=_INK, font=small)
    label = "K (number of colours, log scale)"
    w = draw.textlength(label, font=font)
    draw.text(((x0 + x1) / 2 - w / 2, base + 28), label, fill=_INK, font=font)
    return img
