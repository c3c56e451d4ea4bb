"""Retrieval evaluation on patients the defaults were not tuned on: does search by example find
images of the query's modality?

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
  minimum..maximum (``minmax``) or its 1st..99th percentile (``percentile``). A user's slices may
  come either way, so both are evaluated and every choice is judged on their mean.

**The split** (fixed before any result was looked at): the patient ids sorted, the 1st, 3rd, 5th,
7th and 9th are the *tuning* set (STS_001, STS_003, STS_008, STS_012, STS_019), the others the
*held-out* set (STS_002, STS_005, STS_010, STS_015, STS_024). Every default of the index (grey
levels, descriptor, weighting, standardisation, distance) was chosen on the tuning set only; the
held-out set is measured once, with the chosen defaults, beside the old ones.

**The measure**: within one set, an index of its 75 slices (5 patients x 3 modalities x 5
slices) is built as ``medfeat index`` builds it (``Index.from_images`` on the PGM files); every
slice is the query once, against the others with the slices of its own volume excluded (so
neighbours of the same scan cannot help): **modality precision@10**, the share of the top 10
results of the query's modality (20 relevant slices of the 4 other patients, out of 70
candidates). Per modality, and the worst query, too.

Configurations: the old default (``gift``: GIFT's classical idf, GIFT's 4 grey levels), the old
method with 16 grey levels (a user's ``--grey-levels 16``), and the new default (``hellinger`` with
8 grey levels, ``medfeat.retrieval``). ``--grid`` adds the tuning-set grid the defaults were
picked from: methods x grey levels x the weight of the Gabor group (tuning set only).

Timings: index build from the slice files and from a features table (Parquet) of them (its rows
repeated to ~2000), save and load, a query. The million-image scale test is
``bench/index_scale.py``. ``tests/test_retrieval.py`` runs the held-out evaluation with the
defaults and asserts a floor.

Results are printed and written to ``bench/out/retrieval_eval.json``.

    .venv/bin/python bench/retrieval_eval.py            # tuning and held-out, both windows (~1 min)
    .venv/bin/python bench/retrieval_eval.py --grid     # plus the tuning grid (~2 min)

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
#: (label, method, grey levels, histogram idf): the old default, the old method with 16 greys, the new default
CONFIGS = (("old default: gift, G=4", "gift", 4, True),
           ("old method, G=16", "gift", 16, True),
           ("new default: hellinger, G=8", "hellinger", 8, True))
GRID_GREYS = (4, 8, 16, 32)
GRID_GABOR_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, float("inf"))


def split_patients(patients) -> tuple[list[str], list[str]]:
    """The fixed rule: patient ids sorted; 1st, 3rd, 5th ... -> tuning, 2nd, 4th ... -> held-out."""
    ids = sorted(set(patients))
    return ids[0::2], ids[1::2]


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


def make_slices(out_dir: Path, per_volume: int = 5, window_kind: str = "minmax", sts: Path = STS,
                patients=None) -> list[dict]:
    """Write ``per_volume`` axial slices of every STS volume (of ``patients``, default all) as PGM;
    returns one record per slice (``path``, ``patient``, ``modality``, ``volume``, ``z``)."""
    from medfeat.io import read_image
    from medfeat.io.netpbm import write_netpbm

    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for patient in sorted(p for p in sts.iterdir() if p.is_dir()):
        if patients is not None and patient.name not in patients:
            continue
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


def precision_at_k(index, labels: dict[str, str], groups: dict[str, str], method: str = "hellinger",
                   histogram_idf: bool = True, k: int = 10) -> dict:
    """Every indexed image queried once against the others minus its group (e.g. its volume): the
    share of the top ``k`` with its label (e.g. its modality); mean, per label, worst query.

    ``labels`` and ``groups`` map an indexed name to its label and group.
    """
    names = index.names
    group = np.array([groups[n] for n in names])
    label = np.array([labels[n] for n in names])
    precisions, per_label, times = [], {}, []
    for i, name in enumerate(names):
        t = time.perf_counter()
        hits = index.search(name, top=k, method=method, exclude=group == group[i], histogram_idf=histogram_idf)
        times.append(time.perf_counter() - t)
        p = float(np.mean([labels[h] == label[i] for h, _ in hits])) if hits else 0.0
        precisions.append(p)
        per_label.setdefault(str(label[i]), []).append(p)
    return {"precision_at_10": float(np.mean(precisions)) if precisions else float("nan"),
            "queries": len(precisions),
            "per_modality": {m: float(np.mean(v)) for m, v in sorted(per_label.items())},
            "worst_query": float(np.min(precisions)) if precisions else float("nan"),
            "query_ms_median": 1e3 * float(np.median(times)) if times else float("nan")}


def evaluate_set(records: list[dict], patients, method: str, grey_levels: int, histogram_idf: bool = True,
                 index=None) -> dict:
    """Precision@10 within one patient set: an index of its slices only (or ``index``, built from them)."""
    from medfeat.retrieval import Index

    recs = [r for r in records if r["patient"] in set(patients)]
    if index is None:
        index = Index.from_images([r["path"] for r in recs], grey_levels=grey_levels, errors="raise",
                                  gift_parts=method != "hellinger")
    labels = {r["path"]: r["modality"] for r in recs}
    groups = {r["path"]: r["volume"] for r in recs}
    return precision_at_k(index, labels, groups, method, histogram_idf)


def run_evaluation(per_volume: int, work: Path, windows=WINDOWS, configs=CONFIGS) -> tuple[dict, dict]:
    """Every config on the tuning and the held-out set, for each window. Returns (records by window,
    results keyed by (window, set, label))."""
    records, results = {}, {}
    for w in windows:
        recs = make_slices(work / f"slices-{w}", per_volume, w)
        records[w] = recs
        tuning, held_out = split_patients(r["patient"] for r in recs)
        for name, pats in (("tuning", tuning), ("held-out", held_out)):
            for label, method, g, hidf in configs:
                results[(w, name, label)] = evaluate_set(recs, pats, method, g, hidf)
    return records, results


def tuning_grid(records: dict) -> list[dict]:
    """The grid the defaults were chosen from, on the tuning set only: ``gift`` and ``intersection``
    per grey level, and ``hellinger`` per grey level and Gabor weight (0: colour only, inf: Gabor only)."""
    from medfeat.retrieval import GABOR_WEIGHT, Index

    rows = []
    for g in GRID_GREYS:
        per = {}
        for w, recs in records.items():
            tuning, _ = split_patients(r["patient"] for r in recs)
            sub = [r for r in recs if r["patient"] in tuning]
            idx = Index.from_images([r["path"] for r in sub], grey_levels=g, errors="raise", gift_parts=True)
            labels = {r["path"]: r["modality"] for r in sub}
            groups = {r["path"]: r["volume"] for r in sub}
            for m in ("gift", "intersection"):
                per.setdefault((m, None), {})[w] = precision_at_k(idx, labels, groups, m)
            wh, wg = idx.weights
            for gw in GRID_GABOR_WEIGHTS:
                weights = (0.0, wg) if gw == float("inf") else (wh, wg * gw / GABOR_WEIGHT)
                var = Index(idx.names, idx.vectors, g, weights=weights)
                per.setdefault(("hellinger", gw), {})[w] = precision_at_k(var, labels, groups, "hellinger")
        for (m, gw), by_w in per.items():
            rows.append({"method": m, "grey_levels": g, "gabor_weight": gw,
                         "mean": float(np.mean([r["precision_at_10"] for r in by_w.values()])),
                         **{w: r["precision_at_10"] for w, r in by_w.items()},
                         "per_modality": {w: r["per_modality"] for w, r in by_w.items()}})
    return rows


def timings(records: list[dict], work: Path) -> dict:
    """Build (images, table), save/load and query times on the slices."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import medfeat
    from medfeat.retrieval import DEFAULT_GREY_LEVELS, Index

    paths = [r["path"] for r in records]
    out: dict = {"images": len(paths)}
    t = time.perf_counter()
    index = Index.from_images(paths)
    out["build_from_images_s"] = time.perf_counter() - t
    # a features table as a production writes it (image, sha256, job, error, gift columns)
    settings = medfeat.Settings(gift_grey_levels=DEFAULT_GREY_LEVELS)
    rows = [medfeat.extract(p, settings=settings, families=["gift"]) for p in paths]
    cols = list(rows[0])
    table = pa.table({"image": paths, "sha256": [""] * len(paths), "job": [0] * len(paths),
                      "error": [""] * len(paths), **{c: [r[c] for r in rows] for c in cols}})
    reps = max(1, 2000 // len(paths))
    tab_path = work / "features.parquet"
    pq.write_table(pa.concat_tables([table] * reps), tab_path)
    t = time.perf_counter()
    tindex = Index.from_table(tab_path)
    out["build_from_table_rows"] = len(tindex)
    out["build_from_table_s"] = time.perf_counter() - t
    out["table_equals_images"] = bool(tindex.grey_levels == index.grey_levels and np.array_equal(
        tindex.vectors[:len(index)], index.vectors))
    idx_path = work / "index.npz"
    t = time.perf_counter()
    index.save(idx_path)
    out["save_s"] = time.perf_counter() - t
    t = time.perf_counter()
    Index.load(idx_path)
    out["load_s"] = time.perf_counter() - t
    index.search(paths[0])
    ts = []
    for p in paths:
        t = time.perf_counter()
        index.search(p, top=10)
        ts.append(time.perf_counter() - t)
    out["query_ms_median"] = 1e3 * float(np.median(ts))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=5, help="axial slices per volume (default 5)")
    ap.add_argument("--windows", default=",".join(WINDOWS), help="MR/PET windows to evaluate: minmax,percentile")
    ap.add_argument("--grid", action="store_true", help="also the tuning-set grid the defaults were chosen from")
    ap.add_argument("--out", type=Path, default=OUT / "retrieval_eval.json")
    args = ap.parse_args(argv)
    if not STS.exists():
        print(f"skipped: needs {STS} (../shared is absent in this clone)")
        return 0
    from rich.console import Console
    from rich.table import Table

    from medfeat.retrieval import DEFAULT_GREY_LEVELS, DEFAULT_METHOD, GABOR_WEIGHT

    windows = tuple(w.strip() for w in args.windows.split(",") if w.strip())
    con = Console(width=150)
    with tempfile.TemporaryDirectory(prefix="medfeat-retrieval-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        records, results = run_evaluation(args.slices, work, windows)
        eval_s = time.perf_counter() - t0
        grid = tuning_grid(records) if args.grid else []
        tim = timings(records[windows[0]], work)
    tuning, held_out = split_patients(r["patient"] for r in records[windows[0]])
    if grid:
        gt = Table(title=f"tuning set only ({', '.join(tuning)}): modality precision@10, mean of the windows")
        for c in ("method", "G", "Gabor weight", "mean", *windows):
            gt.add_column(c, justify="right")
        for r in sorted(grid, key=lambda r: -r["mean"]):
            gt.add_row(r["method"], str(r["grey_levels"]), "" if r["gabor_weight"] is None else str(r["gabor_weight"]),
                       f"{r['mean']:.3f}", *(f"{r[w]:.3f}" for w in windows))
        con.print(gt)
    mods = ("CT", "MR", "PET")
    table = Table(title=f"modality precision@10 (own volume excluded); tuning {', '.join(tuning)}; "
                        f"held-out {', '.join(held_out)}")
    for c in ("window", "set", "configuration", "P@10", *mods, "worst"):
        table.add_column(c, justify="right" if c not in ("window", "set", "configuration") else "left")
    for (w, s, label), r in results.items():
        table.add_row(w, s, label, f"{r['precision_at_10']:.3f}", *(f"{r['per_modality'][m]:.3f}" for m in mods),
                      f"{r['worst_query']:.1f}")
    for s in ("tuning", "held-out"):
        for label, *_ in CONFIGS:
            rs = [results[(w, s, label)] for w in windows]
            table.add_row("mean", s, label, f"{np.mean([r['precision_at_10'] for r in rs]):.3f}",
                          *(f"{np.mean([r['per_modality'][m] for r in rs]):.3f}" for m in mods), "")
    con.print(table)
    con.print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in tim.items()})
    payload = {
        "data": str(STS), "slices_per_volume": args.slices,
        "split": {"rule": "patient ids sorted; 1st, 3rd, 5th, 7th, 9th -> tuning, the others -> held-out",
                  "tuning": tuning, "held_out": held_out},
        "measure": "modality precision@10 within a set (an index of its slices only), own volume excluded",
        "windowing": {"CT": list(CT_WINDOW), "MR and PET": {"minmax": "volume minimum..maximum",
                                                            "percentile": f"volume percentiles {PERCENTILES}"}},
        "resampling": "linear to 256x256 (scipy.ndimage.zoom order=1, grid_mode=True)",
        "defaults": {"method": DEFAULT_METHOD, "grey_levels": DEFAULT_GREY_LEVELS, "gabor_weight": GABOR_WEIGHT},
        "results": [{"window": w, "set": s, "configuration": label, **r} for (w, s, label), r in results.items()],
        "tuning_grid": grid, "timings": tim, "evaluation_s": eval_s, "cpu_count": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=1))
    con.print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
