"""Plans and staging with real files and real tarballs."""
from __future__ import annotations

import io
import json
import tarfile

import pytest

from medfeat.errors import InputError
from medfeat.production import plan
from medfeat.production.staging import Stage, StageError, build_bundle, sha256_bytes, unpack_bundle


def _files(root, names):
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(n.encode() * 10)
    return root


def test_discover_folder_glob_and_csv(tmp_path):
    root = _files(tmp_path / "d", ["b/2.png", "a/1.pgm", "c.ppm", "notes.txt", "series/IM0001"])
    items = plan.discover(str(root))
    names = [i.image.rsplit("d/", 1)[1] for i in items]
    assert names == ["a/1.pgm", "b/2.png", "c.ppm", "series/IM0001"]  # sorted, README-like files left out
    assert [i.image for i in plan.discover(str(root / "*" / "*.p*"))] == [str(root / "a/1.pgm"), str(root / "b/2.png")]
    csvf = tmp_path / "list.csv"
    csvf.write_text("image,mask\nd/c.ppm,d/a/1.pgm\nd/b/2.png\n")
    items = plan.discover(str(csvf))
    assert [(i.image, i.mask) for i in items] == [(str(root / "b/2.png"), None), (str(root / "c.ppm"), str(root / "a/1.pgm"))]
    with pytest.raises(InputError, match="not found"):
        plan.discover(str(tmp_path / "nothing"))
    bad = tmp_path / "bad.csv"
    bad.write_text("d/missing.png\n")
    # a missing file stays in the plan (its job reports it as that image's error row)
    assert [(i.image, i.size) for i in plan.discover(str(bad))] == [(str(tmp_path / "d/missing.png"), -1)]


def test_folder_cohort_pairing_rules(tmp_path):
    root = _files(tmp_path / "c", ["p1/ct_image.nii.gz", "p1/ct_mask.nii.gz", "p1/pet.nii.gz", "p1/pet_mask.nii.gz",
                                   "p2/image/scan.nii.gz", "p2/mask/scan.nii.gz", "p3/t1.nii.gz", "p3/t1_seg.nii.gz",
                                   "p3/t2.nii.gz", "p4/labels/x.nii.gz", "p4/y-label.png"])
    got = {i.image.rsplit("c/", 1)[1]: (i.mask or "").rsplit("c/", 1)[-1] for i in plan.discover(str(root))}
    # masks are never images; each image gets the mask its name or folder points at
    assert got == {"p1/ct_image.nii.gz": "p1/ct_mask.nii.gz", "p1/pet.nii.gz": "p1/pet_mask.nii.gz",
                   "p2/image/scan.nii.gz": "p2/mask/scan.nii.gz", "p3/t1.nii.gz": "", "p3/t2.nii.gz": ""}
    got = {i.image.rsplit("c/", 1)[1]: (i.mask or "").rsplit("c/", 1)[-1]
           for i in plan.discover(str(root), mask_pattern="p3/*.nii.gz:p3/*_seg.nii.gz", label=2)}
    assert got["p3/t1.nii.gz"] == "p3/t1_seg.nii.gz" and got["p3/t2.nii.gz"] == "" and got["p1/pet.nii.gz"] == ""
    assert {i.label for i in plan.discover(str(root), label=2)} == {2}
    for bad in ("*.nii.gz", "a*:b", "*a*:*b"):
        with pytest.raises(InputError, match="IMAGE_GLOB:MASK_GLOB"):
            plan.discover(str(root), mask_pattern=bad)


def test_csv_cohort_columns(tmp_path):
    root = _files(tmp_path / "d", ["a.nii.gz", "a_m.nii.gz", "b.nii.gz"])
    csvf = tmp_path / "cohort.csv"
    csvf.write_text("Patient,image,mask,label,roi,site\nP1,d/a.nii.gz,d/a_m.nii.gz,3,,Lyon\nP2,d/b.nii.gz,,,GTV,Oslo\n")
    items = plan.discover(str(csvf), label=7)
    assert [(i.image.rsplit("d/", 1)[1], i.label, i.roi, i.ids) for i in items] == [
        ("a.nii.gz", 3, None, (("Patient", "P1"), ("site", "Lyon"))),
        ("b.nii.gz", 7, "GTV", (("Patient", "P2"), ("site", "Oslo")))]
    csvf.write_text("image,label\nd/a.nii.gz,one\n")
    with pytest.raises(InputError, match="line 2: label 'one' is not an integer"):
        plan.discover(str(csvf))


