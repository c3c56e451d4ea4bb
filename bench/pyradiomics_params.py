"""PyRadiomics parameter files converted by medfeat: same features as PyRadiomics 3.0.1? (issue 12)

For each parameter set below (PyRadiomics 3.0.1 parameter files that together use every setting
medfeat's converter maps: binWidth, binCount, resegmentRange absolute and sigma, resampledPixelSpacing
3D and in-plane (0 for z), the interpolators sitkNearestNeighbor / sitkLinear / sitkBSpline, force2D,
distances, gldm_a, featureClass subsets, shape and shape2D), on the soft-tissue-sarcoma patients of
``../shared/data/sts/nifti/STS_xxx/`` (the set's modality, its tumour mask):

1. the parameter dict is written as ``PARAMS.yaml`` and converted the way a user does it, through
   the CLI: ``medfeat settings --from-pyradiomics PARAMS.yaml -o converted.toml`` (its notes, on
   stderr, are kept), then ``medfeat extract IMAGES... --mask MASKS... --settings converted.toml
   --names pyradiomics -o medfeat.csv`` (one process for all the set's images);
2. PyRadiomics 3.0.1 runs in its own venv (``bench/.venvs/pyradiomics``, installed on first use by
   ``extract_speed.install_peer``): ``RadiomicsFeatureExtractor("PARAMS.yaml").execute(image, mask)``
   on the same files, one process for all the set's images (``bench/_pyradiomics_params_worker.py``);
3. every feature both produce is compared by its PyRadiomics name: agreement is
   ``|a - b| <= 1e-9 + 1e-6 max(|a|, |b|)``. The features of ``medfeat.pyradiomics.DIFFERENCES``
   (another definition: kurtosis, 2D sphericity, PCA axis lengths, Idn / Idmn's N_g) are counted
   apart; where the difference is a known conversion (kurtosis - 3, sphericity squared, axis
   length x sqrt(N / (N - 1))) the script also says how many agree once converted.

Honesty rule: nothing is tuned on these results (medfeat is run as it is). The patients are split
in two halves reported separately: the first five patient folders in sorted order ("development":
STS_001, 002, 003, 005, 008) and the last five ("held-out": STS_010, 012, 015, 019, 024). The data set
numbers its ten patients non-contiguously, so the halves are by position, not STS_001..005 /
006..010.

Timing: wall clock of the whole set, process starts included: medfeat = the ``settings`` call plus
the ``extract`` call, PyRadiomics = its worker process (import, extractor from the file, every
``execute``). Both get one BLAS / OpenMP thread (``extract_speed``'s environment).

The 2D sets use each patient's axial CT slice with the most tumour pixels, written as 2D NIfTI
files (PyRadiomics 3.0.1 computes ``shape2D`` only for 2D input: on a 3D volume with force2D it
skips a single-slice ROI with a warning and fails on a thicker one). One of them adds force2D,
as users do: PyRadiomics 3.0.1 then drops the 2D array's first axis (force2Ddimension 0) and
builds its matrices along x only (one direction; checked: ``P_glcm`` has 1 angle instead of 4).

A disagreement counts as explained when one of the converter's notes for that parameter file
announced it, for the features the note is about (``VALUE_NOTES``, fixed before any result was
seen: binWidth's bin edges -> histogram entropy / uniformity and every texture feature;
resampledPixelSpacing's grid alignment -> every feature; distances > 1 -> GLCM; non-contiguous
distances -> NGTDM and GLDM), or, for shape features, when PyRadiomics 3.0.1's own cropping explains it: it computes
shape on the mask before re-segmentation but cropped to the re-segmented mask's bounding box
(``featureextractor.execute``), so a re-segmentation that removes the ROI's outermost voxels
removes mask voxels from its shape; the script counts the mask voxels inside that box and takes
the explanation only where PyRadiomics' VoxelVolume is exactly that count. Everything else is
"not explained" and listed.

    .venv/bin/python bench/pyradiomics_params.py                   # all sets, all 10 patients
    .venv/bin/python bench/pyradiomics_params.py --sets ct_ibsi,mr_sigma --patients 4

Prints the Markdown table and writes ``bench/out/pyradiomics_params/`` (the YAML and TOML files,
each tool's output, ``results.json``, ``results.md``). Exits 0 with a reason when ``../shared`` is
absent; 1 when PyRadiomics cannot be installed. About a minute on 2 cores (plus a few minutes,
once, to install PyRadiomics).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

# the peer-venv helpers (and one BLAS / OpenMP thread for every process started from here)
from extract_speed import BENCH, OUT, ROOT, SHARED, install_peer, venv_python

import yaml  # noqa: E402

from medfeat.pyradiomics import DIFFERENCES, POPULATION_COVARIANCE, TRANSFORMS  # noqa: E402

STS = SHARED / "sts" / "nifti"
WORK = OUT / "pyradiomics_params"
WORKER = BENCH / "_pyradiomics_params_worker.py"
RTOL, ATOL = 1e-6, 1e-9
ALL_CLASSES = ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
MODALITY_FILES = {"CT": "CT", "MR": "MR_T1", "PET": "PET"}

# Each set: PyRadiomics parameters (as a user would write them), the modality, and "volume" (the
# patient's 3D image) or "slice" (its largest axial tumour slice as a 2D image).
PARAM_SETS = [
    {"key": "ct_ibsi", "title": "IBSI-like CT: binWidth 25, resegment [-500, 400] HU, 1 mm sitkLinear",
     "modality": "CT", "roi": "volume",
     "params": {"setting": {"binWidth": 25, "resegmentRange": [-500, 400], "resampledPixelSpacing": [1, 1, 1],
                            "interpolator": "sitkLinear"},
                "imageType": {"Original": {}}, "featureClass": {c: None for c in ALL_CLASSES}}},
    {"key": "mr_sigma", "title": "MR: binCount 32, resegment sigma [-3, 3]",
     "modality": "MR", "roi": "volume",
     "params": {"setting": {"binCount": 32, "resegmentMode": "sigma", "resegmentRange": [-3, 3]},
                "imageType": {"Original": {}}, "featureClass": {c: None for c in ALL_CLASSES}}},
    {"key": "ct_resegment", "title": "CT: binCount 32, resegment [-100, 200] HU",
     "modality": "CT", "roi": "volume",
     "params": {"setting": {"binCount": 32, "resegmentRange": [-100, 200]},
                "imageType": {"Original": {}}, "featureClass": {c: None for c in ALL_CLASSES}}},
    {"key": "ct_force2d", "title": "CT force2D: binWidth 10 (texture, no shape)",
     "modality": "CT", "roi": "volume",
     "params": {"setting": {"binWidth": 10, "force2D": True, "force2Ddimension": 0},
                "imageType": {"Original": {}},
                "featureClass": {c: None for c in ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")}}},
    {"key": "pet_inplane", "title": "PET: binCount 16, 2x2 mm in-plane sitkBSpline (z: 0, kept)",
     "modality": "PET", "roi": "volume",
     "params": {"setting": {"binCount": 16, "resampledPixelSpacing": [2, 2, 0], "interpolator": "sitkBSpline"},
                "imageType": {"Original": {}},
                "featureClass": {c: None for c in ("firstorder", "shape", "glcm", "glrlm", "glszm")}}},
    {"key": "mr_nearest", "title": "MR: binCount 64, 2 mm sitkNearestNeighbor, gldm_a 1",
     "modality": "MR", "roi": "volume",
     "params": {"setting": {"binCount": 64, "resampledPixelSpacing": [2, 2, 2],
                            "interpolator": "sitkNearestNeighbor", "gldm_a": 1},
                "imageType": {"Original": {}},
                "featureClass": {c: None for c in ("firstorder", "shape", "gldm", "ngtdm")}}},
    {"key": "ct_distances", "title": "CT: binCount 48, distances [1, 2], gldm_a 2",
     "modality": "CT", "roi": "volume",
     "params": {"setting": {"binCount": 48, "distances": [1, 2], "gldm_a": 2},
                "imageType": {"Original": {}},
                "featureClass": {c: None for c in ("glcm", "gldm", "ngtdm")}}},
    {"key": "mr_force2d", "title": "MR force2D: binCount 24 (texture, no shape)",
     "modality": "MR", "roi": "volume",
     "params": {"setting": {"binCount": 24, "force2D": True},
                "imageType": {"Original": {}},
                "featureClass": {c: None for c in ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")}}},
    {"key": "ct_slice2d", "title": "CT largest axial slice as a 2D image: binCount 32, shape2D",
     "modality": "CT", "roi": "slice",
     "params": {"setting": {"binCount": 32},
                "imageType": {"Original": {}},
                "featureClass": {c: None for c in ("firstorder", "shape2D", "glcm", "glrlm", "glszm", "gldm",
                                                   "ngtdm")}}},
    {"key": "ct_slice2d_force2d", "title": "the same 2D image with force2D: true",
     "modality": "CT", "roi": "slice",
     "params": {"setting": {"binCount": 32, "force2D": True},
                "imageType": {"Original": {}},
                "featureClass": {c: None for c in ("glcm", "glrlm", "glszm", "gldm", "ngtdm")}}},
]
# Converter notes that announce different values (the others: no counterpart, ignored settings):
# (label, how the note starts, a phrase it holds, the PyRadiomics feature-name prefixes it covers).
# The scope is what each note says it changes, fixed before looking at any result: binWidth's bin
# edges change the discretised grey levels (histogram entropy / uniformity and every texture
# matrix), resampling's grid alignment the interpolated image (every feature), distances > 1 GLCM,
# non-contiguous distances NGTDM and GLDM.
_TEXTURE = ("glcm_", "glrlm_", "glszm_", "gldm_", "ngtdm_")
VALUE_NOTES = (
    ("bin edges", "setting binWidth", "first bin edge", ("firstorder_Entropy", "firstorder_Uniformity") + _TEXTURE),
    ("grid alignment", "setting resampledPixelSpacing", "centres the new grid", ("",)),
    ("GLCM distances", "setting distances", "GLCM features differ", ("glcm_",)),
    ("NGTDM/GLDM distances", "setting distances", "neighbourhoods hold", ("ngtdm_", "gldm_")),
)


def announced(notes: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(label, feature prefixes) of the value-changing notes among the converter's ``notes``."""
    return [(label, scope) for label, start, phrase, scope in VALUE_NOTES
            if any(n.startswith(start) and phrase in n for n in notes)]


