"""Compiled sliding-window kernels behind :mod:`medfeat.maps` (voxel feature maps).

A window (a cube of side ``2R+1``, or a square of side ``2R+1`` in one slice) slides along every
row (z, y) of the map's centre voxels, from the row's first centre to its last, one voxel at a
time: at each step the plane of voxels leaving the window is taken out of its state and the plane
entering it is put in, so that a window is never counted from scratch (only the first of each row
is grown, plane by plane; rows without a centre are skipped). The state is

* a histogram of the window's grey levels (compact indices ``0..G-1`` of the levels present in the
  discretised ROI) and the sorted list of the levels present in it (``ih``, ``glcm``);
* a histogram of the window's intensities (ranks among the ROI's distinct intensities) and the
  sorted list of those present (``stat``);
* symmetric co-occurrence counts, one ``S x S`` matrix per 3D direction (13) and, when a 2D method
  is asked for, one per (slice of the window, in-plane direction); ``S`` is the most grey levels a
  window can hold (``min(G, window voxels)``): a level entering the window takes a free slot, and
  gives it back when its last voxel leaves (its rows and columns are zero again by then). Pairs are
  counted with both voxels inside the window and both usable, as in the matrices of the window's
  sub-volume; a plane's pairs are those with at least one voxel in it.

At every centre voxel the features are computed from that state, over the levels (intensities)
present in the window only: ``O(levels present^2)`` per GLCM, ``O(levels present)`` for the
first-order families. The formulas, and the order of the columns, are those of
:mod:`medfeat.features.intensity_statistics`, :mod:`medfeat.features.intensity_histogram` and
:mod:`medfeat.features.glcm` (same degenerate-case rules), so a map value equals the family's value
of the window's sub-volume to rounding (summation order).
"""
from __future__ import annotations

import itertools
import math

import numba
import numpy as np

from medfeat.features.base import AGGREGATIONS

N_STAT, N_IH, N_GLCM = 18, 23, 25
# IBSI aggregation methods, in the order of medfeat.features.base.AGGREGATIONS
AGG_ORDER = tuple(AGGREGATIONS)
STAT_QUANTILES = np.true_divide(np.array([10, 25, 50, 75, 90]), 100)  # numpy.percentile's quantiles (stat)
IH_QUANTILES = np.array([10, 25, 50, 75, 90], dtype=np.float64) / 100.0  # the histogram's (ih)


def offsets(directions: np.ndarray):
    """The 26 signed neighbour offsets, the index of each one's direction in ``directions`` (13,
    one of each +/- pair), whether it is that direction (not its opposite), and, per direction,
    its index among the in-plane directions (``dz == 0``; -1 for the others)."""
    dirs = [tuple(int(v) for v in d) for d in directions]
    offs, odir, opos = [], [], []
    for e in itertools.product((-1, 0, 1), repeat=3):
        if e == (0, 0, 0):
            continue
        neg = tuple(-v for v in e)
        if e in dirs:
            offs.append(e), odir.append(dirs.index(e)), opos.append(True)
        else:
            offs.append(e), odir.append(dirs.index(neg)), opos.append(False)
    inpl, k = [], 0
    for d in dirs:
        if d[0] == 0:
            inpl.append(k)
            k += 1
        else:
            inpl.append(-1)
    return (np.array(offs, np.int64), np.array(odir, np.int64), np.array(opos, np.bool_),
            np.array(inpl, np.int64))


# ----------------------------------------------------------------------------- sorted sets

