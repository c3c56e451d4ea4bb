"""Search by example over GNU GIFT features: an inverted-file index with GIFT's weighting.

GIFT (the GNU Image-Finding Tool) treats the sparse features of an image like the words of a
text [1]_ [2]_: an image is a set of feature ids, each with a value (its "term frequency"), and a
query is answered by walking the *inverted file* -- for each feature of the query, the list of
indexed images that have it -- and adding a weighted contribution to each such image's score.
This module builds such an index over the features of :mod:`medfeat.features.gift` (GIFT
0.1.15a's ``gift-extract-features``, reproduced exactly), saves it to one file, and answers
queries with two scoring methods.

The index
---------
:class:`Index` holds, for ``N`` images:

* ``names``: the image names (paths, or the ``image`` column of a features table);
* ``matrix``: the sparse form as a ``scipy.sparse.csr_matrix`` of shape ``(N, F)``, float32 --
  row ``i`` holds image ``i``'s GIFT features, ids ascending as in GIFT's ``.fts`` files (``F`` =
  87446 ids for GIFT's 4 greys). Its columns are GIFT's inverted file (column ``j``: the images
  having feature ``j``).
* the dense form, one fixed-length row per image (exactly the sparse form re-arranged):
  ``codes`` (N, 3412) uint8 -- the colour of each of the 340 colour blocks, then the Gabor band
  (0..9) of each of the 12 x 256 Gabor blocks -- and ``hists`` (N, nc + 120) float32 -- the colour
  histogram and the 12 Gabor histograms with GIFT's quantised values (``rint(255 x) / 255``; 0
  where GIFT writes no feature). Kept dense because a 100,000-image id-space matrix (87446
  float32 per image) would take 35 GB; this takes 4.6 kB per image.

Scoring (``method``)
--------------------
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

(the blocks' one-hot colour and band vectors, normalised, intersect to the share of equal blocks).

Both run over the whole index in one compiled pass (:mod:`numba`, ``cache=True``): ``"gift"``
scans the CSR rows against a dense vector of the query's block-feature weights (the same sums as
walking the inverted file for the query's features, without a second, inverted copy of the
matrix) and intersects the query's histogram features with the dense ``hists``;
``"intersection"`` compares the dense rows. On 100,000 images either takes about 0.1 s a query
(``bench/retrieval_eval.py``).

File format
-----------
One ``.npz`` (numpy's zip of ``.npy`` arrays, read with ``allow_pickle=False``): ``format``
(``"medfeat-gift-index"``), ``version``, ``grey_levels``, ``names`` (unicode), ``indptr``,
``indices``, ``data`` (the CSR matrix), ``codes``, ``hists``, ``skipped`` (names of the images or
rows left out, with ``skipped_reasons``).

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
    FREQ_MAX,
    GREY_LEVELS,
    MAX_GREY_LEVELS,
    N_BANDS,
    N_BLOCKS,
    N_CHROMATIC,
    N_FILTERS,
    N_GABOR_BLOCKS,
    SIZE,
    GiftFeatures,
    IdLayout,
    column_names,
    gift_features,
    gift_rgb,
    id_layout,
)

__all__ = ["DEFAULT_METHOD", "METHODS", "Index", "SearchResult"]

FORMAT = "medfeat-gift-index"
VERSION = 1
METHODS = ("gift", "intersection")
#: The scoring method :meth:`Index.search` uses unless told (chosen by ``bench/retrieval_eval.py``).
DEFAULT_METHOD = "gift"

N_GABOR = N_FILTERS * N_GABOR_BLOCKS      # 3072 (filter, block) pairs
N_CODES = N_BLOCKS + N_GABOR              # 3412 dense codes per image
N_GABOR_HIST = N_FILTERS * N_BANDS        # 120
_CHUNK = 4096                             # rows per chunk when building

SearchResult = tuple[str, float]


@dataclass(frozen=True)
class _Query:
    """A query's features in both forms (see the module docstring)."""

    ids: np.ndarray      # int32, ascending
    values: np.ndarray   # float32
    codes: np.ndarray    # uint8 (3412,)
    hists: np.ndarray    # float32 (nc + 120,)


