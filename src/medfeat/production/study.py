"""Performance studies: the same production at every point of a grid (workers x images per job x
repeats), each in its own run folder, resumably.

The 2009 production's regret was that "more runs should have been carried out -- with different
numbers of worker nodes"; a study is that, in one command (``medfeat study``). Every point is a
complete, ordinary run (``STUDY/runs/w<W>-ipj<K>-r<R>``: its own ledger, stage prefix and feature
table), timed as a user would time it: planning, the cluster's start-up and the feature table
included. A point whose run is complete is not run again; one that was interrupted is resumed. What
a study found is analysed by :mod:`medfeat.report.studies`.
"""
from __future__ import annotations

import itertools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from medfeat.errors import InputError
from medfeat.production.options import RunConfig

STUDY_FILE = "study.json"


@dataclass(frozen=True)
class StudyPoint:
    """One run of a study: its grid coordinates and its folder name."""

    workers: int
    images_per_job: int
    repeat: int

    @property
    def name(self) -> str:
        return f"w{self.workers}-ipj{self.images_per_job}-r{self.repeat}"


@dataclass
class StudyPlan:
    """What a study runs: the dataset, the grid, and what every run shares."""

    dataset: str
    workers: list[int]
    images_per_job: list[int]
    repeat: int = 1
    settings: str | None = None
    families: list[str] | None = None
    backend: str = "local"
    mode: str = "workers"
    backend_options: dict = field(default_factory=dict)

    def points(self) -> list[StudyPoint]:
        """Every run, repeats innermost-last so that the first pass covers the whole grid once."""
        return [StudyPoint(w, k, r) for r, k, w in itertools.product(range(1, self.repeat + 1), self.images_per_job,
                                                                     self.workers)]

    def check(self) -> None:
        if not self.workers or any(w < 1 for w in self.workers):
            raise InputError("--workers", f"needs worker counts >= 1, not {self.workers}")
        if not self.images_per_job or any(k < 1 for k in self.images_per_job):
            raise InputError("--images-per-job", f"needs sizes >= 1, not {self.images_per_job}")
        if self.repeat < 1:
            raise InputError("--repeat", f"must be >= 1, not {self.repeat}")


def parse_counts(text: str | None, what: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]`` (sorted, unique); one-line error otherwise."""
    if text is None:
        return []
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise InputError(what, f"must be comma-separated whole numbers, not {text!r}") from None
    if not values or values[0] < 1:
        raise InputError(what, f"must be comma-separated numbers >= 1, not {text!r}")
    return values


def run_complete(run_dir: Path) -> bool:
    """A point whose run has its feature table and no job left to run."""
    from medfeat.production.ledger import LEDGER_NAME, Ledger

    if not (run_dir / LEDGER_NAME).exists() or not (run_dir / "features.parquet").exists():
        return False
    led = Ledger(run_dir, readonly=True)
    try:
        return all(j["state"] in ("committed", "failed") for j in led.jobs())
    finally:
        led.close()


def _check_same_study(study_dir: Path, plan: StudyPlan) -> None:
    path = study_dir / STUDY_FILE
    if not path.exists():
        return
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable study file: {exc}") from None
    same = {k: before.get(k) for k in ("dataset", "settings", "families", "backend", "mode")}
    now = {k: asdict(plan)[k] for k in same}
    if same != now:
        diff = ", ".join(f"{k} {same[k]!r} -> {now[k]!r}" for k in same if same[k] != now[k])
        raise InputError(study_dir, f"holds a study of something else ({diff}); use another folder")


def run_study(study_dir: str | Path, plan: StudyPlan, *, tail=None,
              on_point: Callable[[StudyPoint, str, float], None] | None = None) -> list[tuple[StudyPoint, Path]]:
    """Run every point of ``plan`` not yet complete in ``study_dir``; returns every point's run folder.

    ``on_point(point, state, seconds)`` is told of each point: ``"done"`` (already complete),
    ``"ran"`` or ``"resumed"``.
    """
    from medfeat.production.engine import Production

    study_dir = Path(study_dir)
    plan.check()
    _check_same_study(study_dir, plan)
    study_dir.mkdir(parents=True, exist_ok=True)
    known = json.loads((study_dir / STUDY_FILE).read_text()) if (study_dir / STUDY_FILE).exists() else {}
    grid = asdict(plan)
    # a later call may widen the grid (more workers, more repeats): the file keeps the union
    for key in ("workers", "images_per_job"):
        grid[key] = sorted(set(grid[key]) | set(known.get(key, [])))
    grid["repeat"] = max(grid["repeat"], known.get("repeat", 0))
    grid["backend_options"] = {k: v for k, v in plan.backend_options.items()
                               if not any(w in k for w in ("secret", "password", "token", "key"))}
    (study_dir / STUDY_FILE).write_text(json.dumps(grid, indent=1))
    out = []
    for point in plan.points():
        run_dir = study_dir / "runs" / point.name
        if run_complete(run_dir):
            out.append((point, run_dir))
            if on_point:
                on_point(point, "done", 0.0)
            continue
        resumed = run_dir.exists()
        cfg = RunConfig()
        cfg.override(plan={"images_per_job": point.images_per_job},
                     backend={"name": plan.backend, "mode": plan.mode, "workers": str(point.workers)},
                     backend_options=plan.backend_options)
        t0 = time.time()
        prod = Production(run_dir, plan.dataset if not resumed else None,
                          plan.settings if not resumed else None,
                          tuple(plan.families) if plan.families and not resumed else None, cfg.plan)
        ex = prod.executor(cfg.backend)
        try:
            prod.run(ex, tail or cfg.tail, since=t0)
        finally:
            ex.close()
        out.append((point, run_dir))
        if on_point:
            on_point(point, "resumed" if resumed else "ran", time.time() - t0)
    return out


def study_points(study_dir: str | Path) -> list[tuple[StudyPoint, Path]]:
    """The runs a study folder holds (complete or not), by their folder names."""
    out = []
    for run_dir in sorted((Path(study_dir) / "runs").glob("w*-ipj*-r*")):
        try:
            w, k, r = run_dir.name[1:].replace("-ipj", " ").replace("-r", " ").split()
            out.append((StudyPoint(int(w), int(k), int(r)), run_dir))
        except ValueError:
            continue
    return out


def _unused(_: Iterable) -> None:  # pragma: no cover - keeps typing imports honest
    pass
