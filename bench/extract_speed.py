"""medfeat against PyRadiomics: time per image and agreement of the shared features.

Two real CT cases from ``../shared/data``:

* **2D**: the middle axial slice (256x256) of ``medical/ct/invesalius_ProMED_CT0051_head.nii.gz``
  with a nearly whole-image mask (all but a 2-voxel border); medfeat ``dimension="2d"`` with
  "2D, averaged" texture, PyRadiomics ``force2D``.
* **3D**: the ``sts/nifti/STS_xxx`` CT tumour ROI whose mask is closest to 117,000 voxels; medfeat
  ``dimension="3d"`` with "3D, averaged" texture, PyRadiomics' default 13-direction 3D texture.

Both tools get the same float64 HU array and mask and the same discretisation: fixed bin width 25 HU
with bin edges at multiples of 25 (PyRadiomics' rule; medfeat gets ``resegment_min = floor(min/25)*25``,
which removes no voxel). Families: medfeat ``stat``, ``ih``, ``glcm``, ``glrlm``; PyRadiomics
``firstorder``, ``glcm``, ``glrlm`` (Original image, no resampling, no normalisation).

Timing is per image, on in-memory data, best of several calls after one warm-up call (the warm-up
pays numba's one-off JIT / cache load in medfeat; it is reported separately as the first call).
Both tools run with one BLAS / OpenMP thread (``OPENBLAS_NUM_THREADS`` etc. = 1 unless already set
in the environment; the PyRadiomics worker inherits them): one image per core is how extraction is
deployed (Dask workers get the same setting), and on a shared machine a second BLAS thread waiting
for a busy core turned numpy's dot products of a ROI's intensities into 10 ms stalls.
medfeat is timed as ``medfeat.extract(Image, mask, settings, families=[...])``, PyRadiomics as
``RadiomicsFeatureExtractor.execute`` on SimpleITK images (without its diagnostics), in a
subprocess: PyRadiomics 3.0.1 lives in its own venv, ``bench/.venvs/pyradiomics``, which this script
creates on first use (``pip install --no-build-isolation pyradiomics==3.0.1``; it compiles C
extensions) and reuses afterwards. If it cannot be installed the PyRadiomics columns are skipped
with the reason. The worker is ``bench/_pyradiomics_worker.py``.

Every feature both tools define identically is compared (relative tolerance 1e-6 plus a tiny
absolute one). The target of the issue is medfeat >= 20x faster than PyRadiomics on both cases; the
ratio uses the matched run (same families, PyRadiomics' diagnostics off). For context the script
also times PyRadiomics' default ``execute`` (diagnostics on) and, once, every feature class it
enables by default (adding shape, glszm, gldm, ngtdm: on the 2D case its 3D shape class alone takes
~20 s, which is where the issue's "16 s per slice" comes from). Results are printed and written to
``bench/out/extract_speed.json``. About 40 s in all (10 s with ``--no-context``).

    .venv/bin/python bench/extract_speed.py                   # from the repository root
    .venv/bin/python bench/extract_speed.py --no-context      # skip the context runs
    .venv/bin/python bench/extract_speed.py --no-pyradiomics  # medfeat only

Exits 0 with a reason when ``../shared`` is absent.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# before numpy loads its BLAS (see the docstring); an explicit setting in the environment wins
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
for _var in BLAS_THREAD_VARS:
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SHARED = ROOT.parent / "shared" / "data"
OUT = BENCH / "out"
VENV = BENCH / ".venvs" / "pyradiomics"
WORKER = BENCH / "_pyradiomics_worker.py"

BIN_WIDTH = 25.0
TARGET_RATIO = 20.0
TARGET_3D_VOXELS = 117_000
FAMILIES = ("stat", "ih", "glcm", "glrlm")
RTOL, ATOL = 1e-6, 1e-9

# PyRadiomics feature -> (medfeat IBSI tag, transform of the PyRadiomics value, texture family?)
# Only features with the same definition in both; left out: firstorder TotalEnergy (energy times
# voxel volume, not an IBSI feature), glcm MCC (maximal correlation coefficient, not in IBSI).
FIRST_ORDER = {
    "Mean": "stat.mean", "Variance": "stat.var", "Skewness": "stat.skew", "Kurtosis": "stat.kurt",
    "Median": "stat.median", "Minimum": "stat.min", "Maximum": "stat.max", "10Percentile": "stat.P10",
    "90Percentile": "stat.P90", "InterquartileRange": "stat.iqr", "Range": "stat.range",
    "MeanAbsoluteDeviation": "stat.mad", "RobustMeanAbsoluteDeviation": "stat.rmad",
    "Energy": "stat.energy", "RootMeanSquared": "stat.rms",
    "Entropy": "ih.entropy", "Uniformity": "ih.uniformity",
}
GLCM = {
    "JointEnergy": "cm.energy", "Contrast": "cm.contrast", "JointEntropy": "cm.joint.entr",
    "JointAverage": "cm.joint.avg", "SumSquares": "cm.joint.var", "MaximumProbability": "cm.joint.max",
    "DifferenceAverage": "cm.diff.avg", "DifferenceVariance": "cm.diff.var", "DifferenceEntropy": "cm.diff.entr",
    "SumAverage": "cm.sum.avg", "SumEntropy": "cm.sum.entr",
    "Id": "cm.inv.diff", "Idm": "cm.inv.diff.mom", "Idn": "cm.inv.diff.norm", "Idmn": "cm.inv.diff.mom.norm",
    "InverseVariance": "cm.inv.var", "Correlation": "cm.corr", "Autocorrelation": "cm.auto.corr",
    "ClusterTendency": "cm.clust.tend", "ClusterShade": "cm.clust.shade", "ClusterProminence": "cm.clust.prom",
    "Imc1": "cm.info.corr.1", "Imc2": "cm.info.corr.2",
}
GLRLM = {
    "ShortRunEmphasis": "rlm.sre", "LongRunEmphasis": "rlm.lre",
    "LowGrayLevelRunEmphasis": "rlm.lgre", "HighGrayLevelRunEmphasis": "rlm.hgre",
    "ShortRunLowGrayLevelEmphasis": "rlm.srlge", "ShortRunHighGrayLevelEmphasis": "rlm.srhge",
    "LongRunLowGrayLevelEmphasis": "rlm.lrlge", "LongRunHighGrayLevelEmphasis": "rlm.lrhge",
    "GrayLevelNonUniformity": "rlm.glnu", "GrayLevelNonUniformityNormalized": "rlm.glnu.norm",
    "RunLengthNonUniformity": "rlm.rlnu", "RunLengthNonUniformityNormalized": "rlm.rlnu.norm",
    "RunPercentage": "rlm.r.perc", "GrayLevelVariance": "rlm.gl.var", "RunVariance": "rlm.rl.var",
    "RunEntropy": "rlm.rl.entr",
}
# PyRadiomics reports kurtosis m4/m2^2; IBSI (and medfeat) report the excess kurtosis.
TRANSFORMS = {"firstorder_Kurtosis": lambda v: v - 3.0}


# ----------------------------------------------------------------------------- cases


def load_nifti(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """A NIfTI volume as a float64 ``(z, y, x)`` array and its ``(z, y, x)`` spacing in mm."""
    import nibabel as nib

    img = nib.load(str(path))
    array = np.asarray(img.dataobj, dtype=np.float64).transpose(2, 1, 0)
    spacing = tuple(float(z) for z in img.header.get_zooms()[:3][::-1])
    return np.ascontiguousarray(array), spacing


def case_2d() -> dict:
    """Middle axial slice of the head CT, mask = all but a 2-voxel border."""
    path = SHARED / "medical" / "ct" / "invesalius_ProMED_CT0051_head.nii.gz"
    volume, spacing = load_nifti(path)
    image = np.ascontiguousarray(volume[volume.shape[0] // 2][np.newaxis])
    mask = np.zeros(image.shape, dtype=bool)
    mask[:, 2:-2, 2:-2] = True
    return {"name": "2D", "source": f"{path.name}, slice {volume.shape[0] // 2}", "image": image,
            "mask": mask, "spacing": spacing, "dimension": "2d", "aggregation": "2D, averaged"}


def case_3d() -> dict:
    """The STS CT tumour ROI whose mask has the voxel count closest to 117,000."""
    import nibabel as nib

    counts = {}
    for folder in sorted((SHARED / "sts" / "nifti").glob("STS_*")):
        if (folder / "CT_mask.nii.gz").exists():
            counts[folder] = int(np.count_nonzero(np.asarray(nib.load(str(folder / "CT_mask.nii.gz")).dataobj)))
    if not counts:
        raise FileNotFoundError("no STS_xxx/CT_mask.nii.gz under ../shared/data/sts/nifti")
    folder = min(counts, key=lambda f: abs(counts[f] - TARGET_3D_VOXELS))
    image, spacing = load_nifti(folder / "CT_image.nii.gz")
    mask, _ = load_nifti(folder / "CT_mask.nii.gz")
    listing = ", ".join(f"{f.name} {n}" for f, n in counts.items())
    print(f"3D case: CT mask voxel counts: {listing}")
    print(f"3D case: {folder.name} ({counts[folder]} voxels, closest to {TARGET_3D_VOXELS})")
    return {"name": "3D", "source": f"sts/{folder.name}/CT_image.nii.gz + CT_mask.nii.gz", "image": image,
            "mask": mask != 0, "spacing": spacing, "dimension": "3d", "aggregation": "3D, averaged"}


def grey_levels(case: dict) -> tuple[int, int]:
    """PyRadiomics' fixed-bin-width grey levels of the ROI: (N_g = highest level, levels present)."""
    x = case["image"][case["mask"]]
    levels = np.floor(x / BIN_WIDTH) - np.floor(x.min() / BIN_WIDTH) + 1
    return int(levels.max()), int(np.unique(levels).size)


