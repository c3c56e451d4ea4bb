"""A rich progress bar for a production session: jobs done / running / failed, images/s, ETA."""
from __future__ import annotations

import time


class Progress:
    """Does nothing without a console (tests, ``--quiet``)."""

    def __init__(self, console, jobs: int, images: int):
        self.console, self.jobs, self.images = console, jobs, images
        self.done = self.failed = self.running = self.images_done = 0
        self.t0 = time.time()
        self.bar = None

    def __enter__(self):
        if self.console is not None:
            from rich.progress import BarColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

            self.bar = RichProgress(TextColumn("[bold]jobs"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                    TextColumn("{task.fields[info]}"), TimeRemainingColumn(), console=self.console,
                                    transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task("jobs", total=self.jobs, info="")
        return self

    def update(self, done: int = 0, failed: int = 0, images: int = 0, running: int | None = None) -> None:
        self.done += done
        self.failed += failed
        self.images_done += images
        if running is not None:
            self.running = running
        if self.bar is not None:
            rate = self.images_done / max(time.time() - self.t0, 1e-9)
            self.bar.update(self.task, completed=self.done + self.failed,
                            info=f"running {self.running}  failed {self.failed}  {rate:.0f} images/s")

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)
