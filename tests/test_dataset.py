"""medfeat.dataset: the production dataset generator (real images from installed wheels, no network)."""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from medfeat import dataset as D
from medfeat.errors import InputError

JOBS, PER_JOB, SIZE = 3, 10, 256
HEADER = b"P6\n256 256\n255\n"
FILE_BYTES = 15 + 256 * 256 * 3  # 196,623, as in the 2009 production


def _no_network_no_downloads(mp: pytest.MonkeyPatch) -> None:
    """Make any socket connection or pydicom test-data download fail loudly."""

    def refuse(*_a, **_k):
        raise AssertionError("medfeat.dataset must not touch the network or download test data")

    mp.setattr(socket.socket, "connect", refuse)
    mp.setattr(socket, "create_connection", refuse)
    import pydicom.data
    import pydicom.data.data_manager as dm

    for mod in (pydicom.data, dm):
        for name in ("get_testdata_file", "get_testdata_files", "fetch_data_files"):
            if hasattr(mod, name):
                mp.setattr(mod, name, refuse)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The same small dataset twice (determinism) and once with another seed, built offline."""
    root = tmp_path_factory.mktemp("datasets")
    with pytest.MonkeyPatch.context() as mp:
        _no_network_no_downloads(mp)
        D._CATALOGUE.clear()  # discovery and decoding must happen under the guard too
        a = D.make_dataset(root / "a", jobs=JOBS, images_per_job=PER_JOB, size=SIZE, seed=0)
        b = D.make_dataset(root / "b", jobs=JOBS, images_per_job=PER_JOB, size=SIZE, seed=0)
        c = D.make_dataset(root / "c", jobs=JOBS, images_per_job=PER_JOB, size=SIZE, seed=1)
    return a, b, c


def _rows(info) -> list[dict]:
    rows = []
    for m in info.manifests:
        with open(m, newline="") as fh:
            for r in csv.DictReader(fh):
                r["path"] = m.parent / r["file"]
                rows.append(r)
    return rows


def _pixels(path: Path) -> np.ndarray:
    data = path.read_bytes()
    head = b"P6\n%d %d\n255\n" % (SIZE, SIZE)
    assert data.startswith(head)
    return np.frombuffer(data, dtype=np.uint8, offset=len(head)).reshape(SIZE, SIZE, 3)


def _is_colour(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any())


def test_layout_and_counts(made):
    a, _, _ = made
    jobs = sorted(p for p in a.out_dir.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == [f"job-{j:05d}" for j in range(JOBS)]
    for j in jobs:
        images = sorted(j.glob("*.ppm"))
        assert [p.name for p in images] == [f"img-{k:05d}.ppm" for k in range(PER_JOB)]
        assert (j / "manifest.csv").is_file()
    assert a.n_images == JOBS * PER_JOB == len(a.paths)
    assert a.paths == sorted(a.paths)
    assert all(p.is_file() for p in a.paths)


def test_files_are_binary_ppm_of_the_production_size(made):
    a, _, _ = made
    for p in a.paths:
        data = p.read_bytes()
        assert len(data) == FILE_BYTES
        assert data[:15] == HEADER
    try:
        from medfeat.io.netpbm import read_netpbm
    except ImportError:
        return
    img = read_netpbm(a.paths[0])
    assert img.array.shape == (1, SIZE, SIZE, 3) and img.array.dtype == np.uint8


def test_every_file_is_distinct(made):
    a, _, _ = made
    digests = {hashlib.sha256(p.read_bytes()).hexdigest() for p in a.paths}
    assert len(digests) == a.n_images


def test_manifest_matches_files(made):
    a, _, _ = made
    rows = _rows(a)
    assert len(rows) == a.n_images
    assert sorted(r["path"] for r in rows) == a.paths
    assert list(rows[0].keys())[:-1] == list(D.MANIFEST_FIELDS)
    site_dirs = {}
    for r in rows:
        data = r["path"].read_bytes()
        assert r["sha256"] == hashlib.sha256(data).hexdigest()
        assert int(r["bytes"]) == len(data)
        assert r["source_package"] in {"pydicom", "pydicom-data"}
        assert r["modality"] and r["window"] and r["jpeg_quality"]
        for key in ("rotation_deg", "gamma", "noise_sigma", "crop_side", "scale"):
            assert np.isfinite(float(r[key]))
        assert 40 <= int(r["jpeg_quality"]) <= 95
        assert int(r["frame"]) < int(r["source_frames"])
        # the recorded source is a file inside the installed package
        top = r["source_path"].split("/")[0]
        if top not in site_dirs:
            spec = importlib.util.find_spec(top)
            site_dirs[top] = Path(next(iter(spec.submodule_search_locations))).parent
        assert (site_dirs[top] / r["source_path"]).is_file()
        assert r["colour_mode"] in {"grey", "source", "pseudo"}
        assert bool(r["colormap"]) == (r["colour_mode"] == "pseudo")
        assert int(r["colour"]) == _is_colour(_pixels(r["path"]))


def test_colour_share_and_modalities(made):
    a, _, _ = made
    colour = [_is_colour(_pixels(p)) for p in a.paths]
    assert sum(colour) / len(colour) >= 0.20
    assert a.colour_fraction == pytest.approx(sum(colour) / len(colour))
    rows = _rows(a)
    # real colour sources (ultrasound RGB / YBR / palette) come first
    assert sum(r["colour_mode"] == "source" for r in rows) >= sum(r["colour_mode"] == "pseudo" for r in rows)
    assert len({r["modality"] for r in rows}) > 1
    assert "US" in {r["modality"] for r in rows}


def test_summary(made):
    a, _, _ = made
    s = json.loads((a.out_dir / "dataset.json").read_text())
    assert (s["jobs"], s["images_per_job"], s["size"], s["seed"]) == (JOBS, PER_JOB, SIZE, 0)
    assert s["n_images"] == JOBS * PER_JOB and s["file_bytes"] == FILE_BYTES
    assert s["colour_fraction"] >= 0.2
    assert sum(s["modalities"].values()) == s["n_images"]
    assert sum(src["images"] for src in s["sources"]) == s["n_images"]
    assert s["manifests"] == [f"job-{j:05d}/manifest.csv" for j in range(JOBS)]


def test_deterministic(made):
    a, b, _ = made
    for pa, pb in zip(a.paths, b.paths):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    for ma, mb in zip(a.manifests, b.manifests):
        assert ma.read_bytes() == mb.read_bytes()
    assert (a.out_dir / "dataset.json").read_bytes() == (b.out_dir / "dataset.json").read_bytes()


def test_other_seed_gives_other_files(made):
    a, _, c = made
    da = {hashlib.sha256(p.read_bytes()).hexdigest() for p in a.paths}
    dc = {hashlib.sha256(p.read_bytes()).hexdigest() for p in c.paths}
    assert not da & dc


def test_size_64(tmp_path):
    info = D.make_dataset(tmp_path / "s", jobs=1, images_per_job=6, size=64, seed=3)
    head = b"P6\n64 64\n255\n"
    for p in info.paths:
        data = p.read_bytes()
        assert data.startswith(head)
        assert len(data) == len(head) + 64 * 64 * 3
    assert len({p.read_bytes() for p in info.paths}) == 6


def test_works_with_pydicom_test_files_only(tmp_path, monkeypatch):
    """Without pydicom-data (and whatever decoders are missing) pydicom's own files suffice."""
    _no_network_no_downloads(monkeypatch)
    monkeypatch.setattr(D, "PACKAGE_FOLDERS", D.PACKAGE_FOLDERS[:1])
    sources = D.list_sources()
    assert sources and {s.package for s in sources} == {"pydicom"}
    assert any(s.colour for s in sources) and len({s.modality for s in sources}) > 1
    info = D.make_dataset(tmp_path / "p", jobs=2, images_per_job=10, size=SIZE, seed=5)
    rows = _rows(info)
    assert {r["source_package"] for r in rows} == {"pydicom"}
    assert len({r["sha256"] for r in rows}) == 20
    assert sum(_is_colour(_pixels(p)) for p in info.paths) >= 4
    assert len({r["modality"] for r in rows}) > 1


