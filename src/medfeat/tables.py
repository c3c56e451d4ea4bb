"""Feature tables: wide (one row per image) and long (one row per feature value) layouts, and
writing them as Parquet, CSV or JSON."""
from __future__ import annotations

import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from medfeat.columns import Column

LONG_COLUMNS = ("image", "image_type", "family", "feature", "ibsi_code", "aggregation", "value", "error")


def image_type(column: str) -> str:
    """The image a feature column describes: ``original``, or the filter's label (the part of a
    filtered image's column name before ``__``)."""
    return column.split("__", 1)[0] if "__" in column else "original"


@dataclass
class ImageResult:
    """Outcome of one image: its features, or the reason it has none."""

    image: str
    sha256: str = ""
    features: dict[str, float] = field(default_factory=dict)
    error: str = ""
    note: str = ""   # what the row's reader should know (the preset a single slice got, a resampled mask)


def text(value: str) -> str:
    """A file name as a table can hold it: bytes that are not UTF-8 (kept by Python as surrogate
    escapes) become ``\\xNN``."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def wide_table(results: list[ImageResult], columns: list[Column], pack_gift: bool = False) -> pa.Table:
    """One row per image: ``image``, ``sha256``, ``error``, ``note``, then one float column per
    feature (null for a failed image or a feature the row lacks). With ``pack_gift``, the gift
    family's 3,412 block and Gabor codes are one ``gift_codes`` column instead (see
    :func:`pack_gift_codes`); rows may then hold them either way (``extract(..., pack_gift=True)``
    gives them packed)."""
    names = [c.name for c in columns]
    at = _gift_code_positions(names) if pack_gift else None
    keep = None if at is None else sorted(set(range(len(names))) - set(at))  # the float columns
    floats = names if keep is None else [names[j] for j in keep]
    # a packed row's keys: the floats, with GIFT_CODES where the first code was
    packed_keys = None if at is None else floats[:at[0]] + [GIFT_CODES] + floats[at[0]:]
    n, m = len(results), len(floats)
    # rows -> one float64 matrix, then zero-copy columns: thousands of columns (the gift family has
    # 3698) would otherwise cost a Python list per column
    values = np.full((n, m), np.nan)
    missing = np.zeros((n, m), dtype=bool)
    codes = None if at is None else np.zeros((n, len(at)), np.uint8)
    no_codes = np.zeros(n, bool)
    for i, r in enumerate(results):
        if r.error:
            missing[i] = no_codes[i] = True
            continue
        feats = r.features
        if at is not None and GIFT_CODES in feats:  # packed at the source
            row, lacking = _row(feats, packed_keys)
            c = row.pop(at[0])
            if lacking is not None:
                no_codes[i] = lacking.pop(at[0])
            if c is None:
                no_codes[i] = True
            elif not no_codes[i]:
                codes[i] = np.frombuffer(c, np.uint8)
        elif at is not None:  # the codes as 3,412 values: taken out of the row
            row, lacking = _row(feats, names)
            vec = np.fromiter(row, np.float64, len(names))
            code_values = vec[at]
            if not np.isfinite(code_values).all() or (lacking is not None and any(lacking[j] for j in at)):
                no_codes[i] = True
            else:
                codes[i] = _whole_codes(code_values)
            row = [row[j] for j in keep]
            lacking = None if lacking is None else [lacking[j] for j in keep]
        else:
            row, lacking = _row(feats, names)
        if lacking is not None:
            missing[i] = lacking
        vec = np.fromiter(row, np.float64, m)  # (0.05 ms for 3,700 values; assigning the list took 0.08)
        nan = np.flatnonzero(vec != vec)
        if nan.size:  # an undefined feature (None) is null, not NaN: numpy made it NaN without a word
            missing[i, [j for j in nan.tolist() if row[j] is None]] = True
        values[i] = vec
    arrays = [pa.array([text(r.image) for r in results], pa.string()), pa.array([r.sha256 for r in results], pa.string()),
              pa.array([text(r.error) for r in results], pa.string()), pa.array([r.note for r in results], pa.string())]
    fields = [("image", pa.string()), ("sha256", pa.string()), ("error", pa.string()), ("note", pa.string())]
    values = np.asfortranarray(values)  # contiguous columns
    has_missing = missing.any(axis=0)
    for j in range(m):
        if at is not None and j == at[0]:
            arrays.append(_codes_array(codes, no_codes))
            fields.append((GIFT_CODES, arrays[-1].type))
        col = values[:, j]
        arrays.append(pa.array(col, pa.float64(), mask=missing[:, j]) if has_missing[j] else pa.array(col))
        fields.append((floats[j], pa.float64()))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _row(feats: dict, keys: list[str]) -> tuple[list, list[bool] | None]:
    """A row's values in the order of ``keys`` (NaN where it lacks one), and which it lacks (None: none)."""
    if len(feats) == len(keys) and list(feats) == keys:
        # a row in the columns' own order (the usual case): its values as they are, at C speed
        # (a lookup per column cost 0.4 ms per 3,700-column gift row, 5% of its extraction)
        return list(feats.values()), None
    get = feats.get
    row = [get(k, _MISSING) for k in keys]
    return row, (None if feats.keys() >= set(keys) else [k not in feats for k in keys])


