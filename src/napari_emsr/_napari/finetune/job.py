"""The work behind the "Fine-tune" panel, run in its worker thread: the same calls as ``emsr finetune``.

:func:`training_events` aligns the pair with :func:`napari_emsr.training.prepare_pair`, checks the HR
reference (:func:`napari_emsr.metrics.noise_check`), then yields the events of
:func:`napari_emsr.training.iter_finetune`, and after each validation a preview: the network as
just saved (the ``.last`` checkpoint) applied to an LR crop of a held-out slice, through
:func:`napari_emsr.super_resolve`. Closing the generator (Cancel) closes ``iter_finetune``, which
saves the last state and keeps the best model. No Qt here: the panel turns the events into widgets.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator

import numpy as np

__all__ = [
    "FineTuneJob",
    "PairFound",
    "NoiseChecked",
    "Preview",
    "locate",
    "check_reference",
    "training_events",
    "checkpoint_step",
]


@dataclass
class PairFound:
    """Where the HR field lies in the LR volume (``report.offset``, LR pixels) and how well it matches."""

    report: Any
    kind: str = "pair"


@dataclass
class NoiseChecked:
    """The eq. 9 check of the HR reference on a few of its slices."""

    check: Any
    slices: list[int]
    kind: str = "noise"


@dataclass
class Preview:
    """The network's output on an LR crop; ``offset`` is the crop's first LR pixel (z, y, x)."""

    step: int
    image: np.ndarray
    offset: tuple[int, int, int]
    scale: int
    kind: str = "preview"


@dataclass
class FineTuneJob:
    """Everything one training run needs, resolved from the panel's fields (GUI thread)."""

    lr: Any
    hr: Any
    out: Path
    config: Any
    lr_pixel_nm: float | None = None
    hr_pixel_nm: float | None = None
    scale: int | None = None
    offset: tuple[int, int, int] | None = None
    min_score: float = 0.5
    base: Any = None
    preset: str = "lite"
    val_slices: str | None = None
    resume: bool = False
    resume_step: int = 0
    overwrite: bool = False
    check_noise: bool = True
    provenance: dict[str, Any] = field(default_factory=dict)


def locate(lr: Any, hr: Any, *, lr_pixel_nm, hr_pixel_nm, scale, min_score: float) -> tuple[Any, NoiseChecked]:
    """Find the HR field in the LR volume and check the HR reference (the panel's "Locate" button)."""
    from napari_emsr.training import prepare_pair

    _, _, report = prepare_pair(
        lr, hr, lr_pixel_nm=lr_pixel_nm, hr_pixel_nm=hr_pixel_nm, scale=scale, min_score=min_score
    )
    return report, check_reference(hr)


def check_reference(hr: Any, *, count: int = 4) -> NoiseChecked:
    """:func:`~napari_emsr.metrics.noise_check` on ``count`` slices spread over the HR stack.

    The data range is that of the dtype (uint8: 255), or for floating-point data the max - min of the
    checked slices.
    """
    from napari_emsr.metrics import noise_check
    from napari_emsr.metrics._checks import dtype_data_range

    picks = np.unique(np.linspace(0, hr.shape[0] - 1, min(count, hr.shape[0])).round().astype(int))
    stack = np.stack([np.asarray(hr[int(z)]) for z in picks])
    data_range = dtype_data_range(stack.dtype) or float(np.ptp(stack)) or 1.0
    return NoiseChecked(noise_check(stack, data_range=data_range), [int(z) for z in picks])


def checkpoint_step(path: Path) -> int | None:
    """Return the training step a model file or checkpoint was saved at (None if it says nothing)."""
    from napari_emsr.model_io import read_model_header

    steps = read_model_header(path)[1].get("provenance", {}).get("steps")
    return None if steps is None else int(steps)


class _PreviewCrop:
    """An LR crop of the middle held-out slice, as the trainer's validation crops are cut."""

    def __init__(self, job: FineTuneJob, lr_part: np.ndarray, report: Any) -> None:
        from napari_emsr.training.data import parse_slices

        held = parse_slices(job.val_slices, lr_part.shape[0])
        z = held[len(held) // 2]
        h, w = lr_part.shape[1:]
        c = min(job.config.val_crop, h, w)
        y0, x0 = (h - c) // 2, (w - c) // 2
        self.crop = np.ascontiguousarray(lr_part[z, y0 : y0 + c, x0 : x0 + c])
        z_off, y_off, x_off = report.offset
        self.offset = (z_off + z, y_off + y0, x_off + x0)
        self.scale, self.out, self.device = report.scale, job.out, job.config.device
        self.lr_pixel_nm = job.lr_pixel_nm
        self.shown_step: int | None = None

    def render(self, step: int) -> Preview | None:
        """Return the saved network at ``step`` on the crop; None if the checkpoint holds another step."""
        from napari_emsr import load_model, super_resolve
        from napari_emsr.training import checkpoint_path

        path = checkpoint_path(self.out)
        if step == self.shown_step or not path.is_file() or checkpoint_step(path) != step:
            return None
        self.shown_step = step
        model = load_model(path)
        with warnings.catch_warnings():  # the run's own warnings are shown; the preview's would repeat them
            warnings.simplefilter("ignore")
            image = super_resolve(
                self.crop, model, device=self.device, overlap=0, tile=max(self.crop.shape), pixel_size=self.lr_pixel_nm
            )
        return Preview(step, image[None], self.offset, self.scale)


def training_events(job: FineTuneJob) -> Generator[Any, None, None]:
    """Align the pair, check the reference, then train; yields PairFound, NoiseChecked, TrainEvents, Previews."""
    from napari_emsr.training import iter_finetune, prepare_pair

    lr_part, hr_part, report = prepare_pair(
        job.lr, job.hr, lr_pixel_nm=job.lr_pixel_nm, hr_pixel_nm=job.hr_pixel_nm, scale=job.scale,
        offset=job.offset, min_score=job.min_score,
    )  # fmt: skip
    yield PairFound(report)
    if job.check_noise:
        yield check_reference(job.hr)
    preview = _PreviewCrop(job, lr_part, report)
    provenance = {
        **job.provenance,
        "pair": {"offset_zyx": list(report.offset), "match_score": round(report.score, 4), "scale": report.scale,
                 "gain": round(report.gain, 4), "intensity_offset": round(report.intensity_offset, 3)},
    }  # fmt: skip
    events = iter_finetune(
        [hr_part], [lr_part], out=job.out, config=job.config, base=job.base, preset=job.preset,
        scale=report.scale, val_slices=job.val_slices, input_pixel_size_nm=job.lr_pixel_nm,
        provenance=provenance, resume=job.resume, overwrite=job.overwrite,
    )  # fmt: skip
    try:
        for event in events:
            yield event
            if event.kind in ("validation", "done"):
                shown = preview.render(event.step)
                if shown is not None:
                    yield shown
    finally:
        events.close()  # on Cancel: the trainer saves its last state and keeps the best model
