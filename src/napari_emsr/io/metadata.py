"""Physical pixel sizes from file metadata: OME-XML, ImageJ, TIFF tags, OME-Zarr, MRC, HDF5 and N5.

Every function returns sizes in nanometres per axis, ``None`` for an axis whose size is unknown.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

__all__ = [
    "unit_to_nm",
    "ome_pixel_size",
    "imagej_pixel_size",
    "resolution_pixel_size",
    "ngff_pixel_size",
    "mrc_pixel_size",
    "attribute_pixel_size",
    "merge_pixel_size",
]

#: lengths of units in nanometres (OME and NGFF unit names, ImageJ's spellings, common short forms)
_UNITS_NM = {
    "pm": 1e-3,
    "picometer": 1e-3,
    "å": 0.1,
    "angstrom": 0.1,
    "nm": 1.0,
    "nanometer": 1.0,
    "nanometre": 1.0,
    "µm": 1e3,
    "μm": 1e3,
    "um": 1e3,
    "micron": 1e3,
    "microns": 1e3,
    "micrometer": 1e3,
    "micrometre": 1e3,
    "\\u00b5m": 1e3,
    "mm": 1e6,
    "millimeter": 1e6,
    "millimetre": 1e6,
    "cm": 1e7,
    "centimeter": 1e7,
    "m": 1e9,
    "meter": 1e9,
    "metre": 1e9,
}

# TIFF ResolutionUnit: 2 = inch, 3 = centimetre (1 = none: no physical size)
_RESOLUTION_UNIT_NM = {2: 2.54e7, 3: 1e7}
# Larger "pixels" are a screen or print resolution (e.g. the 72 dpi many programs write), not a calibration.
_MAX_CALIBRATED_NM = 1e5


def unit_to_nm(unit: Any) -> float | None:
    """Nanometres per ``unit`` (e.g. ``"µm"`` -> 1000), or None for an unknown or missing unit."""
    if unit is None:
        return None
    key = str(getattr(unit, "value", unit)).strip().lower()
    return _UNITS_NM.get(key)


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _size(value: Any, unit: Any) -> float | None:
    number, factor = _positive(value), unit_to_nm(unit)
    return None if number is None or factor is None else number * factor


def ome_pixel_size(pixels: Mapping[str, Any]) -> tuple[float | None, float | None, float | None]:
    """(z, y, x) from the attributes of an OME ``Pixels`` element (units default to µm, as in OME)."""
    return tuple(  # type: ignore[return-value]
        _size(pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit", "µm")) for axis in "ZYX"
    )


def resolution_pixel_size(page: Any) -> tuple[float | None, float | None]:
    """(y, x) from a tifffile page's XResolution/YResolution/ResolutionUnit tags."""
    tags = page.tags
    unit = tags.get("ResolutionUnit")
    unit_nm = _RESOLUTION_UNIT_NM.get(int(unit.value) if unit is not None else 2)
    if unit_nm is None:
        return None, None
    return _per_pixel(tags.get("YResolution"), unit_nm), _per_pixel(tags.get("XResolution"), unit_nm)


def _per_pixel(tag: Any, unit_nm: float) -> float | None:
    """Pixel size in nm from a resolution tag (pixels per unit, a rational)."""
    if tag is None:
        return None
    value = tag.value
    pixels_per_unit = _positive(value[0] / value[1] if isinstance(value, tuple) and value[1] else value)
    if pixels_per_unit is None:
        return None
    size = unit_nm / pixels_per_unit
    return size if size <= _MAX_CALIBRATED_NM else None


def imagej_pixel_size(metadata: Mapping[str, Any], page: Any) -> tuple[float | None, float | None, float | None]:
    """(z, y, x) from ImageJ metadata (``unit``, ``spacing``) and the page's resolution tags."""
    factor = unit_to_nm(metadata.get("unit"))
    if factor is None:
        return None, None, None
    sizes = []
    for name in ("YResolution", "XResolution"):
        tag = page.tags.get(name)
        sizes.append(_per_pixel(tag, factor) if tag is not None else None)
    spacing = _positive(metadata.get("spacing"))
    return (spacing * factor if spacing else None), sizes[0], sizes[1]