# ----------------------------------------------------------------------------- cases


def patients(n: int) -> list[str]:
    return sorted(p.name for p in STS.glob("STS_*") if p.is_dir())[:n]


def largest_slice(pid: str, modality: str) -> tuple[Path, Path]:
    """The patient's axial slice with the most tumour pixels, as 2D NIfTI image and mask (cached)."""
    import nibabel as nib
    import numpy as np

    out = WORK / "slices"
    out.mkdir(parents=True, exist_ok=True)
    stem = MODALITY_FILES[modality]
    image_path, mask_path = out / f"{pid}_{stem}_image.nii.gz", out / f"{pid}_{stem}_mask.nii.gz"
    if not (image_path.exists() and mask_path.exists()):
        img, msk = nib.load(str(STS / pid / f"{stem}_image.nii.gz")), nib.load(str(STS / pid / f"{stem}_mask.nii.gz"))
        m = np.asarray(msk.dataobj)
        k = int(np.argmax((m > 0).sum(axis=(0, 1))))  # NIfTI arrays are (x, y, z)
        affine = img.affine.copy()
        affine[:3, 3] = img.affine[:3, :3] @ np.array([0, 0, k]) + img.affine[:3, 3]  # origin of slice k
        for arr, src, path in ((np.asarray(img.dataobj)[:, :, k], img, image_path), (m[:, :, k], msk, mask_path)):
            nib.save(nib.Nifti1Image(np.ascontiguousarray(arr).astype(src.get_data_dtype()), affine), str(path))
    return image_path, mask_path


