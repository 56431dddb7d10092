"""The Fine-tune dock widget on the sample pair, in a real viewer under the virtual display.

A tiny random-weight x3 network (tests/_predict_models.py) is the base model and trains for a few
steps on 16 x 16 LR patches: these tests check the mechanics (location, the field the user moved,
plots, files, preview, cancel and resume, messages), never the quality of what is learnt.
"""

import numpy as np
import pytest

from napari_emsr.model_io import read_model_header
from napari_emsr.training import checkpoint_path

from .._predict_models import sensitive_model
from ..test_zoo import make_zoo, use_zoo
from .conftest import dock, run_and_wait

LR, HR = "EM LR 30 nm", "EM HR 10 nm"
# the sample's HR crop starts at original pixel 138 = LR pixel 46, on every axis but z
SAMPLE_OFFSET = (0, 46, 46)


def _panel(viewer, qtbot, model_file, out, *, steps=12, val_every=6):
    widget = dock(viewer, qtbot, "Fine-tune")
    widget.lr_combo.set_layer(LR)
    widget.hr_combo.set_layer(HR)
    widget.engine.set_model_file(model_file)
    widget.engine.device.value = "cpu"
    widget.form.steps.value = steps
    widget.form.val_every.value = val_every
    widget.form.patch.value = 16
    widget.form.out_path.line_edit.value = str(out)
    return widget


def _locate(qtbot, widget):
    with qtbot.waitSignal(widget.located, timeout=60_000) as blocker:
        widget.locate()
    return blocker.args[0]


def _provenance(path):
    return read_model_header(path)[1]["provenance"]


def test_defaults_are_those_of_emsr_finetune(make_napari_viewer, qtbot):
    from napari_emsr.cli import build_parser
    from napari_emsr.cli._training import training_config

    widget = dock(make_napari_viewer(show=True), qtbot, "Fine-tune")
    args = build_parser().parse_args(["finetune", "--lr", "lr.tif", "--hr", "hr.tif", "--out", "m.safetensors"])
    assert widget.form.config(widget.engine.device.value, widget.engine.precision.value) == training_config(args)
    assert training_config(args).precision == widget.engine.precision.value == "auto"  # bf16 only where it pays
    # the arithmetic of training is a choice in the panel: auto, fp32, bf16 (no fp16)
    assert widget.engine.isAncestorOf(widget.engine.precision.native) and "fp16" not in widget.engine.precision.choices
    assert widget.form.learning_rate.native.text() == "0.0001"
    widget.form.learning_rate.native.stepBy(1)  # the arrows double / halve a learning rate
    assert widget.form.learning_rate.value == pytest.approx(2e-4)
    # the schedule and the moving average are the panel's as --schedule and --ema are the CLI's
    widget.form.schedule.native.setCurrentIndex(widget.form.schedule.native.findText("cosine"))
    widget.form.ema.native.setValue(0.995)
    # and so is the choice of the model kept: SSIM + mean FRC by default, SSIM alone as --keep-by ssim
    assert widget.form.keep_by.value == training_config(args).keep_by == "ssim+frc"
    widget.form.keep_by.native.setCurrentIndex(widget.form.keep_by.native.findText("SSIM"))
    args = build_parser().parse_args(["finetune", "--lr", "lr.tif", "--hr", "hr.tif", "--out", "m.safetensors",
                                      "--learning-rate", "2e-4", "--schedule", "cosine", "--ema", "0.995",
                                      "--keep-by", "ssim"])  # fmt: skip
    assert widget.form.config(widget.engine.device.value, widget.engine.precision.value) == training_config(args)


