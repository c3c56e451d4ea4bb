"""The gift family: GNU GIFT 0.1.15a's features, reproduced exactly.

The authority is ../shared/data/gift/fixtures: 100 images and the .fts files GIFT wrote for them.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import medfeat
from medfeat.cli import app
from medfeat.features import gift
from medfeat.io.netpbm import write_netpbm
from medfeat.tables import ImageResult, pack_gift_codes, unpack_gift_codes, wide_table

from conftest import SHARED, require_shared

FIXTURES = SHARED / "data" / "gift" / "fixtures"
NAMES = sorted(p.stem for p in FIXTURES.glob("*.png")) if FIXTURES.is_dir() else ["(fixtures absent)"]


def fixture_rgb(name: str) -> np.ndarray:
    from PIL import Image as PILImage

    folder = require_shared("data", "gift", "fixtures")
    with PILImage.open(folder / f"{name}.png") as im:
        return np.asarray(im.convert("RGB"))


def same_float32(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equal float32 arrays."""
    return a.dtype == b.dtype == np.float32 and np.array_equal(a.view(np.uint32), b.view(np.uint32))


# -- the fixtures ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_fixture_equals_gift(name):
    rgb = fixture_rgb(name)
    ids, values = gift.gift_features(rgb).to_sparse()
    gift_ids, gift_values = gift.read_fts(FIXTURES / f"{name}.fts")
    assert ids.dtype == np.int32 and np.array_equal(ids, gift_ids), "same ids in the same order"
    assert same_float32(values, gift_values), "same float32 values"
    assert gift.fts_bytes(ids, values) == (FIXTURES / f"{name}.fts").read_bytes()


def test_cli_writes_gifts_files_byte_for_byte(tmp_path):
    """As GIFT did: every fixture written as a P6 PPM (maxval 255), then `medfeat gift-fts`."""
    folder = require_shared("data", "gift", "fixtures")
    ppms = []
    for name in NAMES:
        p = tmp_path / "ppm" / f"{name}.ppm"
        p.parent.mkdir(exist_ok=True)
        write_netpbm(p, fixture_rgb(name))
        assert p.stat().st_size == 196_623
        ppms.append(str(p))
    out = tmp_path / "fts"
    r = CliRunner().invoke(app, ["gift-fts", *ppms, "-o", str(out)])
    assert r.exit_code == 0, r.output
    for name in NAMES:
        assert (out / f"{name}.fts").read_bytes() == (folder / f"{name}.fts").read_bytes(), name


def test_exact_path_alone_matches_gift(monkeypatch):
    """Blocks near a band limit are recomputed with GIFT's arithmetic. Widen the error bound so that
    hundreds are, and the files must still be GIFT's (the recomputation is GIFT-exact)."""
    name = NAMES[min(5, len(NAMES) - 1)]
    rgb = fixture_rgb(name)
    monkeypatch.setattr(gift.gabor, "FFT_ERROR", 2e-6)  # tol ~ 0.02-0.1 on the energies
    value = rgb.max(axis=2).astype(np.float64)
    tol = gift.gabor.FFT_ERROR * np.sqrt((value ** 2).sum())
    e = gift.gabor_energies(value)
    assert (np.abs(e[..., None] - gift.BAND_LIMITS).min(axis=-1) <= tol).sum() > 50
    assert gift.fts_bytes(*gift.gift_features(rgb).to_sparse()) == (FIXTURES / f"{name}.fts").read_bytes()


