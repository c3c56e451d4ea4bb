r"""Local intensity features (IBSI chapter 1, section 3.2).

Both features are means over a sphere of 1 cm³ in world coordinates: the voxels whose centres lie
within :math:`r = (3/(4\pi))^{1/3}` cm :math:`\approx 6.2035` mm of a centre voxel (the centre
included). Only voxels of the ROI's intensity mask can be centres, but the sphere takes **every
image voxel**, in the ROI or not (IBSI 3.2): medfeat hands this family the image around the ROI's
bounding box, widened by the sphere's radius (:meth:`medfeat.roi.ROI.surroundings`). Voxels
beyond the image's edge do not exist: near the edge the mean is over the sphere's voxels inside
the image, and so are non-finite voxels outside the ROI (NaN padding, say). With
:math:`\bar{X}_s(k)` the sphere mean around voxel :math:`k`:

* local intensity peak (VJGA): :math:`\max_{k:\,X_{gl,k} = \max X_{gl}} \bar{X}_s(k)` -- the sphere
  mean around the voxel with the ROI's maximum intensity; when several voxels share the maximum,
  the highest of their means;
* global intensity peak (0F91): :math:`\max_{k \in \text{ROI}} \bar{X}_s(k)`.

By definition both are 3D (IBSI DHQ4), also under slice-wise settings: the sphere reaches into
the neighbouring slices that lie within :math:`r` (a single-slice image has none, and its sphere
is a disc).

Implementation: the sphere means of all voxels are one spherical mean filter (IBSI's suggestion):
the sum of the sphere's intensities, a convolution computed by FFT (:func:`scipy.signal.fftconvolve`),
divided by the count of its voxels inside the image, computed on an array at most the sphere's size
per axis (only the distance to the nearer edge matters), or by a second convolution when non-finite
voxels must be left out too. A large ROI is convolved in slabs along z (with the sphere's reach of
overlap), each slab converted to float64 on its own, and the two peaks are taken slab by slab: the
memory is that of one slab's FFT, not of the ROI's box (a 512 x 512 x 300 CT whose whole volume is
the ROI: see ``bench/large_roi.py``).

References
----------
.. [1] Zwanenburg A., Vallieres M., et al. "The Image Biomarker Standardization Initiative:
       standardized quantitative radiomics for high-throughput image-based phenotyping."
       Radiology 295(2):328-338 (2020). doi:10.1148/radiol.2020191145. Reference manual
       (arXiv:1612.07003), section 3.2 "Local intensity features".
.. [2] Frings V. et al. "Repeatability of metabolically active tumor volume measurements with
       FDG PET/CT in advanced gastrointestinal malignancies: a multicenter study." Radiology
       273(2):539-548 (2014).
.. [3] Wahl R.L., Jacene H., Kasamon Y., Lodge M.A. "From RECIST to PERCIST: evolving
       considerations for PET response criteria in solid tumors." J. Nucl. Med. 50 Suppl 1:
       122S-150S (2009).
"""
from __future__ import annotations

import math

import numpy as np

from medfeat.features.base import FeatureDef

FAMILY = "li"

FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("loc.peak.local", "VJGA", "local intensity peak"),
    FeatureDef("loc.peak.global", "0F91", "global intensity peak"),
)

#: radius (mm) of a 1 cm^3 sphere
RADIUS_MM = 10.0 * (3.0 / (4.0 * math.pi)) ** (1.0 / 3.0)


def sphere_margin(spacing) -> tuple[int, ...]:
    """How many voxels the sphere reaches along each axis: ``floor(r / spacing)``."""
    return tuple(int(math.floor(RADIUS_MM / float(s) + 1e-9)) for s in spacing)


def sphere_kernel(spacing, shape=None) -> np.ndarray:
    """Boolean ``(2 hz + 1, 2 hy + 1, 2 hx + 1)`` array: the voxels whose centres lie within
    :data:`RADIUS_MM` of the centre voxel's. With ``shape`` (the array it is convolved with), each
    half-width stops at ``n - 1``: farther offsets join no two voxels of the array, so the sums and
    counts are the same, and a tiny voxel size (1e-6 mm: a 12-million-voxel reach) costs no memory."""
    half = sphere_margin(spacing)
    if shape is not None:
        half = tuple(min(h, max(int(n) - 1, 0)) for h, n in zip(half, shape))
    axes = [(np.arange(-h, h + 1) * float(s)) ** 2 for h, s in zip(half, spacing)]
    d2 = axes[0][:, None, None] + axes[1][None, :, None] + axes[2][None, None, :]
    return d2 <= RADIUS_MM ** 2 * (1 + 1e-12)


