"""The EMSR network, one idea per module."""

from napari_emsr.model.emsr import EMSR, build_emsr, receptive_radius
from napari_emsr.model.wavelet import atrous_wavelet

__all__ = ["EMSR", "build_emsr", "receptive_radius", "atrous_wavelet"]
