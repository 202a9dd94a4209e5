"""A local Ray head without the three daemons a pipeline run never uses: the API server, the autoscaler monitor
and the log monitor.

``ray.init`` on a fresh machine starts, besides the GCS and the raylet (and the raylet's dashboard and
runtime-env agents, which it needs), three Python processes:

- the API server (``dashboard.py``): with ``include_dashboard=False`` it loads only Ray's usage-stats module,
  yet ``ray.init`` waits (polling every 0.1 s) until it has published its address before it starts the
  raylet: serial time before the first task;
- the autoscaler's ``monitor.py``: a local instance has a fixed number of CPUs, nothing to scale;
- ``log_monitor.py``: it streams the workers' logs to the driver, which a run starts with
  ``log_to_driver=False``: it tails files nobody reads.

Together they cost ~2 CPU seconds to start (each imports Ray) and ~6 CPU ms per second while the run lasts
(``BENCHMARKS.md``, issue 17). ``ray.init`` has no argument for them, though its node has (``RayParams``'s
``no_monitor`` and ``include_log_monitor``, what ``ray start --no-monitor`` sets; ``Node.start_api_server``):
:func:`lean_head` sets them on the head node ``ray.init`` creates, for the duration of that call only.
Where a Ray version lacks one of them nothing is changed and Ray starts as it always did. Ray's job and
state APIs (``ray job``, ``ray list``) need the API server: ``OBELICS_RAY_DASHBOARD=1`` starts Ray with
all of it (and the dashboard, on loopback).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def lean_head(enabled: bool = True) -> Iterator[None]:
    """Within the block, a head node started in this process runs no API server, autoscaler monitor or log
    monitor (``enabled=False``: Ray's defaults, e.g. with the dashboard asked for)."""
    if not enabled:
        yield
        return
    try:
        from ray._private import node as ray_node
        from ray._private.parameter import RayParams
    except ImportError:  # another Ray layout: start it unchanged
        yield
        return
    probe = RayParams()
    if not (hasattr(probe, "no_monitor") and hasattr(probe, "include_log_monitor")
            and hasattr(ray_node.Node, "start_api_server")):
        yield
        return
    original_init, original_api = ray_node.Node.__init__, ray_node.Node.start_api_server

    def init(self, ray_params, *args, **kwargs):
        if kwargs.get("head") or (args and args[0] is True):
            ray_params.no_monitor = True
            ray_params.include_log_monitor = False
        return original_init(self, ray_params, *args, **kwargs)

    def no_api_server(self, *args, **kwargs):  # only a head node starts one
        return None

    ray_node.Node.__init__, ray_node.Node.start_api_server = init, no_api_server
    try:
        yield
    finally:
        ray_node.Node.__init__, ray_node.Node.start_api_server = original_init, original_api
