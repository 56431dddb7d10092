"""``emsr predict``: super-resolve an image or a volume into an OME-TIFF or an OME-Zarr."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from napari_emsr.cli import CLIError

if TYPE_CHECKING:
    from napari_emsr.cli._progress import Writer
    from napari_emsr.events import Event
    from napari_emsr.predict import PlanSummary, PredictOptions

_DESCRIPTION = """\
Super-resolve INPUT slice by slice with a model file and write OUTPUT chunk by chunk.

INPUT: a TIFF / OME-TIFF / ImageJ TIFF, a PNG, a folder of PNG or TIFF slices, a glob of slices
(quote it: "scan/*.png"; natural order, 2 before 10), a Zarr / OME-Zarr, an MRC / MRCS file
(.mrc, .mrcs, .rec, .st, .ali), an HDF5 file (.h5, .hdf5, .hdf) or an N5 container (.n5; needs
pip install 'napari-emsr[n5]'). In an HDF5 / N5 / Zarr holding several images, name one after a
colon: sample.h5:/volumes/raw. It is read lazily, with the pixel size the file records.
OUTPUT: NAME.ome.tif (or .tif) or NAME.ome.zarr (or .zarr), with the pixel size / scale. It is
written under a temporary name and renamed when complete; an interrupted OME-Zarr run keeps its
progress in .NAME.partial and continues with --resume.

By default tiles get a halo of the network's effective receptive radius, measured on the input:
the result is within about a quarter of a grey level of a prediction of each whole slice. With
--overlap exact it equals it (up to float rounding), at 1.5-2x the cost; --overlap N sets the halo.

--uncertainty MAP also writes an uncertainty map: per output pixel, the standard deviation of the
8 flipped / rotated predictions (float32, output grey levels; the result is then their mean, as
with --self-ensemble, 8x slower). It shows where the network's answer depends on how the slice is
turned: a guide to where to look, not an error bar (docs/prediction.md).

