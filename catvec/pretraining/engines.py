"""Where shard tasks run: `local` (one after another in this process, so peak memory is
one shard's) or `dask` (a dask.distributed cluster: one task per shard, in parallel).

    with open_engine(Extraction.of(cfg)) as run:
        results = run.map(fn, jobs)        # results in the order of jobs

The Dask engine connects before any input is read, so an unreachable scheduler costs a few
seconds and one line. Each task is submitted with retries, and the scheduler re-runs the
tasks of a worker that died, so a lost worker costs a retry, not the run. Tasks read their
shard from the input paths and write their corpus shard into a folder below OUT: with
workers on other machines, OUT and the input must be reachable from every worker under the
same paths (a shared file system; inputs may also be object-store URLs).
"""

from __future__ import annotations

import logging
import uuid

from catvec.base.errors import CatvecError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
RETRIES = 2
DASK_MISSING = "engine dask needs dask.distributed, which is not installed: pip install 'catvec[dask]'"


class LocalEngine:
    slots = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, jobs: list) -> list:
        return [fn(job) for job in jobs]


class DaskEngine:
    """A dask.distributed Client on `address`; map submits one task per job."""

    def __init__(self, address: str):
        self.address = address
        self.client = None
        self.slots = 1

    def __enter__(self):
        try:
            from distributed import Client
        except ImportError:
            raise CatvecError(DASK_MISSING) from None
        try:
            self.client = Client(self.address, timeout=f"{CONNECT_TIMEOUT_S}s", set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise CatvecError(f"scheduler {self.address}: cannot connect within {CONNECT_TIMEOUT_S} s "
                              f"({type(exc).__name__}); start one with `dask scheduler` and workers with "
                              "`dask worker ADDRESS`, or pass --engine local") from None
        threads = sum(w.get("nthreads", 1) for w in self.client.scheduler_info().get("workers", {}).values())
        self.slots = max(1, threads)
        log.info("dask: %s, %d worker thread(s)", self.address, threads)
        return self

    def __exit__(self, *exc):
        if self.client is not None:
            self.client.close()
        return False

    def map(self, fn, jobs: list) -> list:
        run = uuid.uuid4().hex[:8]
        futures = [self.client.submit(fn, job, key=f"catvec-shard-{run}-{i}", pure=False, retries=RETRIES)
                   for i, job in enumerate(jobs)]
        from distributed import as_completed

        # Each result is taken, and its future released, as soon as its task finishes: a
        # result left held on a worker that dies later would make the scheduler run the
        # finished task again (Prefect issue #15442 is that behaviour through prefect-dask).
        results = {}
        index = {future.key: i for i, future in enumerate(futures)}
        try:
            for future in as_completed(futures, loop=self.client.loop):
                results[index[future.key]] = future.result()
                future.release()
        finally:
            for future in futures:
                future.release()
        return [results[i] for i in range(len(jobs))]


def open_engine(extraction):
    """The engine an Extraction group names (engine local | dask, scheduler)."""
    if extraction.engine == "dask":
        return DaskEngine(extraction.scheduler)
    return LocalEngine()
