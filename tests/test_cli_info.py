import json
import subprocess
import sys

import torch

from napari_emsr import build_emsr, save_model
from napari_emsr.cli import main

from .conftest import TINY


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "napari_emsr.cli", *args], capture_output=True, text=True, timeout=300)


def test_info_paper_preset_json():
    result = run_cli("info", "--preset", "paper", "--scale", "3", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert 2.5e6 <= info["parameters"] <= 4e6
    assert info["scale"] == 3 and info["trained"] is False
    config = info["config"]
    assert (config["channels"], config["num_blocks"], config["num_res_blocks"], config["num_path_blocks"]) == (64, 3, 4, 1)
    assert (config["num_heads"], config["window_size"], config["mlp_ratio"]) == (16, 4, 2.0)
    # counted, not estimated: convolutions dominate, and attention is counted too
    assert info["flops_by_operator"]["convolution"] > 0.9 * sum(info["flops_by_operator"].values())
    assert any("attention" in op for op in info["flops_by_operator"])
    # conv FLOPs per output pixel, from the architecture by hand: within a few percent of the count
    assert 5e5 < info["flops_per_output_pixel"] < 9e5


def test_flops_scale_with_the_network(capsys):
    assert main(["info", "--preset", "lite", "--json"]) == 0
    lite = json.loads(capsys.readouterr().out)
    assert main(["info", "--preset", "paper", "--json"]) == 0
    paper = json.loads(capsys.readouterr().out)
    assert paper["flops_per_output_pixel"] > 4 * lite["flops_per_output_pixel"]


def test_info_text_of_a_model_file(tmp_path, capsys):
    torch.manual_seed(0)
    path = save_model(
        build_emsr(scale=2, **TINY),
        tmp_path / "m.safetensors",
        trained=True,
        input_pixel_size_nm=20,
        provenance={"strategy": "synthetic-ii", "steps": 10},
    )
    assert main(["info", str(path)]) == 0
    text = capsys.readouterr().out
    assert "x2" in text and "trained" in text and "UNTRAINED" not in text
    assert "20 nm input -> 10 nm output" in text
    assert "strategy: synthetic-ii" in text


def test_info_says_when_weights_are_random(capsys):
    assert main(["info", "--preset", "paper"]) == 0
    out = capsys.readouterr().out
    assert "UNTRAINED" in out and "random weights" in out


def test_bad_model_file_is_one_line_and_nonzero(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    result = run_cli("info", str(bad))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "not a safetensors file" in lines[0]


def test_scale_conflicting_with_a_file(tmp_path, capsys):
    path = save_model(build_emsr(scale=2, **TINY), tmp_path / "m.safetensors")
    assert main(["info", str(path), "--scale", "3"]) == 2
    assert "x2 model" in capsys.readouterr().err


def test_every_subcommand_has_help():
    from napari_emsr.cli import SUBCOMMANDS

    for name in SUBCOMMANDS:
        result = run_cli(name, "--help")
        assert result.returncode == 0 and "usage: emsr " + name in result.stdout


def _zoo_table(text):
    """The rows of `emsr info --zoo` as dicts, split on the header's column starts."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    names = header.split("  ")
    names = [n.strip() for n in names if n.strip()]
    starts = [header.index(n) for n in names]
    rows = []
    for line in lines[1:]:
        if line.startswith("A name stands"):
            break
        cells = [line[a:b].strip() for a, b in zip(starts, starts[1:] + [None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


def _expected_rows(models):
    return [
        {
            "name": m.name, "scale": f"x{m.scale}", "preset": m.preset or "custom",
            "input pixel": f"{m.input_pixel_size_nm:g} nm" if m.input_pixel_size_nm else "unknown",
            "valid input pixel": (f"{m.valid_input_pixel_size_nm[0]:g}-{m.valid_input_pixel_size_nm[1]:g} nm"
                                  if m.valid_input_pixel_size_nm else "not measured"),
            "default for scale": "yes" if m.is_default else "no", "card": m.card or "-",
        }
        for m in models
    ]  # fmt: skip


def test_info_zoo_lists_the_shipped_models(capsys):
    from napari_emsr.zoo import zoo_models

    assert main(["info", "--zoo"]) == 0
    assert _zoo_table(capsys.readouterr().out) == _expected_rows(zoo_models())
    assert main(["info", "--zoo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [m.summary() for m in zoo_models()]


def test_info_zoo_shows_an_added_model(tmp_path, monkeypatch, capsys):
    """A zoo with the shipped models and one more, in a temporary weights folder."""
    import shutil

    import napari_emsr.zoo

    from .test_zoo import use_zoo

    shipped = napari_emsr.zoo.WEIGHTS_DIR
    weights = tmp_path / "weights"
    shutil.copytree(shipped, weights)
    index = json.loads((weights / "zoo.json").read_text())
    torch.manual_seed(0)
    save_model(build_emsr(scale=2, **TINY), weights / "extra-x2.safetensors", trained=True,
               input_pixel_size_nm=20, valid_input_pixel_size_nm=(14, 26), description="an extra x2")  # fmt: skip
    index["models"].append({"name": "extra-x2", "file": "extra-x2.safetensors", "card": "docs/models/extra.md"})
    index["defaults"]["2"] = "extra-x2"
    (weights / "zoo.json").write_text(json.dumps(index))
    use_zoo(monkeypatch, weights)
    try:
        models = napari_emsr.zoo.zoo_models()
        assert [m.name for m in models][-1] == "extra-x2" and len(models) == len(index["models"])
        assert main(["info", "--zoo"]) == 0
        rows = _zoo_table(capsys.readouterr().out)
        assert rows == _expected_rows(models)
        assert rows[-1] == {"name": "extra-x2", "scale": "x2", "preset": "custom", "input pixel": "20 nm",
                            "valid input pixel": "14-26 nm", "default for scale": "yes",
                            "card": "docs/models/extra.md"}  # fmt: skip
        assert main(["info", "--zoo", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed[-1] == {"name": "extra-x2", "file": "extra-x2.safetensors", "scale": 2, "preset": None,
                              "input_pixel_size_nm": 20.0, "valid_input_pixel_size_nm": [14.0, 26.0],
                              "default_for_scale": True, "description": "an extra x2",
                              "card": "docs/models/extra.md"}  # fmt: skip
        # a zoo name stands for its file
        assert main(["info", "extra-x2"]) == 0
        assert "extra-x2.safetensors" in capsys.readouterr().out
    finally:
        napari_emsr.zoo._zoo.cache_clear()


def test_info_zoo_empty_and_misuse(tmp_path, monkeypatch, capsys):
    import napari_emsr.zoo

    from .test_zoo import use_zoo

    use_zoo(monkeypatch, tmp_path)
    try:
        assert main(["info", "--zoo"]) == 0
        assert "the model zoo is empty" in capsys.readouterr().out
        assert main(["info", "--zoo", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == []
    finally:
        napari_emsr.zoo._zoo.cache_clear()
    assert main(["info", "--zoo", "--preset", "lite"]) == 2
    assert "--zoo lists the shipped models" in capsys.readouterr().err
