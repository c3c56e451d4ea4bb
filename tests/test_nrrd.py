"""NRRD reader: round trips through pynrrd-written files, geometry against NIfTI, and hostile files."""
from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import math
import subprocess
import sys
import time
import tracemalloc

import nibabel as nib
import nrrd
import numpy as np
import pytest

import medfeat
from medfeat.errors import InputError
from medfeat.io import detect_format, read_image
from medfeat.io.geometry import patient_to_index
from medfeat.io.nrrd import read_nrrd

rng = np.random.default_rng(7)


def write(path, arr, header=None, **kw):
    nrrd.write(str(path), arr, header or {}, **kw)
    return path


# --- values and axis order -------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["raw", "gzip", "bzip2"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_3d_round_trip_keeps_values_dtype_and_axis_order(tmp_path, encoding, dtype):
    arr = (rng.random((4, 5, 6)) * 100).astype(dtype)  # pynrrd's default index order: (x, y, z)
    p = write(tmp_path / "a.nrrd", arr, {"encoding": encoding})
    img = read_image(p)
    assert img.array.shape == (6, 5, 4) and img.array.dtype == dtype
    np.testing.assert_array_equal(img.array, arr.transpose(2, 1, 0))
    assert img.array.flags.writeable and img.array.flags.c_contiguous
    assert img.spacing == (1.0, 1.0, 1.0) and img.origin == (0.0, 0.0, 0.0)
    assert img.meta["format"] == "nrrd" and img.meta["encoding"] == encoding
    assert img.source == str(p) and img.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


def test_c_order_file_and_direct_reader(tmp_path):
    zyx = rng.integers(-1000, 1000, size=(3, 4, 5)).astype(np.int16)
    p = write(tmp_path / "c.nrrd", zyx, index_order="C")
    np.testing.assert_array_equal(read_image(p).array, zyx)
    np.testing.assert_array_equal(read_nrrd(p).array, zyx)
    np.testing.assert_array_equal(read_nrrd(p, p.read_bytes()).array, zyx)


def test_2d_becomes_one_slice(tmp_path):
    xy = rng.integers(0, 255, size=(7, 9)).astype(np.uint8)
    p = write(tmp_path / "s.nrrd", xy, {"spacings": [0.5, 0.8]})
    img = read_image(p)
    assert img.array.shape == (1, 9, 7)
    np.testing.assert_array_equal(img.array[0], xy.T)
    assert img.spacing == (1.0, 0.8, 0.5)


def test_big_endian_data_is_read_in_native_order(tmp_path):
    arr = rng.integers(-30000, 30000, size=(4, 3, 2)).astype(">i2")
    for enc in ("raw", "gzip"):
        p = write(tmp_path / f"be_{enc}.nrrd", arr, {"encoding": enc})
        assert b"endian: big" in p.read_bytes()[:400]
        img = read_image(p)
        assert img.array.dtype == np.dtype("int16") and img.array.dtype.isnative
        np.testing.assert_array_equal(img.array, arr.transpose(2, 1, 0))


def test_rgb_colour_axis(tmp_path):
    rgb = rng.integers(0, 255, size=(3, 4, 5)).astype(np.uint8)  # (colour, x, y)
    p = write(tmp_path / "rgb.nrrd", rgb, {"kinds": ["RGB-color", "domain", "domain"]})
    img = read_image(p)
    assert img.is_rgb and img.array.shape == (1, 5, 4, 3)
    np.testing.assert_array_equal(img.array[0], rgb.transpose(2, 1, 0))


def test_singleton_non_spatial_axis_is_dropped(tmp_path):
    arr = rng.random((1, 4, 5, 6)).astype(np.float32)
    p = write(tmp_path / "v.nrrd", arr, {"kinds": ["list", "domain", "domain", "domain"]})
    np.testing.assert_array_equal(read_image(p).array, arr[0].transpose(2, 1, 0))


# --- geometry --------------------------------------------------------------------------------

def _geom_header(space, directions=np.diag([0.5, 0.7, 2.0]), origin=(10.0, 20.0, 30.0)):
    return {"space": space, "space directions": np.asarray(directions, float), "space origin": np.asarray(origin)}


