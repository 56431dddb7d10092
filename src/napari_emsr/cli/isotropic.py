"""``emsr isotropic``: reconstruct an isotropic volume from an anisotropic one (section-sampled z)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_emsr.cli import CLIError
from napari_emsr.cli.predict import (
    Terminated,
    _overlap,
    _phrase,
    _pixel_size,
    _stderr,
    _stop_on_termination,
    _tile,
    _warnings_as_lines,
    interrupted_line,
)

if TYPE_CHECKING:
    from napari_emsr.cli._progress import Writer
    from napari_emsr.events import Event

_DESCRIPTION = """\
Reconstruct an isotropic volume from INPUT, a stack whose z step is K times its xy pixel size
(serial sections, ATUM, SBF-SEM), and write OUTPUT with isotropic voxels.

Without --model, a network is first trained on INPUT's own xy slices (about --minutes; no
isotropic ground truth is needed): their rows are sampled the way the sections sample z (a box
or Gaussian section profile, one measurement's noise), interpolated back with cubic
interpolation, and the network learns to restore them, with EMSR's noisier copy and no clean
reference. It starts from the shipped em-x3 model's weights and is saved (--save-model, default
OUTPUT's name + .isotropic.safetensors) for reuse with --model on similar volumes.

Then INPUT is interpolated to the isotropic grid along z (cubic), every xz and every yz plane is
restored by the network, and the two views are averaged (--views). K comes from INPUT's pixel
sizes or --z-factor and need not be whole. OUTPUT (NAME.ome.tif or NAME.ome.zarr) is written
slab by slab under a temporary name; an interrupted OME-Zarr run continues with --resume (which
also continues an interrupted training from its last state).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``emsr isotropic`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser("isotropic", help="reconstruct an isotropic volume from an anisotropic one",
                       description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("input", metavar="INPUT", help="an anisotropic (z, y, x) stack, in any format emsr predict reads")
    p.add_argument("output", metavar="OUTPUT", help="*.ome.tif / *.tif or *.ome.zarr / *.zarr")
    p.add_argument("--z-factor", type=float, metavar="K",
                   help="z step / xy pixel size (default: from INPUT's pixel sizes, or --pixel-size Z,Y,X)")
    p.add_argument("--model", metavar="MODEL",
                   help="an isotropic model made by an earlier run (its .isotropic.safetensors); default: train one "
                        "on INPUT first")  # fmt: skip
    p.add_argument("--save-model", metavar="FILE",
                   help="where the trained model goes (default: OUTPUT's name + .isotropic.safetensors)")
    p.add_argument("--minutes", type=float, default=15.0, metavar="M",
                   help="training time budget in minutes (default 15)")
    p.add_argument("--steps", type=int, metavar="N", help="train exactly N steps instead of a time budget")
    p.add_argument("--section-profile", choices=["box", "gaussian"], default="box",
                   help="how a section integrates z: a box of its thickness (default) or a Gaussian (FWHM)")
    p.add_argument("--section-thickness", type=float, default=1.0, metavar="T",
                   help="section thickness in z steps (default 1: contiguous sections)")
    p.add_argument("--views", choices=["xz+yz", "xz", "yz"], default="xz+yz",
                   help="planes restored: both, averaged (default), or one (half the time)")
    p.add_argument("--tile", type=_tile, metavar="N",
                   help="tile core size in pixels (default: CPU 256, 512 in bf16; GPU 1024)")
    p.add_argument("--overlap", type=_overlap, metavar="N",
                   help="tile halo in pixels, 'auto' (default: the measured effective radius) or 'exact'")
    p.add_argument("--batch", type=int, metavar="N", help="tiles per forward pass")
    p.add_argument("--device", default="auto", metavar="D", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="arithmetic of the network (auto: bf16 where the hardware has it, else fp32)")
    p.add_argument("--pixel-size", type=_pixel_size, metavar="NM", help="pixel size in nm: z,y,x (overrides the file)")
    p.add_argument("--intensity-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="raw intensities mapped to the network's 0 and 1 (default: the model's normalisation)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run (training and OME-Zarr output)")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT (and the trained model file)")
    p.add_argument("--no-pyramid", dest="pyramid", action="store_false", help="an OME-Zarr OUTPUT without its pyramid")
    p.add_argument("--seed", type=int, default=0, help="seed of the training's random draws (default 0)")


def model_file(args: argparse.Namespace) -> Path:
    """Where a run without --model writes the network it trains."""
    if args.save_model:
        return Path(args.save_model)
    output = Path(args.output)
    return output.with_name(output.name.split(".")[0] + ".isotropic.safetensors")


def _check(args: argparse.Namespace) -> None:
    from napari_emsr.io.writers import output_kind

    output = Path(args.output)
    kind = output_kind(output)
    if not output.parent.is_dir():
        raise CLIError(f"{output.parent} does not exist; create the output folder first")
    if args.resume and kind != "ome-zarr":
        raise CLIError(f"{output}: only OME-Zarr outputs can be resumed; write to NAME.ome.zarr to use --resume")
    if output.exists() and not (args.overwrite or args.resume):
        raise CLIError(f"{output} exists; pass --overwrite to replace it")
    if Path(args.input).exists() and output.resolve() == Path(args.input).resolve():
        raise CLIError(f"{output} is the input; write the output to another path")
    if args.model is None:
        target = model_file(args)
        if target.exists() and not (args.overwrite or args.resume):
            raise CLIError(f"{target} exists (a model trained by an earlier run): pass --model {target} to use it, "
                           "--resume to continue its training, or --overwrite to train a new one")  # fmt: skip
        if not target.parent.is_dir():
            raise CLIError(f"{target.parent} does not exist; create the folder for --save-model first")
    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be a positive whole number, got {args.steps}")
    if not args.minutes > 0:
        raise CLIError(f"--minutes must be positive, got {args.minutes:g}")


def run(args: argparse.Namespace) -> int:
    """Run ``emsr isotropic`` with the parsed ``args``; return the exit status."""
    with _stop_on_termination():
        try:
            _check(args)
            return _run(args)
        except KeyboardInterrupt as exc:
            _stderr(interrupted_line(args, exc, command="emsr isotropic"))
            return 128 + exc.signum if isinstance(exc, Terminated) else 130


def _run(args: argparse.Namespace) -> int:
    from napari_emsr.errors import EMSRError
    from napari_emsr.io import open_volume
    from napari_emsr.isotropic import iter_isotropic, resolve_z_factor
    from napari_emsr.predict.options import PredictOptions

    started = time.perf_counter()
    options = PredictOptions(
        tile=args.tile, overlap=args.overlap, batch=args.batch, device=args.device, pixel_size=args.pixel_size,
        intensity_range=args.intensity_range, resume=args.resume, overwrite=args.overwrite, pyramid=args.pyramid,
        precision=args.precision,
    )  # fmt: skip
    volume = open_volume(args.input, pixel_size=args.pixel_size)
    with volume:
        if volume.ndim != 3 or volume.shape[0] < 2:
            raise CLIError(f"{args.input}: isotropic reconstruction needs a (z, y, x) stack, got shape {volume.shape}")
        try:
            factor, source = resolve_z_factor(args.z_factor, volume.pixel_size_nm)
        except EMSRError as exc:
            raise CLIError(_phrase(exc)) from None
        print(f"emsr isotropic: z factor {factor:.4g} ({source})", file=sys.stderr)
        if args.model is None:
            trained = _train(args, volume, factor)
            if isinstance(trained, int):  # stopped: run_training said where the last state is
                return trained
            model = trained
        else:
            from napari_emsr.model_io import resolve_model_path

            try:
                model = resolve_model_path(args.model)
            except FileNotFoundError as exc:
                raise CLIError(_phrase(exc)) from None
        from tqdm import tqdm

        from napari_emsr.cli._progress import drive

        try:
            with _warnings_as_lines(lambda line: tqdm.write(line.replace("emsr predict", "emsr isotropic"),
                                                            file=sys.stderr)):  # fmt: skip
                first, last = drive(iter_isotropic(volume, model, output=args.output, z_factor=factor,
                                                   views=args.views, options=options),
                                    desc="emsr isotropic", on_event=_show)  # fmt: skip
        except (EMSRError, OSError) as exc:
            if isinstance(exc, EMSRError):
                raise CLIError(_phrase(exc)) from None
            raise CLIError(f"reading or writing failed: {exc}") from None
        except MemoryError as exc:
            raise CLIError(_phrase(exc) or "out of memory") from None
    if first is None or last is None or last.kind != "done":
        raise RuntimeError("the run ended without a result")
    summary = first.payload
    print(f"emsr isotropic: {list(summary.input_shape)} -> {args.output} {list(summary.output_shape)} "
          f"(z pixel {_nm(summary.output_pixel_size_nm)}) in {time.perf_counter() - started:.1f} s")  # fmt: skip
    return 0


def _nm(sizes: Any) -> str:
    if not sizes or sizes[0] is None:
        return "unknown"
    return f"{sizes[0]:.4g} nm"


def _train(args: argparse.Namespace, volume: Any, factor: float) -> Path | int:
    """Train the isotropic network on INPUT's xy slices; return the model file (or the exit status if stopped)."""
    from napari_emsr.cli._training import command_line, run_training
    from napari_emsr.config import TrainingConfig, training_precision_of
    from napari_emsr.device import select_device
    from napari_emsr.isotropic.train import iter_train_isotropic, training_slices

    target = model_file(args)
    select_device(args.device)  # an unavailable device is refused before the slices are read
    precision = training_precision_of(args.precision)  # auto: the trainer decides on its device
    steps = args.steps
    config = TrainingConfig(
        strategy="axial", z_factor=factor, section_profile=args.section_profile,
        section_thickness=args.section_thickness, steps=steps or 100_000, minutes=None if steps else args.minutes,
        budget=steps is None, batch=4, patch=64, val_every=250, halve_every=50_000, seed=args.seed,
        device=args.device, precision=precision,
    )  # fmt: skip
    from napari_emsr.training import checkpoint_path

    resume = bool(args.resume and checkpoint_path(target).exists())
    print(f"emsr isotropic: training the network on {args.input}'s xy slices -> {target}"
          + (" (resuming)" if resume else ""), file=sys.stderr)  # fmt: skip
    sizes = volume.pixel_size_nm
    events = iter_train_isotropic(
        training_slices(volume.data), target, z_factor=factor, config=config, pixel_size=sizes,
        provenance={"data": str(args.input), "command": command_line(args)},
        resume=resume, overwrite=args.overwrite or (args.resume and not resume),
    )  # fmt: skip
    train_args = argparse.Namespace(**{**vars(args), "out": str(target), "command": "isotropic", "resume": resume})
    status = run_training(events, train_args)
    return target if status == 0 else status


def _show(event: Event, write: Writer) -> None:
    if event.kind != "start":
        return
    s = event.payload
    engine = s.engine
    factors = s.trained_z_factor
    trained = "" if factors is None else f", model trained for K {factors[0]:g}..{factors[1]:g}"
    write(f"emsr isotropic: {list(s.input_shape)} -> {list(s.output_shape)} ({s.views}) on {engine.device}, "
          f"tile {engine.tile}, halo {engine.halo}, {engine.precision}; slabs of {s.slab} rows x {s.band} y"
          f"{trained}"
          + (f"; resuming: {s.slices_reused} of {s.slices_total} slice(s) done" if s.slices_reused else "")
          )  # fmt: skip
