"""Search by example over GNU GIFT features: a compact descriptor index, and GIFT's inverted file.

GIFT (the GNU Image-Finding Tool) describes an image by sparse features -- block colours, a colour
histogram, Gabor texture bands per block and their histograms -- and answers a query like a text
search engine [1]_ [2]_. This module indexes the features of :mod:`medfeat.features.gift` (GIFT
0.1.15a's ``gift-extract-features``, reproduced exactly) and answers queries with three scoring
methods: ``"hellinger"`` (the default: chosen on tuning patients, measured on held-out ones by
``bench/retrieval_eval.py``), and GIFT's own ``"gift"`` and a plain ``"intersection"``, which need
the index built with ``gift_parts=True`` (``medfeat index --gift-parts``).

The default: ``"hellinger"``
----------------------------
Every image becomes one fixed-length vector (``nc - 1 + 120`` values, ``nc = 162 + G`` colours),
from its GIFT features alone (so an index built from a production's ``features.parquet`` equals
one built from the images):

* the *foreground colour histogram*: the pixel counts of the ``nc`` colours without the darkest
  grey (colour 162: the black background of most medical images), divided by their sum;
* the *foreground Gabor histograms*: for each of the 12 Gabor filters, the share of the
  foreground 16 x 16 blocks (the 256 smallest colour blocks, which are the Gabor blocks, whose
  most frequent colour is not the darkest grey) in each of the 10 energy bands;

each value ``x`` stored as ``rint(255 sqrt(x))`` (uint8). Two images are compared by the squared
Hellinger-type distance, each group standardised over the indexed collection::

    D(q, d) = |sqrt(h_q) - sqrt(h_d)|^2 / V_h  +  2 |sqrt(g_q) - sqrt(g_d)|^2 / V_g

``V`` being the mean squared distance between two indexed images within the group (``2 x`` the
sum of the column variances), so both groups weigh alike in a typical pair and the Gabor group
counts twice. The score is ``1 / (1 + D)``: 1 for an identical image. Columns that are constant
over the collection (the 162 chromatic bins of a grey collection) are not stored; they add the
same amount to every image's distance. A query is scanned against every stored row in one compiled
pass that keeps the best ``top`` (exact; a 1,000,000-image grey index stores 127 bytes an image, 0.16
GB, and answers in about 20 ms on one core, ``bench/index_scale.py``).

Why these defaults (``bench/retrieval_eval.py``, precision@10 of the query's modality on STS
CT / MR / PET slices): every choice -- ``G = 8`` grey levels, the background bin left out, the
square root, the group standardisation and weight 2 -- was made on five tuning patients only,
then measured on the five others. On the tuning set (mean of two MR/PET windowings) GIFT's idf
with 4 greys scores 0.82, with 8 or 16 greys 0.89 and 0.84; this descriptor 0.955 with 8 greys,
0.93 with 16 or 32, 0.79 with 4; the Gabor group alone 0.92, the colour group alone 0.85; the whole
image's histograms (background included) at most 0.93, no square root 0.92 (8 greys) and 0.95 (16
greys) -- these last two from exploratory runs, not the bench. Held out: 0.968 (GIFT's idf with 4
greys: 0.77).

GIFT's methods (``gift_parts=True``)
------------------------------------
The index then also holds, for ``N`` images:

* ``matrix``: GIFT's sparse form, a ``scipy.sparse.csr_matrix`` of shape ``(N, F)``, float32 --
  row ``i`` holds image ``i``'s GIFT features, ids ascending as in GIFT's ``.fts`` files (``F`` =
  87446 ids for GIFT's 4 greys). Its columns are GIFT's inverted file.
* ``codes`` (N, 3412) uint8 -- the colour of each of the 340 colour blocks, then the Gabor band
  (0..9) of each of the 12 x 256 Gabor blocks -- and ``hists`` (N, nc + 120) float32 -- the colour
  histogram and the 12 Gabor histograms with GIFT's quantised values (``rint(255 x) / 255``; 0
  where GIFT writes no feature).

These take about 20 kB an image (the descriptor: at most 289 bytes), so a large collection is
indexed without them.

``"gift"`` -- GIFT's "classical IDF" inverted-file query (``CWFClassicalIDF`` with
``CQNNoNormalization`` in ``libGIFTQuInvertedFile``, single positive query image, relevance 1,
all feature groups, no pruning) [3]_. For a query with features ``j`` of value ``q_j``, the
collection frequency ``cf_j = df_j / N`` is the share of the indexed images that have feature
``j`` (a non-zero value), and ``w_j = log(1 / cf_j)^2``. Image ``d`` (values ``d_j``) scores::

    S(d) = sum over block features j of q present in d:   w_j                      (colour and Gabor blocks, binary)
         + sum over histogram features j of q in d:        min(q_j, d_j) * w_j      (colour and Gabor histograms)

and the returned score is ``S(d) / S(q)``, ``S(q)`` being the query's score with itself
(``sum_blocks w_j + sum_hist q_j w_j``; GIFT's ``applyOnThis``), so the query image, if indexed,
scores 1 and a feature present in every image (``cf = 1``) contributes nothing. A query feature
that no indexed image has gets ``w = 0`` (GIFT: unknown features have ``cf = 1``); when ``S(q)``
is 0 every score is 0.

*Histogram weighting.* The formula above (``histogram_idf=True``, the default) weights the
histogram intersection by ``idf^2`` like the block features. GIFT
0.1.15a's code does not: its ``CWFClassicalIDF::subApply`` returns the plain intersection
``min(q_j, d_j)`` for ``COL_HST`` and ``GABOR_HST`` features, the ``log^2`` query factor being
used for block features only. ``histogram_idf=False`` reproduces that.

``"intersection"`` -- histogram intersection [4]_ on the dense form, each of GIFT's four feature
groups normalised to sum 1 and the four intersections averaged (a score in [0, 1], 1 for an
identical image)::

    colour blocks    share of the 340 blocks with the same colour
    colour hist      sum_c min(h_q(c) / sum h_q, h_d(c) / sum h_d)
    Gabor blocks     share of the 12 x 256 (filter, block) pairs in the same band (band 0 included)
    Gabor hists      mean over the 12 filters of sum_b min(normalised band histograms)

Both run over the whole index in one compiled pass (:mod:`numba`, ``cache=True``): ``"gift"``
scans the CSR rows against a dense vector of the query's block-feature weights (the same sums as
walking the inverted file for the query's features) and intersects the query's histogram features
with the dense ``hists``; ``"intersection"`` compares the dense rows.

File format
-----------
One ``.npz`` (numpy's zip of ``.npy`` arrays, read with ``allow_pickle=False``): ``format``
(``"medfeat-gift-index"``), ``version`` (2), ``grey_levels``, the names as UTF-8 (``names_utf8``,
``names_offsets``), the descriptor (``vectors``: the stored columns, ``vector_columns``,
``vector_fill``: the value of every column that is not stored, ``weights``: ``1 / V_h`` and
``2 / V_g``), ``skipped`` and ``skipped_reasons`` (images or rows left out), and with GIFT's parts
``indptr``, ``indices``, ``data`` (the CSR matrix), ``codes``, ``hists``. Version-1 files (GIFT's
parts, ``names``) still load: their descriptor is computed from the parts, the colour histogram
from its stored 1/255 steps.

References
----------
.. [1] Squire D. McG., Mueller W., Mueller H., Pun T. "Content-based query of image databases:
   inspirations from text retrieval." Pattern Recognition Letters 21 (2000) 1193-1198.
.. [2] Squire D. McG., Mueller W., Mueller H., Raki J. "Content-based query of image databases,
   inspirations from text retrieval: inverted files, frequency-based weights and relevance
   feedback." Scandinavian Conference on Image Analysis (SCIA), 1999, 143-149.
.. [3] GNU GIFT 0.1.15a, ``libGIFTQuInvertedFile/cc/``: ``CQInvertedFile.cc`` (``keepScore``,
   ``fastQueryByFeature``), ``CWeightingFunction.cc``, ``CWFClassicalIDF.cc``; collection
   frequencies in ``libGIFTAcInvertedFile/cc/CAcIFFileSystem.cc``.
.. [4] Swain M. J., Ballard D. H. "Color indexing." International Journal of Computer Vision 7
   (1991) 11-32.
.. [5] Arandjelovic R., Zisserman A. "Three things everyone should know to improve object
   retrieval." CVPR 2012 (RootSIFT: the square root of histogram descriptors, compared with the
   Euclidean distance, i.e. the Hellinger kernel).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp

from medfeat.errors import InputError
from medfeat.features.gift import (
    quantised_frequencies,
    CODES_COLUMN,
    MAX_GREY_LEVELS,
    N_BANDS,
    N_BLOCKS,
    N_CHROMATIC,
    N_CODES,
    N_FILTERS,
    N_GABOR_BLOCKS,
    SIZE,
    GiftFeatures,
    IdLayout,
    check_parts,
    column_names,
    gift_features,
    gift_rgb,
    grey_levels_of_row,
    id_layout,
    parts_of_row,
)

__all__ = ["DEFAULT_GREY_LEVELS", "DEFAULT_METHOD", "METHODS", "Index", "SearchResult"]

FORMAT = "medfeat-gift-index"
VERSION = 2
METHODS = ("hellinger", "gift", "intersection")
#: The scoring method :meth:`Index.search` uses unless told (chosen by ``bench/retrieval_eval.py``).
DEFAULT_METHOD = "hellinger"
#: GIFT grey levels of an index built from images unless told (chosen by ``bench/retrieval_eval.py``;
#: 4 is GIFT's own). A features table brings its own.
DEFAULT_GREY_LEVELS = 8
#: Weight of the foreground Gabor histograms against the foreground colour histogram in ``"hellinger"``.
GABOR_WEIGHT = 2.0
GIFT_METHODS = ("gift", "intersection")

N_GABOR = N_FILTERS * N_GABOR_BLOCKS      # 3072 (filter, block) pairs
N_GABOR_HIST = N_FILTERS * N_BANDS        # 120
_CHUNK = 4096                             # rows per chunk when building
_SCAN_TOP = 4096                          # larger `top`: score everything, then sort
_BACKGROUND = N_CHROMATIC                 # the darkest grey colour

SearchResult = tuple[str, float]


def descriptor_width(grey_levels: int) -> int:
    """Length of the ``"hellinger"`` descriptor: ``nc - 1`` colours and 120 Gabor bins."""
    return N_CHROMATIC + int(grey_levels) - 1 + N_GABOR_HIST


@dataclass(frozen=True)
class _Query:
    """A query's features: the descriptor, and GIFT's forms when they are known."""

    vector: np.ndarray                   # uint8 (descriptor_width,)
    ids: np.ndarray | None = None        # int32, ascending
    values: np.ndarray | None = None     # float32
    codes: np.ndarray | None = None      # uint8 (3412,)
    hists: np.ndarray | None = None      # float32 (nc + 120,)


# ---------------------------------------------------------------------------------------------
# the descriptor, and GIFT's sparse and dense forms, from GIFT's per-image arrays
# ---------------------------------------------------------------------------------------------
def _descriptors(blocks: np.ndarray, counts: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """The ``"hellinger"`` descriptors (uint8, ``(n, nc - 1 + 120)``) of ``n`` images from their block
    colours ``(n, 340)``, colour counts ``(n, nc)`` and Gabor bands ``(n, 3072)``; see the module
    docstring."""
    c = np.delete(np.asarray(counts, dtype=np.float64), _BACKGROUND, axis=1)
    s = c.sum(axis=1, keepdims=True)
    h = np.divide(c, s, out=np.zeros_like(c), where=s > 0)
    g = np.zeros((c.shape[0], N_GABOR_HIST))
    _foreground_gabor(np.ascontiguousarray(blocks, dtype=np.int32), np.ascontiguousarray(bands, dtype=np.uint8), g)
    x = np.concatenate([h, g], axis=1)
    return np.rint(np.sqrt(x) * 255.0).astype(np.uint8)


@numba.njit(cache=True, nogil=True)
def _foreground_gabor(blocks, bands, out):  # pragma: no cover - compiled
    """Per filter, the share of the foreground 16 x 16 blocks in each Gabor band."""
    for i in range(blocks.shape[0]):
        n_fg = 0
        for b in range(N_GABOR_BLOCKS):
            if blocks[i, b] != _BACKGROUND:
                n_fg += 1
        if n_fg == 0:
            continue
        for f in range(N_FILTERS):
            for b in range(N_GABOR_BLOCKS):
                if blocks[i, b] != _BACKGROUND:
                    out[i, f * N_BANDS + bands[i, f * N_GABOR_BLOCKS + b]] += 1.0
        for k in range(N_GABOR_HIST):
            out[i, k] /= n_fg


def _assemble(blocks: np.ndarray, counts: np.ndarray, bands: np.ndarray, n_colours: int,
              gift_parts: bool = True) -> dict:
    """The descriptor, and with ``gift_parts`` GIFT's sparse and dense forms, of ``n`` images from
    their block colours ``(n, 340)``, colour counts ``(n, nc)`` (pixels, summing to 65536) and Gabor
    bands ``(n, 3072)``.

    The sparse rows equal :meth:`GiftFeatures.to_sparse` (the same ids, in the same order, with
    the same float32 values). Returns a dict with ``vectors``, and ``lengths``, ``indices``,
    ``data``, ``codes``, ``hists``.
    """
    blocks = np.ascontiguousarray(blocks, dtype=np.int32)
    bands = np.ascontiguousarray(bands, dtype=np.uint8)
    out = {"vectors": _descriptors(blocks, counts, bands)}
    if not gift_parts:
        return out
    lay = IdLayout(n_colours)
    n = blocks.shape[0]
    col_vals, col_q = quantised_frequencies(np.asarray(counts), SIZE * SIZE)
    offsets = (np.arange(N_GABOR) // N_GABOR_BLOCKS) * N_BANDS
    key = bands.astype(np.int64) + offsets + (np.arange(n, dtype=np.int64) * N_GABOR_HIST)[:, None]
    band_counts = np.bincount(key.ravel(), minlength=n * N_GABOR_HIST).reshape(n, N_GABOR_HIST)
    gh_vals, _ = quantised_frequencies(band_counts, N_GABOR_BLOCKS)
    col_keep = col_q != 0
    gh_keep = band_counts != 0                                   # GIFT: n != 0 (not its rint)
    lengths = (N_BLOCKS + np.count_nonzero(col_keep, axis=1) + np.count_nonzero(bands, axis=1)
               + np.count_nonzero(gh_keep, axis=1))
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = np.empty(int(indptr[-1]), np.int32)
    data = np.empty(int(indptr[-1]), np.float32)
    _fill_rows(blocks, col_keep, col_vals, bands, gh_keep, gh_vals, n_colours, lay.colour_hist, lay.gabor_blocks,
               lay.gabor_hist, indptr, indices, data)
    out.update(lengths=lengths, indices=indices, data=data,
               codes=np.concatenate([blocks.astype(np.uint8), bands], axis=1),
               hists=np.concatenate([col_vals, gh_vals], axis=1))
    return out


@numba.njit(cache=True, nogil=True)
def _fill_rows(blocks, col_keep, col_vals, bands, gh_keep, gh_vals, nc, colour_hist, gabor_blocks, gabor_hist,
               indptr, indices, data):  # pragma: no cover - compiled
    """Each image's GIFT features in file order: blocks, colour histogram, Gabor blocks (band > 0),
    Gabor histograms."""
    for i in range(blocks.shape[0]):
        k = indptr[i]
        for b in range(blocks.shape[1]):
            indices[k] = b * nc + blocks[i, b]
            data[k] = 1.0
            k += 1
        for c in range(col_keep.shape[1]):
            if col_keep[i, c]:
                indices[k] = colour_hist + c
                data[k] = col_vals[i, c]
                k += 1
        for p in range(bands.shape[1]):
            if bands[i, p] != 0:
                indices[k] = gabor_blocks + p * 10 + bands[i, p]
                data[k] = 1.0
                k += 1
        for h in range(gh_keep.shape[1]):
            if gh_keep[i, h]:
                indices[k] = gabor_hist + h
                data[k] = gh_vals[i, h]
                k += 1


def _check_arrays(blocks, counts, bands, n_colours: int, where) -> None:
    """Refuse values that no GIFT feature set has (a corrupt or foreign table), naming ``where``."""
    try:
        check_parts(blocks, counts, bands, n_colours)
    except ValueError as exc:
        raise InputError(where, str(exc)) from None



# ---------------------------------------------------------------------------------------------
# the index
# ---------------------------------------------------------------------------------------------
class Index:
    """GIFT features of a collection of images, searchable by example.

    Build one with :meth:`from_table` (a production's ``features.parquet``), :meth:`from_images`
    (image files) or :meth:`from_features`; save it with :meth:`save`, load it with :meth:`load`,
    query it with :meth:`search`. See the module docstring for the stored forms and the scoring.

    Parameters
    ----------
    names : iterable of str
        Image names, one per row.
    vectors : ndarray of uint8, shape (N, nc - 1 + 120)
        The ``"hellinger"`` descriptors (see the module docstring).
    grey_levels : int
        GIFT grey bins the features were computed with.
    skipped : iterable of (str, str)
        Images or table rows left out, with the reason.
    gift : (matrix, codes, hists), optional
        GIFT's parts, for the ``"gift"`` and ``"intersection"`` methods.
    weights : (float, float), optional
        The descriptor's group weights ``(1 / V_h, 2 / V_g)``; computed from ``vectors`` when absent.

    Attributes
    ----------
    names : list of str
    grey_levels : int
    skipped : list of (str, str)
    weights : tuple of float
    matrix, codes, hists
        GIFT's parts (see the module docstring), or None for an index built without them.
    """

    def __init__(self, names, vectors, grey_levels: int = DEFAULT_GREY_LEVELS,
                 skipped: Iterable[tuple[str, str]] = (), *, gift=None, weights=None):
        self.layout = id_layout(grey_levels)
        self.grey_levels = int(grey_levels)
        self.names = [n if type(n) is str else os.fspath(n) if isinstance(n, os.PathLike) else str(n) for n in names]
        n = len(self.names)
        width = descriptor_width(self.grey_levels)
        vectors = np.asarray(vectors)
        if vectors.dtype != np.uint8 or vectors.shape != (n, width):
            raise ValueError(f"descriptors of shape {vectors.shape} ({vectors.dtype}) for {n} images and "
                             f"{grey_levels} grey levels: want ({n}, {width}) uint8")
        cols, fill = _varying_columns(vectors)
        self._set_vectors(np.ascontiguousarray(vectors[:, cols]), cols, fill, weights)
        self.matrix = self.codes = self.hists = None
        if gift is not None:
            self._set_gift(*gift)
        self.skipped = [(str(a), str(b)) for a, b in skipped]
        self._position = None
        self._duplicates = None
        self._df = None
        self._normalised = None

    def _set_vectors(self, stored, cols, fill, weights) -> None:
        self._vec = stored
        self._cols = np.asarray(cols, dtype=np.int64)
        self._fill = np.asarray(fill, dtype=np.uint8)
        self._split = int(np.count_nonzero(self._cols < self.layout.n_colours - 1))  # colour columns first
        self.weights = tuple(float(w) for w in weights) if weights is not None else _group_weights(stored, self._split)

    def _set_gift(self, matrix, codes, hists) -> None:
        n = len(self.names)
        nc = self.layout.n_colours
        matrix = sp.csr_matrix(matrix, dtype=np.float32)
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        hists = np.ascontiguousarray(hists, dtype=np.float32)
        if matrix.shape != (n, self.layout.n_features) or codes.shape != (n, N_CODES) \
                or hists.shape != (n, nc + N_GABOR_HIST):
            raise ValueError(f"inconsistent index parts for {n} images and {self.grey_levels} grey levels: matrix "
                             f"{matrix.shape}, codes {codes.shape}, hists {hists.shape}")
        self.matrix, self.codes, self.hists = matrix, codes, hists

    @property
    def has_gift_parts(self) -> bool:
        """Whether the index holds GIFT's parts (needed by the ``"gift"`` and ``"intersection"`` methods)."""
        return self.matrix is not None

    @property
    def vectors(self) -> np.ndarray:
        """The ``"hellinger"`` descriptors, uint8 ``(N, nc - 1 + 120)`` (rebuilt from the stored columns)."""
        out = np.empty((len(self), self._fill.size), np.uint8)
        out[:] = self._fill
        out[:, self._cols] = self._vec
        return out

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def _from_parts(cls, names, parts, grey_levels, skipped=(), gift_parts=False) -> "Index":
        """Stack ``_assemble`` outputs (a list of chunks) into an index."""
        lay = id_layout(grey_levels)
        nc = lay.n_colours
        width = descriptor_width(grey_levels)
        vectors = np.concatenate([p["vectors"] for p in parts]) if parts else np.zeros((0, width), np.uint8)
        for p in parts:
            p.pop("vectors")
        gift = None
        if gift_parts:
            lengths = [p["lengths"] for p in parts] or [np.zeros(0, np.int64)]
            indptr = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64)
            indices = np.concatenate([p["indices"] for p in parts]) if parts else np.zeros(0, np.int32)
            data = np.concatenate([p["data"] for p in parts]) if parts else np.zeros(0, np.float32)
            codes = np.concatenate([p["codes"] for p in parts]) if parts else np.zeros((0, N_CODES), np.uint8)
            hists = (np.concatenate([p["hists"] for p in parts]) if parts
                     else np.zeros((0, nc + N_GABOR_HIST), np.float32))
            matrix = sp.csr_matrix((data, indices, indptr), shape=(len(indptr) - 1, lay.n_features))
            matrix.has_sorted_indices = True
            gift = (matrix, codes, hists)
        return cls(names, vectors, grey_levels, skipped, gift=gift)

    @classmethod
    def from_features(cls, names: Iterable[str], features: Iterable[GiftFeatures],
                      skipped: Iterable[tuple[str, str]] = (), gift_parts: bool = False) -> "Index":
        """An index of already computed :class:`~medfeat.features.gift.GiftFeatures` (their grey
        levels; ``gift_parts``: keep GIFT's parts too, for the ``"gift"`` and ``"intersection"`` methods).

        Raises
        ------
        ValueError
            Names and features of different lengths, or features of different grey levels.
        """
        names = list(names)
        features = list(features)
        if len(names) != len(features):
            raise ValueError(f"{len(names)} names for {len(features)} feature sets")
        grey = {f.grey_levels for f in features} or {DEFAULT_GREY_LEVELS}
        if len(grey) != 1:
            raise ValueError(f"features of different grey levels {sorted(grey)} cannot share an index")
        g = grey.pop()
        nc = N_CHROMATIC + g
        parts = []
        for i in range(0, len(features), _CHUNK):
            chunk = features[i:i + _CHUNK]
            parts.append(_assemble(np.stack([f.block_colours for f in chunk]),
                                   np.stack([f.colour_counts for f in chunk]),
                                   np.stack([np.asarray(f.gabor_bands).reshape(-1) for f in chunk]), nc, gift_parts))
        return cls._from_parts(names, parts, g, skipped, gift_parts)

    @classmethod
    def from_images(cls, paths: Iterable[str | os.PathLike], grey_levels: int = DEFAULT_GREY_LEVELS,
                    errors: str = "skip", gift_parts: bool = False) -> "Index":
        """Index image files: each is read with :func:`medfeat.io.read_image`, brought to GIFT's
        256 x 256 RGB (:func:`~medfeat.features.gift.gift_rgb`) and described by
        :func:`~medfeat.features.gift.gift_features`.

        Parameters
        ----------
        paths : iterable of path
            Image files or DICOM series folders (one 2-D image each).
        grey_levels : int
            GIFT grey bins (default :data:`DEFAULT_GREY_LEVELS`; 4 is GIFT's).
        errors : {"skip", "raise"}
            A bad image is left out and listed in :attr:`skipped` (``"skip"``), or raises.
        gift_parts : bool
            Keep GIFT's parts too (for the ``"gift"`` and ``"intersection"`` methods; about 20 kB an image).

        Raises
        ------
        InputError
            A bad image when ``errors="raise"``.

        Notes
        -----
        One process, about 6 ms an image; for a large collection run a production (``medfeat run
        DATASET --families gift``, with ``gift_grey_levels = 8`` in its settings) and index its
        table with :meth:`from_table`.
        """
        from medfeat.io import read_image

        if errors not in ("skip", "raise"):
            raise ValueError(f"errors must be 'skip' or 'raise', not {errors!r}")
        nc = id_layout(grey_levels).n_colours
        names, parts, skipped = [], [], []
        chunk: list[GiftFeatures] = []

        def flush() -> None:  # keep only the compact forms, not every GiftFeatures
            if chunk:
                parts.append(_assemble(np.stack([f.block_colours for f in chunk]),
                                       np.stack([f.colour_counts for f in chunk]),
                                       np.stack([f.gabor_bands.reshape(-1) for f in chunk]), nc, gift_parts))
                chunk.clear()

        for p in paths:
            name = os.fspath(p)
            try:
                chunk.append(gift_features(gift_rgb(read_image(p), name), grey_levels=grey_levels))
                names.append(name)
            except InputError as exc:
                if errors == "raise":
                    raise
                skipped.append((name, str(exc)))
            except Exception as exc:  # a bug must not cost the other images their place
                if errors == "raise":
                    raise
                skipped.append((name, f"{name}: internal error: {type(exc).__name__}: {exc}"))
            if len(chunk) >= _CHUNK:
                flush()
        flush()
        return cls._from_parts(names, parts, grey_levels, skipped, gift_parts)

    @classmethod
    def from_table(cls, path: str | os.PathLike, gift_parts: bool = False) -> "Index":
        """Index the gift columns of a features table (a production's ``features.parquet``, or
        ``medfeat extract --families gift -o F.parquet``), in batches of 4096 rows.

        The grey levels follow from the number of ``gift_hist_*`` columns. Rows with an error
        (non-empty ``error``) or missing gift values are left out and listed in :attr:`skipped`.
        With ``gift_parts``, the sparse rows equal :func:`medfeat.features.gift.features_of_row` of
        each row.

        Raises
        ------
        InputError
            Unreadable or non-Parquet file, no ``image`` column, no or incomplete gift columns,
            values that no GIFT feature set has.
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        from medfeat.tables import gift_codes_matrix

        try:
            # pre_buffer=False: with it, iter_batches keeps about 1 kB a row (2.3 GB more RSS at 1,000,000 rows)
            pf = pq.ParquetFile(path, pre_buffer=False)
        except FileNotFoundError:
            raise InputError(path, "no such file") from None
        except (OSError, pa.ArrowException) as exc:
            raise InputError(path, f"not a readable Parquet features table ({exc})") from None
        cols = pf.schema_arrow.names
        if "image" not in cols:
            raise InputError(path, "not a features table: no 'image' column")
        nc = sum(1 for c in cols if c.startswith("gift_hist_"))
        if nc <= N_CHROMATIC:
            raise InputError(path, "no gift features in this table (no gift_hist_* columns; run with --families gift)")
        grey_levels = nc - N_CHROMATIC
        if grey_levels > MAX_GREY_LEVELS:
            raise InputError(path, f"{nc} gift_hist_* columns: more than GIFT's 256 colours")
        packed = CODES_COLUMN in cols  # a production's table: the 3,412 codes in one column
        n_block_end, n_hist_end = N_BLOCKS, N_BLOCKS + nc
        n_gab_end = n_hist_end + N_GABOR
        gift_cols = list(column_names(grey_levels))
        if packed:
            gift_cols = [CODES_COLUMN] + gift_cols[n_block_end:n_hist_end]
            if pf.schema_arrow.field(CODES_COLUMN).type != pa.binary(N_CODES):
                raise InputError(path, f"{CODES_COLUMN} is {pf.schema_arrow.field(CODES_COLUMN).type}, "
                                       f"not {N_CODES} bytes per row")
        else:
            gift_cols = gift_cols[:n_gab_end]           # GIFT's Gabor histograms follow from the bands
        missing = [c for c in gift_cols if c not in cols]
        if missing:
            raise InputError(path, f"incomplete gift columns ({len(missing)} missing, e.g. {missing[0]})")
        want = ["image"] + (["error"] if "error" in cols else []) + gift_cols
        names, parts, skipped = [], [], []
        # without GIFT's parts, the descriptors go straight into one array (no chunks to join)
        vectors = None if gift_parts else np.empty((pf.metadata.num_rows, descriptor_width(grey_levels)), np.uint8)
        done = 0
        try:
            batches = pf.iter_batches(batch_size=_CHUNK, columns=want)
            for batch in batches:
                image = batch.column("image").to_pylist()
                bad = np.zeros(batch.num_rows, bool)
                reasons = [""] * batch.num_rows
                if "error" in cols:
                    err = batch.column("error").to_pylist()
                    for i, e in enumerate(err):
                        if e:
                            bad[i], reasons[i] = True, str(e)
                first = len(want) - len(gift_cols)
                values = np.empty((len(gift_cols) - packed, batch.num_rows), dtype=np.float64).T  # filled by columns
                for k in range(packed, len(gift_cols)):
                    col = batch.column(first + k)  # by position: a name is looked up among 3,700
                    if col.null_count:
                        nulls = np.asarray(pc.is_null(col))
                        for i in np.flatnonzero(nulls & ~bad):
                            bad[i], reasons[i] = True, "missing gift values"
                        col = pc.fill_null(col, 0.0)
                    values[:, k - packed] = np.asarray(col, dtype=np.float64)
                if packed:
                    codes_col = batch.column(first)
                    if codes_col.null_count:
                        for i in np.flatnonzero(np.asarray(pc.is_null(codes_col)) & ~bad):
                            bad[i], reasons[i] = True, "missing gift values"
                    codes = gift_codes_matrix(codes_col)
                nonfinite = ~np.isfinite(values).all(axis=1) & ~bad
                for i in np.flatnonzero(nonfinite):
                    bad[i], reasons[i] = True, "missing gift values"
                for i in np.flatnonzero(bad):
                    skipped.append((str(image[i]), reasons[i]))
                good = ~bad
                if not good.any():
                    continue
                v = values[good] if not good.all() else values
                if packed:
                    c = codes[good] if not good.all() else codes
                    blocks, bands = c[:, :N_BLOCKS], c[:, N_BLOCKS:]
                    counts = np.rint(v * (SIZE * SIZE))
                else:
                    blocks = v[:, :n_block_end]
                    counts = np.rint(v[:, n_block_end:n_hist_end] * (SIZE * SIZE))
                    bands = v[:, n_hist_end:n_gab_end]
                _check_arrays(blocks, counts, bands, nc, path)
                p = _assemble(np.ascontiguousarray(blocks, dtype=np.int32), counts.astype(np.int64),
                              np.ascontiguousarray(bands, dtype=np.uint8), nc, gift_parts)
                if gift_parts:
                    parts.append(p)
                else:
                    vectors[done:done + len(p["vectors"])] = p["vectors"]
                    done += len(p["vectors"])
                names.extend(str(image[i]) for i in np.flatnonzero(good))
        except (OSError, pa.ArrowException) as exc:
            raise InputError(path, f"cannot read the table ({exc})") from None
        if gift_parts:
            return cls._from_parts(names, parts, grey_levels, skipped, gift_parts)
        return cls(names, vectors[:done], grey_levels, skipped)

    # -- saving and loading ------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the index to one ``.npz`` file (replaced atomically; no pickles inside)."""
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        encoded = [n.encode("utf-8", "surrogateescape") for n in self.names]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(b) for b in encoded], out=offsets[1:])
        arrays = dict(format=np.array(FORMAT), version=np.array(VERSION), grey_levels=np.array(self.grey_levels),
                      names_utf8=np.frombuffer(b"".join(encoded), dtype=np.uint8), names_offsets=offsets,
                      vectors=self._vec, vector_columns=self._cols, vector_fill=self._fill,
                      weights=np.array(self.weights, dtype=np.float64),
                      skipped=np.array([s[0] for s in self.skipped], dtype=str).reshape(-1),
                      skipped_reasons=np.array([s[1] for s in self.skipped], dtype=str).reshape(-1))
        del encoded
        if self.has_gift_parts:
            m = self.matrix
            arrays.update(indptr=m.indptr.astype(np.int64), indices=m.indices.astype(np.int32),
                          data=m.data.astype(np.float32), codes=self.codes, hists=self.hists)
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Index":
        """Read an index written by :meth:`save` (format version 1 or 2).

        Raises
        ------
        InputError
            Missing file, not an index, a newer format, or inconsistent parts.
        """
        import zipfile

        if os.path.isfile(path) and not is_index_file(path):
            raise InputError(path, "not a medfeat retrieval index (not an .npz file; build one with `medfeat index`)")
        try:
            with np.load(path, allow_pickle=False) as z:
                if "format" not in z.files or str(z["format"]) != FORMAT:
                    raise InputError(path, "not a medfeat retrieval index (build one with `medfeat index`)")
                version = int(z["version"])
                if version > VERSION or version < 1:
                    raise InputError(path, f"index format version {version} is not one this medfeat reads "
                                           f"(1..{VERSION}); rebuild it with `medfeat index`")
                g = int(z["grey_levels"])
                lay = id_layout(g)
                skipped = list(zip(z["skipped"].tolist(), z["skipped_reasons"].tolist()))
                gift = None
                if "indptr" in z.files:
                    if version == 1:
                        n = len(z["names"])
                    else:
                        n = len(z["names_offsets"]) - 1
                    matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=(n, lay.n_features))
                    matrix.check_format(full_check=True)  # ids in range: the compiled scorers index with them
                    gift = (matrix, z["codes"], z["hists"])
                if version == 1:  # GIFT's parts only: the descriptor from them
                    names = z["names"].tolist()
                    codes, hists = gift[1], gift[2]
                    n_hist = lay.n_colours + N_GABOR_HIST
                    if codes.shape != (len(names), N_CODES) or hists.shape != (len(names), n_hist):
                        raise ValueError("inconsistent codes and histograms")
                    if codes.size and (codes[:, :N_BLOCKS].max() >= lay.n_colours
                                       or codes[:, N_BLOCKS:].max() >= N_BANDS):
                        raise ValueError("block colours or Gabor bands out of range")
                    counts = np.rint(hists[:, :lay.n_colours].astype(np.float64) * (SIZE * SIZE))
                    vectors = np.concatenate([_descriptors(codes[i:i + _CHUNK, :N_BLOCKS], counts[i:i + _CHUNK],
                                                           codes[i:i + _CHUNK, N_BLOCKS:])
                                              for i in range(0, len(names), _CHUNK)] or
                                             [np.zeros((0, descriptor_width(g)), np.uint8)])
                    return cls(names, vectors, g, skipped, gift=gift)
                blob = z["names_utf8"].tobytes()
                offsets = z["names_offsets"]
                if offsets.ndim != 1 or offsets.size < 1 or offsets[0] != 0 or offsets[-1] != len(blob) \
                        or (np.diff(offsets) < 0).any():
                    raise ValueError("inconsistent names")
                off = offsets.tolist()
                names = [blob[a:b].decode("utf-8", "surrogateescape") for a, b in zip(off[:-1], off[1:])]
                del blob, off
                idx = cls.__new__(cls)
                idx.layout, idx.grey_levels, idx.names = lay, g, names
                stored, cols, fill, weights = z["vectors"], z["vector_columns"], z["vector_fill"], z["weights"]
                width = descriptor_width(g)
                if stored.dtype != np.uint8 or stored.shape != (len(names), cols.size) or fill.shape != (width,) \
                        or weights.shape != (2,) or (cols.size and (cols.min() < 0 or cols.max() >= width
                                                                   or (np.diff(cols) <= 0).any())):
                    raise ValueError("inconsistent descriptors")
                idx._set_vectors(np.ascontiguousarray(stored), cols, fill, weights)
                idx.matrix = idx.codes = idx.hists = None
                if gift is not None:
                    idx._set_gift(*gift)
                idx.skipped = [(str(a), str(b)) for a, b in skipped]
                idx._position = idx._duplicates = idx._df = idx._normalised = None
                return idx
        except FileNotFoundError:
            raise InputError(path, "no such file") from None
        except IsADirectoryError:
            raise InputError(path, "is a folder, not an index file") from None
        except InputError:
            raise
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
            raise InputError(path, f"not a readable medfeat retrieval index ({exc})") from None

    # -- collection statistics -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        gift = f", GIFT's parts ({self.matrix.nnz} features)" if self.has_gift_parts else ""
        return (f"Index({len(self)} images, grey_levels={self.grey_levels}, {self._vec.shape[1]} descriptor columns"
                f"{gift}, {len(self.skipped)} skipped)")

    def _need_gift(self, method: str) -> None:
        if not self.has_gift_parts:
            raise ValueError(f"method {method!r} needs GIFT's parts, and this index was built without them "
                             "(build it with gift_parts=True: `medfeat index --gift-parts`)")

    @property
    def document_frequency(self) -> np.ndarray:
        """Number of indexed images having each feature id, int64 (F,) (needs GIFT's parts)."""
        self._need_gift("gift")
        if self._df is None:
            self._df = np.zeros(self.layout.n_features, dtype=np.int64)
            _count_ids(self.matrix.indices, self._df)
        return self._df

    @property
    def collection_frequency(self) -> np.ndarray:
        """``cf_j``: share of the indexed images having feature ``j`` (0 for an empty index)."""
        return self.document_frequency / max(len(self), 1)

    def _normalised_hists(self) -> np.ndarray:
        """``hists`` with the colour histogram normalised to sum 1 and each Gabor histogram too."""
        if self._normalised is None:
            self._normalised = _normalise(self.hists, self.layout.n_colours)
        return self._normalised

    def _name_rows(self) -> None:
        if self._position is None:
            pos: dict[str, int] = {}
            dup: dict[str, list[int]] = {}
            for i, n in enumerate(self.names):
                j = pos.setdefault(n, i)
                if j != i:
                    dup.setdefault(n, [j]).append(i)
            self._position, self._duplicates = pos, dup

    def position(self, name: str) -> int | None:
        """Row of an image name (its first row), or None."""
        self._name_rows()
        return self._position.get(name)

    def rows(self, name: str) -> list[int]:
        """Every row of an image name (a table may list an image twice)."""
        self._name_rows()
        if name in self._duplicates:
            return list(self._duplicates[name])
        i = self._position.get(name)
        return [] if i is None else [i]

    # -- queries ----------------------------------------------------------------------------
    def _row_query(self, i: int) -> _Query:
        vector = self._fill.copy()
        vector[self._cols] = self._vec[i]
        if not self.has_gift_parts:
            return _Query(vector)
        m = self.matrix
        a, b = m.indptr[i], m.indptr[i + 1]
        return _Query(vector, m.indices[a:b].astype(np.int32), m.data[a:b].astype(np.float32), self.codes[i],
                      self.hists[i])

    def _query(self, query) -> _Query:
        """The query's features, from any accepted kind of query (see :meth:`search`)."""
        if isinstance(query, _Query):
            return query
        if isinstance(query, GiftFeatures):
            if query.grey_levels != self.grey_levels:
                raise ValueError(f"query features have {query.grey_levels} grey levels, the index "
                                 f"{self.grey_levels}")
            return self._arrays_query(query.block_colours, query.colour_counts, query.gabor_bands)
        if isinstance(query, Mapping):
            g = grey_levels_of_row(query)
            if g != self.grey_levels:
                raise ValueError(f"the row has {max(g, 0)} grey levels' gift columns, the index {self.grey_levels}")
            return self._arrays_query(*parts_of_row(query))
        if isinstance(query, tuple) and len(query) == 2 and not isinstance(query[0], (str, os.PathLike)):
            return self._sparse_query(*query)
        if isinstance(query, (str, os.PathLike)):
            i = self.position(os.fspath(query))
            if i is not None:
                return self._row_query(i)
            from medfeat.io import read_image

            query = read_image(query)
        elif isinstance(query, np.ndarray) and query.ndim == 3 and query.shape[2] == 3:
            query = query[np.newaxis]  # an (H, W, 3) picture, not a volume of H slices
        rgb = gift_rgb(query, getattr(query, "source", "") or "<query>")
        f = gift_features(rgb, grey_levels=self.grey_levels)
        return self._arrays_query(f.block_colours, f.colour_counts, f.gabor_bands)

    def _arrays_query(self, blocks, counts, bands) -> _Query:
        nc = self.layout.n_colours
        blocks = np.asarray(blocks).reshape(1, N_BLOCKS)
        counts = np.asarray(counts).reshape(1, nc)
        bands = np.asarray(bands).reshape(1, N_GABOR)
        _check_arrays(blocks, counts, bands, nc, "<query>")
        p = _assemble(blocks.astype(np.int64), counts.astype(np.int64), bands.astype(np.uint8), nc)
        return _Query(p["vectors"][0], p["indices"], p["data"], p["codes"][0], p["hists"][0])

    def _sparse_query(self, ids, values) -> _Query:
        """A query from GIFT's ``(ids, values)`` (e.g. :func:`~medfeat.features.gift.read_fts`); its
        descriptor takes the colour histogram from GIFT's 1/255 steps."""
        lay = self.layout
        nc = lay.n_colours
        ids = np.asarray(ids, dtype=np.int64)
        values = np.asarray(values, dtype=np.float32)
        if ids.ndim != 1 or ids.shape != values.shape:
            raise ValueError("a sparse query needs 1-D ids and values of one length")
        order = np.argsort(ids, kind="stable")
        ids, values = ids[order], values[order]
        if ids.size and (ids[0] < 0 or ids[-1] >= lay.n_features or (np.diff(ids) == 0).any()):
            raise ValueError(f"sparse query ids must be distinct and in 0..{lay.n_features - 1}")
        blk = ids[ids < lay.colour_hist]
        if blk.size != N_BLOCKS or not np.array_equal(blk // nc, np.arange(N_BLOCKS)):
            raise ValueError(f"not a GIFT feature set for {self.grey_levels} grey levels: it must have one "
                             f"colour per block (ids k * {nc} + colour for k = 0..{N_BLOCKS - 1})")
        codes = np.zeros(N_CODES, np.uint8)
        codes[:N_BLOCKS] = blk % nc
        gab = ids[(ids >= lay.gabor_blocks) & (ids < lay.gabor_hist)] - lay.gabor_blocks
        codes[N_BLOCKS + gab // N_BANDS] = gab % N_BANDS
        hists = np.zeros(nc + N_GABOR_HIST, np.float32)
        ch = (ids >= lay.colour_hist) & (ids < lay.gabor_blocks)
        hists[ids[ch] - lay.colour_hist] = values[ch]
        gh = ids >= lay.gabor_hist
        hists[nc + ids[gh] - lay.gabor_hist] = values[gh]
        counts = np.rint(hists[np.newaxis, :nc].astype(np.float64) * (SIZE * SIZE))
        vector = _descriptors(codes[np.newaxis, :N_BLOCKS], counts, codes[np.newaxis, N_BLOCKS:])[0]
        return _Query(vector, ids.astype(np.int32), values, codes, hists)

    def _query_vector(self, q: _Query) -> tuple[np.ndarray, float]:
        """The query's stored columns, and the distance that its other columns add to every image."""
        if q.vector.shape != self._fill.shape:
            raise ValueError(f"a query descriptor of {q.vector.size} values for an index of {self._fill.size}")
        wh, wg = self.weights
        d = q.vector.astype(np.int64) - self._fill.astype(np.int64)
        d[self._cols] = 0
        split = self.layout.n_colours - 1
        const = (wh * float(np.dot(d[:split], d[:split])) + wg * float(np.dot(d[split:], d[split:]))) / 65025.0
        return np.ascontiguousarray(q.vector[self._cols]), const

    def _distances(self, q: _Query) -> np.ndarray:
        """``D`` of every indexed image (see the module docstring), float64."""
        qv, const = self._query_vector(q)
        out = np.empty(len(self))
        wh, wg = self.weights
        _hellinger_distances(self._vec, qv, self._split, wh / 65025.0, wg / 65025.0, out)
        return out + const

    def scores(self, query, method: str = DEFAULT_METHOD, histogram_idf: bool = True) -> np.ndarray:
        """The score of every indexed image for ``query`` (float64, one per row), see the module
        docstring. ``query`` is anything :meth:`search` accepts."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
        if method in GIFT_METHODS:
            self._need_gift(method)
        q = self._query(query)
        if method == "hellinger":
            return 1.0 / (1.0 + self._distances(q))
        if q.ids is None:
            raise ValueError("this query has only the descriptor")  # a _Query made by hand
        if method == "gift":
            return self._gift_scores(q, histogram_idf)
        return self._intersection_scores(q)

    def _gift_scores(self, q: _Query, histogram_idf: bool) -> np.ndarray:
        lay = self.layout
        n = len(self)
        if n == 0:
            return np.zeros(0)
        ids = q.ids.astype(np.int64)
        df = self.document_frequency[ids]
        with np.errstate(divide="ignore"):
            w = np.where(df > 0, np.log(n / np.maximum(df, 1)) ** 2, 0.0)  # log(1/cf)^2
        hist = ((ids >= lay.colour_hist) & (ids < lay.gabor_blocks)) | (ids >= lay.gabor_hist)
        # block features: sum of w over the query's features each image has. Scanning the CSR rows
        # against a dense weight vector equals walking GIFT's inverted file for the query's
        # features, needs no inverted copy of the matrix, and sums each image in id order.
        v = np.zeros(lay.n_features)
        v[ids[~hist]] = w[~hist]
        m = self.matrix
        score = np.zeros(n)
        _add_row_weights(m.indptr, m.indices, v, score)
        own = np.zeros(1)
        _add_row_weights(np.array([0, ids.size], dtype=np.int64), ids.astype(m.indices.dtype), v, own)
        self_score = float(own[0])  # the query's own row gives bit for bit the same sum
        # histogram features: sum of min(q_j, d_j) (x w_j) over the query's histogram features
        nc = lay.n_colours
        hid = ids[hist]
        hcol = np.where(hid < lay.gabor_blocks, hid - lay.colour_hist, nc + hid - lay.gabor_hist)
        qv = q.values[hist].astype(np.float32)
        wh = w[hist] if histogram_idf else np.ones(hid.size)
        if hcol.size:
            _add_intersections(self.hists, hcol, qv, wh, score)
            own = np.zeros(1)
            _add_intersections(qv[np.newaxis], np.arange(qv.size), qv, wh, own)  # the same sums
            self_score += float(own[0])
        if self_score <= 0:
            return np.zeros(n)
        return score / self_score

    def _intersection_scores(self, q: _Query) -> np.ndarray:
        n = len(self)
        nc = self.layout.n_colours
        qn = _normalise(q.hists[np.newaxis], nc)[0]
        hn = self._normalised_hists()
        ccols = np.flatnonzero(qn[:nc])
        gcols = nc + np.flatnonzero(qn[nc:])
        out = np.empty(n)
        _intersections(self.codes, q.codes, hn, qn, ccols, gcols, out)
        return np.minimum(out, 1.0)  # float32 normalised histograms may sum to 1 + 1e-7


    def _exclude_mask(self, exclude) -> np.ndarray | None:
        if exclude is None:
            return None
        if isinstance(exclude, np.ndarray) and exclude.dtype == bool:
            if exclude.shape != (len(self),):
                raise ValueError(f"exclude mask of shape {exclude.shape} for {len(self)} images")
            return exclude
        mask = np.zeros(len(self), bool)
        for e in ([exclude] if isinstance(exclude, (str, os.PathLike)) else exclude):
            mask[self.rows(os.fspath(e))] = True
        return mask

    def search(self, query, top: int = 10, method: str = DEFAULT_METHOD,
               exclude: Iterable[str] | np.ndarray | None = None,
               histogram_idf: bool = True) -> list[SearchResult]:
        """The ``top`` indexed images most similar to ``query``, best first.

        Parameters
        ----------
        query
            An indexed image's name (its stored features are used); an image file path; a
            :class:`medfeat.image.Image` or pixel array (``(H, W)`` or ``(H, W, 3)``; read as
            GIFT reads images);
            :class:`~medfeat.features.gift.GiftFeatures`; a row of gift columns (a mapping, e.g.
            :func:`medfeat.extract` with ``families=["gift"]``); or GIFT's ``(ids, values)``
            (e.g. :func:`~medfeat.features.gift.read_fts`). Features must have the index's grey
            levels.
        top : int
            Number of results (fewer if the index holds fewer eligible images).
        method : {"hellinger", "gift", "intersection"}
            Scoring, see the module docstring; the last two need GIFT's parts.
        exclude : iterable of str, or boolean array of length N, optional
            Image names (or a mask of rows) never to return, e.g. the query itself.
        histogram_idf : bool
            ``"gift"`` only: weight histogram features by ``log(1/cf)^2`` (default) or not (GIFT
            0.1.15a's code).

        Returns
        -------
        list of (str, float)
            ``(image name, score)``, scores descending; ties in index order.
        """
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
        top = max(int(top), 0)
        mask = self._exclude_mask(exclude)
        if top == 0 or len(self) == 0:
            return []
        if method == "hellinger" and top <= _SCAN_TOP:
            # one pass that keeps the best `top` rows: no score array, no sort of N values
            qv, const = self._query_vector(self._query(query))
            wh, wg = self.weights
            rows = np.full(top, -1, np.int64)
            dist = np.full(top, np.inf)
            _hellinger_top(self._vec, qv, self._split, wh / 65025.0, wg / 65025.0,
                           np.zeros(0, bool) if mask is None else mask, rows, dist)
            keep = rows >= 0
            return [(self.names[i], float(1.0 / (1.0 + (d + const)))) for i, d in zip(rows[keep], dist[keep])]
        s = self.scores(query, method=method, histogram_idf=histogram_idf)
        rows = np.flatnonzero(~mask) if mask is not None else np.arange(len(self))
        if rows.size == 0:
            return []
        cand = s[rows]
        if top < rows.size:
            part = np.argpartition(-cand, top - 1)[:top]
            kth = cand[part].min()
            part = np.flatnonzero(cand >= kth)  # every tie of the last place, then order
        else:
            part = np.arange(rows.size)
        order = part[np.lexsort((rows[part], -cand[part]))][:top]
        return [(self.names[rows[i]], float(cand[i])) for i in order]


def _varying_columns(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The columns of ``vectors`` that vary over the rows, and every column's value in the first row
    (the value of the constant ones)."""
    n, width = vectors.shape
    if n == 0:
        return np.arange(width), np.zeros(width, np.uint8)
    first = vectors[0].copy()
    varies = np.zeros(width, bool)
    for i in range(0, n, 65536):
        varies |= (vectors[i:i + 65536] != first).any(axis=0)
    return np.flatnonzero(varies), first


def _group_weights(stored: np.ndarray, split: int) -> tuple[float, float]:
    """``(1 / V_h, GABOR_WEIGHT / V_g)``: ``V`` is the mean squared distance of two rows within a
    group (twice the sum of its column variances), in units of the stored values / 255."""
    n, k = stored.shape
    s1 = np.zeros(k)
    s2 = np.zeros(k)
    for i in range(0, n, 65536):
        chunk = stored[i:i + 65536].astype(np.float64) / 255.0
        s1 += chunk.sum(axis=0)
        s2 += (chunk * chunk).sum(axis=0)
    var = np.maximum(s2 / max(n, 1) - (s1 / max(n, 1)) ** 2, 0.0)
    v_h, v_g = 2.0 * var[:split].sum(), 2.0 * var[split:].sum()
    return (1.0 / v_h if v_h > 1e-12 else 1.0), (GABOR_WEIGHT / v_g if v_g > 1e-12 else GABOR_WEIGHT)


@numba.njit(cache=True, nogil=True)
def _hellinger_distances(vec, q, split, wh, wg, out):  # pragma: no cover - compiled
    """``out[i] = wh |vec[i, :split] - q[:split]|^2 + wg |vec[i, split:] - q[split:]|^2`` (exact sums)."""
    n, d = vec.shape
    for i in range(n):
        row = vec[i]
        sh = np.int32(0)
        for j in range(split):
            t = np.int32(row[j]) - np.int32(q[j])
            sh += t * t
        sg = np.int32(0)
        for j in range(d - split):  # a loop from 0: LLVM vectorises it, from `split` not
            t = np.int32(row[split + j]) - np.int32(q[split + j])
            sg += t * t
        out[i] = wh * sh + wg * sg


@numba.njit(cache=True, nogil=True)
def _hellinger_top(vec, q, split, wh, wg, exclude, rows, dist):  # pragma: no cover - compiled
    """The ``rows.size`` rows of least distance (as :func:`_hellinger_distances`), ascending, ties in
    row order, skipping rows where ``exclude`` (empty: none) is True; unfilled places keep row -1.
    Distances are computed 4096 rows at a time (the vectorised pass), then the best kept."""
    n = vec.shape[0]
    k = rows.size
    masked = exclude.size == n
    worst = np.inf
    filled = 0
    buf = np.empty(4096)
    for start in range(0, n, 4096):
        stop = min(n, start + 4096)
        _hellinger_distances(vec[start:stop], q, split, wh, wg, buf)
        for i in range(start, stop):
            x = buf[i - start]
            if (filled == k and x >= worst) or (masked and exclude[i]):
                continue
            p = filled if filled < k else k - 1      # insertion: after every equal distance
            while p > 0 and dist[p - 1] > x:
                dist[p] = dist[p - 1]
                rows[p] = rows[p - 1]
                p -= 1
            dist[p] = x
            rows[p] = i
            if filled < k:
                filled += 1
            worst = dist[k - 1] if filled == k else np.inf


@numba.njit(cache=True, nogil=True)
def _count_ids(indices, out):  # pragma: no cover - compiled
    """``out[j] +=`` the number of times ``j`` occurs in ``indices`` (document frequencies)."""
    for k in range(indices.size):
        out[indices[k]] += 1


@numba.njit(cache=True, nogil=True)
def _add_row_weights(indptr, indices, v, out):  # pragma: no cover - compiled
    """``out[i] += sum of v[j]`` over the features ``j`` of row ``i`` (CSR), summed in id order."""
    for i in range(out.size):
        s = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            s += v[indices[k]]
        out[i] += s


@numba.njit(cache=True, nogil=True)
def _add_intersections(hists, cols, qv, weights, out):  # pragma: no cover - compiled
    """``out[i] += sum_c min(hists[i, cols[c]], qv[c]) * weights[c]`` (weighted histogram intersection)."""
    for i in range(hists.shape[0]):
        s = 0.0
        for c in range(cols.size):
            d = hists[i, cols[c]]
            s += np.float64(min(d, qv[c])) * weights[c]
        out[i] += s


@numba.njit(cache=True, nogil=True)
def _intersections(codes, qcodes, hn, qn, ccols, gcols, out):  # pragma: no cover - compiled
    """The four-part histogram intersection of every row with the query (see the module docstring)."""
    n_blocks = N_BLOCKS
    n_codes = codes.shape[1]
    for i in range(codes.shape[0]):
        row = codes[i]
        same_blocks = np.int32(0)
        for p in range(n_blocks):
            same_blocks += np.int32(row[p] == qcodes[p])
        same_gabor = np.int32(0)
        for p in range(n_codes - n_blocks):  # (a loop from 0: LLVM vectorises it, from n_blocks not)
            same_gabor += np.int32(row[n_blocks + p] == qcodes[n_blocks + p])
        colour = 0.0
        for k in ccols:
            colour += min(hn[i, k], qn[k])
        gab_hist = 0.0
        for k in gcols:
            gab_hist += min(hn[i, k], qn[k])
        out[i] = (same_blocks / n_blocks + colour + same_gabor / (n_codes - n_blocks) + gab_hist / N_FILTERS) / 4.0


def _normalise(hists: np.ndarray, n_colours: int) -> np.ndarray:
    """Colour histogram / its sum and each Gabor histogram / its sum (float32; 0 stays 0)."""
    h = np.asarray(hists, dtype=np.float64)
    out = np.empty(h.shape, dtype=np.float32)
    col = h[:, :n_colours]
    s = col.sum(axis=1, keepdims=True)
    out[:, :n_colours] = np.divide(col, s, out=np.zeros_like(col), where=s > 0)
    gab = h[:, n_colours:].reshape(len(h), N_FILTERS, N_BANDS)
    s = gab.sum(axis=2, keepdims=True)
    out[:, n_colours:] = np.divide(gab, s, out=np.zeros_like(gab), where=s > 0).reshape(len(h), -1)
    return out


def is_index_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` looks like a saved index (a zip file: ``.npz``)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def looks_like_parquet(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a Parquet file (magic ``PAR1``)."""
    p = Path(path)
    if not p.is_file():
        return False
    try:
        with open(p, "rb") as fh:
            return fh.read(4) == b"PAR1"
    except OSError:
        return False
