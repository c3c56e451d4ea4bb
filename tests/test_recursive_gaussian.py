"""ITK's recursive Gaussian and LoG (PyRadiomics' LoG image type): against outputs of the real
SimpleITK 2.5.7 (``tests/data/itk_log_reference.npz``, written by ``bench/make_itk_log_reference.py``)
and hand-checkable properties."""
from pathlib import Path

import numpy as np
import pytest

from medfeat.filters.pyradiomics_types import pyradiomics_log_image
from medfeat.filters.recursive_gaussian import coefficients, laplacian_recursive_gaussian, recursive_gaussian

REF = np.load(Path(__file__).parent / "data" / "itk_log_reference.npz")
SIGMAS = (0.5, 1.0, 2.5, 6.0)


def assert_equals_itk(got, want):
    """SimpleITK returns these filters' maps in float32 whatever the input."""
    assert want.dtype == np.float32
    np.testing.assert_array_equal(np.asarray(got, dtype=np.float32), want)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_laplacian_equals_simpleitk(sigma):
    vol, spacing = REF["volume"], tuple(REF["spacing_zyx"])
    want = REF[f"log_{sigma}"]
    assert_equals_itk(laplacian_recursive_gaussian(vol, sigma, spacing), want)


@pytest.mark.parametrize("sigma", SIGMAS)
@pytest.mark.parametrize("order", (0, 2))
def test_one_axis_equals_simpleitk(sigma, order):
    vol, spacing = REF["volume"], tuple(REF["spacing_zyx"])
    want = REF[f"gauss_x_order{order}_{sigma}"]  # ITK's direction 0 is medfeat's last axis; per voxel^2
    assert_equals_itk(recursive_gaussian(vol, 2, sigma / spacing[2], order, dtype=np.float32), want)


def test_pyradiomics_log_of_an_int16_image_is_itks_float32_map():
    got = pyradiomics_log_image(REF["int16_volume"], 1.0, tuple(REF["spacing_zyx"]))
    want = REF["int16_log_1.0"]
    assert want.dtype == np.float32
    np.testing.assert_array_equal(got.astype(np.float32), want)


def test_contiguous_and_strided_axes_agree_with_a_transpose():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 70, 9))  # 70 lines > one block of 64 on the contiguous axis
    a = recursive_gaussian(x, 1, 1.7, 2)
    b = recursive_gaussian(np.ascontiguousarray(np.swapaxes(x, 1, 2)), 2, 1.7, 2)
    np.testing.assert_allclose(np.swapaxes(b, 1, 2), a, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sigma", (0.4, 1.0, 3.0))
def test_smoothing_keeps_a_constant_and_second_derivative_of_a_parabola_is_one(sigma):
    n = 200
    assert np.allclose(recursive_gaussian(np.full((3, n), 7.0), 1, sigma, 0), 7.0, rtol=1e-12)
    i = np.arange(n, dtype=np.float64)
    d2 = recursive_gaussian((i - n / 2) ** 2 / 2.0, 0, sigma, 2)
    inner = slice(int(30 * sigma) + 8, n - int(30 * sigma) - 8)  # away from the edge-value padding
    assert np.allclose(d2[inner], 1.0, atol=1e-9)


def test_coefficients_of_order_zero_sum_to_one_over_the_feedback():
    c = coefficients(2.0, 0)
    n, m, d = c[0], c[1], c[2]
    # a constant input 1 gives causal sum(n)/(1+sum(d)) and anti-causal sum(m)/(1+sum(d)): together 1
    assert (n.sum() + m.sum()) / (1.0 + d.sum()) == pytest.approx(1.0, rel=1e-12)


def test_a_single_slice_gets_the_in_plane_laplacian():
    vol, spacing = REF["volume"], tuple(REF["spacing_zyx"])
    one = vol[4:5]
    got = laplacian_recursive_gaussian(one, 1.0, spacing)
    want = laplacian_recursive_gaussian(one[0], 1.0, spacing[1:])[None]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_sigma_must_be_positive(bad):
    with pytest.raises(ValueError, match="sigma"):
        coefficients(bad, 0)


def test_a_sigma_beyond_the_recursions_precision_is_refused():
    """At 30,000 voxels the normalisation divided by zero (ZeroDivisionError, found by fuzzing); beyond
    MAX_SIGMA_VOXELS the coefficients are refused with the reason; just below they are finite."""
    from medfeat.filters.recursive_gaussian import MAX_SIGMA_VOXELS, coefficients

    assert np.all(np.isfinite(coefficients(MAX_SIGMA_VOXELS, 2))) and np.all(np.isfinite(coefficients(MAX_SIGMA_VOXELS, 0)))
    with pytest.raises(ValueError, match="beyond the recursion's precision"):
        coefficients(30000.0, 2)
