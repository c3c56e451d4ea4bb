"""medfeat against PyRadiomics and Nyxus, all feature families: time per image and agreement.

Two real CT cases from ``../shared/data``:

* **2D**: the middle axial slice (256x256) of ``medical/ct/invesalius_ProMED_CT0051_head.nii.gz``
  with a nearly whole-image mask (all but a 2-voxel border); medfeat ``dimension="2d"`` with
  "2D, averaged" texture, PyRadiomics ``force2D``, Nyxus' 2D API.
* **3D**: the ``sts/nifti/STS_xxx`` CT tumour ROI whose mask is closest to 117,000 voxels; medfeat
  ``dimension="3d"`` with "3D, averaged" texture, PyRadiomics' default 13-direction 3D texture,
  Nyxus3D.

All tools get the same float64 HU array and mask and the same discretisation: fixed bin width 25 HU
with bin edges at multiples of 25 (PyRadiomics' rule; medfeat gets ``resegment_min =
floor(min/25)*25``, which removes no voxel; the Nyxus worker hands Nyxus those grey levels).

What is timed (per image, in-memory, best of several calls after a warm-up call that pays numba's
cache load / JIT, reported as the first call):

* **PyRadiomics 3.0.1, all seven feature classes**: firstorder, shape (shape2D for the 2D case),
  glcm, glrlm, glszm, gldm, ngtdm; ``RadiomicsFeatureExtractor.execute`` on SimpleITK images,
  diagnostics off, Original image, no resampling or normalisation.
* **medfeat, matched**: the IBSI families that hold PyRadiomics' features: stat and ih
  (firstorder), glcm, glrlm, glszm, ngldm (PyRadiomics' gldm is IBSI's NGLDM with alpha 0),
  ngtdm, and the shape family -- ``morph2d`` on the 2D case (PyRadiomics' shape2D), ``morph``
  without Moran's I and Geary's C on the 3D case (the only IBSI morphology features PyRadiomics has
  no counterpart of; ``morph_autocorrelation = false``). medfeat computes more features than
  PyRadiomics even so (e.g. OMBB/MVEE densities, centre of mass shift, ih's 23 features). The
  issue's target is **PyRadiomics / medfeat matched >= 20x**.
* **medfeat, all**: every family medfeat has for the case -- also ivh, gldzm, li and ``morph``
  with Moran's I and Geary's C (and on the 2D case both ``morph`` and ``morph2d``).
* **Nyxus 0.11** (where it installs): intensity + GLCM, GLRLM, GLSZM, GLDM, NGTDM on the same
  grey levels, one thread (see ``bench/_nyxus_worker.py`` for what is and is not comparable).
  On the 3D case Nyxus 0.11 has no in-memory API: the worker writes NIfTI files and times
  ``Nyxus3D.featurize_files`` (file I/O included; the report says so). Against **medfeat, Nyxus'
  families** (stat, ih, glcm, glrlm, glszm, ngldm, ngtdm).
* medfeat each family alone, and all families in every aggregation method of the dimension.
* **End to end, files read included** (issue 14, target 3: median >= 20x on CT, >= 8x on the small PET
  ROIs): every STS patient's ``CT`` and ``PET`` image and tumour mask as the ``.nii.gz`` files, each tool
  reading them itself in a warm process -- ``medfeat.extract(image_path, mask_path, settings)`` against
  PyRadiomics' ``execute(image_path, mask_path)`` (one persistent worker in its venv, ITK on one
  thread), with one PyRadiomics parameter file (:data:`E2E_PARAMS`: the seven classes, bin width 25,
  label 1, diagnostics off) that medfeat gets through its converter (``settings_from_pyradiomics``).
  Per-image wall time (best of the interleaved rounds) and, as a load-insensitive check, CPU time;
  per-patient ratios and their median per modality, for two halves fixed up front (patient ids
  sorted, alternating: 0, 2, 4, ... tune -- every optimisation decision was made on them -- and 1,
  3, 5, ... are held out) and for all ten. ``--e2e-only`` runs just this case (~1.5 min). Also per
  image, to show what the target leaves for the features: the target's budget (PyRadiomics' time / 20
  or / 8), medfeat's reading of the two files alone, and inflating their gzip bytes alone in memory
  with the fastest inflate installed (python-isal), no parsing.

The medfeat variants are interleaved round after round, so a burst of load from other processes
slows one round of each rather than every call of one variant. All tools run with one BLAS /
OpenMP thread (``OPENBLAS_NUM_THREADS`` etc. = 1 unless set; the workers inherit them): one image
per core is how extraction is deployed, and on a shared machine a second BLAS thread waiting for a
busy core turned numpy's dot products into 10 ms stalls. PyRadiomics and Nyxus run in their own
venvs (``bench/.venvs/pyradiomics``: ``pip install numpy setuptools wheel`` then ``pip install
--no-build-isolation pyradiomics==3.0.1``; ``bench/.venvs/nyxus``: ``pip install 'nyxus==0.11.*'``),
created on first use and reused; if one cannot be installed its columns are skipped with the reason.

Every feature PyRadiomics and medfeat define identically is compared (relative tolerance 1e-6 plus
a tiny absolute one); known definitional differences are named. With ``--context`` the script also
times PyRadiomics' default ``execute`` once (diagnostics on and its default classes, whose 3D
``shape`` on a single slice takes ~20 s: the "16 s per 256x256 slice" the issue quotes). Results
are printed and written to ``bench/out/extract_speed.json``. About a minute (plus ~25 s with
``--context``; the first run also installs the two venvs).

    .venv/bin/python bench/extract_speed.py                  # from the repository root
    .venv/bin/python bench/extract_speed.py --context        # + PyRadiomics' default execute
    .venv/bin/python bench/extract_speed.py --no-peers       # medfeat only

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
VENVS = BENCH / ".venvs"

BIN_WIDTH = 25.0
TARGET_RATIO = 20.0
TARGET_3D_VOXELS = 117_000
RTOL, ATOL = 1e-6, 1e-9

# medfeat families per variant and case dimension (see the docstring)
MATCHED = {"2d": ("stat", "ih", "glcm", "glrlm", "glszm", "ngldm", "ngtdm", "morph2d"),
           "3d": ("stat", "ih", "glcm", "glrlm", "glszm", "ngldm", "ngtdm", "morph")}
ALL = {"2d": ("stat", "ih", "ivh", "glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm", "morph2d", "morph", "li"),
       "3d": ("stat", "ih", "ivh", "glcm", "glrlm", "glszm", "gldzm", "ngtdm", "ngldm", "morph", "li")}
NYXUS_FAMILIES = ("stat", "ih", "glcm", "glrlm", "glszm", "ngldm", "ngtdm")
PYRADIOMICS_CLASSES = ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")

# PyRadiomics feature -> medfeat IBSI tag, and value transforms: one table, in the package
from medfeat.pyradiomics import (FIRST_ORDER, GLCM, GLDM, GLRLM, GLSZM, NGTDM, SHAPE_2D, SHAPE_3D,  # noqa: E402
                                 TEXTURED, TRANSFORMS)

# Nyxus column -> medfeat IBSI tag, informative only (see bench/_nyxus_worker.py for what differs);
# 3D columns carry a "3" prefix
NYXUS = {
    "MEAN": "stat.mean", "MIN": "stat.min", "MAX": "stat.max", "MEDIAN": "stat.median",
    "VARIANCE_BIASED": "stat.var", "SKEWNESS": "stat.skew", "EXCESS_KURTOSIS": "stat.kurt",
    "MEAN_ABSOLUTE_DEVIATION": "stat.mad",
    "GLCM_JAVE_AVE": "cm.joint.avg", "GLCM_CONTRAST_AVE": "cm.contrast", "GLCM_JMAX_AVE": "cm.joint.max",
    "GLCM_IDMN_AVE": "cm.inv.diff.mom.norm", "GLCM_CORRELATION_AVE": "cm.corr",
    "GLRLM_SRE_AVE": "rlm.sre", "GLRLM_RLN_AVE": "rlm.rlnu",
    "GLSZM_SAE": "szm.sze", "GLSZM_ZP": "szm.z.perc",
    "GLDM_SDE": "ngl.lde", "GLDM_GLN": "ngl.glnu",
    "NGTDM_COARSENESS": "ngt.coarseness", "NGTDM_CONTRAST": "ngt.contrast", "NGTDM_BUSYNESS": "ngt.busyness",
}


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


def medfeat_settings(case: dict, aggregations: tuple[str, ...] | None = None, autocorrelation: bool = True):
    import medfeat

    lower = math.floor(case["image"][case["mask"]].min() / BIN_WIDTH) * BIN_WIDTH
    return medfeat.Settings.preset(f"default-{case['dimension']}").replace(
        discretisation="fbs", bin_width=BIN_WIDTH, resegment_min=float(lower), dimension=case["dimension"],
        aggregations=aggregations or (case["aggregation"],), morph_autocorrelation=autocorrelation)


def time_calls(fn, repeats: int) -> list[float]:
    """Wall time of ``repeats`` calls of ``fn()``, in ms."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def run_medfeat(case: dict, repeats: int) -> dict:
    """First-call and best-of-``repeats`` times of ``medfeat.extract`` in every variant, interleaved
    round after round (see the docstring), and the features of the "all" variant."""
    import medfeat

    dim = case["dimension"]
    image = medfeat.Image(case["image"], spacing=case["spacing"])
    full = medfeat_settings(case)
    matched = medfeat_settings(case, autocorrelation=False)
    every = full.replace(aggregations=None)  # every aggregation method of the dimension

    def call(families, s=full):
        return medfeat.extract(image, case["mask"], s, families=list(families))

    t0 = time.perf_counter()
    features = call(ALL[dim])
    first_ms = (time.perf_counter() - t0) * 1e3
    variants = {"matched": lambda: call(MATCHED[dim], matched), "all": lambda: call(ALL[dim]),
                "nyxus families": lambda: call(NYXUS_FAMILIES), "(no family: crop, checks)": lambda: call(())}
    variants.update({fam: (lambda fam=fam: call((fam,))) for fam in ALL[dim]})
    variants["morph without Moran/Geary"] = lambda: call(("morph",), matched)
    variants["all, every aggregation"] = lambda: call(ALL[dim], every)
    for fn in variants.values():
        fn()  # warm (a family's numba kernels load on first use)
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for k, fn in variants.items():
            times[k] += time_calls(fn, 1)
    best = {k: min(v) for k, v in times.items()}
    return {"first_ms": first_ms, "best_ms": best, "times_ms": times, "families": {
        "matched": list(MATCHED[dim]), "all": list(ALL[dim]), "nyxus families": list(NYXUS_FAMILIES)},
        "all_aggregations": list(every.texture_aggregations), "features": features,
        "columns": {"matched": len(call(MATCHED[dim], matched)), "all": len(features),
                    "all, every aggregation": len(call(ALL[dim], every))}}


