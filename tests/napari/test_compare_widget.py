"""The Compare dock widget on the sample pair: the numbers of ``emsr evaluate``, curves, table, exports."""

import csv
import json

import numpy as np
import pytest
import tifffile

from napari_emsr._napari.common.layers import overlay_transform
from napari_emsr.cli import main
from napari_emsr.metrics import even_odd_halves, reference_free_resolution
from napari_emsr.resample import bicubic_upsample

from .conftest import dock, run_and_wait

LR, HR, SR = "EM LR 30 nm", "EM HR 10 nm", "SR"
FIELD = slice(138, 378)  # the HR field in x3 pixels of the LR (HR starts at original pixel 138)


def _add_prediction(viewer):
    """A stand-in for a Super-resolve result of the whole LR stack: bicubic x3, pulled halfway to a smoothed
    HR inside the HR field, placed (scale, translate) as Super-resolve places its results."""
    from scipy.ndimage import gaussian_filter

    lr, hr = viewer.layers[LR], viewer.layers[HR]
    up = bicubic_upsample(np.asarray(lr.data), 3)
    up[:, FIELD, FIELD] = (up[:, FIELD, FIELD] + gaussian_filter(hr.data.astype(float), (0, 1.5, 1.5))) / 2
    data = np.clip(np.rint(up), 0, 255).astype(np.uint8)
    return viewer.add_image(data, name=SR, **overlay_transform(lr, 3, (0, 0, 0)))


def _panel(viewer, qtbot, reference=HR, layers=(SR,), lr=LR):
    widget = dock(viewer, qtbot, "Compare")
    widget.reference.set_layer(reference or widget.reference.none_text)
    widget.methods.set_layers([viewer.layers[name] for name in layers])
    widget.lr.set_layer(lr or widget.lr.none_text)
    return widget


def _record(widget, method, scope):
    return next(r for r in widget.records if r["method"] == method and r["scope"].startswith(scope))


def _spy_pooling(monkeypatch):
    """Record every stack the one pooling function pools: (label, slices, PSNR mean)."""
    import napari_emsr.metrics.stack as stack

    pooled, pool = [], stack.pool_stack

    def spy(parts, **options):
        result = pool(parts, **options)
        pooled.append((result.label, len(result.psnr), float(np.mean(result.psnr))))
        return result

    monkeypatch.setattr(stack, "pool_stack", spy)
    return pooled