def test_the_training_form_enables_what_the_strategy_uses_and_browse_confirms(qtbot, tmp_path):
    from qtpy.QtCore import Qt

    from napari_emsr._napari.finetune.form import STRATEGY_ITEMS, TrainingForm

    form = TrainingForm()
    qtbot.addWidget(form)
    assert form.strategy.native.itemData(1, Qt.ItemDataRole.ToolTipRole) == STRATEGY_ITEMS["real+fitted"]
    assert (form.minutes.native.text(), form.consistency.native.text()) == ("no time limit", "off")
    assert form.ema.native.text() == "no averaging" and form.schedule.native.currentText() == "step (paper)"
    assert not form.fitted_share.enabled and not form.consistency.enabled  # "real" uses neither
    form.strategy.native.setCurrentIndex(2)  # as a user picks "fitted"
    assert form.strategy.value == "fitted" and form.consistency.enabled and not form.fitted_share.enabled
    form.strategy.value = "real+fitted"
    assert form.consistency.enabled and form.fitted_share.enabled
    with pytest.raises(ValueError, match="choose where to save the model"):
        form.output()
    # Browse: the save dialog's choice gets the suffix; an existing file ticks Replace (the dialog asked)
    old = tmp_path / "old.safetensors"
    old.write_bytes(b"a model already")
    answers = iter([str(tmp_path / "old"), None])
    form.out_path._show_file_dialog = lambda *args, **kwargs: next(answers)  # the user picks "old", then cancels
    form.out_path.choose_btn.native.click()
    assert form.out_path.line_edit.value == str(old) and form.output() == old and form.replace.value
    form.replace.value = False
    form.out_path.choose_btn.native.click()  # cancelled: nothing changes
    assert form.output() == old and not form.replace.value


@pytest.mark.slow  # locates the HR field, then trains
def test_locate_train_and_offer(sample, qtbot, model_file, tmp_path):
    viewer = sample
    super_resolve = dock(viewer, qtbot, "Super-resolve")
    out = tmp_path / "mine.safetensors"
    widget = dock(viewer, qtbot, "Fine-tune")
    assert (widget.lr_combo.layer().name, widget.hr_combo.layer().name) == (LR, HR)  # guessed from pixel sizes
    widget = _panel(viewer, qtbot, model_file, out)
    report = _locate(qtbot, widget)
    assert report.offset == SAMPLE_OFFSET and report.score > 0.5
    assert f"Found the HR field at LR (z, y, x) = {SAMPLE_OFFSET}" in widget.pair_status.text()
    assert widget.field_offset() == SAMPLE_OFFSET
    # the rectangle covers the HR layer's field in world coordinates: its pixel edges, 1365 .. 3765 nm
    field = viewer.layers["HR field (fine-tune)"]
    corners = np.array([field.data_to_world(c) for c in field.data[0]])
    np.testing.assert_allclose(corners.min(axis=0), [1365, 1365])
    np.testing.assert_allclose(corners.max(axis=0), [3765, 3765])
    assert field.features["label"][0] == f"HR field, score {report.score:.2f}"
    assert "Usable as a training reference" in widget.noise_status.text()

    assert run_and_wait(qtbot, widget.run_panel, widget.train, timeout=180_000) == "done"
    assert out.is_file() and checkpoint_path(out).is_file()
    provenance = _provenance(out)
    assert provenance["pair"]["offset_zyx"] == list(SAMPLE_OFFSET) and provenance["steps"] == 12
    plots = widget.plots
    assert plots.draws >= 2 and len(plots.loss_lines["total"].get_xdata()) == 12  # live, and complete at the end
    for key in ("ref", "noisier_ref", "consistency"):
        assert np.all(np.isfinite(plots.loss_lines[key].get_ydata()))
    for lines in plots.score_lines.values():
        assert list(lines["model"].get_xdata()) == [6, 12] and len(lines["bicubic"].get_ydata()) == 2
    # the preview: the network on the middle held-out slice (15), over the HR pixels it predicts
    preview = widget.preview_layer
    assert preview.data.shape == (1, 240, 240) and preview.metadata["napari_emsr"]["preview_step"] == 12
    hr = viewer.layers[HR]
    np.testing.assert_allclose(preview.data_to_world((0, 0, 0)), hr.data_to_world((15, 0, 0)))
    np.testing.assert_allclose(preview.data_to_world((0, 239, 7)), hr.data_to_world((15, 239, 7)))
    # offered in the Super-resolve panel
    assert super_resolve.engine.model_path() == out
    assert "now the model of the Super-resolve panel" in widget.run_panel.status.text()
    assert widget.super_resolve_with_it() is super_resolve


