"""Hand-computed cases for the intensity statistics, intensity histogram and IVH families."""
from __future__ import annotations

import math

import numpy as np
import pytest

from medfeat.features.intensity_histogram import histogram_features
from medfeat.features.intensity_statistics import statistics_features
from medfeat.features.intensity_volume_histogram import ivh_features


def test_statistics_hand_computed():
    # x = 1, 2, 3, 4, 10: mean 4, deviations -3 -2 -1 0 6
    f = statistics_features(np.array([1.0, 2, 3, 4, 10]))
    assert f["stat_mean"] == 4
    assert f["stat_var"] == pytest.approx((9 + 4 + 1 + 0 + 36) / 5)          # 10
    assert f["stat_skew"] == pytest.approx(((-27 - 8 - 1 + 0 + 216) / 5) / 10**1.5)
    assert f["stat_kurt"] == pytest.approx((81 + 16 + 1 + 0 + 1296) / 5 / 100 - 3)  # -0.212
    assert f["stat_median"] == 3
    assert f["stat_min"] == 1 and f["stat_max"] == 10 and f["stat_range"] == 9
    assert f["stat_P10"] == pytest.approx(1.4)   # linear: rank 0.4 between 1 and 2
    assert f["stat_P90"] == pytest.approx(7.6)   # rank 3.6 between 4 and 10
    assert f["stat_iqr"] == pytest.approx(2.0)   # P75 = 4, P25 = 2
    assert f["stat_qcod"] == pytest.approx(2 / 6)
    assert f["stat_mad"] == pytest.approx((3 + 2 + 1 + 0 + 6) / 5)
    # robust MAD: values within [1.4, 7.6] are 2, 3, 4 (mean 3) -> (1 + 0 + 1) / 3
    assert f["stat_rmad"] == pytest.approx(2 / 3)
    assert f["stat_medad"] == pytest.approx((2 + 1 + 0 + 1 + 7) / 5)   # around the median 3
    assert f["stat_cov"] == pytest.approx(math.sqrt(10) / 4)
    assert f["stat_energy"] == 130
    assert f["stat_rms"] == pytest.approx(math.sqrt(26))


def test_statistics_constant_roi_has_no_spread():
    f = statistics_features(np.full(7, 5.0))
    assert f["stat_var"] == 0 and f["stat_skew"] == 0 and f["stat_kurt"] == 0 and f["stat_iqr"] == 0
    assert f["stat_cov"] == 0 and f["stat_energy"] == 7 * 25


def test_histogram_hand_computed():
    # levels 1 1 2 4 4 4 with N_g = 5: H = [2, 1, 0, 3, 0]
    f = histogram_features(np.array([1, 1, 2, 4, 4, 4]), 5)
    assert f["ih_mode"] == 4
    p = np.array([2, 1, 3]) / 6
    assert f["ih_entropy"] == pytest.approx(-np.sum(p * np.log2(p)))
    assert f["ih_uniformity"] == pytest.approx(4 / 36 + 1 / 36 + 9 / 36)
    # H'(1) = 1 - 2 = -1, H'(2) = (0 - 2)/2 = -1, H'(3) = (3 - 1)/2 = 1, H'(4) = (0 - 0)/2 = 0, H'(5) = 0 - 3 = -3
    assert f["ih_max_grad"] == 1 and f["ih_max_grad_gl"] == 3
    assert f["ih_min_grad"] == -3 and f["ih_min_grad_gl"] == 5
    assert f["ih_mean"] == pytest.approx(16 / 6)


def test_histogram_mode_tie_goes_to_the_level_closest_to_the_mean():
    # counts: level 1 x3, level 4 x3, level 3 x1 -> mean = (3 + 12 + 3) / 7 = 2.57; 4 is closer than 1
    f = histogram_features(np.array([1, 1, 1, 3, 4, 4, 4]), 4)
    assert f["ih_mode"] == 4


def test_ivh_hand_computed():
    # intensities 0..10 grid; ROI values: 0 x5, 5 x3, 10 x2 (10 voxels)
    x = np.array([0] * 5 + [5] * 3 + [10] * 2, dtype=float)
    f = ivh_features(x, np.arange(0, 11, dtype=float))
    # V10: smallest grid value with gamma >= 0.1 is 1 -> fraction with X >= 1 = 5/10
    assert f["ivh_V10"] == pytest.approx(0.5)
    # V90: gamma >= 0.9 -> i = 9 -> fraction with X >= 9 = 2/10
    assert f["ivh_V90"] == pytest.approx(0.2)
    # I10: lowest i with nu_i <= 0.1: nu(10) = 0.2, nothing lower -> falls back to max of grid
    assert f["ivh_I10"] == 10
    # I90: lowest i with nu_i <= 0.9: nu(1) = 0.5 -> 1
    assert f["ivh_I90"] == 1
    assert f["ivh_V10minusV90"] == pytest.approx(0.3)
    assert f["ivh_I10minusI90"] == 9


