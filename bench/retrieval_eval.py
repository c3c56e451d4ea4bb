"""Retrieval evaluation: does search by example over GIFT features find images of the same modality?

Data: the 10 soft-tissue-sarcoma patients of ``../shared/data/sts/nifti/STS_xxx/`` (CT, T1-weighted MR
-- the only MR sequence there -- and FDG-PET, each cropped around the tumour, with a tumour mask).
From each of the 30 volumes, ``--slices`` (default 5) axial slices evenly spaced through the tumour
mask's extent (first to last slice holding the mask, rounded to the nearest slice) are written as
256 x 256 8-bit greyscale PGM files:

* in-plane resampling to 256 x 256 (the crops are 77..202 px for CT/MR and 28..43 px for PET, so
  aspect ratio and pixel size are not kept, as GIFT's own ``convert -geometry 256x256!``): linear
  interpolation of the float values (``scipy.ndimage.zoom``, ``order=1``, ``grid_mode=True``:
  pixel areas aligned), then windowing;
* windowing to 0..255 (``rint``, clipped): CT a fixed window of [-1000, 1000] HU (air black, fat and
  soft tissue mid-grey, bone bright); MR (arbitrary units) and PET (SUV, with a patient-dependent
  range) a window of the volume's own values, the same for every slice of a volume -- either its
  minimum..maximum (``minmax``) or its 1st..99th percentile (``percentile``). Both are evaluated
  (``--windows``); ``minmax`` is listed first.

Every slice is then the query once, against all the others with the slices of its own volume
excluded (so neighbours of the same scan cannot help); the measure is **modality precision@10**,
the share of the top 10 results having the query's modality (the 45 slices of the other 9 volumes
of that modality are the relevant ones, out of 145 candidates). It is reported for the scoring
methods ``gift`` (GIFT's classical idf, ``medfeat.retrieval``), ``gift`` without idf on the histogram
features (``gift-hist-noidf``: GIFT 0.1.15a's code) and ``intersection`` (histogram intersection of
the four feature groups), each with GIFT's 4 grey levels (GIFT-exact features) and with 16, 32
and 64 grey levels. The slices are indexed from the PGM files (``Index.from_images``: medfeat's
readers, ``gift_rgb``, ``gift_features``), as ``medfeat index`` does.

Timings: index build from the slice files and from a features table (Parquet) of them (its rows
repeated to ~2000), save and load; on a ``--scale``-image index (default 100,000: the evaluation's
and the GIFT fixtures' feature rows repeated; only the size matters for speed) document
frequencies, save/load and the time of a query of each method, the query given as features (a
query image adds its feature extraction, also reported). ``tests/test_retrieval.py`` runs a
reduced evaluation (16 grey levels, the default method only) and asserts a floor.

Results are printed and written to ``bench/out/retrieval_eval.json``.

    .venv/bin/python bench/retrieval_eval.py                 # full evaluation (about a minute)
    .venv/bin/python bench/retrieval_eval.py --slices 3 --grey-levels 4 --scale 0   # quick

Exits 0 with a reason when ``../shared`` is absent.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SHARED = ROOT.parent / "shared" / "data"
STS = SHARED / "sts" / "nifti"
OUT = BENCH / "out"

MODALITIES = {"CT": "CT", "MR_T1": "MR", "PET": "PET"}   # file prefix -> modality
CT_WINDOW = (-1000.0, 1000.0)
PERCENTILES = (1.0, 99.0)
WINDOWS = ("minmax", "percentile")
CONFIGS = (("gift", True), ("gift", False), ("intersection", True))


def config_name(method: str, histogram_idf: bool) -> str:
    return method if histogram_idf or method != "gift" else "gift-hist-noidf"


def window(volume: np.ndarray, modality: str, kind: str = "minmax") -> tuple[float, float]:
    """The grey window of a volume: CT fixed; MR and PET the volume's minimum..maximum
    (``kind="minmax"``) or 1st..99th percentile (``kind="percentile"``)."""
    if modality == "CT":
        return CT_WINDOW
    if kind == "minmax":
        lo, hi = float(volume.min()), float(volume.max())
    elif kind == "percentile":
        lo, hi = (float(v) for v in np.percentile(volume, PERCENTILES))
    else:
        raise ValueError(f"unknown window {kind!r}; use one of {WINDOWS}")
    return lo, max(hi, lo + 1e-6)


def slice_to_uint8(slice2d: np.ndarray, win: tuple[float, float], size: int = 256) -> np.ndarray:
    """Resample a float slice to ``size`` x ``size`` (linear) and window it to 8 bits."""
    from scipy import ndimage

    s = np.asarray(slice2d, dtype=np.float64)
    zoom = (size / s.shape[0], size / s.shape[1])
    r = ndimage.zoom(s, zoom, order=1, mode="nearest", grid_mode=True)
    assert r.shape == (size, size), r.shape
    lo, hi = win
    return np.clip(np.rint((r - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def make_slices(out_dir: Path, per_volume: int = 5, window_kind: str = "minmax", sts: Path = STS) -> list[dict]:
    """Write ``per_volume`` axial slices of every STS volume as PGM; returns one record per slice
    (``path``, ``patient``, ``modality``, ``volume``, ``z``)."""
    from medfeat.io import read_image
    from medfeat.io.netpbm import write_netpbm

    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for patient in sorted(p for p in sts.iterdir() if p.is_dir()):
        for prefix, modality in MODALITIES.items():
            img_path = patient / f"{prefix}_image.nii.gz"
            mask_path = patient / f"{prefix}_mask.nii.gz"
            if not img_path.exists():
                continue
            vol = read_image(img_path).array.astype(np.float64)      # (z, y, x)
            mask = read_image(mask_path).array > 0
            zs = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
            z0, z1 = (int(zs[0]), int(zs[-1])) if zs.size else (0, vol.shape[0] - 1)
            picks = sorted(set(int(z) for z in np.rint(np.linspace(z0, z1, per_volume))))
            win = window(vol, modality, window_kind)
            volume = f"{patient.name}_{prefix}"
            for z in picks:
                path = out_dir / f"{volume}_z{z:03d}.pgm"
                write_netpbm(path, slice_to_uint8(vol[z], win))
                records.append({"path": str(path), "patient": patient.name, "modality": modality,
                                "volume": volume, "z": z})
    return records


def evaluate(index, records: list[dict], method: str, histogram_idf: bool = True, k: int = 10) -> dict:
    """Modality precision@k of every slice queried against the others minus its own volume."""
    row = {r["path"]: i for i, r in enumerate(records)}
    volumes = np.array([records[row[n]]["volume"] for n in index.names])
    modality = np.array([records[row[n]]["modality"] for n in index.names])
    precisions = []
    per_modality: dict[str, list[float]] = {}
    times = []
    for i, name in enumerate(index.names):
        t = time.perf_counter()
        hits = index.search(name, top=k, method=method, exclude=volumes == volumes[i], histogram_idf=histogram_idf)
        times.append(time.perf_counter() - t)
        p = float(np.mean([modality[index.position(h)] == modality[i] for h, _ in hits]))
        precisions.append(p)
        per_modality.setdefault(modality[i], []).append(p)
    return {"precision_at_10": float(np.mean(precisions)), "queries": len(precisions),
            "per_modality": {m: float(np.mean(v)) for m, v in sorted(per_modality.items())},
            "worst_query": float(np.min(precisions)), "query_ms_median": 1e3 * float(np.median(times))}


def run_evaluation(per_volume: int, grey_levels: tuple[int, ...], work: Path, window_kind: str = "minmax",
                   configs=CONFIGS) -> tuple[list[dict], dict]:
    """Slices, then one index per grey level and every scoring config; returns (records, results)
    with results keyed by (config name, grey levels)."""
    from medfeat.retrieval import Index

    records = make_slices(work / f"slices-{window_kind}", per_volume, window_kind)
    results = {}
    for g in grey_levels:
        t = time.perf_counter()
        index = Index.from_images([r["path"] for r in records], grey_levels=g, errors="raise")
        build_s = time.perf_counter() - t
        for method, hidf in configs:
            r = evaluate(index, records, method, hidf)
            r["index_build_s"] = build_s
            results[(config_name(method, hidf), g)] = r
    return records, results


def timings(records: list[dict], work: Path, scale: int) -> dict:
    """Build (images, table), save/load and query times; a ``scale``-image index for query speed."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import scipy.sparse as sp

    import medfeat
    from medfeat.features.gift import gift_features, gift_rgb
    from medfeat.io import read_image
    from medfeat.retrieval import Index

    paths = [r["path"] for r in records]
    out: dict = {"images": len(paths)}
    t = time.perf_counter()
    index = Index.from_images(paths)
    out["build_from_images_s"] = time.perf_counter() - t
    # a features table as a production writes it (image, sha256, job, error, gift columns)
    rows = [medfeat.extract(p, families=["gift"]) for p in paths]
    cols = list(rows[0])
    table = pa.table({"image": paths, "sha256": [""] * len(paths), "job": [0] * len(paths),
                      "error": [""] * len(paths), **{c: [r[c] for r in rows] for c in cols}})
    reps = max(1, 2000 // len(paths))
    big = pa.concat_tables([table] * reps)
    tab_path = work / "features.parquet"
    pq.write_table(big, tab_path)
    t = time.perf_counter()
    tindex = Index.from_table(tab_path)
    out["build_from_table_rows"] = len(tindex)
    out["build_from_table_s"] = time.perf_counter() - t
    idx_path = work / "index.npz"
    t = time.perf_counter()
    index.save(idx_path)
    out["save_s"] = time.perf_counter() - t
    t = time.perf_counter()
    Index.load(idx_path)
    out["load_s"] = time.perf_counter() - t
    if scale:
        fixtures = sorted((SHARED / "gift" / "fixtures").glob("*.png"))
        base = Index.from_images(fixtures) if fixtures else None
        parts = [index] + ([base] if base is not None else [])
        m = sp.vstack([p.matrix for p in parts], format="csr")
        codes = np.concatenate([p.codes for p in parts])
        hists = np.concatenate([p.hists for p in parts])
        names = [n for p in parts for n in p.names]
        reps = -(-scale // len(names))
        big_m = sp.vstack([m] * reps, format="csr")[:scale]
        big_names = [f"{n}#{i}" for i in range(reps) for n in names][:scale]
        t = time.perf_counter()
        large = Index(big_names, big_m, np.tile(codes, (reps, 1))[:scale], np.tile(hists, (reps, 1))[:scale])
        out["scale"] = {"images": scale, "features_per_image": large.matrix.nnz / scale,
                        "make_s": time.perf_counter() - t}
        t = time.perf_counter()
        large.document_frequency
        out["scale"]["document_frequencies_s"] = time.perf_counter() - t
        t = time.perf_counter()
        large.search(paths[0], top=10, method="intersection")
        out["scale"]["first_intersection_query_s"] = time.perf_counter() - t  # + the normalised histograms
        t = time.perf_counter()
        large.save(work / "large.npz")
        out["scale"]["save_s"] = time.perf_counter() - t
        out["scale"]["file_mb"] = (work / "large.npz").stat().st_size / 1e6
        t = time.perf_counter()
        Index.load(work / "large.npz")
        out["scale"]["load_s"] = time.perf_counter() - t
        (work / "large.npz").unlink()
        # queries given as features (a query image costs its feature extraction on top, ~6 ms)
        queries = [gift_features(gift_rgb(read_image(p), p)) for p in paths[:: max(1, len(paths) // 10)]]
        for method, hidf in CONFIGS:
            large.search(queries[0], top=10, method=method, histogram_idf=hidf)  # warm-up
            ts = []
            for q in queries:
                t = time.perf_counter()
                large.search(q, top=10, method=method, histogram_idf=hidf)
                ts.append(time.perf_counter() - t)
            out["scale"][f"query_ms_{config_name(method, hidf)}"] = 1e3 * float(np.median(ts))
        t = time.perf_counter()
        for p in paths[:20]:
            gift_features(gift_rgb(read_image(p), p))
        out["feature_extraction_ms_per_query_image"] = 1e3 * (time.perf_counter() - t) / min(20, len(paths))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=5, help="axial slices per volume (default 5)")
    ap.add_argument("--grey-levels", default="4,16,32,64", help="comma-separated GIFT grey levels")
    ap.add_argument("--windows", default=",".join(WINDOWS), help="MR/PET windows to evaluate: minmax,percentile")
    ap.add_argument("--scale", type=int, default=100_000, help="images of the query-speed index (0: skip)")
    ap.add_argument("--out", type=Path, default=OUT / "retrieval_eval.json")
    args = ap.parse_args(argv)
    if not STS.exists():
        print(f"skipped: needs {STS} (../shared is absent in this clone)")
        return 0
    from rich.console import Console
    from rich.table import Table

    from medfeat.retrieval import DEFAULT_METHOD

    greys = tuple(int(g) for g in args.grey_levels.split(","))
    windows = tuple(w.strip() for w in args.windows.split(",") if w.strip())
    con = Console()
    results = {}
    with tempfile.TemporaryDirectory(prefix="medfeat-retrieval-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        for w in windows:
            records, res = run_evaluation(args.slices, greys, work, w)
            results.update({(w, name, g): r for (name, g), r in res.items()})
        eval_s = time.perf_counter() - t0
        tim = timings(records, work, args.scale)
    n_q = next(iter(results.values()))["queries"]
    n_vol = len({r["volume"] for r in records})
    for w in windows:
        table = Table(title=f"modality precision@10, MR/PET window {w}: {n_q} queries ({n_vol} volumes x "
                            f"{args.slices} slices, own volume excluded)")
        table.add_column("method")
        for g in greys:
            table.add_column(f"G={g}" + (" (GIFT)" if g == 4 else ""), justify="right")
        for method, hidf in CONFIGS:
            name = config_name(method, hidf)
            table.add_row(name, *(f"{results[(w, name, g)]['precision_at_10']:.3f}" for g in greys))
        con.print(table)
    pm = Table(title="per modality (precision@10) and the worst query")
    pm.add_column("window, method, G")
    mods = sorted(next(iter(results.values()))["per_modality"])
    for m in mods:
        pm.add_column(m, justify="right")
    pm.add_column("worst", justify="right")
    for (w, name, g), r in results.items():
        pm.add_row(f"{w}, {name}, {g}", *(f"{r['per_modality'][m]:.3f}" for m in mods), f"{r['worst_query']:.1f}")
    con.print(pm)
    con.print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in tim.items()})
    payload = {
        "data": str(STS), "slices_per_volume": args.slices, "slices": len(records), "volumes": n_vol,
        "queries": n_q, "measure": "modality precision@10, slices of the query's own volume excluded",
        "windowing": {"CT": list(CT_WINDOW), "MR and PET": {"minmax": "volume minimum..maximum",
                                                            "percentile": f"volume percentiles {PERCENTILES}"}},
        "resampling": "linear to 256x256 (scipy.ndimage.zoom order=1, grid_mode=True)",
        "default_method": DEFAULT_METHOD,
        "results": [{"window": w, "method": name, "grey_levels": g, **r} for (w, name, g), r in results.items()],
        "timings": tim, "evaluation_s": eval_s, "cpu_count": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1))
    con.print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
