"""A radiomics cohort as a user runs it: medfeat's ``run`` against PyRadiomics' batch mode (issue 14, target 6).

The ten soft-tissue-sarcoma patients of ``../shared/data/sts/nifti/STS_xxx/`` with their CT, T1 MR and
PET images and tumour masks (30 image/mask pairs), as one CSV each tool reads:

* **PyRadiomics 3.0.1** (its own venv ``bench/.venvs/pyradiomics``, installed on first use by
  ``extract_speed.install_peer``): ``pyradiomics cohort_pyradiomics.csv --param params.yaml --jobs 2
  -o pyradiomics.csv -f csv`` (columns ``patient, modality, Image, Mask``);
* **medfeat**: ``medfeat run cohort_medfeat.csv -o RUN --workers 2 --settings converted.toml
  --families stat,ih,glcm,glrlm,ngtdm,ngldm,glszm,morph --label 1`` (columns ``patient, modality,
  image, mask``), with ``converted.toml`` from ``medfeat settings --from-pyradiomics params.yaml``.

Same settings and classes: ``params.yaml`` is ``extract_speed.E2E_PARAMS`` (bin width 25, label 1, the
seven classes firstorder, shape, glcm, glrlm, glszm, gldm, ngtdm, Original image, diagnostics off);
medfeat's families are what the converter makes of it (morph without Moran's I / Geary's C).

Timed: the wall clock of each whole command as a subprocess, from start to exit (interpreter
start-up, imports, workers, reading, writing the result included), both in the same run of this
script, in ABBA order (PyRadiomics, medfeat, medfeat, PyRadiomics with ``--repeats 2``) so that a
drift in the machine's load weighs on both; the ratio is PyRadiomics' mean over medfeat's mean
(target >= 3x). The settings conversion (``medfeat settings``, once per parameter file) is timed
apart and reported with and without it. Both commands get the environment this script was started
with (no thread pinning: as a user runs them). Each run starts from a fresh output folder (``medfeat
run`` resumes an existing one). Both outputs are checked: 30 rows, no failed image.

    .venv/bin/python bench/cohort.py                       # from the repository root
    .venv/bin/python bench/cohort.py --repeats 1
    .venv/bin/python bench/cohort.py --images-per-job 15   # extra medfeat run option (exploration)

Also measured, ``--repeats`` times after the commands, two floors (``bench/_cohort_floor.py``), printed
against the target's budget (PyRadiomics' mean / 3): ``dask`` -- interpreter, distributed's imports, a
LocalCluster of 2 worker processes, each worker's medfeat imports, numba's first use and the run's cached
kernels on a tiny synthetic volume, the cluster closed (no file read, no ledger, table or report);
``pool`` -- no Dask: a spawned 2-process multiprocessing pool mapping ``medfeat.extract`` over the
cohort's rows (files read) and the rows written as one Parquet table (no ledger, bundles or report).

Writes ``bench/out/cohort/`` (CSVs, params, converted settings, logs, ``results.json``). Exits 0 with a
reason when ``../shared`` is absent; 1 when PyRadiomics cannot be installed or an output is short.
"""
from __future__ import annotations

import os

USER_ENV = dict(os.environ)  # before extract_speed pins the BLAS threads in os.environ

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import extract_speed as xs  # noqa: E402

OUT = xs.OUT / "cohort"
MODALITIES = ("CT", "MR_T1", "PET")
TARGET_RATIO = 3.0
JOBS = 2


def cohort_rows() -> list[dict]:
    rows = []
    for folder in sorted((xs.SHARED / "sts" / "nifti").glob("STS_*")):
        for mod in MODALITIES:
            image, mask = folder / f"{mod}_image.nii.gz", folder / f"{mod}_mask.nii.gz"
            if image.exists() and mask.exists():
                rows.append({"patient": folder.name, "modality": mod, "image": str(image), "mask": str(mask)})
    return rows


