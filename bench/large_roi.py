"""A 512 x 512 x 300 CT with a large ROI: peak memory (RSS) and time of ``medfeat extract``.

The issue's requirement: such a volume must extract within 2 GB RSS. The script writes a
synthetic CT (int16 HU, 0.8 x 0.8 x 1.5 mm: air around a body-sized cylinder of soft tissue with
noise, fat, bone and a textured tumour-like ellipsoid) and an ellipsoidal ROI as NIfTI files into a
temporary folder, then runs ``medfeat extract CT.nii.gz --mask ROI.nii.gz --settings <preset>`` as
a user would, in a child process, and reports its peak RSS and its wall time, for ``default-3d``
(every 3D family) by default. The peak is the child's ``VmHWM`` (``/proc/self/status``, read as it
exits: the high-water mark of its own memory), not ``ru_maxrss``, which on Linux also counts the
parent's memory at the fork (the parent has just built the volume).

    .venv/bin/python bench/large_roi.py                       # ROI of 8.6 M voxels (8.2 litres)
    .venv/bin/python bench/large_roi.py --roi-semi-axes 110 200 200 --settings default-3d

Measured here (2 cores; default-3d, every 3D family): 8.6 M ROI voxels 0.78 GB in 7.5 s, 18.4 M
0.94 GB in 12 s, 34 M (nearly the whole body, a 65 M-voxel box; ``--roi-semi-axes 150 230 235``)
1.38 GB in 24 s, the whole volume (78.6 M voxels; ``--roi-semi-axes 1000 1000 1000``) 1.75 GB in
30 s. What stays is the image as read (int16), the mask, and the ROI's grey levels as int32 while
texture families run, plus the largest family's work arrays (GLDZM's: the padded levels, the
union-find parents, 16-bit distances); the float64 intensities of the ROI are dropped once the
intensity families are done.

Prints one line per run and writes ``bench/out/large_roi.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
OUT = BENCH / "out"
SHAPE = (300, 512, 512)          # (z, y, x)
SPACING = (1.5, 0.8, 0.8)        # mm
LIMIT_MB = 2048


def write_case(folder: Path, semi_axes: tuple[float, float, float], seed: int = 0) -> tuple[Path, Path, int]:
    """The synthetic CT and ROI as NIfTI files; returns their paths and the ROI's voxel count."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    nz, ny, nx = SHAPE
    z, y, x = np.ogrid[:nz, :ny, :nx]
    cy, cx, cz = (ny - 1) / 2, (nx - 1) / 2, (nz - 1) / 2
    ct = np.full(SHAPE, -1000, dtype=np.int16)
    body = ((y - cy) / 230.0) ** 2 + ((x - cx) / 240.0) ** 2 <= 1.0  # (1, y, x) cylinder
    ct[:] = np.where(body, 40, -1000).astype(np.int16)
    fat = body & (((y - cy) / 215.0) ** 2 + ((x - cx) / 225.0) ** 2 > 1.0)
    ct[:, fat[0]] = -90
    spine = ((y - cy - 150) / 25.0) ** 2 + ((x - cx) / 25.0) ** 2 <= 1.0
    ct[:, spine[0]] = 700
    roi = (((z - cz) / semi_axes[0]) ** 2 + ((y - cy) / semi_axes[1]) ** 2 + ((x - cx) / semi_axes[2]) ** 2) <= 1.0
    # a textured lesion: smooth blobs plus noise inside the ROI, noise everywhere
    for k in range(nz):  # slice by slice keeps the generator's memory small
        sl = ct[k].astype(np.float32)
        sl += rng.normal(0.0, 12.0, size=sl.shape).astype(np.float32)
        r = roi[k]
        if r.any():
            sl[r] += (25.0 * np.sin(y[0] / 7.0 + k / 5.0) * np.cos(x[0, 0] / 9.0))[r] + 30.0
        ct[k] = np.clip(np.rint(sl), -1024, 3071).astype(np.int16)
    affine = np.diag([SPACING[2], SPACING[1], SPACING[0], 1.0])  # NIfTI (x, y, z)
    image_path, mask_path = folder / "CT.nii.gz", folder / "ROI.nii.gz"
    nib.save(nib.Nifti1Image(ct.transpose(2, 1, 0), affine), image_path)
    nib.save(nib.Nifti1Image(roi.astype(np.uint8).transpose(2, 1, 0), affine), mask_path)
    return image_path, mask_path, int(np.count_nonzero(roi))


# runs the CLI as ``python -m medfeat`` does, then reports the process's memory high-water mark
_CHILD = """
import runpy, sys
sys.argv = ["medfeat"] + sys.argv[1:]
try:
    runpy.run_module("medfeat", run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
try:
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
except OSError:
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("VmHWM_kB", hwm, file=sys.stderr)
sys.exit(code)
"""


def run_extract(image: Path, mask: Path, settings: str, out: Path) -> dict:
    """``medfeat extract`` in a child process: wall time, peak RSS (MB), exit code, stderr tail."""
    cmd = [sys.executable, "-c", _CHILD, "extract", str(image), "--mask", str(mask), "--settings", settings,
           "-o", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    lines = done.stderr.strip().splitlines()
    hwm = [float(l.split()[1]) for l in lines if l.startswith("VmHWM_kB")]
    return {"settings": settings, "wall_s": wall, "peak_rss_mb": hwm[-1] / 1024.0 if hwm else float("nan"),
            "exit": done.returncode, "stderr": "\n".join(l for l in lines if not l.startswith("VmHWM_kB"))[-600:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--roi-semi-axes", type=float, nargs=3, default=(80.0, 160.0, 160.0),
                        metavar=("Z", "Y", "X"), help="ROI ellipsoid semi-axes in voxels (z, y, x)")
    parser.add_argument("--settings", nargs="+", default=["default-3d"], help="presets to run, one child each")
    args = parser.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="medfeat-large-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        image, mask, n = write_case(tmp, tuple(args.roi_semi_axes))
        print(f"synthetic CT {SHAPE[2]}x{SHAPE[1]}x{SHAPE[0]} (x, y, z) at {SPACING[::-1]} mm, ROI {n} voxels "
              f"(semi-axes {tuple(args.roi_semi_axes)} voxels), written in {time.perf_counter() - t0:.1f} s")
        for settings in args.settings:
            r = run_extract(image, mask, settings, tmp / f"{settings}.parquet")
            r["roi_voxels"] = n
            ok = r["exit"] == 0 and r["peak_rss_mb"] <= LIMIT_MB
            print(f"{settings}: exit {r['exit']}, {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(limit {LIMIT_MB} MB: {'yes' if ok else 'NO'})" + (f"\n{r['stderr']}" if r["exit"] else ""))
            results.append(r)
    report = {"shape_zyx": SHAPE, "spacing_zyx_mm": SPACING, "limit_mb": LIMIT_MB, "cpus": os.cpu_count(),
              "runs": results}
    (OUT / "large_roi.json").write_text(json.dumps(report, indent=1))
    return 0 if all(r["exit"] == 0 and r["peak_rss_mb"] <= LIMIT_MB for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
