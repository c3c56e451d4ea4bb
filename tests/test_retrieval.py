"""Search by example over GIFT features (`medfeat.retrieval`, `medfeat index`, `medfeat search`).

Known answers on hand-made images, the vectorised scores against a plain per-feature reference
implementation of the formulas, save/load (format 2, and format 1 files), an index from a real
production's features.parquet equal to one built from the images, the CLI, the one-pass top-k
against brute force on 20,000 synthetic rows, the held-out evaluation's measure on a hand-checkable
set, and the held-out evaluation on the STS data.
"""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import medfeat
from medfeat.cli import app
from medfeat.errors import InputError
from medfeat.features import gift
from medfeat.io.netpbm import write_netpbm
from medfeat.retrieval import DEFAULT_GREY_LEVELS, DEFAULT_METHOD, METHODS, Index
from medfeat.tables import ImageResult, unpack_gift_codes, wide_table

from conftest import require_shared

ROOT = Path(__file__).resolve().parents[1]


# -- hand-made images ---------------------------------------------------------------------------
def _grid():
    return np.mgrid[0:256, 0:256].astype(np.float64)


def make_image(kind: str, seed: int = 0) -> np.ndarray:
    """A 256 x 256 RGB uint8 picture with a known look."""
    y, x = _grid()
    rng = np.random.default_rng(seed)
    if kind == "ramp":                       # smooth horizontal grey ramp
        g = x
    elif kind == "rings":                    # fine concentric rings: strong texture
        g = 127.5 + 127.5 * np.sin(np.hypot(y - 128, x - 128) / 2.0)
    elif kind == "checker":                  # 8-px checkerboard
        g = 255.0 * (((y // 8) + (x // 8)) % 2)
    elif kind == "dark":                     # nearly black with a faint blob
        g = 20.0 * np.exp(-((y - 100) ** 2 + (x - 150) ** 2) / 2000.0)
    elif kind == "stripes":                  # vertical stripes, 16 px
        g = 255.0 * ((x // 16) % 2)
    elif kind == "disc":                     # colour: a red disc on blue
        rgb = np.zeros((256, 256, 3), np.uint8)
        rgb[..., 2] = 200
        inside = np.hypot(y - 128, x - 128) < 70
        rgb[inside] = (220, 30, 30)
        return rgb
    elif kind == "noise":
        g = rng.integers(0, 256, (256, 256)).astype(np.float64)
    else:
        raise ValueError(kind)
    g = np.clip(np.rint(g), 0, 255).astype(np.uint8)
    return np.repeat(g[:, :, None], 3, axis=2)


def noisy(rgb: np.ndarray, amplitude: int = 2, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(-amplitude, amplitude + 1, rgb.shape[:2])[..., None]
    return np.clip(rgb.astype(np.int16) + noise, 0, 255).astype(np.uint8)


KINDS = ("ramp", "rings", "checker", "dark", "stripes", "disc", "noise")


@pytest.fixture(scope="module")
def pictures() -> dict[str, np.ndarray]:
    pics = {k: make_image(k) for k in KINDS}
    pics["ramp-noisy"] = noisy(pics["ramp"])
    return pics


@pytest.fixture(scope="module")
def index(pictures) -> Index:
    names = list(pictures)
    return Index.from_features(names, [gift.gift_features(pictures[n]) for n in names], gift_parts=True)


# -- known answers ------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_the_query_itself_ranks_first_with_the_top_score(index, method):
    for name in index.names:
        hits = index.search(name, top=len(index), method=method)
        assert hits[0][0] == name
        assert hits[0][1] == pytest.approx(1.0, abs=1e-12)
        assert all(s <= hits[0][1] for _, s in hits)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert DEFAULT_METHOD in METHODS


@pytest.mark.parametrize("method", METHODS)
def test_near_duplicate_ranks_above_a_very_different_image(index, pictures, method):
    # the query comes from outside (pixels), the ramp itself is excluded
    hits = index.search(pictures["ramp"], top=len(index), method=method, exclude=["ramp"])
    names = [n for n, _ in hits]
    assert "ramp" not in names
    assert names[0] == "ramp-noisy"
    assert names.index("ramp-noisy") < names.index("checker")
    assert names.index("ramp-noisy") < names.index("rings")
    scores = dict(hits)
    assert scores["ramp-noisy"] > scores["checker"] and scores["ramp-noisy"] > scores["noise"]


def test_a_feature_present_in_every_image_contributes_nothing(pictures):
    a, b = pictures["rings"], pictures["disc"]
    fa = gift.gift_features(a)
    # three copies of one image: every feature is in every image, so cf = 1, w = 0 everywhere
    same = Index.from_features(["a1", "a2", "a3"], [fa, fa, fa], gift_parts=True)
    assert np.all(same.collection_frequency[same.matrix.indices] == 1.0)
    assert np.array_equal(same.scores("a1", method="gift"), np.zeros(3))
    # [A, A, B]: whatever B shares with A is in all three images, so B scores exactly 0 ...
    idx = Index.from_features(["a1", "a2", "b"], [fa, fa, gift.gift_features(b)], gift_parts=True)
    ids_a, _ = fa.to_sparse()
    ids_b = idx._row_query(2).ids
    shared = np.intersect1d(ids_a, ids_b)
    assert shared.size > 0                                # ... although they do share features
    assert np.all(idx.collection_frequency[shared] == 1.0)
    s = idx.scores("a1", method="gift")
    assert s[0] == s[1] == 1.0 and s[2] == 0.0
    # ... and a feature only the two copies have has cf = 2/3, weight log(3/2)^2
    only_a = np.setdiff1d(ids_a, ids_b)
    assert np.allclose(idx.collection_frequency[only_a], 2 / 3)


def test_histogram_idf_switch_is_gifts_plain_intersection(index):
    with_idf = reference_gift_scores(index, "checker", histogram_idf=True)
    without = reference_gift_scores(index, "checker", histogram_idf=False)
    assert np.allclose(index.scores("checker", "gift", histogram_idf=True), with_idf, rtol=1e-12, atol=1e-15)
    assert np.allclose(index.scores("checker", "gift", histogram_idf=False), without, rtol=1e-12, atol=1e-15)
    assert not np.allclose(with_idf, without)


# -- the vectorised scores equal a plain implementation of the formulas ------------------------------
def _features_dict(index: Index, i: int) -> dict[int, float]:
    m = index.matrix
    a, b = m.indptr[i], m.indptr[i + 1]
    return dict(zip(m.indices[a:b].tolist(), m.data[a:b].astype(np.float64).tolist()))


def _is_histogram(layout, j: int) -> bool:
    return layout.colour_hist <= j < layout.gabor_blocks or j >= layout.gabor_hist


def reference_gift_scores(index: Index, query: str, histogram_idf: bool = True) -> np.ndarray:
    """GIFT's classical idf, feature by feature, as CQInvertedFile::keepScore does it."""
    lay = index.layout
    docs = [_features_dict(index, i) for i in range(len(index))]
    q = docs[index.position(query)]
    n = len(docs)
    scores = np.zeros(n)
    own = 0.0
    for j, qv in q.items():
        df = sum(1 for d in docs if j in d)
        w = math.log(n / df) ** 2
        if _is_histogram(lay, j):
            wh = w if histogram_idf else 1.0
            own += qv * wh
            for i, d in enumerate(docs):
                if j in d:
                    scores[i] += min(qv, d[j]) * wh
        else:
            own += w
            for i, d in enumerate(docs):
                if j in d:
                    scores[i] += w
    return scores / own


def reference_intersection(fq: gift.GiftFeatures, fd: gift.GiftFeatures) -> float:
    """The four-part histogram intersection straight from the features."""
    def quant(counts, total):
        return np.rint(255 * np.asarray(counts, np.float64) / total).astype(np.float32) / np.float32(255)

    blocks = np.mean(fq.block_colours == fd.block_colours)
    hq, hd = quant(fq.colour_counts, 65536).astype(np.float64), quant(fd.colour_counts, 65536).astype(np.float64)
    colour = np.minimum(hq / hq.sum(), hd / hd.sum()).sum()
    gabor = np.mean(fq.gabor_bands == fd.gabor_bands)
    gq = quant(fq.gabor_band_counts.reshape(12, 10), 256).astype(np.float64)
    gd = quant(fd.gabor_band_counts.reshape(12, 10), 256).astype(np.float64)
    gq /= gq.sum(axis=1, keepdims=True)
    gd /= gd.sum(axis=1, keepdims=True)
    gab_hist = np.minimum(gq, gd).sum(axis=1).mean()
    return (blocks + colour + gabor + gab_hist) / 4


def test_gift_scores_equal_the_reference(index):
    for name in ("ramp", "disc", "rings"):
        ref = reference_gift_scores(index, name)
        assert np.allclose(index.scores(name, method="gift"), ref, rtol=1e-12, atol=1e-15)


def test_intersection_scores_equal_the_reference(index, pictures):
    feats = {n: gift.gift_features(pictures[n]) for n in index.names}
    for name in ("ramp", "disc", "dark"):
        got = index.scores(name, method="intersection")
        ref = [reference_intersection(feats[name], feats[n]) for n in index.names]
        assert np.allclose(got, ref, rtol=1e-6, atol=1e-6)


def test_every_kind_of_query_gives_the_same_scores(index, pictures, tmp_path):
    rgb = pictures["stripes"]
    feats = gift.gift_features(rgb)
    path = tmp_path / "stripes.ppm"
    write_netpbm(path, rgb)
    row = medfeat.extract(path, families=["gift"])
    kinds = [feats, feats.to_sparse(), row, str(path), path, rgb, medfeat.read_image(path), "stripes"]
    for method in METHODS:
        expected = index.scores(feats, method=method)
        for q in kinds:
            got = index.scores(q, method=method)
            if method == "hellinger" and isinstance(q, tuple):  # GIFT's (ids, values): histogram in 1/255 steps
                assert np.allclose(got, expected, atol=0.02), type(q)
            else:
                assert np.array_equal(got, expected), type(q)


def test_a_gift_fts_file_is_a_query(index, pictures, tmp_path):
    ids, values = gift.gift_features(pictures["checker"]).to_sparse()
    gift.write_fts(tmp_path / "q.fts", ids, values)
    assert index.search(gift.read_fts(tmp_path / "q.fts"), top=1, method="gift") == [("checker", 1.0)]
    assert index.search(gift.read_fts(tmp_path / "q.fts"), top=1)[0][0] == "checker"


def test_sparse_rows_equal_gifts_own_form(index, pictures):
    for i, name in enumerate(index.names):
        ids, values = gift.gift_features(pictures[name]).to_sparse()
        q = index._row_query(i)
        assert np.array_equal(q.ids, ids)
        assert np.array_equal(q.values.view(np.uint32), values.view(np.uint32))


def test_search_options(index):
    n = len(index)
    assert len(index.search("ramp", top=100)) == n
    assert index.search("ramp", top=0) == []
    mask = np.zeros(n, bool)
    mask[index.position("ramp")] = True
    assert index.search("ramp", top=1, exclude=mask)[0][0] == "ramp-noisy"
    assert index.search("ramp", top=1, exclude="ramp")[0][0] == "ramp-noisy"
    assert len(index.search("ramp", top=n, exclude=index.names)) == 0
    with pytest.raises(ValueError, match="unknown method"):
        index.search("ramp", method="cosine")
    with pytest.raises(ValueError, match="grey levels"):
        index.search(gift.gift_features(make_image("ramp"), grey_levels=16))
    with pytest.raises(InputError, match="file not found"):
        index.search("no-such-image.png")
    # ties keep index order: two identical images
    f = gift.gift_features(make_image("checker"))
    twins = Index.from_features(["x", "y", "z"], [f, f, gift.gift_features(make_image("ramp"))], gift_parts=True)
    for method in METHODS:
        assert [n for n, _ in twins.search("y", method=method)][:2] == ["x", "y"]


def test_grey_levels_follow_the_features():
    f16 = [gift.gift_features(make_image(k), grey_levels=16) for k in ("ramp", "rings")]
    idx = Index.from_features(["a", "b"], f16, gift_parts=True)
    assert idx.grey_levels == 16 and idx.matrix.shape[1] == gift.id_layout(16).n_features
    assert idx.search(make_image("ramp"), top=1)[0][0] == "a"   # pixels: described with 16 greys
    with pytest.raises(ValueError, match="different grey levels"):
        Index.from_features(["a", "b"], [f16[0], gift.gift_features(make_image("ramp"))])


# -- saving and loading -------------------------------------------------------------------------
def test_save_load_round_trip(index, tmp_path):
    index.skipped.append(("bad.png", "bad.png: file not found"))
    try:
        path = tmp_path / "idx.npz"
        index.save(path)
        back = Index.load(path)
    finally:
        index.skipped.pop()
    assert back.names == index.names and back.grey_levels == index.grey_levels
    assert (back.matrix != index.matrix).nnz == 0 and back.matrix.dtype == np.float32
    assert np.array_equal(back.codes, index.codes) and np.array_equal(back.hists, index.hists)
    assert back.skipped == [("bad.png", "bad.png: file not found")]
    for method in METHODS:
        assert back.search("rings", method=method) == index.search("rings", method=method)
    with np.load(path, allow_pickle=False) as z:              # no pickles inside
        assert {"names_utf8", "names_offsets", "vectors", "indptr", "indices", "data", "codes", "hists"} <= set(z.files)
        assert int(z["version"]) == 2


def test_load_refuses_what_is_not_an_index(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        Index.load(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(InputError, match="not a medfeat retrieval index"):
        Index.load(tmp_path / "text.npz")
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    with pytest.raises(InputError, match="not a medfeat retrieval index"):
        Index.load(tmp_path / "other.npz")
    # a damaged index: feature ids out of range are refused before any compiled code sees them
    Index.from_features(["a"], [gift.gift_features(make_image("rings"))], gift_parts=True).save(tmp_path / "ok.npz")
    with np.load(tmp_path / "ok.npz", allow_pickle=False) as z:
        parts = {k: z[k] for k in z.files}
    parts["indices"] = parts["indices"].copy()
    parts["indices"][3] = 10 ** 6
    np.savez(tmp_path / "damaged.npz", **parts)
    with pytest.raises(InputError, match="damaged.npz: not a readable"):
        Index.load(tmp_path / "damaged.npz")


def test_empty_and_bad_images(tmp_path):
    good = tmp_path / "good.ppm"
    write_netpbm(good, make_image("rings"))
    bad = tmp_path / "bad.pgm"
    bad.write_bytes(b"P5\n4 4\n255\n\x00")
    idx = Index.from_images([good, bad])
    assert idx.names == [str(good)] and len(idx.skipped) == 1 and idx.skipped[0][0] == str(bad)
    with pytest.raises(InputError):
        Index.from_images([good, bad], errors="raise")
    empty = Index.from_images([bad])
    assert len(empty) == 0 and empty.search(good) == []


# -- from a real production's features.parquet --------------------------------------------------
def test_index_from_production_table_equals_index_from_images(tmp_path):
    from medfeat.production.engine import Production
    from medfeat.production.options import BackendSpec, PlanOptions

    data = tmp_path / "data"
    data.mkdir()
    paths = []
    for i, kind in enumerate(("ramp", "rings", "disc", "checker", "dark")):
        p = data / f"im{i}.ppm"
        write_netpbm(p, make_image(kind, seed=i))
        paths.append(p)
    small = data / "small.pgm"                       # not 256 x 256: GIFT's resize applies
    write_netpbm(small, make_image("stripes")[:120, :90, 0])
    paths.append(small)
    bad = data / "zbad.pgm"
    bad.write_bytes(b"P5\n4 4\n255\n\x00")
    run_dir = tmp_path / "run"
    Production(run_dir, str(data), "default-2d", ("gift",), PlanOptions(images_per_job=3)).run(
        BackendSpec("local", workers=1))
    table = run_dir / "features.parquet"
    from_table = Index.from_table(table, gift_parts=True)
    from_images = Index.from_images(paths, grey_levels=4, gift_parts=True)   # the production's default greys
    assert np.array_equal(Index.from_table(table).vectors, from_table.vectors)
    assert [s[0] for s in from_table.skipped] == [str(bad)] and "zbad.pgm" in from_table.skipped[0][1]
    assert sorted(from_table.names) == sorted(from_images.names) == sorted(map(str, paths))
    for name in from_images.names:
        i, j = from_images.position(name), from_table.position(name)
        a, b = from_images._row_query(i), from_table._row_query(j)
        assert np.array_equal(a.ids, b.ids)
        assert np.array_equal(a.values.view(np.uint32), b.values.view(np.uint32))
        assert np.array_equal(a.codes, b.codes) and np.array_equal(a.hists, b.hists)
        assert np.array_equal(a.vector, b.vector)
    # the table's rows rebuild GIFT's sparse form exactly (gift.features_of_row)
    for row in pq.read_table(table).to_pylist():
        if row["error"]:
            continue
        ids, values = gift.features_of_row(row)
        q = from_table._row_query(from_table.position(row["image"]))
        assert np.array_equal(q.ids, ids) and np.array_equal(q.values.view(np.uint32), values.view(np.uint32))
    for method in METHODS:
        for name in from_images.names:
            assert dict(from_table.search(name, top=10, method=method)) == \
                pytest.approx(dict(from_images.search(name, top=10, method=method)), rel=1e-12, abs=1e-15)
    # the production packs the codes in one column; the same table with 3,698 gift columns indexes the same
    packed = pq.read_table(table)
    assert "gift_codes" in packed.column_names and "gift_block_000" not in packed.column_names
    wide = tmp_path / "wide.parquet"
    pq.write_table(unpack_gift_codes(packed), wide)
    from_wide = Index.from_table(wide, gift_parts=True)
    assert from_wide.names == from_table.names and from_wide.skipped == from_table.skipped
    assert np.array_equal(from_wide.vectors, from_table.vectors)
    assert (from_wide.matrix != from_table.matrix).nnz == 0 and np.array_equal(from_wide.codes, from_table.codes)


def test_from_table_refuses_packed_codes_no_gift_image_has(tmp_path):
    import pyarrow as pa

    rgb = make_image("rings", seed=3)
    row = medfeat.extract(rgb[np.newaxis], families=["gift"])
    good = wide_table([ImageResult("a.ppm", "", row)], medfeat.feature_columns(None, ["gift"]), pack_gift=True)
    pq.write_table(good, tmp_path / "good.parquet")
    assert Index.from_table(tmp_path / "good.parquet").names == ["a.ppm"]
    codes = bytearray(good["gift_codes"][0].as_py())
    codes[5] = 200                                   # a block colour beyond GIFT's 166
    bad = good.set_column(good.column_names.index("gift_codes"), "gift_codes",
                          pa.array([bytes(codes)], pa.binary(3412)))
    pq.write_table(bad, tmp_path / "bad.parquet")
    with pytest.raises(InputError, match="block colours outside 0..165"):
        Index.from_table(tmp_path / "bad.parquet")
    short = good.set_column(good.column_names.index("gift_codes"), "gift_codes", pa.array([b"\x00" * 10], pa.binary(10)))
    pq.write_table(short, tmp_path / "short.parquet")
    with pytest.raises(InputError, match="not 3412 bytes per row"):
        Index.from_table(tmp_path / "short.parquet")


def test_from_table_refuses_tables_without_gift_features(tmp_path):
    import pyarrow as pa

    pq.write_table(pa.table({"image": ["a"], "stat_mean": [1.0]}), tmp_path / "f.parquet")
    with pytest.raises(InputError, match="no gift features"):
        Index.from_table(tmp_path / "f.parquet")
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="not a readable Parquet"):
        Index.from_table(tmp_path / "x.parquet")
    with pytest.raises(InputError, match="no such file"):
        Index.from_table(tmp_path / "missing.parquet")


# -- the CLI ------------------------------------------------------------------------------------
@pytest.fixture
def image_files(tmp_path, pictures):
    paths = []
    for name in ("ramp", "ramp-noisy", "rings", "checker", "disc"):
        p = tmp_path / f"{name}.ppm"
        write_netpbm(p, pictures[name])
        paths.append(p)
    return paths


def test_cli_index_and_search_json(image_files, tmp_path):
    idx = tmp_path / "idx.npz"
    r = CliRunner().invoke(app, ["index", *map(str, image_files), "-o", str(idx)])
    assert r.exit_code == 0, r.output
    assert "indexed 5 images" in r.stdout
    r = CliRunner().invoke(app, ["search", str(idx), "--like", str(image_files[0]), "--top", "3", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)
    assert isinstance(hits, list) and len(hits) == 3
    assert all(set(h) == {"image", "score"} and isinstance(h["score"], float) for h in hits)
    assert hits[0] == {"image": str(image_files[0]), "score": 1.0}
    assert hits[1]["image"] == str(image_files[1])
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    r = CliRunner().invoke(app, ["search", str(idx), "--like", str(image_files[2]), "--method", "intersection"])
    assert r.exit_code == 2 and "--gift-parts" in r.stderr and str(idx) in r.stderr
    r = CliRunner().invoke(app, ["index", *map(str, image_files), "-o", str(idx), "--gift-parts"])
    assert r.exit_code == 0 and "GIFT's parts" in r.stdout, r.output
    r = CliRunner().invoke(app, ["search", str(idx), "--like", str(image_files[2]), "--method", "intersection"],
                           env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "rank" in r.stdout and "score" in r.stdout and "rings.ppm" in r.stdout
    # an external query image (not in the index), and an indexed name that is not a file
    q = tmp_path / "q.pgm"
    write_netpbm(q, noisy(make_image("checker"), seed=9)[..., 0])
    r = CliRunner().invoke(app, ["search", str(idx), "--like", str(q), "--json", "--top", "1"])
    assert json.loads(r.stdout)[0]["image"] == str(image_files[3])


def test_cli_index_from_a_table_and_grey_levels(image_files, tmp_path):
    table = tmp_path / "f.parquet"
    r = CliRunner().invoke(app, ["extract", *map(str, image_files), "--families", "gift", "-o", str(table)])
    assert r.exit_code == 0, r.output
    idx = tmp_path / "t.npz"
    r = CliRunner().invoke(app, ["index", str(table), "-o", str(idx)])
    assert r.exit_code == 0, r.output
    assert Index.load(idx).names == list(map(str, image_files))
    r = CliRunner().invoke(app, ["index", str(table), "-o", str(idx), "--grey-levels", "16"])
    assert r.exit_code == 2 and "4 grey levels" in r.stderr
    r = CliRunner().invoke(app, ["index", *map(str, image_files), "-o", str(idx), "--grey-levels", "16"])
    assert r.exit_code == 0 and Index.load(idx).grey_levels == 16


def test_cli_bad_inputs_exit_2_with_one_line_naming_the_file(image_files, tmp_path):
    idx = tmp_path / "idx.npz"
    bad = tmp_path / "bad.pgm"
    bad.write_bytes(b"P5\n4 4\n255\n\x00")
    r = CliRunner().invoke(app, ["index", str(image_files[0]), str(bad), "-o", str(idx)])
    assert r.exit_code == 2
    assert r.stderr.strip().count("\n") == 0 and str(bad) in r.stderr
    assert Index.load(idx).names == [str(image_files[0])]         # the good image is indexed
    cases = [
        (["search", str(tmp_path / "missing.npz"), "--like", str(image_files[0])], "missing.npz"),
        (["search", str(image_files[0]), "--like", str(image_files[0])], str(image_files[0])),
        (["search", str(idx), "--like", str(tmp_path / "nope.png")], "nope.png"),
        (["search", str(idx), "--like", str(bad)], "bad.pgm"),
        (["index", str(tmp_path / "missing.parquet"), "-o", str(idx)], "missing.parquet"),
        (["index", str(bad), "-o", str(tmp_path / "none.npz")], "bad.pgm"),
    ]
    for args, name in cases:
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert name in r.stderr.splitlines()[0] and r.stderr.startswith("medfeat: error:"), (args, r.stderr)
    assert not (tmp_path / "none.npz").exists()
    r = CliRunner().invoke(app, ["search", str(idx), "--like", str(image_files[0]), "--method", "cosine"])
    assert r.exit_code == 2 and "--method" in r.stderr




# -- the default method: the descriptor, format 2 without GIFT's parts, format 1 files ---------------
def reference_descriptor(f: gift.GiftFeatures) -> np.ndarray:
    """The "hellinger" descriptor straight from its definition (module docstring)."""
    counts = np.asarray(f.colour_counts, np.float64).copy()
    counts = np.delete(counts, gift.N_CHROMATIC)                    # the darkest grey: background
    h = counts / counts.sum() if counts.sum() else counts
    fg = f.block_colours[:256] != gift.N_CHROMATIC                  # the 16 x 16 blocks = the Gabor blocks
    bands = f.gabor_bands.reshape(12, 256)
    g = np.zeros((12, 10))
    if fg.any():
        for k in range(12):
            g[k] = np.bincount(bands[k][fg], minlength=10) / fg.sum()
    return np.rint(255 * np.sqrt(np.concatenate([h, g.ravel()])))


def reference_hellinger_scores(index: Index, query: str) -> np.ndarray:
    v = index.vectors.astype(np.float64) / 255
    q = v[index.position(query)]
    split = index.layout.n_colours - 1
    var = v.var(axis=0)
    d = ((v[:, :split] - q[:split]) ** 2).sum(1) / (2 * var[:split].sum()) \
        + 2 * ((v[:, split:] - q[split:]) ** 2).sum(1) / (2 * var[split:].sum())
    return 1 / (1 + d)


def test_descriptor_and_scores_equal_the_definition(pictures):
    names = list(pictures)
    feats = [gift.gift_features(pictures[n], grey_levels=8) for n in names]
    idx = Index.from_features(names, feats)
    assert not idx.has_gift_parts and idx.grey_levels == 8
    for f, row in zip(feats, idx.vectors):
        assert np.array_equal(row, reference_descriptor(f))
    # a grey collection stores no chromatic column: constant columns add the same to every image
    assert idx._vec.shape[1] < idx.vectors.shape[1]
    for name in ("ramp", "checker", "disc"):
        assert np.allclose(idx.scores(name), reference_hellinger_scores(idx, name), rtol=1e-9, atol=1e-12)
    # the darkest grey is background: a black border does not change the colour histogram part
    bordered = pictures["checker"].copy()
    bordered[:, :64] = 0
    fb = gift.gift_features(bordered, grey_levels=8)
    split = gift.N_CHROMATIC + 8 - 1
    assert np.array_equal(reference_descriptor(fb)[:split], reference_descriptor(feats[names.index("checker")])[:split])
    with pytest.raises(ValueError, match="GIFT's parts"):
        idx.search("ramp", method="gift")


def test_format_2_round_trip_without_gift_parts(pictures, tmp_path):
    names = [f"päth/{k}.png" for k in pictures] + ["dup", "dup"]   # non-ASCII names, and a name twice
    feats = [gift.gift_features(pictures[k], grey_levels=8) for k in pictures]
    idx = Index.from_features(names, feats + feats[:2], skipped=[("bad.png", "bad.png: unreadable")])
    idx.save(tmp_path / "i.npz")
    back = Index.load(tmp_path / "i.npz")
    assert back.names == names and back.grey_levels == 8 and back.weights == idx.weights
    assert np.array_equal(back.vectors, idx.vectors) and back.skipped == idx.skipped
    assert not back.has_gift_parts
    for q in names[:3]:
        assert back.search(q) == idx.search(q)
    assert back.rows("dup") == [len(names) - 2, len(names) - 1]
    assert all(n != "dup" for n, _ in back.search("dup", exclude=["dup"], top=20))


def _save_format_1(index: Index, path: Path) -> None:
    """What medfeat wrote before the format-2 index (GIFT's parts only)."""
    m = index.matrix
    np.savez(path, format=np.array("medfeat-gift-index"), version=np.array(1),
             grey_levels=np.array(index.grey_levels), names=np.array(index.names, dtype=str),
             indptr=m.indptr.astype(np.int64), indices=m.indices.astype(np.int32), data=m.data.astype(np.float32),
             codes=index.codes, hists=index.hists, skipped=np.array([], dtype=str),
             skipped_reasons=np.array([], dtype=str))


def test_format_1_files_load_and_newer_ones_are_refused(index, tmp_path):
    _save_format_1(index, tmp_path / "v1.npz")
    old = Index.load(tmp_path / "v1.npz")
    assert old.names == index.names and old.has_gift_parts
    for method in ("gift", "intersection"):
        assert old.search("rings", method=method) == index.search("rings", method=method)
    # the descriptor from GIFT's parts: the colour histogram in 1/255 steps, so close, not equal
    assert np.abs(old.vectors.astype(int) - index.vectors.astype(int)).max() <= 8
    assert [n for n, _ in old.search("ramp", top=3)] == [n for n, _ in index.search("ramp", top=3)]
    with np.load(tmp_path / "v1.npz") as z:
        parts = {k: z[k] for k in z.files}
    parts["version"] = np.array(3)
    np.savez(tmp_path / "v3.npz", **parts)
    with pytest.raises(InputError, match="format version 3") as exc:
        Index.load(tmp_path / "v3.npz")
    assert "\n" not in str(exc.value) and "v3.npz" in str(exc.value)
    r = CliRunner().invoke(app, ["search", str(tmp_path / "v3.npz"), "--like", "rings"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "rebuild it" in r.stderr


# -- the one-pass top k at scale, against brute force -------------------------------------------------
def _scale_bench():
    spec = importlib.util.spec_from_file_location("index_scale", ROOT / "bench" / "index_scale.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def big_index():
    """20,000 synthetic GIFT feature sets (bench/index_scale.py's generator, 8 grey levels)."""
    bench = _scale_bench()
    bases = bench.base_features(40, seed=1)
    blocks, counts, bands = bench.perturbed(bases, 20_000, np.random.default_rng(2))
    feats = [gift.GiftFeatures(blocks[i].astype(np.int16), counts[i], np.zeros((3, 4, 256)),
                               bands[i].reshape(3, 4, 256).astype(np.uint8), 8) for i in range(len(blocks))]
    return Index.from_features([f"img{i:05d}" for i in range(len(feats))], feats), feats


def _brute_force(index: Index, query, top: int, exclude=None) -> list:
    s = index.scores(query)
    keep = np.ones(s.size, bool) if exclude is None else ~exclude
    rows = np.flatnonzero(keep)
    order = rows[np.lexsort((rows, -s[rows]))][:top]
    return [(index.names[i], float(s[i])) for i in order]


def test_top_k_equals_brute_force_on_20000_rows(big_index):
    idx, feats = big_index
    assert len(idx) == 20_000 and idx._vec.shape[1] <= 127      # a grey collection: no chromatic column
    rng = np.random.default_rng(3)
    for i in rng.choice(len(idx), 5, replace=False):
        name = idx.names[i]
        hits = idx.search(name, top=10)
        assert hits[0] == (name, 1.0)                           # an indexed image is its own top hit
        assert hits == _brute_force(idx, name, 10)
        mask = rng.random(len(idx)) < 0.3
        for top in (1, 10, 100):
            assert idx.search(feats[i], top=top, exclude=mask) == _brute_force(idx, feats[i], top, mask)
    # ties keep index order: a second copy of an image ranks right after the first
    twins = Index.from_features(["a", "b", "c"], [feats[0], feats[1], feats[0]])
    assert [n for n, _ in twins.search("c", top=3)][:2] == ["a", "c"]
    assert twins.search("a", top=10) == _brute_force(twins, "a", 10)


# -- the held-out evaluation --------------------------------------------------------------------
def _bench_module():
    spec = importlib.util.spec_from_file_location("retrieval_eval", ROOT / "bench" / "retrieval_eval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _RankedIndex:
    """A stand-in index whose rankings are given by hand."""

    def __init__(self, ranking: dict[str, list[str]]):
        self.names = list(ranking)
        self.ranking = ranking

    def search(self, name, top, method, exclude, histogram_idf):
        allowed = {n for n, ex in zip(self.names, exclude) if not ex}
        return [(n, 1.0) for n in self.ranking[name] if n in allowed][:top]


def test_split_rule_and_precision_are_hand_checkable():
    bench = _bench_module()
    tuning, held_out = bench.split_patients(["P3", "P1", "P2", "P4", "P5", "P1"])
    assert tuning == ["P1", "P3", "P5"] and held_out == ["P2", "P4"]
    # a1, a2: label A, volume 1; a3: label A, volume 2; b1, b2: label B, volumes 3 and 4
    labels = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "b2": "B"}
    groups = {"a1": 1, "a2": 1, "a3": 2, "b1": 3, "b2": 4}
    ranking = {"a1": ["a2", "b1", "a3", "b2"],    # a2 excluded (own volume): b1, a3 -> 1/2
               "a2": ["a3", "a1", "b2", "b1"],    # a1 excluded: a3, b2 -> 1/2
               "a3": ["a1", "a2", "b1", "b2"],    # a1, a2 -> 2/2
               "b1": ["b2", "a1", "a2", "a3"],    # b2, a1 -> 1/2
               "b2": ["a1", "a2", "a3", "b1"]}    # a1, a2 -> 0/2
    r = bench.precision_at_k(_RankedIndex(ranking), labels, groups, k=2)
    assert r["queries"] == 5
    assert r["precision_at_10"] == pytest.approx((0.5 + 0.5 + 1 + 0.5 + 0) / 5)
    assert r["per_modality"] == {"A": pytest.approx(2 / 3), "B": pytest.approx(0.25)}
    assert r["worst_query"] == 0.0


def test_sts_held_out_modality_precision(tmp_path):
    """STS CT / MR / PET slices of the five held-out patients, the index's defaults (never tuned on
    them): bench/retrieval_eval.py measured 0.945 (MR/PET window min..max) and 0.991 (percentiles)."""
    require_shared("data", "sts", "nifti")
    bench = _bench_module()
    patients = sorted(p.name for p in bench.STS.iterdir() if p.is_dir())
    _, held_out = bench.split_patients(patients)
    records = bench.make_slices(tmp_path, 5, "minmax", patients=set(held_out))
    r = bench.evaluate_set(records, held_out, DEFAULT_METHOD, DEFAULT_GREY_LEVELS)
    assert r["queries"] == len(records) == 75
    assert set(r["per_modality"]) == {"CT", "MR", "PET"}
    assert r["precision_at_10"] >= 0.93, r
    old = bench.evaluate_set(records, held_out, "gift", 4)          # GIFT's own, the old default
    assert r["precision_at_10"] > old["precision_at_10"] + 0.1, (r, old)
