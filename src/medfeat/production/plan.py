"""Plan a production: find the dataset's images and split them deterministically into jobs.

A dataset is a folder (searched recursively), a glob pattern, a CSV list (``image[,mask]`` per
line, optional header), or any of these behind an fsspec URL (``s3://bucket/images/``,
``sftp://host/data/*.dcm``). Images are sorted by their path so that the same dataset always gives
the same jobs, whatever order the filesystem lists them in.
"""
from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import asdict, dataclass, field

import fsspec

from medfeat.errors import InputError

# Extensions medfeat reads; a folder's other files (READMEs, manifests) are not images.
IMAGE_SUFFIXES = (".ppm", ".pgm", ".pnm", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom",
                  ".nii", ".nii.gz", ".ima")


@dataclass(frozen=True)
class Item:
    """One image of the dataset (and its mask, if any), as URLs fsspec can open."""

    image: str
    mask: str | None = None
    size: int = 0
    mtime: str = ""


@dataclass
class Job:
    """A job: a fixed list of items, numbered from 0 in plan order."""

    job_id: int
    items: list[Item] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"job-{self.job_id:05d}"


def _is_image(path: str) -> bool:
    p = path.lower()
    return p.endswith(IMAGE_SUFFIXES) or "." not in p.rsplit("/", 1)[-1]  # DICOM files often lack a suffix


def _info(fs, path: str) -> tuple[int, str]:
    try:
        info = fs.info(path)
    except FileNotFoundError:
        raise InputError(path, "listed in the dataset but not found") from None
    return int(info.get("size") or 0), str(info.get("mtime") or info.get("LastModified") or info.get("created") or "")


def _url(fs, path: str) -> str:
    return fs.unstrip_protocol(path) if fs.protocol not in ("file", ("file", "local"), "local") else path


def discover(dataset: str) -> list[Item]:
    """All images of ``dataset`` (folder, glob, CSV list or fsspec URL), sorted by path."""
    fs, root = fsspec.core.url_to_fs(dataset)
    items: list[Item] = []
    if root.lower().endswith(".csv") and fs.isfile(root):
        base = root.rsplit("/", 1)[0] if "/" in root else ""
        with fs.open(root, "rt", newline="") as fh:
            rows = list(csv.reader(fh))
        if rows and rows[0] and rows[0][0].strip().lower() in ("image", "path", "file"):
            rows = rows[1:]
        for n, row in enumerate(rows, 1):
            if not row or not row[0].strip():
                continue
            img, msk = row[0].strip(), (row[1].strip() if len(row) > 1 and row[1].strip() else None)
            resolve = lambda p: p if ("://" in p or p.startswith("/") or not base) else f"{base}/{p}"  # noqa: E731
            size, mtime = _info(fs, resolve(img))
            items.append(Item(_url(fs, resolve(img)), _url(fs, resolve(msk)) if msk else None, size, mtime))
    elif any(ch in root for ch in "*?["):
        for path in fs.glob(root):
            if fs.isfile(path):
                size, mtime = _info(fs, path)
                items.append(Item(_url(fs, path), None, size, mtime))
    elif fs.isdir(root):
        for path, info in fs.find(root, detail=True).items():
            if info.get("type", "file") == "file" and _is_image(path):
                items.append(Item(_url(fs, path), None, int(info.get("size") or 0),
                                  str(info.get("mtime") or info.get("LastModified") or "")))
    elif fs.isfile(root):
        size, mtime = _info(fs, root)
        items.append(Item(_url(fs, root), None, size, mtime))
    else:
        raise InputError(dataset, "dataset not found: expected a folder, a glob, a CSV list or an fsspec URL")
    items.sort(key=lambda it: it.image)
    if not items:
        raise InputError(dataset, "dataset holds no images")
    return items


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
        h.update(json.dumps(asdict(it), sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()