def test_works_without_any_compressed_decoder(tmp_path, monkeypatch):
    """Sources that cannot be decoded (no pylibjpeg, say) are skipped and listed, not fatal."""
    import pydicom

    decode = D._decode

    def native_only(path, frames):
        ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
        if ts.is_compressed:
            raise RuntimeError(f"no decoder for {ts.name}")
        return decode(path, frames)

    monkeypatch.setattr(D, "_decode", native_only)
    monkeypatch.setattr(D, "_CATALOGUE", {})  # do not leak this poorer catalogue to other tests
    monkeypatch.setattr(D, "PACKAGE_FOLDERS", D.PACKAGE_FOLDERS[:1])
    info = D.make_dataset(tmp_path / "n", jobs=1, images_per_job=10, size=64, seed=0)
    assert info.skipped_sources and all("no decoder" in s["reason"] for s in info.skipped_sources)
    assert json.loads(info.summary.read_text())["sources_skipped"] == info.skipped_sources
    rows = _rows(info)
    assert {"CT", "MR", "US"} <= {s.modality for s in D.list_sources()}
    assert len({r["sha256"] for r in rows}) == 10
    assert info.colour_fraction >= 0.2


def test_sources_are_images_not_rt_or_seg_objects():
    sources = D.list_sources()
    assert sources
    assert not {s.modality for s in sources} & {"RTSTRUCT", "RTDOSE", "RTPLAN", "SEG", "SR", "ECG", "OT"}
    # re-encodings of one picture are used once
    assert len({s.path.rsplit("/", 1)[-1] for s in sources}) == len(sources)


