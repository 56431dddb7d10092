"""``emsr evaluate``: PSNR, SSIM, mean FRC and FRC resolution of a prediction against a reference."""

from __future__ import annotations

import argparse
import json
import math
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_emsr.cli._progress import cli_option
from napari_emsr.errors import Hint

if TYPE_CHECKING:
    from napari_emsr.metrics import DataRange

_THRESHOLDS = ("1/7", "half-bit")
_WINDOWS = ("none", "hann", "tukey")


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``emsr evaluate`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "evaluate",
        help="score a prediction against a reference (PSNR, SSIM, FRC)",
        description=(
            "Compare PREDICTION with REFERENCE slice by slice: PSNR, SSIM, mean FRC and FRC resolution per slice, "
            "their mean and standard deviation over slices, and the resolution of the FRC pooled over all "
            "slices. With --lr, the same for bicubic up-sampling of the LR input, side by side. Conventions: "
            "docs/evaluation.md."
        ),
    )
    p.add_argument("reference", metavar="REFERENCE",
                   help="reference (HR) image or stack (TIFF, PNG slices, Zarr, MRC, HDF5 or N5, as emsr predict)")
    p.add_argument("prediction", metavar="PREDICTION", help="prediction to score, same field and pixel size")
    p.add_argument("--lr", metavar="LR_FILE", help="the LR input; its bicubic up-sampling is scored too")
    p.add_argument("--z-consistency", action="store_true",
                   help="with --lr and stacks: how consistently PREDICTION (and bicubic) follow the LR input "
                        "from slice to slice: flicker index and xz / yz FRC (docs/evaluation.md; reads the "
                        "stacks whole)")  # fmt: skip
    p.add_argument("--pixel-size", type=float, metavar="NM", help="REFERENCE pixel size in nm (default: from the file)")
    p.add_argument("--json", metavar="OUT", help="write all results as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="write the pooled FRC curves with the threshold lines")
    p.add_argument(
        "--crop", action="store_true", help="compare the common region when the images differ only by a border"
    )
    p.add_argument(
        "--crop-anchor",
        choices=("top-left", "centre"),
        default="top-left",
        help="where the common region sits (default: top-left, as when an image was cropped to a multiple of the "
        "scale before down-sampling)",
    )
    p.add_argument("--threshold", choices=_THRESHOLDS, default="1/7", help="FRC resolution threshold (default: 1/7)")
    p.add_argument(
        "--window",
        choices=_WINDOWS,
        default="none",
        help="window for the mean FRC (default: none, the paper's convention, comparable with its Table I)",
    )
    p.add_argument(
        "--resolution-window",
        choices=_WINDOWS,
        default="hann",
        help="window for the FRC resolution (default: hann, which removes the correlated artefact of the "
        "non-periodic image border; none: the paper's convention)",
    )
    p.add_argument(
        "--data-range",
        type=float,
        metavar="L",
        help="intensity range for PSNR/SSIM (default: 255 for uint8, 65535 for uint16; for float data the "
        "reference's max - min)",
    )


class _Bicubic:
    """Bicubic up-sampling of an LR stack, one slice at a time (a lazy (Z, H*s, W*s) view)."""

    def __init__(self, lr, scale: int) -> None:
        self.lr, self.scale = lr, scale
        self.shape = (lr.shape[0] if lr.ndim == 3 else 1, lr.shape[-2] * scale, lr.shape[-1] * scale)

    def __getitem__(self, z: int) -> np.ndarray:
        from napari_emsr.resample import bicubic_upsample

        return bicubic_upsample(np.asarray(self.lr[z] if self.lr.ndim == 3 else self.lr), self.scale)


class _Checked:
    """A lazy view of a stack (or 2D image) that checks each slice as it is read.

    NaN/inf values or a constant slice end the command with a message naming the user's file and
    the slice.
    """

    def __init__(self, data, name: str) -> None:
        self.data, self.name = data, name
        self.shape, self.dtype = tuple(data.shape), data.dtype
        self.ndim = len(self.shape)

    def _check(self, image: np.ndarray, z: int) -> np.ndarray:
        from napari_emsr.cli import CLIError

        where = f"{self.name}: slice {z}" if self.ndim == 3 else self.name
        if np.dtype(image.dtype).kind not in "biu":
            bad = int(np.count_nonzero(~np.isfinite(image)))
            if bad:
                raise CLIError(f"{where} has {bad} NaN or infinite value(s); replace or mask them first")
        if image.size and image.min() == image.max():
            raise CLIError(
                f"{where} is constant (every pixel is {image.flat[0]:g}): it has no structure to compare, and its "
                "FRC is undefined"
            )
        return image

    def __getitem__(self, z: int) -> np.ndarray:
        return self._check(np.asarray(self.data[z]), z)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        image = self._check(np.asarray(self.data), 0) if self.ndim == 2 else np.asarray(self.data)
        return image if dtype is None else image.astype(dtype, copy=False)


def _names(args: argparse.Namespace) -> dict[str, str]:
    """How messages name the user's inputs: the file and its role."""
    names = {"reference": f"{args.reference} (the reference)", "prediction": f"{args.prediction} (the prediction)"}
    if args.lr:
        names["lr"] = f"{args.lr} (the LR input)"
    return names


def _cli_hint(hint: Hint) -> str:
    """Phrase a library hint as this command's options (``crop="centre"`` is ``--crop --crop-anchor centre``)."""
    if hint.option == "crop":
        return "use --crop" + ("" if hint.value == "top-left" else f" --crop-anchor {hint.value}")
    return cli_option(hint)


def _range_text(data_range: DataRange) -> str:
    return "given with --data-range" if data_range.given else data_range.describe(cli_option)


def run(args: argparse.Namespace) -> int:
    """Run ``emsr evaluate`` with the parsed ``args``; return the exit status."""
    from napari_emsr.cli import CLIError
    from napari_emsr.cli._progress import drive
    from napari_emsr.io import open_volume
    from napari_emsr.metrics import EvaluationOptions, ScoringError, iter_compare

    names = _names(args)
    if args.z_consistency and not args.lr:
        raise CLIError("--z-consistency compares the prediction with its LR input: give --lr LR_FILE too")
    with ExitStack() as files:
        ref = files.enter_context(_checked(open_volume(args.reference)))
        pred = files.enter_context(_checked(open_volume(args.prediction)))
        methods: dict[str, Any] = {"prediction": _Checked(pred.data, names["prediction"])}
        whats = {"prediction": names["prediction"]}
        scale = None
        if args.lr:
            lr = files.enter_context(_checked(open_volume(args.lr)))
            scale = _scale(pred.data.shape, lr.data.shape, args.lr)
            methods[f"bicubic x{scale}"] = _Bicubic(_Checked(lr.data, names["lr"]), scale)
            whats[f"bicubic x{scale}"] = f"bicubic x{scale} of {names['lr']}"
        pixel_size = args.pixel_size if args.pixel_size is not None else _in_plane(ref)
        options = EvaluationOptions(
            data_range=args.data_range, pixel_size=pixel_size, threshold=args.threshold,
            crop=args.crop_anchor if args.crop else None, window=None if args.window == "none" else args.window,
            resolution_window=None if args.resolution_window == "none" else args.resolution_window,
        )  # fmt: skip
        consistency = _z_consistency(pred, lr, scale) if args.z_consistency and scale is not None else None
        events = iter_compare(_Checked(ref.data, names["reference"]), methods, options)
        try:
            _, last = drive(events, desc="emsr evaluate")
        except ScoringError as exc:
            what = f"scoring {whats[exc.label]} against {names['reference']}"
            raise CLIError(f"{what}: {exc.phrased(_cli_hint)}") from None
    assert last is not None and last.kind == "done"  # the job ends with its result
    scores = last.payload
    results = list(scores.results.values())
    report = _report(args, results, scores.data_range, pixel_size, scale)
    print(_table(report, results))
    if consistency is not None:
        report["z_consistency"] = consistency
        for name, c in consistency.items():
            planes = "n/a (< 8 slices)" if c["frc_xz"] is None else f"{c['frc_xz']:.3f} / {c['frc_yz']:.3f}"
            print(f"z-consistency of {name} against the LR input: flicker index {c['flicker_index']:.3f} "
                  f"(1: as the input), xz / yz mean FRC {planes}")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(_finite(report), indent=2, allow_nan=False) + "\n")
    if args.plot:
        title = f"{Path(args.prediction).name} vs {Path(args.reference).name}"
        _plot(results, args.plot, threshold=args.threshold, title=title)
    return 0


def _z_consistency(pred, lr, scale: int) -> dict[str, dict[str, Any]]:
    """Flicker index and xz / yz FRC of the prediction and of bicubic, against the LR input (3D stacks)."""
    from napari_emsr.cli import CLIError
    from napari_emsr.metrics import z_consistency
    from napari_emsr.resample import bicubic_upsample

    if pred.data.ndim != 3 or lr.data.ndim != 3:
        raise CLIError("--z-consistency needs stacks (z, y, x): PREDICTION and --lr are single images")
    low = np.asarray(lr.data, dtype=np.float64)
    try:
        return {
            "prediction": z_consistency(np.asarray(pred.data), low, scale=scale).to_dict(),
            "bicubic": z_consistency(bicubic_upsample(low, scale), low, scale=scale).to_dict(),
        }
    except ValueError as exc:
        raise CLIError(f"--z-consistency: {exc}") from None


def _checked(volume):
    """Return the volume, if it is a 2D image or a (z, y, x) stack (closed and refused otherwise)."""
    if volume.data.ndim not in (2, 3):
        from napari_emsr.cli import CLIError

        volume.close()
        raise CLIError(f"{volume.path}: expected a 2D image or a (z, y, x) stack, got shape {volume.data.shape}")
    return volume


def _scale(pred_shape, lr_shape, lr_path: str) -> int:
    from napari_emsr.cli import CLIError

    ratios = [p / n for p, n in zip(pred_shape[-2:], lr_shape[-2:], strict=False)]
    scale = round(ratios[0])
    if scale < 1 or any(abs(r - scale) > 1e-9 for r in ratios):
        raise CLIError(
            f"{lr_path}: PREDICTION slices ({pred_shape[-2]} x {pred_shape[-1]}) are not an integer multiple of the "
            f"LR slices ({lr_shape[-2]} x {lr_shape[-1]}), same on both axes; ratio {ratios[0]:.4g} x {ratios[1]:.4g}"
        )
    return scale


def _in_plane(volume) -> float | None:
    """Return the in-plane pixel size (nm) from the file's per-axis sizes; None if unknown."""
    from napari_emsr.cli import CLIError

    size = getattr(volume, "pixel_size_nm", None)
    if size is None:
        return None
    if np.ndim(size) == 0:
        return float(size)
    known = [float(v) for v in tuple(size)[-2:] if v is not None]
    if not known:
        return None
    if not math.isclose(min(known), max(known), rel_tol=0.01):
        raise CLIError(
            f"{volume.path}: pixels are not square ({known[0]:g} x {known[1]:g} nm) and FRC rings assume square "
            "pixels; resample, or give --pixel-size"
        )
    return known[-1]


def _report(args, results, data_range: DataRange, pixel_size, scale) -> dict[str, Any]:
    prediction = results[0].summary()
    report = {
        "reference": str(args.reference),
        "prediction": str(args.prediction),
        "lr": args.lr,
        "scale": scale,
        "compared_shape": list(results[0].curve.shape),
        "crop": args.crop_anchor if args.crop else None,
        "data_range": data_range.value,
        "data_range_source": _range_text(data_range),
        "pixel_size_nm": pixel_size,
        **prediction,
    }
    if len(results) > 1:
        report["bicubic"] = results[1].summary()
    return report


def _finite(value):
    """JSON cannot hold inf/NaN (PSNR of identical images is inf): write them as null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _fmt(mean: float, std: float | None, digits: int) -> str:
    if not math.isfinite(mean):
        return "inf"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _table(report: dict[str, Any], results) -> str:
    px = report["pixel_size_nm"]
    lines = [
        f"reference:  {report['reference']} ({results[0].psnr.size} slice(s), compared region "
        f"{report['compared_shape'][0]} x {report['compared_shape'][1]}"
        + (f", crop {report['crop']})" if report["crop"] else ")"),
        f"data range: {report['data_range']:g} ({report['data_range_source']})",
        f"pixel size: {f'{px:g} nm' if px else 'unknown (resolution in pixels; give --pixel-size)'}",
        f"mean ± std over slices; mean FRC with {results[0].curve.window or 'no'} window; resolution of the FRC "
        f"pooled over all slices, {results[0].resolution_curve.window or 'no'} window",
        "",
        f"{'':<14}{'PSNR (dB)':>16}{'SSIM':>18}{'mean FRC':>18}   resolution",
    ]
    for r in results:
        s = r.summary()
        lines.append(
            f"{r.label:<14}{_fmt(s['psnr'], s['psnr_std'], 2):>16}{_fmt(s['ssim'], s['ssim_std'], 4):>18}"
            f"{_fmt(s['frc_mean'], s['frc_mean_std'], 4):>18}   {r.resolution.describe()}"
        )
    lines += ["", "per slice:  " + "   |   ".join(f"{r.label}: PSNR  SSIM  FRC  res" for r in results)]
    for z in range(results[0].psnr.size):
        cells = []
        for r in results:
            res = r.resolutions[z]
            value = "n/r" if not res.reached else (f"{res.resolution_nm:.1f}nm" if px else f"{res.resolution_px:.2f}px")
            cells.append(f"{_fmt(r.psnr[z], None, 2)}  {r.ssim[z]:.4f}  {r.frc_mean[z]:.4f}  {value}")
        lines.append(f"  z={z:<6}" + "   |   ".join(cells))
    return "\n".join(lines)


def _plot(results, path: str, *, threshold: str, title: str) -> None:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        from napari_emsr.cli import CLIError

        raise CLIError("--plot needs matplotlib: pip install 'napari-emsr[plot]'") from exc

    from napari_emsr.metrics import frc_threshold

    first = results[0].resolution_curve
    per_nm = first.pixel_size_nm is not None
    x = first.frequency_per_nm if per_nm else first.frequency
    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for r in results:
        label = f"{r.label} ({first.window or 'no'} window): {r.resolution.describe()}"
        (line,) = ax.plot(x, r.resolution_curve.frc, label=label)
        colour = line.get_color()
        if r.curve is not r.resolution_curve:
            label = f"{r.label} ({r.curve.window or 'no'} window)"
            ax.plot(x, r.curve.frc, color=colour, alpha=0.4, linewidth=1, label=label)
        if r.resolution.reached:
            ax.axvline(r.resolution.frequency / (first.pixel_size_nm if per_nm else 1.0), color=colour, linestyle=":")
    ax.plot(x, frc_threshold(first, "1/7"), "k--", linewidth=1, label="1/7 threshold")
    ax.plot(x, frc_threshold(first, "half-bit"), "k-.", linewidth=1, label="half-bit threshold (pooled rings)")
    ax.set_xlabel("spatial frequency (1/nm)" if per_nm else "spatial frequency (cycles/pixel)")
    ax.set_ylabel("FRC")
    ax.set_ylim(min(-0.1, float(min(r.resolution_curve.frc.min() for r in results))), 1.02)
    ax.set_xlim(0, float(x[-1]))
    ax.axhline(0, color="0.7", linewidth=0.5)
    ax.set_title(f"{title} ({first.n_slices} slice(s); resolution at the {threshold} threshold)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
