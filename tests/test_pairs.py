"""Real LR/HR pairs: integer ratio, locating the HR field inside the LR field, contrast matching."""

import numpy as np
import pytest
import torch
from skimage.io import imread

from napari_emsr.resample import resize
from napari_emsr.training.degrade import em_like
from napari_emsr.training.pairs import PairError, integer_ratio, prepare_pair


@pytest.fixture(scope="module")
def acquisition(data_dir):
    """LR: an EM-like x3 acquisition (30 nm) of 12 training slices; HR: the original 10 nm images."""
    files = sorted((data_dir / "training_sample1").glob("*.png"))[100:112]
    hr_full = np.stack([imread(f) for f in files]).astype(np.float32)
    lr = em_like(torch.from_numpy(hr_full / 255)[:, None], 3, torch.Generator().manual_seed(0))[:, 0].numpy()
    return (np.clip(lr, 0, 1) * 255).astype(np.uint8), hr_full


def test_integer_ratio():
    assert integer_ratio(50, 15) == (3, pytest.approx(3.333, abs=1e-3))
    assert integer_ratio(30, 10)[0] == 3
    with pytest.raises(PairError, match="outside the x1..x4"):
        integer_ratio(100, 10)


def test_finds_the_hr_field(acquisition):
    lr, hr_full = acquisition
    hr = hr_full[2:10, 60:210, 45:216]  # a small field: LR (z, y, x) = (2, 20, 15), 50 x 57 LR px
    lr_part, hr_part, report = prepare_pair(lr, hr, lr_pixel_nm=30, hr_pixel_nm=10)
    assert report.offset == (2, 20, 15) and report.located
    assert report.score > 0.8 and report.scale == 3
    assert lr_part.shape == (8, 50, 57) and hr_part.shape == (8, 150, 171)
    assert abs(report.gain - 1) < 0.05


def test_non_integer_ratio_is_resized_and_said(acquisition):
    lr, hr_full = acquisition
    hr = resize(hr_full[2:10, 60:210, 45:216], (180, 205))  # as if imaged at 8.33 nm: ratio 3.6 -> x4
    lr_part, hr_part, report = prepare_pair(lr, hr, lr_pixel_nm=30, hr_pixel_nm=10 * 150 / 180)
    assert report.scale == 4  # 3.6 rounds to 4: HR resized to 7.5 nm
    assert any("not an integer" in note and "resized" in note for note in report.notes)
    assert hr_part.shape[1:] == (lr_part.shape[1] * 4, lr_part.shape[2] * 4)
    assert report.offset[1:] == pytest.approx((20, 15), abs=1)


def test_contrast_is_matched(acquisition):
    lr, hr_full = acquisition
    hr = 0.5 * hr_full[2:10, 60:210, 45:216] + 40  # another detector gain and offset
    _, hr_part, report = prepare_pair(lr, hr, lr_pixel_nm=30, hr_pixel_nm=10)
    assert report.gain == pytest.approx(2.0, rel=0.1)
    assert any("intensities mapped" in note for note in report.notes)
    assert abs(hr_part.mean() - lr[2:10, 20:70, 15:72].mean()) < 3


def test_given_offset_and_bad_offset(acquisition):
    lr, hr_full = acquisition
    hr = hr_full[2:10, 60:210, 45:216]
    _, _, report = prepare_pair(lr, hr, scale=3, offset=(2, 20, 15))
    assert not report.located and report.score > 0.8
    with pytest.raises(PairError, match="outside the LR volume"):
        prepare_pair(lr, hr, scale=3, offset=(2, 60, 15))


def test_unrelated_data_is_refused(acquisition, data_dir):
    lr, _ = acquisition
    other = np.stack([imread(f) for f in sorted((data_dir / "validation_sample").glob("*.png"))[:4]])
    with pytest.raises(PairError, match="not found in the LR volume: best match score"):
        prepare_pair(lr, other[:, :150, :150].astype(np.float32), lr_pixel_nm=30, hr_pixel_nm=10)


def test_bad_shapes(acquisition):
    lr, hr_full = acquisition
    with pytest.raises(PairError, match="3D stacks"):
        prepare_pair(lr[0], hr_full[0], scale=3)
    with pytest.raises(PairError, match="larger than the LR field"):
        prepare_pair(lr[:, :30, :30], hr_full[:, :150, :150], scale=3)
    with pytest.raises(PairError, match="give the LR and HR pixel sizes"):
        prepare_pair(lr, hr_full)