--scheduler runs the per-slice work as tasks on a dask.distributed cluster (optional extra:
pip install 'napari-emsr[distributed]'): local:N starts N worker processes here; an address
(tcp://HOST:PORT) uses a running scheduler. Workers load the model once, use their own GPU when
they have one and write their slices straight into OUTPUT (an OME-Zarr on a shared file system).
"""


def _pixel_size(text: str) -> float | tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected nanometres, e.g. 10 or 40,10,10; got {text!r}") from None
    if len(values) not in (1, 2, 3) or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected 1 (y and x) or 2-3 positive sizes in nm, got {text!r}")
    return values[0] if len(values) == 1 else values


def _overlap(text: str) -> int | str:
    if text in ("auto", "exact"):
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels, 'auto' or 'exact'; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"the overlap must be >= 0, got {value}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``emsr predict`` subcommand to the subparsers ``sub``."""
    p = sub.add_parser(
        "predict",
        help="super-resolve an image or a volume",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "input", metavar="INPUT", help="image, stack, folder or glob of slices, Zarr, MRC, HDF5 (FILE.h5:/DATASET), N5"
    )
    p.add_argument("output", metavar="OUTPUT", help="*.ome.tif / *.tif or *.ome.zarr / *.zarr")
    p.add_argument(
        "--scale", type=int, choices=[2, 3, 4],
        help="without --model: use the shipped model of this up-sampling factor (default: 3)",
    )
    p.add_argument(
        "--model", metavar="MODEL",
        help="a .safetensors model file, a bioimage.io package (.zip) made by emsr export-bioimageio, or the name "
        "of a shipped model (emsr info --zoo lists them) (default: the shipped model for --scale)",
    )  # fmt: skip
    p.add_argument("--tile", type=_tile, metavar="N",
                   help="tile core size in input pixels (default: CPU 256, 512 in bf16; GPU 1024), or auto: the "
                        "fastest of a few sizes timed on this device for this slice (cached)")  # fmt: skip
    p.add_argument(
        "--overlap",
        type=_overlap,
        metavar="N",
        help="tile halo in input pixels, 'auto' (default: the measured effective radius) or 'exact'",
    )
    p.add_argument("--batch", type=int, metavar="N", help="tiles per forward pass (default 1 CPU, 4 GPU)")
    p.add_argument("--device", default="auto", metavar="D", help="auto (default), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="arithmetic of the network: auto (default: bf16 on GPUs that have it and on CPUs "
                        "with AMX-BF16, else fp32), fp32, bf16, fp16 (CUDA only); the choice and why are "
                        "printed")  # fmt: skip
    p.add_argument(
        "--pixel-size",
        type=_pixel_size,
        metavar="NM",
        help="input pixel size in nm: y and x, or z,y,x (overrides the file)",
    )
    p.add_argument(
        "--intensity-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
        help="raw intensities mapped to the network's 0 and 1 (default: the model's normalisation)",
    )  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue an interrupted OME-Zarr run")
    p.add_argument("--overwrite", action="store_true", help="replace OUTPUT (once the new one is complete)")
    p.add_argument("--no-pyramid", dest="pyramid", action="store_false",
                   help="an OME-Zarr OUTPUT without its multiscale pyramid (by default y and x are halved per "
                        "level until <= 512 px, written with each slice, for fast browsing in napari)")  # fmt: skip
    p.add_argument("--self-ensemble", action="store_true", help="average the 8 flips/rotations (8x slower)")
    p.add_argument(
        "--uncertainty", metavar="MAP",
        help="also write the uncertainty map (the spread of the 8 flips/rotations) to MAP (*.ome.tif or "
        "*.ome.zarr, like OUTPUT); implies --self-ensemble",
    )  # fmt: skip
    p.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run on a dask cluster: local:N (N worker processes here), a scheduler address tcp://HOST:PORT "
        "or a scheduler file *.json (OME-Zarr output only)",
    )  # fmt: skip
    p.add_argument(
        "--scheduler-timeout", type=float, default=10.0, metavar="S",
        help="seconds to wait for the scheduler to answer (default 10)",
    )  # fmt: skip


def _check_output(args: argparse.Namespace) -> None:
    """Refuse a bad OUTPUT (or MAP) before anything is read or written."""
    from napari_emsr.io.writers import output_kind

    for target, what in _targets(args)[1:]:
        _check_target(args, Path(target), what)
        if Path(target).resolve() == Path(args.output).resolve():
            raise CLIError(f"{target} is also OUTPUT; give the uncertainty map another path")
        if args.scheduler is not None:
            raise CLIError("--uncertainty is not available with --scheduler; run without --scheduler to write the map")
    _check_target(args, Path(args.output), "output")
    output = Path(args.output)
    kind = output_kind(output)
    if args.scheduler is not None:
        from napari_emsr.predict.distributed import parse_scheduler

        parse_scheduler(args.scheduler)  # a malformed value is a ValueError: one line, exit status 2
        if kind != "ome-zarr":
            raise CLIError(f"{output}: a distributed run (--scheduler) writes an OME-Zarr; name OUTPUT NAME.ome.zarr")


def _targets(args: argparse.Namespace) -> list[tuple[str, str]]:
    """OUTPUT and, with --uncertainty, MAP: (path, what it is)."""
    mapped = getattr(args, "uncertainty", None)
    return [(args.output, "output")] + ([(mapped, "uncertainty map")] if mapped else [])


def _check_target(args: argparse.Namespace, output: Path, what: str) -> None:
    from napari_emsr.io.writers import output_kind

    kind = output_kind(output)
    if not output.parent.is_dir():
        raise CLIError(f"{output.parent} does not exist; create the {what}'s folder first")
    if args.resume and kind != "ome-zarr":
        raise CLIError(f"{output}: only OME-Zarr outputs can be resumed; write to NAME.ome.zarr to use --resume")
    if output.exists() and not (args.overwrite or args.resume):
        raise CLIError(f"{output} exists; pass --overwrite to replace it")
    if Path(args.input).exists() and output.resolve() == Path(args.input).resolve():
        raise CLIError(f"{output} is the input; write the {what} to another path")


@contextlib.contextmanager
def _warnings_as_lines(write) -> Iterator[None]:
    """Show each warning once, as one 'emsr predict: warning: ...' line."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = lambda message, *rest, **kw: write(f"emsr predict: warning: {_phrase(message)}")
        yield


class Terminated(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) turned into an exception, so that the run stops as cleanly as on Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _stop_on_termination() -> Iterator[None]:
    """While the run goes: SIGTERM / SIGHUP raise :class:`Terminated` (once; a repeat is ignored)."""
    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are delivered to the main thread only
        return
    fired: list[int] = []

    def handler(signum, frame):
        if not fired:  # a second signal while cleaning up must not interrupt the clean-up
            fired.append(signum)
            raise Terminated(signum)

    previous = {n: signal.signal(getattr(signal, n), handler) for n in names}
    try:
        yield
    finally:
        for n, old in previous.items():
            signal.signal(getattr(signal, n), old)


def run(args: argparse.Namespace) -> int:
    """Run ``emsr predict`` with the parsed ``args``; return the exit status."""
    with _stop_on_termination():
        try:
            _check_output(args)
            return _run_distributed(args) if args.scheduler is not None else _run_local(args)
        except KeyboardInterrupt as exc:
            _stderr(interrupted_line(args, exc))
            return 128 + exc.signum if isinstance(exc, Terminated) else 130


def interrupted_line(args: argparse.Namespace, exc: BaseException, command: str = "emsr predict") -> str:
    """Return the line of a stopped run: what is kept, and how to continue (--resume) or why it cannot be."""
    from napari_emsr.io.writers import output_kind, partial_path, read_done

    how = f"terminated ({signal.Signals(exc.signum).name})" if isinstance(exc, Terminated) else "interrupted"
    targets = _targets(args)
    if len(targets) > 1:  # OUTPUT and the uncertainty map: one line for both
        lines = [interrupted_line(_with_output(args, path), exc, command) for path, _ in targets]
        parts = [line.split("; ", 1)[1] for line in lines if "; " in line]
        if len(parts) < len(lines) or all(part.startswith("nothing was written") for part in parts):
            return lines[0]  # the same for both: said once, of OUTPUT
        tail = ": rerun the same command with --resume to continue"
        if all(part.endswith(tail) for part in parts):
            return f"{command}: {how}; " + " and ".join(part[: -len(tail)] for part in parts) + tail
        return f"{command}: {how}; " + "; ".join(dict.fromkeys(parts))
    output = Path(args.output)
    try:
        kind = output_kind(output)
    except ValueError:  # stopped before OUTPUT was checked
        return f"{command}: {how}"
    if kind == "ome-zarr":
        partial = partial_path(output)
        if partial.is_dir():
            try:
                done = read_done(partial)
                kept = f"{int(done.sum())} of {done.size} slice(s) are done and kept in {partial}"
            except Exception:  # noqa: BLE001  (stopped while the store was being made)
                kept = f"the partial result is kept in {partial}"
            return f"{command}: {how}; {kept}: rerun the same command with --resume to continue"
        return f"{command}: {how} before any slice was finished; nothing was written (rerun the command)"
    return (
        f"{command}: {how}; nothing was written (an OME-TIFF run cannot be resumed: to be able to continue "
        f"with --resume after an interruption, write {output.name.split('.')[0]}.ome.zarr)"
    )


def _with_output(args: argparse.Namespace, output: str) -> argparse.Namespace:
    """``args`` with another OUTPUT and no map (to describe one target)."""
    return argparse.Namespace(**{**vars(args), "output": output, "uncertainty": None})


def predict_options(args: argparse.Namespace) -> PredictOptions:
    """Return the :class:`~napari_emsr.predict.PredictOptions` of the parsed ``emsr predict`` arguments.

    The one place the command line becomes the library's options (a bad value is a ValueError:
    one line, exit status 2).
    """
    from napari_emsr.predict.options import PredictOptions

    return PredictOptions(
        tile=args.tile, overlap=args.overlap, batch=args.batch, device=args.device, pixel_size=args.pixel_size,
        self_ensemble=args.self_ensemble, intensity_range=args.intensity_range, resume=args.resume,
        overwrite=args.overwrite, pyramid=args.pyramid, precision=args.precision,
    )  # fmt: skip


#: hint phrasing of this command: the library's options as its flags (``--intensity-range`` takes two values)
_HINTS = {"intensity_range": lambda hint: "give --intensity-range LOW HIGH"}


def _phrase(exc: BaseException) -> str:
    """Return a library error's or warning's message with its hints phrased as this command's options."""
    from napari_emsr.cli._progress import cli_option
    from napari_emsr.errors import EMSRError, phrase_with

    if isinstance(exc, EMSRError):
        return exc.phrased(phrase_with(_HINTS, cli_option))
    return str(exc)