def ngff_pixel_size(multiscale: Mapping[str, Any], dataset: int = 0) -> tuple[float | None, ...]:
    """Per-axis sizes of one dataset of an OME-Zarr (NGFF 0.4 / 0.5) ``multiscales`` entry.

    The dataset's scale is multiplied by the multiscale's own scale, if any; axes without a known
    space unit (time, channel, or no unit) get None.
    """
    axes = multiscale.get("axes") or []
    datasets = multiscale.get("datasets") or []
    if not datasets or dataset >= len(datasets):
        return tuple(None for _ in axes)
    scale = _scale(datasets[dataset].get("coordinateTransformations"))
    outer = _scale(multiscale.get("coordinateTransformations"))
    if scale is None:
        return tuple(None for _ in axes)
    if outer is not None and len(outer) == len(scale):
        scale = [a * b for a, b in zip(scale, outer, strict=False)]
    sizes = []
    for i, value in enumerate(scale):
        axis = axes[i] if i < len(axes) and isinstance(axes[i], Mapping) else {}
        space = axis.get("type", "space") == "space"
        sizes.append(_size(value, axis.get("unit")) if space else None)
    return tuple(sizes)


def _scale(transforms: Any) -> list[float] | None:
    for transform in transforms or []:
        if isinstance(transform, Mapping) and transform.get("type") == "scale" and "scale" in transform:
            return [float(v) for v in transform["scale"]]
    return None


#: MRC header voxel sizes (Å) that mean "not set": 0 (no cell given) and 1 Å (IMOD's and others' default)
_MRC_UNSET_ANGSTROM = (0.0, 1.0)


def mrc_pixel_size(
    voxel_size_angstrom: Sequence[float], ndim: int, *, image_stack: bool = False
) -> tuple[float | None, ...] | None:
    """(z,) y, x in nm from an MRC header's voxel size (x, y, z in Å, as ``mrcfile``'s ``voxel_size``).

    A size of 0 or exactly 1 Å is taken as unset (unknown), since that is what programs write
    when they know no calibration. The z size of an image stack (``image_stack``: MRC2014's
    ``mz = 1`` with several sections) is unknown: its sections are separate images.
    """
    sizes: list[float | None] = []
    for value in voxel_size_angstrom:
        number = _positive(value)
        sizes.append(None if number is None or number in _MRC_UNSET_ANGSTROM else number * 0.1)
    x, y, z = (sizes + [None, None, None])[:3]
    result = (None if image_stack else z, y, x) if ndim == 3 else (y, x)
    return result if any(s is not None for s in result) else None


#: HDF5 / N5 attributes holding a pixel size, with the unit each assumes when none is given
_ATTRIBUTE_UNITS = {
    "element_size_um": "µm",  # ilastik, Fiji's HDF5 plugins (z, y, x)
    "resolution": "nm",  # CREMI (z, y, x), Paintera / BigDataViewer N5 export (x, y, z)
    "pixel_size_nm": "nm",
    "pixel_size": "nm",
    "voxel_size": "nm",
}
#: attributes that may name the unit of ``resolution``, ``pixel_size`` and ``voxel_size``
_UNIT_ATTRIBUTES = ("unit", "units", "pixel_unit", "voxel_size_unit", "resolution_unit")


def attribute_pixel_size(
    attrs: Mapping[str, Any], ndim: int, *, order: str = "zyx"
) -> tuple[float | None, ...] | None:
    """Per-axis sizes in nm (numpy order: (z,) y, x) from the attributes of an HDF5 or N5 dataset or group.

    Read, in this order of preference:

    - ``pixelResolution``: ``{"dimensions": [...], "unit": "nm"}`` (N5 Viewer, N5 Spark; nm if it
      names no unit);
    - ``transform``: ``{"axes": ["z", "y", "x"], "scale": [...], "units": [...]}`` (OpenOrganelle),
      matched by axis name;
    - ``element_size_um``: µm (ilastik, Fiji); all ones is Fiji's "uncalibrated" and means unknown;
    - ``resolution``, ``pixel_size_nm``, ``pixel_size``, ``voxel_size``: nm, unless an attribute
      ``unit`` / ``units`` (one name, or one per axis) names another unit.

    Lists run in ``order``: ``"zyx"`` (HDF5, C order) or ``"xyz"`` (N5: the first axis varies
    fastest). A list shorter than ``ndim`` gives the last axes (y, x); one number is the y and x size
    (``pixel_size*``) or every axis' (``resolution``, ``voxel_size``). Returns None when none of these
    attributes gives a usable size.
    """
    attrs = {str(k): _plain(v) for k, v in attrs.items()}
    found = _pixel_resolution(attrs.get("pixelResolution"), order)
    if found is None:
        found = _named_transform(attrs.get("transform"), ndim)
    if found is None and "element_size_um" in attrs:
        values = _numbers(attrs["element_size_um"])
        if values and any(v != 1.0 for v in values):
            found = [_size(v, "µm") for v in (values if order == "zyx" else values[::-1])]
    for key in ("resolution", "pixel_size_nm", "pixel_size", "voxel_size"):
        if found is not None:
            break
        values = _numbers(attrs.get(key))
        if not values:
            continue
        unit = "nm" if key == "pixel_size_nm" else (_attribute_unit(attrs) or _ATTRIBUTE_UNITS[key])
        units = unit if isinstance(unit, list) and len(unit) == len(values) else [unit] * len(values)
        if order != "zyx":
            values, units = values[::-1], units[::-1]
        if len(values) == 1:  # one number: every axis (resolution, voxel_size) or y and x (pixel_size*)
            count = ndim if key in ("resolution", "voxel_size") else 2
            values, units = values * count, units * count
        found = [_size(v, u) for v, u in zip(values, units, strict=True)]
    if found is None:
        return None
    sizes = ([None] * ndim + list(found))[-ndim:]
    return tuple(sizes) if any(s is not None for s in sizes) else None


