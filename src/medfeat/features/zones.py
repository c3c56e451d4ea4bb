r"""Zones of equal grey level: what the GLSZM (IBSI 3.8) and GLDZM (IBSI 3.9) families share.

A *zone* is a connected group of ROI voxels (intensity mask) sharing one discretised grey level:
voxels are linked to their 26 neighbours in 3D and to their 8 in-plane neighbours in 2D (IBSI:
Chebyshev distance 1). A zone has a grey level :math:`i`, a *size* (its voxel count, GLSZM) and a
*distance* (GLDZM): the smallest distance of its voxels to the edge of the ROI. That distance is
measured in the *morphological* mask with 6-connectivity in 3D and in-plane 4-connectivity in 2D
(the Manhattan norm), counting a voxel on the edge as 1: it is the number of erosions by the
cross-shaped structuring element a voxel survives, plus 1 (IBSI's iterative definition), i.e. the
city-block distance to the nearest voxel outside the morphological mask or the image.

A zone matrix :math:`M` of either family counts in :math:`m_{ij}` the zones of grey level :math:`i`
and size (or distance) :math:`j`. With :math:`N_s = \sum_{ij} m_{ij}` the number of zones,
:math:`m_{i.} = \sum_j m_{ij}`, :math:`m_{.j} = \sum_i m_{ij}`, :math:`p_{ij} = m_{ij} / N_s` and
:math:`N_v` the number of voxels (summed over merged matrices) every feature of both families is one
of the generic forms below (:func:`emphasis`, :func:`grey_level_non_uniformity`, ...).

Aggregation (IBSI 3.8 / 3.9, "Aggregating features"): "2D" computes the features of each slice's
matrix (zones and distances found in that slice alone) and averages them over the slices holding
ROI voxels; "2.5D" merges the slices' matrices into one (summing :math:`N_v`); "3D" uses the matrix
of the volume's 3D zones. The six directional methods of GLCM/GLRLM map onto these three
(:func:`medfeat.features.base.undirected_aggregations`): zone matrices have no direction.

Implementation
--------------
Matrices are never stored densely (a 2D slice may hold a zone of thousands of voxels next to
hundreds of grey levels): one compiled pass (:mod:`numba`, ``cache=True``) labels the zones by
union-find over the ROI's padded bounding box, linking each voxel to the neighbours that precede it
in raster order (4 in-plane, or 13 in 3D) with the smaller index as root, so that a zone's root is
its first voxel; a second pass gives every zone its level, slice, size and (after a two-pass
city-block distance transform, exact for the Manhattan norm) smallest distance. The zone list is
then reduced to the occupied cells :math:`(matrix, i, j, m_{ij})` and every feature is a
``np.bincount`` over the cells. Labelling each grey level with ``scipy.ndimage.label`` costs one
pass over the box per level (about 100 for CT at 25 HU bins), 10 to 30 times slower.

References
----------
.. [1] Zwanenburg A., Vallieres M., et al. "The Image Biomarker Standardization Initiative:
       standardized quantitative radiomics for high-throughput image-based phenotyping."
       Radiology 295(2):328-338 (2020). doi:10.1148/radiol.2020191145. Reference manual
       (arXiv:1612.07003), sections 3.8 and 3.9.
.. [2] Thibault G., Angulo J., Meyer F. "Advanced statistical matrices for texture
       characterization: application to cell classification." IEEE Transactions on Biomedical
       Engineering 61(3):630-637 (2014). doi:10.1109/TBME.2013.2284600.
.. [3] Rosenfeld A., Pfaltz J.L. "Sequential operations in digital picture processing."
       Journal of the ACM 13(4):471-494 (1966) (two-pass city-block distance transform).
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from medfeat.features._levels import level_lut
from medfeat.features.aggregation import aggregate
from medfeat.features.base import (FeatureDef, check_levels, directions_2d, directions_3d, flatten,
                                   undirected_aggregations)

# --------------------------------------------------------------------------------------------
# Zones
# --------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True)
def _prepare(levels, morph, has_morph, need_inside):  # pragma: no cover - compiled
    """Crop to the bounding box of the ROI, index the levels present and pad with one voxel of outside.

    Returns ``(padded, inside, grey, n_voxels)``: the ``int32`` level index (``0..G-1``, ``-1``
    outside the intensity mask), the ``uint8`` morphological mask (1 inside it or inside the
    intensity mask), both with one voxel of outside on every side, the grey level of each index
    (float64, ascending) and the intensity-mask voxel count of each slice. An empty intensity mask
    gives ``grey.size == 0``. Without ``has_morph`` the mask is the intensity mask and ``morph`` is
    not read; without ``need_inside`` (no distances wanted) ``inside`` is a dummy.
    """
    nz, ny, nx = levels.shape
    z0, y0, x0, z1, y1, x1, top = nz, ny, nx, -1, -1, -1, 0
    for z in range(nz):
        for y in range(ny):
            first, last = -1, -1  # the row's first and last voxel in either mask
            for x in range(nx):
                v = levels[z, y, x]
                top = max(top, v)
                if v > 0 or (has_morph and morph[z, y, x]):
                    if first < 0:
                        first = x
                    last = x
            if first >= 0:
                z0 = min(z0, z)
                z1 = max(z1, z)
                y0 = min(y0, y)
                y1 = max(y1, y)
                x0 = min(x0, first)
                x1 = max(x1, last)
    if top <= 0:
        return np.full((1, 1, 1), -1, np.int32), np.zeros((1, 1, 1), np.uint8), np.zeros(0), np.zeros(0)
    present = np.zeros(top + 1, np.bool_)
    for z in range(z0, z1 + 1):
        for y in range(y0, y1 + 1):
            for x in range(x0, x1 + 1):
                v = levels[z, y, x]
                if v > 0:
                    present[v] = True
    lut, grey = level_lut(present, top)
    shape = (z1 - z0 + 3, y1 - y0 + 3, x1 - x0 + 3)
    padded = np.full(shape, -1, np.int32)
    inside = np.zeros(shape if need_inside else (1, 1, 1), np.uint8)
    n_voxels = np.zeros(z1 - z0 + 1)
    for z in range(z0, z1 + 1):
        count = 0  # in a register: a float64 += in memory per voxel costs ~6x this loop
        for y in range(y0, y1 + 1):
            for x in range(x0, x1 + 1):
                v = levels[z, y, x]
                if v > 0:
                    padded[z - z0 + 1, y - y0 + 1, x - x0 + 1] = lut[v]
                    count += 1
                if need_inside and (v > 0 or (has_morph and morph[z, y, x])):
                    inside[z - z0 + 1, y - y0 + 1, x - x0 + 1] = 1
        n_voxels[z - z0] = count
    return padded, inside, grey, n_voxels


@numba.njit(cache=True, nogil=True, inline="always")
def _find(parent, x):  # pragma: no cover - compiled
    """Root of ``x``'s tree (a root holds minus its zone's size), halving the path on the way."""
    while parent[x] >= 0:
        up = parent[x]
        if parent[up] < 0:
            return up
        parent[x] = parent[up]
        x = parent[up]
    return x


@numba.njit(cache=True, nogil=True)
def _city_block(inside, planar, dist):  # pragma: no cover - compiled
    """City-block distance of every voxel of ``inside`` to the nearest voxel outside it (edge voxels: 1).

    Two raster passes (forward, then backward), exact for the Manhattan norm; ``planar`` keeps the
    distance within each slice (in-plane 4-connectivity). The padding of ``inside`` is outside.
    ``dist`` (zeros, one per voxel of ``inside``, of a type that holds the sum of its dimensions)
    receives the distances, and is returned.
    """
    pz, py, px = inside.shape
    flat = inside.ravel()
    big = pz + py + px
    sy, sz = px, py * px
    for z in range(1, pz - 1):
        for y in range(1, py - 1):
            base = (z * py + y) * px
            for x in range(1, px - 1):
                p = base + x
                if flat[p]:
                    d = min(big, dist[p - 1] + 1, dist[p - sy] + 1)
                    if not planar:
                        d = min(d, dist[p - sz] + 1)
                    dist[p] = d
    for z in range(pz - 2, 0, -1):
        for y in range(py - 2, 0, -1):
            base = (z * py + y) * px
            for x in range(px - 2, 0, -1):
                p = base + x
                if flat[p]:
                    d = min(dist[p], dist[p + 1] + 1, dist[p + sy] + 1)
                    if not planar:
                        d = min(d, dist[p + sz] + 1)
                    dist[p] = d
    return dist


@numba.njit(cache=True, nogil=True)
def _label_zones(padded, inside, offsets, planar, with_distance, dist):  # pragma: no cover - compiled
    """Zones of the padded box: ``(level index, slice, size, distance)`` per zone, in raster order of
    their first voxel. ``offsets`` are the ``(dz, dy, dx)`` half-neighbourhood (positive directions);
    ``distance`` is 0 unless ``with_distance``.

    A voxel is linked to its earlier neighbours of the same level (``p - d``), the smaller root
    becoming the root, so a zone's root is its first voxel; a root's parent entry holds minus
    its zone's size. Two earlier neighbours adjacent to each
    other with the same level are already linked, so once a neighbour matched, those adjacent to it
    are skipped: neighbours are tried most-connected first (in 3D the voxel below, adjacent to all
    12 others, settles a uniform region with one look-up).
    """
    pz, py, px = padded.shape
    flat = padded.ravel()
    nd = offsets.shape[0]
    # neighbours, most adjacent first, and which of the others each one is adjacent to (bit mask)
    n_adj = np.zeros(nd, np.int64)
    adj = np.zeros(nd, np.int64)
    for a in range(nd):
        for b in range(nd):
            if a != b and max(abs(offsets[a, 0] - offsets[b, 0]), abs(offsets[a, 1] - offsets[b, 1]),
                              abs(offsets[a, 2] - offsets[b, 2])) <= 1:
                n_adj[a] += 1
    order = np.argsort(-n_adj, kind="mergesort")
    offs = np.empty(nd, np.int64)
    for k in range(nd):
        d = order[k]
        offs[k] = (offsets[d, 0] * py + offsets[d, 1]) * px + offsets[d, 2]
    for k in range(nd):
        for k2 in range(nd):
            a, b = order[k], order[k2]
            if k != k2 and max(abs(offsets[a, 0] - offsets[b, 0]), abs(offsets[a, 1] - offsets[b, 1]),
                               abs(offsets[a, 2] - offsets[b, 2])) <= 1:
                adj[k] |= np.int64(1) << k2
    # per voxel its parent; a root holds minus its zone's size so far (no separate size array:
    # the box can hold tens of millions of voxels), and (in dist, in place) its smallest distance
    parent = np.empty(flat.size, np.int32)
    if with_distance:
        _city_block(inside, planar, dist)
    n_sets = 0  # zones so far: +1 per voxel, -1 per link of two zones
    # pass 1: link every ROI voxel to the earlier neighbours with its level; roots = smallest index
    for z in range(1, pz - 1):
        for y in range(1, py - 1):
            base = (z * py + y) * px
            for x in range(1, px - 1):
                p = base + x
                a = flat[p]
                if a < 0:
                    continue
                root = p
                parent[p] = -1
                n_sets += 1
                covered = np.int64(0)
                for k in range(nd):
                    if (covered >> k) & 1:
                        continue
                    q = p - offs[k]
                    if flat[q] == a:
                        covered |= adj[k]
                        r = _find(parent, q)
                        if r != root:
                            keep, gone = (r, root) if r < root else (root, r)
                            parent[keep] += parent[gone]
                            parent[gone] = keep
                            if with_distance and dist[gone] < dist[keep]:
                                dist[keep] = dist[gone]
                            root = keep
                            n_sets -= 1
    # pass 2: the zones are the roots (each its zone's first voxel), in raster order
    level = np.empty(n_sets, np.int32)
    zslice = np.empty(n_sets, np.int32)
    size = np.empty(n_sets, np.int64)
    distance = np.zeros(n_sets, np.int32)
    n_zones = 0
    for z in range(1, pz - 1):
        for y in range(1, py - 1):
            base = (z * py + y) * px
            for x in range(1, px - 1):
                p = base + x
                if flat[p] >= 0 and parent[p] < 0:
                    level[n_zones] = flat[p]
                    zslice[n_zones] = z - 1
                    size[n_zones] = -parent[p]
                    if with_distance:
                        distance[n_zones] = dist[p]
                    n_zones += 1
    return level[:n_zones], zslice[:n_zones], size[:n_zones], distance[:n_zones]


def _prepared(levels: np.ndarray, morph_mask: np.ndarray | None, need_inside: bool = True):
    levels = check_levels(levels)
    if morph_mask is None:
        morph = np.zeros((1, 1, 1), np.uint8)  # the intensity mask alone: not read
    else:
        morph = np.asarray(morph_mask)
        if morph.ndim == 2:
            morph = morph[np.newaxis]
        if morph.shape != levels.shape:
            raise ValueError(f"morph_mask shape {morph.shape} differs from levels shape {levels.shape}")
        morph = np.ascontiguousarray(morph != 0, dtype=np.uint8)
    # one dtype and layout: a single compiled (and cached) specialisation serves every caller
    return _prepare(np.ascontiguousarray(levels, dtype=np.int32), morph, morph_mask is not None, need_inside)


def _zones_of_box(padded, inside, three_d: bool, distance: bool):
    offsets = directions_3d() if three_d else directions_2d()
    # distances fit 16 bits unless the box is absurdly long (they are at most its dimensions' sum)
    work = (np.zeros(padded.size, np.uint16 if sum(padded.shape) < 65535 else np.int32) if distance
            else np.zeros(1, np.uint16))
    return _label_zones(padded, inside, offsets, not three_d, distance, work)


def zones(levels: np.ndarray, three_d: bool = False, morph_mask: np.ndarray | None = None):
    """The zones of a discretised ROI.

    Parameters
    ----------
    levels : ndarray of int, shape (z, y, x) or (y, x)
        Grey levels ``>= 1`` inside the ROI (intensity mask), 0 outside.
    three_d : bool
        26-connected zones of the volume, instead of 8-connected zones of each slice.
    morph_mask : ndarray of bool, optional
        Morphological mask for the distances (default: the intensity mask ``levels > 0``).

    Returns
    -------
    dict of ndarray
        One entry per zone, in raster order of the zone's first voxel: ``level`` (grey level),
        ``slice`` (index of the slice of its first voxel within the ROI's bounding box), ``size``
        (voxels) and ``distance`` (smallest city-block distance of its voxels to the edge of the
        morphological mask, 1 on the edge; in-plane for 2D zones).
    """
    padded, inside, grey, n_voxels = _prepared(levels, morph_mask)
    if grey.size == 0:
        empty = np.zeros(0, np.int64)
        return {"level": empty.astype(np.float64), "slice": empty, "size": empty, "distance": empty}
    lv, sl, size, dist = _zones_of_box(padded, inside, three_d, True)
    return {"level": grey[lv], "slice": sl.astype(np.int64), "size": size, "distance": dist.astype(np.int64)}


# --------------------------------------------------------------------------------------------
# A batch of zone matrices, held as their occupied cells
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ZoneBatch:
    r"""A batch of ``n`` zone matrices (GLSZM or GLDZM), as occupied cells plus dense marginals.

    Attributes
    ----------
    m : ndarray of int, shape (C,)
        Matrix of each occupied cell.
    cell_i, cell_j : ndarray of float, shape (C,)
        Grey level :math:`i` and zone size / distance :math:`j` of each cell.
    count : ndarray of float, shape (C,)
        Zones in each cell, :math:`m_{ij}`.
    m_i : ndarray, shape (n, Ng)
        Zones per grey level :math:`m_{i.}`.
    m_j : ndarray, shape (n, Nj)
        Zones per size / distance :math:`m_{.j}`.
    i : ndarray, shape (Ng,)
        Grey levels present.
    j : ndarray, shape (Nj,)
        Sizes / distances present.
    n_s : ndarray, shape (n,)
        Number of zones :math:`N_s`.
    n_v : ndarray, shape (n,)
        Number of voxels :math:`N_v` (summed over merged matrices).
    """

    m: np.ndarray
    cell_i: np.ndarray
    cell_j: np.ndarray
    count: np.ndarray
    m_i: np.ndarray
    m_j: np.ndarray
    i: np.ndarray
    j: np.ndarray
    n_s: np.ndarray
    n_v: np.ndarray

    @classmethod
    def of(cls, matrix: np.ndarray, level_index: np.ndarray, j: np.ndarray, n: int, n_v: np.ndarray,
           grey_levels: np.ndarray) -> "ZoneBatch":
        """Batch of ``n`` matrices from a zone list: each zone's matrix, grey level index and size / distance."""
        g = grey_levels.size
        j = np.asarray(j, dtype=np.int64)
        lut = np.bincount(j)  # sizes / distances present -> compact index, O(zones + largest j)
        present = np.flatnonzero(lut)
        k = present.size
        lut[present] = np.arange(k)
        jk = lut[j]
        key = (np.asarray(matrix, dtype=np.int64) * g + level_index) * k + jk
        if n * g * k <= 8 * key.size + 65536:  # a dense count is cheaper than sorting the zones
            count = np.bincount(key, minlength=n * g * k)
            cells = np.flatnonzero(count)
            count = count[cells]
        else:
            cells, count = np.unique(key, return_counts=True)
        cm, rest = np.divmod(cells, g * k)
        ci, cj = np.divmod(rest, k)
        count = count.astype(np.float64)
        m_i = np.bincount(cm * g + ci, weights=count, minlength=n * g).reshape(n, g)
        m_j = np.bincount(cm * k + cj, weights=count, minlength=n * k).reshape(n, k)
        return cls(m=cm, cell_i=grey_levels[ci], cell_j=present[cj].astype(np.float64), count=count, m_i=m_i,
                   m_j=m_j, i=np.asarray(grey_levels, dtype=np.float64), j=present.astype(np.float64),
                   n_s=m_i.sum(axis=1), n_v=np.asarray(n_v, dtype=np.float64))


def emphasis_j(b: ZoneBatch, power: float) -> np.ndarray:
    r""":math:`\frac{1}{N_s}\sum_j j^{power}\, m_{.j}`: small (``power=-2``) or large (``2``) zone emphasis."""
    return b.m_j @ b.j**power / b.n_s


def emphasis_i(b: ZoneBatch, power: float) -> np.ndarray:
    r""":math:`\frac{1}{N_s}\sum_i i^{power}\, m_{i.}`: low (``power=-2``) or high (``2``) grey level emphasis."""
    return b.m_i @ b.i**power / b.n_s


def emphasis_ij(b: ZoneBatch, power_i: float, power_j: float) -> np.ndarray:
    r""":math:`\frac{1}{N_s}\sum_{ij} i^{power_i} j^{power_j}\, m_{ij}`: the four joint emphases."""
    w = b.count * b.cell_i**power_i * b.cell_j**power_j
    return np.bincount(b.m, weights=w, minlength=b.n_s.size) / b.n_s


def non_uniformity_i(b: ZoneBatch, normalised: bool) -> np.ndarray:
    r""":math:`\frac{1}{N_s}\sum_i m_{i.}^2`, or divided by :math:`N_s^2` when ``normalised``."""
    return np.einsum("ni,ni->n", b.m_i, b.m_i) / (b.n_s**2 if normalised else b.n_s)


def non_uniformity_j(b: ZoneBatch, normalised: bool) -> np.ndarray:
    r""":math:`\frac{1}{N_s}\sum_j m_{.j}^2`, or divided by :math:`N_s^2` when ``normalised``."""
    return np.einsum("nj,nj->n", b.m_j, b.m_j) / (b.n_s**2 if normalised else b.n_s)


def percentage(b: ZoneBatch) -> np.ndarray:
    r""":math:`N_s / N_v`."""
    return b.n_s / b.n_v


def variance_i(b: ZoneBatch) -> np.ndarray:
    r""":math:`\sum_{ij}(i-\mu)^2 p_{ij}` with :math:`\mu = \sum_{ij} i\,p_{ij}`."""
    p = b.m_i / b.n_s[:, None]
    mu = p @ b.i
    return np.einsum("ni,ni->n", p, (b.i[None, :] - mu[:, None]) ** 2)


def variance_j(b: ZoneBatch) -> np.ndarray:
    r""":math:`\sum_{ij}(j-\mu)^2 p_{ij}` with :math:`\mu = \sum_{ij} j\,p_{ij}`."""
    p = b.m_j / b.n_s[:, None]
    mu = p @ b.j
    return np.einsum("nj,nj->n", p, (b.j[None, :] - mu[:, None]) ** 2)


def entropy(b: ZoneBatch) -> np.ndarray:
    r""":math:`-\sum_{ij} p_{ij}\log_2 p_{ij}` over the occupied cells."""
    p = b.count / b.n_s[b.m]
    return 0.0 - np.bincount(b.m, weights=p * np.log2(p), minlength=b.n_s.size)  # 0.0 - x: never -0.0


# --------------------------------------------------------------------------------------------
# A family's features in the requested aggregation methods
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ZoneList:
    """Zone matrices as a stack of :func:`medfeat.features.aggregation.aggregate`, kept as zone lists.

    Per zone: ``level`` (grey level index), ``j`` (size or distance) and ``matrix`` (the matrix
    it counts in: its slice for 2D zones, 0 for 3D zones); ``n_voxels`` holds the ROI voxels of
    each matrix. Zones have no direction: the stack's leading axes are ``(1, slices)`` for 2D
    zones and ``(1,)`` for 3D zones.
    """

    level: np.ndarray
    j: np.ndarray
    matrix: np.ndarray
    n_voxels: np.ndarray


def merge_zones(stack: ZoneList, axes: tuple[int, ...], lead: int) -> tuple[ZoneList, int]:
    """``merge`` of :func:`medfeat.features.aggregation.aggregate` for :class:`ZoneList` stacks.

    Merging the slice axis of 2D zones puts every zone in one matrix (voxel counts summed); the
    direction axis has a single element. Matrices without a zone (slices without ROI voxels) are
    left out, the others renumbered ``0..n-1``.
    """
    if lead == 2 and 1 in axes:
        stack = ZoneList(stack.level, stack.j, np.zeros(stack.level.size, np.int64), np.array([stack.n_voxels.sum()]))
    keep = np.bincount(stack.matrix, minlength=stack.n_voxels.size) > 0
    index = np.cumsum(keep) - 1
    return ZoneList(stack.level, stack.j, index[stack.matrix], stack.n_voxels[keep]), int(keep.sum())


def zone_family_features(table, levels: np.ndarray, aggregations, measure: str,
                         morph_mask: np.ndarray | None = None) -> dict[str, float]:
    """Features ``table`` (rows ``(tag, code, name, fn)``, ``fn(ZoneBatch) -> (n,)``) of the zone
    matrices of ``levels`` in the IBSI methods asked for (``{column: value}``, see
    :func:`medfeat.features.base.undirected_aggregations`), aggregated by
    :func:`medfeat.features.aggregation.aggregate` (zone lists merged by :func:`merge_zones`).
    ``measure``: ``"size"`` (GLSZM) or ``"distance"`` (GLDZM). Features of a family without any zone are NaN."""
    aggs = undirected_aggregations(aggregations)
    features = tuple(FeatureDef(t, c, n) for t, c, n, _ in table)
    with_distance = measure == "distance"
    padded, inside, grey, n_voxels = _prepared(levels, morph_mask if with_distance else None, with_distance)
    if grey.size == 0:
        return flatten({}, features, aggs)

    def build(three_d):
        lv, sl, size, dist = _zones_of_box(padded, inside, three_d, with_distance)
        j = dist if with_distance else size
        if three_d:
            return ZoneList(lv, j, np.zeros(lv.size, np.int64), np.array([n_voxels.sum()]))
        return ZoneList(lv, j, sl, n_voxels)

    def of_batch(b: ZoneList):
        batch = ZoneBatch.of(b.matrix, b.level, b.j, b.n_voxels.size, b.n_voxels, grey)
        return {tag: fn(batch) for tag, _, _, fn in table}

    out = aggregate(aggs, of_batch, lambda: build(False), lambda: build(True), merge=merge_zones)
    return flatten(out, features, aggs)
