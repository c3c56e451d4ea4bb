r"""Grey level run length matrix (GLRLM) features (IBSI chapter 1, section 3.7).

A *run* is a maximal line of consecutive ROI voxels with the same grey level along one direction;
voxels outside the ROI (and the image border) end runs. The run length matrix :math:`r_{ij}`
counts the runs of grey level :math:`i` and length :math:`j`. With :math:`N_g` grey levels and
:math:`N_r` the longest run length,

* :math:`N_s = \sum_{i=1}^{N_g}\sum_{j=1}^{N_r} r_{ij}` is the number of runs,
* :math:`r_{i.} = \sum_j r_{ij}` and :math:`r_{.j} = \sum_i r_{ij}` are the marginal sums,
* :math:`p_{ij} = r_{ij} / N_s` is the joint probability,
* :math:`N_v` is the number of ROI voxels the matrix was built from. For a matrix merged from
  several matrices :math:`N_v` is the *sum* over the merged matrices (IBSI), e.g. 13 times the
  ROI volume for "3D, merged" and 4 times the slice's voxel count for a slice whose four in-plane
  directions are merged.

Grey levels :math:`i` are the true discretised levels (levels absent from the ROI contribute no
row; leaving them out changes no feature), run lengths start at 1, logarithms are base 2.

Aggregation methods (IBSI 3.1.3, and :func:`medfeat.features.aggregation.aggregate`): "2D, averaged"
averages the features of every (slice, in-plane direction) matrix; "2D, slice-merged" merges the
four directional matrices of each slice and averages over slices; "2.5D, direction-merged" merges
each direction's matrices over the slices and averages over the four directions; "2.5D, merged"
uses one matrix over all slices and directions; "3D, averaged" averages over the 13 volumetric
directions and "3D, merged" uses one matrix merged over them. Empty matrices (a slice without ROI
voxels) are left out; a feature without any matrix is NaN.

Implementation
--------------
Runs are counted by one compiled sweep (:mod:`numba`, ``cache=True``: compiled once, then loaded
from disk by every worker process) over the ROI's bounding box, padded with one voxel of
"outside" so that no bounds checks are needed, a slice at a time. Per direction ``d``, each voxel's
position in its run is one more than its predecessor's ``p - d`` when both share a level (else it
starts a run); except along x the predecessor lies in an earlier row, so this is an elementwise
loop over the slice that the compiler turns into SIMD code. A voxel whose successor ``p + d`` has
another level or lies outside the ROI ends a run; the (level, length) cell of every run end is
then incremented with the 13 (or 4) directions innermost, so that consecutive increments never
wait on each other (3.5x faster than the earlier voxel-at-a-time pass). For the 2D / 2.5D methods
the slice index is part of the histogram index, so one sweep over the volume yields every
per-slice matrix. A vectorised NumPy formulation (start/end masks paired by sorting on (line,
position along the line)) was 15 to 25 times slower than even the earlier pass.

References
----------
.. [1] Zwanenburg A., Vallieres M., et al. "The Image Biomarker Standardization Initiative:
       standardized quantitative radiomics for high-throughput image-based phenotyping."
       Radiology 295(2):328-338 (2020). doi:10.1148/radiol.2020191145. Reference manual
       (arXiv:1612.07003), section 3.7 "Grey level run length based features".
.. [2] Galloway M.M. "Texture analysis using gray level run lengths." Computer Graphics and
       Image Processing 4(2):172-179 (1975). doi:10.1016/S0146-664X(75)80008-6.
.. [3] van Griethuysen J.J.M. et al. "Computational radiomics system to decode the radiographic
       phenotype." Cancer Research 77(21):e104-e107 (2017) (PyRadiomics, ``radiomics/glrlm.py``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from medfeat.features._levels import level_lut
from medfeat.features.aggregation import aggregate
from medfeat.features.base import (AGGREGATIONS_3D, FeatureDef, check_aggregations, check_levels, directions_2d,
                                   directions_3d, flatten)

FAMILY = "glrlm"

# Per-slice (2D) histograms keep run lengths up to this many columns densely; the rare longer runs
# are listed separately, so memory stays ~ 4 x slices x levels x 33 whatever the in-plane size.
_CAP_2D = 32
# Voxels per chunk of a slice in :func:`_count_runs` (its scratch: directions x chunk cell indices).
_CHUNK = 2048
# Row padding of that scratch: rows a power of two apart would share L1 cache sets.
_PAD = 40


# --------------------------------------------------------------------------------------------
# Run counting
# --------------------------------------------------------------------------------------------

@numba.njit(cache=True, nogil=True)
def _prepare(levels):  # pragma: no cover - compiled
    """Crop to the ROI's bounding box, map the levels present to ``0..G-1`` and pad with ``-1``.

    Returns ``(padded, grey, n_voxels)``: the ``int32`` level indices of the bounding box with one
    voxel of ``-1`` on every side, the true grey level of each index (float64, ascending) and the
    number of ROI voxels of each slice of the box. An empty ROI gives ``grey.size == 0``.
    """
    nz, ny, nx = levels.shape
    z0, y0, x0, z1, y1, x1, top = nz, ny, nx, -1, -1, -1, 0
    for z in range(nz):  # bounding box and highest level, a row at a time
        for y in range(ny):
            row = levels[z, y]
            m = 0
            for x in range(nx):
                m = max(m, row[x])
            if m <= 0:
                continue
            top = max(top, m)
            z0 = min(z0, z)
            z1 = z
            y0 = min(y0, y)
            y1 = max(y1, y)
            lo = 0
            while row[lo] <= 0:
                lo += 1
            hi = nx - 1
            while row[hi] <= 0:
                hi -= 1
            x0 = min(x0, lo)
            x1 = max(x1, hi)
    if top == 0:
        return np.full((1, 1, 1), -1, np.int32), np.zeros(0), np.zeros(0)
    present = np.zeros(top + 1, np.bool_)
    for z in range(z0, z1 + 1):
        for y in range(y0, y1 + 1):
            row = levels[z, y, x0:x1 + 1]
            for x in range(row.size):
                present[max(row[x], 0)] = True
    present[0] = False
    lut, grey = level_lut(present, top)  # level -> index; 0 (outside) -> -1
    padded = np.full((z1 - z0 + 3, y1 - y0 + 3, x1 - x0 + 3), -1, np.int32)
    n_voxels = np.zeros(z1 - z0 + 1)
    dense = grey.size == top  # every level 1..top present: index = level - 1 (elementwise, no look-up)
    for z in range(z0, z1 + 1):
        n = 0
        for y in range(y0, y1 + 1):
            row = levels[z, y, x0:x1 + 1]
            out = padded[z - z0 + 1, y - y0 + 1, 1:x1 - x0 + 2]
            if dense:
                for x in range(row.size):
                    v = row[x]
                    out[x] = v - 1 if v > 0 else -1
                    n += v > 0
            else:
                for x in range(row.size):
                    v = max(row[x], 0)
                    out[x] = lut[v]
                    n += v > 0
        n_voxels[z - z0] = n
    return padded, grey, n_voxels


@numba.njit(cache=True, nogil=True)
def _count_runs(padded, offsets, n_grey, per_slice, cap, code):  # pragma: no cover - compiled
    """Run length histograms of every direction (and slice) in one sweep over the padded box.

    Parameters
    ----------
    padded : int32 array, from :func:`_prepare`
        Level indices ``0..n_grey-1`` of the ROI's bounding box, ``-1`` outside and in the border.
    offsets : int64 array (directions, 3)
        Lexicographically positive ``(dz, dy, dx)`` directions, so ``p - d`` comes before ``p``.
    n_grey : int
        Number of level indices.
    per_slice : bool
        One histogram per (slice, direction), of ``cap + 1`` columns, the last one scratch
        (the 2D / 2.5D methods; in-plane directions only), or one per direction over the volume
        with as many columns as the longest line through the box (3D).
    cap : int
        Longest run length kept densely when ``per_slice``.
    code : int32 or int64 array (directions, chunk + _PAD), scratch
        The cell indices of a chunk of the sweep; int64 when the histograms hold ``2**31`` cells
        or more.

    Returns
    -------
    hist : int32 array
        ``(matrices * n_grey * width,)``, matrix ``m = slice * directions + direction`` (per slice)
        or ``m = direction``; column ``j - 1`` counts the runs of length ``j``.
    overflow : int64 array (n, 3)
        ``(m, level index, length)`` of every run longer than ``cap`` (per slice only).

    Notes
    -----
    The box is swept a slice at a time; within a slice the voxels from ``(y, x) = (1, 1)`` to
    ``(ny, nx)`` form one contiguous *span* of the flattened box (border columns included, which
    end every run), of which the part from the slice's first ROI voxel to its last is taken, a
    chunk at a time. For a direction ``d`` with flat offset ``s``, the position of a voxel in its
    run is ``c[p] = c[p - s] + 1`` when ``p - s`` is a ROI voxel of the same level, else 0, and the
    run ends at ``p`` when ``p + s`` has another level or lies outside. Except along x, ``p - s``
    lies in an earlier row, so this is an elementwise (SIMD) loop, reading ``c`` of the
    predecessors from a per-direction buffer of the last two slices (``c`` is only ever read at ROI
    voxels, all of which get it written, so positions outside the ROI may hold stale values).
    Along x the recurrence is a branch-free scalar loop. Each ROI voxel then gets, per direction, the histogram cell of the
    run it ends (its level and length) or a per-direction scratch cell when it ends none, and the
    cells are incremented voxel by voxel with the directions innermost: consecutive increments
    never hit the same counter (a store-to-load dependency chain, which made a direction-by-direction
    histogram 3x slower).
    """
    pz, py, px = padded.shape
    nz, ny, nx = pz - 2, py - 2, px - 2
    nd = offsets.shape[0]
    width = cap + 1 if per_slice else max(nz, ny, nx)
    n_mat = nz * nd if per_slice else nd
    total = n_mat * n_grey * width
    hist = np.zeros(total + nd, np.int32)  # + a scratch cell per direction
    flat = padded.ravel()
    plane = py * px
    span = (ny - 1) * px + nx
    chunk = code.shape[1] - _PAD
    # run positions of the last `slots` slices (zeroed: np.empty made the sweep several times slower)
    slots = 1
    for d in range(nd):
        slots = max(slots, offsets[d, 0] + 1)
    margin = px + 1  # predecessors of the span's ends lie up to a row and a voxel beyond it
    run = np.zeros((nd, slots * plane + 2 * margin), np.int32)
    offs = np.empty(nd, np.int64)
    for d in range(nd):
        offs[d] = (offsets[d, 0] * py + offsets[d, 1]) * px + offsets[d, 2]
    n_long_max = 1
    if per_slice:
        n_roi = 0
        for v in flat:
            n_roi += v >= 0
        n_long_max += nd * (n_roi // width)  # a run longer than cap holds more than `width` voxels
    overflow = np.empty((n_long_max, 3), np.int64)
    n_over = 0
    top = np.int32(width - 1)
    cap32 = np.int32(cap)
    zero = np.int32(0)
    one = np.int32(1)
    w32 = np.int32(width)
    ct = code.dtype.type  # cell indices: int32 arithmetic where the histograms allow (SIMD width)
    for z in range(1, nz + 1):
        # only the part of the span from the slice's first ROI voxel to its last: run positions
        # elsewhere are left stale, which is safe as only a ROI voxel's run position is ever read
        s0 = (z * py + 1) * px + 1
        first = 0
        while first < span and flat[s0 + first] < 0:
            first += 1
        last = span
        while last > first and flat[s0 + last - 1] < 0:
            last -= 1
        for k0 in range(first, last, chunk):  # a chunk at a time: the scratch stays in cache
            k1 = min(k0 + chunk, last)
            p0 = (z * py + 1) * px + 1 + k0
            fa = flat[p0:p0 + k1 - k0]
            q0 = (z % slots) * plane + px + 1 + margin + k0
            for d in range(nd):
                dz, dy, dx = offsets[d, 0], offsets[d, 1], offsets[d, 2]
                off = offs[d]
                fb = flat[p0 - off:p0 - off + k1 - k0]  # predecessors
                fn = flat[p0 + off:p0 + off + k1 - k0]  # successors
                cur = run[d, q0:q0 + k1 - k0]
                qb = q0 - ((z % slots) - (z - dz) % slots) * plane - dy * px - dx
                prv = run[d, qb:qb + k1 - k0]
                cd = code[d]
                m = (z - 1) * nd + d if per_slice else d
                h0 = ct(m * n_grey * width)
                sink = ct(total + d)
                n_long = 0
                if dz == 0 and dy == 0:  # along x: the predecessor is the previous element
                    c = run[d, q0 - 1]  # the previous chunk's last (stale at a range's start: unused)
                    for i in range(k1 - k0):
                        a = fa[i]
                        c = (c + 1) * ((a >= 0) & (a == fb[i]))  # branch-free: runs are unpredictable
                        cur[i] = c
                    for i in range(k1 - k0):
                        a = fa[i]
                        c = cur[i]
                        end = (a >= zero) & (fn[i] != a)
                        n_long += end & (c >= cap32)
                        cd[i] = h0 + a * w32 + min(c, top) if end else sink
                elif per_slice:  # the predecessor lies in an earlier row: elementwise
                    for i in range(k1 - k0):
                        a = fa[i]
                        c = np.int32(prv[i] + one) if (a >= zero) & (a == fb[i]) else zero
                        cur[i] = c
                        end = (a >= zero) & (fn[i] != a)
                        n_long += end & (c >= cap32)
                        cd[i] = h0 + a * w32 + min(c, top) if end else sink
                else:
                    for i in range(k1 - k0):
                        a = fa[i]
                        c = np.int32(prv[i] + one) if (a >= zero) & (a == fb[i]) else zero
                        cur[i] = c
                        cd[i] = ct(h0 + ct(ct(a * w32) + c)) if (a >= zero) & (fn[i] != a) else sink
                if per_slice and n_long:
                    for i in range(k1 - k0):
                        a = fa[i]
                        if a >= 0 and cur[i] >= cap and fn[i] != a:
                            overflow[n_over, 0] = m
                            overflow[n_over, 1] = a
                            overflow[n_over, 2] = cur[i] + 1
                            n_over += 1
            for i in range(k1 - k0):
                if fa[i] >= 0:
                    for d in range(nd):
                        hist[code[d, i]] += 1
    return hist[:total], overflow[:n_over]


def _prepared(levels: np.ndarray):
    """:func:`_prepare` of levels checked by :func:`medfeat.features.base.check_levels`."""
    # one dtype and layout: a single compiled (and cached) specialisation serves every caller
    return _prepare(np.ascontiguousarray(levels, dtype=np.int32))


def _runs(padded, offsets, g: int, per_slice: bool, cap: int = 0):
    """:func:`_count_runs` with its scratch buffer (int32 cell indices unless the histograms need more)."""
    pz, py, px = padded.shape
    nd = offsets.shape[0]
    width = cap + 1 if per_slice else max(pz, py, px) - 2
    cells = ((pz - 2) * nd if per_slice else nd) * g * width + nd
    code = np.empty((nd, _CHUNK + _PAD), np.int32 if cells < 2**31 else np.int64)
    return _count_runs(padded, offsets, g, per_slice, cap, code)


def _matrices(padded, grey, n_voxels, three_d: bool):
    """Run length matrices (float64, trimmed to the longest run) and voxel counts from :func:`_prepare`."""
    g = grey.size
    if three_d:
        offsets = directions_3d()
        nd = offsets.shape[0]
        hist = _runs(padded, offsets, g, False)[0].reshape(nd, g, -1)
        used = np.flatnonzero(hist.any(axis=(0, 1)))
        return hist[:, :, : used[-1] + 1].astype(np.float64), np.full(nd, n_voxels.sum())
    offsets = directions_2d()
    nd, nz = offsets.shape[0], padded.shape[0] - 2
    cap = min(max(padded.shape[1:]) - 2, _CAP_2D)
    hist, overflow = _runs(padded, offsets, g, True, cap)
    hist = hist.reshape(nz * nd, g, cap + 1)[:, :, :cap]
    if overflow.shape[0] > 0:
        longest = int(overflow[:, 2].max())
        full = np.zeros((nz * nd, g, longest), np.int32)
        full[:, :, :cap] = hist
        np.add.at(full, (overflow[:, 0], overflow[:, 1], overflow[:, 2] - 1), 1)
        hist = full
    else:
        hist = hist[:, :, : np.flatnonzero(hist.any(axis=(0, 1)))[-1] + 1]
    # (slices, directions) -> (directions, slices), C-contiguous float64 in the same copy
    r = hist.reshape(nz, nd, g, hist.shape[-1]).transpose(1, 0, 2, 3).astype(np.float64, order="C")
    return r, np.broadcast_to(n_voxels, (nd, nz)).copy()


def _run_length_matrices(levels: np.ndarray, three_d: bool = False):
    """Run length matrices of a discretised ROI, over the grey levels present.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Grey levels ``>= 1`` inside the ROI, 0 outside.
    three_d : bool
        13 volumetric directions instead of the 4 in-plane directions per slice.

    Returns
    -------
    matrices : ndarray of float64
        ``(4, slices, G, L)`` per in-plane direction (:func:`~medfeat.features.base.directions_2d`
        order) and slice of the ROI's bounding box, or ``(13, G, L)`` per 3D direction
        (:func:`~medfeat.features.base.directions_3d` order). ``matrices[..., i, j - 1]`` counts the
        runs of the ``i``-th grey level present with length ``j``; ``L`` is the longest run.
    n_voxels : ndarray of float64
        ``(4, slices)`` ROI voxels of each slice, or ``(13,)`` ROI voxels of the volume.
    grey_levels : ndarray of float64
        ``(G,)`` the grey level of each row.
    """
    padded, grey, nv = _prepared(check_levels(levels))
    if grey.size == 0:
        raise ValueError("empty ROI: no voxel has a grey level >= 1")
    return _matrices(padded, grey, nv, three_d) + (grey,)


# --------------------------------------------------------------------------------------------
# Features of a batch of matrices
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunLengthBatch:
    """A batch of ``n`` run length matrices and the quantities every feature shares.

    Attributes
    ----------
    r : ndarray, shape (n, Ng, Nr)
        Run counts :math:`r_{ij}`.
    r_i : ndarray, shape (n, Ng)
        Runs per grey level :math:`r_{i.} = \\sum_j r_{ij}`.
    r_j : ndarray, shape (n, Nr)
        Runs per run length :math:`r_{.j} = \\sum_i r_{ij}`.
    n_s : ndarray, shape (n,)
        Number of runs :math:`N_s`.
    n_v : ndarray, shape (n,)
        Number of voxels :math:`N_v` (summed over merged matrices).
    i : ndarray, shape (Ng,)
        Grey level of each row.
    j : ndarray, shape (Nr,)
        Run length of each column, ``1..Nr``.
    """

    r: np.ndarray
    r_i: np.ndarray
    r_j: np.ndarray
    n_s: np.ndarray
    n_v: np.ndarray
    i: np.ndarray
    j: np.ndarray

    @classmethod
    def of(cls, r: np.ndarray, n_v: np.ndarray, grey_levels: np.ndarray) -> "RunLengthBatch":
        r = np.asarray(r, dtype=np.float64)
        r_i = r.sum(axis=2)
        return cls(r=r, r_i=r_i, r_j=r.sum(axis=1), n_s=r_i.sum(axis=1), n_v=np.asarray(n_v, dtype=np.float64),
                   i=np.asarray(grey_levels, dtype=np.float64), j=np.arange(1.0, r.shape[2] + 1.0))


def _joint(b: RunLengthBatch, wi: np.ndarray, wj: np.ndarray) -> np.ndarray:
    """:math:`\\frac{1}{N_s}\\sum_{ij} r_{ij}\\,w_i\\,w_j` for every matrix of the batch."""
    return (b.r @ wj) @ wi / b.n_s


def short_runs_emphasis(b: RunLengthBatch) -> np.ndarray:
    r"""Short runs emphasis (SRE).

    IBSI code ``22OV``, tag ``rlm.sre``:

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_r} \frac{r_{.j}}{j^2}

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return b.r_j @ (1.0 / b.j**2) / b.n_s