def test_moved_field_cancel_and_resume(sample, qtbot, model_file, tmp_path):
    viewer = sample
    out = tmp_path / "moved.safetensors"
    widget = _panel(viewer, qtbot, model_file, out, steps=400, val_every=4)
    _locate(qtbot, widget)
    field = viewer.layers["HR field (fine-tune)"]
    field.data = [np.asarray(field.data[0]) + [2.0, -3.0]]  # the user drags it 2 LR rows down, 3 columns left
    assert widget.field_offset() == (0, 48, 43) and "(0, 48, 43)" in widget.offset_status.text()

    def cancel_at_step_6(event):
        if event.kind == "step" and event.done == 6:
            widget.run_panel.cancel()

    widget.run_panel.progressed.connect(cancel_at_step_6)
    assert run_and_wait(qtbot, widget.run_panel, widget.train, timeout=180_000) == "cancelled"
    widget.run_panel.progressed.disconnect(cancel_at_step_6)
    reached = _provenance(checkpoint_path(out))["steps"]
    best = _provenance(out)["best_validation"]
    assert 6 <= reached < 400 and 4 <= best["step"] <= reached
    status = widget.run_panel.status.text()
    assert f"Cancelled at step {reached}: the best model so far (step {best['step']}" in status and str(out) in status
    assert _provenance(out)["pair"]["offset_zyx"] == [0, 48, 43]  # trained where the rectangle was moved to
    assert "The rectangle puts the HR field at LR (z, y, x) = (0, 48, 43)" in widget.pair_status.text()
    assert widget.plots.steps == list(range(1, reached + 1))
    assert widget.resume_button.isEnabled()

    # Resume continues the saved run on the field it used, even after the rectangle moved again
    field.data = [np.asarray(field.data[0]) + [5.0, 5.0]]
    widget.form.steps.value = reached + 4
    assert run_and_wait(qtbot, widget.run_panel, widget.resume, timeout=180_000) == "done"
    assert _provenance(checkpoint_path(out))["steps"] == reached + 4
    assert _provenance(out)["pair"]["offset_zyx"] == [0, 48, 43] and widget.field_offset() == (0, 48, 43)
    assert widget.plots.steps == list(range(1, reached + 5))  # the curves continue


