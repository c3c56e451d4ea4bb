"""The bundler: packs and stages job bundles ahead of the workers, in its own thread.

It never touches the ledger (SQLite connections stay in the thread that made them): the driver
hands it everything a bundle needs, and it answers on the driver's event queue with
:class:`BundleReady` or :class:`BundleFailed`. Its busy time is the client's bundling cost (the
run table's "planning and bundle staging").
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

from medfeat.production.spec import is_reference_bundle
from medfeat.production.staging import Stage, stage_bundle


@dataclass
class BundleReady:
    job_id: int
    name: str
    sha256: str
    nbytes: int


@dataclass
class BundleFailed:
    job_id: int
    reason: str


class Bundler:
    """``put(job_id, name, items, staged)`` queues a bundle; ``start()``/``stop()`` run the thread."""

    def __init__(self, stage: Stage, events: "queue.Queue", reference: bool = False):
        self.stage = stage
        self.reference = reference  # bundles list local inputs' paths (see staging.write_bundle)
        self.events = events
        self.work: queue.Queue = queue.Queue()
        self.busy_s = 0.0
        self._busy = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="medfeat-bundler", daemon=True)

    def put(self, job_id: int, name: str, items: list, staged: dict | None = None, force: bool = False) -> None:
        """Stage job ``job_id``'s bundle as ``name``. ``staged`` (name, sha256, bytes) is a bundle
        staged by an earlier session: reused when it is still there, unless ``force``."""
        self.work.put((job_id, name, items, staged, force))

    def idle(self) -> bool:
        """Nothing queued and nothing being packed."""
        return self.work.empty() and not self._busy

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._busy = False
                job_id, name, items, staged, force = self.work.get(timeout=0.2)
                self._busy = True
            except queue.Empty:
                continue
            t0 = time.time()
            try:
                self.events.put(self._one(job_id, name, items, staged, force))
            except Exception as exc:  # the job fails with the reason; the others go on
                self.events.put(BundleFailed(job_id, f"staging the bundle failed: {type(exc).__name__}: {exc}"))
            finally:
                self.busy_s += time.time() - t0

    def _one(self, job_id, name, items, staged, force) -> BundleReady:
        if staged and staged.get("bundle"):
            # an earlier session's bundle serves if it is still there and of this session's kind
            same_kind = is_reference_bundle(staged["bundle"]) == self.reference
            if not force and same_kind and self.stage.exists(staged["bundle"]):
                return BundleReady(job_id, staged["bundle"], staged["bundle_sha256"], staged["bundle_bytes"] or 0)
            if force or not same_kind:
                self.stage.delete(staged["bundle"])
        sha, nbytes = stage_bundle(self.stage, name, items, reference=self.reference)  # streamed: never whole in memory
        return BundleReady(job_id, name, sha, nbytes)