# ----------------------------------------------------------------------------- peers (own venvs)


PEERS = {
    "pyradiomics": {"venv": VENVS / "pyradiomics", "worker": BENCH / "_pyradiomics_worker.py",
                    "probe": "import radiomics, SimpleITK, radiomics._cmatrices",
                    "install": [["numpy", "setuptools", "wheel"], ["--no-build-isolation", "pyradiomics==3.0.1"]]},
    "nyxus": {"venv": VENVS / "nyxus", "worker": BENCH / "_nyxus_worker.py", "probe": "import nyxus",
              "install": [["nyxus==0.11.*"]]},
}


def venv_python(name: str) -> Path:
    venv = PEERS[name]["venv"]
    return venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def peer_works(name: str) -> bool:
    py = venv_python(name)
    return py.exists() and subprocess.run([str(py), "-c", PEERS[name]["probe"]], capture_output=True).returncode == 0


def install_peer(name: str) -> str | None:
    """Create the peer's venv (or reuse a working one); None on success, else the reason."""
    if peer_works(name):
        return None
    venv = PEERS[name]["venv"]
    python3 = shutil.which("python3") or sys.executable
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"{name}_install.log"
    shutil.rmtree(venv, ignore_errors=True)
    steps = [[python3, "-m", "venv", str(venv)]]
    steps += [[str(venv_python(name)), "-m", "pip", "install", "-q", *args] for args in PEERS[name]["install"]]
    print(f"installing {name} into {venv} (once; log: {log}) ...")
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
    if not peer_works(name):
        return f"{name} installed but `{PEERS[name]['probe']}` fails in {venv} (see {log})"
    return None


