"""The "Fine-tune" panel's checks of its inputs and its messages (no widgets here).

- :func:`pair_inputs`: the LR and HR layers as ``prepare_pair`` takes them: data and in-plane pixel
  sizes from the layers' scales (or the base model's scale when sizes are unknown), refused early
  with a message when they cannot work;
- :func:`resume_point`: where a saved run stands and where its HR field was;
- :func:`train_progress`: how a training event shows in the progress bar;
- :func:`noise_summary`, :func:`trained_message`, :func:`kept_message`: what the user reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from napari_emsr._napari.common.run_panel import format_seconds

__all__ = ["pair_inputs", "resume_point", "train_progress", "noise_summary", "trained_message", "kept_message"]


def pair_inputs(lr_layer: Any, hr_layer: Any, base_of: Callable[[], Any]) -> dict[str, Any]:
    """Layers, data and ``prepare_pair``'s size arguments for an LR / HR layer pair.

    ``base_of()`` gives the base model (None for a new network); it is asked for only once the layers
    are found usable, for its scale.

    Raises
    ------
    ValueError
        (``LayerError``, ``PairError``) for missing, equal, 2D or RGB layers, non-square pixels, a ratio
        outside x1..x4, a base model of another scale, or unknown pixel sizes without a base model.
    """
    from napari_emsr._napari.common.layers import LayerError, image_data, in_plane_pixel_size
    from napari_emsr.training.pairs import integer_ratio

    if lr_layer is None or hr_layer is None:
        raise LayerError(
            "choose an LR and an HR image layer (e.g. File > Open Sample > napari-emsr > EM pair (FlyEM FIB-SEM))"
        )
    if lr_layer == hr_layer:
        raise LayerError("choose different layers for LR and HR")
    lr, hr = image_data(lr_layer), image_data(hr_layer)
    for layer, data in ((lr_layer, lr), (hr_layer, hr)):
        if data.ndim != 3 or data.shape[0] < 2:
            raise LayerError(f"layer '{layer.name}' has shape {tuple(data.shape)}: fine-tuning needs (z, y, x) stacks")
    lr_px, hr_px = in_plane_pixel_size(lr_layer), in_plane_pixel_size(hr_layer)
    base = base_of()
    if lr_px and hr_px:
        scale, _ = integer_ratio(lr_px, hr_px)
        if base is not None and base.config.scale != scale:
            from napari_emsr.zoo import zoo_models

            shipped = [m.name for m in zoo_models() if m.scale == scale]
            raise ValueError(
                f"the base model is x{base.config.scale}, but the layers' pixel sizes ({lr_px:g} and {hr_px:g} nm) "
                f"make a x{scale} pair; choose a x{scale} model"
                + (f" (shipped: {', '.join(shipped)})" if shipped else "") + " or a new network"
            )
        return {"lr_layer": lr_layer, "hr_layer": hr_layer, "lr": lr, "hr": hr,
                "lr_pixel_nm": lr_px, "hr_pixel_nm": hr_px, "scale": None}  # fmt: skip
    if base is None:
        unknown = lr_layer.name if not lr_px else hr_layer.name
        raise LayerError(
            f"the pixel size of layer '{unknown}' is unknown (its scale is 1 pixel): give both layers their "
            "scale in nm (Layer properties, or layer.scale), or start from a model file, whose scale is then used"
        )
    return {"lr_layer": lr_layer, "hr_layer": hr_layer, "lr": lr, "hr": hr,
            "lr_pixel_nm": None, "hr_pixel_nm": None, "scale": base.config.scale}  # fmt: skip


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


def train_progress(event: Any) -> tuple[float | None, str | None, bool]:
    """Return the progress bar for a training event: share of steps (or of the time budget), elapsed, left."""
    kind = getattr(event, "kind", "")
    if kind not in ("step", "done"):
        return None, None, False
    fraction = event.step / max(event.total_steps, 1)
    if kind == "step" and event.eta_s is not None and event.elapsed_s > 0:
        fraction = max(fraction, event.elapsed_s / (event.elapsed_s + max(event.eta_s, 0.0)))
    left = "" if kind == "done" else f", {format_seconds(event.eta_s)} left"
    text = f"%p%  (step {event.step}/{event.total_steps}, {format_seconds(event.elapsed_s)} elapsed{left})"
    return (1.0 if kind == "done" else fraction), text, kind == "done"


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