def _run_local(args: argparse.Namespace) -> int:
    from napari_emsr.errors import EMSRError
    from napari_emsr.io import open_volume
    from napari_emsr.model_io import load_model
    from napari_emsr.predict import iter_super_resolve

    started = time.perf_counter()
    options = predict_options(args)
    volume = open_volume(args.input, pixel_size=args.pixel_size)
    with volume:
        model = load_model(_model_path(args))
        try:
            events = iter_super_resolve(volume, model, output=args.output, uncertainty=args.uncertainty,
                                        options=options)  # fmt: skip
            first, last = _drive(events)
        except (EMSRError, OSError, ValueError) as exc:
            if isinstance(exc, EMSRError):
                raise CLIError(_phrase(exc)) from None
            if isinstance(exc, ValueError):
                raise
            raise CLIError(f"reading or writing failed: {exc}") from None
        except MemoryError as exc:
            raise CLIError(_phrase(exc) or "out of memory") from None
    _summary(first, args.output, time.perf_counter() - started)
    if args.uncertainty:
        what = "uncertainty map (std of the 8 flips/rotations, float32 grey levels)"
        print(f"emsr predict: {what} -> {args.uncertainty}")
    return 0


def _model_path(args: argparse.Namespace):
    """Return the model file for --model / --scale (a shipped model's name, a file, or the zoo default)."""
    from napari_emsr.cli import CLIError
    from napari_emsr.model_io import read_model_header, resolve_model_path

    try:
        path = resolve_model_path(args.model, scale=args.scale)
    except FileNotFoundError as exc:
        raise CLIError(_phrase(exc)) from None
    if args.model is not None and args.scale is not None and path.suffix == ".safetensors" and path.is_file():
        _, emsr = read_model_header(path)
        if int(emsr.get("scale", args.scale)) != args.scale:
            raise CLIError(
                f"--scale {args.scale} disagrees with the model {args.model}, which is x{emsr.get('scale')}; "
                "leave out --scale or choose another model"
            )
    return path


