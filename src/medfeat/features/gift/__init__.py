"""GNU GIFT 0.1.15a retrieval features: colour blocks, colour histogram, Gabor blocks and histograms.

GIFT (the GNU Image-Finding Tool) describes an image by a sparse set of binary and histogram
features, inspired by text retrieval (each feature is a "term" of an inverted file) [1]_ [2]_.
This package reproduces ``gift-extract-features`` of GIFT 0.1.15a *exactly*: the same feature
ids, in the same order, with the same float32 values, and byte-identical ``.fts`` files (checked
against 100 images GIFT processed, ``tests/test_gift.py``).

Definition
----------
The image is forced to 256 x 256 (:func:`resize_to_gift`; GIFT's ``gift-add-collection`` runs
``convert -geometry 256x256!``) and read as 8-bit RGB ``(R, G, B) / 255``.

*HSV bytes* (Foley & van Dam; ``rgb2hsv_ppm``), in double precision::

    M = max(R, G, B),  m = min(R, G, B),  d = M - m
    V = M,  S = d / M (0 if M = 0)
    H' = (G - B) / d        if R = M      (later tests win: B = M over G = M over R = M)
    H' = 2 + (B - R) / d    if G = M
    H' = 4 + (R - G) / d    if B = M
    H = 60 H' (+ 360 if negative); H = 0 when S = 0
    h, s, v = rint(H / 360 * 255), rint(255 S), rint(255 V)           (bytes, rint: half to even)

*Colours* (``hsv_quantize_ppm``, 18 hues x 3 saturations x 3 values + 4 greys = 166), with
``c = 0.99999999``::

    colour = floor(c h/255 * 18) + 18 floor(c s/255 * 3) + 54 floor(c v/255 * 3)
    colour = 162 + floor(c v/255 * G)        for greys (h = s = 0), G = grey_levels = 4

*Colour blocks*: 340 blocks -- 256 of 16 x 16 px, then 64 of 32 x 32, 16 of 64 x 64 and 4 of
128 x 128, each scale row by row -- each gives its most frequent colour (the lowest colour on a
tie). *Colour histogram*: the pixel count of each colour over the image.

*Gabor texture* (``gabor.c``) on the value plane ``v`` (0..255): 3 scales ``i`` x 4 orientations
``j``, ``theta_j = j pi / 4``, centre frequency ``u_i = 0.375 / 2^i`` cycles/px,
``sigma_i = 3 sqrt(2 ln 2) / (2 pi u_i)`` (about 1.5, 3, 6 px), kernels of ``K_i = 9, 17, 35`` px.
With ``g(x) = exp(-x^2 / (2 sigma^2)) / (sqrt(2 pi) sigma)``, ``a = u cos(theta)``,
``b = u sin(theta)``, the filter is the real part of a separable complex Gabor filter::

    f = (g cos(2 pi a x)) *_x (g cos(2 pi b y)) *_y v  -  (g sin(2 pi a x)) *_x (g sin(2 pi b y)) *_y v

(``*`` convolution, zero outside the image). Per 16 x 16 block ``k`` (256 blocks, row by row),
the RMS energy ``E = sqrt(sum(f^2) / 256)`` falls into band ``n`` = number of limits
``2, 3, ..., 10, 100000`` that are ``<= E`` (band 0: ``E < 2``). Each filter also gives the
histogram of its 256 block bands.

Feature ids and values (the ``.fts`` file, ids ascending; ``nc`` = number of colours = 166)::

    colour block    k * nc + colour                               1.0   (all 340)
    colour hist     340 nc + colour                               rint(255 n / 65536) / 255, if > 0
    Gabor block     341 nc + ((4 i + j) 256 + k) 10 + band        1.0   (band > 0 only)
    Gabor hist      341 nc + 30720 + (4 i + j) 10 + band          rint(255 n / 256) / 255, if n > 0

GIFT stores ``rint(255 x)`` as an integer, then writes ``(float)q / (float)255`` (float32).

Exactness
---------
Colours are computed with the same double-precision operations, in the same order, as GIFT's C.
The Gabor energies are computed fast with FFTs, then every block whose energy lies within a proven
error bound of a band limit is recomputed with GIFT's own arithmetic: direct convolutions with
the taps accumulated in GIFT's order, in double precision, and the block's squares summed in
GIFT's order. Bands therefore equal GIFT's. The kernels use the C library's ``exp``, ``sin`` and
``cos`` (Python's :mod:`math`), as GIFT did.

Option: more grey levels
------------------------
``grey_levels`` (default 4, GIFT's) sets the number of grey bins ``G`` (1..94: GIFT's colour
map holds at most 256 colours). Medical images are mostly grey, and 4 grey bins leave little to
tell them apart; ``G > 4`` gives finer grey histograms and block colours. Any value but 4 makes
the features **not GIFT-compatible**: ``nc = 162 + G`` and every id above the first block moves
(it is what a GIFT built with ``numGrey = G`` would produce).

References
----------
.. [1] Squire D. McG., Mueller W., Mueller H., Raki J. "Content-based query of image databases,
   inspirations from text retrieval: inverted files, frequency-based weights and relevance
   feedback." Scandinavian Conference on Image Analysis (SCIA), 1999, 143-149.
.. [2] Squire D. McG., Mueller W., Mueller H., Pun T. "Content-based query of image databases:
   inspirations from text retrieval." Pattern Recognition Letters 21 (2000) 1193-1198.
.. [3] GNU GIFT 0.1.15a, ``FeatureExtraction/`` (``extract_block_features.c``, ``gabor.c``,
   ``rgb2hsv_utils.c``, ``hsv_quantize_ppm``).

Modules
-------
:mod:`~medfeat.features.gift.constants`
    GIFT's fixed parameters (image side, colour bins, blocks, Gabor filters, band limits).
:mod:`~medfeat.features.gift.colour`
    HSV bytes, the quantised colours, the colour counts of the blocks.
:mod:`~medfeat.features.gift.gabor`
    The Gabor kernels, GIFT's exact filtering, the FFT block energies, the energy bands.
:mod:`~medfeat.features.gift.feature_set`
    :class:`GiftFeatures` and :func:`gift_features`, the features of one image.
:mod:`~medfeat.features.gift.feature_ids`
    The id layout, GIFT's sparse ``(ids, values)`` form and the dense vector.
:mod:`~medfeat.features.gift.fts`
    ``.fts`` files: encoding, writing, reading.
:mod:`~medfeat.features.gift.prepare`
    An image as GIFT reads it: 8-bit, 256 x 256, RGB.
:mod:`~medfeat.features.gift.columns`
    The family's columns (medfeat's wide tables) and GIFT's sparse form rebuilt from a row.
"""
from __future__ import annotations

