"""bioimage.io model packages: export validated by bioimageio.spec, and loading them without pickle.

Real data: the packaged FlyEM sample (default test tensors and cover) and a FlyEM validation
slice. The model is a tiny random-weight network saved with trained=False (format only).

The packages are also run end to end by bioimageio.core (its model test: the test outputs
reproduced from the test inputs, and inference at other sizes and batch sizes; and its prediction on
a real crop of another size), where bioimageio.core is installed: it is not part of the extras,
because each of its releases pins one bioimageio.spec (0.11.0: 0.5.12.0, which fails with pydantic
2.14 on our packages); ``pip install --no-deps bioimageio.core xarray imagecodecs`` next to the
bioimageio extra's bioimageio.spec installs it.
"""

from __future__ import annotations

import io
import pickle
import sys
import zipfile

import bioimageio.spec  # the 'bioimageio' extra is part of the 'test' extra: missing is a failure
import numpy as np
import pytest
import torch
import yaml

from napari_emsr import ModelFileError, load_model, save_model, super_resolve
from napari_emsr.bmz.export import PAPER, export_bioimageio
from napari_emsr.cli import main
from napari_emsr.errors import OutputExistsError
from napari_emsr.predict import IntensityMap, resolve_intensity

from ._predict_models import sensitive_model

pytestmark = pytest.mark.filterwarnings("ignore::napari_emsr.predict.UntrainedModelWarning")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bmz")
    return save_model(sensitive_model(3), folder / "tiny.safetensors", trained=False, input_pixel_size_nm=30.0)


@pytest.fixture(scope="module")
def package(model_file):
    return export_bioimageio(model_file, model_file.with_name("tiny.zip"))


@pytest.fixture(scope="module")
def percentile_package(tmp_path_factory):
    """A x2 model with per-image percentile intensities (the package's pre-processing is scale_range)."""
    folder = tmp_path_factory.mktemp("bmz_percentile")
    norm = {"mode": "percentile", "low": 0.1, "high": 99.9}
    model = save_model(sensitive_model(2), folder / "p.safetensors", normalization=norm)
    return model, export_bioimageio(model, folder / "p.zip")


def _core():
    """bioimageio.core, or a skip that says why it is missing."""
    return pytest.importorskip(
        "bioimageio.core",
        reason="bioimageio.core is not installed (not in the extras: each release pins one bioimageio.spec; "
        "pip install --no-deps bioimageio.core xarray imagecodecs)",
    )


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rewrite(source, target, change):
    """Copy a package, letting ``change(members)`` edit its files (name -> bytes)."""
    members = _members(source)
    change(members)
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target