def write_csv(path: Path, rows: list[dict], image: str, mask: str) -> None:
    with open(path, "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["patient", "modality", image, mask])
        for r in rows:
            wr.writerow([r["patient"], r["modality"], r["image"], r["mask"]])


def timed(cmd: list[str], log: Path) -> tuple[float, int]:
    """Run ``cmd`` (the user's environment, output to ``log``): wall seconds from start to exit, exit status."""
    with open(log, "w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        t0 = time.perf_counter()
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=USER_ENV, cwd=OUT)
        return time.perf_counter() - t0, done.returncode


def medfeat_exe() -> list[str]:
    script = Path(sys.executable).parent / "medfeat"
    return [str(script)] if script.exists() else [sys.executable, "-m", "medfeat"]


def pyradiomics_rows(path: Path) -> int:
    with open(path, newline="") as fh:
        return sum(1 for _ in csv.DictReader(fh))


def medfeat_rows(run: Path) -> tuple[int, int]:
    import pyarrow.parquet as pq

    errors = run / "errors.csv"
    failed = 0
    if errors.exists():
        with open(errors, newline="") as fh:
            failed = sum(1 for _ in csv.DictReader(fh))
    return pq.read_metadata(run / "features.parquet").num_rows, failed


def floors(families: list[str], repeats: int) -> dict[str, list[dict]]:
    """``bench/_cohort_floor.py`` ``repeats`` times per runner, alternating: for each run the wall seconds of
    the whole process (``wall``) and its steps; for ``dask`` also when its cluster was warm (``warm``) and
    the workers' mean warm-up (``warmup``)."""
    out: dict[str, list[dict]] = {"dask": [], "pool": []}
    for _ in range(repeats):
        for runner in out:
            cmd = [sys.executable, str(BENCH / "_cohort_floor.py"), runner, "converted.toml", ",".join(families),
                   "--workers", str(JOBS), "--csv", "cohort_medfeat.csv", "--output", "floor.parquet"]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=USER_ENV, cwd=OUT)
            wall = time.perf_counter() - t0
            if done.returncode != 0:
                print(f"floor measurement ({runner}) failed ({done.returncode}): {done.stderr.strip()[-300:]}")
                return {}
            steps = json.loads(done.stdout.strip().splitlines()[-1])
            run = {"wall": wall, "steps": steps}
            if runner == "dask":
                run |= {"warm": steps["warm"], "warmup": sum(steps["worker_warmup_s"]) / len(steps["worker_warmup_s"])}
            out[runner].append(run)
    return out


