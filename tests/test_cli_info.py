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