def long_runs_emphasis(b: RunLengthBatch) -> np.ndarray:
    r"""Long runs emphasis (LRE).

    IBSI code ``W4KF``, tag ``rlm.lre``:

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_r} j^2\, r_{.j}

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return b.r_j @ b.j**2 / b.n_s


def low_grey_level_run_emphasis(b: RunLengthBatch) -> np.ndarray:
    r"""Low grey level run emphasis (LGRE).

    IBSI code ``V3SW``, tag ``rlm.lgre``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} \frac{r_{i.}}{i^2}

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return b.r_i @ (1.0 / b.i**2) / b.n_s


def high_grey_level_run_emphasis(b: RunLengthBatch) -> np.ndarray:
    r"""High grey level run emphasis (HGRE).

    IBSI code ``G3QZ``, tag ``rlm.hgre``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} i^2\, r_{i.}

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return b.r_i @ b.i**2 / b.n_s


def short_run_low_grey_level_emphasis(b: RunLengthBatch) -> np.ndarray:
    r"""Short run low grey level emphasis (SRLGE).

    IBSI code ``HTZT``, tag ``rlm.srlge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_r} \frac{r_{ij}}{i^2 j^2}

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return _joint(b, 1.0 / b.i**2, 1.0 / b.j**2)


def short_run_high_grey_level_emphasis(b: RunLengthBatch) -> np.ndarray:
    r"""Short run high grey level emphasis (SRHGE).

    IBSI code ``GD3A``, tag ``rlm.srhge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_r} \frac{i^2 r_{ij}}{j^2}

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return _joint(b, b.i**2, 1.0 / b.j**2)


def long_run_low_grey_level_emphasis(b: RunLengthBatch) -> np.ndarray:
    r"""Long run low grey level emphasis (LRLGE).

    IBSI code ``IVPO``, tag ``rlm.lrlge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_r} \frac{j^2 r_{ij}}{i^2}

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return _joint(b, 1.0 / b.i**2, b.j**2)


