"""Scale test of the retrieval index: 1,000,000 images built from a production's output, queried.

A production's ``features.parquet`` (``medfeat run DATASET --families gift`` with
``gift_grey_levels = 8``) is simulated: one row per image with the columns a production writes
(``image``, ``sha256``, ``job``, ``error``, then the gift columns: ``gift_codes``, the 3,412 block
and Gabor codes packed in 3,412 bytes, and the 290 histogram columns as float64 -- or with
``--layout wide`` the 3,702 ``gift_*`` float64 columns of earlier medfeat versions), in row groups of
4,096 rows. The rows are synthetic but real GIFT feature sets: ``--bases`` (default 200)
synthetic grey pictures -- smooth random fields of random grain, contrast and noise on a black
background of random extent -- are described by :func:`medfeat.features.gift.gift_features`, and
every row is one of them perturbed (about 5% of the block colours and of the Gabor block bands moved
one step, pixels moved between neighbouring grey bins; the Gabor histograms follow from the bands),
so the rows are distinct and every value is one GIFT can write.

Three processes, so each peak RSS (``resource.getrusage(...).ru_maxrss``) is its own:

1. *write* the table (not timed against a target);
2. *build*: ``Index.from_table`` (the index's default settings), then ``save``; the build time and
   the build's peak RSS;
3. *serve*: ``Index.load`` in a fresh process, then ``--queries`` (default 100) queries with the
   default method and ``top=10``: images' features that are not in the index (``GiftFeatures`` of
   new perturbations: what a query image gives after its ~6 ms of feature extraction, timed
   apart), and indexed images by name. Median and p95 latency, and the peak RSS.

Checks: an indexed image queried by name is its own top hit with score 1; the one-pass top-10 equals
the full brute-force ranking (all scores sorted) for 5 queries.

Targets (issue 14): a query in <= 50 ms, <= 4 GB of memory. Results are printed and written to
``bench/out/index_scale.json``.

    .venv/bin/python bench/index_scale.py                    # 1,000,000 rows (~10 min, ~5 GB of disk)
    .venv/bin/python bench/index_scale.py --rows 20000       # quick
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
GREY_LEVELS = 8
BATCH = 4096
TARGET_MS = 50.0
TARGET_GB = 4.0


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # Linux: kB


def base_pictures(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` synthetic 256 x 256 grey pictures: smooth random fields on a black background."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:256, 0:256] / 255.0
    pics = []
    for _ in range(n):
        field = ndimage.gaussian_filter(rng.normal(size=(256, 256)), sigma=rng.uniform(0.5, 12.0))
        field = (field - field.min()) / max(float(np.ptp(field)), 1e-9)
        noise = rng.uniform(0, 0.08) * rng.normal(size=field.shape)
        img = rng.uniform(0.0, 0.6) + rng.uniform(0.1, 0.9) * field + noise
        cy, cx, ry, rx = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.2, 0.9), rng.uniform(0.2, 0.9)
        img[((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 > 1] = 0.0      # black background
        pics.append(np.clip(np.rint(img * 255), 0, 255).astype(np.uint8))
    return pics


def base_features(n: int, seed: int = 0):
    from medfeat.features.gift import gift_features

    return [gift_features(p, grey_levels=GREY_LEVELS) for p in base_pictures(n, seed)]


def perturbed(bases, n: int, rng) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` perturbed copies of random bases: block colours (n, 340), colour counts (n, nc), bands (n, 3072)."""
    from medfeat.features.gift import N_CHROMATIC

    nc = N_CHROMATIC + GREY_LEVELS
    pick = rng.integers(0, len(bases), n)
    blocks = np.stack([b.block_colours for b in bases]).astype(np.int16)[pick]
    counts = np.stack([b.colour_counts for b in bases]).astype(np.int64)[pick]
    bands = np.stack([b.gabor_bands.reshape(-1) for b in bases]).astype(np.int8)[pick]
    for a, lo, hi in ((blocks, N_CHROMATIC, nc - 1), (bands, 0, 9)):   # ~5% of the entries one step
        where = np.nonzero(rng.random(a.shape, dtype=np.float32) < 0.05)
        step = (rng.integers(0, 2, where[0].size) * 2 - 1).astype(a.dtype)
        moved = np.clip(a[where] + step, lo, hi)
        a[where] = np.where(a[where] >= lo, moved, a[where])           # chromatic blocks stay
    rows = np.arange(n)
    for _ in range(3):  # pixels between neighbouring grey bins: the sum stays 65536
        src = rng.integers(N_CHROMATIC, nc, n)
        dst = np.clip(src + rng.integers(0, 2, n) * 2 - 1, N_CHROMATIC, nc - 1)
        amount = (rng.random(n) * 0.2 * counts[rows, src]).astype(np.int64)
        counts[rows, src] -= amount
        counts[rows, dst] += amount
    return blocks, counts, bands.astype(np.uint8)


