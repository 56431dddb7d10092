"""Export a model file as a bioimage.io model package (spec 0.5), built and validated with bioimageio.spec.

The package (a zip) holds:

- ``weights.pt``: the ``pytorch_state_dict`` weights entry, a dict of plain tensors written with
  ``torch.save`` (so ``torch.load(..., weights_only=True)`` reads it), with the architecture
  ``napari_emsr.build_emsr(**config)`` (``ArchitectureFromLibraryDescr``);
- the napari-emsr model file itself (``*.safetensors``) as an attachment: :func:`napari_emsr.load_model`
  reads that one, so loading a package never unpickles anything;
- one 2D input ``lr`` (batch, channel, y, x) whose y/x scale is the model's LR pixel size, and one
  output ``sr`` whose y/x sizes reference the input's and whose scale is the input's / s (so the
  output is s times larger);
- test tensors (.npy) made by running the model on a real crop, a cover (LR | SR side by side),
  a README, the EMSR paper's citation, the licence and a data credit.

bioimageio.spec is an optional dependency (``pip install 'napari-emsr[bioimageio]'``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from napari_emsr._atomic import atomic_path
from napari_emsr.errors import Hint, OutputExistsError
from napari_emsr.model.emsr import EMSR, receptive_radius
from napari_emsr.predict.intensity import IntensityMap, resolve_intensity

__all__ = ["export_bioimageio", "BIOIMAGEIO_EXTRA", "PAPER", "sample_lr_slice"]

BIOIMAGEIO_EXTRA = "pip install 'napari-emsr[bioimageio]'"
#: the EMSR paper (title and authors as in the paper; arXiv identifier and its DataCite DOI)
PAPER = {
    "text": (
        "Khateri M, Ghahremani M, Sierra A, Tohka J. No-Clean-Reference Image Super-Resolution: "
        "Application to Electron Microscopy. arXiv:2401.08115 (2024)"
    ),
    "doi": "10.48550/arXiv.2401.08115",
}
_SAMPLE_CREDIT = (
    "FIB-SEM of the Drosophila medulla, FlyEM project, Janelia Research Campus (HHMI), "
    "neuroproof_examples, CC BY 3.0 (https://creativecommons.org/licenses/by/3.0/); degraded to "
    "30 nm pixels and cropped (the napari-emsr sample data)"
)


def _import_spec() -> Any:
    try:
        import bioimageio.spec as spec
    except ImportError as exc:
        raise ImportError(
            f"exporting a bioimage.io package needs bioimageio.spec, an optional dependency: {BIOIMAGEIO_EXTRA}"
        ) from exc
    return spec


def sample_lr_slice() -> np.ndarray:
    """Return the middle slice of napari-emsr's sample LR stack (real FlyEM FIB-SEM, 30 nm pixels)."""
    import tifffile

    from napari_emsr.samples import em_pair_file

    with em_pair_file("lr") as path:
        stack = tifffile.imread(path)
    return stack[len(stack) // 2] if stack.ndim == 3 else stack


def _centre_crop(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape
    if h < side or w < side:
        raise ValueError(f"the sample image ({h} x {w}) is smaller than the {side} x {side} crop needed")
    y0, x0 = (h - side) // 2, (w - side) // 2
    return image[y0 : y0 + side, x0 : x0 + side]


def _intensity(model: EMSR, raw: np.ndarray) -> IntensityMap:
    """Return the package's intensity mapping of ``raw`` as the engine's :class:`IntensityMap`.

    Mode ``range``: the model's range, fixed (``scale_linear`` both ways, as the engine maps data in
    the model's units); mode ``percentile``: the engine's percentiles of the image (``scale_range``).
    """
    norm = model.metadata.normalization
    fixed = None if norm.mode == "percentile" else norm.bounds()
    return resolve_intensity(raw.astype(np.float32, copy=False), norm, intensity_range=fixed)


def _predict(model: EMSR, raw: np.ndarray) -> np.ndarray:
    """Return the package's computation: pre-processing, the whole-image network, post-processing.

    A ``percentile`` model's output stays in the network's 0 .. 1: the package cannot describe the
    inverse of a per-image ``scale_range`` (the engine maps it back to the input's units).
    """
    intensity = _intensity(model, raw)
    x = intensity.to_network(raw)
    with torch.inference_mode():
        y = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None])[0, 0].numpy()
    if model.metadata.normalization.mode == "range":
        y = intensity.from_network(y)
    return y.astype(np.float32)


