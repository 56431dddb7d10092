"""Tile grids and blending weights (pure functions)."""

import numpy as np
import pytest

from napari_emsr.tiling import axis_tiles, blend_profile, default_blend, iter_batches, tile_grid, window_span

CASES = [
    # length, tile, halo, blend, window
    (1, 16, 8, 2, 4),
    (37, 16, 8, 2, 4),
    (100, 16, 12, 2, 4),
    (257, 32, 36, 6, 4),
    (520, 64, 112, 8, 4),
    (1000, 128, 112, 8, 4),
    (999, 48, 20, 8, 8),
    (300, 32, 0, 0, 4),
]


@pytest.mark.parametrize("length, tile, halo, blend, window", CASES)
def test_axis_tiles_geometry(length, tile, halo, blend, window):
    tiles = axis_tiles(length, tile=tile, halo=halo, blend=blend, window=window)
    span = window_span(tile, halo, blend, window)
    assert tiles[0].start == 0 and tiles[-1].stop == length
    assert tiles[0].low is None and tiles[-1].high is None
    for t in tiles:
        assert t.start % window == 0  # window attention partitions tiles as it does the image
        assert 0 <= t.start < t.stop <= length
    for t in tiles[:-1]:
        assert t.size == span  # same shape: tiles can share a batch
    assert tiles[-1].size < span + window
    for left, right in zip(tiles, tiles[1:], strict=False):  # neighbours: one pair fewer than tiles
        assert left.high == right.low
        assert left.stop - right.start >= 2 * (halo + blend)
        # every used output pixel has `halo` context from an edge that is not the image border
        assert left.stop - left.used(blend)[1] >= halo
        assert right.used(blend)[0] - right.start >= halo
    cores = [(t.low or 0, t.high if t.high is not None else length) for t in tiles]
    assert cores[0][0] == 0 and cores[-1][1] == length
    assert all(a[1] == b[0] and a[0] < a[1] for a, b in zip(cores, cores[1:], strict=False))  # neighbours


def test_an_axis_that_fits_is_one_tile():
    assert len(axis_tiles(92, tile=16, halo=36, blend=2, window=4)) == 1
    assert len(axis_tiles(93, tile=16, halo=36, blend=2, window=4)) == 1  # too little room for a second start
    assert len(axis_tiles(200, tile=16, halo=36, blend=2, window=4)) > 1


def test_cores_are_about_the_tile_size():
    tiles = axis_tiles(10_000, tile=256, halo=112, blend=8, window=4)
    strides = np.diff([t.start for t in tiles])
    assert strides.max() <= 256 and strides.min() >= 240
    # the compute overhead of the halo: window length over stride
    assert window_span(256, 112, 8, 4) / strides.mean() == pytest.approx(496 / 256, rel=0.05)


@pytest.mark.parametrize("scale", [1, 3, 4])
@pytest.mark.parametrize("blend", [0, 2, 8])
def test_weights_are_a_partition_of_unity(scale, blend):
    shape, tile = (181, 150), 48
    total = np.zeros((shape[0] * scale, shape[1] * scale))
    for t in tile_grid(shape, tile=tile, halo=8, blend=blend, window=4):
        w = t.weights(scale=scale, blend=blend)
        assert w.shape == (t.shape[0] * scale, t.shape[1] * scale)
        assert w.min() >= 0 and w.max() <= 1
        ys, xs = t.read
        total[ys.start * scale : ys.stop * scale, xs.start * scale : xs.stop * scale] += w
        # outside the used region the weight is exactly zero
        (u0, u1), (v0, v1) = t.y.used(blend), t.x.used(blend)
        outside = np.ones_like(w, dtype=bool)
        outside[(u0 - ys.start) * scale : (u1 - ys.start) * scale, (v0 - xs.start) * scale : (v1 - xs.start) * scale] = False
        assert not w[outside].any()
    np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_cross_fade_is_smooth_and_centred():
    tiles = axis_tiles(400, tile=64, halo=16, blend=8, window=4)
    left, right = tiles[0], tiles[1]
    s = 3
    a = blend_profile(left, scale=s, blend=8)
    b = blend_profile(right, scale=s, blend=8)
    c = left.high
    # ramps over exactly 2 * blend input pixels, centred on the core boundary, monotone
    ramp = a[(c - 8 - left.start) * s : (c + 8 - left.start) * s]
    assert ramp[0] > 0.99 and ramp[-1] < 0.01 and np.all(np.diff(ramp) < 0)
    assert np.abs(np.diff(ramp)).max() <= np.pi / (4 * 8 * s) + 1e-6  # slope of sin^2 over 2*blend*s pixels
    assert a[(c - left.start) * s - 1] == pytest.approx(0.5, abs=0.02)
    assert b[(c - right.start) * s] == pytest.approx(0.5, abs=0.02)


def test_hard_cut_without_blend():
    for t in tile_grid((200, 90), tile=32, halo=8, blend=0, window=4):
        assert set(np.unique(t.weights(scale=2, blend=0))) <= {0.0, 1.0}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(tile=30), "multiple of the window"),
        (dict(tile=16, blend=4), "at least 4 x blend"),
        (dict(halo=-1), "must not be negative"),
    ],
)
def test_bad_parameters(kwargs, message):
    options = dict(tile=32, halo=8, blend=2, window=4) | kwargs
    with pytest.raises(ValueError, match=message):
        axis_tiles(200, **options)


def test_default_blend_fits_every_tile():
    for tile in range(8, 200, 4):
        blend = default_blend(tile, 4)
        assert 0 <= blend <= 8 and tile >= 4 * blend + 2 * 4


def test_batches_group_equal_keys():
    items = [1, 1, 1, 2, 2, 1, 3, 3, 3, 3, 3]
    batches = list(iter_batches(items, 2, key=lambda v: v))
    assert batches == [[1, 1], [1], [2, 2], [1], [3, 3], [3, 3], [3]]
    assert [x for b in batches for x in b] == items