def _sphere_counts(shape, spacing, box: tuple[slice, ...]) -> np.ndarray:
    """How many voxels of an array of ``shape`` each sphere around the voxels of ``box`` holds.

    Along each axis only the distance to the nearer edge, up to the sphere's reach ``h``, matters,
    so the counts are those of an array at most ``2 h + 1`` long per axis, gathered back.
    """
    from scipy.signal import fftconvolve  # imported when used: scipy.signal costs ~0.6 s

    kernel = sphere_kernel(spacing, shape).astype(np.float64)
    half = [(k - 1) // 2 for k in kernel.shape]
    small, maps = [], []
    for n, h, b in zip(shape, half, box):
        v = np.arange(b.start, b.stop)
        if n <= 2 * h + 1:
            small.append(n)
            maps.append(v)
        else:
            small.append(2 * h + 1)
            maps.append(np.where(v < h, v, np.where(v >= n - h, 2 * h - (n - 1 - v), h)))
    counts = np.rint(fftconvolve(np.ones(small), kernel, mode="same"))
    return counts[np.ix_(*maps)]


#: cells of the image slab one FFT convolution covers (memory: ~10 float64 arrays of this size)
CHUNK_CELLS = 2_000_000


def _sphere_mean_slabs(image: np.ndarray, spacing, box: tuple[slice, ...]):
    """The sphere means of ``box`` slab by slab along z: yields ``(z0, z1, means)``, ``means``
    those of slices ``z0:z1`` of ``box``. Each slab is convolved with the sphere's reach of slices
    on both sides, converted to float64 on its own: memory stays that of one slab's FFT (about
    :data:`CHUNK_CELLS` voxels), whatever the size of the ROI."""
    from scipy.signal import fftconvolve  # imported when used: scipy.signal costs ~0.6 s

    kernel = sphere_kernel(spacing, image.shape).astype(np.float64)
    hz = (kernel.shape[0] - 1) // 2
    nz = image.shape[0]
    # slices per slab: as many as CHUNK_CELLS allows, but at least twice the overlap (else the
    # overlapping slices would dominate the work)
    step = max(2 * hz, 1, CHUNK_CELLS // max(1, image.shape[1] * image.shape[2]) - 2 * hz)
    for z0 in range(box[0].start, box[0].stop, step):
        z1 = min(z0 + step, box[0].stop)
        lo, hi = max(0, z0 - hz), min(nz, z1 + hz)  # the slab the spheres of slices z0..z1 reach
        part = (slice(z0 - lo, z1 - lo), box[1], box[2])
        slab = np.asarray(image[lo:hi], dtype=np.float64)
        valid = None if image.dtype.kind in "iub" else np.isfinite(slab)
        if valid is None or valid.all():
            sums = fftconvolve(slab, kernel, mode="same")[part]
            counts = _sphere_counts(image.shape, spacing, (slice(z0, z1), box[1], box[2]))
        else:  # non-finite voxels (outside the ROI) are left out of the means
            sums = fftconvolve(np.where(valid, slab, 0.0), kernel, mode="same")[part]
            counts = np.rint(fftconvolve(valid.astype(np.float64), kernel, mode="same"))[part]
        yield z0, z1, sums / counts


def sphere_means(image: np.ndarray, spacing, box: tuple[slice, ...] | None = None) -> np.ndarray:
    """Mean intensity in the 1 cm^3 sphere around every voxel of ``image`` (z, y, x), or of its
    part ``box``; the sphere's parts beyond the array's edge, and non-finite voxels, are left out
    of the mean.

    The convolution runs slab by slab along z (:func:`_sphere_mean_slabs`), so a large ROI needs
    FFT buffers of about :data:`CHUNK_CELLS` voxels, not of its whole box.
    """
    box = tuple(slice(0, n) for n in image.shape) if box is None else box
    out = np.empty(tuple(b.stop - b.start for b in box))
    for z0, z1, means in _sphere_mean_slabs(image, spacing, box):
        out[z0 - box[0].start:z1 - box[0].start] = means
    return out


def local_intensity_features(surroundings: np.ndarray, roi_box: tuple[slice, ...], roi_image: np.ndarray,
                             intensity_mask: np.ndarray, spacing) -> dict[str, float]:
    """Local and global intensity peaks.

    Parameters
    ----------
    surroundings : ndarray, shape (z, y, x)
        The image around the ROI box (at least :func:`sphere_margin` voxels on each side, where
        the image has them).
    roi_box : tuple of slices
        Where the ROI box lies in ``surroundings``.
    roi_image : ndarray
        The ROI box's intensities (``surroundings[roi_box]``).
    intensity_mask : ndarray of bool
        The intensity mask on the ROI box.
    spacing : sequence of 3 float
        Voxel size ``(z, y, x)`` in mm.

    Returns
    -------
    dict
        ``{tag: value}`` for :data:`FEATURES`; NaN for an empty intensity mask.
    """
    if not np.any(intensity_mask):
        return {f.tag: float("nan") for f in FEATURES}
    top = roi_image[intensity_mask].max()
    local = peak = -np.inf
    b0 = roi_box[0].start
    # slab by slab: no sphere-mean array of the whole box (520 MB for a 65 M-voxel box)
    for z0, z1, means in _sphere_mean_slabs(surroundings, spacing, roi_box):
        inside = intensity_mask[z0 - b0:z1 - b0]
        if inside.any():
            peak = max(peak, float(means[inside].max()))
            at_top = inside & (roi_image[z0 - b0:z1 - b0] == top)
            if at_top.any():
                local = max(local, float(means[at_top].max()))
    return {"loc.peak.local": local, "loc.peak.global": peak}
