"""A few hundred cases of `bench/fuzz.py` on every test run: damaged files of every format, odd settings,
PyRadiomics parameters, CSV cohorts and image/mask/voxel-size combinations must each end in a value or
one single-line InputError. The seeds are fixed, so a failure here is reproducible with
``bench/fuzz.py TARGET --n N --seed S``; each bug the fuzzer found has its own test as well."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fuzz():
    spec = importlib.util.spec_from_file_location("medfeat_bench_fuzz", ROOT / "bench" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("target, n, seed", [("readers", 300, 11), ("settings", 300, 12), ("pyradiomics", 300, 13),
                                             ("csv", 200, 14), ("masks", 200, 15), ("rtstruct", 40, 16)])
def test_fuzzed_inputs_end_in_a_value_or_one_line(tmp_path, target, n, seed):
    if target == "rtstruct":
        from conftest import require_shared

        require_shared("data", "sts", "dicom", "STS_002", "PET")
    findings = _fuzz().run_target(target, n, seed, tmp_path, timeout=60.0)
    assert findings == {}, "\n".join(f"{k}: {v['count']} (first: {v['example']})\n{v['error']}" for k, v in findings.items())


def test_the_fuzzer_reports_what_is_not_an_input_error(tmp_path, monkeypatch):
    """The harness itself: an exception other than InputError, and a message over two lines, are findings."""
    fuzz = _fuzz()
    from medfeat.errors import InputError

    def target(n, rng, work):
        def boom():
            raise KeyError("x")

        class TwoLines(InputError):
            def __str__(self):
                return "a\nb"

        def two():
            raise TwoLines("f", "r")
        yield "boom", boom, b"", ".txt"
        yield "two", two, b"", ".txt"
        yield "fine", lambda: None, b"", ".txt"
    monkeypatch.setitem(fuzz.TARGETS, "probe", target)
    findings = fuzz.run_target("probe", 3, 0, tmp_path)
    assert set(findings) == {"KeyError in boom", "InputError over several lines"}