def _to_uint8(image: np.ndarray, low: float, high: float) -> np.ndarray:
    return (np.clip((image - low) / (high - low), 0, 1) * 255).round().astype(np.uint8)


def _write_cover(model: EMSR, raw: np.ndarray, path: Path) -> None:
    """Write LR (nearest-neighbour, to the SR size) | SR side by side as a 2:1 PNG.

    Each side is stretched between its own 0.5 and 99.5 percentiles.
    """
    from PIL import Image

    s = model.config.scale
    sr = _predict(model, raw)
    low, high = (float(np.percentile(raw, 0.5)), float(np.percentile(raw, 99.5)))
    sr_low, sr_high = float(np.percentile(sr, 0.5)), float(np.percentile(sr, 99.5))
    sr_high = max(sr_high, sr_low + 1e-6)
    lr_big = np.kron(_to_uint8(raw.astype(np.float32), low, high), np.ones((s, s), dtype=np.uint8))
    Image.fromarray(np.concatenate([lr_big, _to_uint8(sr, sr_low, sr_high)], axis=1)).save(path)


def _readme(model: EMSR, name: str, source_name: str, sample_credit: str, licence: str) -> str:
    meta, config = model.metadata, model.config
    s = config.scale
    status = (
        "**Trained model.**"
        if meta.trained
        else "**UNTRAINED: random weights.** This package only demonstrates the format; its output is "
        "not a super-resolution result."
    )
    pixel = f"{meta.input_pixel_size_nm:g} nm" if meta.input_pixel_size_nm else "unknown"
    out_pixel = f"{meta.input_pixel_size_nm / s:g} nm" if meta.input_pixel_size_nm else "unknown"
    norm = meta.normalization
    provenance = json.dumps(meta.provenance, indent=2, sort_keys=True) if meta.provenance else "{}"
    return f"""# {name}

{status}

EMSR super-resolution of electron-microscopy images, x{s}: a network with multi-scale edge
attention and window self-attention, trained without clean references (Khateri et al., below).
Exported by napari-emsr from `{source_name}`. {meta.description}

## Input and output

- input `lr`: one grey LR image, axes (batch, channel, y, x), pixel size {pixel}; any size of at
  least {4 * config.window_size} pixels in steps of {config.window_size} (the network pads
  internally to multiples of its attention window {config.window_size}).
- output `sr`: (batch, channel, {s}y, {s}x), pixel size {out_pixel}.
- intensities: mode `{norm.mode}`, {norm.low:g} .. {norm.high:g} mapped to the network's 0 .. 1
  ({"percentiles of the input" if norm.mode == "percentile" else "raw intensities"}); for mode `range`
  the output is mapped back to the input's units (float32, not clipped); for `percentile` it stays in
  the network's 0 .. 1.
- tiling: the theoretical receptive radius is {receptive_radius(config)} LR pixels; the effective
  radius (the halo napari-emsr uses) is
  {meta.effective_radius_px if meta.effective_radius_px is not None else "not recorded"} pixels.
  Tiles should overlap by at least that much.

## Use

With napari-emsr (`pip install napari-emsr`): `napari_emsr.load_model("this.zip")` reads the
attached safetensors file (nothing is unpickled); `emsr predict scan.ome.tif out.ome.zarr --model
this.zip` super-resolves a volume slice by slice. Other bioimage.io consumers (e.g.
bioimageio.core) build the network with `napari_emsr.build_emsr(**kwargs)` and load `weights.pt`
(plain tensors: `torch.load(..., weights_only=True)` reads it).

## Validation

The test tensors are a real {config.window_size * 16}-pixel crop ({sample_credit}) and this model's
output on it, computed without tiling. To validate on your own data, compare the output with
high-resolution acquisitions of the same field, e.g. with `emsr evaluate` (PSNR, SSIM and Fourier
ring correlation against a noisy reference and against bicubic up-sampling).

## Training

```json
{provenance}
```

## Citation

{PAPER["text"]}. doi:{PAPER["doi"]}

## Licence

Code and package: {licence}. Test images: {sample_credit}.
"""


