"""The "Compare" panel's numbers: one record per method and scope, shown in a table and written as CSV.

A record holds the numbers as ``emsr evaluate --json`` names them (means over slices and standard
deviations, the resolution in nm and px), plus what was compared; the table shows them rounded,
the CSV file in full.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

__all__ = ["records_of", "COLUMNS", "CSV_FIELDS", "cell_texts", "cell_tip", "write_csv"]

COLUMNS = ("Method", "Scope", "PSNR", "SSIM", "FRC", "Resolution")
CSV_FIELDS = (
    "method", "scope", "slices", "psnr", "psnr_std", "ssim", "ssim_std", "frc_mean", "frc_mean_std",
    "resolution_nm", "resolution_px", "resolution_reached", "threshold", "resolution_window", "field",
    "data_range", "pixel_size_nm",
)  # fmt: skip


def records_of(scores: Any, *, field: str, pixel_size: float | None) -> list[dict[str, Any]]:
    """One record per method of a :class:`~napari_emsr.metrics.Scores`."""
    scope = f"slice {scores.z}" if scores.scope == "slice" else f"stack ({scores.slices})"
    data_range = None if scores.data_range is None else scores.data_range.value
    records = []
    for label, result in scores.results.items():
        record = {"method": label, "scope": scope, "field": field, "data_range": data_range,
                  "pixel_size_nm": pixel_size}  # fmt: skip
        if hasattr(result, "summary"):  # a StackEvaluation
            summary = result.summary()
            record.update({k: summary[k] for k in ("slices", "psnr", "psnr_std", "ssim", "ssim_std", "frc_mean",
                                                   "frc_mean_std")})  # fmt: skip
            window = result.resolution_curve.window
        else:  # a ReferenceFreeResolution
            record.update(slices=2 * result.n_pairs if scores.scope == "stack" else 2, frc_mean=result.frc_mean)
            window = result.curve.window
        resolution = result.resolution
        record.update(resolution_nm=resolution.resolution_nm, resolution_px=resolution.resolution_px,
                      resolution_reached=resolution.reached, threshold=resolution.threshold,
                      resolution_window=window or "none", describe=resolution.describe())  # fmt: skip
        records.append(record)
    return records


def _number(value: Any, digits: int, std: Any = None) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "inf"
    return f"{value:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def cell_texts(record: dict[str, Any]) -> list[str]:
    """Return the table's cells for a record (stack means; the standard deviations are in :func:`cell_tip`)."""
    if record["resolution_reached"]:
        nm, px = record["resolution_nm"], record["resolution_px"]
        resolution = f"{nm:.1f} nm" if nm is not None else f"{px:.2f} px"
    else:
        resolution = "< 2 px"
    return [
        record["method"],
        record["scope"],
        _number(record.get("psnr"), 2),
        _number(record.get("ssim"), 4),
        _number(record.get("frc_mean"), 4),
        resolution,
    ]


def cell_tip(record: dict[str, Any]) -> str:
    """Return the record in words: every number with its standard deviation over slices, and the resolution."""
    parts = [f"{record['method']}, {record['scope']}"]
    for key, name, digits in (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM", 4), ("frc_mean", "mean FRC", 4)):
        if record.get(key) is not None:
            parts.append(f"{name} {_number(record[key], digits, record.get(key + '_std'))}")
    window = record["resolution_window"]
    parts.append(f"resolution {record['describe']}, {window} window; compared on {record['field']}")
    return "\n".join(parts)


def write_csv(path: str | Path, records: list[dict[str, Any]]) -> Path:
    """Write the records, one row each, with a header (numbers in full precision; empty when unknown)."""
    path = Path(path)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({k: ("" if record.get(k) is None else record.get(k)) for k in CSV_FIELDS})
    return path