def cases_for(pset: dict, pids: list[str]) -> list[dict]:
    stem = MODALITY_FILES[pset["modality"]]
    cases = []
    for pid in pids:
        if pset["roi"] == "slice":
            image, mask = largest_slice(pid, pset["modality"])
        else:
            image, mask = STS / pid / f"{stem}_image.nii.gz", STS / pid / f"{stem}_mask.nii.gz"
        cases.append({"id": pid, "image": str(image), "mask": str(mask)})
    return cases


def voxel_size(case: dict, params: dict) -> float:
    """Volume (3D) or area (2D) of one voxel of the grid PyRadiomics computes shape on."""
    import nibabel as nib

    img = nib.load(case["image"])
    zooms = [float(z) for z in img.header.get_zooms()[:img.ndim]]
    target = (params.get("setting") or {}).get("resampledPixelSpacing")
    if target:
        zooms = [float(t) if t else z for t, z in zip(target, zooms)]
    return math.prod(zooms)


def shape_crop(case: dict, params: dict) -> int | None:
    """PyRadiomics 3.0.1 computes shape on the mask before re-segmentation, but cropped to the
    bounding box of the re-segmented mask (``featureextractor.execute``: ``checkMask`` of the
    re-segmented mask sets ``boundingBox``, then ``computeShape(image, mask, boundingBox)``). The
    voxels of the mask inside that box where it is smaller than the mask's own, else None. Only
    for sets without resampling (the re-segmentation is then on the image as read)."""
    import nibabel as nib
    import numpy as np

    setting = params.get("setting") or {}
    rng = setting.get("resegmentRange")
    if not rng or setting.get("resampledPixelSpacing") or setting.get("resegmentShape"):
        return None
    image = np.asarray(nib.load(case["image"]).dataobj, dtype=np.float32).astype(np.float64)  # SimpleITK: float32
    mask = np.asarray(nib.load(case["mask"]).dataobj) == 1  # PyRadiomics' label 1
    values = image[mask]
    if setting.get("resegmentMode", "absolute") == "sigma":
        lo, hi = values.mean() + rng[0] * values.std(), values.mean() + rng[1] * values.std()
    elif setting.get("resegmentMode", "absolute") == "absolute":
        lo, hi = rng[0], (rng[1] if len(rng) > 1 else np.inf)
    else:
        return None
    kept = np.argwhere(mask & (image >= lo) & (image <= hi))
    if not len(kept):
        return None
    a, b = kept.min(axis=0), kept.max(axis=0) + 1
    inside = int(mask[a[0]:b[0], a[1]:b[1], a[2]:b[2]].sum())
    return inside if inside < int(mask.sum()) else None