def run_peer(name: str, case: dict, job: dict) -> dict:
    """Run a peer's worker on the case in its venv; its JSON result (timings in ms, features)."""
    with tempfile.TemporaryDirectory(prefix="medfeat-bench-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "image.npy", case["image"])
        np.save(tmp / "mask.npy", case["mask"])
        job = {"image": str(tmp / "image.npy"), "mask": str(tmp / "mask.npy"), "spacing": list(case["spacing"]),
               "force2d": case["dimension"] == "2d", "bin_width": BIN_WIDTH, **job}
        (tmp / "job.json").write_text(json.dumps(job))
        done = subprocess.run([str(venv_python(name)), str(PEERS[name]["worker"]), str(tmp / "job.json")],
                              capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{name} worker failed ({done.returncode}): {done.stderr.strip()[-800:]}")
    result = json.loads(done.stdout)
    if "times_ms" in result:
        result["best_ms"] = min(result["times_ms"])
    return result


# ----------------------------------------------------------------------------- agreement


def shared_features(dimension: str, aggregation: str) -> list[tuple[str, str]]:
    """(PyRadiomics name, medfeat column) of every feature both define identically."""
    from medfeat.features.base import column, undirected_aggregations

    undirected = undirected_aggregations((aggregation,))[0]
    shape_class, shape = ("shape2D", SHAPE_2D) if dimension == "2d" else ("shape", SHAPE_3D)
    pairs = []
    for cls, table in (("firstorder", FIRST_ORDER), (shape_class, shape), ("glcm", GLCM), ("glrlm", GLRLM),
                       ("glszm", GLSZM), ("gldm", GLDM), ("ngtdm", NGTDM)):
        for name, tag in table.items():
            agg = None if not tag.startswith(TEXTURED) else aggregation if cls in ("glcm", "glrlm") else undirected
            pairs.append((f"{cls}_{name}", column(tag, agg)))
    return pairs


# PyRadiomics' PCA axis lengths use the population covariance (divide by N), IBSI's (and medfeat's)
# the sample covariance (N - 1): theirs times sqrt(N / (N - 1)) is the IBSI value
POPULATION_COVARIANCE = ("shape_MajorAxisLength", "shape_MinorAxisLength", "shape_LeastAxisLength",
                         "shape2D_MajorAxisLength", "shape2D_MinorAxisLength")


def compare(medfeat_row: dict, pyr_row: dict, dimension: str, aggregation: str, voxels: int) -> list[dict]:
    """One record per shared feature: both values, relative difference, agreement."""
    rows = []
    for pname, col in shared_features(dimension, aggregation):
        theirs = pyr_row.get(pname)
        note = ""
        if pname in POPULATION_COVARIANCE and theirs is not None:
            theirs *= math.sqrt(voxels / (voxels - 1))
            note = "PyRadiomics x sqrt(N/(N-1)): it divides the covariance by N, IBSI by N - 1"
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
                     "rel_diff": rel, "agree": agree, "note": note if agree else explain(pname)})
    return rows


