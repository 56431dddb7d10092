"""Register an HR field to the LR volume it lies in, as real pairs need.

Sub-pixel offset, a small rotation, a pixel-size ratio refined around the stated one, per-slice
drift, and another z spacing.

The model. Coordinates are continuous and pixel ``k`` spans ``[k, k + 1)`` (corner convention),
in LR pixels for the LR volume and HR pixels for the HR one. HR slice ``j`` lies at LR depth
``z0 + j * z_step`` and its pixel position ``q = (v, u)`` at the LR position

    p = t + d(j) + R(theta) q / ratio

where ``t`` is the LR position of the HR field's corner, ``theta`` the rotation (positive is
counter-clockwise on screen: from +x towards -y), ``ratio`` = LR pixel size / HR pixel size, and
``d(j)`` the drift of slice ``j`` (zero at the middle slice; a smooth function of ``j``).

How. (1) Coarse: the middle HR slice brought to the LR pixel size, for rotations of -5..5 degrees
and ratios of +/- 6 % around the stated one, is matched by normalised cross-correlation (NCC,
FFT based) against the LR slices it may face; the best is the start. (2) Fine: rotation, ratio and
offset are refined together to sub-pixel precision by maximising the NCC between the LR pixels and
the HR resampled onto them (after an anti-alias blur), over up to five HR slices. (3) Drift: the
offset is refined per slice (up to 24 slices spread over the stack) with rotation and ratio fixed,
and a quadratic in ``j`` fitted to the offsets (the drift is slow). The score of each slice is its
NCC after registration; a pair whose score is below ``min_score``, or whose rotation or ratio ends
at the edge of the search, is refused with a message saying why.

:meth:`Registration.pairs` then brings the HR onto the grid ``scale`` times finer than the
LR (bicubic), over the largest LR rectangle the HR field covers, so that every training pair is
registered exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["Registration", "RegistrationError", "register_pair"]

#: how far the search goes around the stated geometry
MAX_ROTATION_DEG = 5.0
RATIO_SEARCH = 0.06  # relative
#: LR pixels kept clear of the HR field's border when comparing (rotation corners, blur)
_BORDER = 2


class RegistrationError(ValueError):
    """The HR field could not be registered reliably to the LR volume."""


@dataclass(frozen=True)
class Registration:
    """Where and how the HR field lies in the LR volume, and how sure that is.

    Attributes
    ----------
    ratio : float
        LR pixel size / HR pixel size, refined.
    stated_ratio : float
        The ratio the pixel sizes (or the user) stated.
    rotation_deg : float
        Rotation of the HR field in the LR volume, degrees.
    offset : (float, float)
        LR position (y, x) of the HR field's corner at the middle slice.
    z0 : float
        LR depth of the first HR slice; ``z_step`` the LR slices per HR slice.
    drift : tuple of (float, float)
        Offset of each HR slice relative to the middle one (LR pixels), from the fitted quadratic.
    scores : tuple of float
        NCC of each HR slice with the LR after registration (slices not measured: NaN).
    score : float
        Median of the measured slice scores.
    """

    ratio: float
    stated_ratio: float
    rotation_deg: float
    offset: tuple[float, float]
    z0: float
    z_step: float
    drift: tuple[tuple[float, float], ...]
    scores: tuple[float, ...]
    score: float

    def summary(self) -> str:
        """Describe the registration in words."""
        dy = [d[0] for d in self.drift]
        dx = [d[1] for d in self.drift]
        return "\n".join(
            [
                f"HR field registered at LR (y, x) = ({self.offset[0]:.2f}, {self.offset[1]:.2f}), rotated "
                f"{self.rotation_deg:+.2f} deg, pixel-size ratio {self.ratio:.4f} (stated {self.stated_ratio:.4f})",
                f"  z: first HR slice at LR depth {self.z0:.2f}, {self.z_step:.3g} LR slices per HR slice",
                f"  drift over the stack: y {min(dy):+.2f}..{max(dy):+.2f}, x {min(dx):+.2f}..{max(dx):+.2f} LR px",
                f"  match score (NCC) {self.score:.3f}; worst slice {np.nanmin(self.scores):.3f}",
            ]
        )

    def position(self, j: int, q: np.ndarray) -> np.ndarray:
        """LR positions (2, ...) of HR positions ``q`` (2, ...) in HR slice ``j``."""
        return _forward(q, self.offset, self.drift[j], math.radians(self.rotation_deg), self.ratio)

    def lr_depth(self, j: int) -> float:
        """LR depth of HR slice ``j``."""
        return self.z0 + j * self.z_step

    def covered_box(self, hr_shape: Sequence[int], lr_shape: Sequence[int]) -> tuple[int, int, int, int]:
        """Return the largest LR rectangle (y0, y1, x0, x1) inside the HR field in every slice and the LR."""
        h, w = hr_shape[-2:]
        centres = [self.position(j, np.array([h / 2, w / 2])) for j in range(len(self.drift))]
        theta = math.radians(self.rotation_deg)
        # the axis-aligned rectangle inside a rotated one: shrink by the rotation's overhang
        span_y, span_x = h / self.ratio, w / self.ratio
        c, s = abs(math.cos(theta)), abs(math.sin(theta))
        ys = [float(centre[0]) for centre in centres]
        xs = [float(centre[1]) for centre in centres]
        half_y = (span_y * c - span_x * s) / 2
        half_x = (span_x * c - span_y * s) / 2
        y0 = math.ceil(max(ys) - half_y + _BORDER)
        y1 = math.floor(min(ys) + half_y - _BORDER)
        x0 = math.ceil(max(xs) - half_x + _BORDER)
        x1 = math.floor(min(xs) + half_x - _BORDER)
        y0, x0 = max(y0, 0), max(x0, 0)
        y1, x1 = min(y1, int(lr_shape[-2])), min(x1, int(lr_shape[-1]))
        if y1 - y0 < 8 or x1 - x0 < 8:
            raise RegistrationError(f"the registered HR field covers only {y1 - y0} x {x1 - x0} LR pixels")
        return y0, y1, x0, x1

    def pairs(self, lr: Any, hr: Any, scale: int, *, max_z_distance: float = 0.25):
        """Return ``(lr_part, hr_part, hr_slices)``: LR slices and the HR resampled onto ``scale`` x their grid.

        Each HR slice is paired with the nearest LR slice; HR slices more than ``max_z_distance``
        LR slices from any LR slice (another z spacing) are left out, and of several HR slices facing
        one LR slice the nearest is kept. ``hr_part`` is float32, (n, scale*h, scale*w).
        """
        from scipy.ndimage import map_coordinates

        hr_arr = np.asarray(hr)
        y0, y1, x0, x1 = self.covered_box(hr_arr.shape, np.shape(lr))
        chosen: dict[int, tuple[float, int]] = {}
        for j in range(hr_arr.shape[0]):
            depth = self.lr_depth(j)
            z = int(round(depth))
            if 0 <= z < np.shape(lr)[0] and abs(depth - z) <= max_z_distance:
                if z not in chosen or abs(depth - z) < chosen[z][0]:
                    chosen[z] = (abs(depth - z), j)
        if not chosen:
            raise RegistrationError("no HR slice faces an LR slice: check the z spacings")
        zs = sorted(chosen)
        # target grid: scale x scale sub-pixels of every LR pixel, positions in LR corner coordinates
        yy = y0 + (np.arange((y1 - y0) * scale) + 0.5) / scale
        xx = x0 + (np.arange((x1 - x0) * scale) + 0.5) / scale
        grid = np.stack(np.meshgrid(yy, xx, indexing="ij"))
        theta = math.radians(self.rotation_deg)
        out = np.empty((len(zs), grid.shape[1], grid.shape[2]), dtype=np.float32)
        used = []
        for i, z in enumerate(zs):
            j = chosen[z][1]
            q = _inverse(grid, self.offset, self.drift[j], theta, self.ratio)
            out[i] = map_coordinates(hr_arr[j].astype(np.float32), q - 0.5, order=3, mode="nearest")
            used.append(j)
        lr_part = np.stack([np.asarray(lr[z, y0:y1, x0:x1]) for z in zs])
        return lr_part, out, used


def _rotation(theta: float) -> np.ndarray:
    # counter-clockwise on screen (y down): x' = c x + s y, y' = -s x + c y, in (y, x) order
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _forward(q: np.ndarray, offset, drift, theta: float, ratio: float) -> np.ndarray:
    r = _rotation(theta)
    moved = np.tensordot(r, q, axes=1) / ratio
    return moved + (np.asarray(offset, dtype=float) + np.asarray(drift, dtype=float)).reshape(2, *([1] * (q.ndim - 1)))


def _inverse(p: np.ndarray, offset, drift, theta: float, ratio: float) -> np.ndarray:
    r = _rotation(theta)
    shift = (np.asarray(offset, dtype=float) + np.asarray(drift, dtype=float)).reshape(2, *([1] * (p.ndim - 1)))
    return np.tensordot(r.T, p - shift, axes=1) * ratio


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = math.sqrt(float((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else -1.0


class _Comparer:
    """NCC between LR slices and HR slices resampled onto them, for given geometry."""

    def __init__(self, lr: Any, hr: np.ndarray, ratio_guess: float) -> None:
        from scipy.ndimage import gaussian_filter

        self.lr, self.hr = lr, hr
        sigma = 0.45 * ratio_guess  # anti-alias: about an LR pixel's worth of HR detail
        self.smooth: dict[int, np.ndarray] = {}
        self._gaussian, self._sigma = gaussian_filter, sigma

    def hr_smooth(self, j: int) -> np.ndarray:
        if j not in self.smooth:
            self.smooth[j] = self._gaussian(self.hr[j].astype(np.float64), self._sigma)
        return self.smooth[j]

    def lr_slice(self, z: int) -> np.ndarray:
        return np.asarray(self.lr[z], dtype=np.float64)

    def score(self, j: int, z: int, offset, drift, theta: float, ratio: float) -> float:
        from scipy.ndimage import map_coordinates

        h, w = self.hr.shape[-2:]
        lr = self.lr_slice(z)
        # LR pixels whose centres fall inside the HR field (minus a border)
        corners = _forward(np.array([[0.0, 0.0, h, h], [0.0, w, 0.0, w]]), offset, drift, theta, ratio)
        y0 = max(int(math.floor(corners[0].min())) - 1, 0)
        y1 = min(int(math.ceil(corners[0].max())) + 1, lr.shape[0])
        x0 = max(int(math.floor(corners[1].min())) - 1, 0)
        x1 = min(int(math.ceil(corners[1].max())) + 1, lr.shape[1])
        if y1 - y0 < 4 or x1 - x0 < 4:
            return -1.0
        yy, xx = np.meshgrid(np.arange(y0, y1) + 0.5, np.arange(x0, x1) + 0.5, indexing="ij")
        q = _inverse(np.stack([yy, xx]), offset, drift, theta, ratio)
        border = _BORDER * ratio
        inside = (q[0] > border) & (q[0] < h - border) & (q[1] > border) & (q[1] < w - border)
        if inside.sum() < 64:
            return -1.0
        values = map_coordinates(self.hr_smooth(j), q[:, inside] - 0.5, order=1, mode="nearest")
        return _ncc(lr[y0:y1, x0:x1][inside], values)


def _coarse(lr: Any, hr: np.ndarray, ratio: float, z_candidates: Sequence[int], mid: int):
    """Grid search of rotation and ratio by template matching of the middle HR slice."""
    from skimage.feature import match_template
    from skimage.transform import rescale, rotate

    best = (-2.0, 0.0, ratio, 0.0, 0.0, z_candidates[0])
    hr_mid = hr[mid].astype(np.float64)
    for factor in np.linspace(1 - RATIO_SEARCH, 1 + RATIO_SEARCH, 7):
        r = ratio * factor
        small = rescale(hr_mid, 1 / r, anti_aliasing=True, order=1)
        for deg in np.arange(-MAX_ROTATION_DEG, MAX_ROTATION_DEG + 0.1, 1.0):
            turned = rotate(small, deg, resize=False, order=1, mode="edge")
            # the centre part, clear of the corners the rotation fills in
            m = int(math.ceil(max(turned.shape) * math.sin(math.radians(abs(deg))))) + 1
            template = turned[m : turned.shape[0] - m, m : turned.shape[1] - m]
            if min(template.shape) < 8:
                continue
            for z in z_candidates:
                plane = np.asarray(lr[z], dtype=np.float64)
                if template.shape[0] > plane.shape[0] or template.shape[1] > plane.shape[1]:
                    continue
                ncc = match_template(plane, template)
                iy, ix = np.unravel_index(int(np.argmax(ncc)), ncc.shape)
                value = float(ncc[iy, ix])
                if value > best[0]:
                    # LR position of the template's centre -> the HR field's corner
                    centre_lr = np.array([iy + template.shape[0] / 2, ix + template.shape[1] / 2])
                    theta = math.radians(deg)
                    centre_hr = np.array([hr.shape[1] / 2, hr.shape[2] / 2])
                    corner = centre_lr - _rotation(theta) @ centre_hr / r
                    best = (value, theta, r, float(corner[0]), float(corner[1]), z)
    return best


def _z_candidates(lr_depth: int, hr_depth: int, z_step: float, mid: int) -> list[int]:
    reach = hr_depth * z_step
    first = int(math.floor(mid * z_step))
    last = int(lr_depth - max(reach - mid * z_step, 1))
    last = max(first, min(last, lr_depth - 1))
    step = max(1, (last - first + 1) // 12)
    return list(range(first, last + 1, step))


def register_pair(
    lr: Any,
    hr: Any,
    ratio: float,
    *,
    z_step: float = 1.0,
    min_score: float = 0.5,
    refine_ratio: bool = True,
    max_drift_slices: int = 24,
) -> Registration:
    """Register the HR stack ``hr`` (a small field) to the LR stack ``lr`` (a large field around it).

    Parameters
    ----------
    lr, hr : array-like (z, y, x)
        The volumes; ``lr`` may be lazy (only the slices compared are read).
    ratio : float
        LR pixel size / HR pixel size, as stated by the files or the user (refined within +/- 6 %
        unless ``refine_ratio`` is False).
    z_step : float
        LR slices per HR slice (HR section thickness / LR section thickness; 1 for the same).
    min_score : float
        Refuse a registration whose median slice NCC is lower.
    refine_ratio : bool
        Refine the ratio (else keep the stated one).
    max_drift_slices : int
        At most this many slices get their own offset; the drift of the others is interpolated by
        the fitted quadratic.

    Returns
    -------
    Registration
    """
    from scipy.optimize import minimize

    if np.ndim(lr) != 3 or np.ndim(hr) != 3:
        raise RegistrationError(f"LR and HR must be 3D stacks (z, y, x); got {np.shape(lr)} and {np.shape(hr)}")
    if not (ratio > 0 and math.isfinite(ratio)):
        raise RegistrationError(f"the pixel-size ratio must be a positive number, got {ratio}")
    if not (z_step > 0 and math.isfinite(z_step)):
        raise RegistrationError(f"z_step must be a positive number, got {z_step}")
    hr_arr = np.asarray(hr)
    n = hr_arr.shape[0]
    if n * z_step > np.shape(lr)[0] + 0.5:
        raise RegistrationError(
            f"the HR stack spans {n * z_step:.1f} LR slices but the LR stack has {np.shape(lr)[0]}: check z_step"
        )
    mid = n // 2
    coarse_score, theta, r, oy, ox, zm = _coarse(lr, hr_arr, ratio, _z_candidates(np.shape(lr)[0], n, z_step, mid), mid)
    if coarse_score < min_score * 0.5:
        raise RegistrationError(
            f"the HR field was not found in the LR volume (best coarse match NCC {coarse_score:.2f}); check that "
            "it lies inside the LR field and that the pixel sizes are right"
        )
    z0 = zm - mid * z_step
    comparer = _Comparer(lr, hr_arr, ratio)

    def lr_z(j: int) -> int:
        return int(np.clip(round(z0 + j * z_step), 0, np.shape(lr)[0] - 1))

    picks = sorted({int(v) for v in np.linspace(0, n - 1, min(n, 5)).round()})

    def loss(p: np.ndarray) -> float:
        t, rr, yy, xx = p
        rr = ratio * math.exp(rr) if refine_ratio else ratio
        return -float(np.mean([comparer.score(j, lr_z(j), (yy, xx), (0.0, 0.0), t, rr) for j in picks]))

    start = np.array([theta, math.log(r / ratio) if refine_ratio else 0.0, oy, ox])
    simplex = start + np.diag([math.radians(0.7), 0.01, 0.6, 0.6])
    res = minimize(loss, start, method="Nelder-Mead",
                   options={"initial_simplex": np.vstack([start, simplex]), "xatol": 1e-4, "fatol": 1e-6,
                            "maxfev": 400})  # fmt: skip
    theta, log_r, oy, ox = (float(v) for v in res.x)
    r = ratio * math.exp(log_r) if refine_ratio else ratio
    edge = []
    if abs(math.degrees(theta)) > MAX_ROTATION_DEG + 0.5:
        edge.append(f"rotation {math.degrees(theta):+.1f} deg is beyond the +/- {MAX_ROTATION_DEG:g} deg searched")
    if refine_ratio and abs(r / ratio - 1) > RATIO_SEARCH + 0.01:
        edge.append(f"ratio {r:.3f} is more than {100 * RATIO_SEARCH:.0f} % from the stated {ratio:.3f}")
    if edge:
        raise RegistrationError("the registration is unreliable: " + "; ".join(edge))
    # per-slice offsets with rotation and ratio fixed, then a quadratic in j
    measured = sorted({int(v) for v in np.linspace(0, n - 1, min(n, max_drift_slices)).round()})
    shifts, scores = [], np.full(n, np.nan)
    for j in measured:
        fit = minimize(
            lambda d, j=j: -comparer.score(j, lr_z(j), (oy, ox), (d[0], d[1]), theta, r),
            np.zeros(2), method="Nelder-Mead",
            options={"initial_simplex": np.array([[0, 0], [0.5, 0], [0, 0.5]]), "xatol": 1e-3, "fatol": 1e-6},
        )  # fmt: skip
        shifts.append(fit.x)
        scores[j] = -fit.fun
    # a quadratic in j through the measured offsets; the offset is then that of the middle slice
    shifts_arr = np.array(shifts)
    degree = min(2, len(measured) - 1)
    drift = np.zeros((n, 2))
    if degree >= 1:
        at = np.array(measured) - mid
        curves = [np.polyfit(at, shifts_arr[:, axis], degree) for axis in range(2)]
        drift = np.stack([np.polyval(curve, np.arange(n) - mid) for curve in curves], axis=1)
        oy, ox = oy + float(drift[mid, 0]), ox + float(drift[mid, 1])
        drift = drift - drift[mid]
    elif len(measured) == 1:
        oy, ox = oy + float(shifts_arr[0, 0]), ox + float(shifts_arr[0, 1])
    score = float(np.nanmedian(scores))
    registration = Registration(
        ratio=r, stated_ratio=float(ratio), rotation_deg=math.degrees(theta), offset=(oy, ox), z0=float(z0),
        z_step=float(z_step), drift=tuple((float(a), float(b)) for a, b in drift),
        scores=tuple(float(v) for v in scores), score=score,
    )  # fmt: skip
    if score < min_score:
        raise RegistrationError(
            f"the registration is unreliable: median match score {score:.2f} (NCC) is below {min_score}; "
            f"worst slice {np.nanmin(scores):.2f}"
        )
    return registration