def long_run_high_grey_level_emphasis(b: RunLengthBatch) -> np.ndarray:
    r"""Long run high grey level emphasis (LRHGE).

    IBSI code ``3KUM``, tag ``rlm.lrhge``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g}\sum_{j=1}^{N_r} i^2 j^2\, r_{ij}

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return _joint(b, b.i**2, b.j**2)


def grey_level_non_uniformity(b: RunLengthBatch) -> np.ndarray:
    r"""Grey level non-uniformity (GLNU).

    IBSI code ``R5YN``, tag ``rlm.glnu``:

    .. math:: F = \frac{1}{N_s}\sum_{i=1}^{N_g} r_{i.}^2

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return np.einsum("ni,ni->n", b.r_i, b.r_i) / b.n_s


def normalised_grey_level_non_uniformity(b: RunLengthBatch) -> np.ndarray:
    r"""Normalised grey level non-uniformity (GLNUN).

    IBSI code ``OVBL``, tag ``rlm.glnu.norm``:

    .. math:: F = \frac{1}{N_s^2}\sum_{i=1}^{N_g} r_{i.}^2

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return np.einsum("ni,ni->n", b.r_i, b.r_i) / b.n_s**2


def run_length_non_uniformity(b: RunLengthBatch) -> np.ndarray:
    r"""Run length non-uniformity (RLNU).

    IBSI code ``W92Y``, tag ``rlm.rlnu``:

    .. math:: F = \frac{1}{N_s}\sum_{j=1}^{N_r} r_{.j}^2

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return np.einsum("nj,nj->n", b.r_j, b.r_j) / b.n_s


