"""Image-quality metrics: numpy in, numbers and curves out.

- :func:`psnr`, :func:`ssim`: the paper's eq. 18 and 17, scikit-image's implementations with an
  explicit data range.
- :func:`frc_curve`, :func:`frc_mean`, :func:`frc_pool`, :func:`frc_resolution`: Fourier ring
  correlation (eq. 19) in the paper's convention, with the 1/7 and half-bit thresholds.
- :func:`reference_free_resolution`, :func:`even_odd_halves`: resolution from two independent halves,
  when there is no HR reference.
- :func:`noise_check`: the no-clean-reference conditions (eq. 8-9, Fig. 6).
- :func:`evaluate_stack`, :func:`iter_evaluate_stack`: all of the above over a stack, slice by
  slice; :func:`iter_compare`: several methods against one reference (the job of ``emsr evaluate``
  and of the napari Compare panel), :func:`iter_reference_free` without one; :func:`pool_stack`,
  :func:`pool_pairs`: the one pooling of per-slice scores.
- :func:`z_consistency`, :func:`iter_z_consistency`: flicker index and xz / yz FRC of a slice-wise
  result against its input stack (one output, or several as events).
- :func:`find_data_range`: the one rule for PSNR's and SSIM's data range.

See docs/evaluation.md for the conventions.
"""

from napari_emsr.metrics.data_range import DataRange, find_data_range
from napari_emsr.metrics.frc import (
    ONE_SEVENTH,
    WINDOWS,
    FRCCurve,
    FRCResolution,
    frc_curve,
    frc_mean,
    frc_pool,
    frc_resolution,
    frc_threshold,
    half_bit_threshold,
)
from napari_emsr.metrics.noise import DENOISERS, NoiseCheck, denoise, noise_check, noise_sigma
from napari_emsr.metrics.quality import psnr, resolve_data_range, ssim
from napari_emsr.metrics.reference_free import (
    ReferenceFreeResolution,
    even_odd_halves,
    iter_reference_free,
    pool_pairs,
    reference_free_resolution,
)
from napari_emsr.metrics.stack import (
    ANCHORS,
    EvaluationOptions,
    Scores,
    ScoringError,
    StackEvaluation,
    common_region,
    evaluate_stack,
    iter_compare,
    iter_evaluate_stack,
    pool_stack,
)
from napari_emsr.metrics.zconsistency import (
    ZConsistency,
    flicker_index,
    iter_z_consistency,
    z_consistency,
    z_scale,
)

__all__ = [
    "psnr",
    "ssim",
    "resolve_data_range",
    "find_data_range",
    "DataRange",
    "FRCCurve",
    "FRCResolution",
    "frc_curve",
    "frc_mean",
    "frc_pool",
    "frc_resolution",
    "frc_threshold",
    "half_bit_threshold",
    "ONE_SEVENTH",
    "WINDOWS",
    "ReferenceFreeResolution",
    "even_odd_halves",
    "reference_free_resolution",
    "iter_reference_free",
    "pool_pairs",
    "NoiseCheck",
    "noise_check",
    "noise_sigma",
    "denoise",
    "DENOISERS",
    "StackEvaluation",
    "evaluate_stack",
    "iter_evaluate_stack",
    "EvaluationOptions",
    "iter_compare",
    "pool_stack",
    "Scores",
    "ScoringError",
    "common_region",
    "ANCHORS",
    "ZConsistency",
    "z_consistency",
    "iter_z_consistency",
    "z_scale",
    "flicker_index",
]