def test_fft_energies_agree_with_gifts_arithmetic():
    rgb = fixture_rgb(NAMES[min(17, len(NAMES) - 1)])
    value = rgb.max(axis=2).astype(np.float64)
    fast = gift.gabor_energies(value)
    f_idx, b_idx = np.divmod(np.arange(gift.N_FILTERS * gift.N_GABOR_BLOCKS), gift.N_GABOR_BLOCKS)
    exact = gift.exact_block_energies(value, f_idx, b_idx).reshape(fast.shape)
    assert np.abs(fast - exact).max() < 1e-11
    assert np.array_equal(gift.energy_bands(fast), gift.energy_bands(exact))
    # the per-block exact path equals the whole-image reference, bit for bit
    f = gift.gabor_filter_exact(value, 1, 3)
    sq = (f * f).reshape(16, 16, 16, 16).transpose(0, 2, 1, 3).reshape(256, 256)
    total = np.zeros(256)
    for i in range(256):  # GIFT's order: pixel by pixel, row by row
        total += sq[:, i]
    assert np.array_equal(np.sqrt(total / 256), exact[7])


def test_gabor_filter_is_the_separable_real_gabor():
    """Independent check of the filter: scipy's convolutions with the formula's kernels."""
    from scipy.ndimage import convolve1d

    rng = np.random.default_rng(3)
    v = rng.integers(0, 256, (64, 80)).astype(np.float64)
    for scale, size in enumerate(gift.KERNEL_SIZES):
        u0 = 0.375 / 2 ** scale
        sigma = 3 * np.sqrt(2 * np.log(2)) / (2 * np.pi * u0)
        x = np.arange(size) - size // 2
        g = np.exp(-x ** 2 / (2 * sigma ** 2)) / (np.sqrt(2 * np.pi) * sigma)
        for o in range(4):
            a, b = u0 * np.cos(o * np.pi / 4), u0 * np.sin(o * np.pi / 4)

            def conv(img, k, axis):
                return convolve1d(img, k, axis=axis, mode="constant", cval=0.0)

            ref = (conv(conv(v, g * np.cos(2 * np.pi * a * x), 1), g * np.cos(2 * np.pi * b * x), 0)
                   - conv(conv(v, g * np.sin(2 * np.pi * a * x), 1), g * np.sin(2 * np.pi * b * x), 0))
            assert np.allclose(gift.gabor_filter_exact(v, scale, o), ref, rtol=0, atol=1e-9)


# -- colours ----------------------------------------------------------------------------------------
def _reference_colours(rgb: np.ndarray, grey_levels: int = 4) -> np.ndarray:
    """GIFT's rgb2hsv_ppm + hsv_quantize_ppm transcribed line by line (double precision)."""
    c = rgb.astype(np.float64) / 255.0
    R, G, B = c[..., 0], c[..., 1], c[..., 2]
    mx = np.maximum(np.maximum(R, G), B)
    mn = np.minimum(np.minimum(R, G), B)
    diff = mx - mn
    with np.errstate(divide="ignore", invalid="ignore"):
        S = np.where(mx == 0, 0.0, diff / mx)
        H = np.zeros_like(mx)
        H = np.where(R == mx, (G - B) / diff, H)
        H = np.where(G == mx, 2 + (B - R) / diff, H)
        H = np.where(B == mx, 4 + (R - G) / diff, H)
    H = H * 60
    H = np.where(H < 0, H + 360, H)
    H = np.where(S == 0, 0.0, H)
    h = np.rint((H / 360.0) * 255.0) / 255.0
    s = np.rint(S * 255.0) / 255.0
    v = np.rint(mx * 255.0) / 255.0
    not_one = 0.99999999
    colour = (np.floor(not_one * h * 18) + 18 * np.floor(not_one * s * 3) + 54 * np.floor(not_one * v * 3))
    grey = 162 + np.floor(not_one * v * grey_levels)
    return np.where((h == 0) & (s == 0), grey, colour).astype(np.int64)


def test_colours_of_all_16777216_rgb_values():
    v = np.arange(256, dtype=np.uint8)
    g, b = np.meshgrid(v, v, indexing="ij")
    for r in range(256):
        rgb = np.stack([np.full_like(g, r), g, b], axis=-1)
        assert np.array_equal(gift.quantize_colours(rgb), _reference_colours(rgb)), f"R = {r}"