def normalised_run_length_non_uniformity(b: RunLengthBatch) -> np.ndarray:
    r"""Normalised run length non-uniformity (RLNUN).

    IBSI code ``IC23``, tag ``rlm.rlnu.norm``:

    .. math:: F = \frac{1}{N_s^2}\sum_{j=1}^{N_r} r_{.j}^2

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return np.einsum("nj,nj->n", b.r_j, b.r_j) / b.n_s**2


def run_percentage(b: RunLengthBatch) -> np.ndarray:
    r"""Run percentage.

    IBSI code ``9ZK5``, tag ``rlm.r.perc``:

    .. math:: F = \frac{N_s}{N_v}

    :math:`N_v` is the number of voxels of the ROI (of the slice, for a per-slice matrix); for a
    merged matrix it is the sum of the :math:`N_v` of the merged matrices (IBSI), so merging
    :math:`N_d` directions multiplies it by :math:`N_d`.

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    return b.n_s / b.n_v


def grey_level_variance(b: RunLengthBatch) -> np.ndarray:
    r"""Grey level variance.

    IBSI code ``8CE5``, tag ``rlm.gl.var``:

    .. math:: F = \sum_{i=1}^{N_g}\sum_{j=1}^{N_r} (i - \mu)^2 p_{ij}, \qquad
              \mu = \sum_{i=1}^{N_g}\sum_{j=1}^{N_r} i\, p_{ij}

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    p_i = b.r_i / b.n_s[:, None]
    mu = p_i @ b.i
    return np.einsum("ni,ni->n", p_i, (b.i[None, :] - mu[:, None]) ** 2)


def run_length_variance(b: RunLengthBatch) -> np.ndarray:
    r"""Run length variance.

    IBSI code ``SXLW``, tag ``rlm.rl.var``:

    .. math:: F = \sum_{i=1}^{N_g}\sum_{j=1}^{N_r} (j - \mu)^2 p_{ij}, \qquad
              \mu = \sum_{i=1}^{N_g}\sum_{j=1}^{N_r} j\, p_{ij}

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    p_j = b.r_j / b.n_s[:, None]
    mu = p_j @ b.j
    return np.einsum("nj,nj->n", p_j, (b.j[None, :] - mu[:, None]) ** 2)


