"""Plan a production: find the dataset's images (and their masks) and split them into jobs.

A dataset is a folder (searched recursively), a glob pattern, a CSV list, or any of these behind
an fsspec URL (``s3://bucket/images/``, ``sftp://host/data/*.dcm``). Images are sorted by their
path so that the same dataset always gives the same jobs, whatever order the filesystem lists them.

**A CSV cohort** has a header with an ``image`` column and optionally ``mask``, ``label`` and
``roi`` (an RTSTRUCT ROI name); every other column is an identifier passed through to the output,
as PyRadiomics' batch mode does (``patient,image,mask,label``). A CSV without a header is
``image[,mask]`` per line. Relative paths are relative to the CSV's folder.

**A folder cohort**: masks are never taken for images. A file is a mask when its name says so
(``*_mask.*``, ``*-mask.*``, ``*_seg.*``, ``*_label.*``, ``*_labels.*``, ``*_roi.*``) or it lies in
a folder named ``mask``/``masks``/``label``/``labels``/``seg``, and a DICOM RTSTRUCT or SEG file is
always one. An image gets its mask by the first rule that finds one:

1. ``--mask-pattern IMAGE_GLOB:MASK_GLOB`` (one ``*`` each, on paths relative to the dataset),
   e.g. ``*_t1.nii.gz:*_t1_seg.nii.gz``;
2. ``X_image.EXT`` -> ``X_mask.*`` (and ``X.EXT`` -> ``X_mask.*``) in the same folder;
3. ``.../image/REST`` -> ``.../mask/REST`` (``images``/``masks`` too); a mask folder holding one
   RTSTRUCT stands for it;
4. an RTSTRUCT or SEG file beside a DICOM series (or alone in the series' sibling mask folder).

A folder of DICOM slices of one series is one image (the folder), not one image per slice;
folders holding several series keep one item per file.
"""
from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import re
import warnings
from dataclasses import asdict, dataclass, field

import fsspec

from medfeat.errors import InputError

# Extensions medfeat reads; a folder's other files (READMEs, manifests) are not images.
IMAGE_SUFFIXES = (".ppm", ".pgm", ".pnm", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom",
                  ".nii", ".nii.gz", ".ima")


@dataclass(frozen=True)
class Item:
    """One image of the dataset (and its mask, if any), as URLs fsspec can open; ``label`` and
    ``roi`` pick the region in the mask; ``ids`` are the cohort's identifier columns (name, value)."""

    image: str
    mask: str | None = None
    size: int = 0
    mtime: str = ""
    label: int | None = None
    roi: str | None = None
    ids: tuple[tuple[str, str], ...] = ()


@dataclass
class Job:
    """A job: a fixed list of items, numbered from 0 in plan order."""

    job_id: int
    items: list[Item] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"job-{self.job_id:05d}"


MASK_NAME = re.compile(r"[_-](mask|seg|segmentation|label|labels|roi)$", re.I)  # on the name before its first dot
MASK_DIRS = {"mask", "masks", "label", "labels", "seg", "segmentation"}
IMAGE_DIRS = {"image": "mask", "images": "masks"}
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
MASK_MODALITIES = {"RTSTRUCT", "SEG"}
CSV_COLUMNS = ("image", "mask", "label", "roi")


def _is_image(path: str) -> bool:
    p = path.lower()
    return p.endswith(IMAGE_SUFFIXES) or "." not in p.rsplit("/", 1)[-1]  # DICOM files often lack a suffix


def _is_dicom_name(path: str) -> bool:
    p = path.lower()
    return p.endswith(DICOM_SUFFIXES) or "." not in p.rsplit("/", 1)[-1]


def _looks_like_mask(rel: str) -> bool:
    parts = rel.split("/")
    return bool(MASK_NAME.search(parts[-1].split(".", 1)[0])) or any(d.lower() in MASK_DIRS for d in parts[:-1])


# a name this file system cannot hold: that image's own error, not the run's
_BAD_NAME_ERRNOS = {errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP}