def test_hsv_bytes():
    rgb = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [10, 10, 10], [0, 0, 0], [255, 0, 1]],
                   dtype=np.uint8)
    h, s, v = gift.rgb_to_hsv(rgb)
    assert h.tolist() == [0, 85, 170, 42, 0, 0, 255]  # 60 deg: 42.5 rounds to even ... in doubles, 42
    assert s.tolist() == [255, 255, 255, 255, 0, 0, 255]
    assert v.tolist() == [255, 255, 255, 255, 10, 0, 255]


# -- hand-made images with known answers ------------------------------------------------------------
def _flat(colour) -> np.ndarray:
    rgb = np.empty((256, 256, 3), dtype=np.uint8)
    rgb[:] = colour
    return rgb


def _ids_in(ids, lo, hi):
    return ids[(ids >= lo) & (ids < hi)]


def test_pure_colour_image():
    lay = gift.id_layout()
    for colour, expected in (((12, 2, 2), 0 + 18 * 2 + 54 * 0), ((200, 30, 30), 0 + 18 * 2 + 54 * 2)):
        f = gift.gift_features(_flat(colour))
        assert f.block_colours.tolist() == [expected] * 340
        assert f.colour_counts[expected] == 65536 and f.colour_counts.sum() == 65536
        ids, values = f.to_sparse()
        assert np.array_equal(ids[:340], np.arange(340) * 166 + expected)
        assert _ids_in(ids, lay.colour_hist, lay.gabor_blocks).tolist() == [lay.colour_hist + expected]
        assert values[340] == 1.0
        # no texture inside the image: every block away from the border is in band 0
        bands = f.gabor_bands.reshape(12, 16, 16)
        assert not bands[:, 2:14, 2:14].any()
    # a dark colour has no Gabor energy at all: no Gabor block ids, every histogram all in band 0
    f = gift.gift_features(_flat((12, 2, 2)))
    ids, values = f.to_sparse()
    assert _ids_in(ids, lay.gabor_blocks, lay.gabor_hist).size == 0
    gh = _ids_in(ids, lay.gabor_hist, lay.n_features)
    assert gh.tolist() == [lay.gabor_hist + 10 * k for k in range(12)]
    assert (values[-12:] == 1.0).all()
    # GIFT pads with zeros, so a bright flat image does respond at its border (its edge with black)
    f = gift.gift_features(_flat((200, 30, 30)))
    assert f.gabor_bands.any()


def test_grey_image():
    for level, expected in ((0, 162), (60, 162), (64, 163), (128, 164), (200, 165), (255, 165)):
        g = np.full((256, 256), level, dtype=np.uint8)
        f = gift.gift_features(g)
        assert set(f.block_colours.tolist()) == {expected}
        rgb = gift.gift_features(np.repeat(g[..., None], 3, axis=2))
        assert np.array_equal(f.to_sparse()[0], rgb.to_sparse()[0])


def test_grating_excites_the_matching_filter():
    yy, xx = np.mgrid[:256, :256]
    for scale in range(3):
        for o in range(4):
            freq, theta = 0.375 / 2 ** scale, np.pi * o / 4
            v = np.rint(128 + 100 * np.cos(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta))))
            f = gift.gift_features(v.astype(np.uint8))
            inner = f.gabor_energies.reshape(3, 4, 16, 16)[:, :, 3:13, 3:13].mean(axis=(2, 3))
            assert np.unravel_index(inner.argmax(), inner.shape) == (scale, o)
            ranked = np.sort(inner.ravel())
            assert ranked[-1] > 4 * ranked[-2]
            assert (f.gabor_bands[scale, o].reshape(16, 16)[3:13, 3:13] == 9).all()