_MISSING = float("nan")


# -- the gift family's codes, packed -----------------------------------------------------------------
GIFT_CODES = "gift_codes"  # = medfeat.features.gift.CODES_COLUMN (not imported: it loads the whole family)
FIRST_GIFT_CODE = "gift_block_000"  # a table with this column holds the codes wide


def _gift_code_positions(names: list[str]) -> list[int] | None:
    """Where the gift codes are among ``names``, in the order of their bytes; None without them."""
    if FIRST_GIFT_CODE not in names:
        return None
    from medfeat.features.gift.columns import code_column_names

    where = {k: j for j, k in enumerate(names)}
    try:
        return [where[k] for k in code_column_names()]
    except KeyError:
        return None


def _whole_codes(codes: np.ndarray) -> np.ndarray:
    """Codes given as numbers (floats), as uint8; ValueError for any that is not a whole number in 0..255."""
    as_bytes = codes.astype(np.uint8)
    if (as_bytes != codes).any():
        raise ValueError("gift codes that are not whole numbers in 0..255")
    return as_bytes


def _codes_array(codes: np.ndarray, bad: np.ndarray) -> pa.Array:
    """(n, 3412) whole-number codes (uint8, or numbers) as a fixed-size binary array; rows ``bad`` null."""
    n, width = codes.shape
    data = np.where(bad[:, None], 0, codes)
    as_bytes = data if data.dtype == np.uint8 else _whole_codes(data)
    validity = pa.array(~bad, pa.bool_()).buffers()[1] if bad.any() else None
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), n, [validity, pa.py_buffer(as_bytes.tobytes())])


def pack_gift_codes(table: pa.Table) -> pa.Table:
    """``table`` with the gift family's 3,412 block and Gabor code columns (``gift_block_NNN``,
    ``gift_gabor_S_O_BBB``: small whole numbers) replaced by one ``gift_codes`` column of 3,412
    bytes per row, where ``gift_block_000`` was; a failed row's value is null. The colour and Gabor
    histograms stay float columns. A 3,700-column table becomes ~300 columns, ~8x smaller and read
    ~30x faster; :func:`unpack_gift_codes` gives the wide columns back, value for value. A table
    without gift columns (or already packed) is returned as it is."""
    at = _gift_code_positions(table.column_names)
    if at is None:
        return table
    n = table.num_rows
    codes = np.empty((n, len(at)), np.float64)
    bad = np.zeros(n, bool)
    for k, j in enumerate(at):
        col = table.column(j)
        if col.null_count:
            bad |= np.asarray(col.is_null())
        codes[:, k] = col.to_numpy(zero_copy_only=False)
    bad |= ~np.isfinite(codes).all(axis=1)
    codes_col = _codes_array(codes, bad)
    drop = set(at)
    arrays, fields = [], []
    for j, f in enumerate(table.schema):
        if j == at[0]:
            arrays.append(codes_col)
            fields.append(pa.field(GIFT_CODES, codes_col.type))
        if j not in drop:
            arrays.append(table.column(j))
            fields.append(f)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=table.schema.metadata))


