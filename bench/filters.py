"""medfeat's image filters against PyRadiomics 3.0.1 (and MIRP): agreement of PyRadiomics' image types,
and end-to-end speed with LoG and wavelet image types (issue 15).

Data: CT tumour ROIs of three soft-tissue-sarcoma patients of ``../shared/data/sts/nifti/`` (image and
mask ``.nii.gz``, label 1), fixed before any run: :data:`PATIENTS` -- STS_001 (117k ROI voxels, the 3D
case of ``bench/extract_speed.py``), STS_010 (59k) and STS_024 (25k). Nothing in medfeat was tuned on
them; the script only measures.

**1. Agreement** (per patient), PyRadiomics in its own venv (``bench/_filters_peer_worker.py``):

* *Images*: PyRadiomics' generators ``radiomics.imageoperations.get<Type>Image`` (LoG sigma 1..5 mm,
  Wavelet's 8 sub-bands with its defaults coif1 / level 1, Square, SquareRoot, Logarithm, Exponential,
  Gradient, LBP2D) on the SimpleITK image read from the file, against medfeat's filters
  (:func:`medfeat.filters.registry.apply` with ``pyradiomics_log``, ``pyradiomics_wavelet``,
  ``square``, ``squareroot``, ``logarithm``, ``exponential``, ``gradient``, ``lbp2d``) on the same
  array (as SimpleITK gives it, ``(z, y, x)``, float64) and spacing. Both filter the whole image;
  compared voxel-wise inside the ROI's bounding box: ``max |medfeat - PyRadiomics|`` over the range of
  PyRadiomics' map in the box (IBSI 2's measure: its tolerance is 1 % of the range), and the 99th
  percentile of the same.
* *Features*: ``RadiomicsFeatureExtractor`` with all those image types (and Original), classes
  firstorder and glcm, ``binCount: 32``, against ``medfeat.extract`` from the same files with the 21
  filters, families stat + ih + glcm, ``discretisation = "fbn"``, ``bin_number = 32`` (IBSI's fixed bin
  number is PyRadiomics' binCount; with ``binWidth`` the first bin edge differs, see
  ``docs/pyradiomics.md``), texture "3D, averaged". Every first-order and GLCM feature both define
  (``medfeat.pyradiomics.feature_pairs``): relative difference ``|a - b| / max(|a|, |b|)``; kurtosis
  converted (``TRANSFORMS``), glcm Idn / Idmn left out (``DIFFERENCES``: N_g defined otherwise).

**2. Speed**, end to end per image, files read included, on the same machine in the same run:

* PyRadiomics 3.0.1: ``RadiomicsFeatureExtractor(params.yaml).execute(image_path, mask_path)`` in one
  warm worker process, :data:`SPEED_PARAMS`: imageType Original, LoG sigma [1, 2, 3, 4, 5], Wavelet
  (8 sub-bands), its default feature classes (firstorder, shape, glcm, glrlm, glszm, gldm, ngtdm), bin
  width 25, diagnostics off.
* medfeat, Python API in a warm process: ``medfeat.extract(image_path, mask_path, settings, label=1)``
  with the parameter file converted by ``settings_from_pyradiomics`` (its families; its notes are
  recorded), its ``imageType`` LoG and Wavelet becoming the 13 filters ``pyradiomics_log`` sigma 1..5
  and ``pyradiomics_wavelet`` x 8 (checked against the list this script expects).
* medfeat CLI, a fresh process per image: ``medfeat extract IMAGE --mask MASK --label 1 --settings
  settings.toml -o out.csv`` (interpreter start, imports and numba's cache load included).
* MIRP (``pip install mirp`` in ``bench/.venvs/mirp``, where it installs), one warm worker:
  ``mirp.extract_features(image=..., mask=..., **settings)``: statistics, intensity histogram, GLCM,
  GLRLM, GLSZM, NGLDM, NGTDM (+ morphology on the original) on the original, LoG sigma 1..5 mm and the 8
  coif1 level-1 stationary wavelet sub-bands (no rotation invariance), PyRadiomics-style fixed bin
  size 25, texture "3D average" / "3D". MIRP's filters are IBSI's (sampled kernels, mirror boundary),
  not PyRadiomics', so its values are not compared.

One warm-up call per tool first (each medfeat image once; PyRadiomics and MIRP on the smallest ROI),
then ``--rounds`` rounds, image by image and tool by tool, so load from other processes slows one
round of each; per image each tool's best wall time (and its CPU time, the less load-sensitive check).
All tools run on one thread (BLAS / OpenMP / ITK thread variables = 1 unless set).

Peers are installed on first use and reused: ``bench/.venvs/pyradiomics`` (as ``bench/extract_speed.py``
does), ``bench/.venvs/pyradiomics-lbp`` (scikit-image, ``pip install --target``: PyRadiomics' LBP2D
needs it and its venv lacks it; the worker appends it to ``sys.path``), ``bench/.venvs/mirp``. A peer
that does not install is skipped with the reason.

    .venv/bin/python bench/filters.py                 # from the repository root; ~10 min on 2 cores
    .venv/bin/python bench/filters.py --rounds 1 --no-mirp

Writes ``bench/out/filters.json`` (and ``bench/out/filters/``: the parameter file, the converted and
completed medfeat settings). Exits 0 with a reason when ``../shared`` is absent.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SHARED = ROOT.parent / "shared" / "data"
OUT = BENCH / "out"
VENVS = BENCH / ".venvs"
WORKER = BENCH / "_filters_peer_worker.py"

PATIENTS = ("STS_001", "STS_010", "STS_024")
SIGMAS = (1, 2, 3, 4, 5)
SUBBANDS = ("LLH", "LHL", "LHH", "HLL", "HLH", "HHL", "HHH", "LLL")
TARGET_PYRADIOMICS = 20.0

# PyRadiomics image type name -> (group, medfeat filter table)
IMAGE_TYPES: dict[str, tuple[str, dict]] = {
    **{f"log-sigma-{s}-mm-3D": (f"LoG sigma {s} mm", {"type": "pyradiomics_log", "sigma_mm": s}) for s in SIGMAS},
    **{f"wavelet-{b}": (f"Wavelet {b}", {"type": "pyradiomics_wavelet", "subband": b}) for b in SUBBANDS},
    "square": ("Square", {"type": "square"}), "squareroot": ("SquareRoot", {"type": "squareroot"}),
    "logarithm": ("Logarithm", {"type": "logarithm"}), "exponential": ("Exponential", {"type": "exponential"}),
    "gradient": ("Gradient", {"type": "gradient"}), "lbp-2D": ("LBP2D", {"type": "lbp2d"}),
}
SPEED_TYPES = [n for n in IMAGE_TYPES if n.startswith(("log-", "wavelet-"))]

AGREEMENT_PARAMS = """setting:
  binCount: 32
  label: 1
  additionalInfo: false