def _mean(runs: list[dict], key: str) -> float:
    return sum(r[key] for r in runs) / len(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of each command, in ABBA order (default 2: PyRadiomics, medfeat, medfeat, PyRadiomics)")
    parser.add_argument("--images-per-job", type=int, default=None,
                        help="pass --images-per-job to medfeat run (default: not passed, medfeat's default)")
    args = parser.parse_args(argv)
    if not xs.SHARED.is_dir():
        print(f"skipped: {xs.SHARED} is absent (the benchmark needs ../shared/data/sts)")
        return 0
    why = xs.install_peer("pyradiomics")
    if why:
        print(f"PyRadiomics cannot run: {why}")
        return 1
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    rows = cohort_rows()
    write_csv(OUT / "cohort_pyradiomics.csv", rows, "Image", "Mask")
    write_csv(OUT / "cohort_medfeat.csv", rows, "image", "mask")
    (OUT / "params.yaml").write_text(xs.E2E_PARAMS)
    medfeat = medfeat_exe()
    convert_s, rc = timed([*medfeat, "settings", "--from-pyradiomics", "params.yaml", "-o", "converted.toml"],
                          OUT / "settings.log")
    if rc != 0:
        print(f"medfeat settings failed ({rc}): see {OUT / 'settings.log'}")
        return 1
    from medfeat.settings import Settings

    families = list(Settings.from_file(OUT / "converted.toml").families)
    pyr_cmd = [str(xs.PEERS["pyradiomics"]["venv"] / "bin" / "pyradiomics"), "cohort_pyradiomics.csv",
               "--param", "params.yaml", "--jobs", str(JOBS), "-o", "pyradiomics.csv", "-f", "csv"]
    mf_cmd = [*medfeat, "run", "cohort_medfeat.csv", "-o", "RUN", "--workers", str(JOBS), "--settings",
              "converted.toml", "--families", ",".join(families), "--label", "1"]
    if args.images_per_job:
        mf_cmd += ["--images-per-job", str(args.images_per_job)]
    print(f"cohort: {len(rows)} image/mask pairs ({len(rows) // len(MODALITIES)} patients x {', '.join(MODALITIES)}); "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print("  $ " + " ".join(pyr_cmd))
    print("  $ " + " ".join(mf_cmd))
    order = []
    for k in range(args.repeats):
        order += ["pyradiomics", "medfeat"] if k % 2 == 0 else ["medfeat", "pyradiomics"]
    times: dict[str, list[float]] = {"pyradiomics": [], "medfeat": []}
    checks: dict[str, list] = {"pyradiomics": [], "medfeat": []}
    ok = True
    for k, tool in enumerate(order):
        if tool == "pyradiomics":
            (OUT / "pyradiomics.csv").unlink(missing_ok=True)
            wall, rc = timed(pyr_cmd, OUT / f"pyradiomics-{k}.log")
            n = pyradiomics_rows(OUT / "pyradiomics.csv") if rc == 0 and (OUT / "pyradiomics.csv").exists() else 0
            checks[tool].append({"exit": rc, "rows": n})
            good = rc == 0 and n == len(rows)
        else:
            shutil.rmtree(OUT / "RUN", ignore_errors=True)
            wall, rc = timed(mf_cmd, OUT / f"medfeat-{k}.log")
            n, failed = medfeat_rows(OUT / "RUN") if rc == 0 else (0, -1)
            checks[tool].append({"exit": rc, "rows": n, "failed": failed})
            good = rc == 0 and n == len(rows) and failed == 0
        ok &= good
        times[tool].append(wall)
        print(f"  {tool:<12} run {k + 1}: {wall:6.2f} s, exit {rc}, {n} rows{'' if good else '  <-- CHECK FAILED'}")
    mean = {t: sum(v) / len(v) for t, v in times.items()}
    floor = floors(families, args.repeats)
    ratio = mean["pyradiomics"] / mean["medfeat"]
    ratio_conv = mean["pyradiomics"] / (mean["medfeat"] + convert_s)
    print(f"\nwall time of the whole command, mean of {args.repeats}: PyRadiomics {mean['pyradiomics']:.2f} s, "
          f"medfeat {mean['medfeat']:.2f} s (+ {convert_s:.2f} s for the one-off settings conversion)")
    print(f"ratio PyRadiomics / medfeat: {ratio:.2f}x (target >= {TARGET_RATIO:g}x: "
          f"{'yes' if ratio >= TARGET_RATIO else 'NO'}); with the conversion counted: {ratio_conv:.2f}x")
    budget = mean["pyradiomics"] / TARGET_RATIO
    if floor:
        d, p = floor["dask"], floor["pool"]
        print(f"floors (bench/_cohort_floor.py, mean of {len(d)}; the target's budget is PyRadiomics / "
              f"{TARGET_RATIO:g} = {budget:.2f} s):")
        print(f"  dask: a {JOBS}-worker LocalCluster whose workers each extract a tiny synthetic volume with these "
              f"settings is warm {_mean(d, 'warm'):.2f} s after its interpreter starts (each worker's warm-up "
              f"{_mean(d, 'warmup'):.2f} s, in parallel), closed at {_mean(d, 'wall'):.2f} s; no file read")
        print(f"  pool: no Dask, a spawned {JOBS}-process pool mapping medfeat.extract over the CSV's rows (files "
              f"read) and one Parquet table: {_mean(p, 'wall'):.2f} s; no ledger, bundles, retries or report")
    result = {"pairs": len(rows), "jobs": JOBS, "commands": {"pyradiomics": pyr_cmd, "medfeat": mf_cmd},
              "params": xs.E2E_PARAMS, "families": families, "order": order, "wall_s": times, "mean_s": mean,
              "convert_s": convert_s, "ratio": ratio, "ratio_with_conversion": ratio_conv, "target": TARGET_RATIO,
              "checks": checks, "budget_s": budget, "floors": floor, "cpus": os.cpu_count(), "load_average_after": list(os.getloadavg())}
    (OUT / "results.json").write_text(json.dumps(result, indent=1))
    print(f"wrote {(OUT / 'results.json').relative_to(xs.ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
