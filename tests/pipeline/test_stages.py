"""pipeline.stages: the pHash clusters of the image table, hashed and clustered in tasks, equal one pass's."""

from __future__ import annotations

import io
import random

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import stages
from pipeline.images.table import IMAGE_TABLE_SCHEMA, ImageTable


def _png(seed: int, shift: int = 0) -> bytes:
    from PIL import Image

    rng = random.Random(seed)
    img = Image.new("L", (48, 48))
    img.putdata([min(255, rng.randrange(256) + shift) for _ in range(48 * 48)])
    buf = io.BytesIO()
    img.convert("RGB").resize((96, 96)).save(buf, format="PNG")
    return buf.getvalue()


def _part(table: ImageTable, name: str, rows: list[tuple[str, str, bytes | None]]) -> None:
    cols = {n: [None] * len(rows) for n in IMAGE_TABLE_SCHEMA.names}
    cols["url"] = [u for u, _, _ in rows]
    cols["status"] = [s for _, s, _ in rows]
    cols["bytes"] = [b for _, _, b in rows]
    table.write_part(name, pa.table(cols, schema=IMAGE_TABLE_SCHEMA))


def test_phash_clusters_in_tasks_equal_one_pass(tmp_path, monkeypatch):
    from filters.phash_canonical import canonical_urls
    from pipeline.dedup import config_of
    from pipeline.profile import load_profile

    profile = load_profile("default")
    table = ImageTable(tmp_path / "table")
    rows = []
    for i in range(600):  # 3 row groups of 256 in the first part; near-duplicate pairs across parts
        if i % 5 == 0:
            rows.append((f"http://a.test/{i:04d}.png", "success", _png(i // 10)))
        elif i % 5 == 1:
            rows.append((f"http://b.test/{i:04d}.png", "success", _png(i // 10, shift=3)))  # near copy
        else:
            rows.append((f"http://c.test/{i:04d}.png", "failed_to_download" if i % 2 else "success", None))
    rows.append(("http://d.test/broken.png", "success", b"not an image"))
    _part(table, "one", rows[:520])
    _part(table, "two", rows[520:])
    monkeypatch.setattr(stages, "PHASH_TASK_ROW_GROUPS", 1)  # one task per row group: 4 tasks

    from pipeline.images.phash_tasks import read_canonical
    from pipeline.shuffle import LocalBackend

    index = stages._phash_canonical(table, profile, str(tmp_path / "work"), 3, LocalBackend())
    got = read_canonical(index)

    def one_pass():  # what the driver did before: every part, every row, in order
        for part in table.parts():
            t = pq.read_table(part, columns=["url", "status", "bytes"])
            for url, status, data in zip(t["url"].to_pylist(), t["status"].to_pylist(), t["bytes"].to_pylist()):
                if status == "success" and data:
                    yield url, data

    assert got == canonical_urls(one_pass(), config_of(profile))
    assert len(got) >= 40  # the near copies were found (a cluster maps each of its URLs)