def test_lps_space_gives_a_ras_affine(tmp_path):
    p = write(tmp_path / "lps.nrrd", np.zeros((4, 5, 6), np.int16), _geom_header("left-posterior-superior"))
    img = read_image(p)
    assert img.spacing == pytest.approx((2.0, 0.7, 0.5))
    assert img.origin == pytest.approx((30.0, -20.0, -10.0))  # RAS, reversed to (z, y, x), as for NIfTI
    np.testing.assert_allclose(img.meta["affine"], [[-0.5, 0, 0, -10], [0, -0.7, 0, -20], [0, 0, 2, 30], [0, 0, 0, 1]])
    assert img.meta["axcodes"] == "LPS" and img.meta["space"] == "left-posterior-superior"


def test_ras_space_is_kept_and_oblique_spacing_is_the_direction_length(tmp_path):
    p = write(tmp_path / "ras.nrrd", np.zeros((4, 5, 6), np.int16), _geom_header("right-anterior-superior"))
    img = read_image(p)
    np.testing.assert_allclose(img.meta["affine"], [[0.5, 0, 0, 10], [0, 0.7, 0, 20], [0, 0, 2, 30], [0, 0, 0, 1]])
    assert img.origin == pytest.approx((30.0, 20.0, 10.0)) and img.meta["axcodes"] == "RAS"
    c, s = math.cos(0.3), math.sin(0.3)
    oblique = [[0.5 * c, 0.5 * s, 0], [-0.7 * s, 0.7 * c, 0], [0, 0, 2.0]]
    q = write(tmp_path / "obl.nrrd", np.zeros((4, 5, 6), np.int16), _geom_header("RAS", oblique))
    assert read_image(q).spacing == pytest.approx((2.0, 0.7, 0.5))


def test_nifti_and_nrrd_of_one_grid_give_the_same_features(tmp_path):
    xyz = rng.integers(0, 200, size=(12, 10, 8)).astype(np.int16)
    mask = np.zeros(xyz.shape, np.uint8)
    mask[2:9, 3:8, 1:7] = 1
    sx, sy, sz, o = 0.8, 0.9, 2.5, (-40.0, 12.0, 7.5)
    hdr = _geom_header("left-posterior-superior", np.diag([sx, sy, sz]), o)
    nrrd_img = write(tmp_path / "img.nrrd", xyz, dict(hdr, encoding="gzip"))
    nrrd_mask = write(tmp_path / "mask.nrrd", mask, dict(hdr))
    affine = np.diag([-sx, -sy, sz, 1.0])  # the same grid in NIfTI's RAS+ world
    affine[:3, 3] = (-o[0], -o[1], o[2])
    nii_img, nii_mask = tmp_path / "img.nii", tmp_path / "mask.nii"
    nib.Nifti1Image(xyz, affine).to_filename(nii_img)
    nib.Nifti1Image(mask, affine).to_filename(nii_mask)

    a, b = read_image(nrrd_img), read_image(nii_img)
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_allclose(a.meta["affine"], b.meta["affine"])
    assert a.spacing == pytest.approx(b.spacing) and a.origin == pytest.approx(b.origin)

    want = medfeat.extract(nii_img, nii_mask, "default-3d", families=["stat", "glcm"])
    for image, m in ((nrrd_img, nrrd_mask), (nrrd_img, nii_mask), (nii_img, nrrd_mask)):
        got = medfeat.extract(image, m, "default-3d", families=["stat", "glcm"])
        assert got.keys() == want.keys()
        for k in want:
            assert got[k] == pytest.approx(want[k], nan_ok=True), k

    # the same numbers read as RAS are another grid: refused, not silently used
    flipped = write(tmp_path / "ras_mask.nrrd", mask, _geom_header("right-anterior-superior", np.diag([sx, sy, sz]), o))
    with pytest.raises(InputError, match="ras_mask.nrrd: mask geometry does not match.*axes"):
        medfeat.extract(nrrd_img, flipped, "default-3d", families=["stat"])


