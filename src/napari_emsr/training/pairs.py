"""Real LR/HR pairs as users acquire them (paper Fig. 1 and section III-B-2).

An LR volume covers a large field; an HR volume covers a small field inside it, at a finer pixel
size. Before training on them:

1. the HR volume is resized (bicubic) so that the pixel-size ratio becomes the nearest integer s,
   as the paper does (there: 341 -> 1023 for 50 nm and 15 nm);
2. the HR field is located inside the LR field: normalised cross-correlation of the HR image,
   brought to the LR pixel size, against LR slices (FFT based, scikit-image), searching z as well,
   then z refined with several slices at once; the match score is the mean correlation of up to
   five HR slices with the LR slices they face (both lightly smoothed, so that the LR's noise does
   not hide a correct match), and a poor match is refused;
3. the HR intensities are mapped onto the LR's (gain and offset matching mean and spread over the
   common field), for acquisitions that differ in contrast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_emsr.errors import Hint, HintedValueError
from napari_emsr.resample import bicubic_downsample, resize

__all__ = ["PairReport", "integer_ratio", "locate_hr_in_lr", "prepare_pair", "PairError"]


class PairError(HintedValueError):
    """The LR/HR pair cannot be used: the HR field was not found, or sizes do not fit.

    When the field was not found, the hints say how to place it by hand (option ``offset``).
    """


@dataclass
class PairReport:
    """What :func:`prepare_pair` did, for the user to check."""

    scale: int
    ratio: float | None
    hr_shape_in: tuple[int, ...]
    hr_shape_out: tuple[int, ...]
    offset: tuple[int, int, int]  # (z, y, x) of the HR field's origin, in LR pixels
    score: float  # normalised cross-correlation at the match, -1..1
    located: bool  # True when found automatically, False when the offset was given
    gain: float = 1.0
    intensity_offset: float = 0.0
    notes: list[str] = field(default_factory=list)
    #: the fine registration (rotation, refined ratio, drift), when ``prepare_pair(register=True)``
    registration: Any = None

    def summary(self) -> str:
        """Describe the match in words: where the HR field is, its score, and any notes."""
        how = "found" if self.located else "given"
        lines = [f"HR field {how} at LR (z, y, x) = {self.offset}, match score {self.score:.3f} (NCC)"]
        lines += self.notes
        return "\n".join(lines)


def integer_ratio(lr_pixel_nm: float, hr_pixel_nm: float) -> tuple[int, float]:
    """Return the nearest integer scale for a pixel-size ratio, and the exact ratio."""
    if not (lr_pixel_nm > 0 and hr_pixel_nm > 0):
        raise PairError(f"pixel sizes must be positive, got LR {lr_pixel_nm} nm and HR {hr_pixel_nm} nm")
    ratio = lr_pixel_nm / hr_pixel_nm
    scale = int(round(ratio))
    if not 1 <= scale <= 4:
        raise PairError(
            f"LR/HR pixel-size ratio {ratio:.2f} ({lr_pixel_nm} nm / {hr_pixel_nm} nm) is outside the x1..x4 "
            f"range EMSR supports; check the pixel sizes"
        )
    return scale, ratio


def _ncc_map(image: np.ndarray, template: np.ndarray) -> np.ndarray:
    from skimage.feature import match_template

    return match_template(image.astype(np.float32), template.astype(np.float32), pad_input=False)


def locate_hr_in_lr(
    lr: np.ndarray, template: np.ndarray, *, z_candidates: list[int]
) -> tuple[tuple[int, int, int], float]:
    """Best (z, y, x) of a 2D template (HR brought to LR pixels) among LR slices ``z_candidates``."""
    best = (-2.0, (0, 0, 0))
    for z in z_candidates:
        ncc = _ncc_map(np.asarray(lr[z]), template)
        y, x = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
        if ncc[y, x] > best[0]:
            best = (float(ncc[y, x]), (int(z), int(y), int(x)))
    return best[1], best[0]


#: Gaussian sigma (LR pixels) applied to both sides before the match score is computed
SCORE_SMOOTHING = 1.0


def _stack_score(lr, hr: np.ndarray, s: int, z0: int, y: int, x: int) -> float:
    """Mean correlation of up to 5 HR slices (brought to LR pixels) with the LR slices they would face.

    Both are smoothed first (Gaussian, :data:`SCORE_SMOOTHING` LR px): a low-resolution scan is
    usually far noisier than the HR one, and pixel noise would pull the score of a correct match down
    towards that of a wrong one (a HeLa SBF-SEM pair at 60 electrons scores 0.44 unsmoothed, 0.83
    smoothed, at its true place).
    """
    from scipy.ndimage import gaussian_filter

    picks = np.unique(np.linspace(0, hr.shape[0] - 1, min(5, hr.shape[0])).round().astype(int))
    scores = []
    for k in picks:
        t = gaussian_filter(bicubic_downsample(hr[k], s).astype(np.float64), SCORE_SMOOTHING)
        a = gaussian_filter(
            np.asarray(lr[z0 + k, y : y + t.shape[0], x : x + t.shape[1]], dtype=np.float64), SCORE_SMOOTHING
        )
        scores.append(np.corrcoef(a.ravel(), t.ravel())[0, 1] if a.std() > 0 and t.std() > 0 else 0.0)
    return float(np.mean(scores))


def _refine_z(lr, hr: np.ndarray, s: int, z0: int, y: int, x: int, reach: int = 3) -> tuple[int, float]:
    """Return the z offset near ``z0`` where several slices, not only the middle one, match best."""
    candidates = [z for z in range(z0 - reach, z0 + reach + 1) if 0 <= z <= lr.shape[0] - hr.shape[0]]
    scores = {z: _stack_score(lr, hr, s, z, y, x) for z in candidates}
    best = max(scores, key=scores.__getitem__)
    return best, scores[best]


def _z_search(lr_depth: int, hr_depth: int, mid: int) -> list[int]:
    """LR slices where the HR's middle slice may lie, coarse first (at most ~32 probes)."""
    first, last = mid, lr_depth - hr_depth + mid
    if last < first:
        raise PairError(f"the HR stack has {hr_depth} slices, more than the LR stack's {lr_depth}")
    step = max(1, (last - first + 1) // 32)
    return list(range(first, last + 1, step))


def prepare_pair(
    lr: Any,
    hr: Any,
    *,
    lr_pixel_nm: float | None = None,
    hr_pixel_nm: float | None = None,
    scale: int | None = None,
    offset: tuple[int, int, int] | None = None,
    min_score: float = 0.5,
    match_contrast: bool = True,
    register: bool = False,
    z_step: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, PairReport]:
    """Align an LR volume (large field) with an HR volume (small field inside it) for training.

    Parameters
    ----------
    lr, hr : array-like, (z, y, x)
        The volumes; ``lr`` may be lazy (only the slices searched and the common field are read).
    lr_pixel_nm, hr_pixel_nm : float, optional
        Pixel sizes (y, x). With both, the HR is resized to the nearest integer ratio.
    scale : int, optional
        The ratio to use when pixel sizes are unknown (the HR is then taken to be exactly s times
        finer); must agree with the pixel sizes when both are given.
    offset : (z, y, x), optional
        The HR field's origin in LR pixels, when known; skips the search (the score is still reported).
    min_score : float
        Matches with a lower normalised cross-correlation are refused.
    match_contrast : bool
        Map HR intensities onto the LR's by gain and offset.
    register : bool
        Register the HR field finely (:func:`~.register.register_pair`): sub-pixel offset, a rotation
        of up to 5 degrees, the pixel-size ratio refined around the stated one, per-slice drift; the
        HR is then resampled (bicubic) onto the grid s times finer than the LR over the largest LR
        rectangle it covers. ``offset`` is not used.
    z_step : float
        With ``register``: LR slices per HR slice (another section thickness); each HR slice is
        paired with the LR slice it faces.

    Returns
    -------
    lr_part : ndarray, (z, h, w)
        The LR field under the HR field.
    hr_part : ndarray, float32, (z, s*h, s*w)
        The HR field, resized to the integer ratio and intensity-matched.
    report : PairReport
    """
    if np.ndim(lr) != 3 or np.ndim(hr) != 3:
        raise PairError(f"LR and HR must both be 3D stacks (z, y, x); got {np.shape(lr)} and {np.shape(hr)}")
    notes: list[str] = []
    ratio = None
    if lr_pixel_nm and hr_pixel_nm:
        s, ratio = integer_ratio(lr_pixel_nm, hr_pixel_nm)
        if scale is not None and scale != s:
            raise PairError(f"pixel sizes give a x{s} pair ({ratio:.2f}), but scale {scale} was asked for")
    elif scale is not None:
        s = int(scale)
    else:
        raise PairError("give the LR and HR pixel sizes (or the scale) so the pair's ratio is known")
    if register:
        return _registered(lr, hr, s, ratio or float(s), min_score, match_contrast, z_step, notes)
    hr = np.asarray(hr, dtype=np.float32)
    hr_in = hr.shape
    if ratio is not None and lr_pixel_nm and abs(ratio - s) > 1e-3 * ratio:
        h, w = (int(round(n * s / ratio)) for n in hr.shape[1:])
        hr = resize(hr, (h, w))
        notes.append(
            f"pixel-size ratio {ratio:.3f} ({lr_pixel_nm:g} / {hr_pixel_nm:g} nm) is not an integer: the HR stack was "
            f"resized (bicubic) from {hr_in[1]}x{hr_in[2]} to {h}x{w} pixels of {lr_pixel_nm / s:.3g} nm for a "
            f"x{s} pair"
        )
    hr = hr[:, : hr.shape[1] // s * s, : hr.shape[2] // s * s]
    if min(hr.shape[1:]) < 8 * s:
        raise PairError(f"the HR field ({hr.shape[1]}x{hr.shape[2]} px after resizing) is too small to train on")
    mid = hr.shape[0] // 2
    template = bicubic_downsample(hr[mid], s)
    th, tw = template.shape
    if th > lr.shape[1] or tw > lr.shape[2]:
        raise PairError(
            f"the HR field ({th}x{tw} LR pixels) is larger than the LR field ({lr.shape[1]}x{lr.shape[2]}); "
            f"check the pixel sizes or swap LR and HR"
        )
    if offset is None:
        (zm, y, x), score = locate_hr_in_lr(lr, template, z_candidates=_z_search(lr.shape[0], hr.shape[0], mid))
        step = max(1, (lr.shape[0] - hr.shape[0] + 1) // 32)
        if step > 1:  # refine around the coarse optimum
            near = [z for z in range(zm - step + 1, zm + step) if mid <= z <= lr.shape[0] - hr.shape[0] + mid]
            (zm, y, x), score = locate_hr_in_lr(lr, template, z_candidates=near)
        z0, score = _refine_z(lr, hr, s, zm - mid, y, x)
        if score < min_score:
            raise PairError(
                f"the HR field was not found in the LR volume: best match score {score:.2f} (normalised "
                f"cross-correlation) at LR (z, y, x) = ({z0}, {y}, {x}), below {min_score}. Check that the HR "
                f"field lies inside the LR field and the pixel sizes are right",
                Hint("offset", "Z,Y,X", "if you know where it lies (in LR pixels)"),
            )
    else:
        z0, y, x = (int(v) for v in offset)
        if z0 < 0 or y < 0 or x < 0 or z0 + hr.shape[0] > lr.shape[0] or y + th > lr.shape[1] or x + tw > lr.shape[2]:
            raise PairError(
                f"offset {(z0, y, x)} puts the HR field ({hr.shape[0]}x{th}x{tw} LR px) outside the LR volume "
                f"{tuple(lr.shape)}"
            )
        score = _stack_score(lr, hr, s, z0, y, x)
    lr_part = np.asarray(lr[z0 : z0 + hr.shape[0], y : y + th, x : x + tw])
    report = PairReport(s, ratio, hr_in, hr.shape, (z0, y, x), score, offset is None, notes=notes)
    if match_contrast:
        hr = _match_intensities(lr_part, hr, s, report)
    return lr_part, hr, report


def _registered(lr, hr, s: int, ratio: float, min_score: float, match_contrast: bool, z_step: float, notes: list):
    """prepare_pair with the fine registration: the HR resampled onto the LR's grid at x ``s``."""
    from napari_emsr.training.register import RegistrationError, register_pair

    hr = np.asarray(hr, dtype=np.float32)
    try:
        reg = register_pair(lr, hr, ratio, z_step=z_step, min_score=min_score)
    except RegistrationError as exc:
        raise PairError(
            str(exc), Hint("offset", "Z,Y,X", "to place the HR field yourself (without registration)")
        ) from exc
    lr_part, hr_part, used = reg.pairs(lr, hr, s)
    y0, y1, x0, x1 = reg.covered_box(hr.shape, np.shape(lr))
    z_first = int(round(reg.lr_depth(used[0])))
    notes.extend(reg.summary().splitlines()[1:])
    if len(used) < hr.shape[0]:
        notes.append(f"{len(used)} of {hr.shape[0]} HR slices face an LR slice and are used")
    report = PairReport(s, ratio, hr.shape, hr_part.shape, (z_first, y0, x0), reg.score, True, notes=notes,
                        registration=reg)  # fmt: skip
    report.notes.insert(0, reg.summary().splitlines()[0])
    if match_contrast:
        hr_part = _match_intensities(lr_part, hr_part, s, report)
    return np.ascontiguousarray(lr_part), hr_part, report


def _match_intensities(lr_part: np.ndarray, hr: np.ndarray, s: int, report: PairReport) -> np.ndarray:
    """Map HR onto LR intensities so that HR brought to LR pixels has the LR's mean and spread.

    Spreads are compared after a Gaussian smoothing (sigma 1.5 LR px) of both, so that the two
    acquisitions' different noise levels do not bias the gain.
    """
    from scipy.ndimage import gaussian_filter

    down = gaussian_filter(bicubic_downsample(hr, s).astype(np.float64), (0, 1.5, 1.5))
    lr_f = gaussian_filter(lr_part.astype(np.float64), (0, 1.5, 1.5))
    spread = down.std()
    if spread == 0:
        raise PairError("the HR stack is constant: nothing to train on")
    gain = float(lr_f.std() / spread)
    shift = float(lr_f.mean() - gain * down.mean())
    report.gain, report.intensity_offset = gain, shift
    if abs(gain - 1) > 0.03 or abs(shift) > 0.01 * (np.ptp(lr_f) or 1):
        report.notes.append(f"HR intensities mapped onto the LR's: HR' = {gain:.3f} * HR + {shift:.2f}")
    return (gain * hr + shift).astype(np.float32)