def run_entropy(b: RunLengthBatch) -> np.ndarray:
    r"""Run entropy.

    IBSI code ``HJ9O``, tag ``rlm.rl.entr``:

    .. math:: F = -\sum_{i=1}^{N_g}\sum_{j=1}^{N_r} p_{ij} \log_2 p_{ij}

    (terms with :math:`p_{ij} = 0` contribute 0).

    Parameters
    ----------
    b : RunLengthBatch
        Matrices and marginals.

    Returns
    -------
    ndarray, shape (n,)
    """
    n = b.r.shape[0]
    flat = b.r.reshape(n, -1)
    k = np.flatnonzero(flat)  # run length matrices are sparse: only occupied cells have terms
    matrix = k // flat.shape[1]
    p = flat.ravel()[k] / b.n_s[matrix]
    return 0.0 - np.bincount(matrix, weights=p * np.log2(p), minlength=n)  # 0.0 - x: never -0.0


_TABLE = (
    ("rlm.sre", "22OV", "Short runs emphasis", short_runs_emphasis),
    ("rlm.lre", "W4KF", "Long runs emphasis", long_runs_emphasis),
    ("rlm.lgre", "V3SW", "Low grey level run emphasis", low_grey_level_run_emphasis),
    ("rlm.hgre", "G3QZ", "High grey level run emphasis", high_grey_level_run_emphasis),
    ("rlm.srlge", "HTZT", "Short run low grey level emphasis", short_run_low_grey_level_emphasis),
    ("rlm.srhge", "GD3A", "Short run high grey level emphasis", short_run_high_grey_level_emphasis),
    ("rlm.lrlge", "IVPO", "Long run low grey level emphasis", long_run_low_grey_level_emphasis),
    ("rlm.lrhge", "3KUM", "Long run high grey level emphasis", long_run_high_grey_level_emphasis),
    ("rlm.glnu", "R5YN", "Grey level non-uniformity", grey_level_non_uniformity),
    ("rlm.glnu.norm", "OVBL", "Normalised grey level non-uniformity", normalised_grey_level_non_uniformity),
    ("rlm.rlnu", "W92Y", "Run length non-uniformity", run_length_non_uniformity),
    ("rlm.rlnu.norm", "IC23", "Normalised run length non-uniformity", normalised_run_length_non_uniformity),
    ("rlm.r.perc", "9ZK5", "Run percentage", run_percentage),
    ("rlm.gl.var", "8CE5", "Grey level variance", grey_level_variance),
    ("rlm.rl.var", "SXLW", "Run length variance", run_length_variance),
    ("rlm.rl.entr", "HJ9O", "Run entropy", run_entropy),
)
FEATURES: tuple[FeatureDef, ...] = tuple(FeatureDef(t, c, n) for t, c, n, _ in _TABLE)