def test_grey_levels_option():
    ramp = np.tile(np.arange(256, dtype=np.uint8), (256, 1))
    f4 = gift.gift_features(ramp)
    f16 = gift.gift_features(ramp, grey_levels=16)
    assert f4.colour_counts.size == 166 and f16.colour_counts.size == 178
    assert np.count_nonzero(f4.colour_counts) == 4 and np.count_nonzero(f16.colour_counts) == 16
    assert f16.dense().size == gift.id_layout(16).n_features
    assert not np.array_equal(f4.to_sparse()[0], f16.to_sparse()[0][:len(f4.to_sparse()[0])])
    with pytest.raises(ValueError):
        gift.gift_features(ramp, grey_levels=95)
    with pytest.raises(medfeat.InputError, match="gift_grey_levels"):
        medfeat.Settings(gift_grey_levels=0)
    s = medfeat.Settings(gift_grey_levels=16)
    cols = medfeat.feature_columns(s, ["gift"])
    assert sum(c.name.startswith("gift_hist_") for c in cols) == 178
    row = medfeat.extract(ramp, settings=s, families=["gift"])
    ids, values = gift.features_of_row(row)
    assert np.array_equal(ids, f16.to_sparse()[0]) and same_float32(values, f16.to_sparse()[1])


# -- the API around the features ----------------------------------------------------------------------
def test_fts_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.sort(rng.choice(87446, 500, replace=False)).astype(np.int32)
    values = rng.random(500).astype(np.float32)
    gift.write_fts(tmp_path / "a.fts", ids, values)
    assert (tmp_path / "a.fts").stat().st_size == 4 + 8 * 500
    back_ids, back_values = gift.read_fts(tmp_path / "a.fts")
    assert np.array_equal(back_ids, ids) and same_float32(back_values, values)
    gift.write_fts(tmp_path / "empty.fts", np.array([], np.int32), np.array([], np.float32))
    assert [a.size for a in gift.read_fts(tmp_path / "empty.fts")] == [0, 0]
    (tmp_path / "bad.fts").write_bytes(b"\x05\x00\x00\x00" + b"\x00" * 12)
    with pytest.raises(medfeat.InputError, match="bad.fts"):
        gift.read_fts(tmp_path / "bad.fts")
    with pytest.raises(medfeat.InputError, match="missing.fts"):
        gift.read_fts(tmp_path / "missing.fts")


def test_dense_and_row_forms():
    rgb = np.random.default_rng(5).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    f = gift.gift_features(rgb)
    ids, values = f.to_sparse()
    dense = f.dense()
    assert dense.shape == (87446,) and dense.dtype == np.float32
    assert np.array_equal(np.flatnonzero(dense), ids) and same_float32(dense[ids], values)
    row = f.row()
    assert list(row) == list(gift.column_names()) and len(row) == 3698
    back_ids, back_values = gift.features_of_row(row)
    assert np.array_equal(back_ids, ids) and same_float32(back_values, values)
    assert np.allclose(f.gabor_histograms.sum(axis=2), 1.0) and f.colour_histogram.sum() == 1.0
    with pytest.raises(ValueError, match="missing"):
        gift.features_of_row({**row, "gift_block_007": float("nan")})


def test_extract_family_on_grey_and_rgb():
    rng = np.random.default_rng(9)
    rgb = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
    row = medfeat.extract(rgb[np.newaxis], families=["gift"])  # RGB arrays are (z, y, x, 3)
    assert list(row) == [c.name for c in medfeat.feature_columns(None, ["gift"])]
    assert row == gift.gift_features(rgb).row()
    grey = rng.integers(0, 256, (256, 256), dtype=np.uint8)
    row = medfeat.extract(grey, families=["gift"])
    assert row == gift.gift_features(np.repeat(grey[..., None], 3, axis=2)).row()
    # other sizes are forced to 256 x 256, as GIFT's convert -geometry 256x256! did
    small = medfeat.extract(rng.integers(0, 256, (1, 100, 140, 3), dtype=np.uint8), families=["gift"])
    assert len(small) == 3698
    # with another family in the same call
    both = medfeat.extract(grey, settings="default-2d", families=["stat", "gift"])
    assert "stat_mean" in both and "gift_block_000" in both
    with pytest.raises(medfeat.InputError, match="2D image"):
        medfeat.extract(rng.integers(0, 256, (3, 32, 32), dtype=np.uint8), families=["gift"])


