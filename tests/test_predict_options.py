"""PredictOptions: checked once when made; PlanSummary: typed, JSON-ready; hints phrased per front end."""

import dataclasses
import json

import numpy as np
import pytest

from napari_emsr import PredictOptions, iter_super_resolve, super_resolve
from napari_emsr.errors import Hint, HintedMemoryError, OutputExistsError
from napari_emsr.predict import PlanSummary
from napari_emsr.predict.options import build_options

from ._predict_models import sensitive_model

pytestmark = pytest.mark.filterwarnings("ignore::napari_emsr.predict.UntrainedModelWarning")


def test_defaults_and_normalised_values():
    options = PredictOptions()
    assert (options.tile, options.overlap, options.device, options.resume, options.overwrite) == (
        None, "auto", "auto", False, False)  # fmt: skip
    given = PredictOptions(
        tile=np.int64(64), overlap=None, device=" CUDA:1 ", pixel_size=np.float32(10), intensity_range=[0, 255],
        region=((2, 10), slice(None, 7)), self_ensemble=np.bool_(True),
    )  # fmt: skip
    assert given.tile == 64 and type(given.tile) is int and given.overlap == "auto" and given.device == "cuda:1"
    assert given.pixel_size == 10.0 and given.intensity_range == (0.0, 255.0) and given.self_ensemble is True
    assert given.region == (slice(2, 10), slice(None, 7))
    assert PredictOptions(pixel_size=[40, 10, 10]).pixel_size == (40.0, 10.0, 10.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        given.tile = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(tile=0), ValueError, "tile must be a whole number >= 1, got 0"),
        (dict(tile=2.5), ValueError, "tile must be a whole number"),
        (dict(tile=True), ValueError, "tile must be a whole number"),
        (dict(overlap=-1), ValueError, "overlap must be 'auto', 'exact' or a whole number >= 0, got -1"),
        (dict(overlap="big"), ValueError, "overlap must be 'auto', 'exact'"),
        (dict(blend=-2), ValueError, "blend must be a whole number >= 0"),
        (dict(batch=0), ValueError, "batch must be a whole number >= 1"),
        (dict(device="tpu"), ValueError, "unknown device 'tpu'"),
        (dict(device="meta"), ValueError, "device type 'meta' is not supported"),
        (dict(pixel_size=0), ValueError, "pixel size must be a positive number"),
        (dict(pixel_size=(1, 2, 3, 4)), ValueError, "one number .* or one per axis"),
        (dict(pixel_size="ten"), ValueError, "pixel size must be a positive number"),
        (dict(intensity_range=(5, 1)), ValueError, "low < high"),
        (dict(intensity_range=(0, float("nan"))), ValueError, "finite"),
        (dict(intensity_range=3), ValueError, "two numbers"),
        (dict(region=(slice(0, 10),)), ValueError, "region must be"),
        (dict(region=(slice(0, 10, 2), slice(0, 5))), ValueError, "cannot have a step"),
        (dict(first_slice=-1), ValueError, "first_slice must be a whole number >= 0"),
        (dict(resume="yes"), TypeError, "resume must be True or False"),
        (dict(self_ensemble=1), TypeError, "self_ensemble must be True or False"),
    ],
)
def test_bad_values_are_refused_when_made(options, error, message):
    with pytest.raises(error, match=message):
        PredictOptions(**options)


def test_keywords_build_the_same_options_and_unknown_ones_are_refused(em_slice):
    base = PredictOptions(tile=32, overlap=4)
    assert build_options(base) is base
    assert build_options(base, resume=True) == dataclasses.replace(base, resume=True)
    assert build_options(None, tile=32, overlap=4) == base
    with pytest.raises(ValueError, match="tile must be"):
        base.replace(tile=0)  # a copy is checked like the original
    with pytest.raises(TypeError, match="unknown prediction option.*tiles"):
        super_resolve(em_slice[:32, :32], sensitive_model(2), tiles=32)
    with pytest.raises(TypeError, match="options must be a PredictOptions"):
        build_options({"tile": 32})  # type: ignore[arg-type]
    model = sensitive_model(2)
    x = em_slice[:40, :48]
    np.testing.assert_array_equal(super_resolve(x, model, options=base), super_resolve(x, model, tile=32, overlap=4))
    assert base.to_dict()["overlap"] == 4 and json.dumps(PredictOptions(region=((1, 5), (2, 6))).to_dict())


def test_the_plan_summary_is_typed_and_json_ready(em_slice):
    events = iter_super_resolve(em_slice[:40, :48], sensitive_model(2), options=PredictOptions(tile=16, overlap=8))
    summary = next(events).payload
    events.close()
    assert isinstance(summary, PlanSummary) and summary.cluster is None
    assert summary.input_shape == (40, 48) and summary.output_shape == (80, 96) and summary.dtype == "uint8"
    assert summary.slices_total == 1 and summary.slices_reused == 0 and summary.slices_to_do == 1
    as_json = json.loads(json.dumps(summary.to_dict()))
    assert as_json["output_shape"] == [80, 96] and as_json["tile"] == 16 and as_json["halo"] == 8
    assert as_json["intensity"]["dtype"] == "uint8" and as_json["cluster"] is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        summary.tile = 8  # type: ignore[misc]


def test_python_cli_and_gui_phrase_the_same_hints_their_own_way():
    pytest.importorskip("qtpy")
    from napari_emsr._napari.common.run_panel import gui_message
    from napari_emsr.cli._progress import cli_message

    exists = OutputExistsError("sr.ome.tif exists", Hint("overwrite", True, "to replace it"))
    assert str(exists) == "sr.ome.tif exists: pass overwrite=True to replace it"
    assert cli_message(exists) == "sr.ome.tif exists: use --overwrite to replace it"
    assert gui_message(exists) == 'sr.ome.tif exists: tick "Replace an existing output" to replace it'
    memory = HintedMemoryError(
        "out of memory on cuda even with one 8-pixel tile per pass",
        Hint("device", "cpu", "(the main memory is usually larger)"), Hint("overlap", 16, "(less context)"),
    )  # fmt: skip
    larger = "(the main memory is usually larger)"
    assert str(memory).endswith(f": pass device='cpu' {larger}, or pass overlap=16 (less context)")
    assert cli_message(memory).endswith(f": give --device cpu {larger}, or give --overlap 16 (less context)")
    gui = gui_message(memory)
    assert gui.endswith(f": choose another Device (cpu) {larger}, or choose a smaller Overlap (less context)")