def test_collisions_are_perturbed_and_recorded(tmp_path, monkeypatch):
    """Force every image onto identical parameters: the sha256 check must still make them distinct."""
    draw = D._draw_params
    monkeypatch.setattr(D, "_draw_params", lambda rng, pool, size: draw(np.random.default_rng(7), pool, size))
    monkeypatch.setattr(D, "_colour_slot", lambda g, offset: False)
    monkeypatch.setattr(D, "PSEUDO_SHARE", 0.0)
    info = D.make_dataset(tmp_path / "c", jobs=1, images_per_job=5, size=64, seed=0)
    rows = _rows(info)
    assert len({r["sha256"] for r in rows}) == 5
    assert [int(r["collision_retries"]) > 0 for r in rows] == [False, True, True, True, True]
    assert info.n_collisions == 4
    assert json.loads(info.summary.read_text())["collisions_resolved"] == 4


def test_rerun_replaces_an_earlier_dataset(tmp_path):
    out = tmp_path / "r"
    D.make_dataset(out, jobs=2, images_per_job=4, size=32)
    info = D.make_dataset(out, jobs=1, images_per_job=3, size=32)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "dataset.json", "job-00000/img-00000.ppm", "job-00000/img-00001.ppm", "job-00000/img-00002.ppm",
        "job-00000/manifest.csv"]
    assert info.n_images == 3


def test_bad_arguments(tmp_path):
    with pytest.raises(InputError):
        D.make_dataset(tmp_path / "x", jobs=0, images_per_job=1)
    with pytest.raises(InputError):
        D.make_dataset(tmp_path / "x", jobs=1, images_per_job=1, seed=-1)
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError):
        D.make_dataset(tmp_path / "foreign", jobs=1, images_per_job=1)
    assert (tmp_path / "foreign" / "notes.txt").read_text() == "keep me"