def _info(fs, path: str) -> tuple[int, str]:
    try:
        info = fs.info(path)
    except (FileNotFoundError, ValueError):  # missing, or a NUL byte in the name: the job reports it for
        return -1, "missing"                 # this image (one line naming it); the others go on
    except OSError as exc:
        if exc.errno not in _BAD_NAME_ERRNOS:  # a store refusing access fails the planning, in one line
            raise
        return -1, "missing"
    return int(info.get("size") or 0), str(info.get("mtime") or info.get("LastModified") or info.get("created") or "")


def _url(fs, path: str) -> str:
    return fs.unstrip_protocol(path) if fs.protocol not in ("file", ("file", "local"), "local") else path


def _dicom_header(fs, path: str) -> tuple[str, str] | None:
    """(Modality, SeriesInstanceUID) of a DICOM file, or None when it is not DICOM."""
    import pydicom

    try:
        with fs.open(path, "rb") as fh:
            head = fh.read(132)
            if len(head) < 132 or head[128:132] != b"DICM":
                return None
            fh.seek(0)
            with warnings.catch_warnings():  # odd values in a header are the reader's business, later
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(fh, stop_before_pixels=True,
                                     specific_tags=["Modality", "SeriesInstanceUID", "SOPClassUID"])
                modality = str(ds.get("Modality", "") or "")
                sop = str(ds.get("SOPClassUID", "") or "")
                series = str(ds.get("SeriesInstanceUID", "") or "")
    except Exception:
        return None
    if sop in ("1.2.840.10008.5.1.4.1.1.481.3", "1.2.840.10008.5.1.4.1.1.66.4"):  # RT Structure Set, Segmentation
        modality = "RTSTRUCT" if sop.endswith("481.3") else "SEG"
    return modality, series