def explain(pname: str) -> str:
    """Known definitional differences that make a shared feature legitimately disagree."""
    ng = "N_g: PyRadiomics uses the highest grey level present in the ROI, IBSI the discretisation's"
    notes = {"glcm_Idn": ng, "glcm_Idmn": ng}
    return notes.get(pname, "unexplained: check the medfeat definition against IBSI")


def compare_nyxus(medfeat_row: dict, nyx: dict, dimension: str, aggregation: str) -> list[dict]:
    """Informative side-by-side of a few Nyxus features (see the worker for the differences)."""
    from medfeat.features.base import column, undirected_aggregations

    undirected = undirected_aggregations((aggregation,))[0]
    prefix = "" if dimension == "2d" else "3"
    values = {**nyx.get("features", {}), **nyx.get("unshifted", {})}
    rows = []
    for name, tag in NYXUS.items():
        key = prefix + name
        agg = None if not tag.startswith(TEXTURED) else aggregation if tag.startswith(("cm.", "rlm.")) else undirected
        theirs, ours = values.get(key), medfeat_row.get(column(tag, agg))
        rel = (abs(theirs - ours) / max(abs(theirs), abs(ours)) if theirs is not None and ours is not None
               and max(abs(theirs), abs(ours)) > 0 else None)
        rows.append({"nyxus": key, "medfeat": column(tag, agg), "nyxus_value": theirs, "medfeat_value": ours,
                     "rel_diff": rel})
    return rows


# ----------------------------------------------------------------------------- report


def print_agreement(case: dict, rows: list[dict]) -> None:
    print(f"\nAgreement with PyRadiomics, {case['name']} ({case['aggregation']}): "
          f"|diff| <= {ATOL:g} + {RTOL:g} * max(|a|, |b|)")
    print(f"  {'PyRadiomics':<44} {'medfeat column':<30} {'PyRadiomics':>16} {'medfeat':>16} {'rel diff':>9}  ok")
    for r in rows:
        rel = "-" if r["rel_diff"] is None else f"{r['rel_diff']:.1e}"
        pv = "-" if r["pyradiomics_value"] is None else f"{r['pyradiomics_value']:.9g}"
        mv = "-" if r["medfeat_value"] is None else f"{r['medfeat_value']:.9g}"
        flag = ("yes " if r["agree"] else "NO  ") + r["note"]
        print(f"  {r['pyradiomics']:<44} {r['medfeat']:<30} {pv:>16} {mv:>16} {rel:>9}  {flag}")


def print_nyxus(case: dict, rows: list[dict]) -> None:
    print(f"\nNyxus side by side, {case['name']} (informative; bench/_nyxus_worker.py says what differs):")
    for r in rows:
        nv = "-" if r["nyxus_value"] is None else f"{r['nyxus_value']:.9g}"
        mv = "-" if r["medfeat_value"] is None else f"{r['medfeat_value']:.9g}"
        rel = "-" if r["rel_diff"] is None else f"{r['rel_diff']:.1e}"
        print(f"  {r['nyxus']:<26} {r['medfeat']:<30} {nv:>16} {mv:>16} {rel:>9}")


def print_summary(results: list[dict]) -> None:
    head = (f"{'case':<5} {'voxels':>8} {'levels':>10} {'medfeat matched':>16} {'all':>8} {'1st call':>9} "
            f"{'PyRadiomics':>12} {'ratio':>7} {'all':>6} {'>=20x':>6} {'agree':>7} {'Nyxus':>8} {'ratio':>7}")
    print("\n" + head)
    print("-" * len(head))
    for r in results:
        mf = r["medfeat"]["best_ms"]
        pyr, nyx = r.get("pyradiomics"), r.get("nyxus")
        pyr_ms = f"{pyr['best_ms']:.1f}" if pyr else "skipped"
        ratio = f"{r['ratio']:.1f}x" if pyr else "-"
        ratio_all = f"{r['ratio_all']:.1f}x" if pyr else "-"
        met = ("yes" if r["target_met"] else "NO") if pyr else "-"
        agree = f"{r['agreeing']}/{r['compared']}" if pyr else "-"
        nyx_ms = f"{nyx['best_ms']:.1f}" if nyx and "best_ms" in nyx else "-"
        nyx_ratio = f"{r['ratio_nyxus']:.1f}x" if "ratio_nyxus" in r else "-"
        levels = f"{r['grey_levels']} ({r['grey_levels_present']})"
        print(f"{r['case']:<5} {r['voxels']:>8} {levels:>10} {mf['matched']:>16.2f} {mf['all']:>8.2f} "
              f"{r['medfeat']['first_ms']:>9.1f} {pyr_ms:>12} {ratio:>7} {ratio_all:>6} {met:>6} {agree:>7} "
              f"{nyx_ms:>8} {nyx_ratio:>7}")
    print("ms per image, best of each; levels: N_g = highest level (levels present); ratio = PyRadiomics (all 7"
          " classes) / medfeat matched, 'all' = PyRadiomics / medfeat all families; Nyxus ratio = Nyxus / medfeat"
          " with Nyxus' families")
    for r in results:
        nyx = r.get("nyxus") or {}
        if "skipped" in nyx:
            print(f"Nyxus {r['case']}: skipped: {nyx['skipped']}")
        elif nyx:
            print(f"Nyxus {r['case']}: {nyx['note'].split('; ')[-1]}")
        pyr = r.get("pyradiomics") or {}
        if "default_execute_ms" in pyr:
            print(f"context {r['case']}: PyRadiomics default execute (diagnostics on, classes "
                  f"{', '.join(pyr['default_classes'])}) {pyr['default_execute_ms']:.0f} ms, one run"
                  f" = {pyr['default_execute_ms'] / r['medfeat']['best_ms']['all']:.0f}x medfeat all")
    for r in results:
        best = r["medfeat"]["best_ms"]
        split = ", ".join(f"{k} {best[k]:.2f}" for k in ALL["2d" if r["case"] == "2D" else "3d"])
        print(f"medfeat {r['case']} per family alone (ms, each including the shared crop/checks "
              f"{best['(no family: crop, checks)']:.2f}): {split}; morph without Moran/Geary "
              f"{best['morph without Moran/Geary']:.2f}")
        print(f"medfeat {r['case']} all families in every aggregation ({', '.join(r['medfeat']['all_aggregations'])}):"
              f" {best['all, every aggregation']:.2f} ms, {r['medfeat']['columns']['all, every aggregation']} columns")