def _features_of_matrices(r: np.ndarray, n_voxels: np.ndarray, grey_levels: np.ndarray) -> dict[str, np.ndarray]:
    """Every GLRLM feature of a batch of non-empty run length matrices ``(n, G, L)`` -> ``{tag: (n,)}``."""
    b = RunLengthBatch.of(r, n_voxels, grey_levels)
    return {tag: fn(b) for tag, _, _, fn in _TABLE}


def glrlm_features(levels: np.ndarray, n_levels: int, aggregations=AGGREGATIONS_3D) -> dict[str, float]:
    """All GLRLM features of a discretised ROI in the requested IBSI aggregation methods.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x)
        Grey levels ``1..n_levels`` inside the ROI (the intensity mask), 0 outside. Axis 0 is the
        slice axis of the 2D / 2.5D methods.
    n_levels : int
        Number of grey levels :math:`N_g`. Kept for the uniform family interface: no GLRLM feature
        depends on levels absent from the ROI.
    aggregations : sequence of str
        IBSI aggregation methods (keys of :data:`medfeat.features.base.AGGREGATIONS`).

    Returns
    -------
    dict
        ``{column name: value}`` for every feature and requested aggregation, e.g.
        ``rlm_sre_3d_avg``; NaN when the ROI is empty.
    """
    aggregations = check_aggregations(aggregations)
    padded, grey, n_voxels = _prepared(check_levels(levels))  # n_levels: no feature depends on it
    if grey.size == 0:
        return flatten({}, FEATURES, aggregations)

    def features(batch):  # batch: (matrices, voxel counts), merged alike
        return _features_of_matrices(batch[0], batch[1], grey)

    def build(three_d):
        return _matrices(padded, grey, n_voxels, three_d=three_d)

    return flatten(aggregate(aggregations, features, lambda: build(False), lambda: build(True)), FEATURES,
                   aggregations)
