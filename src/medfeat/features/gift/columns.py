"""The gift family's feature columns (medfeat's wide tables), and GIFT's sparse form rebuilt from a row."""
from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Mapping

import numpy as np

from medfeat.features.base import FeatureDef, column
from medfeat.features.gift.constants import (
    BLOCK_SIDES,
    BLOCKS_PER_SCALE,
    GREY_LEVELS,
    N_BANDS,
    N_BLOCKS,
    N_CHROMATIC,
    N_FILTERS,
    N_GABOR_BLOCKS,
    N_ORIENTATIONS,
    N_SCALES,
    SIZE,
    check_grey_levels,
)
from medfeat.features.gift.feature_ids import sparse_from_parts

if TYPE_CHECKING:
    from medfeat.features.gift.feature_set import GiftFeatures


@lru_cache(maxsize=None)
def feature_defs(grey_levels: int = GREY_LEVELS) -> tuple[FeatureDef, ...]:
    """The gift family's columns, in order (3698 for 4 greys).

    ``gift.block.NNN`` (340): colour index of block NNN (GIFT's block number); ``gift.hist.CCC``
    (``nc``): fraction of the pixels of colour CCC; ``gift.gabor.S.O.BBB`` (3072): band 0..9 of
    filter (scale S, orientation O) in 16 x 16 block BBB; ``gift.gabor_hist.S.O.N`` (120):
    fraction of the 256 blocks in band N. GIFT has no IBSI codes: the code is empty.
    """
    nc = N_CHROMATIC + check_grey_levels(grey_levels)
    defs = []
    for k in range(N_BLOCKS):
        side, first = _block_scale(k)
        defs.append(FeatureDef(f"gift.block.{k:03d}", "", f"colour of block {k} ({side}x{side} px, #{k - first})"))
    for c in range(nc):
        defs.append(FeatureDef(f"gift.hist.{c:03d}", "", f"fraction of pixels of colour {c}"))
    for s in range(N_SCALES):
        for o in range(N_ORIENTATIONS):
            for b in range(N_GABOR_BLOCKS):
                defs.append(FeatureDef(f"gift.gabor.{s}.{o}.{b:03d}", "",
                                       f"Gabor band, scale {s}, orientation {45 * o} deg, block {b}"))
    for s in range(N_SCALES):
        for o in range(N_ORIENTATIONS):
            for n in range(N_BANDS):
                defs.append(FeatureDef(f"gift.gabor_hist.{s}.{o}.{n}", "",
                                       f"fraction of blocks in Gabor band {n}, scale {s}, orientation {45 * o} deg"))
    return tuple(defs)


def _block_scale(k: int) -> tuple[int, int]:
    first = 0
    for side, n in zip(BLOCK_SIDES, BLOCKS_PER_SCALE):
        if k < first + n:
            return side, first
        first += n
    raise ValueError(k)


FEATURES: tuple[FeatureDef, ...] = feature_defs(GREY_LEVELS)
#: The columns by group, for listings (``medfeat families``).
FEATURE_GROUPS: tuple[FeatureDef, ...] = (
    FeatureDef("gift.block.NNN", "", "colour (0..165) of block NNN = 000..339: 256 of 16x16 px, 64 of 32x32, "
               "16 of 64x64, 4 of 128x128"),
    FeatureDef("gift.hist.CCC", "", "fraction of the pixels of colour CCC = 000..165 (162 + gift_grey_levels)"),
    FeatureDef("gift.gabor.S.O.BBB", "", "Gabor band (0..9) of 16x16 block BBB = 000..255, scale S = 0..2, "
               "orientation O = 0..3 (x 45 deg)"),
    FeatureDef("gift.gabor_hist.S.O.N", "", "fraction of the 256 blocks in Gabor band N = 0..9, scale S, "
               "orientation O"),
)


@lru_cache(maxsize=None)
def column_names(grey_levels: int = GREY_LEVELS) -> tuple[str, ...]:
    """Column names of :func:`feature_defs` (``gift_block_000``, ...)."""
    return tuple(column(f.tag) for f in feature_defs(grey_levels))


def feature_row(features: GiftFeatures) -> dict[str, float]:
    """The features as ``{column: value}`` (see :func:`feature_defs`); :func:`features_of_row`
    rebuilds GIFT's exact sparse form from it."""
    values = np.concatenate([
        features.block_colours.astype(np.float64),
        features.colour_histogram,
        features.gabor_bands.ravel().astype(np.float64),
        features.gabor_histograms.ravel(),
    ])
    return dict(zip(column_names(features.grey_levels), values.tolist()))


def packed_feature_row(features: GiftFeatures) -> dict:
    """:func:`feature_row` with the 3,412 block and Gabor codes as one :data:`CODES_COLUMN` value
    (bytes) where ``gift_block_000`` would be: what a production job stores. Made and put in a
    table, it costs ~0.08 ms per image where the 3,698 named floats cost ~0.43 ms (measured here;
    ~5% of a 256 x 256 image's extraction)."""
    codes = np.concatenate([features.block_colours.ravel(), features.gabor_bands.ravel()]).astype(np.uint8)
    names = column_names(features.grey_levels)
    hist = names[N_BLOCKS:N_BLOCKS + len(features.colour_histogram)]
    gabor_hist = names[len(names) - features.gabor_histograms.size:]
    return {CODES_COLUMN: codes.tobytes(), **dict(zip(hist, features.colour_histogram.tolist())),
            **dict(zip(gabor_hist, features.gabor_histograms.ravel().tolist()))}