def test_agrees_with_emsr_evaluate(sample, qtbot, tmp_path, monkeypatch):
    viewer = sample
    prediction = _add_prediction(viewer)
    viewer.dims.set_point(0, 50.0)  # slice 5 on screen
    widget = _panel(viewer, qtbot)
    pooled = _spy_pooling(monkeypatch)
    events = []
    widget.run_panel.progressed.connect(events.append)
    assert f"z-consistency against the LR '{LR}' (whole stacks): '{SR}', bicubic x3." in widget.mode.text()
    assert run_and_wait(qtbot, widget.run_panel, widget.run, timeout=120_000) == "done"
    assert "16 slice(s) of 240 x 240 px" in widget.run_panel.status.text()
    # the scores, then z-consistency: the scoring job's "done" is "scored", the run's end the z-consistency's
    scored = next(i for i, e in enumerate(events) if e.kind == "scored")
    assert events[-1].kind == "done" and set(events[-1].payload) == {SR, f"bicubic x3 ({LR})"}
    assert [e.done for e in events[scored + 1 :] if e.kind == "slice"] == list(range(1, 17))
    events = events[: scored + 1]
    # the library's job, as events: the slice on screen first, then the stack, pooled by the one function
    assert events[0].kind == "start" and events[-1].payload.scope == "stack"
    assert events[1].kind == "slice" and events[1].done == 1
    assert widget._job.field.z[events[1].payload.z] == 5  # an index into the field: the layer's slice on screen
    assert _record(widget, SR, "slice")["scope"] == "slice 5"
    assert [e.done for e in events if e.kind == "slice"] == list(range(1, 17))
    panel_pooled, pooled[:] = list(pooled), []
    assert [label for label, _, _ in panel_pooled] == [SR, f"bicubic x3 ({LR})"]

    # the same pixels as files, scored by the command line
    files = {"reference": viewer.layers[HR].data, "prediction": prediction.data[:, FIELD, FIELD],
             "lr": viewer.layers[LR].data[:, 46:126, 46:126]}  # fmt: skip
    for name, data in files.items():
        tifffile.imwrite(tmp_path / f"{name}.tif", np.asarray(data), photometric="minisblack")
    out = tmp_path / "scores.json"
    argv = ["evaluate", *(str(tmp_path / f"{n}.tif") for n in ("reference", "prediction")), "--lr",
            str(tmp_path / "lr.tif"), "--pixel-size", "10", "--json", str(out)]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(out.read_text())
    # the command line pools with the same function: the same slices, the same numbers
    assert [n for _, n, _ in pooled] == [n for _, n, _ in panel_pooled] == [16, 16]
    assert [p for _, _, p in pooled] == pytest.approx([p for _, _, p in panel_pooled], rel=1e-12)
    assert [label for label, _, _ in pooled] == ["prediction", "bicubic x3"]
    assert report["frc_resolution_nm"] is not None and report["bicubic"]["frc_resolution_nm"] is not None
    for method, expected in ((SR, report), (f"bicubic x3 ({LR})", report["bicubic"])):
        stack, current = _record(widget, method, "stack"), _record(widget, method, "slice")
        for key in ("psnr", "psnr_std", "ssim", "ssim_std", "frc_mean", "frc_mean_std", "resolution_nm"):
            expected_key = "frc_resolution_nm" if key == "resolution_nm" else key
            assert _same(stack[key], expected[expected_key]), key
        assert current["scope"] == "slice 5"
        for key in ("psnr", "ssim", "frc_mean"):
            assert _same(current[key], expected["per_slice"][5][key]), key
        assert _same(current["resolution_nm"], expected["per_slice"][5]["frc_resolution_nm"])
    assert _record(widget, SR, "stack")["ssim"] > _record(widget, f"bicubic x3 ({LR})", "stack")["ssim"]

    # curves and thresholds on screen, the table filled, both exported
    lines = widget.plot.lines
    assert {SR, f"bicubic x3 ({LR})", "1/7", "half-bit"} <= set(lines)
    assert len(lines[SR].get_xdata()) == 120 and np.isclose(lines[SR].get_xdata()[-1], 0.05)  # 1/nm, Nyquist
    assert widget.table.rowCount() == 4
    assert widget.table.item(0, 0).text() in (SR, f"bicubic x3 ({LR})")
    png = widget.save_plot(tmp_path / "frc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(widget.save_table(tmp_path / "scores.csv").open()))
    sr_stack = next(r for r in rows if r["method"] == SR and r["scope"].startswith("stack"))
    assert float(sr_stack["psnr"]) == pytest.approx(report["psnr"], rel=1e-12)
    assert float(sr_stack["resolution_nm"]) == pytest.approx(report["frc_resolution_nm"], rel=1e-12)


def _same(value, expected):
    return value is None and expected is None or value == pytest.approx(expected, rel=1e-12)


def test_reference_free(sample, qtbot):
    viewer = sample
    hr = viewer.layers[HR]
    widget = _panel(viewer, qtbot, reference=None, layers=(LR,), lr=None)
    assert "even and odd slices" in widget.mode.text()
    assert run_and_wait(qtbot, widget.run_panel, widget.run, timeout=120_000) == "done"
    expected = reference_free_resolution(*even_odd_halves(viewer.layers[LR].data), compared="even/odd", pixel_size=30)
    stack = _record(widget, f"even vs odd slices of {LR}", "stack")
    assert expected.resolution.reached and _same(stack["resolution_nm"], expected.resolution.resolution_nm)
    assert _same(stack["frc_mean"], expected.frc_mean)
    assert stack["threshold"] == "half-bit" and stack["slices"] == 16

    # two layers as independent halves: a second "acquisition" with its own noise, on the same grid
    noisy = np.clip(hr.data + np.random.default_rng(0).normal(0, 8, hr.data.shape), 0, 255).astype(np.uint8)
    viewer.add_image(noisy, name="HR again", scale=hr.scale, translate=hr.translate, units=hr.units)
    widget.methods.set_layers([hr, viewer.layers["HR again"]])
    assert "independent halves" in widget.mode.text()
    assert run_and_wait(qtbot, widget.run_panel, widget.run, timeout=120_000) == "done"
    expected = reference_free_resolution(hr.data, noisy, compared="two", pixel_size=10)
    stack = _record(widget, f"{HR} vs HR again (independent acquisitions)", "stack")
    assert _same(stack["resolution_nm"], expected.resolution.resolution_nm)
    assert _same(stack["frc_mean"], expected.frc_mean)
    assert len(widget.plot.lines) == 3  # one curve and the two thresholds


def test_bad_input_gives_notifications(make_napari_viewer, qtbot, notes):
    viewer = make_napari_viewer(show=True)
    widget = dock(viewer, qtbot, "Compare")
    widget.run()  # nothing at all
    assert "tick one layer" in notes()[-1]
    viewer.open_sample("napari-emsr", "em_pair")
    hr = viewer.layers[HR]
    # an LR / HR pair: the HR is the reference, the LR the bicubic baseline, by pixel size
    assert (widget.reference.layer(), widget.lr.layer()) == (hr, viewer.layers[LR])
    widget.lr.set_layer(None)
    widget.run()
    assert "tick the layers to score" in notes()[-1]
    widget.methods.set_layers([viewer.layers[LR]])  # 30 nm against 10 nm
    widget.run()
    assert "pixel size of 30, the reference 10" in notes()[-1]
    viewer.add_image(hr.data, name="shifted", scale=hr.scale, translate=np.add(hr.translate, (0, 3, 0)), units=hr.units)
    widget.methods.set_layers([viewer.layers["shifted"]])
    widget.run()
    assert "not on the reference's pixel grid" in notes()[-1]
    viewer.add_image(hr.data[3], name="one slice", scale=hr.scale[1:], translate=hr.translate[1:], units=hr.units[1:])
    widget.methods.set_layers([viewer.layers["one slice"]])
    widget.run()
    assert "compare a stack with a stack" in notes()[-1]
    widget.methods.set_layers([hr])
    widget.run()
    assert "is the reference" in notes()[-1]
    assert not widget.run_panel.running and widget.records == []

    # a layer that lacks a border of the reference: compared on the common field
    viewer.add_image(hr.data[:, :-4, :-6], name="cropped", scale=hr.scale, translate=hr.translate, units=hr.units)
    widget.methods.set_layers([viewer.layers["cropped"]])
    widget.whole_stack.setChecked(False)
    assert run_and_wait(qtbot, widget.run_panel, widget.run) == "done"
    assert "of 236 x 234 px" in widget.run_panel.status.text()
    assert _record(widget, "cropped", "slice")["psnr"] == np.inf


# -- z-consistency against the LR stack -------------------------------------------------------------
Z, NM = 12, ("nm", "nm", "nm")


def _z_stacks(seed=0):
    """HR: smooth structure drifting slowly in z (12 x 96 x 96); LR: its 2 x 2 block means with a little noise;
    a consistent result (the HR) and a flickering one (the HR plus independent noise in every slice)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    hr = (100 + 400 * gaussian_filter(rng.normal(size=(4 * Z, 96, 96)), (4, 3, 3))[::4]).astype(np.float32)
    lr = hr.reshape(Z, 48, 2, 48, 2).mean(axis=(2, 4)) + rng.normal(0, 1, (Z, 48, 48))
    return hr, lr.astype(np.float32), (hr + rng.normal(0, 15, hr.shape)).astype(np.float32)


def _z_viewer(make_napari_viewer, with_hr=True):
    """Layers LR (20 nm), two x2 results placed as Super-resolve places them, and (optionally) HR on their grid."""
    hr, lr, flickering = _z_stacks()
    viewer = make_napari_viewer(show=True)
    low = viewer.add_image(lr, name="LR", scale=(10, 20, 20), units=NM)
    viewer.add_image(hr.copy(), name="SR", **overlay_transform(low, 2, (0, 0, 0)))
    viewer.add_image(flickering, name="SR flicker", **overlay_transform(low, 2, (0, 0, 0)))
    if with_hr:
        viewer.add_image(hr, name="HR", scale=(10, 10, 10), translate=(0, -5, -5), units=NM)
    return viewer


def _z_record(widget, method):
    return next(r for r in widget.z_records if r["method"] == method)


def test_z_consistency_of_each_result_and_of_bicubic(make_napari_viewer, qtbot, tmp_path):
    from napari_emsr.metrics import z_consistency

    viewer = _z_viewer(make_napari_viewer)
    widget = _panel(viewer, qtbot, reference="HR", layers=("SR", "SR flicker"), lr="LR")
    assert "z-consistency against the LR 'LR' (whole stacks): 'SR', 'SR flicker', bicubic x2." in widget.mode.text()
    assert run_and_wait(qtbot, widget.run_panel, widget.run, timeout=120_000) == "done"
    assert "z-consistency of 3 stacks against the LR 'LR'" in widget.run_panel.status.text()
    lr = viewer.layers["LR"].data
    bicubic = np.stack([bicubic_upsample(p, 2) for p in lr])  # the panel up-samples slice by slice
    expected = {"SR": z_consistency(viewer.layers["SR"].data, lr),
                "SR flicker": z_consistency(viewer.layers["SR flicker"].data, lr),
                "bicubic x2 (LR)": z_consistency(bicubic, lr)}  # fmt: skip
    assert [r["method"] for r in widget.z_records] == list(expected)
    for method, result in expected.items():
        record = _z_record(widget, method)
        for key in ("flicker_index", "flicker_output", "flicker_input", "frc_xz", "frc_yz", "slices"):
            assert record[key] == pytest.approx(getattr(result, key), rel=1e-12), (method, key)
        assert record["z_scale"] == 2 and record["slices"] == Z
    consistent, flicker = _z_record(widget, "SR"), _z_record(widget, "SR flicker")
    assert 0.9 < consistent["flicker_index"] < 1.1  # the HR itself: about as the LR
    assert flicker["flicker_index"] > consistent["flicker_index"] + 0.5
    assert flicker["frc_xz"] < consistent["frc_xz"] - 0.1 and flicker["frc_yz"] < consistent["frc_yz"] - 0.1
    # the scores against the HR are there as before, bicubic with the same name
    assert {r["method"] for r in widget.records} == {"SR", "SR flicker", "bicubic x2 (LR)"}

    # the second table, its cells and tooltips
    table = widget.z_table
    assert table.isVisible() and widget.z_title.isVisible() and table.rowCount() == 3
    cells = {table.item(row, 0).text(): [table.item(row, c).text() for c in range(4)] for row in range(3)}
    assert cells["SR flicker"][1] == f"{flicker['flicker_index']:.3f}"
    assert cells["SR"][2:] == [f"{consistent['frc_xz']:.3f}", f"{consistent['frc_yz']:.3f}"]
    assert "1 = as consistent as the input" in table.horizontalHeaderItem(1).toolTip()
    assert "flicker index" in table.item(0, 1).toolTip() and "whole stacks against the LR 'LR'" in table.item(0, 1).toolTip()

    # the CSV: the scores' rows, then a z-consistency row per stack, in its own columns
    rows = list(csv.DictReader(widget.save_table(tmp_path / "scores.csv").open()))
    z_rows = {r["method"]: r for r in rows if r["scope"] == "z-consistency"}
    assert set(z_rows) == set(expected) and len(rows) == 6 + 3
    for column in ("flicker_index", "flicker_output", "flicker_input", "frc_xz", "frc_yz", "z_scale"):
        assert column in rows[0]
    assert float(z_rows["SR flicker"]["flicker_index"]) == pytest.approx(flicker["flicker_index"], rel=1e-12)
    assert float(z_rows["bicubic x2 (LR)"]["frc_yz"]) == pytest.approx(expected["bicubic x2 (LR)"].frc_yz, rel=1e-12)
    assert z_rows["SR"]["psnr"] == "" and next(r for r in rows if r["scope"].startswith("stack"))["flicker_index"] == ""


def test_z_consistency_without_a_reference_and_what_does_not_qualify(make_napari_viewer, qtbot):
    from napari_emsr.metrics import z_consistency

    viewer = _z_viewer(make_napari_viewer, with_hr=False)
    widget = _panel(viewer, qtbot, reference=None, layers=("SR flicker",), lr=None)
    assert "Choose an LR layer to measure the z-consistency" in widget.mode.text()
    widget.lr.set_layer(viewer.layers["LR"])
    assert "even and odd slices" in widget.mode.text() and "'SR flicker', bicubic x2." in widget.mode.text()
    assert run_and_wait(qtbot, widget.run_panel, widget.run, timeout=120_000) == "done"
    lr = viewer.layers["LR"].data
    expected = z_consistency(viewer.layers["SR flicker"].data, lr)
    assert _z_record(widget, "SR flicker")["flicker_index"] == pytest.approx(expected.flicker_index, rel=1e-12)
    assert [r["method"] for r in widget.z_records] == ["SR flicker", "bicubic x2 (LR)"]
    assert _record(widget, "even vs odd slices of SR flicker", "stack")["slices"] == Z

    # layers that are no result of the LR stack are named, with the reason
    sr = viewer.layers["SR"]
    viewer.add_image(sr.data[2:], name="fewer", scale=sr.scale, translate=sr.translate, units=NM)
    viewer.add_image(sr.data[:, :70, :70], name="cut", scale=sr.scale, translate=sr.translate, units=NM)
    widget.methods.set_layers([viewer.layers["fewer"], viewer.layers["cut"]])
    text = widget.mode.text()
    assert "No z-consistency against the LR 'LR': 'fewer' has 10 slices, the LR 12;" in text
    assert "'cut' is 70 x 70 px, not a whole multiple of the LR's 48 x 48" in text
    widget.methods.set_layers([sr, viewer.layers["fewer"]])
    assert "(whole stacks): 'SR', bicubic x2. Not for 'fewer' has 10 slices" in widget.mode.text()
    viewer.add_image(lr[0], name="LR slice", scale=(20, 20), units=NM[1:])
    widget.lr.set_layer(viewer.layers["LR slice"])
    assert "No z-consistency: the LR 'LR slice' is a single image" in widget.mode.text()
    widget.lr.set_layer(viewer.layers["LR"])
    widget.methods.set_layers([sr])
    widget.whole_stack.setChecked(False)
    assert 'tick "Whole stack too"' in widget.mode.text()
    assert run_and_wait(qtbot, widget.run_panel, widget.run, timeout=120_000) == "done"
    assert widget.z_records == [] and not widget.z_table.isVisible()


def test_cancel_during_z_consistency_keeps_the_scores(make_napari_viewer, qtbot, monkeypatch):
    import threading

    import napari_emsr._napari.compare.widget as compare_widget

    viewer = _z_viewer(make_napari_viewer)
    widget = _panel(viewer, qtbot, reference="HR", layers=("SR",), lr="LR")
    z_slices, cancelled, job = [], threading.Event(), compare_widget.iter_z_consistency

    class Gated:  # the LR as the z-consistency job reads it: slice 1 waits (in the worker) for Cancel
        def __init__(self, stack):
            self.stack, self.shape, self.dtype = stack, stack.shape, stack.dtype

        def __getitem__(self, z):
            if z >= 1:
                cancelled.wait(10)
            return self.stack[z]

    monkeypatch.setattr(compare_widget, "iter_z_consistency", lambda lr, outputs: job(Gated(lr), outputs))

    def cancel_in_z(event):
        if event.kind == "slice" and event.message.startswith("z-consistency"):
            z_slices.append(event.done)
            widget.run_panel.cancel()
            cancelled.set()

    widget.run_panel.progressed.connect(cancel_in_z)
    assert run_and_wait(qtbot, widget.run_panel, widget.run, timeout=120_000) == "cancelled"
    assert z_slices[0] == 1 and len(z_slices) <= 2  # stopped between two slices
    assert widget.z_records == [] and _record(widget, "SR", "stack")["slices"] == Z
    assert "Cancelled during the z-consistency" in widget.run_panel.status.text()


def test_the_lr_defaults_to_the_input_of_a_result_when_there_is_no_lr_hr_pair(make_napari_viewer, qtbot):
    """LR + a Super-resolve result of it, no HR and no pixel sizes: the LR box takes the result's input,
    so bicubic and the z-consistency come without a choice; a layer that is not a result sets nothing."""
    from napari_emsr._napari.compare.widget import CompareWidget

    rng = np.random.default_rng(3)
    viewer = make_napari_viewer()
    lr = viewer.add_image(rng.integers(0, 255, (4, 24, 24)).astype(np.uint8), name="scan")
    viewer.add_image(rng.integers(0, 255, (4, 24, 24)).astype(np.uint8), name="other scan")
    widget = CompareWidget(viewer)
    qtbot.addWidget(widget)
    assert widget.lr.layer() is None  # two acquired layers of one (unknown) size: no pair, no result
    viewer.add_image(rng.integers(0, 255, (4, 72, 72)).astype(np.uint8), name="scan SR x3",
                     metadata={"napari_emsr": {"source_layer": "scan", "trained": True, "scale": 3}},
                     **overlay_transform(lr, 3, (0, 0, 0)))  # fmt: skip
    assert widget.lr.layer() is lr