def _plain(value: Any) -> Any:
    """Return an attribute value as plain Python: numpy arrays as lists, bytes as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    tolist = getattr(value, "tolist", None)
    return _plain(tolist()) if callable(tolist) else value


def _numbers(value: Any) -> list[float] | None:
    """Return a number or a flat list of numbers as floats, else None (text, nested lists, mappings)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values or any(isinstance(v, (bool, str, list, tuple, Mapping)) or v is None for v in values):
        return None
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def _attribute_unit(attrs: Mapping[str, Any]) -> str | list[str] | None:
    for key in _UNIT_ATTRIBUTES:
        unit = attrs.get(key)
        if isinstance(unit, str) and unit_to_nm(unit) is not None:
            return unit
        if isinstance(unit, list) and unit and all(isinstance(u, str) and unit_to_nm(u) for u in unit):
            return [str(u) for u in unit]
    return None


def _pixel_resolution(value: Any, order: str) -> list[float | None] | None:
    if not isinstance(value, Mapping):
        return None
    values = _numbers(value.get("dimensions"))
    if not values:
        return None
    unit = value.get("unit") or "nm"
    sizes = [_size(v, unit) for v in values]
    return sizes if order == "zyx" else sizes[::-1]


def _named_transform(value: Any, ndim: int) -> list[float | None] | None:
    if not isinstance(value, Mapping):
        return None
    axes, scale, units = value.get("axes"), _numbers(value.get("scale")), value.get("units")
    if not isinstance(axes, list) or not scale or len(axes) != len(scale):
        return None
    units = units if isinstance(units, list) and len(units) == len(scale) else ["nm"] * len(scale)
    named = {str(a).lower(): _size(s, u) for a, s, u in zip(axes, scale, units, strict=True)}
    if not {"y", "x"} <= named.keys():
        return None
    return [named.get(a) for a in "zyx"[-ndim:]]


def merge_pixel_size(
    read: Sequence[float | None] | None, given: float | Sequence[float] | None, ndim: int
) -> tuple[float | None, ...] | None:
    """Combine sizes read from a file with sizes given by the user (the user wins).

    ``given`` is one number (the y and x size; z keeps what was read) or one number per axis of
    the data. Returns per-axis sizes, or None when nothing is known.
    """
    sizes: list[float | None] = list(read) if read is not None else [None] * ndim
    sizes = ([None] * ndim + sizes)[-ndim:]  # align on the last (x) axis
    if given is not None:
        values = [given] if isinstance(given, (int, float)) else list(given)
        if len(values) == 1:
            values = [values[0], values[0]]
            targets = range(ndim - 2, ndim)
        elif len(values) == ndim:
            targets = range(ndim)
        else:
            raise ValueError(
                f"pixel size needs one number (y and x) or {ndim} numbers (one per axis of the "
                f"{ndim}D data), got {len(values)}"
            )
        for axis, value in zip(targets, values, strict=False):
            number = _positive(value)
            if number is None or isinstance(value, bool):
                raise ValueError(f"pixel size must be a positive number of nanometres, got {value!r}")
            sizes[axis] = number
    return tuple(sizes) if any(s is not None for s in sizes) else None