imageType:
  Original: {}
  LoG: {sigma: [1, 2, 3, 4, 5]}
  Wavelet: {}
  Square: {}
  SquareRoot: {}
  Logarithm: {}
  Exponential: {}
  Gradient: {}
  LBP2D: {}
featureClass:
  firstorder:
  glcm:
"""

SPEED_PARAMS = """setting:
  binWidth: 25
  label: 1
  additionalInfo: false
imageType:
  Original: {}
  LoG: {sigma: [1, 2, 3, 4, 5]}
  Wavelet: {}
"""

_FAMILIES_MIRP = ["statistics", "intensity_histogram", "glcm", "glrlm", "glszm", "ngldm", "ngtdm"]
MIRP_SETTINGS = {
    "image_modality": "CT",
    "base_feature_families": _FAMILIES_MIRP + ["morphology"],
    "base_discretisation_method": "fixed_bin_size_pyradiomics", "base_discretisation_bin_width": 25.0,
    "ibsi_compliant": False,  # needed for the PyRadiomics-style fixed bin size
    "glcm_spatial_method": "3d_average", "glrlm_spatial_method": "3d_average", "glszm_spatial_method": "3d",
    "ngldm_spatial_method": "3d", "ngtdm_spatial_method": "3d",
    "filter_kernels": ["laplacian_of_gaussian", "separable_wavelet"],
    "laplacian_of_gaussian_sigma": [float(s) for s in SIGMAS],
    "separable_wavelet_families": "coif1", "separable_wavelet_set": [b.lower() for b in SUBBANDS],
    "separable_wavelet_rotation_invariance": False, "separable_wavelet_stationary": True,
    "separable_wavelet_decomposition_level": 1,
    "response_map_feature_families": _FAMILIES_MIRP,
    "response_map_discretisation_method": "fixed_bin_size_pyradiomics",
    "response_map_discretisation_bin_width": 25.0,
}

# ----------------------------------------------------------------------------- peers

PEERS = {
    "pyradiomics": {"venv": VENVS / "pyradiomics", "probe": "import radiomics, SimpleITK, radiomics._cmatrices",
                    "install": [["numpy", "setuptools", "wheel"], ["--no-build-isolation", "pyradiomics==3.0.1"]]},
    "mirp": {"venv": VENVS / "mirp", "probe": "import mirp", "install": [["mirp"]]},
}
LBP_SITE = VENVS / "pyradiomics-lbp"


def venv_python(name: str) -> Path:
    return PEERS[name]["venv"] / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")


def _probe(python: Path, code: str, extra: dict | None = None) -> bool:
    env = dict(os.environ, **(extra or {}))
    return python.exists() and subprocess.run([str(python), "-c", code], capture_output=True, env=env,
                                              timeout=300).returncode == 0


def _run_logged(steps: list[list[str]], log: Path, timeout: float) -> str | None:
    with open(log, "a") as fh:
        for cmd in steps:
            fh.write("$ " + " ".join(cmd) + "\n")
            fh.flush()
            try:
                done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return f"`{' '.join(cmd[-3:])}` failed: {exc}"
            if done.returncode != 0:
                return f"`{' '.join(cmd[-3:])}` exited {done.returncode} (see {log})"
    return None


def install_peer(name: str) -> str | None:
    """The peer's venv, created on first use; None when it works, else why not."""
    python = venv_python(name)
    if _probe(python, PEERS[name]["probe"]):
        return None
    venv = PEERS[name]["venv"]
    OUT.mkdir(parents=True, exist_ok=True)
    log = OUT / f"{name}_install.log"
    shutil.rmtree(venv, ignore_errors=True)
    print(f"installing {name} into {venv} (once; log: {log}) ...", flush=True)
    steps = [[shutil.which("python3") or sys.executable, "-m", "venv", str(venv)]]
    steps += [[str(python), "-m", "pip", "install", "-q", *args] for args in PEERS[name]["install"]]
    why = _run_logged(steps, log, timeout=900)
    if why is None and not _probe(python, PEERS[name]["probe"]):
        why = f"installed, but `{PEERS[name]['probe']}` fails (see {log})"
    return why