# ----------------------------------------------------------------------------- main


def bench_case(case: dict, peers: dict, medfeat_repeats: int, peer_repeats: int, context: bool) -> dict:
    voxels = int(np.count_nonzero(case["mask"]))
    ng, present = grey_levels(case)
    print(f"\n== {case['name']}: {case['source']}, shape {case['image'].shape}, {voxels} ROI voxels, "
          f"N_g {ng} ({present} present), bin width {BIN_WIDTH:g} HU")
    mf = run_medfeat(case, medfeat_repeats)
    best = mf["best_ms"]
    print(f"medfeat: first call {mf['first_ms']:.1f} ms; best of {medfeat_repeats}: matched {best['matched']:.2f} ms "
          f"({mf['columns']['matched']} columns), all {best['all']:.2f} ms ({mf['columns']['all']} columns), "
          f"Nyxus' families {best['nyxus families']:.2f} ms")
    result = {"case": case["name"], "source": case["source"], "shape": list(case["image"].shape),
              "spacing_mm": list(case["spacing"]), "voxels": voxels, "grey_levels": ng, "grey_levels_present": present,
              "aggregation": case["aggregation"], "medfeat": mf}
    if peers.get("pyradiomics") is None:
        t0 = time.perf_counter()
        pyr = run_peer("pyradiomics", case, {"repeats": peer_repeats, "classes": list(PYRADIOMICS_CLASSES),
                                             "context": context})
        print(f"PyRadiomics {pyr['pyradiomics']} ({', '.join(pyr['classes'])}): first call {pyr['first_ms']:.1f} ms,"
              f" best of {peer_repeats} {pyr['best_ms']:.1f} ms (worker wall {time.perf_counter() - t0:.1f} s)")
        if context:
            pyr["default_execute_ms"], pyr["default_classes"] = pyr.pop("all_classes_ms"), pyr.pop("all_classes")
        rows = compare(mf["features"], pyr["features"], case["dimension"], case["aggregation"], voxels)
        print_agreement(case, rows)
        result.update(pyradiomics=pyr, ratio=pyr["best_ms"] / best["matched"], ratio_all=pyr["best_ms"] / best["all"],
                      agreement=rows, compared=len(rows), agreeing=sum(r["agree"] for r in rows))
        result["target_met"] = result["ratio"] >= TARGET_RATIO
    if peers.get("nyxus") is None:
        t0 = time.perf_counter()
        nyx = run_peer("nyxus", case, {"repeats": peer_repeats, "nyxus3d_files": True})
        result["nyxus"] = nyx
        if "best_ms" in nyx:
            print(f"Nyxus {nyx['nyxus']}: first call {nyx['first_ms']:.1f} ms, best of {peer_repeats} "
                  f"{nyx['best_ms']:.1f} ms (worker wall {time.perf_counter() - t0:.1f} s)")
            result["ratio_nyxus"] = nyx["best_ms"] / best["nyxus families"]
            result["nyxus_side_by_side"] = compare_nyxus(mf["features"], nyx, case["dimension"], case["aggregation"])
            print_nyxus(case, result["nyxus_side_by_side"])
        else:
            print(f"Nyxus skipped: {nyx.get('skipped')}")
    return result


# ----------------------------------------------------------------------------- end to end, files read


# Issue 14, target 3: per image, file read included, CT >= 20x and small PET ROIs >= 8x (median)
E2E_TARGETS = {"CT": 20.0, "PET": 8.0}
# PyRadiomics' parameter file for the end-to-end case: the seven classes, bin width 25, label 1,
# diagnostics off (as the in-memory cases); medfeat gets the same file through its converter
E2E_PARAMS = """setting:
  binWidth: 25
  label: 1
  additionalInfo: false
imageType:
  Original: {}
featureClass:
  firstorder:
  shape:
  glcm:
  glrlm:
  glszm:
  gldm:
  ngtdm:
"""

