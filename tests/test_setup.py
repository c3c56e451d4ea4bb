"""`make demo` / `make test` on a machine whose Python cannot make a venv: one line saying what to
install, and no half-made .venv left to break the next attempt."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_a_python_without_venv_gets_one_line_and_no_venv(tmp_path):
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("")
    fake = tmp_path / "python3"  # a Python whose venv/ensurepip import fails, as Debian's without python3-venv
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    r = subprocess.run(["make", f"PYTHON={fake}", "test"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    said = [ln for ln in r.stderr.splitlines() if ln.startswith("make: ") and "***" not in ln]
    assert len(said) == 1 and "python3-venv" in said[0]
    assert not (tmp_path / ".venv").exists()


def test_the_license_matches_pyproject():
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["license"] == "MIT" and (ROOT / "LICENSE").read_text().startswith("MIT License")