def test_gift_alone_never_converts_a_colour_image_to_grey(monkeypatch):
    """gift reads the colours only: with no grey family, filter, re-segmentation or interpolation
    the luma conversion is skipped (its features are the same); with one it still happens."""
    from medfeat.image import Image

    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (1, 256, 256, 3), dtype=np.uint8)
    expected = medfeat.extract(rgb, families=["gift"])
    both = medfeat.extract(rgb, settings="default-2d", families=["stat", "gift"])
    calls = []
    real = Image.intensity
    monkeypatch.setattr(Image, "intensity", lambda self: calls.append(1) or real(self))
    assert medfeat.extract(rgb, families=["gift"]) == expected and calls == []
    assert medfeat.extract(rgb, settings="default-2d", families=["stat", "gift"]) == both and calls == [1]
    s = medfeat.Settings.preset("default-2d").replace(resegment_min=10.0)
    medfeat.extract(rgb, settings=s, families=["gift"])
    assert calls == [1, 1]                        # re-segmentation reads grey values
    # a float colour image with a NaN: the same one-line refusal either way
    bad = rgb.astype(np.float64)
    bad[0, 5, 7, 1] = np.nan
    for fams in (["gift"], ["stat", "gift"]):
        with pytest.raises(medfeat.InputError, match="1 NaN/inf voxel"):
            medfeat.extract(bad, settings="default-2d", families=fams)


def test_gift_rgb_conversions():
    a16 = np.array([[0, 257, 65535]], dtype=np.uint16)
    assert gift.to_uint8(a16, 65535).tolist() == [[0, 1, 255]]
    assert gift.to_uint8(np.array([[0, 7, 15]], np.uint8), 15).tolist() == [[0, 119, 255]]
    assert gift.to_uint8(np.array([[-1000.0, 0.0, 1000.0]])).tolist() == [[0, 128, 255]]
    assert gift.to_uint8(np.full((2, 2), 7.5)).tolist() == [[0, 0], [0, 0]]
    assert gift.resize_to_gift(np.zeros((30, 500, 3), np.uint8)).shape == (256, 256, 3)
    assert gift.resize_to_gift(np.zeros((300, 20), np.uint8)).shape == (256, 256)
    assert gift.gift_rgb(np.zeros((64, 64), np.uint8)).shape == (256, 256, 3)
    with pytest.raises(medfeat.InputError, match="NaN"):
        gift.gift_rgb(np.array([[np.nan, 1.0]]), "x.nii")


def test_cli_bad_images_and_exit_status(tmp_path):
    good = tmp_path / "good.ppm"
    write_netpbm(good, _flat((40, 90, 200)))
    grey = tmp_path / "grey.pgm"
    write_netpbm(grey, np.full((64, 64), 99, np.uint8))
    bad = tmp_path / "broken.pgm"
    bad.write_bytes(b"P5\n4 4\n255\n\x00")
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "medfeat", "gift-fts", str(good), str(bad), str(grey),
                        str(tmp_path / "missing.png"), "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    errors = r.stderr.strip().splitlines()
    assert len(errors) == 2 and "broken.pgm" in errors[0] and "missing.png" in errors[1]
    assert sorted(p.name for p in out.iterdir()) == ["good.fts", "grey.fts"]
    ids, values = gift.read_fts(out / "good.fts")
    expected = gift.gift_features(_flat((40, 90, 200))).to_sparse()
    assert np.array_equal(ids, expected[0]) and same_float32(values, expected[1])
    # two images that would write the same file: the second is refused
    other = tmp_path / "sub" / "good.ppm"
    other.parent.mkdir()
    write_netpbm(other, _flat((1, 2, 3)))
    r = CliRunner().invoke(app, ["gift-fts", str(good), str(other), "-o", str(out)])
    assert r.exit_code == 2 and "would overwrite" in r.output