def test_bad_input_gives_notifications(make_napari_viewer, qtbot, model_file, tmp_path, notes):
    viewer = make_napari_viewer(show=True)
    widget = dock(viewer, qtbot, "Fine-tune")
    widget.train()
    assert "choose an LR and an HR image layer" in notes()[-1]
    assert _locate(qtbot, widget) is None and "choose an LR and an HR image layer" in notes()[-1]
    viewer.open_sample("napari-emsr", "em_pair")
    widget = _panel(viewer, qtbot, model_file, "")
    widget.hr_combo.set_layer(LR)
    widget.train()
    assert "different layers" in notes()[-1]
    widget.hr_combo.set_layer(HR)
    widget.train()
    assert "choose where to save the model" in notes()[-1]
    old = tmp_path / "old.safetensors"
    old.write_bytes(b"a model already")
    widget.form.out_path.line_edit.value = str(old)
    widget.train()
    assert "exists: tick 'Replace an existing model file'" in notes()[-1]
    widget.resume()
    assert "nothing to resume" in notes()[-1]
    widget.form.out_path.line_edit.value = str(tmp_path / "new.safetensors")
    widget.form.val_slices.value = "20:30"
    widget.train()
    assert "must lie within 0..15" in notes()[-1]
    widget.form.val_slices.value = ""

    # no pixel size and a new network: the scale cannot be known
    viewer.add_image(np.zeros((4, 64, 64), np.uint8), name="no size")
    widget.lr_combo.set_layer("no size")
    widget.engine.source.native.setCurrentText("New lite network (random weights)")
    widget.train()
    assert "pixel size of layer 'no size' is unknown" in notes()[-1]
    # pixel sizes that make a x2 pair, with a x3 base model
    viewer.add_image(viewer.layers[LR].data, name="LR 20 nm", scale=(10, 20, 20), units=("nm",) * 3)
    widget.lr_combo.set_layer("LR 20 nm")
    widget.engine.set_model_file(model_file)
    widget.train()
    assert "the base model is x3, but" in notes()[-1] and "x2 pair" in notes()[-1]
    # an HR field that is not in the LR volume
    noise = np.random.default_rng(0).integers(0, 255, (8, 96, 96), dtype=np.uint8)
    viewer.add_image(noise, name="elsewhere", scale=(10, 10, 10), units=("nm",) * 3)
    widget.lr_combo.set_layer(LR)
    widget.hr_combo.set_layer("elsewhere")
    assert _locate(qtbot, widget) is None and "was not found in the LR volume" in notes()[-1]
    # ... then the rectangle is drawn where the layers place the HR field (its 96 px are 32 LR px), to be moved
    assert "move it onto the field, then Train" in notes()[-1]
    assert widget.field_offset() == (0, 0, 0)
    assert viewer.layers["HR field (fine-tune)"].metadata["napari_emsr"]["size_yx"] == [32, 32]
    assert not widget.run_panel.running and not (tmp_path / "new.safetensors").exists()


def test_the_base_model_can_be_any_zoo_model(sample, qtbot, tmp_path, monkeypatch, notes):
    """Every zoo model is offered as the base by name; the chosen one's file is trained from and recorded."""
    weights = use_zoo(monkeypatch, make_zoo(tmp_path / "weights", {
        "tiny-x2": (sensitive_model(2), dict(trained=True, input_pixel_size_nm=20)),
        "tiny-x3": (sensitive_model(3), dict(trained=True, input_pixel_size_nm=30)),
    }, defaults={3: "tiny-x3"}))  # fmt: skip
    viewer = sample
    out = tmp_path / "from-zoo.safetensors"
    widget = dock(viewer, qtbot, "Fine-tune")
    combo = widget.engine.source.native
    assert [combo.itemText(i) for i in range(combo.count())] == [
        "tiny-x2 (x2, 20 nm)", "tiny-x3 (x3, 30 nm, default)", "Model file...",
        "New lite network (random weights)", "New paper network (random weights)"]  # fmt: skip
    assert combo.currentText() == "tiny-x3 (x3, 30 nm, default)"  # the default model first
    widget.engine.device.value = "cpu"
    widget.form.steps.value = 2
    widget.form.val_every.value = 2
    widget.form.patch.value = 16
    widget.form.out_path.line_edit.value = str(out)
    combo.setCurrentText("tiny-x2 (x2, 20 nm)")  # the sample is a x3 pair
    widget.train()
    assert "the base model is x2, but" in notes()[-1] and "choose a x3 model (shipped: tiny-x3)" in notes()[-1]
    widget.engine.set_zoo_model("tiny-x3")
    assert run_and_wait(qtbot, widget.run_panel, widget.train, timeout=180_000) == "done"
    provenance = _provenance(out)
    assert provenance["base_model"] == str(weights / "tiny-x3.safetensors")
    assert provenance["base_zoo_model"] == "tiny-x3" and provenance["steps"] == 2
    assert read_model_header(out)[1]["config"]["scale"] == 3