# -- the fine-tune job, composed once in the library ------------------------------------------------
from napari_emsr.cli._progress import cli_message  # noqa: E402
from napari_emsr.config import TrainingConfig  # noqa: E402
from napari_emsr.errors import HintedValueError  # noqa: E402
from napari_emsr.training import FineTuneJob, PairSpec, iter_finetune_pair, iter_locate  # noqa: E402

from .conftest import TINY  # noqa: E402


def _field(acquisition):
    lr, hr_full = acquisition
    return lr, hr_full[2:10, 60:210, 45:216]  # the HR field lies at LR (z, y, x) = (2, 20, 15)


def test_pair_spec_validates_on_creation(acquisition):
    lr, hr = _field(acquisition)
    with pytest.raises(ValueError, match=r"lr.tif has shape \(83, 83\): fine-tuning needs a \(z, y, x\) stack"):
        PairSpec(lr[0], hr, lr_name="lr.tif")
    with pytest.raises(ValueError, match="at least 2 slices"):
        PairSpec(lr, hr[:1])
    with pytest.raises(ValueError, match="the LR pixel size must be a positive number of nm, got -30"):
        PairSpec(lr, hr, lr_pixel_size=-30, hr_pixel_size=10)
    with pytest.raises(ValueError, match="the scale must be a whole number from 1 to 4"):
        PairSpec(lr, hr, scale=5)
    with pytest.raises(ValueError, match="the offset must be three whole numbers"):
        PairSpec(lr, hr, scale=3, offset=(1, 2))
    with pytest.raises(PairError, match=r"make a x3 pair, but scale 2 was asked for"):
        PairSpec(lr, hr, lr_pixel_size=30, hr_pixel_size=10, scale=2)
    with pytest.raises(PairError, match="outside the x1..x4"):
        PairSpec(lr, hr, lr_pixel_size=100, hr_pixel_size=10)
    spec = PairSpec(lr, hr, lr_pixel_size=30, hr_pixel_size=10, offset=np.array([2, 20, 15]))
    assert spec.offset == (2, 20, 15) and spec.known_scale == 3


def test_the_scale_comes_from_the_base_model_or_is_refused_with_hints(acquisition, tmp_path):
    from napari_emsr import build_emsr, save_model

    lr, hr = _field(acquisition)
    unknown = PairSpec(lr, hr, lr_pixel_size=30, lr_name="lr.tif", hr_name="hr.tif")
    with pytest.raises(HintedValueError) as info:
        unknown.for_base(None)
    assert str(info.value) == (
        "the pixel size of hr.tif is unknown, so the pair's scale is not known: pass hr_pixel_size=NM, or pass scale=S"
    )
    assert cli_message(info.value).endswith("give --hr-pixel-size NM, or give --scale S")
    base = save_model(build_emsr(scale=2, **TINY), tmp_path / "x2.safetensors")
    assert unknown.for_base(base).scale == 2  # a model file: its header says its scale
    with pytest.raises(ValueError, match=r"the base model is x2, but the pixel sizes \(30 and 10 nm\) make a x3 pair"):
        FineTuneJob(PairSpec(lr, hr, lr_pixel_size=30, hr_pixel_size=10), out=tmp_path / "m.safetensors", base=base)


def test_fine_tune_job_validates_on_creation(acquisition, tmp_path):
    lr, hr = _field(acquisition)
    pair = PairSpec(lr, hr, scale=3)
    job = FineTuneJob(pair, out=str(tmp_path / "m.safetensors"))
    assert job.out == tmp_path / "m.safetensors" and job.config == TrainingConfig() and job.preset == "lite"
    with pytest.raises(ValueError, match="must lie within 0..7"):
        FineTuneJob(pair, out=tmp_path / "m.safetensors", val_slices="20:30")
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        FineTuneJob(pair, out=tmp_path / "m.safetensors", preset="huge")
    with pytest.raises(ValueError, match="no output model file given"):
        FineTuneJob(pair, out="")
    with pytest.raises(TypeError, match="config must be a TrainingConfig"):
        FineTuneJob(pair, out=tmp_path / "m.safetensors", config={"steps": 3})  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        job.resume = True  # type: ignore[misc]  # frozen: what was validated stays so


def test_locate_yields_the_pair_and_the_reference_check(acquisition):
    lr, hr = _field(acquisition)
    events = list(iter_locate(PairSpec(lr, hr, lr_pixel_size=30, hr_pixel_size=10)))
    assert [e.kind for e in events] == ["start", "pair", "noise", "done"]
    assert all(e.job == "locate" for e in events) and events[-1].fraction == 1.0
    report, noise = events[-1].payload
    assert report.offset == (2, 20, 15) and events[1].payload is report and noise is events[2].payload
    assert noise.slices == [0, 2, 5, 7]