# ----------------------------------------------------------------------------- medfeat


def medfeat_settings(case: dict, aggregations: tuple[str, ...] | None = None):
    import medfeat

    lower = math.floor(case["image"][case["mask"]].min() / BIN_WIDTH) * BIN_WIDTH
    return medfeat.Settings.preset(f"default-{case['dimension']}").replace(
        discretisation="fbs", bin_width=BIN_WIDTH, resegment_min=float(lower), dimension=case["dimension"],
        aggregations=aggregations or (case["aggregation"],))


def time_calls(fn, repeats: int) -> list[float]:
    """Wall time of ``repeats`` calls of ``fn()``, in ms."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def run_medfeat(case: dict, repeats: int) -> dict:
    """First-call and best-of-``repeats`` time of medfeat.extract, its features, and a per-family split.

    The timed calls of the different variants (all families, none, each family alone, every
    aggregation) are interleaved, round after round: a burst of load from other processes then
    slows one round of each, not every call of one variant.
    """
    import medfeat

    image = medfeat.Image(case["image"], spacing=case["spacing"])
    settings = medfeat_settings(case)
    every = medfeat_settings(case, None).replace(aggregations=None)  # all aggregations of the dimension

    def call(families=FAMILIES, s=settings):
        return medfeat.extract(image, case["mask"], s, families=list(families))

    t0 = time.perf_counter()
    features = call()
    first_ms = (time.perf_counter() - t0) * 1e3
    variants = {"all": call, "(no family: crop, checks)": lambda: call(())}
    variants.update({fam: (lambda fam=fam: call((fam,))) for fam in FAMILIES})
    variants["every aggregation"] = lambda: call(s=every)
    for fn in variants.values():
        fn()  # warm (a family's numba kernels load on first use)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            times[k] += time_calls(fn, 1)
    per_family = {k: min(times[k]) for k in variants if k not in ("all", "every aggregation")}
    return {"first_ms": first_ms, "times_ms": times["all"], "best_ms": min(times["all"]), "per_family_ms": per_family,
            "all_aggregations": list(every.texture_aggregations), "all_aggregations_ms": min(times["every aggregation"]),
            "features": features}


# ----------------------------------------------------------------------------- PyRadiomics


def venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def pyradiomics_works() -> bool:
    py = venv_python()
    if not py.exists():
        return False
    probe = subprocess.run([str(py), "-c", "import radiomics, SimpleITK, radiomics._cmatrices"],
                           capture_output=True, text=True)
    return probe.returncode == 0


def install_pyradiomics() -> str | None:
    """Create the PyRadiomics venv (or reuse a working one); None on success, else the reason."""
    if pyradiomics_works():
        return None
    python3 = shutil.which("python3") or sys.executable
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / "pyradiomics_install.log"
    shutil.rmtree(VENV, ignore_errors=True)
    steps = [
        [python3, "-m", "venv", str(VENV)],
        [str(venv_python()), "-m", "pip", "install", "-q", "numpy", "setuptools", "wheel"],
        [str(venv_python()), "-m", "pip", "install", "-q", "--no-build-isolation", "pyradiomics==3.0.1"],
    ]
    print(f"installing PyRadiomics 3.0.1 into {VENV} (once; log: {log}) ...")
    with open(log, "w") as fh:
        for cmd in steps:
            fh.write("$ " + " ".join(cmd) + "\n")
            fh.flush()
            try:
                done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=1200)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"`{' '.join(cmd[-3:])}` failed: {exc}"
            if done.returncode != 0:
                tail = log.read_text().strip().splitlines()[-1:] or [""]
                return f"`{' '.join(cmd[-3:])}` exited {done.returncode}: {tail[0][:200]} (see {log})"
    if not pyradiomics_works():
        return f"PyRadiomics installed but `import radiomics` fails in {VENV} (see {log})"
    return None


def run_pyradiomics(case: dict, repeats: int, context: bool) -> dict:
    """Run the worker on the case in the PyRadiomics venv; its JSON result (timings in ms, features)."""
    with tempfile.TemporaryDirectory(prefix="medfeat-bench-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "image.npy", case["image"])
        np.save(tmp / "mask.npy", case["mask"])
        job = {"image": str(tmp / "image.npy"), "mask": str(tmp / "mask.npy"), "spacing": list(case["spacing"]),
               "force2d": case["dimension"] == "2d", "bin_width": BIN_WIDTH, "repeats": repeats,
               "context": context}
        (tmp / "job.json").write_text(json.dumps(job))
        done = subprocess.run([str(venv_python()), str(WORKER), str(tmp / "job.json")],
                              capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"PyRadiomics worker failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    result = json.loads(done.stdout)
    result["best_ms"] = min(result["times_ms"])
    if context:
        result["diagnostics_best_ms"] = min(result["diagnostics_times_ms"])
    return result


# ----------------------------------------------------------------------------- agreement


def shared_features(aggregation: str) -> list[tuple[str, str]]:
    """(PyRadiomics name, medfeat column) of every feature both define identically."""
    from medfeat.features.base import column

    pairs = [(f"firstorder_{k}", column(t)) for k, t in FIRST_ORDER.items()]
    pairs += [(f"glcm_{k}", column(t, aggregation)) for k, t in GLCM.items()]
    pairs += [(f"glrlm_{k}", column(t, aggregation)) for k, t in GLRLM.items()]
    return pairs


def compare(medfeat_row: dict, pyr_row: dict, aggregation: str) -> list[dict]:
    """One record per shared feature: both values, relative difference, agreement."""
    rows = []
    for pname, col in shared_features(aggregation):
        theirs = pyr_row.get(pname)
        ours = medfeat_row.get(col)
        if theirs is None or ours is None:
            rows.append({"pyradiomics": pname, "medfeat": col, "pyradiomics_value": theirs, "medfeat_value": ours,
                         "rel_diff": None, "agree": False, "note": "missing on one side"})
            continue
        theirs = TRANSFORMS.get(pname, float)(theirs)
        diff = abs(ours - theirs)
        scale = max(abs(ours), abs(theirs))
        rel = diff / scale if scale > 0 else 0.0
        agree = bool(diff <= ATOL + RTOL * scale) or (math.isnan(ours) and math.isnan(theirs))
        rows.append({"pyradiomics": pname, "medfeat": col, "pyradiomics_value": theirs, "medfeat_value": ours,
                     "rel_diff": rel, "agree": agree, "note": "" if agree else explain(pname)})
    return rows


def explain(pname: str) -> str:
    """Known definitional differences that make a shared feature legitimately disagree."""
    notes = {
        "glcm_Idn": "N_g: PyRadiomics uses the highest grey level present in the ROI, IBSI the discretisation's",
        "glcm_Idmn": "N_g: PyRadiomics uses the highest grey level present in the ROI, IBSI the discretisation's",
    }
    return notes.get(pname, "unexplained: check the medfeat definition against IBSI")


# ----------------------------------------------------------------------------- report


def print_agreement(case: dict, rows: list[dict]) -> None:
    print(f"\nAgreement, {case['name']} ({case['aggregation']}): |diff| <= {ATOL:g} + {RTOL:g} * max(|a|, |b|)")
    print(f"  {'PyRadiomics':<44} {'medfeat column':<28} {'PyRadiomics':>16} {'medfeat':>16} {'rel diff':>9}  ok")
    for r in rows:
        rel = "-" if r["rel_diff"] is None else f"{r['rel_diff']:.1e}"
        pv = "-" if r["pyradiomics_value"] is None else f"{r['pyradiomics_value']:.9g}"
        mv = "-" if r["medfeat_value"] is None else f"{r['medfeat_value']:.9g}"
        flag = "yes" if r["agree"] else "NO  " + r["note"]
        print(f"  {r['pyradiomics']:<44} {r['medfeat']:<28} {pv:>16} {mv:>16} {rel:>9}  {flag}")


def print_summary(results: list[dict]) -> None:
    head = (f"{'case':<5} {'voxels':>8} {'grey levels':>12} {'medfeat ms':>11} {'1st call ms':>12} "
            f"{'PyRadiomics ms':>15} {'ratio':>7} {'>= 20x':>7} {'agree':>8}")
    print("\n" + head)
    print("-" * len(head))
    for r in results:
        pyr = r.get("pyradiomics")
        pyr_ms = f"{pyr['best_ms']:.1f}" if pyr else "skipped"
        ratio = f"{r['ratio']:.1f}x" if pyr else "-"
        met = ("yes" if r["target_met"] else "NO") if pyr else "-"
        agree = f"{r['agreeing']}/{r['compared']}" if pyr else "-"
        levels = f"{r['grey_levels']} ({r['grey_levels_present']})"
        print(f"{r['case']:<5} {r['voxels']:>8} {levels:>12} {r['medfeat']['best_ms']:>11.2f} "
              f"{r['medfeat']['first_ms']:>12.1f} {pyr_ms:>15} {ratio:>7} {met:>7} {agree:>8}")
    print("grey levels: N_g = highest level (levels present); ratio = PyRadiomics ms / medfeat ms (best of each);"
          " PyRadiomics: firstorder+glcm+glrlm, diagnostics off")
    for r in results:
        pyr = r.get("pyradiomics") or {}
        if "diagnostics_best_ms" in pyr:
            print(f"context {r['case']}: PyRadiomics default execute (diagnostics on) {pyr['diagnostics_best_ms']:.1f} ms"
                  f" = {pyr['diagnostics_best_ms'] / r['medfeat']['best_ms']:.1f}x medfeat; every default class"
                  f" ({', '.join(pyr['all_classes'])}) {pyr['all_classes_ms']:.0f} ms (one run, not comparable)")
    for r in results:
        split = ", ".join(f"{k} {v:.2f}" for k, v in r["medfeat"]["per_family_ms"].items())
        print(f"medfeat {r['case']} per family alone (ms, each including the shared crop/checks): {split}")
        print(f"medfeat {r['case']} with every {r['case']} aggregation ({', '.join(r['medfeat']['all_aggregations'])}):"
              f" {r['medfeat']['all_aggregations_ms']:.2f} ms")


# ----------------------------------------------------------------------------- main


def bench_case(case: dict, pyradiomics: bool, medfeat_repeats: int, pyr_repeats: int, context: bool) -> dict:
    voxels = int(np.count_nonzero(case["mask"]))
    ng, present = grey_levels(case)
    print(f"\n== {case['name']}: {case['source']}, shape {case['image'].shape}, {voxels} ROI voxels, "
          f"N_g {ng} ({present} present), bin width {BIN_WIDTH:g} HU")
    mf = run_medfeat(case, medfeat_repeats)
    print(f"medfeat: first call {mf['first_ms']:.1f} ms, best of {medfeat_repeats} {mf['best_ms']:.2f} ms")
    result = {"case": case["name"], "source": case["source"], "shape": list(case["image"].shape),
              "spacing_mm": list(case["spacing"]), "voxels": voxels, "grey_levels": ng, "grey_levels_present": present,
              "aggregation": case["aggregation"], "medfeat": mf}
    if pyradiomics:
        t0 = time.perf_counter()
        pyr = run_pyradiomics(case, pyr_repeats, context)
        print(f"PyRadiomics {pyr['pyradiomics']}: first call {pyr['first_ms']:.1f} ms, best of {pyr_repeats} "
              f"{pyr['best_ms']:.1f} ms (worker wall {time.perf_counter() - t0:.1f} s)")
        if context:
            print(f"PyRadiomics context: with diagnostics {pyr['diagnostics_best_ms']:.1f} ms; "
                  f"all default classes ({', '.join(pyr['all_classes'])}) {pyr['all_classes_ms']:.0f} ms")
        rows = compare(mf["features"], pyr["features"], case["aggregation"])
        print_agreement(case, rows)
        ratio = pyr["best_ms"] / mf["best_ms"]
        result.update(pyradiomics=pyr, ratio=ratio, target_met=ratio >= TARGET_RATIO, agreement=rows,
                      compared=len(rows), agreeing=sum(r["agree"] for r in rows))
    return result


GIFT_C_MS = 150.0      # GNU GIFT 0.1.15a's C extractor, one core, per 256x256 image (measured by the issue)
GIFT_TARGET_MS = 10.0


def bench_gift(repeats: int) -> dict:
    """The retrieval (gift) family on the 256x256 RGB GIFT fixtures: ms per image on one core,
    from the PPM bytes GIFT read (decode + features), against GIFT's C extractor's 150 ms."""
    import io as _io

    from PIL import Image as PILImage

    import medfeat
    from medfeat.features.gift import gift_features, gift_rgb, to_sparse
    from medfeat.io import read_image

    fixtures = sorted((SHARED / "gift" / "fixtures").glob("*.png"))[:20]
    tmp = Path(tempfile.mkdtemp(prefix="medfeat-gift-bench-"))
    try:
        ppms = []
        for f in fixtures:
            p = tmp / (f.stem + ".ppm")
            PILImage.open(f).convert("RGB").save(p, format="PPM")
            ppms.append(p)
        images = [read_image(p) for p in ppms]
        for im in images[:2]:  # warm-up
            to_sparse(gift_features(gift_rgb(im)))
            medfeat.extract(im, None, "default-2d", families=["gift"])
        feat, full, readx = [], [], []
        for _ in range(max(1, repeats // 10)):
            for im, p in zip(images, ppms):
                t0 = time.perf_counter()
                to_sparse(gift_features(gift_rgb(im)))
                feat.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                medfeat.extract(im, None, "default-2d", families=["gift"])
                full.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                medfeat.extract(read_image(p), None, "default-2d", families=["gift"])
                readx.append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = lambda xs: float(np.median(xs) * 1e3)  # noqa: E731
    out = {"images": len(images), "features_ms": med(feat), "extract_ms": med(full), "read_and_extract_ms": med(readx),
           "gift_c_ms": GIFT_C_MS}
    out["ratio_vs_gift_c"] = GIFT_C_MS / out["read_and_extract_ms"]
    print(f"\ngift family, {len(images)} GIFT fixtures (256x256 RGB PPM), median ms per image, one process:")
    print(f"  gift_features + sparse form {out['features_ms']:.2f} ms | medfeat.extract(families=['gift']) "
          f"{out['extract_ms']:.2f} ms | read PPM + extract {out['read_and_extract_ms']:.2f} ms")
    print(f"  GNU GIFT C extractor {GIFT_C_MS:.0f} ms -> {out['ratio_vs_gift_c']:.1f}x faster; target <= "
          f"{GIFT_TARGET_MS:.0f} ms: {'yes' if out['read_and_extract_ms'] <= GIFT_TARGET_MS else 'NO'}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-pyradiomics", action="store_true", help="time medfeat only")
    parser.add_argument("--repeats", type=int, default=20, help="timed medfeat calls per case (after a warm-up)")
    parser.add_argument("--pyradiomics-repeats", type=int, default=10,
                        help="timed PyRadiomics calls per case (after a warm-up)")
    parser.add_argument("--no-context", action="store_true",
                        help="skip PyRadiomics' diagnostics-on and all-classes context runs (saves ~25 s)")
    args = parser.parse_args(argv)

    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent (the benchmark needs ../shared/data's CT images)")
        return 0
    use_pyr = not args.no_pyradiomics
    skip_reason = "--no-pyradiomics" if not use_pyr else None
    if use_pyr:
        skip_reason = install_pyradiomics()
        if skip_reason:
            print(f"PyRadiomics skipped: {skip_reason}")
            use_pyr = False
    import medfeat

    context = not args.no_context
    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
          " (other processes on the machine inflate the timings); "
          + ", ".join(f"{v}={os.environ[v]}" for v in BLAS_THREAD_VARS))
    results = [bench_case(case_2d(), use_pyr, args.repeats, args.pyradiomics_repeats, context),
               bench_case(case_3d(), use_pyr, args.repeats, args.pyradiomics_repeats, context)]
    print_summary(results)
    gift = bench_gift(args.repeats)
    OUT.mkdir(parents=True, exist_ok=True)
    report = {"medfeat": medfeat.__version__, "python": sys.version.split()[0], "cpus": os.cpu_count(),
              "load_average_after": list(os.getloadavg()), "bin_width": BIN_WIDTH,
              "blas_threads": {v: os.environ[v] for v in BLAS_THREAD_VARS},
              "families": list(FAMILIES), "target_ratio": TARGET_RATIO, "rtol": RTOL, "atol": ATOL,
              "pyradiomics_skipped": skip_reason, "cases": results, "gift": gift}
    (OUT / "extract_speed.json").write_text(json.dumps(report, indent=1, default=float))
    print(f"\nwrote {(OUT / 'extract_speed.json').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
