"""Cold start as a user pays it: wall time of fresh ``python -m medfeat ...`` processes.

Cases, each in its own empty numba cache (``MEDFEAT_CACHE_DIR`` in a temp folder, ``NUMBA_CACHE_DIR``
unset, so medfeat chooses ``$MEDFEAT_CACHE_DIR/numba``):

* cold first extract: ``medfeat extract`` right after install, nothing compiled yet
  (a 24x48x48 int16 NIfTI volume with an ellipsoid mask: auto -> default-3d, every default family;
  a 128x128 PNG: auto -> default-2d);
* warmup: ``medfeat warmup`` in an empty cache (compiles every kernel, all shipped presets, 2D and 3D);
* warm first extract: the same extracts in fresh processes once warmup filled the cache (median of
  --repeat runs), and ``medfeat --version`` (Python + import floor) for reference.

Usage: python bench/cold_start.py [--repeat 3] [--json OUT.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_inputs(folder: Path) -> dict:
    import nibabel as nib
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:24, :48, :48]
    vol = (100 * np.exp(-((z - 12) ** 2 + (y - 24) ** 2 + (x - 24) ** 2) / 200)
           + rng.normal(0, 10, z.shape)).astype(np.int16)
    mask = (((z - 12) ** 2 / 64 + (y - 24) ** 2 / 225 + (x - 24) ** 2 / 225) < 1).astype(np.uint8)
    aff = np.diag([0.8, 0.8, 2.0, 1.0])
    nib.save(nib.Nifti1Image(vol.transpose(2, 1, 0), aff), folder / "vol.nii.gz")
    nib.save(nib.Nifti1Image(mask.transpose(2, 1, 0), aff), folder / "mask.nii.gz")
    Image.fromarray(rng.integers(0, 256, (128, 128), dtype=np.uint8)).save(folder / "img.png")
    return {"3d": [str(folder / "vol.nii.gz"), "--mask", str(folder / "mask.nii.gz")],
            "2d": [str(folder / "img.png")]}


def medfeat(args: list[str], cache: Path, out: Path) -> float:
    """Wall seconds of one fresh ``python -m medfeat ARGS`` process with its cache in CACHE."""
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "_MEDFEAT_NUMBA_CACHE_DIR")}
    env["MEDFEAT_CACHE_DIR"] = str(cache)
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "medfeat", *args], env=env, capture_output=True, text=True, cwd=out)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"medfeat {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
    return wall


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores ({cpu}), {platform.system()} {platform.release()}, Python {platform.python_version()}"


def load() -> str:
    try:
        return " ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="Warm runs per case (median reported).")
    ap.add_argument("--json", type=Path, help="Also write the results as JSON.")
    a = ap.parse_args()
    print(f"machine: {machine()}; load average at start: {load()}")
    res: dict = {"machine": machine(), "load_start": load()}
    with tempfile.TemporaryDirectory(prefix="medfeat-cold-") as tmp:
        tmp = Path(tmp)
        inputs = make_inputs(tmp)
        for dim, args in inputs.items():
            res[f"cold_extract_{dim}_s"] = medfeat(["extract", *args, "-o", f"cold-{dim}.csv"], tmp / f"cold-{dim}", tmp)
            print(f"cold first extract {dim}: {res[f'cold_extract_{dim}_s']:.1f} s (empty cache)")
        warm = tmp / "warm"
        res["warmup_s"] = medfeat(["warmup"], warm, tmp)
        print(f"medfeat warmup: {res['warmup_s']:.1f} s (empty cache)")
        res["warmup_again_s"] = medfeat(["warmup"], warm, tmp)
        print(f"medfeat warmup again: {res['warmup_again_s']:.1f} s (cache filled)")
        for dim, args in inputs.items():
            times = [medfeat(["extract", *args, "-o", f"warm-{dim}.csv"], warm, tmp) for _ in range(a.repeat)]
            res[f"warm_extract_{dim}_s"] = statistics.median(times)
            print(f"warm first extract {dim}: {statistics.median(times):.1f} s "
                  f"(after warmup; runs {', '.join(f'{t:.1f}' for t in times)})")
        times = [medfeat(["--version"], warm, tmp) for _ in range(a.repeat)]
        res["version_s"] = statistics.median(times)
        print(f"medfeat --version: {res['version_s']:.2f} s (Python start + import floor)")
    res["load_end"] = load()
    print(f"load average at end: {res['load_end']}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
