"""bioimage.io model packages (the BioImage Model Zoo's format, spec 0.5).

- :func:`export_bioimageio`: a model file -> a validated package (needs the optional
  ``bioimageio`` extra: bioimageio.spec);
- :func:`load_package`: the network of a package napari-emsr exported, read from its attached
  safetensors file without pickle (what :func:`napari_emsr.load_model` does with a .zip).
"""

from napari_emsr.bmz.export import export_bioimageio
from napari_emsr.model_io import load_package

__all__ = ["export_bioimageio", "load_package"]
