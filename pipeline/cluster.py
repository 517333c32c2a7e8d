"""dask.distributed for the pipeline: a LocalCluster sized to the machine, or an existing one.

One process per core with one thread each: the fill runs torch, which
parallelises poorly with other threads in the same process, and GDAL reads
scale across processes. Each worker's memory limit is its share of the
machine's RAM (80 % of it); torch's intra-op threads are pinned per worker
(``OMP_NUM_THREADS``/``torch.set_num_threads``) so workers never oversubscribe.

Which scheduler a run gets (:func:`choose_scheduler`): ``--scheduler`` when given;
otherwise in-process threads when the run has fewer spatial chunks than twice the
workers (a LocalCluster's start and the per-process imports then cost more than its
processes win), else a LocalCluster. On a cluster each worker loads the SF model once,
in the background as it starts (:class:`PreloadFiller`), not on its first fill task.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from distributed import Client, LocalCluster, WorkerPlugin

from pipeline import heap
from pipeline.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterSpec:
    """How to get workers.

    Attributes:
        scheduler: address of an existing scheduler (``tcp://host:8786``); None = local.
        workers: local worker processes (None = number of cores).
        threads_per_worker: threads per local worker.
        memory_limit: per-worker memory limit for local workers (bytes or "4GiB"; None = share
            of 80 % of the machine's memory).
        torch_threads: torch intra-op threads per worker.
        dashboard: serve the dask dashboard (needs bokeh) on a free port.
    """

    scheduler: str | None = None
    workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str | int | None = None
    torch_threads: int = 1
    dashboard: bool = True


def local_workers(spec: ClusterSpec) -> int:
    """Worker processes a LocalCluster of ``spec`` starts."""
    return spec.workers or max(1, os.cpu_count() or 1)


def choose_scheduler(spec: ClusterSpec, chunks: int) -> ClusterSpec:
    """``spec`` with in-process threads instead of a LocalCluster for runs of fewer than
    two chunks per worker (``chunks``: spatial chunks of all tiles); an explicit
    ``--scheduler`` stays."""
    if spec.scheduler is None and chunks < 2 * local_workers(spec):
        log.info("%d chunks for %d workers: in-process threads instead of a LocalCluster",
                 chunks, local_workers(spec))
        return replace(spec, scheduler="threads")
    return spec


class PreloadFiller(WorkerPlugin):
    """Loads a filler's model on each worker as it starts, in a background thread, so the
    first fill task does not wait for the torch import (the ingest runs meanwhile)."""

    name = "s1s2-gapfill-preload-filler"

    def __init__(self, filler: Any) -> None:
        self.filler = filler

    def setup(self, worker: Any) -> None:
        """Start the load; the worker takes tasks at once."""
        threading.Thread(target=self._load, args=(worker is not None,), name="preload-filler",
                         daemon=True).start()

    def _load(self, in_worker: bool) -> None:
        try:
            self.filler.preload()
        except Exception as exc:  # the fill task loads it again and reports the error
            log.warning("preloading the filler failed (%s: %s)", type(exc).__name__, exc)
        if in_worker:  # its modules and model live as long as the worker (pipeline.heap)
            heap.freeze_for_good()


def preload_filler(client: Client | None, filler: object) -> None:
    """Have every worker of ``client`` load ``filler``'s model once, in the background
    (fillers with a ``preload`` method); without a client (in-process threads) this
    process loads it in the background while the ingest runs."""
    if not callable(getattr(filler, "preload", None)):
        return
    plugin = PreloadFiller(filler)
    if client is None:
        plugin.setup(worker=None)
    else:
        client.register_plugin(plugin)


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def local_cluster_kwargs(spec: ClusterSpec) -> dict[str, object]:
    """Keyword arguments of the LocalCluster for ``spec`` (sized to this machine)."""
    n = local_workers(spec)
    mem = spec.memory_limit or int(0.8 * _total_memory() / n)
    env = {"OMP_NUM_THREADS": str(spec.torch_threads), "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    return {
        "n_workers": n,
        "threads_per_worker": spec.threads_per_worker,
        "processes": True,
        "memory_limit": mem,
        "dashboard_address": ":0" if spec.dashboard else None,
        "env": env,
    }


@contextmanager
def open_client(spec: ClusterSpec) -> Iterator[Client]:
    """A connected client: to ``spec.scheduler`` if given, else to a new LocalCluster."""
    if spec.scheduler:
        try:
            client = Client(spec.scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise InputError(
                f"--scheduler: cannot reach {spec.scheduler} ({exc}); start the scheduler "
                "first (dask scheduler) or leave --scheduler out for a local cluster"
            ) from None
        try:
            log.info("connected to %s (%d workers)", spec.scheduler,
                     len(client.scheduler_info().get("workers", {})))
            yield client
        finally:
            client.close()
        return
    kwargs = local_cluster_kwargs(spec)
    if spec.dashboard:
        try:
            import bokeh  # noqa: F401
        except ImportError:
            kwargs["dashboard_address"] = None
    with LocalCluster(**kwargs) as cluster, Client(cluster) as client:
        log.info("local dask cluster: %s workers x %s threads, %s per worker",
                 kwargs["n_workers"], kwargs["threads_per_worker"], kwargs["memory_limit"])
        yield client


@contextmanager
def client_for(spec: ClusterSpec) -> Iterator[Client | None]:
    """A dask.distributed client, or None for ``--scheduler threads`` (in-process threads)."""
    if spec.scheduler == "threads":
        yield None
        return
    with open_client(spec) as client:
        link = dashboard_link(client)
        if link:
            log.info("dask dashboard: %s", link)
        yield client


def dashboard_link(client: Client) -> str | None:
    """The dashboard URL, if one is served."""
    try:
        link = client.dashboard_link
    except Exception:  # no dashboard configured
        return None
    return str(link) if link else None
