import pytest

from napari_emsr import PRESETS, ConfigError, EMSRConfig


def test_defaults_are_the_papers_settings():
    c = EMSRConfig()
    assert (c.channels, c.num_blocks, c.num_res_blocks, c.num_path_blocks) == (64, 3, 4, 1)
    assert (c.num_heads, c.window_size, c.mlp_ratio, c.scale, c.wavelet_scales) == (16, 4, 2.0, 3, 3)
    assert (c.in_channels, c.out_channels) == (1, 1)
    assert c.preset_name == "paper"


def test_presets_and_overrides():
    lite = EMSRConfig.preset("lite", scale=2)
    assert lite.scale == 2 and lite.channels == PRESETS["lite"]["channels"]
    assert lite.preset_name == "lite"
    assert EMSRConfig.preset("paper").replace(channels=48).preset_name is None


@pytest.mark.parametrize(
    "values, message",
    [
        ({"scale": 5}, "scale must be between 1 and 4"),
        ({"scale": 0}, "scale must be between 1 and 4"),
        ({"channels": 60, "num_heads": 16}, "divisible by num_heads"),
        ({"scale": 2.5}, "whole number"),
        ({"scale": "3"}, "must be a number"),
        ({"scale": True}, "must be a number"),
        ({"mlp_ratio": 0}, "mlp_ratio"),
        ({"chanels": 64}, "unknown config key(s) chanels"),
    ],
)
def test_bad_values_get_clear_messages(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        EMSRConfig.from_dict(values)


def test_json_round_trip_and_bad_json():
    c = EMSRConfig.preset("lite", scale=4)
    assert EMSRConfig.from_json(c.to_json()) == c
    with pytest.raises(ConfigError, match="not valid JSON"):
        EMSRConfig.from_json("{scale: 3")


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'huge'; choose one of paper, lite"):
        EMSRConfig.preset("huge")


def test_whole_floats_are_accepted_as_ints():
    # JSON from other tools may write 3.0 for 3
    assert EMSRConfig.from_dict({"scale": 3.0}).scale == 3
    assert isinstance(EMSRConfig.from_dict({"scale": 3.0}).scale, int)
