"""The Dask executor: the only module that imports dask (tests/unit/test_architecture.py enforces it).

Dask is a scheduler at the edge here, like MLflow: ``client.map`` over buckets of module-level functions of
``pipelines.scaleout``, results gathered in key order. A local cluster is worker processes on loopback with the
dashboard off; a process cluster needs the ``if __name__ == "__main__":`` guard in a script that starts one (the CLI
and the flows are imported, never run as ``__main__`` by the workers).

pandas 3 pitfall: dask turns ``str`` columns into ``string`` (pd.NA semantics) unless ``dataframe.convert-string`` is
False, and workers take the setting from the process that starts them, so it is set before the cluster starts.
Workers of an existing cluster need ``DASK_DATAFRAME__CONVERT_STRING=False`` in their environment.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import dask
from distributed import Client, LocalCluster

from pipelines.config import ComputeSettings
from pipelines.errors import BucketFailedError, ClusterError
from pipelines.scaleout import bucket_failed

#: Set before a cluster starts (workers inherit it): keep pandas 3 ``str`` columns as they are.
DASK_CONFIG = MappingProxyType({"dataframe.convert-string": False})


@dataclass(frozen=True)
class DaskExecutor:
    """``client.map`` over the items with one task per item, gathered in item order.

    A task whose worker dies is rerun elsewhere by the scheduler (up to ``distributed.scheduler.allowed-failures``);
    an exception raised by a task stops the map: the other tasks are cancelled and :class:`BucketFailedError` names
    the first failed bucket in key order.
    """

    client: Client
    threads: int

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, name: str) -> list[Any]:
        if not items:
            return []
        token = dask.base.tokenize(name, id(items), len(items), object())
        keys = [f"{name.replace(' ', '-')}-{k}-{token}" for k in range(len(items))]
        futures = self.client.map(fn, list(items), key=keys, pure=False)
        out = []
        try:
            for k, fut in enumerate(futures):
                try:
                    out.append(fut.result())
                except Exception as exc:  # the task's own exception (or KilledWorker after too many deaths)
                    raise bucket_failed(name, k, len(items), exc) from exc
        except BucketFailedError:
            self.client.cancel(futures)
            raise
        return out


def _local_cluster(compute: ComputeSettings) -> LocalCluster:
    return LocalCluster(n_workers=compute.workers, threads_per_worker=compute.threads_per_worker, processes=True,
                        host="127.0.0.1", dashboard_address=None, memory_limit=compute.memory_limit)


@contextlib.contextmanager
def open_executor(compute: ComputeSettings) -> Iterator[DaskExecutor]:
    """A Dask executor for ``compute.cluster`` ("local": a LocalCluster started and closed here; an address: a client
    of that existing cluster, left running)."""
    if compute.cluster == "none":
        raise ClusterError("compute.cluster is none: no cluster to open; the flows then run in this process")
    with dask.config.set({**DASK_CONFIG, "distributed.scheduler.allowed-failures": compute.allowed_failures}):
        with contextlib.ExitStack() as stack:
            try:
                if compute.cluster == "local":
                    cluster = stack.enter_context(_local_cluster(compute))
                    client = stack.enter_context(Client(cluster))
                    threads = compute.threads_per_worker
                else:
                    client = stack.enter_context(Client(compute.cluster, timeout="20s"))
                    threads = min(client.nthreads().values(), default=1)
            except (OSError, TimeoutError) as exc:
                raise ClusterError(f"cannot reach the Dask cluster {compute.cluster!r} ({type(exc).__name__}: "
                                   f"{' '.join(str(exc).split())}); check compute.cluster or start the scheduler"
                                   ) from exc
            yield DaskExecutor(client=client, threads=threads)


__all__ = ["DASK_CONFIG", "DaskExecutor", "open_executor"]
