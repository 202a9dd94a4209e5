"""A real multi-node Ray run: a head and two worker nodes on this machine (loopback only), the inputs and
the work folder on the loopback S3 server, one worker node killed mid-run. The run finishes (its tasks
are retried on the surviving node) and its dataset equals the single-node run's.

The nodes share this machine's disk, but nothing is read from it: inputs, work files, markers and
outputs are all objects, so the run works the same on a cluster whose nodes share nothing but S3.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from obelics import storage
from tests.conftest import ROOT
from tests.pipeline.s3_server import s3  # noqa: F401 - the fixture
from tests.pipeline.test_run import OFFLINE, digest, sample_warc, wait_until
from tests.pipeline.test_storage_run import mirror

NODE = {"num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        "object_store_memory": 80 * 2**20}


def _obelics_run(args: list[str], env: dict, **kw):
    return subprocess.Popen([sys.executable, "-m", "obelics", "run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_multinode_run_with_a_lost_worker_equals_the_single_node_run(s3, tmp_path, shared, monkeypatch,  # noqa: F811
                                                                      request):  # noqa: F811
    from ray.cluster_utils import Cluster

    warcs = [sample_warc(), shared("data", "warc", "warcio__example.warc.gz"),
             shared("data", "warc", "dolma__sample-0000.warc.gz"), shared("data", "warc", "pywb__iana.warc.gz")]
    s3.make_bucket("inputs")
    inputs = []
    for i, w in enumerate(warcs):
        key = f"warcs/{i:02d}-{Path(w).name}"
        s3.client.upload_file(str(w), "inputs", key)
        inputs.append(f"s3://inputs/{key}")
    s3.make_bucket("bucket")
    out = "s3://bucket/multinode"
    sets = [x for o in OFFLINE for x in ("--set", o)]
    # a Ray temp folder of our own: the cluster's address file must not capture other Ray users here
    ray_tmp = tempfile.mkdtemp(prefix="obr", dir="/tmp")
    request.addfinalizer(lambda: shutil.rmtree(ray_tmp, ignore_errors=True))
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    # Ray turns a 127.0.0.1 address into the machine's own IP, where nothing listens when every node is
    # on loopback; this variable makes it keep the loopback address (as it does on macOS)
    monkeypatch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    cluster = Cluster(initialize_head=True, head_node_args=dict(NODE, num_cpus=0))  # the head runs no units
    try:
        victim = cluster.add_node(**NODE)  # at first the only node with a CPU: every task runs there
        cluster.wait_for_nodes()
        env = dict(os.environ, RAY_ADDRESS=cluster.address, PYTHONUNBUFFERED="1")
        proc = _obelics_run(["--warc", *inputs, "--out", out, "--workers", "2", *sets], env)
        wait_until(proc, lambda: any(k.endswith(".stats.json") for k in s3.keys("bucket", "multinode/work/00-")))
        cluster.add_node(**NODE)  # the survivor
        cluster.wait_for_nodes()
        assert proc.poll() is None, "the run ended before a node could be lost:\n" + proc.stdout.read()[-3000:]
        cluster.remove_node(victim, allow_graceful=False)  # the node doing the work dies mid-run
        assert not storage.exists(out + "/stats.json")
        output, _ = proc.communicate(timeout=900)
        (tmp_path / "driver.log").write_text(output)
        assert proc.returncode == 0, output[-4000:]
    finally:
        cluster.shutdown()

    # the reference: the same inputs on one node (a fresh local Ray instance)
    single = _obelics_run(["--warc", *inputs, "--out", str(tmp_path / "single"), *sets],
                          dict(os.environ, RAY_ADDRESS="local"))
    output, _ = single.communicate(timeout=900)
    assert single.returncode == 0, output[-4000:]
    ref = digest(tmp_path / "single")
    assert ref["summary"]["units"] == 4 and ref["summary"]["documents"] > 0
    assert digest(mirror(out, tmp_path / "mirror")) == ref