# ----------------------------------------------------------------------------- the two tools


def run(cmd: list[str], timeout: int = 1800) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    return done, time.perf_counter() - t0


def run_medfeat(pset: dict, cases: list[dict], folder: Path) -> dict:
    """Convert with the CLI, extract with the CLI; values per case id, notes, seconds, failures."""
    medfeat = [sys.executable, "-m", "medfeat"]
    yaml_path, toml_path, csv_path = folder / "params.yaml", folder / "converted.toml", folder / "medfeat.csv"
    convert = medfeat + ["settings", "--from-pyradiomics", str(yaml_path), "-o", str(toml_path)]
    done, t_convert = run(convert)
    result = {"convert_cmd": " ".join(convert), "convert_s": t_convert, "notes": [], "cases": {}, "failure": None}
    result["notes"] = [line.removeprefix("medfeat: note: ") for line in done.stderr.splitlines()
                       if line.startswith("medfeat: note: ")]
    if done.returncode != 0:
        result["failure"] = {"cmd": result["convert_cmd"], "rc": done.returncode, "stderr": done.stderr.strip()[-2000:]}
        return result
    extract = medfeat + ["extract", *[c["image"] for c in cases]]
    for c in cases:
        extract += ["--mask", c["mask"]]
    extract += ["--settings", str(toml_path), "--names", "pyradiomics", "-o", str(csv_path)]
    done, t_extract = run(extract)
    result.update(extract_cmd=" ".join(extract), extract_s=t_extract, seconds=t_convert + t_extract)
    if done.returncode != 0 or not csv_path.exists():
        result["failure"] = {"cmd": "medfeat extract ... (see results.json)", "rc": done.returncode,
                             "stderr": done.stderr.strip()[-2000:]}
        if not csv_path.exists():
            return result
    by_image = {c["image"]: c["id"] for c in cases}
    with open(csv_path, newline="") as fh:
        for row in csv.DictReader(fh):
            pid = by_image.get(row["image"], row["image"])
            if row.get("error"):
                result["cases"][pid] = {"error": row["error"]}
                continue
            result["cases"][pid] = {"features": {k: float(v) if v not in ("", None) else math.nan
                                                 for k, v in row.items() if k.startswith("original_")}}
    return result