# PyRadiomics side, run as ``python -c E2E_WORKER PARAMS.yaml`` in its venv (no medfeat there): one
# warm process that reads JSON jobs on stdin, times ``execute(image_path, mask_path)`` (SimpleITK
# reads the .nii.gz files each call) and answers one JSON line per job
E2E_WORKER = r"""
import json, logging, sys, time
import radiomics
from radiomics.featureextractor import RadiomicsFeatureExtractor
radiomics.setVerbosity(logging.ERROR)
ex = RadiomicsFeatureExtractor(sys.argv[1])
print(json.dumps({"pyradiomics": radiomics.__version__, "classes": sorted(ex.enabledFeatures)}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    times, cpu = [], []
    for _ in range(int(job["repeats"])):
        t0, c0 = time.perf_counter(), time.process_time()
        result = ex.execute(job["image"], job["mask"])
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    print(json.dumps({"times_ms": times, "cpu_ms": cpu, "features": sum(k.startswith("original_") for k in result)}),
          flush=True)
"""


def patient_halves(patients: list[str]) -> dict[str, list[str]]:
    """The fixed split (chosen before any timing): patient ids sorted, alternating -- positions
    0, 2, 4, ... tune (every optimisation decision is made on them), 1, 3, 5, ... are held out."""
    ids = sorted(patients)
    return {"tuning": ids[0::2], "held-out": ids[1::2]}


