"""GIFT's feature ids: the id layout, and the sparse ``(ids, values)`` form GIFT writes.

Ids and values, from :mod:`medfeat.features.gift`::

    colour block    k * nc + colour                               1.0   (all 340)
    colour hist     340 nc + colour                               rint(255 n / 65536) / 255, if > 0
    Gabor block     341 nc + ((4 i + j) 256 + k) 10 + band        1.0   (band > 0 only)
    Gabor hist      341 nc + 30720 + (4 i + j) 10 + band          rint(255 n / 256) / 255, if n > 0
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medfeat.features.gift.constants import (
    FREQ_MAX,
    GREY_LEVELS,
    N_BANDS,
    N_BLOCKS,
    N_CHROMATIC,
    N_FILTERS,
    N_GABOR_BLOCKS,
    SIZE,
    check_grey_levels,
)

if TYPE_CHECKING:
    from medfeat.features.gift.feature_set import GiftFeatures


@dataclass(frozen=True)
class IdLayout:
    """Where each part of the features lies in GIFT's id space (``n_colours = 162 + grey_levels``)."""

    n_colours: int

    @property
    def colour_hist(self) -> int:
        """First colour-histogram id (56440 for GIFT's 166 colours)."""
        return N_BLOCKS * self.n_colours

    @property
    def gabor_blocks(self) -> int:
        """First Gabor-block id (56606)."""
        return self.colour_hist + self.n_colours

    @property
    def gabor_hist(self) -> int:
        """First Gabor-histogram id (87326)."""
        return self.gabor_blocks + N_FILTERS * N_GABOR_BLOCKS * N_BANDS

    @property
    def n_features(self) -> int:
        """Size of the id space (87446): the length of the dense vector."""
        return self.gabor_hist + N_FILTERS * N_BANDS


def id_layout(grey_levels: int = GREY_LEVELS) -> IdLayout:
    """The id layout for ``grey_levels`` greys (GIFT: 4, ids 0..87445)."""
    return IdLayout(N_CHROMATIC + check_grey_levels(grey_levels))


def quantised_frequencies(count: np.ndarray, total: int) -> tuple[np.ndarray, np.ndarray]:
    """GIFT's stored frequencies ``(float)rint(255 n / total) / (float)255`` (float32), and the ``rint``
    values (float64: a frequency is stored where it is not 0)."""
    q = np.rint(FREQ_MAX * count.astype(np.float64) / float(total))
    return q.astype(np.float32) / np.float32(FREQ_MAX), q


def sparse_from_parts(block_colours, colour_counts, bands, n_colours) -> tuple[np.ndarray, np.ndarray]:
    """GIFT's ``(ids int32, values float32)`` from the parts of :class:`GiftFeatures` (block colours,
    colour counts, Gabor bands) for ``n_colours`` colours; see :func:`to_sparse`."""
    lay = IdLayout(n_colours)
    bands = np.asarray(bands, dtype=np.intp).reshape(N_FILTERS * N_GABOR_BLOCKS)
    block_ids = np.arange(N_BLOCKS) * n_colours + np.asarray(block_colours, dtype=np.intp)
    hist_vals, hist_q = quantised_frequencies(np.asarray(colour_counts), SIZE * SIZE)
    hist_keep = np.flatnonzero(hist_q != 0)
    gab_keep = np.flatnonzero(bands != 0)
    gab_ids = lay.gabor_blocks + gab_keep * N_BANDS + bands[gab_keep]
    band_counts = np.bincount(bands + np.repeat(np.arange(N_FILTERS) * N_BANDS, N_GABOR_BLOCKS),
                              minlength=N_FILTERS * N_BANDS)
    gh_vals, _ = quantised_frequencies(band_counts, N_GABOR_BLOCKS)
    gh_keep = np.flatnonzero(band_counts != 0)
    ids = np.concatenate([block_ids, lay.colour_hist + hist_keep, gab_ids, lay.gabor_hist + gh_keep])
    one = np.float32(1.0)
    values = np.concatenate([np.full(N_BLOCKS, one), hist_vals[hist_keep], np.full(gab_keep.size, one),
                             gh_vals[gh_keep]])
    return ids.astype(np.int32), values.astype(np.float32)


def to_sparse(features: GiftFeatures) -> tuple[np.ndarray, np.ndarray]:
    """The features as GIFT writes them: ids ascending, float32 values.

    Returns
    -------
    ids : ndarray of int32
        All 340 colour-block ids, the colour-histogram ids with ``rint(255 n / 65536) > 0``, the
        Gabor-block ids of bands above 0, the Gabor-histogram ids of non-empty bands.
    values : ndarray of float32
        1.0 for blocks; ``rint(255 n / N) / 255`` (float32 division) for histograms.
    """
    return sparse_from_parts(features.block_colours, features.colour_counts, features.gabor_bands,
                         features.n_colours)


def dense_vector(features: GiftFeatures) -> np.ndarray:
    """The features as a float32 vector over GIFT's whole id space (87446 for 4 greys), zero
    where GIFT writes no feature: ``dense[ids] = values``."""
    ids, values = to_sparse(features)
    out = np.zeros(features.layout.n_features, dtype=np.float32)
    out[ids] = values
    return out