def grey_levels_of_row(row: Mapping[str, float]) -> int:
    """The grey levels of a row of gift columns: its ``gift_hist_*`` columns beyond the chromatic
    ones (0 or less: no gift columns)."""
    return sum(1 for k in row if str(k).startswith("gift_hist_")) - N_CHROMATIC


#: The column of a stored table that holds a row's 3,412 GIFT codes as one fixed-size binary value
#: of 3,412 bytes (uint8): the 340 block colours (``gift_block_000`` ... ``gift_block_339``), then the
#: 3,072 Gabor bands in ``gift_gabor_S_O_BBB`` order. Parquet feature tables and job results store
#: the codes so (see :func:`medfeat.tables.pack_gift_codes`); the colour and Gabor histograms stay
#: float columns.
CODES_COLUMN = "gift_codes"
N_CODES = N_BLOCKS + N_FILTERS * N_GABOR_BLOCKS  # 3412; every code fits a byte (colours < 256, bands < 10)


@lru_cache(maxsize=None)
def code_column_names() -> tuple[str, ...]:
    """The names of the 3,412 columns :data:`CODES_COLUMN` packs, in the order of its bytes (the
    same for every number of grey levels)."""
    names = column_names(GREY_LEVELS)
    first_gabor = N_BLOCKS + N_CHROMATIC + GREY_LEVELS
    return names[:N_BLOCKS] + names[first_gabor:first_gabor + N_FILTERS * N_GABOR_BLOCKS]


def codes_of_value(value) -> np.ndarray:
    """A :data:`CODES_COLUMN` value (bytes, or any buffer) as its 3,412 uint8 codes.

    Raises
    ------
    ValueError
        A missing value (an image that failed) or one of another size.
    """
    if value is None:
        raise ValueError("the row has missing gift values (a failed image?)")
    try:
        codes = np.frombuffer(value, dtype=np.uint8)
    except TypeError:
        codes = np.asarray(value, dtype=np.uint8)
    if codes.shape != (N_CODES,):
        raise ValueError(f"{CODES_COLUMN} holds {codes.size} codes, not {N_CODES}")
    return codes


def parts_of_row(row: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GIFT's parts from a row of gift columns (an :func:`medfeat.extract` result, or a row of a
    features table, wide or with the codes packed in :data:`CODES_COLUMN`), as float64: the block
    colours, the colour counts (pixels) and the Gabor bands.

    Raises
    ------
    ValueError
        Missing gift columns or missing values (an image that failed).
    """
    grey = grey_levels_of_row(row)
    if grey <= 0:
        raise ValueError("the row has no gift_hist_* columns: not a gift-family row")
    nc = N_CHROMATIC + grey
    names = column_names(grey)
    if CODES_COLUMN in row:
        codes = codes_of_value(row[CODES_COLUMN]).astype(np.float64)
        hist = _finite_values(row, names[N_BLOCKS:N_BLOCKS + nc])
        return check_parts(codes[:N_BLOCKS], np.rint(hist * (SIZE * SIZE)), codes[N_BLOCKS:], nc)
    vals = _finite_values(row, names)
    return check_parts(vals[:N_BLOCKS], np.rint(vals[N_BLOCKS:N_BLOCKS + nc] * (SIZE * SIZE)),
                       vals[N_BLOCKS + nc:N_BLOCKS + nc + N_FILTERS * N_GABOR_BLOCKS], nc)


def _finite_values(row: Mapping[str, float], names) -> np.ndarray:
    """The row's values of columns ``names`` as float64; ValueError if one is absent or missing."""
    try:
        vals = np.array([row[k] for k in names], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"the row lacks gift column {exc.args[0]}") from None
    except TypeError:
        raise ValueError("the row has missing gift values (a failed image?)") from None
    if not np.isfinite(vals).all():
        raise ValueError("the row has missing gift values (a failed image?)")
    return vals


def check_parts(blocks: np.ndarray, counts: np.ndarray, bands: np.ndarray, nc: int):
    """GIFT's parts (one image's, or one row per image), refused (ValueError) when no GIFT feature
    set has them -- a corrupt or foreign table would otherwise give ids of other features: codes
    that are not whole numbers, colours outside ``0..nc-1``, bands outside ``0..9``, a colour
    histogram that is not of 256 x 256 pixels. Returns them as they are."""
    for part in (blocks, bands):
        if part.dtype.kind == "f" and (part != np.rint(part)).any():
            raise ValueError("gift block colours or Gabor bands that are not whole numbers")
    if blocks.size and (blocks.min() < 0 or blocks.max() >= nc):
        raise ValueError(f"gift block colours outside 0..{nc - 1}")
    if bands.size and (bands.min() < 0 or bands.max() >= N_BANDS):
        raise ValueError(f"gift Gabor bands outside 0..{N_BANDS - 1}")
    if counts.size and (counts.min() < 0 or (counts.sum(axis=-1) != SIZE * SIZE).any()):
        raise ValueError("gift colour histograms that are not of 256 x 256 pixels")
    return blocks, counts, bands


def features_of_row(row: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """GIFT's ``(ids, values)`` from a row of gift columns (see :func:`parts_of_row`); the number
    of ``gift_hist_*`` columns gives the grey levels.

    Raises
    ------
    ValueError
        Missing gift columns or missing values (an image that failed).
    """
    blocks, counts, bands = parts_of_row(row)
    return sparse_from_parts(blocks.astype(np.intp), counts, bands.astype(np.intp), len(counts))
