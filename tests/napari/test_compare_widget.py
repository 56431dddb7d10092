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
    assert run_and_wait(qtbot, widget.run_panel, widget.run, timeout=120_000) == "done"
    assert "16 slice(s) of 240 x 240 px" in widget.run_panel.status.text()
    # the library's job, as events: the slice on screen first, then the stack, pooled by the one function
    assert events[0].kind == "start" and events[-1].kind == "done" and events[-1].payload.scope == "stack"
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
