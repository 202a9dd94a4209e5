"""The image step's inputs: document Parquet files or URL lists, never a WARC path read as characters."""

from __future__ import annotations

import pytest


def test_images_command_refuses_a_warc_path(tmp_path):
    from pipeline.images.download import unique_urls

    with pytest.raises(ValueError, match="not a document Parquet file .a WARC's images: --warc"):
        unique_urls([str(tmp_path / "x.warc.gz")])
    assert unique_urls([["http://a/1.jpg", None], ["http://a/1.jpg", "http://a/2.jpg"]]) == [
        "http://a/1.jpg", "http://a/2.jpg"]
