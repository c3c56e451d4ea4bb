"""Local intensity features (IBSI 3.2): the 1 cm^3 sphere, peaks, and the image outside the ROI.

The IBSI reference values (digital phantom, CT configuration A) are checked in test_ibsi_reference.py.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

import medfeat
from medfeat import Image, Settings
from medfeat.features import local_intensity as L

R = 10 * (3 / (4 * math.pi)) ** (1 / 3)


def _count(spacing) -> int:
    """Voxel centres within R of a centre voxel, by brute force."""
    h = [int(R // s) + 1 for s in spacing]
    g = np.mgrid[-h[0]:h[0] + 1, -h[1]:h[1] + 1, -h[2]:h[2] + 1].astype(float)
    d2 = sum((g[i] * spacing[i]) ** 2 for i in range(3))
    return int(np.count_nonzero(d2 <= R * R))


def _li(image, mask, spacing=(1.0, 1.0, 1.0), settings=None):
    s = settings or Settings(families=("li",))
    return medfeat.extract(Image(image, spacing=spacing), mask, s, families=["li"])


def test_codes_and_radius():
    assert [(f.tag, f.code) for f in L.FEATURES] == [("loc.peak.local", "VJGA"), ("loc.peak.global", "0F91")]
    assert L.RADIUS_MM == pytest.approx(6.2035, abs=1e-4)
    for spacing in ((1.0, 1.0, 1.0), (2.0, 2.0, 2.0), (3.0, 0.98, 0.98), (1.0, 0.5, 0.7)):
        assert int(L.sphere_kernel(spacing).sum()) == _count(spacing), spacing
    assert L.sphere_kernel((1.0, 1.0, 1.0)).shape == (13, 13, 13)


def test_single_bright_voxel():
    image = np.zeros((21, 21, 21))
    image[10, 10, 10] = 1000.0
    mask = np.zeros(image.shape, bool)
    mask[8:13, 8:13, 8:13] = True
    f = _li(image, mask)
    n = _count((1.0, 1.0, 1.0))
    assert f["loc_peak_local"] == pytest.approx(1000.0 / n)
    assert f["loc_peak_global"] == pytest.approx(1000.0 / n)  # every sphere holding it: the same mean


def test_sphere_takes_voxels_outside_the_roi():
    image = np.full((15, 15, 15), 10.0)
    image[7, 7, 7] = 100.0
    mask = np.zeros(image.shape, bool)
    mask[7, 7, 7] = True  # a one-voxel ROI
    n = _count((1.0, 1.0, 1.0))
    f = _li(image, mask)
    assert f["loc_peak_local"] == pytest.approx((100.0 + (n - 1) * 10.0) / n)
    assert f["loc_peak_global"] == f["loc_peak_local"]


def test_roi_at_the_image_edge_averages_the_voxels_that_exist():
    image = np.arange(6 * 7 * 8, dtype=float).reshape(6, 7, 8)
    mask = np.zeros(image.shape, bool)
    mask[0, 0, 0] = True
    f = _li(image, mask, spacing=(2.0, 2.0, 2.0))
    idx = np.indices(image.shape).reshape(3, -1).T * 2.0
    inside = np.sqrt((idx ** 2).sum(axis=1)) <= R
    assert f["loc_peak_local"] == pytest.approx(image.ravel()[inside].mean())


def test_non_finite_voxels_outside_the_roi_are_left_out():
    image = np.full((9, 9, 9), 2.0)
    image[4, 4, 5] = np.nan  # outside the ROI, inside the sphere
    image[4, 4, 4] = 9.0
    mask = np.zeros(image.shape, bool)
    mask[4, 4, 4] = True
    n = int(L.sphere_kernel((1, 1, 1))[2:11, 2:11, 2:11].sum())
    f = _li(image, mask)
    assert f["loc_peak_local"] == pytest.approx((9.0 + (n - 2) * 2.0) / (n - 1))


def test_ties_take_the_highest_local_mean_and_global_covers_every_voxel():
    image = np.zeros((1, 40, 40))  # no sphere centred in the mask reaches the image's edge
    image[0, 10, 10] = image[0, 20, 20] = 50.0  # two maxima ...
    image[0, 20, 21] = image[0, 21, 20] = 40.0  # ... the second with bright neighbours
    mask = np.zeros(image.shape, bool)
    mask[0, 7:27, 7:27] = True
    f = _li(image, mask)
    n = int(L.sphere_kernel((1.0, 1.0, 1.0))[6].sum())  # one slice: the sphere is a disc
    assert f["loc_peak_local"] == pytest.approx(130.0 / n)
    assert f["loc_peak_global"] == pytest.approx(130.0 / n)
    image[0, 22, 20] = 45.0  # now a non-maximum voxel's sphere holds more
    f = _li(image, mask)
    assert f["loc_peak_local"] == pytest.approx(175.0 / n)
    assert f["loc_peak_global"] == pytest.approx(175.0 / n)
    image[0, 20, 20] = 30.0  # the maximum moves to (10, 10), alone; the global peak stays near (20, 20)
    f = _li(image, mask)
    assert f["loc_peak_local"] == pytest.approx(50.0 / n)
    assert f["loc_peak_global"] == pytest.approx(155.0 / n)


def test_only_intensity_mask_voxels_are_centres():
    image = np.zeros((1, 25, 25))
    image[0, 12, 12] = 500.0  # re-segmented out of the intensity mask ...
    image[0, 12, 13] = 90.0   # ... the ROI's maximum is this neighbour
    mask = np.zeros(image.shape, bool)
    mask[0, 10:15, 10:15] = True
    f = _li(image, mask, settings=Settings(resegment_max=100.0, families=("li",)))
    n = int(L.sphere_kernel((1.0, 1.0, 1.0))[6].sum())
    # the sphere still holds the excluded 500: it is an image voxel
    assert f["loc_peak_local"] == pytest.approx(590.0 / n)


def test_extract_widens_the_box_beyond_the_roi():
    """A ROI inside a larger image: the sphere means equal those over the whole image."""
    rng = np.random.default_rng(5)
    image = rng.normal(100, 20, size=(12, 40, 40))
    mask = np.zeros(image.shape, bool)
    mask[5:7, 18:24, 17:22] = True
    spacing = (2.5, 0.8, 0.8)
    f = _li(image, mask, spacing)
    means = L.sphere_means(image, spacing)
    vals = image[mask]
    assert f["loc_peak_global"] == pytest.approx(means[mask].max(), rel=1e-12)
    assert f["loc_peak_local"] == pytest.approx(means[mask & (image == vals.max())].max(), rel=1e-12)


def test_rounding_applies_to_the_surroundings():
    image = np.full((9, 9, 9), 0.4)
    image[4, 4, 4] = 10.0
    mask = np.zeros(image.shape, bool)
    mask[4, 4, 4] = True
    f = _li(image, mask, settings=Settings(round_intensities=True, families=("li",)))
    assert f["loc_peak_local"] == pytest.approx(10.0 / int(L.sphere_kernel((1, 1, 1))[2:11, 2:11, 2:11].sum()))


def test_single_slice_picture_and_one_voxel():
    rng = np.random.default_rng(0)
    pic = rng.integers(0, 255, size=(64, 64)).astype(float)
    f = medfeat.extract(Image(pic), None, "default-2d", families=["li"])
    disc = L.sphere_kernel((1.0, 1.0, 1.0))[6]
    from scipy.ndimage import correlate
    sums = correlate(pic, disc.astype(float), mode="constant")
    counts = correlate(np.ones_like(pic), disc.astype(float), mode="constant")
    assert f["loc_peak_global"] == pytest.approx((sums / counts).max(), rel=1e-10)
    one = medfeat.extract(Image(np.full((1, 1, 1), 7.0)), None, "default-3d", families=["li"])
    assert one == {"loc_peak_local": 7.0, "loc_peak_global": 7.0}


def test_slab_by_slab_convolution_equals_one_convolution(monkeypatch):
    """A large ROI is convolved in z slabs; the means are those of one whole-box convolution, at the
    image's edges and around non-finite voxels too."""
    from medfeat.features import local_intensity as li

    rng = np.random.default_rng(5)
    image = rng.normal(100.0, 30.0, size=(23, 17, 19))
    image[0, 3, 4] = np.nan  # a non-finite voxel near the first slab's edge
    spacing = (2.0, 1.5, 1.5)  # the sphere reaches 3 slices
    box = (slice(0, 23), slice(2, 15), slice(1, 18))
    whole = li.sphere_means(image, spacing, box)
    monkeypatch.setattr(li, "CHUNK_CELLS", 17 * 19 * 8)  # slabs of 2 slices (+3 on each side)
    slabs = li.sphere_means(image, spacing, box)
    np.testing.assert_allclose(slabs, whole, rtol=1e-12)
    finite = np.isfinite(image)
    # and the value at one voxel by the definition: mean of the finite voxels within r
    k = li.sphere_kernel(spacing)
    z, y, x = 1, 4, 5
    hz, hy, hx = (n // 2 for n in k.shape)
    sel = np.zeros(image.shape, bool)
    for dz, dy, dx in np.argwhere(k) - (hz, hy, hx):
        if 0 <= z + dz < 23 and 0 <= y + dy < 17 and 0 <= x + dx < 19:
            sel[z + dz, y + dy, x + dx] = True
    sel &= finite
    assert slabs[z, y - 2, x - 1] == pytest.approx(image[sel].mean(), rel=1e-12)


def test_a_tiny_voxel_size_costs_no_memory_and_keeps_the_means():
    """A 1e-6 mm voxel size (a header in the wrong unit) made the sphere's kernel 12 million voxels
    long: a 27 GiB FFT buffer (found by fuzzing). The kernel now stops at the array's own extent, which
    changes no sum: the means equal the definition computed voxel by voxel."""
    import tracemalloc

    from medfeat.features.local_intensity import RADIUS_MM, sphere_means

    rng = np.random.default_rng(5)
    img = rng.normal(0, 100, (6, 12, 12))
    spacing = (1e-6, 1e3, 1.0)
    sphere_means(img, (2.0, 2.0, 2.0))  # scipy.signal's import is not what is measured
    tracemalloc.start()
    got = sphere_means(img, spacing)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 20 << 20
    z, y, x = np.indices(img.shape)
    pos = np.stack([z * spacing[0], y * spacing[1], x * spacing[2]], axis=-1).reshape(-1, 3)
    d2 = ((pos[:, None, :] - pos[None, :, :]) ** 2).sum(axis=-1)
    within = d2 <= RADIUS_MM ** 2 * (1 + 1e-12)
    expected = (within @ img.ravel()) / within.sum(axis=1)
    np.testing.assert_allclose(got.ravel(), expected, rtol=1e-10, atol=1e-9)