def test_shifted_origin_mask_is_refused(tmp_path):
    arr = rng.integers(0, 100, size=(8, 8, 6)).astype(np.int16)
    image = write(tmp_path / "img.nrrd", arr, _geom_header("LPS", np.diag([1.0, 1.0, 2.0]), (0, 0, 0)))
    mask = write(tmp_path / "shift.nrrd", np.ones(arr.shape, np.uint8), _geom_header("LPS", np.diag([1.0, 1.0, 2.0]), (0, 0, 10)))
    with pytest.raises(InputError, match="shift.nrrd: .*origin") as err:
        medfeat.extract(image, mask, "default-3d", families=["stat"])
    assert "\n" not in str(err.value)
    same = write(tmp_path / "same.nrrd", np.ones(arr.shape, np.uint8), _geom_header("LPS", np.diag([1.0, 1.0, 2.0]), (0, 0, 0)))
    assert medfeat.extract(image, same, "default-3d", families=["stat"])


def test_affine_places_lps_points_for_rtstruct(tmp_path):
    img = read_image(write(tmp_path / "g.nrrd", np.zeros((4, 5, 6), np.int16), _geom_header("left-posterior-superior")))
    # LPS world point of voxel (x, y, z) = (1, 2, 3): origin + 1*(0.5,0,0) + 2*(0,0.7,0) + 3*(0,0,2)
    lps = np.array([10.5, 21.4, 36.0])
    ras = np.asarray(img.meta["affine"]) @ [1, 2, 3, 1]
    np.testing.assert_allclose(ras[:3], lps * [-1, -1, 1])
    to_index, _ = patient_to_index(img)
    x, y, d = to_index(lps[np.newaxis])
    assert (x[0], y[0], d[0]) == pytest.approx((1.0, 2.0, 3 * 2.0))


# --- hostile files ---------------------------------------------------------------------------

def _hdr(sizes="8 8 8", type_="int16", encoding="raw", extra=""):
    return (f"NRRD0004\ntype: {type_}\ndimension: {len(sizes.split())}\nsizes: {sizes}\n"
            f"endian: little\nencoding: {encoding}\n{extra}\n").encode()


def _gzip_bomb(n: int) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as fh:
        zeros = bytes(1 << 20)
        for _ in range(n >> 20):
            fh.write(zeros)
    return buf.getvalue()


def _bz2_bomb(n: int) -> bytes:
    comp = bz2.BZ2Compressor(9)
    zeros = bytes(1 << 20)
    return b"".join(comp.compress(zeros) for _ in range(n >> 20)) + comp.flush()


NOISE = np.random.default_rng(3).integers(0, 256, 1024, dtype=np.uint8).tobytes()  # incompressible

