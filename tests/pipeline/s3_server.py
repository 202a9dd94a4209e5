"""A loopback S3-compatible server for tests: moto's server mode on 127.0.0.1, a free port.

``with LoopbackS3() as s3:`` starts it and sets the standard AWS variables (``AWS_ENDPOINT_URL``,
dummy credentials, region) in ``os.environ`` so that this process and everything it starts (the CLI
in a subprocess, Ray nodes) talk to it; they are restored on exit. ``s3.make_bucket(name)`` creates a
bucket, ``s3.client`` is a boto3 client for assertions. Nothing leaves the machine.
"""

from __future__ import annotations

import os

import pytest

AWS_VARS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE")


class LoopbackS3:
    """moto's S3 on ``127.0.0.1:<free port>``; the context value is the server itself."""

    def __init__(self):
        self.endpoint = ""
        self._saved: dict[str, str | None] = {}

    def env(self) -> dict[str, str]:
        """The AWS variables that point a process at this server."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}

    def __enter__(self) -> LoopbackS3:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        import requests

        # moto keeps its state per process, not per server: start from an empty S3
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=30).raise_for_status()
        self._saved = {k: os.environ.get(k) for k in AWS_VARS}
        for k in AWS_VARS:
            os.environ.pop(k, None)
        os.environ.update(self.env())
        import boto3

        self.client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")
        return self

    def make_bucket(self, name: str) -> str:
        self.client.create_bucket(Bucket=name)
        return f"s3://{name}"

    def upload_tree(self, root, bucket: str, prefix: str = "") -> list[str]:
        """Upload every file under the local folder ``root`` to ``bucket`` (keys relative to it)."""
        from pathlib import Path

        keys = []
        for p in sorted(Path(root).rglob("*")):
            if p.is_file():
                key = prefix + p.relative_to(root).as_posix()
                self.client.upload_file(str(p), bucket, key)
                keys.append(key)
        return keys

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (complete uploads only, as S3 lists them)."""
        out = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            out.extend(o["Key"] for o in page.get("Contents", []))
        return sorted(out)

    def open_uploads(self, bucket: str) -> list[str]:
        """Keys with a multipart upload started and neither completed nor aborted."""
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]

    def __exit__(self, *exc) -> None:
        self.server.stop()
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3():
    """A fresh loopback S3 server (with the AWS variables pointing at it) for one test."""
    with LoopbackS3() as server:
        yield server