def gift_codes_matrix(col: pa.Array) -> np.ndarray:
    """A ``gift_codes`` array (``fixed_size_binary[3412]``) as an (n, 3412) uint8 matrix, without a
    copy (a null row's bytes are whatever the buffer holds); ValueError for another type."""
    width = col.type.byte_width if pa.types.is_fixed_size_binary(col.type) else 0
    if width != 3412:
        raise ValueError(f"{GIFT_CODES} is {col.type}, not fixed_size_binary[3412]")
    n = len(col)
    data = np.frombuffer(col.buffers()[1], np.uint8, count=(col.offset + n) * width)
    return data.reshape(-1, width)[col.offset:]


def unpack_gift_codes(table: pa.Table) -> pa.Table:
    """The wide form of a table :func:`pack_gift_codes` packed (a production's ``features.parquet``,
    ``medfeat extract -o F.parquet``): the 340 ``gift_block_NNN`` float columns where ``gift_codes``
    is, the 3,072 ``gift_gabor_S_O_BBB`` columns after the last ``gift_hist_*`` column (the column
    order of :func:`medfeat.feature_columns`), null in failed rows. Other tables are returned as they are."""
    names = table.column_names
    if GIFT_CODES not in names:
        return table
    from medfeat.features.gift.columns import N_BLOCKS, N_CODES, code_column_names

    col = table[GIFT_CODES].combine_chunks()
    codes = gift_codes_matrix(col)
    nulls = np.asarray(col.is_null()) if col.null_count else None
    code_names = code_column_names()

    def column(k: int) -> pa.Array:
        return pa.array(codes[:, k].astype(np.float64), pa.float64(), mask=nulls)

    hist = [j for j, c in enumerate(names) if c.startswith("gift_hist_")]
    gabor_after = hist[-1] if hist else names.index(GIFT_CODES)
    arrays, fields = [], []
    for j, f in enumerate(table.schema):
        if f.name == GIFT_CODES:
            arrays += [column(k) for k in range(N_BLOCKS)]
            fields += [pa.field(c, pa.float64()) for c in code_names[:N_BLOCKS]]
        else:
            arrays.append(table.column(j))
            fields.append(f)
        if j == gabor_after:
            arrays += [column(k) for k in range(N_BLOCKS, N_CODES)]
            fields += [pa.field(c, pa.float64()) for c in code_names[N_BLOCKS:]]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields, metadata=table.schema.metadata))


def unused_columns(settings, families, filled: set[str], any_ok: bool) -> set[str]:
    """Under settings with ``single_slice`` (the ``auto`` preset) a table holds the columns of
    volumes and of single slices: those of either kind that no row fills (``filled``: the columns
    some row has a value in) are left out -- a cohort of CT volumes gets no 2D-aggregation columns.
    With no successful row (``any_ok`` false), the volume columns stay."""
    from medfeat.columns import single_slice_only_columns

    volume_only, slice_only = single_slice_only_columns(settings, families)
    drop = (slice_only - filled) | ((volume_only - filled) if any_ok else set())
    if FIRST_GIFT_CODE in drop and GIFT_CODES not in filled:  # the packed codes go with the columns they pack
        drop.add(GIFT_CODES)
    return drop


