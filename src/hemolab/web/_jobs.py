"""Long runs of ``hemolab serve`` (a protocol over a population, a patient's fit and forecast)
in worker processes of their own, started with multiprocessing's *spawn* (JAX must never be
forked: its threads do not survive a fork). A worker reports progress and its result through
a queue; a monitor thread per job reads it. Cancelling terminates the worker (SIGTERM, then
SIGKILL): nothing of a half-done job is recorded, and an experiment it had begun shows as
``incomplete`` (design note 022).
"""

from __future__ import annotations

import importlib
import multiprocessing
import queue as queue_mod
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Job", "JobManager"]

MAX_PER_USER = 2
FINISHED = ("done", "failed", "cancelled")


@dataclass
class Job:
    id: str
    owner: str
    kind: str
    label: str
    status: str = "starting"  # starting, running, done, failed, cancelled
    done: int = 0
    total: int = 0
    stage: str = "starting a worker"
    message: str = ""
    result: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)
    ended: float | None = None
    process: Any = None
    on_result: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def to_json(self, *, with_result: bool = False) -> dict[str, Any]:
        doc = {
            "id": self.id, "owner": self.owner, "kind": self.kind, "label": self.label,
            "status": self.status, "done": self.done, "total": self.total, "stage": self.stage,
            "message": self.message, "created": self.created, "ended": self.ended,
            "elapsed_s": round((self.ended or time.time()) - self.created, 1),
        }  # fmt: skip
        if with_result:
            doc["result"] = self.result
        return doc


def _entry(target: str, args: dict[str, Any], out: Any) -> None:
    """The worker process: run ``module:function(args, report)``; one final message."""
    from hemolab._errors import HemolabError

    def report(stage: str, done: int = 0, total: int = 0) -> None:
        out.put(("progress", stage, done, total))

    try:
        module, _, name = target.partition(":")
        fn = getattr(importlib.import_module(module), name)
        out.put(("done", fn(args, report)))
    except HemolabError as exc:  # hemolab's messages name files and rows, never identifiers
        out.put(("failed", str(exc)))
    except Exception as exc:  # no traceback, no text that could quote data
        out.put(("failed", f"the job failed ({type(exc).__name__})"))


class JobManager:
    """The jobs of one server process, kept in memory (a restart forgets them)."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._ctx = multiprocessing.get_context("spawn")

    def submit(
        self,
        owner: str,
        kind: str,
        label: str,
        target: str,
        args: dict[str, Any],
        *,
        on_result: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> Job:
        """Start ``target`` (``module:function``) in a spawned worker; raise ``LookupError``
        when ``owner`` has MAX_PER_USER jobs running already."""
        with self._lock:
            running = [j for j in self._jobs.values()
                       if j.owner == owner and j.status not in FINISHED]  # fmt: skip
            if len(running) >= MAX_PER_USER:
                raise LookupError(f"at most {MAX_PER_USER} running jobs per user")
            job = Job(secrets.token_urlsafe(12), owner, kind, label, on_result=on_result)
            self._jobs[job.id] = job
        out = self._ctx.Queue()
        job.process = self._ctx.Process(target=_entry, args=(target, args, out), daemon=True)
        job.process.start()
        threading.Thread(target=self._monitor, args=(job, out), daemon=True).start()
        return job

    def _monitor(self, job: Job, out: Any) -> None:
        while True:
            try:
                message = out.get(timeout=0.2)
            except queue_mod.Empty:
                if job.status == "cancelled":
                    return
                if not job.process.is_alive():
                    try:  # the final message may land just after the process exits
                        message = out.get(timeout=0.5)
                    except queue_mod.Empty:
                        self._finish(job, "failed", "the worker stopped without a result")
                        return
                else:
                    continue
            if job.status == "cancelled":
                return
            if message[0] == "progress":
                _, job.stage, job.done, job.total = message
                job.status = "running"
            elif message[0] == "done":
                result = message[1]
                if job.on_result is not None:
                    try:
                        result = job.on_result(result)
                    except Exception as exc:
                        self._finish(job, "failed", f"the result could not be kept "
                                                    f"({type(exc).__name__})")  # fmt: skip
                        return
                job.result = result
                self._finish(job, "done", "")
                job.process.join(timeout=5)
                return
            else:
                self._finish(job, "failed", message[1])
                job.process.join(timeout=5)
                return

    def _finish(self, job: Job, status: str, message: str) -> None:
        with self._lock:
            if job.status in FINISHED:
                return
            job.status, job.message, job.ended = status, message, time.time()
            job.stage = status

    def visible(self, user: Any) -> list[Job]:
        """The user's jobs (an admin sees everyone's), newest first."""
        with self._lock:
            jobs = [j for j in self._jobs.values() if user.can("admin") or j.owner == user.name]
        return sorted(jobs, key=lambda j: -j.created)

    def get(self, job_id: str, user: Any) -> Job | None:
        job = self._jobs.get(job_id)
        if job is None or not (user.can("admin") or job.owner == user.name):
            return None
        return job

    def cancel(self, job: Job) -> bool:
        """Stop a job's worker; False when it had finished already."""
        with self._lock:
            if job.status in FINISHED:
                return False
            job.status, job.stage, job.ended = "cancelled", "cancelled", time.time()
        proc = job.process
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(timeout=3)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=3)
        return True

    def shutdown(self) -> None:
        for job in list(self._jobs.values()):
            self.cancel(job)
