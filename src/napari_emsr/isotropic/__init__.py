"""Isotropic reconstruction of anisotropic volumes (section-sampled z), trained on the volume itself.

- :mod:`~napari_emsr.isotropic.sampling`: how sections sample z; cubic / linear interpolation along z;
  simulated anisotropic acquisitions of isotropic volumes (for validation);
- :mod:`~napari_emsr.isotropic.train`: :func:`iter_train_isotropic`, a scale-1 EMSR network trained on
  the volume's xy slices sampled along one axis as z is (the ``axial`` training strategy);
- :mod:`~napari_emsr.isotropic.reconstruct`: :func:`iter_isotropic`, cubic interpolation to the
  isotropic grid, then the network on every xz and yz plane, the two views fused.

See ``docs/isotropic.md``.
"""

from napari_emsr.isotropic.reconstruct import IsotropicSummary, isotropic, iter_isotropic, resolve_z_factor
from napari_emsr.isotropic.sampling import SectionSampling, cubic_resample, linear_resample, sample_sections
from napari_emsr.isotropic.train import iter_train_isotropic, train_isotropic

__all__ = [
    "IsotropicSummary",
    "SectionSampling",
    "cubic_resample",
    "isotropic",
    "iter_isotropic",
    "iter_train_isotropic",
    "linear_resample",
    "resolve_z_factor",
    "sample_sections",
    "train_isotropic",
]
