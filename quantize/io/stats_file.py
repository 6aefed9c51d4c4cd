"""Region statistics written as CSV or JSON (``vq quantize --stats FILE``).

CSV: one table, a row per class (``level`` = ``class``) followed by a row per connected
region (``level`` = ``region``); columns ``level, class, region, color, pixels, share,
mean_r, mean_g, mean_b, mean_color, centroid_row, centroid_col, bbox_min_row, bbox_min_col,
bbox_max_row, bbox_max_col, regions`` (``region`` is empty on class rows, ``regions`` on
region rows).  JSON: ``{"format": "vq-region-stats", "version": 1, "width", "height",
"pixels", "classes": [...], "regions": [...]}``.  Rows and columns are 0-based image rows
and columns, bounding boxes inclusive, shares fractions of the opaque pixels.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from quantize._json import json_safe
from quantize.regions import RegionStats, region_stats

__all__ = ["CSV_COLUMNS", "result_stats", "stats_csv", "stats_json"]

CSV_COLUMNS = (
    "level",
    "class",
    "region",
    "color",
    "pixels",
    "share",
    "mean_r",
    "mean_g",
    "mean_b",
    "mean_color",
    "centroid_row",
    "centroid_col",
    "bbox_min_row",
    "bbox_min_col",
    "bbox_max_row",
    "bbox_max_col",
    "regions",
)


def result_stats(result: Any) -> RegionStats:
    """Statistics of a result's labels (smoothed ones if it was smoothed).

    Parameters
    ----------
    result : QuantizeResult

    Returns
    -------
    stats : RegionStats
    """
    return region_stats(result.image, result.labels, result.palette, result.opaque)


def _csv_row(level: str, row: dict[str, Any], colour: str, regions: Any) -> list[Any]:
    mean = row["mean_rgb"] or ["", "", ""]
    centroid = row["centroid"] or ["", ""]
    bbox = row["bbox"] or ["", "", "", ""]
    return [
        level,
        row["class"],
        row.get("region", ""),
        colour,
        row["pixels"],
        f"{row['share']:.6f}",
        *mean,
        row["mean_color"] or "",
        *centroid,
        *bbox,
        regions,
    ]


def stats_csv(stats: RegionStats) -> bytes:
    """Encode the statistics as one CSV table (see the module docstring).

    Parameters
    ----------
    stats : RegionStats

    Returns
    -------
    data : bytes
        UTF-8, newline line ends.
    """
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    classes = stats.class_rows()
    for row in classes:
        w.writerow(_csv_row("class", row, row["color"], row["regions"]))
    for row in stats.region_rows():
        w.writerow(_csv_row("region", row, classes[row["class"]]["color"], ""))
    return buf.getvalue().encode("utf-8")


def stats_json(stats: RegionStats) -> bytes:
    """Encode the statistics as strict JSON (see the module docstring).

    Parameters
    ----------
    stats : RegionStats

    Returns
    -------
    data : bytes
    """
    doc = {
        "format": "vq-region-stats",
        "version": 1,
        "width": stats.width,
        "height": stats.height,
        "pixels": stats.n_pixels,
        "connectivity": 4,
        "classes": stats.class_rows(),
        "regions": stats.region_rows(),
    }
    return (json.dumps(json_safe(doc), indent=1, allow_nan=False) + "\n").encode("utf-8")