def test_training_keeps_the_viewer_responsive(sample, qtbot, model_file, tmp_path):
    """The Qt event loop's lateness (a timer every 10 ms) while the panel trains: generous bounds."""
    from napari_emsr._napari.common.latency import EventLoopLatency

    widget = _panel(sample, qtbot, model_file, tmp_path / "latency.safetensors", steps=40, val_every=10)
    probe = EventLoopLatency(10)
    probe.start()
    assert run_and_wait(qtbot, widget.run_panel, widget.train, timeout=180_000) == "done"
    probe.stop()
    figures = probe.summary()
    print(f"event-loop lateness while training: {figures}")
    assert figures["ticks"] > 100
    assert figures["median_ms"] < 25 and figures["p95_ms"] < 250, figures


def test_the_panel_and_emsr_finetune_run_the_same_library_job(sample, qtbot, model_file, tmp_path, monkeypatch):
    """The panel and ``emsr finetune`` build the same FineTuneJob for the same inputs and run it through
    the one library generator; only the provenance's names of the data and of the command differ."""
    import dataclasses

    from napari_emsr.cli import main
    from napari_emsr.events import Event
    from napari_emsr.samples import em_pair_file
    from napari_emsr.training import finetune_pair

    jobs = []

    def recorded(job):
        jobs.append(job)
        yield Event("finetune", "start", total=job.config.steps, unit="step", payload=job)

    monkeypatch.setattr(finetune_pair, "iter_finetune_pair", recorded)
    out = tmp_path / "same.safetensors"
    widget = _panel(sample, qtbot, model_file, out)
    widget.form.val_slices.value = "last:2"
    assert run_and_wait(qtbot, widget.run_panel, widget.train, timeout=60_000) in ("done", "cancelled")
    with em_pair_file("lr") as lr, em_pair_file("hr") as hr:
        argv = ["finetune", "--lr", str(lr), "--hr", str(hr), "--base", str(model_file), "--out", str(out),
                "--steps", "12", "--val-every", "6", "--patch", "16", "--device", "cpu", "--val-slices", "last:2"]
        assert main(argv) == 0
    panel, cli = jobs
    assert panel.config == cli.config and panel.base == cli.base == model_file
    for name in ("out", "preset", "val_slices", "resume", "overwrite"):
        assert getattr(panel, name) == getattr(cli, name), name
    facts = ("lr_pixel_size", "hr_pixel_size", "scale", "min_score", "match_contrast")
    assert [getattr(panel.pair, k) for k in facts] == [getattr(cli.pair, k) for k in facts] == [30, 10, None, 0.5, True]
    np.testing.assert_array_equal(np.asarray(panel.pair.hr), np.asarray(cli.pair.hr))
    np.testing.assert_array_equal(np.asarray(panel.pair.lr), np.asarray(cli.pair.lr))
    assert set(panel.provenance) == set(cli.provenance) == {"data", "command"}
    assert panel.previews and not cli.previews  # the panel shows previews; the CLI has nowhere to
    assert dataclasses.replace(panel, pair=cli.pair, provenance=cli.provenance, previews=False,
                               check_noise=False) == cli  # fmt: skip