def install_lbp_site() -> str | None:
    """scikit-image for PyRadiomics' LBP2D, beside its venv (``pip install --target``)."""
    code = f"import sys; sys.path.append({str(LBP_SITE)!r}); import skimage.feature"
    python = venv_python("pyradiomics")
    if _probe(python, code):
        return None
    import skimage

    shutil.rmtree(LBP_SITE, ignore_errors=True)
    print(f"installing scikit-image {skimage.__version__} into {LBP_SITE} for PyRadiomics' LBP2D ...", flush=True)
    why = _run_logged([[str(python), "-m", "pip", "install", "-q", "--target", str(LBP_SITE),
                        f"scikit-image=={skimage.__version__}"]], OUT / "pyradiomics_lbp_install.log", timeout=900)
    if why is None and not _probe(python, code):
        why = "installed, but scikit-image does not import beside PyRadiomics"
    return why


def peer_job(mode: str, job: dict, timeout: float = 1800) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(job, fh)
    try:
        done = subprocess.run([str(venv_python("pyradiomics")), str(WORKER), mode, fh.name], capture_output=True,
                              text=True, timeout=timeout)
    finally:
        os.unlink(fh.name)
    if done.returncode != 0:
        raise RuntimeError(f"PyRadiomics worker ({mode}) failed: {done.stderr.strip()[-800:]}")
    return done.stdout