from medfeat.features.gift.colour import colour_block_counts, colour_luts, quantize_colours, rgb_to_hsv
from medfeat.features.gift.columns import (
    CODES_COLUMN,
    FEATURE_GROUPS,
    N_CODES,
    check_parts,
    code_column_names,
    codes_of_value,
    FEATURES,
    column_names,
    feature_defs,
    feature_row,
    features_of_row,
    grey_levels_of_row,
    packed_feature_row,
    parts_of_row,
)
from medfeat.features.gift.constants import (
    BAND_LIMITS,
    BLOCK_SIDES,
    BLOCKS_PER_SCALE,
    FREQ_MAX,
    GABOR_BLOCK,
    GREY_LEVELS,
    KERNEL_SIZES,
    MAX_GREY_LEVELS,
    N_BANDS,
    N_BLOCKS,
    N_CHROMATIC,
    N_COLOURS,
    N_FILTERS,
    N_GABOR_BLOCKS,
    N_HUES,
    N_ORIENTATIONS,
    N_SATURATIONS,
    N_SCALES,
    N_VALUES,
    SIZE,
    check_grey_levels,
)
from medfeat.features.gift.feature_ids import (
    IdLayout,
    dense_vector,
    id_layout,
    quantised_frequencies,
    sparse_from_parts,
    to_sparse,
)
from medfeat.features.gift.feature_set import GiftFeatures, gift_features
from medfeat.features.gift.fts import fts_bytes, read_fts, write_fts
from medfeat.features.gift.gabor import (
    energy_bands,
    exact_block_energies,
    gabor_energies,
    gabor_filter_exact,
    gabor_kernels,
)
from medfeat.features.gift.prepare import gift_rgb, resize_to_gift, to_uint8

FAMILY = "gift"

__all__ = [
    "BAND_LIMITS", "BLOCKS_PER_SCALE", "BLOCK_SIDES", "CODES_COLUMN", "FAMILY", "FEATURES", "FEATURE_GROUPS", "FREQ_MAX",
    "GABOR_BLOCK", "GREY_LEVELS", "KERNEL_SIZES", "MAX_GREY_LEVELS", "N_BANDS", "N_BLOCKS", "N_CHROMATIC",
    "N_CODES", "N_COLOURS", "N_FILTERS", "N_GABOR_BLOCKS", "N_HUES", "N_ORIENTATIONS", "N_SATURATIONS", "N_SCALES",
    "N_VALUES", "SIZE",
    "GiftFeatures", "IdLayout",
    "check_grey_levels", "check_parts", "code_column_names", "codes_of_value", "colour_block_counts", "colour_luts", "column_names", "dense_vector", "energy_bands",
    "exact_block_energies", "feature_defs", "feature_row", "features_of_row", "grey_levels_of_row", "packed_feature_row", "parts_of_row", "fts_bytes", "gabor_energies",
    "gabor_filter_exact", "gabor_kernels", "gift_features", "gift_rgb", "id_layout", "quantised_frequencies", "quantize_colours",
    "read_fts", "resize_to_gift", "rgb_to_hsv", "sparse_from_parts", "to_sparse", "to_uint8", "write_fts",
]