@pytest.mark.slow  # fits the degradation of the sample pair
def test_fit_degradation_shows_parameters_crops_and_noise_curves(sample, qtbot, tmp_path):
    from napari_emsr._napari.finetune.widget import FIT_REAL_LAYER, FIT_SIMULATED_LAYER

    viewer = sample
    widget = dock(viewer, qtbot, "Fine-tune")
    widget.lr_combo.set_layer(LR)
    widget.hr_combo.set_layer(HR)
    assert run_and_wait(qtbot, widget.fit_panel, widget.fit_button.click) == "done"
    fit = widget.fitted
    # the sample's LR is em_like (napari_emsr.training.degrade, seed 0): a 1.2 HR px = 0.4 LR px beam,
    # area averaging, Poisson at 60 electrons; the fit sees only the pair
    assert 0.2 < fit.probe_sigma_major.value < 0.7 and 30 < fit.dose.value < 120 and not fit.inverted
    text = widget.fit_status.text()
    assert "probe blur" in text and "electrons" in text and "simulated vs real LR" in text
    real, simulated = viewer.layers[FIT_REAL_LAYER], viewer.layers[FIT_SIMULATED_LAYER]
    assert real.data.shape == simulated.data.shape and real.data.shape[0] == 1
    # side by side, in the LR layer's world coordinates, at the HR field
    assert simulated.translate[-1] > real.translate[-1] and simulated.translate[-2] == real.translate[-2]
    assert tuple(real.scale) == tuple(viewer.layers[LR].scale)
    # the simulated crop has the real one's brightness and noise level (within the fit's goodness)
    assert abs(float(simulated.data.mean()) - float(real.data.mean())) < 0.05 * 255
    assert set(widget.fit_plot.lines) == {"real", "simulated"} and widget.fit_plot.isVisible()
    # the strategies that use it can be chosen, with the mix
    widget.form.strategy.value = "real+fitted"
    widget.form.fitted_share.value = 0.3
    widget.form.consistency.value = 0.5
    config = widget.form.config("cpu")
    assert (config.strategy, config.fitted_share, config.lambda_consistency) == ("real+fitted", 0.3, 0.5)
    widget.form.strategy.value = "real"
    assert not widget.form.consistency.enabled and widget.form.config("cpu").lambda_consistency == 0.0


@pytest.mark.slow  # registers the sample pair finely
def test_register_finely_measures_the_sample_pairs_geometry(sample, qtbot):
    viewer = sample
    widget = dock(viewer, qtbot, "Fine-tune")
    widget.lr_combo.set_layer(LR)
    widget.hr_combo.set_layer(HR)
    widget.register_box.setChecked(True)
    report = _locate(qtbot, widget)
    reg = report.registration
    # the sample's HR crop starts at original pixel 138 = LR position 46.0, unrotated, at exactly 3x
    assert reg.offset == pytest.approx((46.0, 46.0), abs=0.2)
    assert abs(reg.rotation_deg) < 0.2 and reg.ratio == pytest.approx(3.0, rel=0.005)
    assert "rotated" in widget.pair_status.text() and "pixel-size ratio" in widget.pair_status.text()


def test_pair_follows_pixel_sizes_and_the_layer_list(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = dock(viewer, qtbot, "Fine-tune")
    viewer.open_sample("napari-emsr", "em_pair")  # the HR comes last and is made active
    lr, hr = viewer.layers[LR], viewer.layers[HR]
    assert (widget.lr_combo.layer(), widget.hr_combo.layer()) == (lr, hr)
    mid = viewer.add_image(hr.data[:, ::2, ::2], name="20 nm", scale=(10, 20, 20), units=hr.units)
    assert (widget.lr_combo.layer(), widget.hr_combo.layer()) == (lr, hr)  # an added layer is not a selection
    qtbot.wait(10)
    viewer.layers.selection.active = lr  # mid was made active when added: select another first
    viewer.layers.selection.active = mid  # coarser than the HR: the LR
    assert (widget.lr_combo.layer(), widget.hr_combo.layer()) == (mid, hr)
    finer = viewer.add_image(hr.data, name="5 nm", scale=(10, 5, 5), units=hr.units)
    assert (widget.lr_combo.layer(), widget.hr_combo.layer()) == (mid, finer)  # the finest is preferred as HR
    qtbot.wait(10)
    viewer.layers.selection.active = hr  # finer than the LR, not finer than the HR: the LR (coarser than HR)
    assert (widget.lr_combo.layer(), widget.hr_combo.layer()) == (hr, finer)
    viewer.layers.selection.active = lr
    assert (widget.lr_combo.layer(), widget.hr_combo.layer()) == (lr, finer)
    widget.lr_combo.set_layer(lr)  # a pick in the panel stays
    viewer.layers.selection.active = mid
    assert widget.lr_combo.layer() is lr
