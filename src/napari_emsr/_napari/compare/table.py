"""The "Compare" panel's numbers: one record per method and scope, shown in a table and written as CSV.

A record holds the numbers as ``emsr evaluate --json`` names them (means over slices and standard
deviations, the resolution in nm and px), plus what was compared; the table shows them rounded,
the CSV file in full.

z-consistency has records of its own (scope ``"z-consistency"``; :func:`z_records_of`), shown in a
second table (:data:`Z_COLUMNS`) and written to the same CSV file, in its own columns.
:func:`style_table` and :func:`fill_table` show records in a ``QTableWidget``.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Callable

from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

__all__ = ["records_of", "COLUMNS", "CSV_FIELDS", "cell_texts", "cell_tip", "write_csv", "z_records_of", "Z_COLUMNS",
           "Z_TIPS", "z_cell_texts", "z_cell_tip", "style_table", "fill_table"]  # fmt: skip

COLUMNS = ("Method", "Scope", "PSNR", "SSIM", "FRC", "Resolution")
CSV_FIELDS = (
    "method", "scope", "slices", "psnr", "psnr_std", "ssim", "ssim_std", "frc_mean", "frc_mean_std",
    "resolution_nm", "resolution_px", "resolution_reached", "threshold", "resolution_window", "field",
    "data_range", "pixel_size_nm", "flicker_index", "flicker_output", "flicker_input", "frc_xz", "frc_yz", "z_scale",
)  # fmt: skip
Z_COLUMNS = ("Method", "Flicker index", "xz FRC", "yz FRC")
Z_TIPS = (
    "the stack, and bicubic of the LR, compared with the whole LR stack",
    "flicker index: slice-to-slice change of the result (down-sampled to the LR grid) over that of the LR;\n"
    "1 = as consistent as the input, higher = flicker, lower = smoother (denoising lowers it)",
    "mean FRC of the result's xz planes (down-sampled) with the LR's: 1 = the same planes;\n"
    "flicker, or any change of the LR's structure, lowers it (not a resolution along z)",
    "mean FRC of the result's yz planes (down-sampled) with the LR's: 1 = the same planes;\n"
    "flicker, or any change of the LR's structure, lowers it (not a resolution along z)",
)


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


def z_records_of(results: dict[str, Any], *, lr: str) -> list[dict[str, Any]]:
    """One record per stack of the z-consistency results (label -> :class:`~napari_emsr.metrics.ZConsistency`)."""
    records = []
    for label, result in results.items():
        record = {"method": label, "scope": "z-consistency", "field": f"whole stacks against the LR '{lr}'"}
        record.update(result.to_dict())
        record["z_scale"] = record.pop("scale")
        records.append(record)
    return records


def z_cell_texts(record: dict[str, Any]) -> list[str]:
    """Return the z-consistency table's cells for a record (``-``: fewer than 8 slices, no plane FRC)."""
    return [record["method"], _number(record["flicker_index"], 3), _number(record["frc_xz"], 3),
            _number(record["frc_yz"], 3)]  # fmt: skip


def z_cell_tip(record: dict[str, Any]) -> str:
    """Return a z-consistency record in words."""
    planes = "no xz / yz FRC (fewer than 8 slices)" if record["frc_xz"] is None else (
        f"xz / yz mean FRC against the LR's planes {record['frc_xz']:.4f} / {record['frc_yz']:.4f}")  # fmt: skip
    return (
        f"{record['method']}, x{record['z_scale']}, {record['slices']} slices, {record['field']}\n"
        f"flicker index {record['flicker_index']:.4f}: mean |slice step| {record['flicker_output']:.4g} "
        f"(down-sampled to the LR grid) over the LR's {record['flicker_input']:.4g}; 1 = as the input, "
        f"higher = flicker\n{planes}"
    )


def style_table(table: QTableWidget, columns: tuple[str, ...], tips: tuple[str, ...] = ()) -> None:
    """Set up a read-only table: headers (with tooltips), no row numbers, the first column stretched."""
    table.setHorizontalHeaderLabels(columns)
    for column, tip in enumerate(tips):
        item = table.horizontalHeaderItem(column)
        if item is not None:
            item.setToolTip(tip)
    rows = table.verticalHeader()
    if rows is not None:
        rows.setVisible(False)
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setWordWrap(False)
    header = table.horizontalHeader()
    assert header is not None  # a QTableWidget always has one
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)  # long names are elided (full in the tooltip)


def fill_table(table: QTableWidget, records: list[dict[str, Any]], texts: Callable[[dict[str, Any]], list[str]],
          tip: Callable[[dict[str, Any]], str]) -> None:  # fmt: skip
    """Show one record a row: ``texts(record)`` in the cells, ``tip(record)`` as their tooltip."""
    table.setRowCount(len(records))
    for row, record in enumerate(records):
        words = tip(record)
        for column, text in enumerate(texts(record)):
            item = QTableWidgetItem(text)
            item.setToolTip(words)
            table.setItem(row, column, item)
