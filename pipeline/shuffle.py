"""Where a global pass's tasks run, and the few file operations the passes do.

A global pass (``pipeline.dedup``) is key -> partition -> decide -> apply: map tasks hash-partition rows
into files, reduce tasks decide one partition each, apply tasks edit files. A *backend* runs these
tasks: :class:`LocalBackend` in this process, one after the other (no Ray at all; partitions are on
disk, so memory stays bounded), :class:`RayBackend` as Ray tasks on the local instance or a cluster.
Both run the same functions on the same files, so their results are identical.

The passes touch files only through the functions at the end of this module (size, Parquet reader,
Arrow IPC reader/writer, atomic commit, list, exists, remove), which go through :mod:`obelics.storage`:
the partition files may sit on a local disk or on object storage shared by every node.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from obelics import storage


class Shared:
    """A value every task reads (a decision broadcast once): ``get()`` returns it inside a task."""

    def __init__(self, value: Any):
        self._value = value

    def get(self) -> Any:
        return self._value


def shared_value(x: Any) -> Any:
    """``x.get()`` for a :class:`Shared`, else ``x``."""
    return x.get() if isinstance(x, Shared) else x


def _local_ray_on_loopback() -> None:
    """Make a local Ray listen on 127.0.0.1 only (GCS, raylet, workers, runtime-env agent).

    Ray binds its servers to the node's address, which it takes from the network unless it runs as a
    single-machine instance (its macOS/Windows mode, ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``): then the node
    address is loopback. The variable reaches the processes Ray starts; the constant is what this process
    already imported.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Start or join Ray: ``RAY_ADDRESS``/``address`` joins a cluster, else a local instance that listens
    on loopback only, dashboard off (``OBELICS_RAY_DASHBOARD=1``: on, on 127.0.0.1), whose processes end
    with this one however it ends (:mod:`pipeline.raywatch`)."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                              "ignore_reinit_error": True, "logging_level": logging.WARNING}
    if os.environ.get("OBELICS_RAY_DASHBOARD") == "1":  # asked for: on loopback only
        kwargs.update(include_dashboard=True, dashboard_host="127.0.0.1")
    if address:
        ray.init(address=address, **kwargs)
    else:
        _local_ray_on_loopback()
        from pipeline.raywatch import start_watchdog

        start_watchdog()
        num_cpus = num_cpus or int(os.environ.get("OBELICS_NUM_CPUS", 0)) or os.cpu_count()
        from pipeline.raystart import lean_head

        with lean_head(enabled=not kwargs["include_dashboard"]):  # no API server, autoscaler or log monitor
            ray.init(num_cpus=num_cpus, **kwargs)
    for name in ("ray", "ray.data", "ray._private"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import sys

    if "ray.data" in sys.modules:  # quiet Ray Data where a caller uses it (the pipeline runs plain Ray tasks;
        from ray.data import DataContext  # importing Ray Data only for this cost the driver ~0.4 CPU s)

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.execution_options.verbose_progress = False
        ctx.print_on_execution_start = False


class LocalBackend:
    """Tasks run in this process, in order: no Ray, no object store; memory is one task's."""

    name = "local"

    def put(self, value: Any) -> Shared:
        return Shared(value)

    def map(self, fn: Callable, calls: Iterable[tuple]) -> list:
        """``fn(*args)`` for each ``args`` in ``calls`` (a :class:`Shared` argument arrives as its value);
        results in order."""
        return [fn(*map(shared_value, args)) for args in calls]

    def imap(self, fn: Callable, calls: Iterable[tuple]) -> Iterator:
        """``fn(*args)`` for each ``args`` in ``calls``, yielded in order as the calls are taken from
        ``calls`` (a generator: the driver never holds every call or every result)."""
        for args in calls:
            yield fn(*map(shared_value, args))

    def map_unordered(self, fn: Callable, calls: Iterable[tuple], on_result: Callable) -> None:
        """``on_result(fn(*args))`` for each call, as results arrive (the driver holds one at a time)."""
        for args in calls:
            on_result(fn(*map(shared_value, args)))


IN_FLIGHT = 4096  # Ray tasks :meth:`RayBackend.imap` keeps submitted ahead of the one it yields


class _RayShared(Shared):
    def __init__(self, ref):
        self.ref = ref

    def get(self) -> Any:
        import ray

        return ray.get(self.ref)


def _ref(x: Any) -> Any:
    """A top-level task argument: a shared value's object ref (Ray passes the task its value)."""
    return x.ref if isinstance(x, _RayShared) else x


class RayBackend:
    """Tasks run as Ray tasks (one CPU each) on the local Ray instance or the cluster of ``RAY_ADDRESS``."""

    name = "ray"

    def __init__(self, address: str | None = None):
        ensure_ray(address)
        self._remote: dict = {}

    def _task(self, fn: Callable):
        import ray

        if fn not in self._remote:
            self._remote[fn] = ray.remote(num_cpus=1)(fn)
        return self._remote[fn]

    def put(self, value: Any) -> Shared:
        import ray

        return _RayShared(ray.put(value))

    def map(self, fn: Callable, calls: Iterable[tuple]) -> list:
        import ray

        task = self._task(fn)
        return ray.get([task.remote(*map(_ref, args)) for args in calls])

    def imap(self, fn: Callable, calls: Iterable[tuple]) -> Iterator:
        """``fn(*args)`` as Ray tasks, results yielded in order; at most ``IN_FLIGHT`` tasks submitted and
        not yet yielded, so the driver holds a window of calls and results, not a round's (a round of
        25 snapshots' shuffle is ~500,000 merge tasks)."""
        import ray

        task = self._task(fn)
        pending: deque = deque()
        for args in calls:
            pending.append(task.remote(*map(_ref, args)))
            if len(pending) >= IN_FLIGHT:
                yield ray.get(pending.popleft())
        while pending:
            yield ray.get(pending.popleft())

    def map_unordered(self, fn: Callable, calls: Iterable[tuple], on_result: Callable) -> None:
        import ray

        task = self._task(fn)
        refs = [task.remote(*map(_ref, args)) for args in calls]
        while refs:
            done, refs = ray.wait(refs, num_returns=1)
            on_result(ray.get(done[0]))


Backend = LocalBackend | RayBackend


def get_backend(use_ray: bool | None = None, address: str | None = None) -> Backend:
    """The Ray backend when ``use_ray`` (the run's ``run.use_ray``), else the local one.

    ``None`` means: Ray when it is already initialised in this process (a caller started it), else local.
    """
    if use_ray is None:
        import sys

        use_ray = "ray" in sys.modules and sys.modules["ray"].is_initialized()
    return RayBackend(address) if use_ray else LocalBackend()


# -- files: every file operation of the global passes (obelics.storage: local or object storage) ----
def join(folder: str | Path, *parts: str) -> str:
    return storage.join(folder, *parts)


def file_size(path: str) -> int:
    return storage.size(path)


def parquet_file(path: str) -> pq.ParquetFile:
    return storage.parquet_file(path)


def read_parquet(path: str, columns: list[str] | None = None) -> pa.Table:
    return storage.read_parquet(path, columns=columns)


def open_ipc(path: str):
    """An Arrow IPC file opened for reading (every read of the passes' partition files opens it here)."""
    return storage.open_input(path) if storage.is_remote(path) else pa.OSFile(str(path), "rb")


# Arrow's IPC reader and writer (de)compress a record batch's buffers on its CPU thread pool by default. The
# passes' batches are small (a partition's share of a task's rows: the 64-copy bench's MinHash decision writes
# ~2,800 batches of a few kB in ~175 files and reads them through ~1,700 opens), so the hand-off to the pool
# cost more than the lz4 itself: a file of 16 such batches 190 against 450 CPU us written, 110-180 against
# 320-900 read. A task also has one CPU (RayBackend: num_cpus=1), so its pages are (de)compressed on its own
# thread. The bytes written are the same.
IPC_READ = pa.ipc.IpcReadOptions(use_threads=False)
IPC_WRITE = pa.ipc.IpcWriteOptions(compression="lz4", use_threads=False)


def read_ipc_batches(path: str, indices: Iterable[int]) -> tuple[pa.Schema, list[pa.RecordBatch]]:
    """Record batches ``indices`` of an Arrow IPC file, with its schema."""
    with open_ipc(path) as src:
        r = pa.ipc.open_file(src, options=IPC_READ)
        return r.schema, [r.get_batch(int(i)) for i in indices]


def iter_ipc_batches(path: str, indices: Iterable[int]) -> Iterator[pa.RecordBatch]:
    """Record batches ``indices`` of an Arrow IPC file, one at a time (the file opened once)."""
    with open_ipc(path) as src:
        r = pa.ipc.open_file(src, options=IPC_READ)
        for i in indices:
            yield r.get_batch(int(i))


def temporary(path: str | Path) -> storage.AtomicFile:
    """The file to write ``path`` through; it appears under ``path`` on :func:`commit` (a temporary
    sibling renamed, or an upload completed), never half-written."""
    return storage.AtomicFile(path)


def commit(tmp: storage.AtomicFile, path: str | Path) -> None:
    """``tmp`` becomes ``path`` atomically (a reader sees all of it or nothing)."""
    tmp.commit()


def discard(tmp: storage.AtomicFile) -> None:
    tmp.abort()


def ipc_writer(tmp: storage.AtomicFile, schema: pa.Schema):
    """An Arrow IPC file writer (lz4, on the calling thread) into ``tmp`` (from :func:`temporary`; :func:`commit`
    it once closed)."""
    return pa.ipc.new_file(tmp.file, schema, options=IPC_WRITE)


def parquet_writer(tmp: storage.AtomicFile, schema: pa.Schema) -> pq.ParquetWriter:
    return pq.ParquetWriter(tmp.file, schema)


def write_parquet_atomic(path: str | Path, table: pa.Table) -> str:
    return storage.write_parquet_atomic(path, table)


def list_files(folder: str | Path, suffix: str) -> list[str]:
    """The files of ``folder`` whose name ends with ``suffix``, sorted (none if it does not exist)."""
    return [storage.join(folder, n) for n in storage.listdir(folder) if n.endswith(suffix)]


def exists(path: str | Path) -> bool:
    return storage.exists(path)


def make_dirs(folder: str | Path) -> None:
    storage.makedirs(folder)


def remove_file(path: str | Path) -> None:
    storage.remove(path)


def remove_tree(folder: str | Path) -> None:
    storage.remove_tree(folder)