@pytest.mark.usefixtures("one_thread")
def test_fine_tune_on_a_pair_end_to_end(acquisition, tmp_path):
    """Checks once, locates, checks the reference, trains with the pair in the provenance, shows previews."""
    from napari_emsr import build_emsr, load_model, save_model

    lr, hr = _field(acquisition)
    torch.manual_seed(0)
    base = save_model(build_emsr(scale=3, **TINY), tmp_path / "base.safetensors", trained=True)
    out = tmp_path / "ft.safetensors"
    config = TrainingConfig(steps=4, val_every=2, patch=16, val_crop=24, val_count=2, device="cpu")
    job = FineTuneJob(PairSpec(lr, hr, lr_pixel_size=30, hr_pixel_size=10), out=out, config=config, base=base,
                      val_slices="last:2", previews=True, provenance={"command": "test"})  # fmt: skip
    events = list(iter_finetune_pair(job))
    kinds = [e.kind for e in events]
    assert kinds[:3] == ["start", "pair", "noise"] and kinds[-1] == "done" and kinds.count("step") == 4
    assert kinds.count("validation") == 2 and kinds.count("preview") == 2 and all(e.job == "finetune" for e in events)
    assert kinds.index("preview") == kinds.index("validation") + 1  # each preview follows its validation
    preview = next(e.payload for e in events if e.kind == "preview")
    assert preview.step == 2 and preview.image.shape == (1, 72, 72) and preview.offset == (2 + 7, 20 + 13, 15 + 16)
    assert events[-1].payload.model == out and events[-1].payload.steps == 4
    prov = load_model(out).metadata.provenance
    assert prov["command"] == "test" and prov["base_model"] == str(base)
    assert prov["pair"]["offset_zyx"] == [2, 20, 15] and prov["pair"]["scale"] == 3 and prov["pair"]["match_score"] > 0.8
    assert load_model(out).metadata.input_pixel_size_nm == 30
    # a second run into the same file is refused before the (slow) search
    gen = iter_finetune_pair(job)
    with pytest.raises(FileExistsError, match="exists"):
        next(gen)


@pytest.mark.usefixtures("one_thread")
def test_the_preview_shows_the_moving_average_when_the_run_keeps_one(acquisition, tmp_path):
    from napari_emsr import build_emsr, load_model, super_resolve
    from napari_emsr.training import checkpoint_path
    from napari_emsr.training.checkpoint import load_averaged_weights
    from napari_emsr.training.finetune_pair import _PreviewCrop

    lr, hr = _field(acquisition)
    torch.manual_seed(0)
    config = TrainingConfig(steps=4, val_every=4, patch=16, val_crop=24, val_count=2, device="cpu", ema=0.9)
    job = FineTuneJob(PairSpec(lr, hr, lr_pixel_size=30, hr_pixel_size=10), out=tmp_path / "ft.safetensors",
                      config=config, base=build_emsr(scale=3, **TINY), val_slices="last:2", previews=True)  # fmt: skip
    shown = [e.payload for e in iter_finetune_pair(job) if e.kind == "preview"]
    assert [p.step for p in shown] == [4]
    lr_part, _, report = job.pair.prepare()
    crop = _PreviewCrop(job, lr_part, report).crop
    raw = load_model(checkpoint_path(job.out))
    average = load_model(checkpoint_path(job.out))
    average.load_state_dict(load_averaged_weights(checkpoint_path(job.out)))
    same = dict(device="cpu", overlap=0, tile=max(crop.shape), pixel_size=30)
    np.testing.assert_array_equal(shown[0].image[0], super_resolve(crop, average, **same))
    assert not np.array_equal(shown[0].image[0], super_resolve(crop, raw, **same))


def test_fine_tune_names_non_finite_data_before_training(acquisition, tmp_path):
    from napari_emsr.training.data import NonFiniteDataError

    lr, hr = _field(acquisition)
    broken = hr.copy()
    broken[3, 4, 5] = np.nan
    job = FineTuneJob(PairSpec(lr, broken, scale=3, hr_name="hr.tif"), out=tmp_path / "m.safetensors")
    events = []
    with pytest.raises(NonFiniteDataError, match=r"hr.tif: slice 3 has 1 NaN or infinite value"):
        for event in iter_finetune_pair(job):
            events.append(event)
    assert [e.kind for e in events] == ["start"] and not list(tmp_path.iterdir())