def _axes(spec_v05: Any, model: EMSR) -> tuple[list, list]:
    m = spec_v05
    config, meta = model.config, model.metadata
    unit = "nanometer" if meta.input_pixel_size_nm else None
    scale = float(meta.input_pixel_size_nm or 1.0)
    size = m.ParameterizedSize(min=4 * config.window_size, step=config.window_size)
    inputs = [m.BatchAxis(), m.ChannelAxis(channel_names=[m.Identifier("em")])]
    outputs = [m.BatchAxis(), m.ChannelAxis(channel_names=[m.Identifier("em")])]
    for axis in ("y", "x"):
        inputs.append(m.SpaceInputAxis(id=m.AxisId(axis), size=size, unit=unit, scale=scale))
        reference = m.SizeReference(tensor_id=m.TensorId("lr"), axis_id=m.AxisId(axis))
        outputs.append(m.SpaceOutputAxis(id=m.AxisId(axis), size=reference, unit=unit, scale=scale / config.scale))
    return inputs, outputs


def _processing(m: Any, model: EMSR) -> tuple[list, list]:
    norm = model.metadata.normalization
    pre: list = [m.EnsureDtypeDescr(kwargs=m.EnsureDtypeKwargs(dtype="float32"))]
    if norm.mode == "percentile":
        kwargs = m.ScaleRangeKwargs(
            axes=[m.AxisId("y"), m.AxisId("x")], min_percentile=norm.low, max_percentile=norm.high
        )
        return pre + [m.ScaleRangeDescr(kwargs=kwargs)], []
    width = norm.high - norm.low
    pre.append(m.ScaleLinearDescr(kwargs=m.ScaleLinearKwargs(gain=1.0 / width, offset=-norm.low / width)))
    post = [m.ScaleLinearDescr(kwargs=m.ScaleLinearKwargs(gain=width, offset=norm.low))]
    return pre, post


def _describe(spec: Any, model: EMSR, files: dict[str, Path], *, name: str, authors, licence: str) -> Any:
    import bioimageio.spec.model.v0_5 as m

    inputs, outputs = _axes(m, model)
    pre, post = _processing(m, model)
    s = model.config.scale
    trained = "trained" if model.metadata.trained else "UNTRAINED (random weights, format demonstration only)"
    weights = m.PytorchStateDictWeightsDescr(
        source=files["weights"],
        architecture=m.ArchitectureFromLibraryDescr(
            callable=m.Identifier("build_emsr"), import_from="napari_emsr", kwargs=model.config.to_dict()
        ),
        pytorch_version=m.Version(torch.__version__.split("+")[0]),
        comment="a dict of plain tensors (torch.load(weights_only=True) reads it); the same weights as the "
        f"attached safetensors file {files['safetensors'].name}",
    )  # fmt: skip
    return m.ModelDescr(
        name=name,
        description=f"EMSR x{s} super-resolution of electron-microscopy images (no clean reference); {trained}",
        authors=[m.Author(name=a) for a in authors],
        cite=[m.CiteEntry(text=PAPER["text"], doi=m.Doi(PAPER["doi"]))],
        license=m.LicenseId(licence),
        tags=["super-resolution", "electron-microscopy", "denoising", "2d", "pytorch", "napari-emsr"],
        documentation=m.FileDescr(source=files["readme"]),
        covers=[m.FileDescr(source=files["cover"])],
        attachments=[m.FileDescr(source=files["safetensors"])],
        inputs=[
            m.InputTensorDescr(
                id=m.TensorId("lr"), description="low-resolution EM image", axes=inputs,
                test_tensor=m.FileDescr(source=files["test_input"]), preprocessing=pre,
                sample_tensor=m.FileDescr(source=files["sample_input"]),
                data=m.IntervalOrRatioDataDescr(type="float32"),
            )
        ],  # fmt: skip
        outputs=[
            m.OutputTensorDescr(
                id=m.TensorId("sr"), description=f"super-resolved image, x{s}", axes=outputs,
                test_tensor=m.FileDescr(source=files["test_output"]), postprocessing=post,
                sample_tensor=m.FileDescr(source=files["sample_output"]),
                data=m.IntervalOrRatioDataDescr(type="float32"),
            )
        ],  # fmt: skip
        weights=m.WeightsDescr(pytorch_state_dict=weights),
        # Config takes extra fields (pydantic extra="allow"); its typed signature lists none
        config=m.Config(  # type: ignore[call-arg]
            napari_emsr={
                "safetensors": files["safetensors"].name, "format": "napari-emsr-model", "scale": s,
                "trained": bool(model.metadata.trained), "input_pixel_size_nm": model.metadata.input_pixel_size_nm,
                "effective_radius_px": model.metadata.effective_radius_px,
            }
        ),  # fmt: skip
    )