def test_plan_is_deterministic_and_fingerprint_sees_changes(tmp_path):
    root = _files(tmp_path, [f"{i:03d}.pgm" for i in range(10)])
    items = plan.discover(str(root))
    jobs = plan.plan_jobs(items, 4)
    assert [len(j.items) for j in jobs] == [4, 4, 2] and [j.name for j in jobs] == ["job-00000", "job-00001", "job-00002"]
    assert plan.plan_jobs(plan.discover(str(root)), 4)[1].items == jobs[1].items
    fp = plan.fingerprint(items)
    (root / "005.pgm").write_bytes(b"changed content, longer than before")
    assert plan.fingerprint(plan.discover(str(root))) != fp


def test_bundle_round_trip_checks_hashes(tmp_path):
    root = _files(tmp_path / "in", ["x.pgm", "m.pgm", "series/a.dcm", "series/b.dcm"])
    items = [plan.Item(str(root / "x.pgm"), str(root / "m.pgm")), plan.Item(str(root / "series")),
             plan.Item(str(root / "gone.pgm"))]
    data, manifest_items = build_bundle(items)
    assert manifest_items[2]["error"] and "gone.pgm" in manifest_items[2]["error"]
    out = tmp_path / "out"
    manifest = unpack_bundle(data, out, sha256_bytes(data))
    first = manifest["items"][0]
    assert (out / first["image_member"]).read_bytes() == (root / "x.pgm").read_bytes()
    assert (out / first["mask_member"]).read_bytes() == (root / "m.pgm").read_bytes()
    assert first["sha256"] == sha256_bytes((root / "x.pgm").read_bytes())
    assert sorted(p.name for p in (out / manifest["items"][1]["image_member"]).iterdir()) == ["a.dcm", "b.dcm"]
    with pytest.raises(StageError, match="does not match the planned"):
        unpack_bundle(data, tmp_path / "o2", "0" * 64)
    corrupt = bytearray(data)
    pos = corrupt.find(b"x.pgmx.pgm")
    corrupt[pos] ^= 1  # flip one byte of a file's content: its own hash must catch it
    with pytest.raises(StageError, match="fails its sha256 check"):
        unpack_bundle(bytes(corrupt), tmp_path / "o3")


def _tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


