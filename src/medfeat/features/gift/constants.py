"""GIFT's fixed parameters: the image side, the colour bins, the blocks, the Gabor filters and bands.

See :mod:`medfeat.features.gift` for what they mean.
"""
from __future__ import annotations

import numpy as np

SIZE = 256                      # GIFT's image side
N_HUES, N_SATURATIONS, N_VALUES = 18, 3, 3
N_CHROMATIC = N_HUES * N_SATURATIONS * N_VALUES  # 162
GREY_LEVELS = 4                 # GIFT's number of greys
MAX_GREY_LEVELS = 256 - N_CHROMATIC  # 94: GIFT's colour map holds at most 256 colours
N_COLOURS = N_CHROMATIC + GREY_LEVELS  # 166
BLOCK_SIDES = (16, 32, 64, 128)
BLOCKS_PER_SCALE = tuple((SIZE // s) ** 2 for s in BLOCK_SIDES)  # 256, 64, 16, 4
N_BLOCKS = sum(BLOCKS_PER_SCALE)  # 340
N_SCALES, N_ORIENTATIONS = 3, 4
N_FILTERS = N_SCALES * N_ORIENTATIONS
GABOR_BLOCK = 16
N_GABOR_BLOCKS = (SIZE // GABOR_BLOCK) ** 2  # 256
N_BANDS = 10
#: Band limits of the Gabor block energies (``gabor_ranges`` in GIFT).
BAND_LIMITS = np.array([2, 3, 4, 5, 6, 7, 8, 9, 10, 100000], dtype=np.float64)
KERNEL_SIZES = (9, 17, 35)
FREQ_MAX = 255                  # GIFT stores frequencies as integers 0..FREQ_MAX


def check_grey_levels(grey_levels: int) -> int:
    """``grey_levels`` as an int, checked to be in ``1..MAX_GREY_LEVELS`` (``ValueError`` if not)."""
    g = int(grey_levels)
    if g != grey_levels or not 1 <= g <= MAX_GREY_LEVELS:
        raise ValueError(f"grey_levels must be an integer in 1..{MAX_GREY_LEVELS}, not {grey_levels!r}")
    return g