def test_histogram_path_equals_the_sample_path():
    # the intensity histogram family computes from counts; it must equal the sample statistics
    rng = np.random.default_rng(3)
    for n, ng in ((7, 5), (1000, 32), (4096, 200), (2, 2)):
        lv = rng.integers(1, ng + 1, size=n)
        h = histogram_features(lv, ng)
        s = statistics_features(lv.astype(float))
        for k in ("mean", "var", "skew", "kurt", "median", "min", "P10", "P90", "max", "iqr", "range", "mad",
                  "rmad", "medad", "cov", "qcod"):
            assert h[f"ih_{k}"] == pytest.approx(s[f"stat_{k}"], rel=1e-9, abs=1e-12), (n, ng, k)


def test_ivh_counting_path_equals_the_sorting_path():
    rng = np.random.default_rng(5)
    x = rng.integers(-20, 60, size=500)
    grid = np.arange(-30, 71, dtype=float)
    assert ivh_features(x, grid) == pytest.approx(ivh_features(x.astype(float), grid))


def test_percentiles_equal_numpy():
    # the counting path (integer-valued samples) and numpy's path must give numpy's values exactly
    from medfeat.features.intensity_statistics import _percentiles

    rng = np.random.default_rng(13)
    samples = [np.array([5.0]), np.array([3.0, -1.0]), np.full(10, 7.0), np.array([1.0, np.nan, 2.0]),
               np.array([0.0, np.inf, 2.0]), np.array([-1e12, 1e12, 0.0])]
    for n in (3, 10, 11, 101, 1000, 12345):
        samples += [rng.integers(-1024, 3000, n).astype(float), rng.normal(size=n) * 100,
                    np.round(rng.normal(size=n) * 1e6), rng.integers(-3, 3, n) * 0.5]
    for x in samples:
        with np.errstate(invalid="ignore"):  # numpy's interpolation between inf and a finite value
            np.testing.assert_array_equal(_percentiles(x), np.percentile(x, (10, 25, 50, 75, 90)))


@pytest.mark.parametrize("n", [1000, 3 * (1 << 16) + 17])
def test_block_sums_equal_whole_sample_formulas(n):
    # large ROIs are summed block by block (intensity_statistics.BLOCK): the same values as the
    # formulas over the whole sample, in one block or several
    x = np.random.default_rng(9).normal(40.0, 25.0, n).round(1)
    got = statistics_features(x)
    mu = x.mean()
    p10, p50, p90 = np.percentile(x, [10, 50, 90])
    inner = x[(x >= p10) & (x <= p90)]
    expected = {"stat_var": np.mean((x - mu) ** 2),
                "stat_skew": np.mean((x - mu) ** 3) / np.mean((x - mu) ** 2) ** 1.5,
                "stat_kurt": np.mean((x - mu) ** 4) / np.mean((x - mu) ** 2) ** 2 - 3.0,
                "stat_mad": np.mean(np.abs(x - mu)), "stat_medad": np.mean(np.abs(x - p50)),
                "stat_rmad": np.mean(np.abs(inner - inner.mean()))}
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-10), k


def test_level_counts_by_hand_and_across_blocks():
    from medfeat.features.base import level_counts

    # values above top are left out; with an offset, values under it count at 0
    assert level_counts(np.array([0, 1, 1, 3, 7], np.int32), 3).tolist() == [1, 2, 0, 1]
    assert level_counts(np.array([2, 3, 5, 9, 1]), 3, offset=2).tolist() == [2, 1, 0, 1]
    big = np.random.default_rng(2).integers(0, 40, 2_500_017).astype(np.int32)  # three blocks
    np.testing.assert_array_equal(level_counts(big, 39), np.bincount(big, minlength=40))


def test_robust_mad_of_two_values_is_undefined_not_an_error():
    # P10 = 1.1 and P90 = 1.9 of {1, 2}: no value lies between them, the feature is undefined
    import numpy as np

    import medfeat

    row = medfeat.extract(np.array([[[1.0, 2.0]]]), settings="default-2d", families=["stat"])
    assert np.isnan(row["stat_rmad"]) and row["stat_mad"] == 0.5