def _run_distributed(args: argparse.Namespace) -> int:
    """``--scheduler``: the same run as dask tasks; workers read INPUT and write OUTPUT themselves."""
    from napari_emsr.errors import EMSRError
    from napari_emsr.predict.distributed import iter_super_resolve_distributed

    started = time.perf_counter()
    options = predict_options(args)
    try:
        events = iter_super_resolve_distributed(
            args.input, _model_path(args), output=args.output, scheduler=args.scheduler, options=options,
            connect_timeout=args.scheduler_timeout,
        )  # fmt: skip
        first, last = _drive(events)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    except (EMSRError, RuntimeError, OSError, ValueError) as exc:
        if isinstance(exc, EMSRError):
            raise CLIError(_phrase(exc)) from None
        if isinstance(exc, ValueError):
            raise
        raise CLIError(f"the distributed run failed: {exc}") from None
    _summary(first, args.output, time.perf_counter() - started)
    return 0


def _drive(events: Iterator[Event]) -> tuple[Event, Event]:
    """Run the events to the end with the CLI's progress bar and this command's lines; the first and the last event."""
    from tqdm import tqdm

    from napari_emsr.cli._progress import drive

    with _warnings_as_lines(lambda line: tqdm.write(line, file=sys.stderr)):
        first, last = drive(events, desc="emsr predict", on_event=_show)
    if first is None or last is None or last.kind != "done":  # the generator ends with "done" unless it raised
        raise RuntimeError("the run ended without a result")
    return first, last


def _show(event: Event, write: Writer) -> None:
    """Write the run's plan (and its cluster) when it starts."""
    if event.kind != "start":
        return
    plan: PlanSummary = event.payload
    if plan.cluster is not None:
        cluster = plan.cluster
        dashboard = f", dashboard {cluster.dashboard}" if cluster.dashboard else ""
        write(
            f"emsr predict: dask cluster {cluster.scheduler}: {cluster.workers} worker(s), "
            f"{cluster.worker_gpus} GPU(s), device {plan.device} chosen on each worker{dashboard}"
        )
    exact = "exact" if plan.exact else f"{plan.halo_mode}; receptive radius {plan.receptive_radius}"
    write(
        f"emsr predict: {list(plan.input_shape)} {plan.dtype} -> {list(plan.output_shape)} on {plan.device}, "
        f"tile {plan.tile}{_tile_note(plan)}, halo {plan.halo} ({exact}), batch {plan.batch}, {plan.precision}"
        + (f" ({plan.precision_reason})" if plan.precision_reason else "")
        + (", self-ensemble" if plan.self_ensemble else "")
        + (
            f"; resuming: {plan.slices_reused} of {plan.slices_total} slice(s) already done"
            if plan.slices_reused
            else ""
        )
    )


def _tile(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of pixels or auto, got {text!r}") from None


def _tile_note(plan: PlanSummary) -> str:
    """' (auto, cached)' or ' (auto: 128 1.2 s, 256 0.9 s per slice)' for a timed tile; '' otherwise."""
    choice = plan.tile_choice
    if not choice:
        return ""
    timed = ", ".join(f"{t} {sec:.2g} s" for t, sec in choice.get("seconds", {}).items())
    return f" (auto, cached: {timed} per slice)" if choice.get("cached") else f" (auto: {timed} per slice)"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _summary(first: Event, output: str, seconds: float) -> None:
    """Print the final line: slices, output shape, seconds, output megapixels per second, slices reused."""
    import numpy as np

    plan: PlanSummary = first.payload
    shape, slices = tuple(plan.output_shape), plan.slices_total
    computed, reused = plan.slices_to_do, plan.slices_reused
    if computed == 0:
        print(f"emsr predict: {output} is already complete ({slices} slice(s), output {shape}); nothing to do")
        return
    pixels = float(np.prod(shape[-2:])) * computed
    resumed = f"; resumed: {reused} slice(s) reused from the interrupted run, {computed} computed" if reused else ""
    print(
        f"emsr predict: {slices} slice{'s' if slices != 1 else ''} -> {output} {shape} in {seconds:.1f} s, "
        f"{pixels / 1e6 / max(seconds, 1e-9):.2f} output MP/s{resumed}"
    )