def _csv_items(fs, root: str, label: int | None, roi: str | None) -> list[Item]:
    base = root.rsplit("/", 1)[0] if "/" in root else ""
    with fs.open(root, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        return []
    head = [c.strip().lower() for c in rows[0]]

    def resolve(p: str) -> str:
        return p if ("://" in p or p.startswith("/") or not base) else f"{base}/{p}"

    items = []
    if head and head[0] in ("path", "file"):
        head[0] = "image"
    if "image" in head:
        ids = [(i, rows[0][i].strip()) for i, h in enumerate(head) if h not in CSV_COLUMNS]
        col = {h: head.index(h) for h in CSV_COLUMNS if h in head}
        for n, row in enumerate(rows[1:], 2):
            get = lambda k: row[col[k]].strip() if k in col and col[k] < len(row) and row[col[k]].strip() else None  # noqa: E731
            img = get("image")
            if not img:
                raise InputError(root, f"line {n}: no image")
            row_label = get("label")
            try:
                row_label = int(float(row_label)) if row_label is not None else label
            except ValueError:
                raise InputError(root, f"line {n}: label {row_label!r} is not an integer") from None
            msk = get("mask")
            size, mtime = _info(fs, resolve(img))
            items.append(Item(_url(fs, resolve(img)), _url(fs, resolve(msk)) if msk else None, size, mtime,
                              row_label, get("roi") or roi,
                              tuple((name, row[i].strip() if i < len(row) else "") for i, name in ids)))
        return items
    for row in rows:  # no header: image[,mask]
        img, msk = row[0].strip(), (row[1].strip() if len(row) > 1 and row[1].strip() else None)
        if not img:
            continue
        size, mtime = _info(fs, resolve(img))
        items.append(Item(_url(fs, resolve(img)), _url(fs, resolve(msk)) if msk else None, size, mtime, label, roi))
    return items


def _odd_entries(fs, root: str) -> dict[str, dict]:
    """Entries of a local folder that are not regular files or folders -- broken links, link loops,
    FIFOs, devices -- which a listing leaves out: planned as images, so that each gets its error
    row (the bundler refuses them) instead of vanishing."""
    if "file" not in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return {}
    import stat

    odd = {}
    for folder, dirs, names in os.walk(root):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            p = os.path.join(folder, name)
            try:
                st = os.stat(p)
            except OSError:  # broken link, loop
                odd[p] = {"size": -1, "mtime": "unreadable"}
                continue
            if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
                odd[p] = {"size": -1, "mtime": "not-a-regular-file"}
    return odd


def _parse_pattern(pattern: str | None) -> tuple[str, str] | None:
    if not pattern:
        return None
    if pattern.count(":") != 1 or any(side.count("*") != 1 for side in pattern.split(":")):
        raise InputError(f"--mask-pattern {pattern}", "expected IMAGE_GLOB:MASK_GLOB with one * on each side, "
                         "e.g. '*_image.nii.gz:*_mask.nii.gz'")
    img, msk = pattern.split(":")
    return img, msk


def _folder_items(fs, root: str, label: int | None, roi: str | None, mask_pattern: str | None) -> list[Item]:
    root = root.rstrip("/")
    files = {p: info for p, info in fs.find(root, detail=True).items()
             if info.get("type", "file") == "file" and _is_image(p)}
    odd = _odd_entries(fs, root)
    files.update(odd)

    def rel(p: str) -> str:
        return p[len(root) + 1:] if p.startswith(root + "/") else p

    # DICOM: RTSTRUCT/SEG files are masks; a folder of one series' slices is one image
    masks: set[str] = {p for p in files if _looks_like_mask(rel(p))}
    series_dirs: dict[str, list[str]] = {}
    by_dir: dict[str, list[str]] = {}
    for p in files:
        if p not in masks and p not in odd and _is_dicom_name(p):
            by_dir.setdefault(p.rsplit("/", 1)[0], []).append(p)
    dicom_masks: dict[str, list[str]] = {}
    for d, paths in by_dir.items():
        uids, slices = set(), []
        for p in paths:
            head = _dicom_header(fs, p)
            if head is None:
                continue
            if head[0] in MASK_MODALITIES:
                masks.add(p)
                dicom_masks.setdefault(d, []).append(p)
            else:
                uids.add(head[1])
                slices.append(p)
        if len(slices) >= 2 and len(uids) == 1:
            series_dirs[d] = slices
    in_series = {p for paths in series_dirs.values() for p in paths}
    images = [p for p in files if p not in masks and p not in in_series] + list(series_dirs)
    pattern = _parse_pattern(mask_pattern)
    mask_set = set(masks) | {m.rsplit("/", 1)[0] for m in masks}

    def find_mask(img: str) -> str | None:
        r = rel(img)
        if pattern is not None:
            pre, post = pattern[0].split("*")
            if r.startswith(pre) and r.endswith(post) and len(r) >= len(pre) + len(post):
                stem = r[len(pre):len(r) - len(post) if post else len(r)]
                want = f"{root}/{pattern[1].replace('*', stem)}"
                if want in files or fs.exists(want):
                    return want
            return None
        folder, name = (img.rsplit("/", 1) + [""])[:2] if "/" in img else ("", img)
        stem, dot, ext = name.partition(".")
        candidates = []
        for key in ("_image", "-image", "_img"):
            if stem.lower().endswith(key):
                candidates.append(stem[: -len(key)] + key[0] + "mask")
        candidates.append(stem + "_mask")
        for c in candidates:
            for m in masks:
                if m.rsplit("/", 1)[0] == folder and m.rsplit("/", 1)[1].split(".", 1)[0] == c:
                    return m
        parts = r.split("/")
        for i, part in enumerate(parts[:-1] if img not in series_dirs else parts):
            twin = IMAGE_DIRS.get(part.lower())
            if twin is None:
                continue
            twin = twin if part.islower() else twin.capitalize()
            want = "/".join([root] + parts[:i] + [twin] + parts[i + 1:])
            if want in mask_set or want in files:
                return want
            twin_dir = "/".join([root] + parts[:i] + [twin])
            alone = [m for m in masks if m.rsplit("/", 1)[0] == twin_dir]
            if len(alone) == 1 and i == len(parts) - 2:  # image/x.nii.gz with mask/y.nii.gz, alone
                return alone[0]
            if img in series_dirs and want in {m.rsplit("/", 1)[0] for m in masks}:
                return want  # the mask folder holding the series' RTSTRUCT (or SEG)
        if img in series_dirs and len(dicom_masks.get(img, [])) == 1:
            return dicom_masks[img][0]
        return None

    items = []
    for img in images:
        msk = find_mask(img)
        if img in series_dirs:
            size, mtime = sum(int(files[p].get("size") or 0) for p in series_dirs[img]), \
                str(max(str(files[p].get("mtime") or "") for p in series_dirs[img]))
        else:
            size, mtime = int(files[img].get("size") or 0), str(files[img].get("mtime") or
                                                                 files[img].get("LastModified") or "")
        items.append(Item(_url(fs, img), _url(fs, msk) if msk else None, size, mtime, label, roi))
    return items


def discover(dataset: str, *, label: int | None = None, roi: str | None = None,
             mask_pattern: str | None = None) -> list[Item]:
    """All images of ``dataset`` (folder, glob, CSV cohort or fsspec URL) with their masks, sorted
    by path. ``label``/``roi`` apply to every item that does not name its own (CSV columns win)."""
    fs, root = fsspec.core.url_to_fs(dataset)
    items: list[Item] = []
    if root.lower().endswith(".csv") and fs.isfile(root):
        items = _csv_items(fs, root, label, roi)
    elif any(ch in root for ch in "*?["):
        for path in fs.glob(root):
            if fs.isfile(path) and not _looks_like_mask(path.rsplit("/", 1)[-1]):
                size, mtime = _info(fs, path)
                items.append(Item(_url(fs, path), None, size, mtime, label, roi))
    elif fs.isdir(root):
        items = _folder_items(fs, root, label, roi, mask_pattern)
    elif fs.isfile(root):
        size, mtime = _info(fs, root)
        items.append(Item(_url(fs, root), None, size, mtime, label, roi))
    else:
        raise InputError(dataset, "dataset not found: expected a folder, a glob, a CSV list or an fsspec URL")
    items.sort(key=lambda it: (it.image, it.mask or "", it.label if it.label is not None else -1, it.roi or ""))
    if not items:
        raise InputError(dataset, "dataset holds no images")
    return items


def item_of(row: dict) -> Item:
    """The plan item of a ledger ``images`` row."""
    ids = tuple(tuple(p) for p in json.loads(row["ids"])) if row.get("ids") else ()
    return Item(row["image"], row["mask"], label=row.get("label"), roi=row.get("roi"), ids=ids)


#: The most images a job gets when the user does not say (the 2009 production's bundle size).
MAX_AUTO_IMAGES_PER_JOB = 250
#: Jobs per worker the automatic job size aims at: enough for the tail policy to move work around.
JOBS_PER_WORKER = 4


def auto_images_per_job(n_images: int, workers: int) -> int:
    """Images per job when the user gives none: about :data:`JOBS_PER_WORKER` jobs per worker, at
    most :data:`MAX_AUTO_IMAGES_PER_JOB` images each (30 images on 2 workers: 8 jobs of 4, not one
    job that leaves a worker idle; 22,250 images: 89 jobs of 250)."""
    per = -(-max(n_images, 1) // (JOBS_PER_WORKER * max(workers, 1)))
    return max(1, min(MAX_AUTO_IMAGES_PER_JOB, per))


def plan_jobs(items: list[Item], images_per_job: int) -> list[Job]:
    """Split ``items`` (already in plan order) into consecutive jobs of ``images_per_job``."""
    if images_per_job < 1:
        raise InputError(None, "--images-per-job must be >= 1")
    return [Job(i // images_per_job, items[i:i + images_per_job]) for i in range(0, len(items), images_per_job)]


def fingerprint(items: list[Item]) -> str:
    """A cheap identity of the dataset: every image and mask URL with its size and modification time.

    Used to refuse resuming a run whose dataset changed; the bundles' per-file sha256 catch the rest.
    """
    h = hashlib.sha256()
    for it in items:
        d = asdict(it)
        for key, default in (("label", None), ("roi", None), ("ids", [])):
            if d[key] in (default, ()):  # (plans made before cohorts keep their fingerprint)
                del d[key]
        h.update(json.dumps(d, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()