def run_pyradiomics(cases: list[dict], folder: Path) -> dict:
    job = folder / "pyradiomics_job.json"
    job.write_text(json.dumps({"params": str(folder / "params.yaml"), "cases": cases}))
    done, seconds = run([str(venv_python("pyradiomics")), str(WORKER), str(job)])
    if done.returncode != 0:
        return {"failure": f"worker exited {done.returncode}: {done.stderr.strip()[-1500:]}", "cases": {},
                "seconds": seconds}
    (folder / "pyradiomics.json").write_text(done.stdout)
    return {**json.loads(done.stdout), "seconds": seconds}


# ----------------------------------------------------------------------------- agreement


def close(a: float, b: float) -> tuple[bool, float]:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b), 0.0 if math.isnan(a) and math.isnan(b) else math.inf
    scale = max(abs(a), abs(b))
    diff = abs(a - b)
    return diff <= ATOL + RTOL * scale, (diff / scale if scale > 0 else 0.0)


def converted(name: str, value: float, voxels: float) -> float | None:
    """PyRadiomics' value of a DIFFERENCES feature in medfeat's definition, where that is a formula."""
    if name in TRANSFORMS:
        return TRANSFORMS[name](value)
    if name in POPULATION_COVARIANCE and voxels > 1:
        return value * math.sqrt(voxels / (voxels - 1))
    return None


def compare(pset: dict, cases: list[dict], med: dict, pyr: dict, halves: dict[str, str]) -> dict:
    """Per feature and case: agree or not, relative difference; split into the patient halves."""
    records = []
    pyr_only, med_only = set(), set()
    for case in cases:
        pid = case["id"]
        m, p = med["cases"].get(pid, {}), pyr["cases"].get(pid, {})
        if "features" not in m or "features" not in p:
            records.append({"patient": pid, "half": halves[pid], "error": m.get("error") or p.get("error")
                            or "missing", "side": "medfeat" if "features" not in m else "PyRadiomics"})
            continue
        mf, pf = m["features"], p["features"]
        pyr_only.update(set(pf) - set(mf))
        med_only.update(set(mf) - set(pf))
        shape = "original_shape2D_PixelSurface" if pset["roi"] == "slice" else "original_shape_VoxelVolume"
        voxels = pf.get(shape, math.nan) / voxel_size(case, pset["params"])
        # PyRadiomics' shape mask cropped by the re-segmented bounding box: its voxel count checked
        crop = shape_crop(case, pset["params"]) if "original_shape_VoxelVolume" in pf else None
        cropped = crop is not None and abs(voxels - crop) < 1e-6 * crop
        for name in sorted(set(mf) & set(pf)):
            short = name.removeprefix("original_")
            ok, rel = close(mf[name], pf[name])
            rec = {"patient": pid, "half": halves[pid], "feature": name, "medfeat": mf[name], "pyradiomics": pf[name],
                   "agree": ok, "rel": rel, "by_definition": short in DIFFERENCES,
                   "shape_crop": cropped and short.startswith("shape_")}
            if rec["by_definition"]:
                conv = converted(short, pf[name], voxels)
                rec["agree_converted"] = None if conv is None else close(mf[name], conv)[0]
            records.append(rec)
    return {"records": records, "pyradiomics_only": sorted(pyr_only), "medfeat_only": sorted(med_only)}