def write_table(path: Path, rows: int, bases: int, seed: int, layout: str = "packed") -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from medfeat.features.gift import N_BANDS, N_FILTERS, N_GABOR_BLOCKS, column_names
    from medfeat.tables import pack_gift_codes

    t0 = time.perf_counter()
    feats = base_features(bases, seed)
    rng = np.random.default_rng(seed + 1)
    cols = column_names(GREY_LEVELS)
    writer = None
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        blocks, counts, bands = perturbed(feats, n, rng)
        bands = bands.astype(np.int64)
        key = (bands + (np.arange(bands.shape[1]) // N_GABOR_BLOCKS * N_BANDS)
               + (np.arange(n) * N_FILTERS * N_BANDS)[:, None])
        gh = np.bincount(key.ravel(), minlength=n * N_FILTERS * N_BANDS).reshape(n, -1) / N_GABOR_BLOCKS
        values = np.concatenate([blocks, counts / 65536.0, bands, gh], axis=1).astype(np.float64)
        arrays = [pa.array([f"dataset/img{start + i:07d}.png" for i in range(n)]), pa.array([""] * n),
                  pa.array(np.full(n, start // BATCH, np.int64)), pa.array([""] * n)]
        arrays += [pa.array(values[:, k]) for k in range(values.shape[1])]
        table = pa.Table.from_arrays(arrays, names=["image", "sha256", "job", "error", *cols])
        if layout == "packed":
            table = pack_gift_codes(table)
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return {"rows": rows, "layout": layout, "columns": len(writer.schema), "write_s": time.perf_counter() - t0,
            "table_gb": path.stat().st_size / 1e9}


def build(table: Path, index_path: Path) -> dict:
    from medfeat.retrieval import Index

    t = time.perf_counter()
    idx = Index.from_table(table)
    build_s = time.perf_counter() - t
    t = time.perf_counter()
    idx.save(index_path)
    return {"images": len(idx), "build_s": build_s, "save_s": time.perf_counter() - t,
            "index_gb": index_path.stat().st_size / 1e9, "stored_columns": int(idx._vec.shape[1]),
            "descriptor_bytes_per_image": int(idx._vec.shape[1]), "build_peak_rss_gb": peak_rss_gb()}


def serve(index_path: Path, queries: int, bases: int, seed: int) -> dict:
    from medfeat.features.gift import GiftFeatures, gift_features
    from medfeat.retrieval import Index

    t = time.perf_counter()
    idx = Index.load(index_path)
    out: dict = {"load_s": time.perf_counter() - t}
    feats = base_features(bases, seed)
    rng = np.random.default_rng(seed + 99)
    blocks, counts, bands = perturbed(feats, queries, rng)
    new = [GiftFeatures(blocks[i].astype(np.int16), counts[i], np.zeros((3, 4, 256)),
                        bands[i].reshape(3, 4, 256).astype(np.uint8), GREY_LEVELS) for i in range(queries)]
    names = [idx.names[i] for i in rng.choice(len(idx), queries, replace=False)]
    t = time.perf_counter()
    idx.position(names[0])
    out["name_table_s"] = time.perf_counter() - t   # once: the name -> row dictionary
    idx.search(new[0])                               # warm-up (compiled code is cached on disk)
    for label, qs in (("new_image_features", new), ("indexed_name", names)):
        ts = []
        hits = []
        for q in qs:
            t = time.perf_counter()
            hits.append(idx.search(q, top=10))
            ts.append(time.perf_counter() - t)
        out[f"query_ms_{label}"] = {"median": 1e3 * float(np.median(ts)), "p95": 1e3 * float(np.percentile(ts, 95)),
                                    "max": 1e3 * float(np.max(ts))}
        if label == "indexed_name":
            out["self_is_top_hit"] = all(h[0][1] == 1.0 and (h[0][0] == n or idx.rows(h[0][0]) == [])
                                         for h, n in zip(hits, names))
    t = time.perf_counter()
    for p in base_pictures(10, seed + 5):
        gift_features(p, grey_levels=GREY_LEVELS)
    out["feature_extraction_ms_per_query_image"] = 1e3 * (time.perf_counter() - t) / 10
    same = []
    for q in new[:5]:  # the one-pass top 10 against every score sorted
        s = idx.scores(q)
        order = np.lexsort((np.arange(s.size), -s))[:10]
        same.append([(idx.names[i], float(s[i])) for i in order] == idx.search(q, top=10))
    out["top10_equals_brute_force"] = all(same)
    out["serve_peak_rss_gb"] = peak_rss_gb()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--bases", type=int, default=200)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--layout", choices=("packed", "wide"), default="packed",
                    help="the gift codes as a production writes them (packed) or in 3,412 float columns (wide)")
    ap.add_argument("--work", type=Path, default=None,
                    help="folder for the table and the index (default: a temporary one)")
    ap.add_argument("--phase", choices=("all", "write", "build", "serve"), default="all", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=OUT / "index_scale.json")
    args = ap.parse_args(argv)
    if args.phase != "all":
        table, index_path = args.work / "features.parquet", args.work / "index.npz"
        res = (write_table(table, args.rows, args.bases, args.seed, args.layout) if args.phase == "write" else
               build(table, index_path) if args.phase == "build" else
               serve(index_path, args.queries, args.bases, args.seed))
        print(json.dumps(res))
        return 0
    result: dict = {"rows": args.rows, "layout": args.layout, "grey_levels": GREY_LEVELS, "cpu_count": os.cpu_count(),
                    "targets": {"query_ms": TARGET_MS, "rss_gb": TARGET_GB}}
    with tempfile.TemporaryDirectory(prefix="medfeat-scale-", dir=args.work) as tmp:
        for phase in ("write", "build", "serve"):
            cmd = [sys.executable, __file__, "--phase", phase, "--work", tmp, "--rows", str(args.rows),
                   "--bases", str(args.bases), "--queries", str(args.queries), "--seed", str(args.seed),
                   "--layout", args.layout]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode:
                print(r.stdout, r.stderr, file=sys.stderr)
                return 1
            result[phase] = json.loads(r.stdout.strip().splitlines()[-1])
            print(phase, json.dumps(result[phase]), flush=True)
    s, b = result["serve"], result["build"]
    worst_p95 = max(s["query_ms_new_image_features"]["p95"], s["query_ms_indexed_name"]["p95"])
    result["meets_targets"] = {"query_p95_ms": worst_p95 <= TARGET_MS,
                               "build_rss_gb": b["build_peak_rss_gb"] <= TARGET_GB,
                               "serve_rss_gb": s["serve_peak_rss_gb"] <= TARGET_GB}
    print(json.dumps(result["meets_targets"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"written {args.out}")
    return 0 if all(result["meets_targets"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
