"""The "Fine-tune" panel's reading of its layers and its messages (no widgets here).

- :func:`pair_spec`: the LR and HR layers as a :class:`~napari_emsr.training.PairSpec` (data, names
  and in-plane pixel sizes from the layers' scales), refused early with a message when the layers
  are missing or the same; the library checks the rest;
- :func:`resume_point`: where a saved run stands and where its HR field was;
- :func:`noise_summary`, :func:`trained_message`, :func:`kept_message`: what the user reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_emsr._napari.common.run_panel import format_seconds

__all__ = ["pair_spec", "layer_name", "resume_point", "noise_summary", "trained_message", "kept_message"]


def layer_name(layer: Any) -> str:
    """How messages and the provenance name a layer: ``"layer 'EM LR' (path)"`` or ``"layer 'EM LR'"``."""
    path = getattr(getattr(layer, "source", None), "path", None)
    return f"layer '{layer.name}' ({path})" if path else f"layer '{layer.name}'"


def pair_spec(lr_layer: Any, hr_layer: Any, **options: Any) -> Any:
    """Return the :class:`~napari_emsr.training.PairSpec` of an LR / HR layer pair (``options``: offset, ...).

    Raises
    ------
    ValueError
        (``LayerError``, ``HintedValueError``, ``PairError``) for missing or equal layers, 2D or RGB
        layers, non-square pixels or a ratio outside x1..x4.
    """
    from napari_emsr._napari.common.layers import LayerError, image_data, in_plane_pixel_size
    from napari_emsr.training import PairSpec

    if lr_layer is None or hr_layer is None:
        raise LayerError(
            "choose an LR and an HR image layer (e.g. File > Open Sample > napari-emsr > EM pair (FlyEM FIB-SEM))"
        )
    if lr_layer == hr_layer:
        raise LayerError("choose different layers for LR and HR")
    return PairSpec(
        image_data(lr_layer), image_data(hr_layer), lr_pixel_size=in_plane_pixel_size(lr_layer),
        hr_pixel_size=in_plane_pixel_size(hr_layer), lr_name=f"layer '{lr_layer.name}'",
        hr_name=f"layer '{hr_layer.name}'", **options,
    )  # fmt: skip


def _provenance(path: Path) -> dict[str, Any]:
    from napari_emsr.model_io import read_model_header

    return read_model_header(path)[1].get("provenance", {})


def resume_point(out: Path, steps: int, offset: Any) -> tuple[Any, int]:
    """Return (the HR field offset the saved run used, the step it reached) for resuming into ``out``."""
    from napari_emsr.training import checkpoint_path

    ckpt = checkpoint_path(out)
    if not ckpt.is_file():
        raise FileNotFoundError(f"nothing to resume: no {ckpt.name} next to {out.name}; Train first")
    provenance = _provenance(ckpt)
    step = int(provenance.get("steps", 0))
    if step >= steps:
        raise ValueError(f"the saved run already made {step} steps: set Steps above {step} to continue it")
    saved = provenance.get("pair", {}).get("offset_zyx")
    return (tuple(int(v) for v in saved) if saved else offset), step


def noise_summary(checked: Any) -> tuple[str, bool]:
    """One paragraph on the eq. 9 check of the HR reference, and whether it holds."""
    c = checked.check

    def verdict(holds: bool) -> str:
        return "holds" if holds else "FAILS"

    text = (
        f"HR reference, eq. 9 (slices {checked.slices}): (9a) E[x]/|E[n]| = {c.ratio_mean:.3g} {verdict(c.holds_9a)}, "
        f"(9b) var(x)/var(n) = {c.ratio_var:.3g} ({c.ratio_var_mad:.3g} without a denoiser) {verdict(c.holds_9b)}; "
        f"needs >= {c.required_ratio:g}. "
    )
    text += "Usable as a training reference." if c.ok else "Too noisy to stand in for a clean reference."
    return text, c.ok


def _best(path: Path) -> dict[str, Any] | None:
    return _provenance(path).get("best_validation") if path.is_file() else None


def trained_message(out: Path, seconds: float, offered: bool) -> str:
    """Say what a finished run saved, and where the model is offered."""
    best = _best(out) or {}
    scores = ""
    if best:
        bic = best["bicubic"]
        scores = (f" (step {best['step']}: validation SSIM {best['ssim']:.4f}, bicubic {bic['ssim']:.4f}; "
                  f"PSNR {best['psnr']:.2f} dB, bicubic {bic['psnr']:.2f})")  # fmt: skip
    where = (
        " It is now the model of the Super-resolve panel."
        if offered
        else " 'Super-resolve with it' opens the Super-resolve panel with it."
    )
    return f"Done in {format_seconds(seconds)}: the best model{scores} is saved in {out}.{where}"


def kept_message(out: Path, started: float, *, cancelled: bool = True) -> str:
    """Say what a stopped run (started at wall time ``started``) kept: the best model and the last state."""
    from napari_emsr.training import checkpoint_path

    ckpt = checkpoint_path(out)
    head = "Cancelled" if cancelled else "Stopped"
    if not ckpt.is_file() or ckpt.stat().st_mtime < started - 1.0:
        return f"{head} before the first step: nothing was saved."
    step = int(_provenance(ckpt).get("steps", 0))
    best = _best(out) or {}
    kept = f"the best model so far (step {best['step']}, validation SSIM {best['ssim']:.4f})" if best else "the model"
    return f"{head} at step {step}: {kept} is kept in {out}; Resume continues from step {step} ({ckpt.name})."