def summarise(pset: dict, med: dict, pyr: dict, cmp: dict) -> dict:
    recs = [r for r in cmp["records"] if "feature" in r]
    errors = [r for r in cmp["records"] if "error" in r]
    plain = [r for r in recs if not r["by_definition"]]
    defn = [r for r in recs if r["by_definition"]]
    half = {}
    for h in ("development", "held-out"):
        rs = [r for r in plain if r["half"] == h]
        feats = sorted({r["feature"] for r in rs})
        all_ok = [f for f in feats if all(r["agree"] for r in rs if r["feature"] == f)]
        half[h] = {"values": len(rs), "agree": sum(r["agree"] for r in rs), "features": len(feats),
                   "features_all_agree": len(all_ok)}
    crop_patients = sorted({r["patient"] for r in plain if r["shape_crop"]})
    notes = announced(med.get("notes", []))
    worst: dict[str, float] = {}  # not explained: feature -> largest relative difference
    explained: dict[str, set] = {}  # explanation -> features
    for r in plain:
        if r["agree"]:
            continue
        short = r["feature"].removeprefix("original_")
        why = [label for label, scope in notes if short.startswith(scope)]
        if r["shape_crop"]:
            why.append("PyRadiomics' shape crop")
        if why:
            explained.setdefault(why[0], set()).add(r["feature"])
        else:
            worst[r["feature"]] = max(worst.get(r["feature"], 0.0), r["rel"])
    convertible = [r for r in defn if r.get("agree_converted") is not None]
    return {
        "key": pset["key"], "title": pset["title"], "modality": pset["modality"], "roi": pset["roi"],
        "features": len({r["feature"] for r in recs}), "halves": half,
        "patients": len({r["patient"] for r in cmp["records"]}),
        "by_definition": len({r["feature"] for r in defn}),
        "by_definition_agree_converted": f"{sum(bool(r['agree_converted']) for r in convertible)}/{len(convertible)}",
        "unexplained": dict(sorted(worst.items(), key=lambda kv: -kv[1])),
        "unexplained_patients": sorted({r["patient"] for r in plain if not r["agree"] and r["feature"] in worst}),
        "unexplained_detail": {f: sorted(r["patient"] for r in plain if r["feature"] == f and not r["agree"])
                               for f in worst},
        "value_notes": [label for label, _ in notes],
        "explained": {k: sorted(v) for k, v in explained.items()},
        "shape_crop_patients": crop_patients,
        "errors": errors, "pyradiomics_only": cmp["pyradiomics_only"], "medfeat_only": cmp["medfeat_only"],
        "medfeat_s": med.get("seconds"), "pyradiomics_s": pyr.get("seconds"),
        "medfeat_failure": med.get("failure"), "pyradiomics_failure": pyr.get("failure"),
    }


# ----------------------------------------------------------------------------- report


def who(patients: list[str], total: int) -> str:
    return f"all {total} patients" if len(patients) == total else " ".join(patients)


def fmt_half(h: dict) -> str:
    if not h["values"]:
        return "-"
    return f"{h['agree']}/{h['values']} values, {h['features_all_agree']}/{h['features']} features"


