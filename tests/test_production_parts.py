"""The parts backends stand on: a self-describing job (JobSpec, `medfeat job-run`), the run's
options and TOML config, the ledger's schema versions, and the batch systems' job scripts."""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import medfeat
from medfeat.errors import InputError
from medfeat.settings import Settings
from medfeat.production.backends import RunContext, get_backend
from medfeat.production.ledger import SCHEMA_VERSION, Ledger
from medfeat.production.options import BackendSpec, RunConfig
from medfeat.production.spec import JobSpec, make_spec
from medfeat.production.results import read_result
from medfeat.production.staging import Stage, build_bundle, sha256_bytes
from production_helpers import FAMILIES, SETTINGS, make_images, plan, plan_item


def test_settings_round_trip_through_a_dict():
    s = Settings.preset("ibsi-b").replace(families=("stat", "glcm"))
    d = s.to_dict()
    assert json.loads(json.dumps(d)) == d
    back = Settings.from_dict(d, name=s.name)
    assert back.replace(description=s.description) == s


def test_job_spec_round_trips_through_json():
    spec = make_spec("abc123", 7, 42, "s3://bucket/stage", "abc123/bundles/job-00007.tar", "f" * 64,
                     Settings.preset("default-2d").to_dict(), 12.5)
    again = JobSpec.from_json(spec.to_json())
    assert again == spec
    assert again.result == "abc123/results/job-00007/attempt-00042.arrow"
    assert again.report == "abc123/reports/attempt-00042.json" and again.name == "abc123/specs/attempt-00042.json"
    with pytest.raises(ValueError, match="lacks"):
        JobSpec.from_json(json.dumps({"run_id": "x"}))


def _staged_job(tmp_path: Path, n: int = 3, corrupt: bool = False) -> tuple[list[Path], Stage, JobSpec]:
    paths = make_images(tmp_path / "data", n)
    prod = plan(tmp_path / "run", tmp_path / "data", n)
    job_id = prod.ledger.jobs()[0]["job_id"]
    data, _ = build_bundle([plan_item(r) for r in prod.ledger.job_images(job_id)])
    sha = sha256_bytes(data)
    if corrupt:
        data = data[: len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:]
    prod.stage.put("b.tar", data)
    spec = make_spec(prod.run_id, job_id, 1, prod.stage.url, "b.tar", sha, prod.settings.to_dict())
    prod.stage.put(spec.name, spec.to_json().encode())
    return paths, prod.stage, spec