def bench_e2e(rounds: int, medfeat_calls: int) -> dict:
    """Per image, files read included, in warm processes: ``medfeat.extract(image_path, mask_path)``
    against PyRadiomics' ``execute(image_path, mask_path)`` on every STS patient's CT and PET tumour
    ROI, with :data:`E2E_PARAMS` (medfeat: the same file converted by ``settings_from_pyradiomics``:
    stat, ih, glcm, glrlm, glszm, ngldm, ngtdm, morph without Moran/Geary; label 1).

    ``rounds`` rounds, interleaved image by image (a burst of load slows one round of both tools);
    per round medfeat is timed ``medfeat_calls`` times, PyRadiomics once; each tool's per-image time
    is its best over all of them (after one untimed warm-up call per image), in wall time and in CPU
    time (``process_time``). Ratios per patient and their median, per modality, for both halves of
    :func:`patient_halves` and all patients."""
    import medfeat
    from medfeat.io import read_image
    from medfeat.pyradiomics import settings_from_pyradiomics

    try:  # the inflate medfeat's reader uses where it is installed (python-isal), else zlib
        from isal.isal_zlib import decompress as inflate
    except ImportError:
        from zlib import decompress as inflate

    folders = {f.name: f for f in sorted((SHARED / "sts" / "nifti").glob("STS_*"))}
    halves = patient_halves(list(folders))
    out_dir = OUT / "e2e"
    out_dir.mkdir(parents=True, exist_ok=True)
    params = out_dir / "params.yaml"
    params.write_text(E2E_PARAMS)
    settings, _ = settings_from_pyradiomics(params)
    families = list(settings.families)
    env = dict(os.environ)
    env.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")  # one thread, as medfeat (and the BLAS)
    worker = subprocess.Popen([str(venv_python("pyradiomics")), "-c", E2E_WORKER, str(params)], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    hello = json.loads(worker.stdout.readline())

    def pyradiomics_call(image: Path, mask: Path, repeats: int) -> dict:
        worker.stdin.write(json.dumps({"image": str(image), "mask": str(mask), "repeats": repeats}) + "\n")
        worker.stdin.flush()
        line = worker.stdout.readline()
        if not line:
            raise RuntimeError(f"PyRadiomics worker died on {image}")
        return json.loads(line)

    def medfeat_call(image: Path, mask: Path) -> tuple[float, float, int]:
        t0, c0 = time.perf_counter(), time.process_time()
        row = medfeat.extract(image, mask, settings, families=families, label=1)
        return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3, len(row)

    def read_call(image: Path, mask: Path) -> float:
        """medfeat's reading of both files alone (what ``extract`` spends before any feature)."""
        t0 = time.perf_counter()
        read_image(image)
        read_image(mask)
        return (time.perf_counter() - t0) * 1e3

    def inflate_call(data: list[bytes]) -> float:
        """Decompressing both files' bytes alone (in memory, the fastest inflate installed), no parsing."""
        t0 = time.perf_counter()
        for d in data:
            inflate(d, wbits=31)
        return (time.perf_counter() - t0) * 1e3

    cases = [(mod, pid, folders[pid] / f"{mod}_image.nii.gz", folders[pid] / f"{mod}_mask.nii.gz")
             for mod in E2E_TARGETS for pid in folders]
    times = {(mod, pid): {"medfeat": [], "pyradiomics": [], "medfeat_cpu": [], "pyradiomics_cpu": [], "read": [],
                          "inflate": []} for mod, pid, _, _ in cases}
    compressed = {(mod, pid): [image.read_bytes(), mask.read_bytes()] for mod, pid, image, mask in cases}
    columns = {}
    try:
        for mod, pid, image, mask in cases:  # warm-up: numba caches, imports, the files in the page cache
            columns["medfeat"] = medfeat_call(image, mask)[2]
            columns["pyradiomics"] = pyradiomics_call(image, mask, 1)["features"]
        for _ in range(rounds):
            for mod, pid, image, mask in cases:
                for _ in range(medfeat_calls):
                    wall, cpu, _ = medfeat_call(image, mask)
                    times[mod, pid]["medfeat"].append(wall)
                    times[mod, pid]["medfeat_cpu"].append(cpu)
                times[mod, pid]["read"].append(read_call(image, mask))
                times[mod, pid]["inflate"].append(inflate_call(compressed[mod, pid]))
                answer = pyradiomics_call(image, mask, 1)
                times[mod, pid]["pyradiomics"] += answer["times_ms"]
                times[mod, pid]["pyradiomics_cpu"] += answer["cpu_ms"]
    finally:
        worker.stdin.close()
        worker.wait(timeout=60)
    per_image = []
    for mod, pid, image, mask in cases:
        t = times[mod, pid]
        mf, pyr = min(t["medfeat"]), min(t["pyradiomics"])
        mf_cpu, pyr_cpu = min(t["medfeat_cpu"]), min(t["pyradiomics_cpu"])
        voxels = int(np.count_nonzero(read_image(mask).array == 1))
        half = next(h for h, ids in halves.items() if pid in ids)
        per_image.append({"modality": mod, "patient": pid, "half": half, "voxels": voxels, "medfeat_ms": mf,
                          "pyradiomics_ms": pyr, "ratio": pyr / mf, "medfeat_cpu_ms": mf_cpu,
                          "pyradiomics_cpu_ms": pyr_cpu, "cpu_ratio": pyr_cpu / mf_cpu,
                          "budget_ms": pyr / E2E_TARGETS[mod], "read_ms": min(t["read"]),
                          "inflate_ms": min(t["inflate"]), "times_ms": t})
    summary = {}
    for mod, target in E2E_TARGETS.items():
        for half in ("tuning", "held-out", "all"):
            rows = [r for r in per_image if r["modality"] == mod and (half == "all" or r["half"] == half)]
            summary[f"{mod} {half}"] = {
                "median_ratio": float(np.median([r["ratio"] for r in rows])), "target": target,
                "median_cpu_ratio": float(np.median([r["cpu_ratio"] for r in rows])),
                "median_medfeat_ms": float(np.median([r["medfeat_ms"] for r in rows])),
                "median_pyradiomics_ms": float(np.median([r["pyradiomics_ms"] for r in rows])),
                "median_budget_ms": float(np.median([r["budget_ms"] for r in rows])),
                "median_read_ms": float(np.median([r["read_ms"] for r in rows])),
                "median_inflate_ms": float(np.median([r["inflate_ms"] for r in rows])),
                "median_inflate_share": float(np.median([r["inflate_ms"] / r["budget_ms"] for r in rows])),
                "median_features_ms": float(np.median([r["medfeat_ms"] - r["read_ms"] for r in rows]))}
    result = {"params": E2E_PARAMS, "families": families, "halves": halves, "rounds": rounds,
              "medfeat_calls_per_round": medfeat_calls, "columns": columns, "pyradiomics": hello["pyradiomics"],
              "pyradiomics_classes": hello["classes"], "images": per_image, "summary": summary}
    print_e2e(result)
    return result


def print_e2e(result: dict) -> None:
    print(f"\nEnd to end per image, files read included (.nii.gz image + mask), warm processes, best of "
          f"{result['rounds']} (PyRadiomics {result['pyradiomics']}) / {result['rounds'] * result['medfeat_calls_per_round']}"
          f" (medfeat) interleaved calls; {result['columns'].get('medfeat')} medfeat columns ({', '.join(result['families'])}),"
          f" {result['columns'].get('pyradiomics')} PyRadiomics features ({', '.join(result['pyradiomics_classes'])})")
    print(f"halves fixed before timing (sorted ids, alternating): tuning {', '.join(result['halves']['tuning'])}; "
          f"held-out {', '.join(result['halves']['held-out'])}")
    head = (f"  {'image':<13} {'half':<9} {'ROI voxels':>10} {'medfeat ms':>11} {'PyRadiomics ms':>15} {'ratio':>7}"
            f"   CPU ms: {'medfeat':>8} {'PyRadiomics':>12} {'ratio':>7}")
    print(head)
    for r in sorted(result["images"], key=lambda r: (r["modality"], r["half"] != "tuning", r["patient"])):
        print(f"  {r['modality'] + ' ' + r['patient']:<13} {r['half']:<9} {r['voxels']:>10} {r['medfeat_ms']:>11.2f} "
              f"{r['pyradiomics_ms']:>15.1f} {r['ratio']:>6.1f}x           {r['medfeat_cpu_ms']:>8.2f} "
              f"{r['pyradiomics_cpu_ms']:>12.1f} {r['cpu_ratio']:>6.1f}x")
    for key, s in result["summary"].items():
        met = "yes" if s["median_ratio"] >= s["target"] else "NO"
        print(f"  {key:<13} median ratio {s['median_ratio']:5.1f}x (target >= {s['target']:g}x: {met}); median ms "
              f"medfeat {s['median_medfeat_ms']:.2f}, PyRadiomics {s['median_pyradiomics_ms']:.1f}; median CPU-time "
              f"ratio {s['median_cpu_ratio']:.1f}x")
    print("  (ratio: wall time, the target's measure; CPU time (process_time, both tools on one thread) is printed as a"
          " check that is less sensitive to other processes' load)")
    print("  The target's budget per image (PyRadiomics' time / target) against what reading the two files takes:")
    for key, s in result["summary"].items():
        if "median_budget_ms" in s:
            print(f"  {key:<13} median budget {s['median_budget_ms']:6.2f} ms; medfeat's reading {s['median_read_ms']:6.2f} ms,"
                  f" inflating the .gz bytes alone {s['median_inflate_ms']:6.2f} ms ({s['median_inflate_share']:.0%} of"
                  f" the budget); left for the features {s['median_budget_ms'] - s['median_read_ms']:6.2f} ms,"
                  f" medfeat's features now {s['median_features_ms']:6.2f} ms")


GIFT_C_MS = 150.0      # GNU GIFT 0.1.15a's C extractor, one core, per 256x256 image (measured by the issue)
GIFT_TARGET_MS = 10.0


def bench_gift(repeats: int) -> dict:
    """The retrieval (gift) family on the 256x256 RGB GIFT fixtures: ms per image on one core,
    from the PPM bytes GIFT read (decode + features), against GIFT's C extractor's 150 ms."""
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
    parser.add_argument("--no-peers", action="store_true", help="time medfeat only (no PyRadiomics, no Nyxus)")
    parser.add_argument("--no-nyxus", action="store_true", help="leave Nyxus out")
    parser.add_argument("--repeats", type=int, default=20, help="timed medfeat calls per case (after a warm-up)")
    parser.add_argument("--peer-repeats", type=int, default=10, help="timed PyRadiomics / Nyxus calls per case")
    parser.add_argument("--context", action="store_true",
                        help="also time PyRadiomics' default execute once (~25 s: 3D shape on the 2D slice)")
    parser.add_argument("--e2e-only", action="store_true",
                        help="only the end-to-end case (STS CT and PET, files read included, against PyRadiomics)")
    parser.add_argument("--no-e2e", action="store_true", help="leave the end-to-end case out")
    parser.add_argument("--e2e-rounds", type=int, default=3,
                        help="end-to-end case: interleaved rounds (PyRadiomics once, medfeat 3 times per image per round)")
    args = parser.parse_args(argv)

    if not SHARED.is_dir():
        print(f"skipped: {SHARED} is absent (the benchmark needs ../shared/data's CT images)")
        return 0
    peers: dict[str, str | None] = {}  # name -> None (works) or the reason it is skipped
    for name in PEERS:
        if args.no_peers or (name == "nyxus" and (args.no_nyxus or args.e2e_only)):
            peers[name] = "--no-peers" if args.no_peers else "--no-nyxus" if args.no_nyxus else "--e2e-only"
        else:
            peers[name] = install_peer(name)
            if peers[name]:
                print(f"{name} skipped: {peers[name]}")
    import medfeat

    print(f"load average before the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs"
          " (other processes on the machine inflate the timings); "
          + ", ".join(f"{v}={os.environ[v]}" for v in BLAS_THREAD_VARS))
    e2e = None
    if args.e2e_only or not args.no_e2e:
        if peers.get("pyradiomics") is None:
            e2e = bench_e2e(args.e2e_rounds, 3)
        else:
            print(f"end-to-end case skipped: PyRadiomics {peers['pyradiomics']}")
    OUT.mkdir(parents=True, exist_ok=True)
    if args.e2e_only:
        (OUT / "extract_speed_e2e.json").write_text(json.dumps(e2e, indent=1, default=float))
        print(f"\nwrote {(OUT / 'extract_speed_e2e.json').relative_to(ROOT)}")
        return 0
    results = [bench_case(case_2d(), peers, args.repeats, args.peer_repeats, args.context),
               bench_case(case_3d(), peers, args.repeats, args.peer_repeats, args.context)]
    print_summary(results)
    if e2e is not None:
        print_e2e(e2e)
    gift = bench_gift(args.repeats)
    report = {"medfeat": medfeat.__version__, "python": sys.version.split()[0], "cpus": os.cpu_count(),
              "load_average_after": list(os.getloadavg()), "bin_width": BIN_WIDTH,
              "blas_threads": {v: os.environ[v] for v in BLAS_THREAD_VARS},
              "families": {"matched": MATCHED, "all": ALL, "nyxus": NYXUS_FAMILIES},
              "pyradiomics_classes": PYRADIOMICS_CLASSES, "target_ratio": TARGET_RATIO, "rtol": RTOL, "atol": ATOL,
              "peers_skipped": {k: v for k, v in peers.items() if v}, "cases": results, "gift": gift,
              "end_to_end": e2e}
    (OUT / "extract_speed.json").write_text(json.dumps(report, indent=1, default=float))
    print(f"\nwrote {(OUT / 'extract_speed.json').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
