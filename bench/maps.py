"""Voxel feature maps: medfeat against PyRadiomics' voxel-based mode on the same ROI (issue 15).

Target: **PyRadiomics voxel-based GLCM / medfeat maps >= 50x**, end to end, radius 1.

The case is an STS CT tumour ROI from ``../shared/data/sts/nifti`` (``--case``, default ``STS_001``:
117,145 voxels, the 3D case of ``bench/extract_speed.py``). Both tools get the same input: the CT
(float64 HU) and the mask cropped to the ROI's bounding box plus the kernel radius (kernels at the
ROI's border reach that far; PyRadiomics crops to the same box itself), with the image's spacing.

* **PyRadiomics 3.0.1**, in its own venv (``bench/.venvs/pyradiomics``, see
  ``bench/extract_speed.py``; this script runs itself there with ``--worker``): ``execute(image,
  mask, voxelBased=True)`` with ``kernelRadius`` R, ``maskedKernel`` true (its default),
  ``binWidth`` 25 (its default), ``voxelBatch`` -1 (its default: every voxel at once), the
  Original image and the ``glcm`` class with its default features (symmetric GLCM, 13 directions,
  features averaged over the directions with pairs; MCC included, which fails on kernels with an
  empty direction and comes out NaN -- its cost is paid all the same). Timed: ``execute`` (wall
  and CPU), one call, the venv's modules already imported.
* **medfeat** :func:`medfeat.maps.compute_maps`, families ``glcm``, ``aggregations = ["3D,
  averaged"]`` (PyRadiomics' default: 13 directions, averaged), fixed bin size 25 HU with bin edges
  at multiples of 25 like PyRadiomics' (``resegment_min = floor(min / 25) * 25``, which removes no
  voxel), radius R, masked kernel. Timed: a first call (numba's cache loaded, or compiled) and the
  best of ``--repeats`` calls, wall and CPU, one thread.

Agreement: the 23 GLCM features both define (:data:`medfeat.pyradiomics.GLCM`) at ``--sample``
random ROI voxels; the largest relative difference per feature (absolute floor 1e-12).

    .venv/bin/python bench/maps.py                    # STS_001, radius 1 (PyRadiomics ~2-3 min)
    .venv/bin/python bench/maps.py --case STS_002     # a smaller ROI (17,090 voxels)
    .venv/bin/python bench/maps.py --no-peers         # medfeat only

Results are printed and written to ``bench/out/maps.json``. Exits 0 with a reason when
``../shared`` or PyRadiomics' venv is absent.
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

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread for both tools (PyRadiomics' numpy)

import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SHARED = ROOT.parent / "shared" / "data"
OUT = BENCH / "out"
PYRADIOMICS = BENCH / ".venvs" / "pyradiomics" / "bin" / "python"
TARGET = 50.0
BIN_WIDTH = 25.0


# ----------------------------------------------------------------------------- PyRadiomics side

def worker(job_path: str) -> None:
    """Runs under PyRadiomics' venv: voxel-based GLCM of the job's arrays; JSON on stdout."""
    import logging

    import radiomics
    import SimpleITK as sitk
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    with open(job_path) as fh:
        job = json.load(fh)
    spacing = tuple(float(s) for s in reversed(job["spacing"]))  # (x, y, z)
    image = sitk.GetImageFromArray(np.load(job["image"]))
    mask = sitk.GetImageFromArray(np.load(job["mask"]).astype(np.uint8))
    for im in (image, mask):
        im.SetSpacing(spacing)
        im.SetOrigin((0.0, 0.0, 0.0))
    radiomics.setVerbosity(logging.CRITICAL)  # MCC's failures on kernels with an empty direction
    ex = RadiomicsFeatureExtractor(binWidth=float(job["bin_width"]), kernelRadius=int(job["radius"]),
                                   maskedKernel=True, label=1, additionalInfo=False, normalize=False,
                                   resampledPixelSpacing=None)
    ex.disableAllImageTypes()
    ex.enableImageTypeByName("Original")
    ex.disableAllFeatures()
    ex.enableFeaturesByName(glcm=[])
    t0, c0 = time.perf_counter(), time.process_time()
    result = ex.execute(image, mask, voxelBased=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    sample = np.load(job["sample"])  # (n, 3) z, y, x
    values = {}
    for key, img in result.items():
        if not key.startswith("original_glcm_") or not isinstance(img, sitk.Image):
            continue
        arr = sitk.GetArrayFromImage(img)
        vals = []
        for z, y, x in sample:  # the output map's own grid (PyRadiomics crops): by physical point
            pt = (x * spacing[0], y * spacing[1], z * spacing[2])
            i, j, k = img.TransformPhysicalPointToIndex(pt)
            vals.append(float(arr[k, j, i]))
        values[key[len("original_glcm_"):]] = vals
    json.dump({"wall_s": wall, "cpu_s": cpu, "features": values, "voxel_batch": ex.settings.get("voxelBatch", -1),
               "pyradiomics": radiomics.__version__}, sys.stdout)


# ----------------------------------------------------------------------------- the case

def load_case(case: str, radius: int):
    import nibabel as nib

    folder = SHARED / "sts" / "nifti" / case
    img = nib.load(str(folder / "CT_image.nii.gz"))
    image = np.asarray(img.dataobj, dtype=np.float64).transpose(2, 1, 0)
    mask = np.asarray(nib.load(str(folder / "CT_mask.nii.gz")).dataobj).transpose(2, 1, 0) > 0
    spacing = tuple(float(z) for z in img.header.get_zooms()[:3][::-1])
    idx = np.argwhere(mask)
    box = tuple(slice(max(0, lo - radius), min(n, hi + 1 + radius))
                for lo, hi, n in zip(idx.min(axis=0), idx.max(axis=0), mask.shape))
    return np.ascontiguousarray(image[box]), np.ascontiguousarray(mask[box]), spacing


def run_medfeat(image, mask, spacing, radius: int, repeats: int):
    from medfeat.settings import Settings
    from medfeat.image import Image
    from medfeat.maps import compute_maps

    lo = float(np.floor(image[mask].min() / BIN_WIDTH) * BIN_WIDTH)
    s = Settings(dimension="3d", discretisation="fbs", bin_width=BIN_WIDTH, resegment_min=lo,
                 aggregations=("3D, averaged",), distance=1)
    img = Image(image, spacing=spacing)
    times = []
    maps = None
    for k in range(repeats + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        maps = compute_maps(img, mask, s, families=("glcm",), radius=radius)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return maps, times


def run_pyradiomics(image, mask, spacing, radius: int, sample: np.ndarray):
    if not PYRADIOMICS.exists():
        return None, f"no PyRadiomics venv at {PYRADIOMICS} (bench/extract_speed.py creates it)"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "image.npy", image)
        np.save(tmp / "mask.npy", mask)
        np.save(tmp / "sample.npy", sample)
        job = {"image": str(tmp / "image.npy"), "mask": str(tmp / "mask.npy"), "sample": str(tmp / "sample.npy"),
               "spacing": list(spacing), "radius": radius, "bin_width": BIN_WIDTH}
        (tmp / "job.json").write_text(json.dumps(job))
        done = subprocess.run([str(PYRADIOMICS), str(Path(__file__).resolve()), "--worker", str(tmp / "job.json")],
                              capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        return None, f"PyRadiomics worker failed: {done.stderr.strip().splitlines()[-1:]}"
    return json.loads(done.stdout), None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="STS_001", help="STS patient (CT ROI), default STS_001")
    ap.add_argument("--radius", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3, help="medfeat calls after the first (best taken)")
    ap.add_argument("--sample", type=int, default=2000, help="ROI voxels compared")
    ap.add_argument("--no-peers", action="store_true", help="medfeat only")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    if not (SHARED / "sts" / "nifti" / args.case).exists():
        print(f"skipped: needs ../shared/data/sts/nifti/{args.case}")
        return 0
    from medfeat.features.base import column
    from medfeat.pyradiomics import GLCM

    image, mask, spacing = load_case(args.case, args.radius)
    n = int(mask.sum())
    print(f"{args.case} CT: ROI {n} voxels, box {image.shape} (z, y, x) with a {args.radius}-voxel margin, "
          f"spacing {spacing} mm, radius {args.radius}, GLCM 3D averaged, bin width {BIN_WIDTH:g} HU")
    maps, times = run_medfeat(image, mask, spacing, args.radius, args.repeats)
    first, best = times[0], min(times[1:]) if len(times) > 1 else times[0]
    best_cpu = min(t[1] for t in times[1:]) if len(times) > 1 else times[0][1]
    print(f"medfeat maps: first call {first[0]:.2f} s (numba cache load), best of {args.repeats} "
          f"{best[0]:.3f} s wall, {best_cpu:.3f} s CPU ({best[0] / n * 1e6:.1f} us per voxel)")
    result = {"case": args.case, "roi_voxels": n, "box": list(image.shape), "radius": args.radius,
              "medfeat": {"first_s": first[0], "wall_s": best[0], "cpu_s": best_cpu, "times": times}}
    if not args.no_peers:
        rng = np.random.default_rng(0)
        idx = np.argwhere(mask)
        sample = idx[rng.choice(len(idx), size=min(args.sample, len(idx)), replace=False)]
        print("PyRadiomics voxel-based (one call) ...", flush=True)
        peer, why = run_pyradiomics(image, mask, spacing, args.radius, sample)
        if peer is None:
            print(f"PyRadiomics skipped: {why}")
        else:
            ratio, ratio_cpu = peer["wall_s"] / best[0], peer["cpu_s"] / best_cpu
            print(f"PyRadiomics {peer['pyradiomics']} voxel-based: {peer['wall_s']:.1f} s wall, {peer['cpu_s']:.1f} s "
                  f"CPU (voxelBatch {peer['voxel_batch']})")
            print(f"ratio PyRadiomics / medfeat: {ratio:.0f}x wall, {ratio_cpu:.0f}x CPU "
                  f"(target >= {TARGET:g}x: {'met' if ratio >= TARGET else 'NOT met'})")
            rows = {tuple(v): k for k, v in enumerate(zip(*maps.index))}
            at = [rows[tuple(v)] for v in sample]
            worst = {}
            for name, tag in GLCM.items():
                if name not in peer["features"]:
                    continue
                ours = maps.values[at, maps.columns.index(column(tag, "3D, averaged"))]
                theirs = np.asarray(peer["features"][name])
                both = np.isfinite(ours) & np.isfinite(theirs)
                diff = np.abs(ours - theirs)[both]
                big = np.abs(theirs[both]) >= 1e-6  # relative where the value is not ~0, absolute where it is
                rel = diff[big] / np.abs(theirs[both][big])
                worst[name] = {"max_rel": float(rel.max()) if rel.size else 0.0,
                               "max_abs_near_zero": float(diff[~big].max()) if (~big).any() else 0.0,
                               "nan_mismatch": int((np.isfinite(ours) != np.isfinite(theirs)).sum())}
            others = sorted(set(peer["features"]) - set(GLCM))
            top = max(v["max_rel"] for v in worst.values())
            top_abs = max(v["max_abs_near_zero"] for v in worst.values())
            mism = sum(v["nan_mismatch"] for v in worst.values())
            print(f"agreement at {len(sample)} ROI voxels, {len(worst)} features: max relative difference {top:.2e} "
                  f"(values >= 1e-6), max absolute difference {top_abs:.2e} (values < 1e-6), {mism} NaN mismatches")
            for name in ("JointEnergy", "Contrast", "Correlation", "JointEntropy", "Idmn", "Imc1", "ClusterShade"):
                if name in worst:
                    w = worst[name]
                    print(f"  {name:<20} max rel {w['max_rel']:.2e}  max abs near 0 {w['max_abs_near_zero']:.1e}  "
                          f"NaN mismatches {w['nan_mismatch']}")
            print(f"  without a medfeat counterpart: {', '.join(others) or '-'} (MCC is NaN in voxel mode "
                  "wherever a kernel has an empty direction)")
            result["pyradiomics"] = {k: v for k, v in peer.items() if k != "features"}
            result["ratio_wall"], result["ratio_cpu"] = ratio, ratio_cpu
            result["agreement"] = worst
    OUT.mkdir(exist_ok=True)
    (OUT / "maps.json").write_text(json.dumps(result, indent=1))
    print(f"written {OUT / 'maps.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