def test_job_run_runs_one_job_standalone(tmp_path):
    paths, stage, spec = _staged_job(tmp_path)
    r = subprocess.run([sys.executable, "-m", "medfeat", "job-run", stage.path(spec.name)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    report = json.loads(stage.get(spec.report))
    assert report["ok"] and report["report"]["n_images"] == 3 and report["report"]["attempt"] == 1
    assert json.loads(stage.get(spec.started))["pid"] == report["report"]["pid"]
    rows = {r["image"]: r for r in read_result(Path(stage.path(spec.result)).read_bytes()).to_pylist()}
    for p in paths:
        want = medfeat.extract(p, None, SETTINGS, families=FAMILIES)
        assert rows[str(p)]["cm_contrast_2d_avg"] == pytest.approx(want["cm_contrast_2d_avg"], rel=1e-12)


def test_job_run_reports_a_corrupt_bundle_and_exits_1(tmp_path):
    _, stage, spec = _staged_job(tmp_path, corrupt=True)
    r = subprocess.run([sys.executable, "-m", "medfeat", "job-run", stage.path(spec.name)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "does not match" in r.stderr
    report = json.loads(stage.get(spec.report))
    assert report == {**report, "ok": False, "kind": "corrupt"}


def test_job_run_with_an_unreadable_spec_exits_2(tmp_path):
    bad = tmp_path / "spec.json"
    bad.write_text("{not json")
    for target in (bad, tmp_path / "missing.json"):
        r = subprocess.run([sys.executable, "-m", "medfeat", "job-run", str(target)], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2
        assert r.stderr.count("\n") == 1 and str(target) in r.stderr and "Traceback" not in r.stderr


def test_run_config_from_toml_and_flags(tmp_path):
    cfg_file = tmp_path / "run.toml"
    cfg_file.write_text('[plan]\nimages_per_job = 50\n[backend]\nname = "slurm"\nmode = "jobs"\nworkers = "2:8"\n'
                        'queue = "short"\naws_secret_access_key = "hunter2"\njob_extra = ["--qos=low"]\n'
                        '[tail]\nspeculate_factor = 4.0\n[stage]\nendpoint_url = "http://127.0.0.1:8333"\n')
    cfg = RunConfig.load(cfg_file)
    assert (cfg.plan.images_per_job, cfg.backend.name, cfg.backend.mode, cfg.backend.size()) == (50, "slurm", "jobs",
                                                                                                    (2, 8))
    assert cfg.tail.speculate_factor == 4.0 and cfg.stage == {"endpoint_url": "http://127.0.0.1:8333"}
    assert cfg.backend.public_options() == {"queue": "short", "aws_secret_access_key": "***", "job_extra": ["--qos=low"]}
    nested = BackendSpec(options={"environment": {"AWS_SECRET_ACCESS_KEY": "x", "LANG": "C"}, "hosts": ["a"]})
    assert nested.public_options() == {"environment": {"AWS_SECRET_ACCESS_KEY": "***", "LANG": "C"}, "hosts": ["a"]}
    cfg.override(plan={"images_per_job": None}, tail={"speculate_factor": 2.5}, backend={"workers": "4"},
                 backend_options={"queue": "long", "account": None})
    assert (cfg.plan.images_per_job, cfg.tail.speculate_factor, cfg.backend.size()) == (50, 2.5, (4, 4))
    assert cfg.backend.options["queue"] == "long" and "account" not in cfg.backend.options
    cfg_file.write_text("[tale]\nx = 1\n")
    with pytest.raises(InputError, match="unknown tables"):
        RunConfig.load(cfg_file)
    cfg_file.write_text("[tail]\nspeculate_factr = 1\n")
    with pytest.raises(InputError, match="speculate_factr"):
        RunConfig.load(cfg_file)
    for bad in ("0", "3:2", "x"):
        with pytest.raises(InputError):
            BackendSpec(workers=bad).size()


def test_unknown_backend_or_mode_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="unknown backend"):
        get_backend("grid5000")
    ctx = RunContext(tmp_path, "r", str(tmp_path))
    with pytest.raises(InputError, match="mode 'jobs' is not available"):
        get_backend("local").make(BackendSpec("local", mode="jobs"), ctx)
    make_images(tmp_path / "data", 2)
    r = subprocess.run([sys.executable, "-m", "medfeat", "run", str(tmp_path / "data"), "-o", str(tmp_path / "r"),
                        "--backend", "nope"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown backend" in r.stderr and "Traceback" not in r.stderr


OLD_SCHEMA = """
CREATE TABLE run (id INTEGER PRIMARY KEY, created REAL, medfeat_version TEXT, dataset TEXT,
  dataset_fingerprint TEXT, settings TEXT, families TEXT, images_per_job INTEGER, stage_url TEXT);
CREATE TABLE sessions (session INTEGER PRIMARY KEY AUTOINCREMENT, started REAL, ended REAL, workers INTEGER,
  scheduler TEXT, planning_s REAL, submission_s REAL, submitted_jobs INTEGER);
CREATE TABLE jobs (job_id INTEGER PRIMARY KEY, n_images INTEGER, bundle TEXT, bundle_sha256 TEXT,
  bundle_bytes INTEGER, state TEXT, committed_attempt INTEGER, result TEXT, error TEXT);
CREATE TABLE images (job_id INTEGER, idx INTEGER, image TEXT, mask TEXT, PRIMARY KEY (job_id, idx));
CREATE TABLE attempts (attempt_id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER, session INTEGER, key TEXT,
  worker TEXT, host TEXT, pid INTEGER, submitted REAL, started REAL, staged_in REAL, computed REAL,
  staged_out REAL, finished REAL, outcome TEXT, error TEXT, result TEXT, n_images INTEGER, n_failed INTEGER,
  bytes_in INTEGER, bytes_out INTEGER);
CREATE TABLE events (at REAL, kind TEXT, job_id INTEGER, attempt_id INTEGER, detail TEXT);
INSERT INTO run VALUES (1, 0, '0.1.0', 'd', 'fp', '{}', '[]', 2, '/tmp/stage');
INSERT INTO sessions VALUES (1, 100, 110, 2, 'tcp://x', 1, 0.01, 1);
INSERT INTO jobs VALUES (1, 2, 'bundles/job-00001.tar', 'ab', 10, 'committed', 1, 'results/job-00001/attempt-1.parquet', NULL);
INSERT INTO images VALUES (1, 0, 'a.png', NULL), (1, 1, 'b.png', NULL);
INSERT INTO attempts VALUES (1, 1, 1, 'k', 'tcp://w', 'h', 5, 101, 102, 103, 106, 107, 108, 'committed', NULL,
  'results/job-00001/attempt-1.parquet', 2, 0, 10, 20);
"""


def test_a_ledger_from_medfeat_0_1_is_migrated_and_reports(tmp_path):
    db = sqlite3.connect(tmp_path / "ledger.sqlite")
    db.executescript(OLD_SCHEMA)
    db.close()
    led = Ledger(tmp_path)
    try:
        assert led.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        cols = {r[1] for r in led.db.execute("PRAGMA table_info(attempts)")}
        assert {"role", "staging_retries", "batch_id", "cpu_s", "rss_peak_mb"} <= cols
        assert led.run_info()["run_id"] is None and led.check_consistency() == []
    finally:
        led.close()
    from medfeat.report.metrics import run_metrics

    m = run_metrics(tmp_path)
    assert (m["jobs"], m["committed_jobs"], m["summed_running_time_s"], m["queue_wait_s"]) == (1, 1, 6.0, 1.0)
    assert m["backend"] == ""
    Ledger(tmp_path).close()  # opening again changes nothing
    assert sqlite3.connect(tmp_path / "ledger.sqlite").execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def _ctx(tmp_path):
    return RunContext(tmp_path, "r1", str(tmp_path / "stage"))


def test_slurm_job_script(tmp_path):
    from medfeat.production.backends.slurm import Slurm

    s = Slurm({"queue": "debug", "account": "rad", "walltime": "00:30:00", "memory": "2GB",
               "job_extra": ["--qos=short"]})
    lines = s.header("medfeat-r1", tmp_path, 5, frozenset({"node7", "node2"}))
    assert "#SBATCH --partition=debug" in lines and "#SBATCH --account=rad" in lines
    assert "#SBATCH --time=00:30:00" in lines and "#SBATCH --mem=2G" in lines and "#SBATCH --array=1-5" in lines
    assert "#SBATCH --exclude=node2,node7" in lines and lines[-1] == "#SBATCH --qos=short"
    assert s.parse_submit("4242\n", 3) == ["4242_1", "4242_2", "4242_3"] and s.parse_submit("17;c1\n", None) == ["17"]


def test_sge_job_script(tmp_path):
    from medfeat.production.backends.sge import GridEngine

    g = GridEngine({"queue": "all.q", "walltime": "1:00:00", "memory": "3G"})
    lines = g.header("medfeat-r1", tmp_path, 4, frozenset({"n1", "n2"}))
    assert "#$ -q all.q" in lines and "#$ -l h_rt=1:00:00" in lines and "#$ -l h_vmem=3G" in lines
    assert "#$ -t 1-4" in lines and "#$ -l h=!(n1|n2)" in lines
    assert g.parse_submit("311.1-4:1\n", 4) == ["311.1", "311.2", "311.3", "311.4"]


def test_htcondor_submit_file(tmp_path):
    from medfeat.production.backends.htcondor import HTCondor

    h = HTCondor({"memory": "2GB", "cores": 2, "job_extra": ['+ProjectName = "rad"']})
    assert h.header("medfeat-r1", tmp_path, 3, frozenset({"slow.example"})) == []
    script = tmp_path / "submission-00001.sh"
    script.write_text("#!/bin/bash\n")
    cmd = h.submit_command(script)
    sub = Path(cmd[-1]).read_text().splitlines()
    assert cmd[:2] == ["condor_submit", "-terse"] and sub[0] == f"executable = {script}"
    assert "request_memory = 2GB" in sub and "request_cpus = 2" in sub and "arguments = $(Process)" in sub
    assert 'requirements = (Machine != "slow.example")' in sub and '+ProjectName = "rad"' in sub
    assert sub[-1] == "queue 3"
    assert h.parse_submit("88.0 - 88.2\n", 3) == ["88.0", "88.1", "88.2"]


def test_jobs_mode_script_picks_its_spec_by_array_index(tmp_path):
    """The array script selects line N of its spec list: run it with the index set, no batch system."""
    from medfeat.production.backends.slurm import Slurm
    from medfeat.production.batch_executor import BatchExecutor

    ex = BatchExecutor(Slurm({}), BackendSpec("slurm", mode="jobs"), _ctx(tmp_path))
    ex.start(None)
    specs = [make_spec("r1", j, j, ex.stage.url, "b", "s", {}) for j in (1, 2, 3)]
    script = ex._script(specs, frozenset())
    text = script.read_text()
    probe = text.replace('exec $MEDFEAT job-run "$SPEC"', 'echo "$SPEC"')
    out = subprocess.run(["bash", "-c", probe], env={"SLURM_ARRAY_TASK_ID": "2", "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == ex._url(specs[1].name)


def _medfeat(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "medfeat", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_version_and_families_json():
    r = _medfeat("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"medfeat {medfeat.__version__}"
    r = _medfeat("families", "--json")
    rows = json.loads(r.stdout)
    assert {"family": "stat", "tag": "stat.mean", "ibsi_code": "Q4LE", "name": "Mean intensity",
            "per_aggregation": False} in rows
    assert {r["family"] for r in rows} >= {"stat", "glcm", "morph", "gift"}


def test_run_folder_problems_are_one_line_and_leave_nothing_behind(tmp_path):
    make_images(tmp_path / "data", 2)
    # an unreachable scheduler: one line, and no half-made run folder
    r = _medfeat("run", tmp_path / "data", "-o", tmp_path / "r1", "--scheduler", "tcp://127.0.0.1:9")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "cannot reach the Dask scheduler" in r.stderr and not (tmp_path / "r1").exists()
    # a run folder under a regular file
    (tmp_path / "afile").write_text("x")
    r = _medfeat("run", tmp_path / "data", "-o", tmp_path / "afile" / "run", "--workers", "1")
    assert r.returncode == 2 and "cannot make the run folder" in r.stderr and r.stderr.count("\n") == 1
    # a corrupt ledger
    (tmp_path / "r2").mkdir()
    (tmp_path / "r2" / "ledger.sqlite").write_bytes(b"this is not a database" * 100)
    r = _medfeat("resume", tmp_path / "r2")
    assert r.returncode == 2 and "cannot use the run's ledger" in r.stderr and "Traceback" not in r.stderr


def test_a_busy_run_folder_is_refused(tmp_path):
    make_images(tmp_path / "data", 2)
    prod = plan(tmp_path / "run", tmp_path / "data", 1)
    prod.ledger.lock()  # this process is running the folder
    try:
        r = _medfeat("resume", tmp_path / "run", "--workers", "1")
        assert r.returncode == 2 and "busy" in r.stderr and r.stderr.count("\n") == 1
    finally:
        prod.ledger.unlock()


def test_ctrl_c_finishes_the_ledger_and_says_how_to_resume(tmp_path):
    import signal
    import time

    from production_helpers import check_run

    paths = make_images(tmp_path / "data", 60, size=96)
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "medfeat", "run", tmp_path / "data", "-o", run_dir, "--workers", "2",
                             "--images-per-job", "1", "--settings", SETTINGS, "--families", ",".join(FAMILIES),
                             "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if (run_dir / "ledger.sqlite").exists():
            led = Ledger(run_dir, readonly=True)
            try:
                done = sum(1 for j in led.jobs() if j["state"] == "committed")
            finally:
                led.close()
            if done >= 2:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"medfeat resume {run_dir}" in lines[0] and "Traceback" not in err
    led = Ledger(run_dir)
    try:
        assert led.check_consistency() == [] and not [a for a in led.attempts() if a["outcome"] == "running"]
        assert 2 <= sum(1 for j in led.jobs() if j["state"] == "committed") < 60
    finally:
        led.close()
    r = _medfeat("resume", run_dir, "--workers", "2", "--quiet", timeout=300)
    assert r.returncode == 0, r.stderr
    check_run(run_dir, paths, compare=4)


def test_an_interrupt_during_a_submission_leaves_no_attempt_running(tmp_path, monkeypatch):
    """Ctrl-C can land between an attempt's ledger row and its hand-over to the executor: the
    session still ends every attempt it started, and a resume completes the run."""
    from medfeat.production.dask_executor import DaskExecutor
    from production_helpers import check_run, produce

    paths = make_images(tmp_path / "data", 8)
    real_submit, calls = DaskExecutor.submit, []

    def interrupted_third_submit(self, spec, *args, **kwargs):
        calls.append(spec.attempt)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_submit(self, spec, *args, **kwargs)

    monkeypatch.setattr(DaskExecutor, "submit", interrupted_third_submit)
    prod = plan(tmp_path / "run", tmp_path / "data", 1)
    with pytest.raises(KeyboardInterrupt):
        produce(prod, workers=1)
    led = Ledger(tmp_path / "run")
    try:
        attempts = {a["attempt_id"]: a for a in led.attempts()}
        assert attempts[calls[2]]["outcome"] == "cancelled" and attempts[calls[2]]["key"] is None
        assert not [a for a in attempts.values() if a["outcome"] == "running"]
        assert led.check_consistency() == []
    finally:
        led.close()
    monkeypatch.setattr(DaskExecutor, "submit", real_submit)
    produce(plan(tmp_path / "run", None, 1), workers=1)
    check_run(tmp_path / "run", paths, compare=2)


def test_feature_tables_carry_their_provenance(tmp_path):
    from medfeat.tables import read_provenance
    from production_helpers import produce

    make_images(tmp_path / "data", 3)
    out = tmp_path / "f.csv"
    r = _medfeat("extract", *sorted((tmp_path / "data").iterdir()), "--settings", SETTINGS, "--families", "stat,glcm",
                 "-o", out)
    assert r.returncode == 0, r.stderr
    prov = read_provenance(out)
    assert prov["medfeat_version"] == medfeat.__version__ and prov["settings"]["families"] == ["stat", "glcm"]
    assert Settings.from_dict(prov["settings"]).bin_number == Settings.preset(SETTINGS).bin_number
    prod = plan(tmp_path / "run", tmp_path / "data", 2)
    produce(prod, workers=1)
    prov = read_provenance(tmp_path / "run" / "features.parquet")
    assert prov["run_id"] == prod.run_id and prov["dataset"] == str(tmp_path / "data")
    assert prov["settings"] == prod.settings.to_dict()


def test_every_option_of_every_command_has_help():
    import typer.main

    from medfeat.cli import app

    missing = [(name, getattr(p, "opts", p.name)) for name, sub in typer.main.get_command(app).commands.items()
               for p in sub.params if not (getattr(p, "help", None) or "").strip()]
    assert missing == []


def test_automatic_job_size_keeps_every_worker_busy(tmp_path):
    from medfeat.production.engine import Production
    from medfeat.production.plan import auto_images_per_job
    from production_helpers import make_images

    assert auto_images_per_job(30, 2) == 4          # 8 jobs, not one job of 30 for two workers
    assert auto_images_per_job(22250, 2) == 250     # the seed production: 89 jobs of 250
    assert auto_images_per_job(5, 16) == 1 and auto_images_per_job(0, 2) == 1
    make_images(tmp_path / "data", 30, size=16)
    prod = Production(tmp_path / "run", str(tmp_path / "data"), "default-2d", ("stat",), workers_hint=2)
    try:
        assert prod.info["images_per_job"] == 4 and len(prod.ledger.jobs()) == 8
    finally:
        prod.ledger.close()
    # resuming without a size keeps the planned one; another explicit size is refused
    from medfeat.production.options import PlanOptions

    again = Production(tmp_path / "run", str(tmp_path / "data"))
    again.ledger.close()
    with pytest.raises(InputError, match="planned with 4 images per job"):
        Production(tmp_path / "run", str(tmp_path / "data"), plan=PlanOptions(images_per_job=10))


def test_result_files_round_trip_as_arrow_and_parquet_results_of_earlier_runs_still_read():
    import io

    import pyarrow as pa

    from medfeat.production.results import read_result, read_result_schema, result_bytes

    table = pa.table({"image": ["a.ppm", "b.ppm"], "gift_hist_0": [0.25, None], "error": ["", "b.ppm: bad"]})
    data = result_bytes(table)
    assert data[:6] == b"ARROW1" and read_result(data).equals(table)
    assert read_result_schema(io.BytesIO(data)) == table.schema
    old = io.BytesIO()
    pq.write_table(table, old)  # a result written by medfeat before results were Arrow files
    assert read_result(old.getvalue()).equals(table)
    assert read_result_schema(io.BytesIO(old.getvalue())) == table.schema


def test_reference_and_copy_bundles_give_the_same_table(tmp_path):
    from production_helpers import produce

    paths = make_images(tmp_path / "data", 7, bad=(2,))
    tables = {}
    for mode in ("copy", "reference"):
        prod = plan(tmp_path / mode, tmp_path / "data", 3)
        produce(prod, workers=1, bundles=mode)
        names = [j["bundle"] for j in prod.ledger.jobs()]
        assert all(n.endswith(".ref.tar") == (mode == "reference") for n in names), names
        tables[mode] = sorted(pq.read_table(tmp_path / mode / "features.parquet").to_pylist(), key=lambda r: r["image"])
    assert len(tables["copy"]) == len(paths)
    for a, b in zip(tables["copy"], tables["reference"]):
        assert a.keys() == b.keys() and a["sha256"] == b["sha256"] and a["error"] == b["error"]
        for k, v in a.items():
            assert b[k] == (pytest.approx(v, rel=1e-12, nan_ok=True) if isinstance(v, float) else v), k
    assert "img-0002.pgm" in tables["reference"][2]["error"]


def test_a_reference_bundle_lists_paths_and_refuses_inputs_changed_or_removed_since(tmp_path):
    import io
    import tarfile

    from medfeat.production.job import extract_items
    from medfeat.production.staging import unpack_bundle, write_bundle

    paths = make_images(tmp_path / "data", 3)
    prod = plan(tmp_path / "run", tmp_path / "data", 3)
    items = [plan_item(r) for r in prod.ledger.job_images(prod.ledger.jobs()[0]["job_id"])]
    buf = io.BytesIO()
    sha, n, _ = write_bundle(buf, items, reference=True)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        assert tar.getnames() == ["manifest.json"]  # no image inside: they are read in place
    manifest = unpack_bundle(buf.getvalue(), tmp_path / "scratch", sha)
    assert [it["image_path"] for it in manifest["items"]] == [str(p.resolve()) for p in paths]
    assert all(it["image_stat"][0][1] == p.stat().st_size for it, p in zip(manifest["items"], paths))
    with paths[1].open("ab") as fh:  # changed after the bundle was made
        fh.write(b"\0")
    paths[2].unlink()  # removed
    res = extract_items(manifest, tmp_path / "scratch", Settings.resolve(SETTINGS), FAMILIES, 0)
    assert res[0].error == "" and res[0].sha256 == medfeat.read_image(paths[0]).sha256
    assert res[1].error == f"{paths[1]}: changed since the run was planned (files, sizes or modification times); " \
                           "start a new run folder"
    assert res[2].error == f"{paths[2]}: no longer there (removed since the run was planned)"


def test_bundles_option_is_checked():
    from medfeat.production.options import TailPolicy

    with pytest.raises(InputError, match="'symlink' is not one of auto, copy, reference"):
        TailPolicy(bundles="symlink")


def test_a_complete_run_folds_its_results_into_the_table_and_a_resume_keeps_it(tmp_path):
    from production_helpers import produce

    paths = make_images(tmp_path / "data", 5)
    run_dir = tmp_path / "run"
    prod = plan(run_dir, tmp_path / "data", 2)
    produce(prod, workers=1)
    stage_files = [p for p in Path(prod.stage.root).rglob("*") if p.is_file()]
    assert stage_files == []  # bundles and results gone: the folder holds the table, ledger and report
    before = pq.read_table(run_dir / "features.parquet")
    assert sorted(before["image"].to_pylist()) == sorted(str(p) for p in paths)
    m = produce(plan(run_dir, None, 2), workers=1)  # nothing to do: the folded table stands, no job reruns
    assert m["attempts"] == 3 and pq.read_table(run_dir / "features.parquet").equals(before)
    (run_dir / "features.parquet").unlink()  # the table lost after folding: every job runs again
    m = produce(plan(run_dir, None, 2), workers=1)
    assert m["attempts"] == 6 and m["committed_jobs"] == 3
    assert sorted(pq.read_table(run_dir / "features.parquet")["image"].to_pylist()) == sorted(str(p) for p in paths)


def test_wide_table_keeps_each_value_in_its_column_whatever_the_row_order():
    from medfeat.columns import Column
    from medfeat.tables import ImageResult, wide_table

    cols = [Column(name, "", "", "") for name in ("a", "b", "c")]
    rows = [ImageResult("in-order", "h1", {"a": 1.0, "b": 2.0, "c": 3.0}),
            ImageResult("reordered", "h2", {"c": 6.0, "a": 4.0, "b": 5.0}),
            ImageResult("with-none", "h3", {"a": 7.0, "b": None, "c": 9.0}),
            ImageResult("lacks-c", "h4", {"a": 10.0, "b": 11.0}),
            ImageResult("extra", "h5", {"a": 12.0, "b": 13.0, "z": 99.0}),
            ImageResult("failed", "", error="failed: unreadable")]
    t = wide_table(rows, cols)
    assert t.column_names == ["image", "sha256", "error", "note", "a", "b", "c"]
    assert t["a"].to_pylist() == [1.0, 4.0, 7.0, 10.0, 12.0, None]
    assert t["b"].to_pylist() == [2.0, 5.0, None, 11.0, 13.0, None]
    assert t["c"].to_pylist() == [3.0, 6.0, 9.0, None, None, None]
    assert t["error"].to_pylist() == ["", "", "", "", "", "failed: unreadable"]


def test_local_workers_run_without_the_dask_profiler_and_one_task_each():
    """The local backend's workers get medfeat's worker config (no statistical profiler: ~3.6% of a
    gift job's time) and its scheduler one task per thread; the client's own config is untouched."""
    import dask.config

    from medfeat.production.backends import get_backend
    from medfeat.production.options import BackendSpec

    ex = get_backend("local").make(BackendSpec("local", workers=1), None)
    try:
        seen = ex.client.run(lambda: __import__("dask").config.get("distributed.worker.profile.enabled"))
        assert list(seen.values()) == [False]
        saturation = ex.client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.WORKER_SATURATION)
        assert saturation == 1.0
    finally:
        ex.close()
    assert dask.config.get("distributed.worker.profile.enabled") is True