@pytest.mark.parametrize("evil", ["/etc/passwd", "../escape", "files/../../escape", "link"])
def test_unsafe_bundles_are_refused(tmp_path, evil):
    manifest = json.dumps({"items": [], "files": {}}).encode()
    if evil == "link":
        info = tarfile.TarInfo("files/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        members = [_file("manifest.json", manifest), (info, None)]
    else:
        members = [_file("manifest.json", manifest), _file(evil)]
    with pytest.raises(StageError, match="unsafe path|not a regular file"):
        unpack_bundle(_tar(members), tmp_path / "out")
    assert not (tmp_path / "escape").exists()


def test_stage_put_is_atomic_and_get_round_trips(tmp_path):
    st = Stage(str(tmp_path / "stage"))
    st.put("results/job-1/a.parquet", b"abc")
    assert st.get("results/job-1/a.parquet") == b"abc"
    assert [p.name for p in (tmp_path / "stage/results/job-1").iterdir()] == ["a.parquet"]  # no temp left
    st2 = Stage("file://" + str(tmp_path / "stage"))
    assert st2.exists("results/job-1/a.parquet")
    st.delete("results/job-1/a.parquet")
    assert not st.exists("results/job-1/a.parquet")


def test_a_manifest_item_must_point_at_a_checked_member(tmp_path):
    """A manifest whose item names a path outside the bundle (``../``) or a file the tar does not
    hold is refused before anything is read (the worker would otherwise read outside its scratch)."""
    import io
    import json
    import tarfile

    secret = tmp_path / "secret.pgm"
    secret.write_bytes(b"P5\n2 2\n255\n\x01\x02\x03\x04")
    for member in ("../secret.pgm", "files/not-there.pgm", "/etc/passwd"):
        blob = b"P5\n2 2\n255\n\x00\x00\x00\x00"
        manifest = {"version": 1, "files": {"files/00000-image-a.pgm": sha256_bytes(blob)},
                    "items": [{"index": 0, "image": "a.pgm", "image_member": member, "mask_member": None,
                               "sha256": "", "error": ""}]}
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, data in (("manifest.json", json.dumps(manifest).encode()), ("files/00000-image-a.pgm", blob)):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        with pytest.raises(StageError, match="not one of the bundle's checked files"):
            unpack_bundle(buf.getvalue(), tmp_path / "scratch")


def test_links_fifos_and_devices_get_error_rows_not_silence(tmp_path):
    """Broken links, link loops and FIFOs in a folder dataset are planned, and their jobs give each
    an error row (never a hang on the FIFO); a regular image beside them is extracted."""
    import os

    from production_helpers import make_images, plan as plan_run, produce
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    make_images(data, 1)
    os.symlink(data / "nowhere.pgm", data / "broken.pgm")
    os.symlink(data / "loop-b.pgm", data / "loop-a.pgm")
    os.symlink(data / "loop-a.pgm", data / "loop-b.pgm")
    os.mkfifo(data / "pipe.pgm")
    os.symlink("/dev/zero", data / "zero.pgm")
    prod = plan_run(tmp_path / "run", data, 2)
    m = produce(prod, workers=1)
    rows = {os.path.basename(r["image"]): r["error"] for r in pq.read_table(tmp_path / "run" / "features.parquet").to_pylist()}
    assert rows["img-0000.ppm"] == ""
    assert "broken link" in rows["broken.pgm"] and "loop" in rows["loop-a.pgm"].lower() + rows["loop-b.pgm"].lower()
    assert "not a regular file" in rows["pipe.pgm"] and "not a regular file" in rows["zero.pgm"]
    assert m["failed_images"] == 5 and m["committed_jobs"] == m["jobs"]


@pytest.mark.parametrize("reference", [False, True])
def test_names_no_file_can_have_fail_their_image_not_the_job(tmp_path, reference):
    """A CSV cohort naming a path with a NUL byte or too long for the file system: planning keeps them
    (size -1), and the bundle records each one's one-line error while the job's good image goes in
    (a NUL byte raised ValueError from os.stat and failed the whole job; found by fuzzing)."""
    from medfeat.io import read_image
    from medfeat.production.staging import write_bundle

    good = tmp_path / "a.pgm"
    good.write_bytes(b"P5\n2 2\n255\n\x01\x02\x03\x04")
    nul, long = str(tmp_path / "b\0c.pgm"), str(tmp_path / ("x" * 300 + ".pgm"))
    csvf = tmp_path / "cohort.csv"
    csvf.write_text(f"image\n{good}\n{nul}\n{long}\n")
    items = plan.discover(str(csvf))
    assert sorted(it.image for it in items) == sorted([str(good), nul, long])
    assert [it.size for it in items if it.image != str(good)] == [-1, -1]
    _, _, manifest = write_bundle(io.BytesIO(), items, reference=reference)
    errors = {m["image"]: m["error"] for m in manifest}
    assert errors[str(good)] == ""
    assert errors[nul].endswith("file name holds a NUL byte: no such file") and "\n" not in errors[nul]
    assert "File name too long" in errors[long] and "\n" not in errors[long]
    for bad, why in ((nul, "NUL byte"), (long, "File name too long")):  # read directly: the same, as InputError
        with pytest.raises(InputError, match=why):
            read_image(bad)