def test_gift_fts_from_a_features_table_writes_the_images_own_files(tmp_path):
    rng = np.random.default_rng(31)
    data = tmp_path / "data"
    data.mkdir()
    write_netpbm(data / "a.ppm", rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    write_netpbm(data / "b.pgm", rng.integers(0, 256, (120, 90), dtype=np.uint8))  # resized as GIFT does
    (data / "c.pgm").write_bytes(b"P5\n4 4\n255\n\x00")                           # truncated
    images = [str(data / n) for n in ("a.ppm", "b.pgm", "c.pgm")]
    runner = CliRunner()
    r = runner.invoke(app, ["extract", *images, "--families", "gift", "-o", str(tmp_path / "t.parquet")])
    assert r.exit_code == 2                                                            # c.pgm failed
    r = runner.invoke(app, ["gift-fts", *images[:2], "-o", str(tmp_path / "from-images")])
    assert r.exit_code == 0, r.output
    pq.write_table(unpack_gift_codes(pq.read_table(tmp_path / "t.parquet")), tmp_path / "wide.parquet")
    for table in ("t.parquet", "wide.parquet"):
        out = tmp_path / f"from-{table}"
        r = runner.invoke(app, ["gift-fts", str(tmp_path / table), "-o", str(out)])
        assert r.exit_code == 2
        errors = [line for line in r.output.splitlines() if line.startswith("medfeat: error:")]
        assert len(errors) == 1 and "c.pgm" in errors[0] and "truncated" in errors[0]
        assert sorted(p.name for p in out.iterdir()) == ["a.fts", "b.fts"]
        for name in ("a.fts", "b.fts"):  # byte for byte the files made from the images
            assert (out / name).read_bytes() == (tmp_path / "from-images" / name).read_bytes()
    r = runner.invoke(app, ["gift-fts", str(tmp_path / "t.parquet"), "--grey-levels", "8", "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "4 grey levels, not --grey-levels 8" in r.output
    r = runner.invoke(app, ["gift-fts", str(tmp_path / "missing.parquet"), "-o", str(tmp_path / "x")])
    assert r.exit_code == 2 and "missing.parquet: no such file" in r.output


def test_rows_no_gift_image_has_are_refused_not_turned_into_other_ids(tmp_path):
    rng = np.random.default_rng(8)
    row = medfeat.extract(rng.integers(0, 256, (1, 256, 256, 3), dtype=np.uint8), families=["gift"], pack_gift=True)
    codes = bytearray(row["gift_codes"])
    for k, value, reason in ((3, 166, "block colours outside 0..165"), (340 + 7, 10, "Gabor bands outside 0..9")):
        bad = bytearray(codes)
        bad[k] = value
        with pytest.raises(ValueError, match=reason):
            gift.features_of_row({**row, "gift_codes": bytes(bad)})
    with pytest.raises(ValueError, match="not of 256 x 256 pixels"):
        gift.features_of_row({**row, "gift_hist_000": row["gift_hist_000"] + 0.5})
    wide = medfeat.extract(rng.integers(0, 256, (1, 256, 256, 3), dtype=np.uint8), families=["gift"])
    with pytest.raises(ValueError, match="not whole numbers"):
        gift.features_of_row({**wide, "gift_block_010": 2.5})
    # gift-fts from such a table: one line for that row, the others written
    good = wide_table([ImageResult("a.ppm", "", row)], medfeat.feature_columns(None, ["gift"]), pack_gift=True)
    bad = bytearray(codes)
    bad[3] = 200
    broken = good.set_column(good.column_names.index("gift_codes"), "gift_codes",
                             pa.array([bytes(bad)], pa.binary(3412))).set_column(0, "image", pa.array(["b.ppm"]))
    pq.write_table(pa.concat_tables([good, broken]), tmp_path / "t.parquet")
    r = CliRunner().invoke(app, ["gift-fts", str(tmp_path / "t.parquet"), "-o", str(tmp_path / "out")])
    assert r.exit_code == 2 and "b.ppm" in r.output and "outside 0..165" in r.output
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["a.fts"]


def test_packed_codes_are_the_block_colours_then_the_gabor_bands():
    rng = np.random.default_rng(21)
    images = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(3)]
    feats = [gift.gift_features(im, grey_levels=8) for im in images]
    s = medfeat.Settings.preset("default-2d").replace(gift_grey_levels=8)
    cols = medfeat.feature_columns(s, ["stat", "gift"])
    results = [ImageResult(f"im{i}", "", medfeat.extract(im[np.newaxis], settings=s, families=["stat", "gift"]))
               for i, im in enumerate(images)]
    results.insert(1, ImageResult("bad.ppm", "", error="bad.ppm: truncated"))
    nan_row = dict(results[0].features, gift_gabor_1_2_017=float("nan"))  # a code that is not a value
    results.append(ImageResult("nan.ppm", "", nan_row))
    wide = wide_table(results, cols)
    packed = wide_table(results, cols, pack_gift=True)
    # one column of 3,412 bytes where gift_block_000 was; the histograms stay float columns
    assert packed.num_columns == wide.num_columns - 3412 + 1
    assert packed.column_names.index("gift_codes") == wide.column_names.index("gift_block_000")
    assert [c for c in packed.column_names if c != "gift_codes"] == \
        [c for c in wide.column_names if c not in set(gift.code_column_names())]
    codes = packed["gift_codes"].to_pylist()
    assert codes[1] is None and codes[4] is None  # the failed row, and the row with a NaN code
    for k, i in ((0, 0), (2, 1), (3, 2)):
        expected = np.concatenate([feats[i].block_colours, feats[i].gabor_bands.ravel()]).astype(np.uint8)
        assert np.array_equal(np.frombuffer(codes[k], np.uint8), expected)
        ids, values = gift.features_of_row(packed.slice(k, 1).to_pylist()[0])
        assert np.array_equal(ids, feats[i].to_sparse()[0]) and same_float32(values, feats[i].to_sparse()[1])
    # rows packed at the source (what production jobs extract) give the same table
    at_source = [ImageResult(r.image, "", error=r.error) if r.error else
                 ImageResult(r.image, "", medfeat.extract(images[int(r.image[2:])][np.newaxis], settings=s,
                                                          families=["stat", "gift"], pack_gift=True))
                 for r in results[:4]]
    assert len(at_source[0].features) == len(results[0].features) - 3412 + 1
    assert wide_table(at_source, cols, pack_gift=True).equals(packed.slice(0, 4))
    # the Arrow-level packing gives the same table; unpacking gives the wide table back, value for value
    assert pack_gift_codes(wide).equals(packed)
    assert pack_gift_codes(packed) is packed
    back = unpack_gift_codes(packed)
    assert back.column_names == wide.column_names
    code_names = set(gift.code_column_names())
    for name in wide.column_names:
        if name in code_names:  # the row with a NaN code has none of its codes (a row is whole or null)
            assert back[name].slice(0, 4).equals(wide[name].slice(0, 4)) and back[name][4].as_py() is None, name
        else:
            assert back[name].equals(wide[name]), name
    assert unpack_gift_codes(back) is back
    with pytest.raises(ValueError, match="missing gift values"):
        gift.features_of_row(packed.slice(1, 1).to_pylist()[0])
    with pytest.raises(ValueError, match="holds 10 codes, not 3412"):
        gift.parts_of_row({**packed.slice(0, 1).to_pylist()[0], "gift_codes": b"\x00" * 10})


def test_production_run_with_gift(tmp_path):
    from medfeat.production.engine import Production
    from medfeat.production.options import BackendSpec, PlanOptions

    rng = np.random.default_rng(11)
    data = tmp_path / "data"
    data.mkdir()
    paths = []
    for i, shape in enumerate(((256, 256, 3), (256, 256), (120, 90, 3))):
        p = data / f"im{i}.{'ppm' if len(shape) == 3 else 'pgm'}"
        write_netpbm(p, rng.integers(0, 256, shape, dtype=np.uint8))
        paths.append(p)
    run_dir = tmp_path / "run"
    Production(run_dir, str(data), "default-2d", ("gift",), PlanOptions(images_per_job=2)).run(
        BackendSpec("local", workers=1))
    table = pq.read_table(run_dir / "features.parquet")
    # image, sha256, job, mask, label, roi, error, note + gift_codes + 166 + 120 histogram columns
    assert table.num_columns == 8 + 1 + 166 + 120
    assert table.schema.field("gift_codes").type == pa.binary(3412)
    rows = {r["image"]: r for r in table.to_pylist()}
    wide = {r["image"]: r for r in unpack_gift_codes(table).to_pylist()}
    assert sorted(rows) == sorted(wide) == sorted(str(p) for p in paths)
    for p in paths:
        row = rows[str(p)]
        assert row["error"] == ""
        expected = medfeat.extract(p, families=["gift"])
        assert all(wide[str(p)][k] == v for k, v in expected.items())
        assert np.array_equal(np.frombuffer(row["gift_codes"], np.uint8),
                              [expected[k] for k in gift.code_column_names()])
        ids, values = gift.features_of_row(row)  # the packed row as it is
        exp_ids, exp_values = gift.features_of_row(expected)
        assert np.array_equal(ids, exp_ids) and same_float32(values, exp_values)


def test_an_earlier_results_wide_gift_columns_are_packed_when_the_table_is_assembled(tmp_path):
    """A run folder resumed by this medfeat may hold job results written with the 3,698 wide gift
    columns (medfeat before the packed codes): the table is still one schema, packed."""
    from medfeat.production.engine import Production
    from medfeat.production.options import BackendSpec, PlanOptions, TailPolicy
    from medfeat.production.results import read_result, result_bytes

    rng = np.random.default_rng(12)
    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        write_netpbm(data / f"im{i}.ppm", rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    run_dir = tmp_path / "run"
    prod = Production(run_dir, str(data), "default-2d", ("gift",), PlanOptions(images_per_job=2))
    prod.run(BackendSpec("local", workers=1), TailPolicy(keep_results=True))
    first = pq.read_table(run_dir / "features.parquet")
    job = prod.ledger.jobs()[0]
    wide = unpack_gift_codes(read_result(prod.stage.get(job["result"])))
    assert "gift_block_000" in wide.column_names
    prod.stage.put(job["result"], result_bytes(wide))   # as an earlier medfeat wrote it
    (run_dir / "features.parquet").unlink()
    Production(run_dir).run(BackendSpec("local", workers=1), TailPolicy(keep_results=True))
    again = pq.read_table(run_dir / "features.parquet")
    assert again.schema.remove_metadata().equals(first.schema.remove_metadata())
    assert again.to_pylist() == first.to_pylist()


def test_extract_to_parquet_packs_the_codes_and_csv_keeps_them_wide(tmp_path):
    rng = np.random.default_rng(13)
    image = tmp_path / "a.ppm"
    write_netpbm(image, rng.integers(0, 256, (256, 256, 3), dtype=np.uint8))
    runner = CliRunner()
    for out in ("f.parquet", "f.csv"):
        r = runner.invoke(app, ["extract", str(image), "--families", "gift", "-o", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
    packed = pq.read_table(tmp_path / "f.parquet")
    assert packed.num_columns == 4 + 1 + 166 + 120 and "gift_block_000" not in packed.column_names
    import pyarrow.csv as pacsv

    wide = pacsv.read_csv(tmp_path / "f.csv")
    assert wide.num_columns == 4 + 3698
    expected = medfeat.extract(image, families=["gift"])
    back = unpack_gift_codes(packed).to_pylist()[0]
    assert all(back[k] == v for k, v in expected.items())
    assert all(wide[k][0].as_py() == pytest.approx(v, rel=1e-15) for k, v in expected.items())
    ids, values = gift.features_of_row(packed.to_pylist()[0])
    assert np.array_equal(ids, gift.features_of_row(expected)[0]) and same_float32(values, gift.features_of_row(expected)[1])


def test_families_lists_gift_by_group():
    r = CliRunner().invoke(app, ["families"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert "gift.block.NNN" in r.output and "gift.block.001" not in r.output