class Server:
    """A warm peer worker: one JSON job per line in, one answer per line out."""

    def __init__(self, python: Path, mode: str, arg: str, log: Path):
        self.log = open(log, "w")
        self.proc = subprocess.Popen([str(python), str(WORKER), mode, arg], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.hello = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited (see {self.log.name})")
        return json.loads(line)

    def __call__(self, image: Path, mask: Path) -> dict:
        self.proc.stdin.write(json.dumps({"image": str(image), "mask": str(mask)}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        except Exception:  # pragma: no cover - best effort
            self.proc.kill()
        self.log.close()


# ----------------------------------------------------------------------------- agreement


def case_paths(pid: str) -> tuple[Path, Path]:
    folder = SHARED / "sts" / "nifti" / pid
    return folder / "CT_image.nii.gz", folder / "CT_mask.nii.gz"


def compare_images(pid: str, lbp_site: str | None) -> dict:
    """PyRadiomics' filtered images against medfeat's, in the ROI's bounding box."""
    from medfeat.filters.registry import apply, normalize

    image, mask = case_paths(pid)
    with tempfile.TemporaryDirectory(prefix="medfeat-filters-") as tmp:
        peer_job("images", {"image": str(image), "mask": str(mask), "out": tmp, "sigma": list(SIGMAS),
                            "extra_site": lbp_site})
        meta = json.loads((Path(tmp) / "images.json").read_text())
        original = np.load(Path(tmp) / "original.npy")
        spacing = tuple(meta["spacing"])
        box = tuple(slice(a, b) for a, b in meta["bbox"])
        rows = {}
        for name, (group, spec) in IMAGE_TYPES.items():
            path = Path(tmp) / f"{name}.npy"
            if not path.exists():
                rows[name] = {"group": group, "missing": meta["missing"].get(group.split()[0], "not produced")}
                continue
            theirs = np.load(path)
            t0 = time.perf_counter()
            ours = apply(normalize(spec), original, spacing)
            seconds = time.perf_counter() - t0
            diff = np.abs(ours[box] - theirs)
            rng = float(np.ptp(theirs)) or 1.0
            rows[name] = {"group": group, "range": float(np.ptp(theirs)), "max_abs": float(diff.max()),
                          "max_rel_range": float(diff.max() / rng),
                          "p99_rel_range": float(np.quantile(diff, 0.99) / rng),
                          "medfeat_s": seconds, "pyradiomics_s": meta["seconds"].get(name)}
        from medfeat.filters.wavelet import pyradiomics_wavelet

        t0 = time.perf_counter()
        pyradiomics_wavelet(original)  # the 8 sub-bands at once: what each pyradiomics_wavelet filter recomputes
        wavelet_once = time.perf_counter() - t0
    return {"patient": pid, "shape": meta["shape"], "spacing": meta["spacing"], "bbox": meta["bbox"],
            "medfeat_wavelet_8_bands_once_s": wavelet_once,
            "pixel_type": meta["pixel_type"], "versions": {k: meta[k] for k in ("pyradiomics", "simpleitk", "numpy")},
            "images": rows}


def compare_features(pid: str, lbp_site: str | None, out_dir: Path) -> dict:
    """First-order and GLCM features of every image type, binCount 32 <-> fbn 32."""
    import medfeat
    from medfeat.settings import Settings
    from medfeat.pyradiomics import DIFFERENCES, TRANSFORMS, feature_pairs

    image, mask = case_paths(pid)
    params = out_dir / "agreement_params.yaml"
    params.write_text(AGREEMENT_PARAMS)
    theirs = json.loads(peer_job("features", {"image": str(image), "mask": str(mask), "params": str(params),
                                              "extra_site": lbp_site}))
    settings = Settings(families=("stat", "ih", "glcm"), discretisation="fbn", bin_number=32,
                        aggregations=("3D, averaged",), filters=[spec for _, spec in IMAGE_TYPES.values()],
                        original=True, name="agreement")
    ours = medfeat.extract(image, mask, settings, label=1)
    pairs = [(p, c) for p, c in feature_pairs("3D, averaged", image_type="") if p.startswith(("firstorder_", "glcm_"))]
    per_type = {}
    for name in ["original", *IMAGE_TYPES]:
        group = "Original" if name == "original" else IMAGE_TYPES[name][0]
        rows, left_out, unmatched = [], [], []
        for pname, col in pairs:
            key = f"{name}_{pname}"
            mcol = col if name == "original" else f"{name}__{col}"
            if key not in theirs or mcol not in ours:
                unmatched.append(pname if key not in theirs else mcol)
                continue
            if pname in DIFFERENCES and pname not in TRANSFORMS:
                left_out.append(pname)
                continue
            a = float(ours[mcol])
            b = TRANSFORMS[pname](theirs[key]) if pname in TRANSFORMS else float(theirs[key])
            scale = max(abs(a), abs(b))
            rel = abs(a - b) / scale if scale > 1e-12 else 0.0
            rows.append((rel, pname, a, b))
        if not rows:
            per_type[name] = {"group": group, "compared": 0, "unmatched": unmatched}
            continue
        rows.sort(reverse=True)
        rel = [r[0] for r in rows]
        per_type[name] = {"group": group, "compared": len(rows), "left_out": left_out, "unmatched": unmatched,
                          "within_1e-6": sum(r <= 1e-6 for r in rel), "within_1e-3": sum(r <= 1e-3 for r in rel),
                          "max_rel": rows[0][0], "worst": rows[0][1], "worst_medfeat": rows[0][2],
                          "worst_pyradiomics": rows[0][3],
                          "max_rel_firstorder": max((r[0] for r in rows if r[1].startswith("firstorder_")), default=0.0),
                          "max_rel_glcm": max((r[0] for r in rows if r[1].startswith("glcm_")), default=0.0)}
    return {"patient": pid, "types": per_type}


# ----------------------------------------------------------------------------- speed


def speed_settings(out_dir: Path):
    """The speed parameter file, its medfeat conversion (+ the filters the converter does not add)."""
    from medfeat.filters.registry import label, normalize
    from medfeat.pyradiomics import pyradiomics_column, settings_from_pyradiomics

    params = out_dir / "speed_params.yaml"
    params.write_text(SPEED_PARAMS)
    converted, notes = settings_from_pyradiomics(params)
    want = sorted(label(normalize(IMAGE_TYPES[n][1])) for n in SPEED_TYPES)
    if sorted(label(f) for f in converted.filters) != want or not converted.original:
        raise SystemExit(f"the converter's filters {[label(f) for f in converted.filters]} are not {want}")
    settings = converted.replace(name="PyRadiomics Original + LoG 1..5 mm + Wavelet")
    toml = out_dir / "speed_settings.toml"
    toml.write_text(settings.to_toml([f"bench/filters.py: {params.name} converted by settings_from_pyradiomics",
                                      "(imageType LoG and Wavelet become its filters)"]))
    gaps = {
        "converter_filters": list(converted.filters),
        "converter_image_type_notes": [n for n in notes if n.startswith("imageType")],
        "names_pyradiomics_filtered_column": pyradiomics_column("log-sigma-1-mm-3D__stat_mean"),
        "label_sigma_1.0": label(normalize({"type": "pyradiomics_log", "sigma_mm": 1.0})),
        "pyradiomics_name_sigma_1.0": "log-sigma-%s-mm-3D" % str(1.0).replace(".", "-"),
    }
    return params, settings, toml, notes, gaps


def run_cli(image: Path, mask: Path, toml: Path, out_csv: Path) -> tuple[float, float, int]:
    exe = ROOT / ".venv" / "bin" / "medfeat"
    cmd = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "medfeat"]),
           "extract", str(image), "--mask", str(mask), "--label", "1", "--settings", str(toml), "-o", str(out_csv)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"medfeat extract exited {done.returncode}: {done.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    header = out_csv.read_text().splitlines()[0]
    return wall, cpu, header.count(",") + 1


def bench_speed(rounds: int, peers: dict, out_dir: Path) -> dict:
    import medfeat
    from medfeat.io import read_image

    params, settings, toml, notes, gaps = speed_settings(out_dir)
    mirp_json = out_dir / "mirp_settings.json"
    mirp_json.write_text(json.dumps(MIRP_SETTINGS, indent=1))
    cases = {pid: case_paths(pid) for pid in PATIENTS}
    voxels = {pid: int(np.count_nonzero(read_image(m).array == 1)) for pid, (_, m) in cases.items()}
    smallest = min(PATIENTS, key=voxels.get)
    servers = {}
    if peers["pyradiomics"] is None:
        servers["pyradiomics"] = Server(venv_python("pyradiomics"), "pyradiomics-serve", str(params),
                                        out_dir / "pyradiomics_worker.log")
    if peers.get("mirp") is None:
        servers["mirp"] = Server(venv_python("mirp"), "mirp-serve", str(mirp_json), out_dir / "mirp_worker.log")
    times = {pid: {k: [] for k in ("medfeat", "medfeat_cpu", "cli", "cli_cpu", "pyradiomics", "pyradiomics_cpu",
                                   "mirp", "mirp_cpu", "medfeat_log_only")} for pid in PATIENTS}
    # the floor under the target: the same extraction with the five LoG filters alone and first-order
    # statistics only (each LoG map on its box plus its reach, as in the full extraction)
    log_only = settings.replace(filters=tuple(f for f in settings.filters if f.get("type") == "pyradiomics_log"),
                                families=("stat",), original=False)
    counts, errors = {}, {}

    def medfeat_call(pid):
        image, mask = cases[pid]
        t0, c0 = time.perf_counter(), time.process_time()
        row = medfeat.extract(image, mask, settings, label=1)
        return time.perf_counter() - t0, time.process_time() - c0, len(row)

    try:
        t0 = time.perf_counter()
        for pid in PATIENTS:  # warm-up: imports, numba's cache, the files in the page cache
            counts["medfeat"] = medfeat_call(pid)[2]
        warm = {"medfeat_all_patients_s": time.perf_counter() - t0}
        for name, server in servers.items():
            t0 = time.perf_counter()
            answer = server(*cases[smallest])
            warm[f"{name}_{smallest}_s"] = time.perf_counter() - t0
            if "error" in answer:
                errors[name] = answer["error"]
            else:
                counts[name] = answer["values"]
        print(f"warm-up done: {json.dumps({k: round(v, 1) for k, v in warm.items()})}", flush=True)
        for r in range(rounds):
            for pid in PATIENTS:
                image, mask = cases[pid]
                for _ in range(2):
                    wall, cpu, _ = medfeat_call(pid)
                    times[pid]["medfeat"].append(wall)
                    times[pid]["medfeat_cpu"].append(cpu)
                t0 = time.perf_counter()
                medfeat.extract(image, mask, log_only, label=1)
                times[pid]["medfeat_log_only"].append(time.perf_counter() - t0)
                wall, cpu, counts["cli"] = run_cli(image, mask, toml, out_dir / f"cli_{pid}.csv")
                times[pid]["cli"].append(wall)
                times[pid]["cli_cpu"].append(cpu)
                for name, server in servers.items():
                    if name in errors:
                        continue
                    answer = server(image, mask)
                    if "error" in answer:
                        errors[name] = f"{pid}: {answer['error']}"
                        continue
                    times[pid][name].append(answer["seconds"])
                    times[pid][f"{name}_cpu"].append(answer["cpu_seconds"])
                print(f"round {r + 1} {pid}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times[pid].items()
                                                           if v and not k.endswith("_cpu")), flush=True)
    finally:
        for server in servers.values():
            server.close()
    per_image = []
    for pid in PATIENTS:
        t = times[pid]
        best = {k: (min(v) if v else None) for k, v in t.items()}
        row = {"patient": pid, "voxels": voxels[pid], **{f"{k}_s": v for k, v in best.items()}, "times_s": t}
        for peer in ("pyradiomics", "mirp"):
            if best[peer]:
                row[f"{peer}_over_medfeat"] = best[peer] / best["medfeat"]
                row[f"{peer}_over_cli"] = best[peer] / best["cli"]
                row[f"{peer}_over_medfeat_cpu"] = best[f"{peer}_cpu"] / best["medfeat_cpu"]
        per_image.append(row)
    return {"params": SPEED_PARAMS, "medfeat_settings": settings.to_dict(), "converter_notes": notes, "gaps": gaps,
            "mirp_settings": MIRP_SETTINGS, "rounds": rounds, "warm_up": warm, "columns": counts, "errors": errors,
            "pyradiomics_image_types": servers["pyradiomics"].hello if "pyradiomics" in servers else None,
            "mirp": servers["mirp"].hello if "mirp" in servers else None, "images": per_image}