def _check_valid(spec: Any, path: Path) -> Any:
    """Load the written package with bioimageio.spec (file checks on): an error unless it is valid."""
    descr = spec.load_description(path, perform_io_checks=True)
    summary = descr.validation_summary
    if isinstance(descr, spec.InvalidDescr) or summary.status == "failed":
        raise ValueError(f"bioimageio.spec rejected the package:\n{summary.format()}")
    return summary


def export_bioimageio(
    model_path: str | os.PathLike,
    output: str | os.PathLike,
    *,
    sample: np.ndarray | None = None,
    sample_credit: str | None = None,
    name: str | None = None,
    authors: Sequence[str] = ("napari-emsr developers",),
    licence: str = "BSD-3-Clause",
    overwrite: bool = False,
) -> Path:
    """Write a napari-emsr model file as a validated bioimage.io model package (spec 0.5).

    Parameters
    ----------
    model_path : path
        A napari-emsr model file (``*.safetensors``); it is attached to the package as is.
    output : path
        The package, ``*.zip``; written under a temporary name, renamed when valid.
    sample : 2D array, optional
        A real LR image for the test tensors and the cover (at least 128 x 128); default: the
        middle slice of napari-emsr's FlyEM sample (30 nm pixels). Give ``sample_credit`` with it.
    name, authors, licence
        The package's name (default from the model), authors and SPDX licence id.
    overwrite : bool
        Replace an existing ``output``.

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    OutputExistsError
        (a FileExistsError) If ``output`` exists and ``overwrite`` is False; its hint is ``overwrite``.
    ValueError
        If the output is not a .zip, the sample is not 2D, or bioimageio.spec does not validate the package.
    ImportError
        Without the optional ``bioimageio`` extra.
    """
    spec = _import_spec()
    from napari_emsr.model_io import load_model

    model_path, output = Path(model_path), Path(output)
    if output.suffix.lower() != ".zip":
        raise ValueError(f"{output}: a bioimage.io package is a .zip; name the output *.zip")
    if output.exists() and not overwrite:  # before any work (atomic_path checks again when it writes)
        raise OutputExistsError(f"{output} exists", Hint("overwrite", True, "to replace it"))
    model = load_model(model_path)
    name = name or _default_name(model)
    raw = sample_lr_slice() if sample is None else np.asarray(sample)
    if raw.ndim != 2:
        raise ValueError(f"the sample must be one 2D image, got shape {raw.shape}")
    credit = sample_credit or (_SAMPLE_CREDIT if sample is None else "user-supplied image")
    side = 16 * model.config.window_size
    with tempfile.TemporaryDirectory(prefix="emsr-bioimageio-") as tmp, atomic_path(output, overwrite=overwrite) as dst:
        folder = Path(tmp)
        files = _write_files(model, model_path, raw, side, folder, name, credit, licence)
        descr = _describe(spec, model, files, name=name, authors=list(authors), licence=licence)
        built = spec.save_bioimageio_package(descr, output_path=folder / "package.zip")
        _check_valid(spec, Path(built))
        shutil.move(str(built), dst)
    return output


def _default_name(model: EMSR) -> str:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+- ()")
    base = "".join(c if c in allowed else "-" for c in (model.metadata.name or "EMSR"))
    name = f"{base} x{model.config.scale} EM super-resolution"
    return name if model.metadata.trained else f"{name} (untrained)"


def _write_files(model, model_path, raw, side, folder, name, credit, licence) -> dict[str, Path]:
    import tifffile

    test_in = _centre_crop(raw, side).astype(np.float32)
    files = {
        "weights": folder / "weights.pt",
        "safetensors": folder / model_path.name,
        "test_input": folder / "test_input_lr.npy",
        "test_output": folder / "test_output_sr.npy",
        "sample_input": folder / "sample_input_lr.tif",
        "sample_output": folder / "sample_output_sr.tif",
        "cover": folder / "cover.png",
        "readme": folder / "README.md",
    }
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    torch.save(state, files["weights"])
    shutil.copyfile(model_path, files["safetensors"])
    np.save(files["test_input"], test_in[None, None])
    test_out = _predict(model, test_in)
    np.save(files["test_output"], test_out[None, None])
    tifffile.imwrite(files["sample_input"], test_in)
    tifffile.imwrite(files["sample_output"], test_out)
    window = model.config.window_size
    _write_cover(model, _centre_crop(raw, min(2 * side, *raw.shape) // window * window), files["cover"])
    files["readme"].write_text(_readme(model, name, model_path.name, credit, licence), encoding="utf-8")
    return files