def drop_unused_columns(table: pa.Table, settings, families=None) -> pa.Table:
    """``table`` without its :func:`unused_columns`."""
    filled = {c for c in table.column_names if table[c].null_count < table.num_rows}
    any_ok = table.num_rows > 0 and "error" in table.column_names and any(e == "" for e in table["error"].to_pylist())
    unused = unused_columns(settings, families, filled, any_ok)  # once: per column it took 30 s for gift's 3,700
    drop = [c for c in table.column_names if c in unused]
    return table.drop_columns(drop) if drop else table


def long_table(results: list[ImageResult], columns: list[Column]) -> pa.Table:
    """One row per (image, feature, aggregation), IBSI's names for aggregations; a failed image
    gets a single row carrying its error."""
    rows = {k: [] for k in LONG_COLUMNS}
    for r in results:
        if r.error:
            for k, v in zip(LONG_COLUMNS, (text(r.image), "", "", "", "", "", None, text(r.error))):
                rows[k].append(v)
            continue
        for c in columns:
            if c.name not in r.features:  # a column of the other kind of image (``auto`` settings)
                continue
            for k, v in zip(LONG_COLUMNS, (text(r.image), image_type(c.name), c.family, c.feature.tag,
                                           c.feature.code, c.aggregation, r.features.get(c.name), "")):
                rows[k].append(v)
    schema = pa.schema([(k, pa.float64() if k == "value" else pa.string()) for k in LONG_COLUMNS])
    return pa.table(rows, schema=schema)


def _json_value(v):
    return None if isinstance(v, float) and not math.isfinite(v) else v


PROVENANCE_KEY = b"medfeat"


def provenance(settings, **more) -> dict:
    """What made a feature table: medfeat's version, every setting (families included) and when;
    ``more`` adds run facts (run id, dataset and its fingerprint). Input hashes are the table's
    ``sha256`` column."""
    import datetime

    from medfeat import __version__

    return {"medfeat_version": __version__, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "settings_name": getattr(settings, "name", ""), "settings": settings.to_dict(), **more}


def read_provenance(path: str | os.PathLike) -> dict | None:
    """The provenance of a table written by :func:`write_table` (Parquet metadata, or the JSON
    sidecar ``PATH.meta.json`` of a CSV or JSON table)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        meta = pq.read_schema(path).metadata or {}
        return json.loads(meta[PROVENANCE_KEY]) if PROVENANCE_KEY in meta else None
    side = path.with_name(path.name + ".meta.json")
    return json.loads(side.read_text()) if side.exists() else None


def with_provenance(table: pa.Table, prov: dict | None) -> pa.Table:
    if not prov:
        return table
    meta = dict(table.schema.metadata or {})
    meta[PROVENANCE_KEY] = json.dumps(prov, sort_keys=True).encode()
    return table.replace_schema_metadata(meta)


def write_table(table: pa.Table, path: str | os.PathLike | None, prov: dict | None = None) -> None:
    """Write ``table`` by the file's extension (.parquet, .csv, .json); ``None`` prints CSV to stdout.
    ``prov`` (see :func:`provenance`) goes into the Parquet schema metadata, or beside a CSV or JSON
    table as ``PATH.meta.json``, so that a feature file explains itself."""
    if path is None:
        import pyarrow.csv as pacsv

        sink = pa.BufferOutputStream()
        pacsv.write_csv(table, sink)
        sys.stdout.write(sink.getvalue().to_pybytes().decode())
        return
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(with_provenance(table, prov), tmp)
    elif suffix == ".csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, tmp)
    elif suffix == ".json":
        records = [{k: _json_value(v) for k, v in row.items()} for row in table.to_pylist()]
        tmp.write_text(json.dumps(records, indent=1, allow_nan=False))
    else:
        raise ValueError(f"{path}: unknown output format {suffix!r}; use .parquet, .csv or .json")
    if prov and suffix != ".parquet":
        side = path.with_name(path.name + ".meta.json")
        side.write_text(json.dumps(prov, indent=1, sort_keys=True))
    os.replace(tmp, path)  # never leave a half-written table under the final name
