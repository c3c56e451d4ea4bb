"""Re-segmentation and discretisation, on cases small enough to check by hand."""
from __future__ import annotations

import numpy as np

from medfeat import processing


def test_fixed_bin_number_maps_extremes_to_first_and_last_bin():
    x = np.array([0.0, 0.5, 1.0, 2.5, 4.999, 5.0])
    # N_g = 5 over [0, 5]: floor(5 x / 5) + 1, and the maximum goes to bin 5
    assert processing.discretise_fixed_bin_number(x, 5).tolist() == [1, 1, 2, 3, 5, 5]


def test_fixed_bin_number_constant_roi_is_one_level():
    assert processing.discretise_fixed_bin_number(np.full(4, 7.0), 32).tolist() == [1, 1, 1, 1]


def test_fixed_bin_size_uses_the_resegmentation_lower_bound():
    x = np.array([-500.0, -476.0, -475.0, -1.0, 0.0, 399.0])
    # floor((x + 500) / 25) + 1
    assert processing.discretise_fixed_bin_size(x, 25.0, -500.0).tolist() == [1, 1, 2, 20, 21, 36]
    # without a bound the ROI minimum (-500 here too) is used
    assert processing.discretise_fixed_bin_size(x, 25.0).tolist() == [1, 1, 2, 20, 21, 36]
    # a different bound shifts every level
    assert processing.discretise_fixed_bin_size(x, 25.0, -1000.0).tolist() == [21, 21, 22, 40, 41, 56]


def test_resegmentation_range_and_outliers():
    img = np.array([[[-2000.0, -400.0, 0.0, 500.0, 100.0]]])
    mask = np.ones_like(img, dtype=bool)
    kept = processing.resegment_range(img, mask, -500, 400)
    assert kept.tolist() == [[[False, True, True, False, True]]]
    vals = np.array([[[10.0] * 20 + [1000.0]]])
    m = processing.resegment_outliers(vals, np.ones_like(vals, dtype=bool), 3.0)
    # mean = 57.1, sd = 216.1: 1000 lies beyond mean + 3 sd = 705.5
    assert m.sum() == 20 and not m[0, 0, -1]


def test_bounding_box():
    m = np.zeros((3, 4, 5), dtype=bool)
    m[1, 1:3, 2] = True
    assert processing.bounding_box(m) == (slice(1, 2), slice(1, 3), slice(2, 3))


def test_compiled_discretisations_equal_the_numpy_formulas():
    # the compiled passes must give exactly the levels of the formulas written with NumPy
    rng = np.random.default_rng(8)
    for shape in ((1000,), (7, 9), (3, 4, 5)):
        for x in (rng.integers(-1024, 3000, size=shape).astype(float), rng.normal(size=shape) * 300,
                  np.round(rng.normal(size=shape), 2), (rng.integers(-40, 40, size=shape) * 25).astype(float)):
            for w, lo in ((25.0, None), (25.0, -1000), (0.1, x.min() - 0.05), (2.5, -1000.0)):
                low = x.min() if lo is None else lo
                q = (x - low) / w
                want = (np.floor(q + 1e-9 * np.maximum(1.0, np.abs(q))).astype(np.int32) + 1).clip(min=1)
                got = processing.discretise_fixed_bin_size(x, w, lo)
                assert got.dtype == np.int32 and got.shape == x.shape
                np.testing.assert_array_equal(got, want)
            for n_bins in (1, 8, 32, 1000):
                want = np.minimum(np.floor(n_bins * (x - x.min()) / (x.max() - x.min())).astype(np.int32) + 1, n_bins)
                got = processing.discretise_fixed_bin_number(x, n_bins)
                assert got.dtype == np.int32 and got.shape == x.shape
                np.testing.assert_array_equal(got, want)


def test_bounding_box_of_any_dimension():
    rng = np.random.default_rng(9)
    for shape in ((7,), (5, 6), (4, 5, 6), (2, 3, 4, 5)):
        m = rng.random(shape) < 0.05
        m.flat[int(rng.integers(m.size))] = True
        idx = np.nonzero(m)
        want = tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)
        assert processing.bounding_box(m) == want
        assert processing.bounding_box(m.astype(np.uint8)) == want