# ---------------------------------------------------------------------------------------------
# sparse and dense forms from GIFT's per-image arrays (vectorised over images)
# ---------------------------------------------------------------------------------------------
def _quantised(count: np.ndarray, total: int) -> np.ndarray:
    """GIFT's stored frequencies ``(float)rint(255 n / total) / (float)255`` (float32), and ``rint``."""
    q = np.rint(FREQ_MAX * count.astype(np.float64) / float(total))
    return q.astype(np.float32) / np.float32(FREQ_MAX), q


def _assemble(blocks: np.ndarray, counts: np.ndarray, bands: np.ndarray, n_colours: int):
    """Sparse and dense forms of ``n`` images from their block colours ``(n, 340)``, colour
    counts ``(n, nc)`` (pixels, summing to 65536) and Gabor bands ``(n, 3072)``.

    The sparse rows equal :meth:`GiftFeatures.to_sparse` (the same ids, in the same order, with
    the same float32 values). Returns ``(row_lengths, indices, data, codes, hists)``.
    """
    lay = IdLayout(n_colours)
    n = blocks.shape[0]
    blocks = np.ascontiguousarray(blocks, dtype=np.int32)
    bands = np.ascontiguousarray(bands, dtype=np.uint8)
    col_vals, col_q = _quantised(np.asarray(counts), SIZE * SIZE)
    offsets = (np.arange(N_GABOR) // N_GABOR_BLOCKS) * N_BANDS
    key = bands.astype(np.int64) + offsets + (np.arange(n, dtype=np.int64) * N_GABOR_HIST)[:, None]
    band_counts = np.bincount(key.ravel(), minlength=n * N_GABOR_HIST).reshape(n, N_GABOR_HIST)
    gh_vals, _ = _quantised(band_counts, N_GABOR_BLOCKS)
    col_keep = col_q != 0
    gh_keep = band_counts != 0                                   # GIFT: n != 0 (not its rint)
    lengths = (N_BLOCKS + np.count_nonzero(col_keep, axis=1) + np.count_nonzero(bands, axis=1)
               + np.count_nonzero(gh_keep, axis=1))
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = np.empty(int(indptr[-1]), np.int32)
    data = np.empty(int(indptr[-1]), np.float32)
    _fill_rows(blocks, col_keep, col_vals, bands, gh_keep, gh_vals, n_colours, lay.colour_hist, lay.gabor_blocks,
               lay.gabor_hist, indptr, indices, data)
    codes = np.concatenate([blocks.astype(np.uint8), bands], axis=1)
    hists = np.concatenate([col_vals, gh_vals], axis=1)
    return lengths, indices, data, codes, hists


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
    """Refuse values that no GIFT feature set has (a corrupt or foreign table)."""
    if blocks.size and (blocks.min() < 0 or blocks.max() >= n_colours):
        raise InputError(where, f"gift block colours outside 0..{n_colours - 1}")
    if bands.size and (bands.min() < 0 or bands.max() >= N_BANDS):
        raise InputError(where, f"gift Gabor bands outside 0..{N_BANDS - 1}")
    if counts.size and (counts.min() < 0 or (counts.sum(axis=1) != SIZE * SIZE).any()):
        raise InputError(where, "gift colour histograms that are not fractions of 256 x 256 pixels")


# ---------------------------------------------------------------------------------------------
# the index
# ---------------------------------------------------------------------------------------------
class Index:
    """GIFT features of a collection of images, searchable by example.

    Build one with :meth:`from_table` (a production's ``features.parquet``), :meth:`from_images`
    (image files) or :meth:`from_features`; save it with :meth:`save`, load it with :meth:`load`,
    query it with :meth:`search`. See the module docstring for the stored forms and the scoring.

    Attributes
    ----------
    names : list of str
        Image names, one per row.
    matrix : scipy.sparse.csr_matrix, float32, shape (N, F)
        GIFT's sparse features, row by row (ids ascending, as in ``.fts`` files).
    codes : ndarray of uint8, shape (N, 3412)
        Dense form: colours of the 340 blocks, then bands of the 3072 Gabor blocks.
    hists : ndarray of float32, shape (N, nc + 120)
        Dense form: quantised colour histogram, then the 12 Gabor histograms (10 bands each).
    grey_levels : int
        GIFT grey bins the features were computed with (4 is GIFT's).
    skipped : list of (str, str)
        Images or table rows left out when the index was built, with the reason.
    """

    def __init__(self, names, matrix, codes, hists, grey_levels: int = GREY_LEVELS,
                 skipped: Iterable[tuple[str, str]] = ()):
        self.layout = id_layout(grey_levels)
        self.grey_levels = int(grey_levels)
        self.names = [str(n) for n in names]
        n = len(self.names)
        self.matrix = sp.csr_matrix(matrix, dtype=np.float32)
        self.codes = np.ascontiguousarray(codes, dtype=np.uint8)
        self.hists = np.ascontiguousarray(hists, dtype=np.float32)
        nc = self.layout.n_colours
        if self.matrix.shape != (n, self.layout.n_features) or self.codes.shape != (n, N_CODES) \
                or self.hists.shape != (n, nc + N_GABOR_HIST):
            raise ValueError(f"inconsistent index parts for {n} images and {grey_levels} grey levels: matrix "
                             f"{self.matrix.shape}, codes {self.codes.shape}, hists {self.hists.shape}")
        self.skipped = [(str(a), str(b)) for a, b in skipped]
        self._position = None
        self._df = None
        self._normalised = None

    # -- building ----------------------------------------------------------------------------
    @classmethod
    def _from_parts(cls, names, parts, grey_levels, skipped=()) -> "Index":
        """Stack ``_assemble`` outputs (a list of chunks) into an index."""
        lay = id_layout(grey_levels)
        nc = lay.n_colours
        lengths = [p[0] for p in parts] or [np.zeros(0, np.int64)]
        indptr = np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64)
        indices = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32)
        data = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.float32)
        codes = np.concatenate([p[3] for p in parts]) if parts else np.zeros((0, N_CODES), np.uint8)
        hists = np.concatenate([p[4] for p in parts]) if parts else np.zeros((0, nc + N_GABOR_HIST), np.float32)
        n = len(indptr) - 1
        matrix = sp.csr_matrix((data, indices, indptr), shape=(n, lay.n_features))
        matrix.has_sorted_indices = True
        return cls(names, matrix, codes, hists, grey_levels, skipped)

    @classmethod
    def from_features(cls, names: Iterable[str], features: Iterable[GiftFeatures],
                      skipped: Iterable[tuple[str, str]] = ()) -> "Index":
        """An index of already computed :class:`~medfeat.features.gift.GiftFeatures`.

        Raises
        ------
        ValueError
            Names and features of different lengths, or features of different grey levels.
        """
        names = list(names)
        features = list(features)
        if len(names) != len(features):
            raise ValueError(f"{len(names)} names for {len(features)} feature sets")
        grey = {f.grey_levels for f in features} or {GREY_LEVELS}
        if len(grey) != 1:
            raise ValueError(f"features of different grey levels {sorted(grey)} cannot share an index")
        g = grey.pop()
        nc = N_CHROMATIC + g
        parts = []
        for i in range(0, len(features), _CHUNK):
            chunk = features[i:i + _CHUNK]
            parts.append(_assemble(np.stack([f.block_colours for f in chunk]),
                                   np.stack([f.colour_counts for f in chunk]),
                                   np.stack([np.asarray(f.gabor_bands).reshape(-1) for f in chunk]), nc))
        return cls._from_parts(names, parts, g, skipped)

    @classmethod
    def from_images(cls, paths: Iterable[str | os.PathLike], grey_levels: int = GREY_LEVELS,
                    errors: str = "skip") -> "Index":
        """Index image files: each is read with :func:`medfeat.io.read_image`, brought to GIFT's
        256 x 256 RGB (:func:`~medfeat.features.gift.gift_rgb`) and described by
        :func:`~medfeat.features.gift.gift_features`.

        Parameters
        ----------
        paths : iterable of path
            Image files or DICOM series folders (one 2-D image each).
        grey_levels : int
            GIFT grey bins (4 is GIFT's).
        errors : {"skip", "raise"}
            A bad image is left out and listed in :attr:`skipped` (``"skip"``), or raises.

        Raises
        ------
        InputError
            A bad image when ``errors="raise"``.

        Notes
        -----
        One process, about 6 ms an image; for a large collection run a production (``medfeat run
        DATASET --families gift``) and index its table with :meth:`from_table`.
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
                                       np.stack([f.gabor_bands.reshape(-1) for f in chunk]), nc))
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
        return cls._from_parts(names, parts, grey_levels, skipped)

    @classmethod
    def from_table(cls, path: str | os.PathLike) -> "Index":
        """Index the gift columns of a features table (a production's ``features.parquet``, or
        ``medfeat extract --families gift -o F.parquet``).

        The grey levels follow from the number of ``gift_hist_*`` columns. Rows with an error
        (non-empty ``error``) or missing gift values are left out and listed in :attr:`skipped`.
        The sparse rows equal :func:`medfeat.features.gift.features_of_row` of each row.

        Raises
        ------
        InputError
            Unreadable or non-Parquet file, no ``image`` column, no or incomplete gift columns,
            values that no GIFT feature set has.
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        try:
            pf = pq.ParquetFile(path)
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
        gift_cols = list(column_names(grey_levels))
        missing = [c for c in gift_cols if c not in cols]
        if missing:
            raise InputError(path, f"incomplete gift columns ({len(missing)} missing, e.g. {missing[0]})")
        want = ["image"] + (["error"] if "error" in cols else []) + gift_cols
        n_block_end, n_hist_end = N_BLOCKS, N_BLOCKS + nc
        n_gab_end = n_hist_end + N_GABOR
        names, parts, skipped = [], [], []
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
                values = np.empty((len(gift_cols), batch.num_rows), dtype=np.float64).T  # filled by columns
                for k, c in enumerate(gift_cols):
                    col = batch.column(c)
                    if col.null_count:
                        nulls = np.asarray(pc.is_null(col))
                        for i in np.flatnonzero(nulls & ~bad):
                            bad[i], reasons[i] = True, "missing gift values"
                        col = pc.fill_null(col, 0.0)
                    values[:, k] = np.asarray(col, dtype=np.float64)
                nonfinite = ~np.isfinite(values).all(axis=1) & ~bad
                for i in np.flatnonzero(nonfinite):
                    bad[i], reasons[i] = True, "missing gift values"
                for i in np.flatnonzero(bad):
                    skipped.append((str(image[i]), reasons[i]))
                good = ~bad
                if not good.any():
                    continue
                v = values[good]
                blocks = v[:, :n_block_end]
                counts = np.rint(v[:, n_block_end:n_hist_end] * (SIZE * SIZE))
                bands = v[:, n_hist_end:n_gab_end]
                if (blocks != np.rint(blocks)).any() or (bands != np.rint(bands)).any():
                    raise InputError(path, "gift block colours or Gabor bands that are not whole numbers")
                _check_arrays(blocks, counts, bands, nc, path)
                parts.append(_assemble(blocks.astype(np.int64), counts.astype(np.int64),
                                       bands.astype(np.uint8), nc))
                names.extend(str(image[i]) for i in np.flatnonzero(good))
        except (OSError, pa.ArrowException) as exc:
            raise InputError(path, f"cannot read the table ({exc})") from None
        return cls._from_parts(names, parts, grey_levels, skipped)

    # -- saving and loading ------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> None:
        """Write the index to one ``.npz`` file (replaced atomically; no pickles inside)."""
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        m = self.matrix
        with open(tmp, "wb") as fh:
            np.savez(fh, format=np.array(FORMAT), version=np.array(VERSION),
                     grey_levels=np.array(self.grey_levels),
                     names=np.array(self.names, dtype=str).reshape(-1),
                     indptr=m.indptr.astype(np.int64), indices=m.indices.astype(np.int32),
                     data=m.data.astype(np.float32), codes=self.codes, hists=self.hists,
                     skipped=np.array([s[0] for s in self.skipped], dtype=str).reshape(-1),
                     skipped_reasons=np.array([s[1] for s in self.skipped], dtype=str).reshape(-1))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Index":
        """Read an index written by :meth:`save`.

        Raises
        ------
        InputError
            Missing file, not an index, or inconsistent parts.
        """
        import zipfile

        if os.path.isfile(path) and not is_index_file(path):
            raise InputError(path, "not a medfeat retrieval index (not an .npz file; build one with `medfeat index`)")
        try:
            with np.load(path, allow_pickle=False) as z:
                if "format" not in z.files or str(z["format"]) != FORMAT:
                    raise InputError(path, "not a medfeat retrieval index (build one with `medfeat index`)")
                version = int(z["version"])
                if version > VERSION:
                    raise InputError(path, f"index format version {version} is newer than this medfeat's ({VERSION})")
                g = int(z["grey_levels"])
                names = z["names"].tolist()
                lay = id_layout(g)
                matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=(len(names), lay.n_features))
                matrix.check_format(full_check=True)  # ids in range: the compiled scorers index with them
                skipped = list(zip(z["skipped"].tolist(), z["skipped_reasons"].tolist()))
                return cls(names, matrix, z["codes"], z["hists"], g, skipped)
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
        return (f"Index({len(self)} images, grey_levels={self.grey_levels}, {self.matrix.nnz} features, "
                f"{len(self.skipped)} skipped)")

    @property
    def document_frequency(self) -> np.ndarray:
        """Number of indexed images having each feature id, int64 (F,)."""
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

    def position(self, name: str) -> int | None:
        """Row of an image name (its first row), or None."""
        if self._position is None:
            pos = {}
            for i, n in enumerate(self.names):
                pos.setdefault(n, i)
            self._position = pos
        return self._position.get(name)

    # -- queries ----------------------------------------------------------------------------
    def _row_query(self, i: int) -> _Query:
        m = self.matrix
        a, b = m.indptr[i], m.indptr[i + 1]
        return _Query(m.indices[a:b].astype(np.int32), m.data[a:b].astype(np.float32), self.codes[i], self.hists[i])

    def _query(self, query) -> _Query:
        """The query in both forms, from any accepted kind of query (see :meth:`search`)."""
        if isinstance(query, _Query):
            return query
        nc = self.layout.n_colours
        if isinstance(query, GiftFeatures):
            if query.grey_levels != self.grey_levels:
                raise ValueError(f"query features have {query.grey_levels} grey levels, the index "
                                 f"{self.grey_levels}")
            return self._arrays_query(query.block_colours, query.colour_counts, query.gabor_bands)
        if isinstance(query, Mapping):
            g = sum(1 for k in query if str(k).startswith("gift_hist_")) - N_CHROMATIC
            if g != self.grey_levels:
                raise ValueError(f"the row has {max(g, 0)} grey levels' gift columns, the index {self.grey_levels}")
            names = column_names(g)
            try:
                v = np.array([query[k] for k in names], dtype=np.float64)
            except KeyError as exc:
                raise ValueError(f"the row lacks gift column {exc.args[0]}") from None
            except TypeError:
                raise ValueError("the row has missing gift values (a failed image?)") from None
            if not np.isfinite(v).all():
                raise ValueError("the row has missing gift values (a failed image?)")
            return self._arrays_query(v[:N_BLOCKS], np.rint(v[N_BLOCKS:N_BLOCKS + nc] * (SIZE * SIZE)),
                                      v[N_BLOCKS + nc:N_BLOCKS + nc + N_GABOR])
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
        _, ids, vals, codes, hists = _assemble(blocks.astype(np.int64), counts.astype(np.int64),
                                               bands.astype(np.uint8), nc)
        return _Query(ids, vals, codes[0], hists[0])

    def _sparse_query(self, ids, values) -> _Query:
        """A query from GIFT's ``(ids, values)`` (e.g. :func:`~medfeat.features.gift.read_fts`)."""
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
        return _Query(ids.astype(np.int32), values, codes, hists)

    def scores(self, query, method: str = DEFAULT_METHOD, histogram_idf: bool = True) -> np.ndarray:
        """The score of every indexed image for ``query`` (float64, one per row), see the module
        docstring. ``query`` is anything :meth:`search` accepts."""
        q = self._query(query)
        if method == "gift":
            return self._gift_scores(q, histogram_idf)
        if method == "intersection":
            return self._intersection_scores(q)
        raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")

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
        method : {"gift", "intersection"}
            Scoring, see the module docstring.
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
        s = self.scores(query, method=method, histogram_idf=histogram_idf)
        if exclude is not None:
            if isinstance(exclude, np.ndarray) and exclude.dtype == bool:
                if exclude.shape != s.shape:
                    raise ValueError(f"exclude mask of shape {exclude.shape} for {len(self)} images")
                keep = ~exclude
            else:
                keep = np.ones(len(self), bool)
                drop = {os.fspath(e) for e in ([exclude] if isinstance(exclude, str) else exclude)}
                for i, name in enumerate(self.names):
                    if name in drop:
                        keep[i] = False
            rows = np.flatnonzero(keep)
        else:
            rows = np.arange(len(self))
        top = max(int(top), 0)
        if top == 0 or rows.size == 0:
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
