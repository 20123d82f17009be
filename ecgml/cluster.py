"""A Dask client for parallel work: a LocalCluster of single-threaded worker processes by default, or a
running scheduler (`tcp://host:8786`, a real cluster) when an address is given."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any


@contextlib.contextmanager
def dask_client(workers: int = 2, address: str | None = None) -> Iterator[Any]:
    """A `dask.distributed.Client`; the local cluster it may have started is closed on exit."""
    from dask.distributed import Client, LocalCluster

    if address:
        with Client(address) as client:
            yield client
        return
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as lc,
        Client(lc) as client,
    ):
        yield client


def map_on_dask(
    fn: Callable[..., Any],
    items: Sequence[Any],
    workers: int = 2,
    address: str | None = None,
    on_done: Callable[[], None] | None = None,
) -> list[Any]:
    """`[fn(item) for item in items]` computed on Dask, results in the items' order."""
    from dask.distributed import as_completed

    with dask_client(workers, address) as client:
        futures = [client.submit(fn, item, pure=False) for item in items]
        for _ in as_completed(futures):
            if on_done is not None:
                on_done()
        return [f.result() for f in futures]