# ----------------------------------------------------------------------------- report


def _fmt(v, spec=".1e"):
    return "-" if v is None else format(v, spec)


def print_agreement(images: list[dict], feats: list[dict]) -> None:
    print("\nAgreement with PyRadiomics 3.0.1 (worst over patients " + ", ".join(r["patient"] for r in images) + ")")
    print(f"  {'image type':<20} {'image: max|d|/range':>20} {'p99|d|/range':>13} {'features':>9} "
          f"{'<=1e-6':>7} {'<=1e-3':>7} {'max rel first-order':>20} {'max rel GLCM':>13}  worst feature")
    for name in ["original", *IMAGE_TYPES]:
        group = "Original" if name == "original" else IMAGE_TYPES[name][0]
        im = [r["images"][name] for r in images if name in r["images"]]
        ft = [r["types"][name] for r in feats if r["types"].get(name, {}).get("compared")]
        if any("missing" in i for i in im):
            print(f"  {group:<20} not produced by PyRadiomics: {im[0]['missing']}")
            continue
        mx = max((i["max_rel_range"] for i in im), default=None)
        p99 = max((i["p99_rel_range"] for i in im), default=None)
        n = sum(f["compared"] for f in ft)
        w = max(ft, key=lambda f: f["max_rel"]) if ft else None
        print(f"  {group:<20} {_fmt(mx):>20} {_fmt(p99):>13} {n:>9} {sum(f['within_1e-6'] for f in ft):>7} "
              f"{sum(f['within_1e-3'] for f in ft):>7} {_fmt(max((f['max_rel_firstorder'] for f in ft), default=None)):>20} "
              f"{_fmt(max((f['max_rel_glcm'] for f in ft), default=None)):>13}  "
              + (f"{w['worst']} ({w['worst_medfeat']:.6g} vs {w['worst_pyradiomics']:.6g})" if w else ""))