def table(rows: list[dict]) -> str:
    head = ("| parameter set | features compared | agree, development | agree, held-out "
            "| differ by definition (values agreeing once converted) "
            "| disagreeing features announced by the converter's notes "
            "| disagreements not explained: features (5 worst, max rel. error) "
            "| medfeat s | PyRadiomics s | PyRadiomics / medfeat |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in rows:
        worst = ", ".join(f"{k.removeprefix('original_')} {v:.1e}" for k, v in list(r["unexplained"].items())[:5])
        unexplained = f"{len(r['unexplained'])}" + (f": {worst}" if worst else "")
        if r["unexplained_patients"]:
            unexplained += f" ({who(r['unexplained_patients'], r['patients'])})"
        if r["errors"]:
            unexplained += f"; {len(r['errors'])} case error(s)"
        if r["medfeat_failure"]:
            unexplained += " **medfeat failed**"
        if r["pyradiomics_failure"]:
            unexplained += " **PyRadiomics failed**"
        announced_ = "; ".join(f"{len(v)} ({k})" for k, v in r["explained"].items()) or "0"
        if r["value_notes"] and not r["explained"]:
            announced_ += f" (notes: {', '.join(r['value_notes'])})"
        ratio = (f"{r['pyradiomics_s'] / r['medfeat_s']:.1f}" if r["medfeat_s"] and r["pyradiomics_s"] else "-")
        med_s = f"{r['medfeat_s']:.1f}" if r["medfeat_s"] else "-"
        pyr_s = f"{r['pyradiomics_s']:.1f}" if r["pyradiomics_s"] else "-"
        lines.append(f"| {r['title']} | {r['features']} | {fmt_half(r['halves']['development'])} | "
                     f"{fmt_half(r['halves']['held-out'])} | "
                     f"{r['by_definition']} ({r['by_definition_agree_converted']}) | "
                     f"{announced_} | {unexplained} | {med_s} | {pyr_s} | {ratio} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", help="comma-separated set keys (default: all): "
                    + ", ".join(s["key"] for s in PARAM_SETS))
    ap.add_argument("--patients", type=int, default=10, help="first N patient folders (default 10: all)")
    args = ap.parse_args(argv)
    if not STS.is_dir():
        print(f"skipped: {STS} is absent (../shared holds the data)")
        return 0
    why = install_peer("pyradiomics")
    if why:
        print(f"PyRadiomics is not available: {why}")
        return 1
    sets = PARAM_SETS if not args.sets else [s for s in PARAM_SETS if s["key"] in args.sets.split(",")]
    everyone = patients(10)
    halves = {pid: ("development" if i < len(everyone) // 2 else "held-out") for i, pid in enumerate(everyone)}
    pids = patients(args.patients)
    print(f"patients: development {[p for p in pids if halves[p] == 'development']}, "
          f"held-out {[p for p in pids if halves[p] == 'held-out']}")
    rows, details = [], {}
    t_all = time.perf_counter()
    for pset in sets:
        folder = WORK / pset["key"]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "params.yaml").write_text(yaml.safe_dump(pset["params"], sort_keys=False))
        cases = cases_for(pset, pids)
        med = run_medfeat(pset, cases, folder)
        pyr = run_pyradiomics(cases, folder)
        row = summarise(pset, med, pyr, compare(pset, cases, med, pyr, halves))
        rows.append(row)
        details[pset["key"]] = {"params": pset["params"], "notes": med["notes"],
                                "convert_cmd": med.get("convert_cmd"), "extract_cmd": med.get("extract_cmd")}
        print(f"{pset['key']}: {row['features']} features; medfeat {row['medfeat_s'] or math.nan:.1f} s, "
              f"PyRadiomics {row['pyradiomics_s'] or math.nan:.1f} s; {len(row['unexplained'])} unexplained"
              + (f"; medfeat FAILED: {med['failure']}" if med["failure"] else "")
              + (f"; PyRadiomics FAILED: {pyr['failure']}" if pyr.get("failure") else "")
              + (f"; case errors: {row['errors']}" if row["errors"] else ""), flush=True)
    total = time.perf_counter() - t_all
    versions = {k: pyr.get(k) for k in ("pyradiomics", "simpleitk", "numpy", "python")}
    md = table(rows)
    head = (f"PyRadiomics {versions['pyradiomics']} (SimpleITK {versions['simpleitk']}) vs medfeat, "
            f"{len(pids)} STS patients, {os.cpu_count()} CPUs ({platform.machine()}), one BLAS thread; "
            f"agreement: |a - b| <= {ATOL:g} + {RTOL:g} max(|a|, |b|); 'agree' counts values (feature x patient) "
            f"outside DIFFERENCES; total {total:.0f} s")
    print()
    print(head)
    print()
    print(md)
    for r in rows:
        if r["pyradiomics_only"] or r["medfeat_only"]:
            print(f"\n{r['key']}: PyRadiomics only {[n.removeprefix('original_') for n in r['pyradiomics_only']]}; "
                  f"medfeat only {r['medfeat_only']}")
        for label, feats in r["explained"].items():
            print(f"\n{r['key']}: {len(feats)} disagreeing features announced ({label})")
        if r["unexplained"]:
            detail = r["unexplained_detail"]
            print(f"\n{r['key']}: disagreements not explained (max relative error; patients): "
                  + ", ".join(f"{k.removeprefix('original_')} {v:.2e} ({who(detail[k], r['patients'])})"
                              for k, v in r["unexplained"].items()))
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "results.md").write_text(head + "\n\n" + md + "\n")
    (WORK / "results.json").write_text(json.dumps({"versions": versions, "patients": pids, "halves": halves,
                                                   "rows": rows, "sets": details, "seconds": total}, indent=1,
                                                  default=str))
    print(f"\nwritten: {WORK / 'results.md'}, {WORK / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