HOSTILE = [
    ("huge.nrrd", _hdr("100000 100000 100000") + bytes(100), "image too large"),
    ("trunc.nrrd", _hdr() + bytes(100), "truncated NRRD data: header needs 1024 bytes (8x8x8 int16), file holds 100"),
    ("trunc_gz.nrrd", _hdr(encoding="gzip") + gzip.compress(NOISE)[:500], "truncated or corrupt gzip data"),
    ("short_gz.nrrd", _hdr(encoding="gzip") + gzip.compress(NOISE[:600]), "truncated gzip data: the header needs 1024"),
    ("trunc_bz2.nrrd", _hdr(encoding="bzip2") + bz2.compress(NOISE)[:500], "truncated"),
    ("short_bz2.nrrd", _hdr(encoding="bzip2") + bz2.compress(NOISE[:600]), "truncated bzip2 data: the header needs 1024"),
    ("corrupt_gz.nrrd", _hdr(encoding="gzip") + b"\x1f\x8bnot deflate at all" * 4, "corrupt gzip"),
    ("four_d.nrrd", _hdr("8 8 8 2") + bytes(2048), "4D NRRD (8x8x8x2) is not supported: split it into 3D volumes"),
    ("vector.nrrd", _hdr("3 8 8 8", extra="kinds: vector domain domain domain\n") + bytes(3072),
     "vector axis of 3) is not supported: split it into 3D volumes"),
    ("time.nrrd", _hdr("8 8 8 5", extra="kinds: domain domain domain time\n") + bytes(5120), "4D NRRD"),
    ("hex.nrrd", _hdr(encoding="hex") + b"00" * 1024, "encoding 'hex' is not supported (raw, gzip and bzip2 are)"),
    ("ascii.nrrd", _hdr(encoding="ascii") + b"0 " * 512, "encoding 'ascii' is not supported"),
    ("detached.nhdr", _hdr(extra="data file: detached.raw\n"), "detached NRRD header (data file 'detached.raw')"),
    ("garbage.nrrd", b"NRRD0004\n" + b"\xff\xfe\x00garbage\x01\x02\r\x7f" * 64, "corrupt NRRD header"),
    ("nofields.nrrd", b"NRRD0004\n\n" + bytes(64), "without the required field"),
    ("version.nrrd", b"NRRD0009\ntype: int16\n\n", "corrupt NRRD header"),
    ("zero.nrrd", _hdr("8 0 8"), "bad NRRD sizes"),
    ("negative.nrrd", _hdr("8 -8 8"), "bad NRRD sizes"),
    ("dim.nrrd", _hdr("8 8 8").replace(b"dimension: 3", b"dimension: 2"), "bad NRRD sizes"),
    ("type.nrrd", _hdr(type_="block") + bytes(512), "NRRD type 'block' is not supported"),
    ("endian.nrrd", _hdr().replace(b"endian: little\n", b"") + bytes(1024), "endian"),
    ("sizes.nrrd", _hdr("8 eight 8"), "corrupt NRRD header"),
    ("dirs.nrrd", _hdr(extra="space: LPS\nspace directions: (1,0,0) (0,0,0) (0,0,1)\n") + bytes(1024), "space directions"),
    ("space.nrrd", _hdr(extra="space: sideways\n") + bytes(1024), "unknown NRRD space"),
    ("longline.nrrd", b"NRRD0004\n" + b"a" * (2 << 20), "NRRD header longer than"),
]


@pytest.mark.parametrize("name,content,reason", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_files_fail_fast_with_one_line(tmp_path, name, content, reason):
    p = tmp_path / name
    p.write_bytes(content)
    assert detect_format(content[:1024]) == "nrrd"
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(InputError) as err:
            read_image(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    msg = str(err.value)
    assert time.perf_counter() - t0 < 5
    assert peak < 32 * 2**20, peak
    assert err.value.path == str(p) and msg.startswith(str(p)) and "\n" not in msg
    assert reason in msg, msg


@pytest.mark.parametrize("encoding,bomb", [("gzip", _gzip_bomb), ("bzip2", _bz2_bomb)])
def test_compression_bomb_stops_at_what_the_header_needs(tmp_path, encoding, bomb):
    p = tmp_path / f"bomb_{encoding}.nrrd"
    stream = bomb(200 << 20)  # expands to 200 MB; the header needs 512 bytes
    assert len(stream) < 1 << 20
    p.write_bytes(_hdr(type_="uint8", encoding=encoding) + stream)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        img = read_image(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 5 and peak < 32 * 2**20, peak
    assert img.array.shape == (8, 8, 8) and not img.array.any()


def test_detect_format_and_unrecognised_message(tmp_path):
    assert detect_format(b"NRRD0005\ntype: int16\n") == "nrrd"
    assert detect_format(b"NRRX0005\n") is None
    p = tmp_path / "x.bin"
    p.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(InputError, match="NRRD"):
        read_image(p)


def test_cli_bad_nrrd_exits_2_with_one_line(tmp_path):
    for name, content in (("bad.nrrd", _hdr() + bytes(100)), ("junk.nrrd", b"NRRD0004\n\xff\x00\x01junk" * 30)):
        p = tmp_path / name
        p.write_bytes(content)
        r = subprocess.run([sys.executable, "-m", "medfeat", "extract", str(p), "--families", "stat"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert name in r.stderr and "Traceback" not in r.stderr and "Warning" not in r.stderr