def print_speed(speed: dict) -> None:
    print(f"\nEnd to end per image (files read), best of {speed['rounds']} round(s); medfeat API best of "
          f"{2 * speed['rounds']} calls; columns/values: {speed['columns']}")
    print(f"  {'patient':<8} {'ROI voxels':>10} {'medfeat API s':>14} {'medfeat CLI s':>14} {'PyRadiomics s':>14} "
          f"{'MIRP s':>8} {'PyR/API':>8} {'PyR/CLI':>8} {'PyR/API CPU':>12} {'MIRP/API':>9} {'MIRP/CLI':>9}")
    for r in speed["images"]:
        print(f"  {r['patient']:<8} {r['voxels']:>10} {_fmt(r['medfeat_s'], '.2f'):>14} {_fmt(r['cli_s'], '.2f'):>14} "
              f"{_fmt(r['pyradiomics_s'], '.2f'):>14} {_fmt(r['mirp_s'], '.2f'):>8} "
              f"{_fmt(r.get('pyradiomics_over_medfeat'), '.2f'):>8} {_fmt(r.get('pyradiomics_over_cli'), '.2f'):>8} "
              f"{_fmt(r.get('pyradiomics_over_medfeat_cpu'), '.2f'):>12} {_fmt(r.get('mirp_over_medfeat'), '.2f'):>9} "
              f"{_fmt(r.get('mirp_over_cli'), '.2f'):>9}")
    ratios = [r["pyradiomics_over_medfeat"] for r in speed["images"] if r.get("pyradiomics_over_medfeat")]
    if ratios:
        print(f"  PyRadiomics / medfeat API: median {np.median(ratios):.2f}x (target >= {TARGET_PYRADIOMICS:g}x: "
              f"{'met' if np.median(ratios) >= TARGET_PYRADIOMICS else 'NOT met'})")
    for r in speed["images"]:
        if "medfeat_filters_s" in r:
            print(f"  {r['patient']}: medfeat's 13 filters alone (timed in the agreement part) {r['medfeat_filters_s']:.2f} s, "
                  f"of which LoG {r['medfeat_log_s']:.2f} s and wavelet {r['medfeat_wavelet_s']:.2f} s (one 8-band "
                  f"decomposition: {r['medfeat_wavelet_once_s']:.2f} s); PyRadiomics' generators "
                  f"{r['pyradiomics_filters_s']:.2f} s")
    for r in speed["images"]:
        if r.get("pyradiomics_s") and r.get("medfeat_log_only_s"):
            print(f"  {r['patient']}: the target's budget (PyRadiomics / {TARGET_PYRADIOMICS:g}) "
                  f"{r['pyradiomics_s'] / TARGET_PYRADIOMICS:.3f} s; medfeat's extraction with the five LoG filters "
                  f"alone and first-order statistics only {r['medfeat_log_only_s']:.3f} s")
    if speed["errors"]:
        print(f"  errors: {speed['errors']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds (default 2)")
    parser.add_argument("--no-mirp", action="store_true", help="leave MIRP out")
    parser.add_argument("--no-speed", action="store_true", help="agreement only")
    args = parser.parse_args(argv)
    if not (SHARED / "sts" / "nifti").is_dir():
        print(f"skipped: {SHARED / 'sts' / 'nifti'} is absent (a clone without ../shared)")
        return 0
    out_dir = OUT / "filters"
    out_dir.mkdir(parents=True, exist_ok=True)
    peers = {"pyradiomics": install_peer("pyradiomics")}
    if peers["pyradiomics"] is not None:
        print(f"PyRadiomics unavailable: {peers['pyradiomics']}; nothing to compare")
        return 1
    peers["pyradiomics-lbp"] = install_lbp_site()
    lbp_site = str(LBP_SITE) if peers["pyradiomics-lbp"] is None else None
    peers["mirp"] = "--no-mirp" if args.no_mirp else install_peer("mirp")
    print(f"peers: {json.dumps({k: v or 'ok' for k, v in peers.items()})}", flush=True)

    t0 = time.perf_counter()
    images = [compare_images(pid, lbp_site) for pid in PATIENTS]
    feats = [compare_features(pid, lbp_site, out_dir) for pid in PATIENTS]
    print(f"agreement: {time.perf_counter() - t0:.0f} s", flush=True)
    print_agreement(images, feats)
    speed = None
    if not args.no_speed:
        speed = bench_speed(args.rounds, peers, out_dir)
        for r in speed["images"]:
            im = next(i for i in images if i["patient"] == r["patient"])["images"]
            r["medfeat_log_s"] = sum(im[n]["medfeat_s"] for n in SPEED_TYPES if n.startswith("log-"))
            r["medfeat_wavelet_s"] = sum(im[n]["medfeat_s"] for n in SPEED_TYPES if n.startswith("wavelet-"))
            r["medfeat_filters_s"] = r["medfeat_log_s"] + r["medfeat_wavelet_s"]
            r["medfeat_wavelet_once_s"] = next(i for i in images if i["patient"] == r["patient"])[
                "medfeat_wavelet_8_bands_once_s"]
            r["pyradiomics_filters_s"] = sum(im[n]["pyradiomics_s"] or 0.0 for n in SPEED_TYPES)
        print_speed(speed)
    import medfeat

    result = {"date": time.strftime("%Y-%m-%d"), "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                                             "python": platform.python_version(),
                                                             "loadavg_end": os.getloadavg()},
              "medfeat": getattr(medfeat, "__version__", None), "patients": list(PATIENTS), "peers": peers,
              "agreement_params": AGREEMENT_PARAMS, "images": images, "features": feats, "speed": speed}
    (OUT / "filters.json").write_text(json.dumps(result, indent=1, default=float))
    print(f"\nwrote {(OUT / 'filters.json').relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
