"""GIFT's features of one image: :class:`GiftFeatures` and :func:`gift_features`, which computes
them from the colours (:mod:`.colour`) and the Gabor energies (:mod:`.gabor`)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medfeat.features.gift.colour import colour_block_counts, colour_luts, quantize_colours
from medfeat.features.gift.columns import feature_row
from medfeat.features.gift.constants import (
    GREY_LEVELS,
    N_BANDS,
    N_CHROMATIC,
    N_FILTERS,
    N_GABOR_BLOCKS,
    N_ORIENTATIONS,
    N_SCALES,
    SIZE,
    check_grey_levels,
)
from medfeat.features.gift.feature_ids import IdLayout, dense_vector, to_sparse
from medfeat.features.gift.gabor import energy_bands, gabor_energies


@dataclass(frozen=True, eq=False)
class GiftFeatures:
    """GIFT's features of one 256 x 256 image.

    Attributes
    ----------
    block_colours : ndarray of int16, shape (340,)
        Most frequent colour of each block, GIFT's block order: 256 blocks of 16 x 16 px, 64 of
        32 x 32, 16 of 64 x 64, 4 of 128 x 128, each scale row by row.
    colour_counts : ndarray of int64, shape (n_colours,)
        Pixels of each colour (they sum to 65536).
    gabor_energies : ndarray of float64, shape (3, 4, 256)
        RMS energy of each filter ``[scale, orientation]`` in each 16 x 16 block (row by row).
        Within about 1e-12 of GIFT's (FFT filtering); exactly GIFT's near a band limit.
    gabor_bands : ndarray of uint8, shape (3, 4, 256)
        Band of each energy (0..9), equal to GIFT's.
    grey_levels : int
        Number of grey colours (GIFT: 4).
    """

    block_colours: np.ndarray
    colour_counts: np.ndarray
    gabor_energies: np.ndarray
    gabor_bands: np.ndarray
    grey_levels: int = GREY_LEVELS

    @property
    def n_colours(self) -> int:
        return N_CHROMATIC + self.grey_levels

    @property
    def layout(self) -> IdLayout:
        return IdLayout(self.n_colours)

    @property
    def colour_histogram(self) -> np.ndarray:
        """Fraction of the pixels of each colour, ``n / 65536`` (float64, exact)."""
        return self.colour_counts / float(SIZE * SIZE)

    @property
    def gabor_band_counts(self) -> np.ndarray:
        """Blocks in each band per filter, int64 (3, 4, 10)."""
        flat = self.gabor_bands.reshape(N_FILTERS, N_GABOR_BLOCKS).astype(np.intp)
        offs = np.arange(N_FILTERS)[:, None] * N_BANDS
        return np.bincount((flat + offs).ravel(), minlength=N_FILTERS * N_BANDS).reshape(
            N_SCALES, N_ORIENTATIONS, N_BANDS)

    @property
    def gabor_histograms(self) -> np.ndarray:
        """Fraction of the 256 blocks in each band per filter, ``n / 256``, (3, 4, 10)."""
        return self.gabor_band_counts / float(N_GABOR_BLOCKS)

    def to_sparse(self) -> tuple[np.ndarray, np.ndarray]:
        """GIFT's ``(ids, values)``, see :func:`to_sparse`."""
        return to_sparse(self)

    def dense(self) -> np.ndarray:
        """The features as a dense float32 vector over GIFT's id space, see :func:`dense_vector`."""
        return dense_vector(self)

    def row(self) -> dict[str, float]:
        """The features as a row of named columns, see :func:`feature_row`."""
        return feature_row(self)


def gift_features(rgb: np.ndarray, grey_levels: int = GREY_LEVELS) -> GiftFeatures:
    """GIFT's features of a 256 x 256 8-bit image.

    Parameters
    ----------
    rgb : ndarray of uint8, shape (256, 256, 3) or (256, 256)
        The image as GIFT reads it (after :func:`resize_to_gift`); a 2-D array is a grey image
        (``R = G = B``).
    grey_levels : int
        Grey bins (default 4, GIFT's; any other value is *not* GIFT-compatible).

    Returns
    -------
    GiftFeatures
    """
    g = check_grey_levels(grey_levels)
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8:
        raise ValueError(f"gift_features needs uint8 pixels, got {arr.dtype}; see to_uint8()")
    if arr.shape not in ((SIZE, SIZE, 3), (SIZE, SIZE)):
        raise ValueError(f"gift_features needs a 256 x 256 (x 3) image, got shape {arr.shape}; see resize_to_gift()")
    nc = N_CHROMATIC + g
    if arr.ndim == 3 and np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2]):
        arr = arr[..., 0]  # a grey picture stored as RGB: same colours, computed faster
    if arr.ndim == 2:  # grey: h = s = 0, v = the byte
        colours = colour_luts(g)[1][arr, arr]
        value = arr
    else:
        colours = quantize_colours(arr, g)
        value = np.maximum(np.maximum(arr[..., 0], arr[..., 1]), arr[..., 2])  # rint(255 V) == max byte
    levels = colour_block_counts(colours, nc)
    modes = np.concatenate([lv.reshape(-1, nc).argmax(axis=1) for lv in levels]).astype(np.int16)
    counts = levels[-1].sum(axis=(0, 1)).astype(np.int64)
    energy = gabor_energies(value)
    return GiftFeatures(block_colours=modes, colour_counts=counts,
                        gabor_energies=energy.reshape(N_SCALES, N_ORIENTATIONS, N_GABOR_BLOCKS),
                        gabor_bands=energy_bands(energy).reshape(N_SCALES, N_ORIENTATIONS, N_GABOR_BLOCKS),
                        grey_levels=g)
