"""Draw the VQ Studio application icon (resources/vq-studio.png and .ico).

A 4 x 4 grid of rounded swatches whose colours step through a warm-to-cool palette, on a dark
rounded tile: the product in one glance (an image reduced to a few colours).  Run from the
repository root: ``python tools/make_icon.py``.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

SIZE = 256
PALETTE = [
    "#2b1d14",
    "#5a3a22",
    "#8c5a32",
    "#c98b4f",
    "#e8c39e",
    "#f4e3cf",
    "#b8c4c9",
    "#7d98a6",
    "#3f6e86",
    "#1f4e66",
    "#6f8f3a",
    "#a3b85a",
    "#d94f30",
    "#f08a4b",
    "#f6c453",
    "#ffffff",
]


def draw(size: int = SIZE) -> Image.Image:
    """Return the icon as an RGBA image of ``size`` x ``size`` pixels."""
    scale = 4  # draw large, then downsample for smooth edges
    s = size * scale
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((0, 0, s - 1, s - 1), radius=s // 6, fill="#20242b")
    margin, gap = s // 10, s // 40
    cell = (s - 2 * margin - 3 * gap) // 4
    for i, colour in enumerate(PALETTE):
        r, c = divmod(i, 4)
        x0 = margin + c * (cell + gap)
        y0 = margin + r * (cell + gap)
        d.rounded_rectangle((x0, y0, x0 + cell, y0 + cell), radius=cell // 5, fill=colour)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    """Write the PNG and a multi-size ICO next to the other resources."""
    out = Path(__file__).resolve().parents[1] / "resources"
    icon = draw()
    icon.save(out / "vq-studio.png", optimize=True)
    icon.save(out / "vq-studio.ico", sizes=[(16, 16), (32, 32), (48, 48), (64, 64), (256, 256)])


if __name__ == "__main__":
    main()