@pytest.fixture
def no_pickle(monkeypatch):
    """Any attempt to unpickle (torch.load, pickle.load/loads, Unpickler) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)


def test_package_is_valid_for_bioimageio_spec(package):
    descr = bioimageio.spec.load_description(package, perform_io_checks=True)
    assert not isinstance(descr, bioimageio.spec.InvalidDescr), descr.validation_summary.format()
    assert descr.validation_summary.status in ("valid-format", "passed")
    assert descr.format_version.startswith("0.5")
    assert str(descr.license) == "BSD-3-Clause"
    assert str(descr.cite[0].doi) == PAPER["doi"] and "No-Clean-Reference" in descr.cite[0].text
    assert "UNTRAINED" in descr.description


def test_axes_scales_make_the_output_s_times_finer(package):
    rdf = yaml.safe_load(_members(package)["rdf.yaml"])
    (lr,), (sr,) = rdf["inputs"], rdf["outputs"]
    assert [a["type"] for a in lr["axes"]] == ["batch", "channel", "space", "space"]
    lr_y, sr_y = lr["axes"][2], sr["axes"][2]
    assert lr_y["scale"] == 30.0 and sr_y["scale"] == 10.0 and lr_y["unit"] == sr_y["unit"] == "nanometer"
    assert sr_y["size"] == {"tensor_id": "lr", "axis_id": "y"}
    arch = rdf["weights"]["pytorch_state_dict"]["architecture"]
    assert arch["import_from"] == "napari_emsr" and arch["callable"] == "build_emsr"


def test_test_tensors_are_the_models_output(package, model_file):
    files = _members(package)
    x = np.load(io.BytesIO(files["test_input_lr.npy"]))
    y = np.load(io.BytesIO(files["test_output_sr.npy"]))
    assert x.shape == (1, 1, 64, 64) and y.shape == (1, 1, 192, 192) and x.dtype == y.dtype == np.float32
    assert x.std() > 5  # a real EM crop, not a constant
    model = load_model(model_file)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x / 255.0).float()).numpy() * 255.0
    np.testing.assert_allclose(y, expected, atol=1e-3)


def test_cover_readme_and_weights(package, model_file):
    from PIL import Image

    files = _members(package)
    cover = Image.open(io.BytesIO(files["cover.png"]))
    assert cover.size[0] == 2 * cover.size[1]
    readme = files["README.md"].decode()
    assert "UNTRAINED" in readme and "## Validation" in readme and PAPER["doi"] in readme and "CC BY 3.0" in readme
    assert files["tiny.safetensors"] == model_file.read_bytes()
    # the pytorch_state_dict entry holds plain tensors only (readable with weights_only=True)
    state = torch.load(io.BytesIO(files["weights.pt"]), weights_only=True)
    reference = load_model(model_file).state_dict()
    assert set(state) == set(reference) and all(torch.equal(state[k], reference[k]) for k in state)


def test_load_model_reads_a_package_without_unpickling(package, model_file, no_pickle):
    model = load_model(package)
    original = load_model(model_file)
    assert model.config == original.config and model.metadata.input_pixel_size_nm == 30.0
    assert model.metadata.trained is False
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), original.state_dict().values(), strict=True))


def test_predict_with_a_package(package, model_file, em_slice):
    crop = em_slice[100:164, 100:164]
    options = dict(tile=32, pixel_size=30.0)
    np.testing.assert_array_equal(super_resolve(crop, package, **options), super_resolve(crop, model_file, **options))


def _network(model_file, x):
    with torch.inference_mode():
        return load_model(model_file)(torch.from_numpy(x)[None, None])[0, 0].numpy()


def test_package_processing_is_the_engines_intensity_map(package, model_file):
    """A range model: the engine's IntensityMap of the model's range, to the network and back, as described."""
    files = _members(package)
    x = np.load(io.BytesIO(files["test_input_lr.npy"]))[0, 0]
    y = np.load(io.BytesIO(files["test_output_sr.npy"]))[0, 0]
    intensity = IntensityMap(0.0, 255.0, np.dtype(np.float32))
    np.testing.assert_array_equal(y, intensity.from_network(_network(model_file, intensity.to_network(x))))
    rdf = yaml.safe_load(files["rdf.yaml"])
    (pre,) = (p for p in rdf["inputs"][0]["preprocessing"] if p["id"] != "ensure_dtype")
    (post,) = (p for p in rdf["outputs"][0]["postprocessing"] if p["id"] != "ensure_dtype")
    assert pre["id"] == post["id"] == "scale_linear"
    assert pre["kwargs"]["gain"] == pytest.approx(1 / 255) and pre["kwargs"]["offset"] == 0
    assert post["kwargs"] == {"gain": 255.0, "offset": 0.0}


def test_percentile_models_export_with_scale_range(percentile_package):
    model, package = percentile_package
    # the engine's percentiles of the test image, to the network's 0..1 (where the package's output stays)
    files = _members(package)
    x = np.load(io.BytesIO(files["test_input_lr.npy"]))[0, 0]
    intensity = resolve_intensity(x, load_model(model).metadata.normalization)
    assert intensity.source == "percentile"
    expected = _network(model, intensity.to_network(x))
    np.testing.assert_array_equal(np.load(io.BytesIO(files["test_output_sr.npy"]))[0, 0], expected)
    descr = bioimageio.spec.load_description(package, perform_io_checks=True)
    assert not isinstance(descr, bioimageio.spec.InvalidDescr), descr.validation_summary.format()
    rdf = yaml.safe_load(_members(package)["rdf.yaml"])
    assert [p["id"] for p in rdf["inputs"][0]["preprocessing"]][:2] == ["ensure_dtype", "scale_range"]
    assert rdf["inputs"][0]["axes"][2].get("unit") is None  # no pixel size recorded: no physical unit


def test_foreign_and_corrupt_zips_are_refused(package, tmp_path, no_pickle):
    foreign = tmp_path / "notes.zip"
    with zipfile.ZipFile(foreign, "w") as archive:
        archive.writestr("notes.txt", "hello")
    with pytest.raises(ModelFileError, match="not a bioimage.io model package"):
        load_model(foreign)
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(package.read_bytes()[: package.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="corrupt or truncated zip"):
        load_model(truncated)
    checkpoint = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, checkpoint)
    with pytest.raises(ModelFileError, match="PyTorch checkpoint"):
        load_model(checkpoint)


def test_a_package_with_only_pickled_weights_is_refused(package, tmp_path, no_pickle):
    def drop_ours(members):
        rdf = yaml.safe_load(members["rdf.yaml"])
        del rdf["config"]["napari_emsr"]
        rdf["attachments"] = []
        members.pop("tiny.safetensors")
        members["rdf.yaml"] = yaml.safe_dump(rdf).encode()

    pickled_only = _rewrite(package, tmp_path / "pickled.zip", drop_ours)
    with pytest.raises(ModelFileError, match="only weights are pytorch_state_dict.*never unpickles"):
        load_model(pickled_only)


def test_a_tampered_package_is_refused(package, tmp_path, no_pickle):
    def flip_a_byte(members):
        data = bytearray(members["tiny.safetensors"])
        data[-1] ^= 0xFF
        members["tiny.safetensors"] = bytes(data)

    tampered = _rewrite(package, tmp_path / "tampered.zip", flip_a_byte)
    with pytest.raises(ModelFileError, match="sha256"):
        load_model(tampered)

    def other_tool(members):
        rdf = yaml.safe_load(members["rdf.yaml"])
        del rdf["config"]["napari_emsr"]
        rdf["weights"] = {"onnx": {"source": "model.onnx", "opset_version": 17}}
        members["rdf.yaml"] = yaml.safe_dump(rdf).encode()

    with pytest.raises(ModelFileError, match="not one exported by napari-emsr"):
        load_model(_rewrite(package, tmp_path / "other.zip", other_tool))


def test_cli_export(model_file, tmp_path, capsys):
    out = tmp_path / "cli.zip"
    assert main(["export-bioimageio", str(model_file), str(out), "--author", "A. Tester"]) == 0
    assert "validated with bioimageio.spec" in capsys.readouterr().out
    rdf = yaml.safe_load(_members(out)["rdf.yaml"])
    assert rdf["authors"] == [{"name": "A. Tester"}]
    assert main(["export-bioimageio", str(model_file), str(out)]) == 2
    err = capsys.readouterr().err
    assert "exists" in err and "use --overwrite to replace it" in err and "overwrite=" not in err
    with pytest.raises(OutputExistsError, match="exists: pass overwrite=True to replace it"):
        export_bioimageio(model_file, out)
    assert main(["export-bioimageio", str(model_file), str(tmp_path / "x.tar")]) == 2
    assert "name the output *.zip" in capsys.readouterr().err


def test_missing_extra_names_it(model_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "bioimageio.spec", None)
    assert main(["export-bioimageio", str(model_file), str(tmp_path / "m.zip")]) == 2
    assert "napari-emsr[bioimageio]" in capsys.readouterr().err
    assert not (tmp_path / "m.zip").exists()


def test_a_package_is_always_integrity_checked(package, tmp_path, no_pickle):
    """Removing the sha256 (or the whole attachment entry) does not switch the integrity check off."""

    def without_sha256(also_edit_the_model):
        def change(members):
            rdf = yaml.safe_load(members["rdf.yaml"])
            assert any("sha256" in a for a in rdf["attachments"])  # the exporter records it
            for entry in rdf["attachments"]:
                entry.pop("sha256", None)
            members["rdf.yaml"] = yaml.safe_dump(rdf).encode()
            if also_edit_the_model:
                data = bytearray(members["tiny.safetensors"])
                data[-1] ^= 0xFF
                members["tiny.safetensors"] = bytes(data)

        return change

    for edit in (False, True):
        unchecked = _rewrite(package, tmp_path / f"no-sha-{edit}.zip", without_sha256(edit))
        with pytest.raises(ModelFileError, match="records no sha256 for tiny.safetensors") as info:
            load_model(unchecked)
        assert str(unchecked) in str(info.value)

    def no_attachment(members):
        rdf = yaml.safe_load(members["rdf.yaml"])
        rdf["attachments"] = []
        members["rdf.yaml"] = yaml.safe_dump(rdf).encode()

    with pytest.raises(ModelFileError, match="records no sha256"):
        load_model(_rewrite(package, tmp_path / "no-attachment.zip", no_attachment))

    def bad_sha256(members):
        rdf = yaml.safe_load(members["rdf.yaml"])
        for entry in rdf["attachments"]:
            entry["sha256"] = "not-a-hash"
        members["rdf.yaml"] = yaml.safe_dump(rdf).encode()

    with pytest.raises(ModelFileError, match="does not match the sha256"):
        load_model(_rewrite(package, tmp_path / "bad-sha.zip", bad_sha256))


@pytest.mark.slow
@pytest.mark.parametrize("which", ["range", "percentile"])
def test_bioimageio_core_model_test_passes(which, package, percentile_package):
    """bioimageio.core's own test: it builds the network, reproduces the test outputs, runs other sizes."""
    core = _core()
    source = package if which == "range" else percentile_package[1]
    summary = core.test_model(source, devices=["cpu"])
    assert summary.status == "passed", summary.format()
    names = [detail.name for detail in summary.details]
    assert any("Reproduce test outputs" in name for name in names)
    assert sum("Run pytorch_state_dict inference" in name for name in names) >= 2  # other sizes and batches


def test_bioimageio_core_predicts_as_napari_emsr(package, model_file, em_slice):
    """bioimageio.core on a real crop of another, non-square size: the network napari-emsr runs, and its result."""
    core = _core()
    from bioimageio.spec.model.v0_5 import TensorId

    crop = em_slice[100:148, 200:280]  # uint8, 48 x 80: sizes of the package's steps (window 4)
    sample = core.predict(model=package, inputs={TensorId("lr"): crop[None, None]})
    sr = sample.members[TensorId("sr")]
    assert tuple(sr.dims) == ("batch", "channel", "y", "x")
    y = np.asarray(sr.data)[0, 0]
    assert y.shape == (144, 240) and y.dtype == np.float32
    intensity = IntensityMap(0.0, 255.0, np.dtype(np.float32))
    expected = intensity.from_network(_network(model_file, intensity.to_network(crop.astype(np.float32))))
    np.testing.assert_allclose(y, expected, atol=1e-3)
    ours = super_resolve(crop, package, tile=128, pixel_size=30.0, precision="fp32")  # one tile; fp32 as core runs it
    np.testing.assert_array_equal(ours, np.clip(y, 0, 255).round().astype(np.uint8))
