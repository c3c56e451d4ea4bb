"""Compiled helper shared by the run and zone counters (numba; kept out of ``base`` so that
``import medfeat`` does not import numba)."""
from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def level_lut(present, top):  # pragma: no cover - compiled
    """Map the grey levels ``1..top`` marked in ``present`` to ``0..G-1``.

    Returns ``(lut, grey)``: ``lut[v]`` the index of level ``v`` (-1 where absent, and for 0,
    "outside"), ``grey[i]`` the level of index ``i`` (float64, ascending).
    """
    lut = np.full(top + 1, -1, np.int32)
    n_grey = 0
    for v in range(1, top + 1):
        if present[v]:
            lut[v] = n_grey
            n_grey += 1
    grey = np.empty(n_grey)
    for v in range(1, top + 1):
        if present[v]:
            grey[lut[v]] = v
    return lut, grey
