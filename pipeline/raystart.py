"""A local Ray head without the two daemons a pipeline run never uses: the autoscaler monitor and the log monitor.

``ray.init`` on a fresh machine starts, besides the GCS and the raylet (and the raylet's dashboard and
runtime-env agents, which it needs), the autoscaler's ``monitor.py`` and ``log_monitor.py``. A pipeline run
on a local instance has a fixed number of CPUs (nothing to autoscale) and starts Ray with
``log_to_driver=False`` (no worker log is streamed to the driver: the log monitor only tails files nobody
reads). The two cost ~1 CPU second to start (each a Python process importing Ray; on the 2-core bench
machine, serial time before the first unit runs) and ~6 CPU ms per second while the run lasts
(``BENCHMARKS.md``, issue 17).

``ray.init`` has no argument for them, though its node parameters do (``RayParams.no_monitor``,
``include_log_monitor``: what ``ray start --no-monitor`` sets); :func:`lean_head` sets them on the head
node ``ray.init`` creates, for the duration of that call only. Where a Ray version lacks either parameter
nothing is changed and Ray starts as it always did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def lean_head(enabled: bool = True) -> Iterator[None]:
    """Within the block, a head node started in this process runs no autoscaler monitor and no log monitor
    (``enabled=False``: Ray's defaults, e.g. with the dashboard asked for)."""
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
    if not (hasattr(probe, "no_monitor") and hasattr(probe, "include_log_monitor")):
        yield
        return
    original = ray_node.Node.__init__

    def init(self, ray_params, *args, **kwargs):
        if kwargs.get("head") or (args and args[0] is True):
            ray_params.no_monitor = True
            ray_params.include_log_monitor = False
        return original(self, ray_params, *args, **kwargs)

    ray_node.Node.__init__ = init
    try:
        yield
    finally:
        ray_node.Node.__init__ = original