@numba.njit(cache=True, nogil=True, inline="always")
def _insert(arr, n, v):  # pragma: no cover - compiled
    """Insert ``v`` into the ascending ``arr[:n]``."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if arr[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    for k in range(n, lo, -1):
        arr[k] = arr[k - 1]
    arr[lo] = v


@numba.njit(cache=True, nogil=True, inline="always")
def _delete(arr, n, v):  # pragma: no cover - compiled
    """Remove ``v`` (present) from the ascending ``arr[:n]``."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) >> 1
        if arr[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    for k in range(lo, n - 1):
        arr[k] = arr[k + 1]


# ----------------------------------------------------------------------------- window state
# cnt (int64[4]): voxels in the window, grey levels present, intensities present, free slots

@numba.njit(cache=True, nogil=True, inline="always")
def _voxel(z, y, x, sign, gidx, uidx, cnt, hist_g, pres_g, slot_of, free, hist_u, pres_u,
           need_grey, want_stat, want_glcm):  # pragma: no cover - compiled
    cnt[0] += sign
    if need_grey:
        g = gidx[z, y, x]
        if sign > 0:
            if hist_g[g] == 0:
                _insert(pres_g, cnt[1], g)
                cnt[1] += 1
                if want_glcm:
                    cnt[3] -= 1
                    slot_of[g] = free[cnt[3]]
            hist_g[g] += 1
        else:
            hist_g[g] -= 1
            if hist_g[g] == 0:
                _delete(pres_g, cnt[1], g)
                cnt[1] -= 1
                if want_glcm:
                    free[cnt[3]] = slot_of[g]
                    cnt[3] += 1
                    slot_of[g] = -1
    if want_stat:
        u = uidx[z, y, x]
        if sign > 0:
            if hist_u[u] == 0:
                _insert(pres_u, cnt[2], u)
                cnt[2] += 1
            hist_u[u] += 1
        else:
            hist_u[u] -= 1
            if hist_u[u] == 0:
                _delete(pres_u, cnt[2], u)
                cnt[2] -= 1


@numba.njit(cache=True, nogil=True, inline="always")
def _plane(axis, c, sign, win, usable, gidx, uidx, cnt, hist_g, pres_g, slot_of, free, hist_u, pres_u,
           need_grey, want_stat, want_glcm, offs, odir, opos, inpl, dist, cm, tot, want2d,
           ring):  # pragma: no cover - compiled
    """Put the window's plane ``axis = c`` in (``sign`` 1) or take it out (-1), with the window
    ``win`` as it is with the plane in it."""
    lo0, hi0 = win[0, 0], win[0, 1]
    lo1, hi1 = win[1, 0], win[1, 1]
    lo2, hi2 = win[2, 0], win[2, 1]
    if axis == 0:
        lo0, hi0 = c, c
    elif axis == 1:
        lo1, hi1 = c, c
    else:
        lo2, hi2 = c, c
    if sign > 0:  # voxels first: their levels need slots before their pairs are counted
        for z in range(lo0, hi0 + 1):
            for y in range(lo1, hi1 + 1):
                for x in range(lo2, hi2 + 1):
                    if usable[z, y, x]:
                        _voxel(z, y, x, 1, gidx, uidx, cnt, hist_g, pres_g, slot_of, free, hist_u, pres_u,
                               need_grey, want_stat, want_glcm)
    if want_glcm:
        # the offsets that can stay in the window: none that leave it across the plane's axis, and
        # of the in-plane ones only one of each +/- pair (a pair in the plane is counted once)
        es = np.empty(offs.shape[0], np.int64)
        ne = 0
        for e in range(offs.shape[0]):
            qc = c + dist * offs[e, axis]
            if offs[e, axis] == 0 and not opos[e]:
                continue
            if qc < win[axis, 0] or qc > win[axis, 1]:
                continue
            es[ne] = e
            ne += 1
        for z in range(lo0, hi0 + 1):
            for y in range(lo1, hi1 + 1):
                for x in range(lo2, hi2 + 1):
                    if not usable[z, y, x]:
                        continue
                    a = slot_of[gidx[z, y, x]]
                    for ie in range(ne):
                        e = es[ie]
                        qz = z + dist * offs[e, 0]
                        qy = y + dist * offs[e, 1]
                        qx = x + dist * offs[e, 2]
                        if (qz < win[0, 0] or qz > win[0, 1] or qy < win[1, 0] or qy > win[1, 1]
                                or qx < win[2, 0] or qx > win[2, 1]):
                            continue
                        if not usable[qz, qy, qx]:
                            continue
                        b = slot_of[gidx[qz, qy, qx]]
                        d = odir[e]
                        cm[d, a, b] += sign
                        cm[d, b, a] += sign
                        tot[d] += 2 * sign
                        if want2d and inpl[d] >= 0:  # the window's slice z, in-plane direction inpl[d]
                            k = tot.size - 4 * ring + 4 * (z % ring) + inpl[d]
                            cm[k, a, b] += sign
                            cm[k, b, a] += sign
                            tot[k] += 2 * sign
    if sign < 0:
        for z in range(lo0, hi0 + 1):
            for y in range(lo1, hi1 + 1):
                for x in range(lo2, hi2 + 1):
                    if usable[z, y, x]:
                        _voxel(z, y, x, -1, gidx, uidx, cnt, hist_g, pres_g, slot_of, free, hist_u, pres_u,
                               need_grey, want_stat, want_glcm)


# ----------------------------------------------------------------------------- features

@numba.njit(cache=True, nogil=True, inline="always")
def _order_stat(pres, npres, hist, rank):  # pragma: no cover - compiled
    """Index (into ``pres``) of the 0-based order statistic ``rank`` of the window's histogram."""
    below = 0
    for k in range(npres):
        below += hist[pres[k]]
        if below > rank:
            return k
    return npres - 1


@numba.njit(cache=True, nogil=True)
def _stat(pres, npres, hist, vals, n, q, out):  # pragma: no cover - compiled
    """The 18 intensity statistics (intensity_statistics._TABLE order) of the window's intensities."""
    s = 0.0
    for k in range(npres):
        u = pres[k]
        s += hist[u] * vals[u]
    mean = s / n
    m2 = m3 = m4 = sos = 0.0
    for k in range(npres):
        u = pres[k]
        c = hist[u]
        v = vals[u]
        d = v - mean
        d2 = d * d
        m2 += c * d2
        m3 += c * (d2 * d)
        m4 += c * (d2 * d2)
        sos += c * (v * v)
    m2 /= n
    m3 /= n
    m4 /= n
    pct = np.empty(5)
    for t in range(5):  # numpy.percentile, linear interpolation, as its _lerp computes it
        virtual = (n - 1) * q[t]
        if virtual >= n - 1:
            pct[t] = vals[pres[npres - 1]]
            continue
        prev = math.floor(virtual)
        gamma = virtual - prev
        a = vals[pres[_order_stat(pres, npres, hist, prev)]]
        b = vals[pres[_order_stat(pres, npres, hist, prev + 1)]]
        diff = b - a
        if gamma >= 0.5:
            pct[t] = b - diff * (1 - gamma)
        else:
            pct[t] = a + diff * gamma
    p10, p25, p50, p75, p90 = pct[0], pct[1], pct[2], pct[3], pct[4]
    vmin = vals[pres[0]]
    vmax = vals[pres[npres - 1]]
    mad = medad = 0.0
    kin = 0
    sin = 0.0
    for k in range(npres):
        u = pres[k]
        c = hist[u]
        v = vals[u]
        mad += c * abs(v - mean)
        medad += c * abs(v - p50)
        if v >= p10 and v <= p90:
            kin += c
            sin += c * v
    rmad = np.nan  # two distinct values: none lies within [P10, P90]
    if kin > 0:
        centre = sin / kin
        rmad = 0.0
        for k in range(npres):
            u = pres[k]
            v = vals[u]
            if v >= p10 and v <= p90:
                rmad += hist[u] * abs(v - centre)
        rmad /= kin
    out[0] = mean
    out[1] = m2
    out[2] = 0.0 if m2 == 0 else m3 / m2**1.5
    out[3] = 0.0 if m2 == 0 else m4 / m2**2 - 3.0
    out[4] = p50
    out[5] = vmin
    out[6] = p10
    out[7] = p90
    out[8] = vmax
    out[9] = p75 - p25
    out[10] = vmax - vmin
    out[11] = mad / n
    out[12] = rmad
    out[13] = medad / n
    out[14] = math.sqrt(m2) / mean if mean != 0 else np.nan
    den = p75 + p25
    out[15] = (p75 - p25) / den if den != 0 else np.nan
    out[16] = sos
    out[17] = math.sqrt(sos / n)


@numba.njit(cache=True, nogil=True, inline="always")
def _level_count(level, lvl2idx, hist):  # pragma: no cover - compiled
    g = lvl2idx[level]
    return hist[g] if g >= 0 else 0


@numba.njit(cache=True, nogil=True)
def _grad(i, top, lvl2idx, hist):  # pragma: no cover - compiled
    """numpy.gradient of the histogram H(1..top) at level ``i``."""
    if top == 1:
        return 0.0
    if i == 1:
        return float(_level_count(2, lvl2idx, hist) - _level_count(1, lvl2idx, hist))
    if i == top:
        return float(_level_count(top, lvl2idx, hist) - _level_count(top - 1, lvl2idx, hist))
    return (_level_count(i + 1, lvl2idx, hist) - _level_count(i - 1, lvl2idx, hist)) / 2.0


@numba.njit(cache=True, nogil=True)
def _ih(pres, npres, hist, glev, n, top, lvl2idx, ks, out):  # pragma: no cover - compiled
    """The 23 intensity histogram features (intensity_histogram._TABLE order) of the window's grey
    levels; ``top`` is the histogram's last level (the ROI's number of levels)."""
    mean = 0.0
    for k in range(npres):
        g = pres[k]
        mean += (hist[g] / n) * glev[g]
    m2 = m3 = m4 = 0.0
    for k in range(npres):
        g = pres[k]
        w = hist[g] / n
        d = glev[g] - mean
        m2 += w * (d * d)
        m3 += w * (d * d * d)
        m4 += w * (d * d * d * d)
    pct = np.empty(5)
    for t in range(5):
        pos = ks[t] * (n - 1)
        lo = math.floor(pos)
        a = glev[pres[_order_stat(pres, npres, hist, lo)]]
        b = glev[pres[_order_stat(pres, npres, hist, min(lo + 1, n - 1))]]
        pct[t] = a + (pos - lo) * (b - a)
    p10, p25, p50, p75, p90 = pct[0], pct[1], pct[2], pct[3], pct[4]
    vmin = glev[pres[0]]
    vmax = glev[pres[npres - 1]]
    # mode: the most frequent level, the one closest to the mean on ties (then the lowest)
    best = -1
    mode = 0.0
    for k in range(npres):
        g = pres[k]
        if hist[g] > best or (hist[g] == best and abs(glev[g] - mean) < abs(mode - mean)):
            best = hist[g]
            mode = glev[g]
    mad = medad = ent = unif = 0.0
    hin = 0
    sin = 0.0
    for k in range(npres):
        g = pres[k]
        h = hist[g]
        v = glev[g]
        w = h / n
        mad += w * abs(v - mean)
        medad += w * abs(v - p50)
        ent -= w * math.log2(w)
        unif += w * w
        if v >= p10 and v <= p90:
            hin += h
            sin += h * v
    rmad = np.nan
    if hin > 0:
        mu = sin / hin
        rmad = 0.0
        for k in range(npres):
            g = pres[k]
            v = glev[g]
            if v >= p10 and v <= p90:
                rmad += hist[g] * abs(v - mu)
        rmad /= hin
    # histogram gradient over the levels 1..top: zero away from the levels present, so only the
    # levels next to them, and the first zero before and after them, are candidates
    lo_l = int(vmin)
    hi_l = int(vmax)
    gmax = -np.inf
    gmin = np.inf
    lmax = lmin = 1
    if top == 1:
        gmax = gmin = 0.0
    else:
        r0 = max(1, lo_l - 1)
        r1 = min(top, hi_l + 1)
        if r0 > 1:
            gmax = gmin = 0.0
            lmax = lmin = 1
        for i in range(r0, r1 + 1):
            gv = _grad(i, top, lvl2idx, hist)
            if gv > gmax:
                gmax = gv
                lmax = i
            if gv < gmin:
                gmin = gv
                lmin = i
        if r1 < top:
            if 0.0 > gmax:
                gmax = 0.0
                lmax = r1 + 1
            if 0.0 < gmin:
                gmin = 0.0
                lmin = r1 + 1
    out[0] = mean
    out[1] = m2
    out[2] = 0.0 if m2 == 0 else m3 / m2**1.5
    out[3] = 0.0 if m2 == 0 else m4 / m2**2 - 3.0
    out[4] = p50
    out[5] = vmin
    out[6] = p10
    out[7] = p90
    out[8] = vmax
    out[9] = mode
    out[10] = p75 - p25
    out[11] = vmax - vmin
    out[12] = mad
    out[13] = rmad
    out[14] = medad
    out[15] = math.sqrt(m2) / mean if mean != 0 else np.nan
    den = p75 + p25
    out[16] = (p75 - p25) / den if den != 0 else np.nan
    out[17] = ent
    out[18] = unif
    out[19] = gmax
    out[20] = float(lmax)
    out[21] = gmin
    out[22] = float(lmin)


@numba.njit(cache=True, nogil=True, inline="always")
def _glcm25(m, npres, gv, tot, n_levels, lg, wd, rc, pd, ps, out):  # pragma: no cover - compiled
    """The 25 GLCM features (glcm._TABLE order) of the symmetric counts ``m[:npres, :npres]`` over
    the levels ``gv`` (ascending) with ``tot`` pairs.

    Everything is summed as integer counts and divided by ``tot`` once; an entropy ``-sum p log2 p``
    is ``sum c (log2 T - log2 c) / T`` with ``lg[c] = log2(c)`` from a table (exactly 0 for a
    single cell). ``wd`` (5, levels) holds the difference weights
    ``1/(1+k)``, ``1/(1+k/N_g)``, ``1/(1+k^2)``, ``1/(1+k^2/N_g^2)``, ``1/k^2``; ``rc``, ``pd``,
    ``ps`` are integer scratch (``pd``, ``ps`` zeroed, and left zeroed).
    """
    inv = 1.0 / tot
    lt = lg[tot]
    lo = gv[0]
    ilo = int(lo)
    span = int(gv[npres - 1]) - ilo + 1
    jmax = 0
    hxy = 0.0
    energy = 0.0
    auto = 0.0
    for a in range(npres):
        row = 0
        rowg = 0.0
        ia = int(gv[a]) - ilo
        for b in range(npres):
            c = m[a, b]
            if c != 0:
                row += c
                rowg += c * gv[b]
                if c > jmax:
                    jmax = c
                hxy += c * (lt - lg[c])
                energy += float(c * c)
                ib = int(gv[b]) - ilo
                pd[abs(ia - ib)] += c
                ps[ia + ib] += c
        rc[a] = row
        auto += rowg * gv[a]
    auto *= inv
    mu = 0.0
    hx = 0.0
    for a in range(npres):
        mu += rc[a] * gv[a]
        if rc[a] > 0:
            hx += rc[a] * (lt - lg[rc[a]])
    mu *= inv
    hx *= inv
    var = 0.0
    for a in range(npres):
        d = gv[a] - mu
        var += rc[a] * (d * d)
    var *= inv
    sd = math.sqrt(var)
    davg = dent = contrast = idf = idn = idm = idmn = ivar = 0.0
    for k in range(span):
        c = pd[k]
        if c != 0:
            kf = float(k)
            davg += kf * c
            dent += c * (lt - lg[c])
            contrast += kf * kf * c
            idf += c * wd[0, k]
            idn += c * wd[1, k]
            idm += c * wd[2, k]
            idmn += c * wd[3, k]
            ivar += c * wd[4, k]
    davg *= inv
    dvar = 0.0
    for k in range(span):
        c = pd[k]
        if c != 0:
            d = k - davg
            dvar += c * (d * d)
            pd[k] = 0
    savg = sent = 0.0
    base = 2.0 * lo
    for k in range(2 * span - 1):
        c = ps[k]
        if c != 0:
            savg += (k + base) * c
            sent += c * (lt - lg[c])
    savg *= inv
    svar = tend = shade = prom = 0.0
    two_mu = mu + mu
    for k in range(2 * span - 1):
        c = ps[k]
        if c != 0:
            kv = k + base
            d = kv - savg
            p = c * inv
            svar += p * (d * d)
            dev = kv - two_mu
            w1 = p * dev
            w2 = w1 * dev
            w3 = w2 * dev
            tend += w2
            shade += w3
            prom += w3 * dev
            ps[k] = 0
    hxy *= inv
    den = sd * sd
    out[0] = jmax * inv
    out[1] = mu
    out[2] = sd * sd
    out[3] = hxy
    out[4] = davg
    out[5] = dvar * inv
    out[6] = dent * inv
    out[7] = savg
    out[8] = svar
    out[9] = sent * inv
    out[10] = energy * inv * inv
    out[11] = contrast * inv
    out[12] = davg
    out[13] = idf * inv
    out[14] = idn * inv
    out[15] = idm * inv
    out[16] = idmn * inv
    out[17] = ivar * inv
    out[18] = (auto - mu * mu) / den if den > 1e-12 * (1.0 + mu * mu) else 1.0
    out[19] = auto
    out[20] = tend
    out[21] = shade
    out[22] = prom
    out[23] = (hxy - (hx + hx)) / hx if hx > 0 else 0.0
    out[24] = math.sqrt(max(1.0 - math.exp(-2.0 * ((hx + hx) - hxy)), 0.0))


def difference_weights(n_levels: int, top: int) -> np.ndarray:
    """``(5, top + 1)``: the weights of :math:`p_{i-j,k}` in the inverse difference (normalised),
    inverse difference moment (normalised) and inverse variance, for ``k = 0..top``."""
    k = np.arange(top + 1, dtype=np.float64)
    ng = float(max(n_levels, 1))
    w = np.empty((5, top + 1))
    w[0] = 1.0 / (1.0 + k)
    w[1] = 1.0 / (1.0 + k / ng)
    w[2] = 1.0 / (1.0 + k**2)
    w[3] = 1.0 / (1.0 + k**2 / ng**2)
    w[4, 0] = 0.0
    w[4, 1:] = 1.0 / k[1:] ** 2
    return w


@numba.njit(cache=True, nogil=True, inline="always")
def _fill(m, src, sl, npres, add):  # pragma: no cover - compiled
    """``m[a, b] (+)= src[sl[a], sl[b]]`` over the window's levels."""
    for a in range(npres):
        sa = sl[a]
        for b in range(npres):
            if add:
                m[a, b] += src[sa, sl[b]]
            else:
                m[a, b] = src[sa, sl[b]]


@numba.njit(cache=True, nogil=True)
def _glcm_centre(offs_agg, agg_ptr, group_ptr, members, row, out, cnt, tot, pres, npres, slot_of, glev, n_levels,
                 m, sl, gv, lg, wd, rc, pd, ps, vals, acc):  # pragma: no cover - compiled
    """Every requested GLCM aggregation of the window: the mean of the features of its groups of
    matrices (each group's matrices merged), over the groups with a pair."""
    for k in range(npres):
        sl[k] = slot_of[pres[k]]
        gv[k] = glev[pres[k]]
    for ag in range(offs_agg.size):
        o = offs_agg[ag]
        if o < 0:
            continue
        acc[:] = 0.0
        n = 0
        for g in range(agg_ptr[ag], agg_ptr[ag + 1]):
            t = 0
            for j in range(group_ptr[g], group_ptr[g + 1]):
                t += tot[members[j]]
            if t == 0:
                continue
            first = True
            for j in range(group_ptr[g], group_ptr[g + 1]):
                if tot[members[j]] > 0:
                    _fill(m, cnt[members[j]], sl, npres, not first)
                    first = False
            _glcm25(m, npres, gv, t, n_levels, lg, wd, rc, pd, ps, vals)
            acc += vals
            n += 1
        for f in range(25):
            out[row, o + f] = acc[f] / n if n > 0 else np.nan


def aggregation_groups(inplane: np.ndarray, ring: int):
    """The matrices of each IBSI aggregation method (:data:`AGG_ORDER`) as groups to merge, in CSR
    form ``(agg_ptr, group_ptr, members)``. Matrix ``d < 13`` is 3D direction ``d`` over the window,
    matrix ``13 + 4 w + k`` in-plane direction ``k`` in the window's slice ``w`` (mod ``ring``)."""
    nd = inplane.size
    flat = [d for d in range(nd) if inplane[d] >= 0]
    per_slice = [[nd + 4 * w + k for k in range(4)] for w in range(ring)]
    groups_of = (
        [[m] for ms in per_slice for m in ms],  # 2D, averaged
        per_slice,  # 2D, slice-merged
        [[d] for d in flat],  # 2.5D, direction-merged
        [flat],  # 2.5D, merged
        [[d] for d in range(nd)],  # 3D, averaged
        [list(range(nd))],  # 3D, merged
    )
    agg_ptr, group_ptr, members = [0], [0], []
    for groups in groups_of:
        for g in groups:
            members.extend(g)
            group_ptr.append(len(members))
        agg_ptr.append(len(group_ptr) - 1)
    return np.array(agg_ptr, np.int64), np.array(group_ptr, np.int64), np.array(members, np.int64)


# ----------------------------------------------------------------------------- the sweep

@numba.njit(cache=True, nogil=True)
def _reset(cnt, hist_g, pres_g, slot_of, free, hist_u, pres_u, cm, tot, want_glcm, want_stat):  # pragma: no cover
    """Empty the window's state (only what the window holds is cleared)."""
    npres = cnt[1]
    if want_glcm:
        for k in range(npres):
            a = slot_of[pres_g[k]]
            for k2 in range(npres):
                b = slot_of[pres_g[k2]]
                for d in range(cm.shape[0]):
                    cm[d, a, b] = 0
        for k in range(npres):
            slot_of[pres_g[k]] = -1
        tot[:] = 0
        S = free.size
        for k in range(S):
            free[k] = S - 1 - k
        cnt[3] = S
    for k in range(npres):
        hist_g[pres_g[k]] = 0
    cnt[1] = 0
    if want_stat:
        for k in range(cnt[2]):
            hist_u[pres_u[k]] = 0
    cnt[2] = 0
    cnt[0] = 0


@numba.njit(cache=True, nogil=True)
def sweep(usable, gidx, uidx, rows, box, row_lo, row_hi, radii, dist, offs, odir, opos, inpl, glev, uvals,
          n_levels, lvl2idx, want_stat, want_ih, off_stat, off_ih, offs_agg, agg_ptr, group_ptr, members, lg, wd, q, ks,
          out):  # pragma: no cover - compiled
    """Slide the window along every row of ``box`` (int64[3, 2], inclusive bounds of the centres),
    from the row's first centre ``row_lo[z, y]`` (-1: none) to its last ``row_hi[z, y]`` (relative
    to the box in z and y, absolute in x) and write, for every voxel with ``rows[z, y, x] >= 0``,
    its features into ``out[rows[z, y, x]]``.

    ``usable`` marks the voxels a window may count; ``gidx`` their compact grey level index
    (``glev`` the level of each, ``lvl2idx`` the inverse: level -> index or -1), ``uidx`` their
    intensity's rank among ``uvals``. ``radii`` (z, y, x) is the window's half size.
    """
    shape = np.array(usable.shape, np.int64)
    G = glev.size
    U = uvals.size
    kvox = (2 * radii[0] + 1) * (2 * radii[1] + 1) * (2 * radii[2] + 1)
    want_glcm = False
    for a in range(offs_agg.size):
        want_glcm = want_glcm or offs_agg[a] >= 0
    want2d = offs_agg[0] >= 0 or offs_agg[1] >= 0
    need_grey = want_ih or want_glcm
    S = max(1, min(G, kvox))
    ring = 2 * radii[0] + 1
    cnt = np.zeros(4, np.int64)
    hist_g = np.zeros(max(G, 1), np.int64)
    pres_g = np.zeros(max(G, 1) + 1, np.int64)
    slot_of = np.full(max(G, 1), -1, np.int64)
    free = np.arange(S)[::-1].copy()
    hist_u = np.zeros(max(U, 1), np.int64)
    pres_u = np.zeros(max(1, min(U, kvox)) + 1, np.int64)
    nmat = odir.max() + 1 + (4 * ring if want2d else 0)
    cm = np.zeros((nmat, S, S) if want_glcm else (nmat, 1, 1), np.int64)
    tot = np.zeros(nmat, np.int64)
    # feature scratch
    m = np.zeros((S, S), np.int64)
    sl = np.zeros(S, np.int64)
    gv = np.zeros(S)
    rc = np.zeros(S, np.int64)
    top = int(glev[G - 1]) if G > 0 else 1
    pd = np.zeros(top + 1, np.int64)
    ps = np.zeros(2 * top + 2, np.int64)
    vals = np.zeros(25)
    acc = np.zeros(25)
    row_buf = np.zeros(25)
    centre = np.zeros(3, np.int64)
    win = np.zeros((3, 2), np.int64)
    top_ih = max(n_levels, top)
    xmax = shape[2] - 1
    rx = radii[2]
    nz = box[0, 1] - box[0, 0] + 1
    ny = box[1, 1] - box[1, 0] + 1
    for iz in range(nz):
        for iy in range(ny):
            x0 = row_lo[iz, iy]
            if x0 < 0:
                continue  # no centre in this row
            # a fresh window at the row's first centre, grown plane by plane along x; then slid along
            # the row to its last centre: the plane x - R leaves, the plane x + 1 + R enters
            _reset(cnt, hist_g, pres_g, slot_of, free, hist_u, pres_u, cm, tot, want_glcm, want_stat)
            centre[0] = box[0, 0] + iz
            centre[1] = box[1, 0] + iy
            for a in range(2):
                win[a, 0] = max(0, centre[a] - radii[a])
                win[a, 1] = min(shape[a] - 1, centre[a] + radii[a])
            x = x0
            x_last = row_hi[iz, iy]
            x_next = max(0, x0 - rx)  # the next plane to enter
            win[2, 0] = x_next
            win[2, 1] = x_next - 1
            leaving = -1
            while True:
                if leaving >= 0:  # one plane out (the window still holds it) ...
                    c = leaving
                    sign = -1
                    leaving = -1
                elif x_next <= min(xmax, x + rx):  # ... or one in
                    c = x_next
                    sign = 1
                    win[2, 1] = c
                    x_next += 1
                else:  # the window is the centre's
                    r = rows[centre[0], centre[1], x]
                    if r >= 0:
                        n = cnt[0]
                        if want_stat:
                            _stat(pres_u, cnt[2], hist_u, uvals, n, q, row_buf)
                            for f in range(18):
                                out[r, off_stat + f] = row_buf[f]
                        if want_ih:
                            _ih(pres_g, cnt[1], hist_g, glev, n, top_ih, lvl2idx, ks, row_buf)
                            for f in range(23):
                                out[r, off_ih + f] = row_buf[f]
                        if want_glcm:
                            _glcm_centre(offs_agg, agg_ptr, group_ptr, members, r, out, cm, tot, pres_g, cnt[1],
                                         slot_of, glev, n_levels, m, sl, gv, lg, wd, rc, pd, ps, vals, acc)
                    if x >= x_last:
                        break
                    if x - rx >= 0:
                        leaving = x - rx
                    x += 1
                    continue
                _plane(2, c, sign, win, usable, gidx, uidx, cnt, hist_g, pres_g, slot_of, free, hist_u, pres_u,
                       need_grey, want_stat, want_glcm, offs, odir, opos, inpl, dist, cm, tot, want2d, ring)
                if sign < 0:
                    win[2, 0] = c + 1
