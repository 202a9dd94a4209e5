"""Each unit's image-table rows, by the shuffle join (pipeline.images.join), equal ImageTable.lookup's for
the unit's URLs; a unit task reads its own file and the parts holding its rows, never every part."""

from __future__ import annotations

import hashlib
import io
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from filters.dedup.config import DedupConfig
from obelics import storage
from pipeline.dedup import survey
from pipeline.images import join
from pipeline.images.table import ImageTable, rows_to_table
from pipeline.shuffle import LocalBackend, get_backend


def _png(seed: int) -> bytes:
    from PIL import Image

    img = Image.new("RGB", (8 + seed % 5, 8), (seed * 37 % 256, seed * 11 % 256, 90))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _row(url: str, ok: bool, seed: int, headers: str | None = None) -> dict:
    data = _png(seed) if ok else None
    return {"url": url, "status": "success" if ok else "failed", "reason": None if ok else "http_404",
            "error_message": None if ok else "404", "http_status": 200 if ok else 404, "final_url": url,
            "width": 8 if ok else None, "height": 8 if ok else None, "format": "png" if ok else None,
            "sha256": hashlib.sha256(data).hexdigest() if ok else None, "num_bytes": len(data) if ok else None,
            "bytes": data, "headers": headers, "source": "web"}


def _fixture(tmp_path, n_parts=12, n_urls=900, n_units=7):
    """A table of ``n_parts`` parts, each spanning the whole URL range (as on a real crawl), some URLs in
    several parts (a failure in one, a success in a later one, or two successes), and units whose documents
    want overlapping random URLs (some not in the table)."""
    rng = random.Random(7)
    urls = [f"http://img{rng.randrange(50)}.test/{i:05d}.png" for i in range(n_urls)]
    table = ImageTable(tmp_path / "table")
    parts: list[list[dict]] = [[] for _ in range(n_parts)]
    for i, u in enumerate(urls):
        k = rng.randrange(n_parts)
        parts[k].append(_row(u, ok=i % 4 != 0, seed=i, headers='{"x-robots-tag": "noai"}' if i % 7 == 0 else None))
        if i % 9 == 0:  # the same URL in a second part: failed first, or another success
            parts[(k + 3) % n_parts].append(_row(u, ok=i % 2 == 0, seed=i + 1))
    for k, rows in enumerate(parts):
        table.write_part(f"{k:03d}", rows_to_table(rows))
    unit_dir = tmp_path / "units-in"
    unit_dir.mkdir()
    wanted = {}
    for j in range(n_units):
        mine = rng.sample(urls, 120) + [f"http://missing.test/{j}-{i}" for i in range(5)]
        docs = [mine[i:i + 6] + [None] for i in range(0, len(mine), 6)]
        docs.append([])  # a document without an image
        pq.write_table(pa.table({"images": pa.array(docs, pa.list_(pa.string()))}), unit_dir / f"u{j}.parquet")
        wanted[f"u{j}"] = set(mine)
    return table, unit_dir, wanted


def _join(backend, table, unit_dir, cfg, out):
    units = sorted(p.stem for p in unit_dir.glob("*.parquet"))
    unit_of = {str(unit_dir / f"{u}.parquet"): u for u in units}
    paths = survey(backend, list(unit_of))
    P = 5
    work = str(out / "work")
    wanted = join.wanted_urls(backend, paths, P, cfg, storage.join(work, "wanted"))
    files, n = join.distinct_urls(backend, wanted, storage.join(work, "urls"))
    tables, counts, groups = join.table_rows(backend, table, P, cfg, storage.join(work, "table"))
    assert groups == {p: pq.ParquetFile(p).num_row_groups for p in table.parts()}
    join.join_units(backend, paths, unit_of, wanted, tables, None, P, cfg, str(out / "units"), work)
    return files, n, counts


@pytest.mark.parametrize("cfg", [DedupConfig(), DedupConfig(shuffle_fan_in=2, shuffle_single_round_max=4)],
                         ids=["one-round", "merge-rounds"])
def test_unit_rows_equal_the_table_lookup(tmp_path, cfg):
    table, unit_dir, wanted = _fixture(tmp_path)
    files, n, counts = _join(LocalBackend(), table, unit_dir, cfg, tmp_path)
    assert n == len(set().union(*wanted.values()))
    got = list(join.read_url_files(files))
    assert sorted(got) == sorted(set().union(*wanted.values()))  # distinct
    for f in files:  # each partition's file sorted
        one = list(join.read_url_files([f]))
        assert one == sorted(one)
    assert counts == table.counts()
    for u, urls in wanted.items():
        mine = join.UnitImages(str(table.folder), str(tmp_path / "units" / f"{u}.parquet"))
        assert mine.lookup(urls, with_bytes=False) == table.lookup(urls, with_bytes=False)
        assert mine.lookup(urls, with_bytes=True) == table.lookup(urls, with_bytes=True)
        some = sorted(urls)[::3]
        assert mine.lookup(some, with_bytes=True) == table.lookup(some, with_bytes=True)
        assert mine.headers_by_url(urls) == table.headers_by_url(urls)
        assert any(r["status"] == "success" for r in mine.lookup(urls, with_bytes=False).values())


def test_unit_rows_on_ray_equal_the_local_ones(tmp_path):
    pytest.importorskip("ray")
    import ray

    from pipeline.executor import ensure_ray

    table, unit_dir, wanted = _fixture(tmp_path, n_parts=6, n_urls=300, n_units=4)
    started = not ray.is_initialized()
    ensure_ray(num_cpus=2)
    try:
        _join(get_backend(True), table, unit_dir, DedupConfig(), tmp_path / "ray")
    finally:
        if started:
            ray.shutdown()
    _join(LocalBackend(), table, unit_dir, DedupConfig(), tmp_path / "local")
    for u, urls in wanted.items():
        got = pq.read_table(tmp_path / "ray" / "units" / f"{u}.parquet")
        assert got.equals(pq.read_table(tmp_path / "local" / "units" / f"{u}.parquet"))
        mine = join.UnitImages(str(table.folder), str(tmp_path / "ray" / "units" / f"{u}.parquet"))
        assert mine.lookup(urls) == table.lookup(urls)


def test_a_unit_lookup_opens_only_its_file_and_the_parts_holding_its_rows(tmp_path, monkeypatch):
    """The property the join is for: the old lookup read the footer of every part (units x parts reads)."""
    table, unit_dir, wanted = _fixture(tmp_path, n_parts=30, n_urls=600, n_units=3)
    _join(LocalBackend(), table, unit_dir, DedupConfig(), tmp_path)
    opened: list[str] = []
    for name in ("read_parquet", "read_parquet_schema", "parquet_file", "open_input"):
        real = getattr(storage, name)
        monkeypatch.setattr(storage, name, lambda p, *a, _r=real, **k: (opened.append(str(p)), _r(p, *a, **k))[1])
    u, urls = "u0", sorted(wanted["u0"])[:4]
    mine = join.UnitImages(str(table.folder), str(tmp_path / "units" / f"{u}.parquet"))
    rows = mine.lookup(urls, with_bytes=True)
    holding = {r["part"] for url, r in mine.rows().items() if url in rows}
    parts = [p for p in opened if "part-" in p]
    assert 0 < len(set(parts)) <= len(holding) <= 4  # the parts that hold its 4 rows, of 30
    assert len([p for p in opened if p.endswith(f"{u}.parquet")]) == 1
    opened.clear()
    mine.lookup(sorted(wanted["u0"]), with_bytes=False)  # metadata: its own file only, already read
    assert opened == []


def _count_row_group_reads(monkeypatch) -> list:
    """Every (part, row group) whose bytes a lookup reads."""
    reads: list = []
    real = pq.ParquetFile.read_row_group

    def counted(self, i, *a, **k):
        reads.append((self.metadata.num_rows, i))
        return real(self, i, *a, **k)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", counted)
    return reads


def test_a_unit_reads_its_bytes_once_for_its_ops(tmp_path, monkeypatch):
    """The fused stage's image filters then NSFW: the second lookup of a unit's URLs takes the bytes the first
    one read (no part read again) within the budget; past it, the rest is read again; the rows are the same."""
    from pipeline import stages

    table, unit_dir, wanted = _fixture(tmp_path, n_parts=6, n_urls=300, n_units=2)
    _join(LocalBackend(), table, unit_dir, DedupConfig(), tmp_path)
    urls = sorted(wanted["u0"])
    expect = table.lookup(urls, with_bytes=True)
    reads = _count_row_group_reads(monkeypatch)
    decision = {"table_dir": str(table.folder), "unit_dir": str(tmp_path / "units")}
    ctx = {"decisions": {"image_table": decision}, "unit": "u0"}
    image_bytes = stages._inputs(ctx)["image_bytes"]
    first = image_bytes(urls)  # image_filters: every URL of the unit
    n_first = len(reads)
    assert n_first > 0 and first == {u: r["bytes"] for u, r in expect.items() if r["status"] == "success"}
    assert image_bytes(urls[::2]) == {u: b for u, b in first.items() if u in set(urls[::2])}  # NSFW, kept nodes
    assert len(reads) == n_first  # nothing read again
    mine = stages.image_table_of(ctx)
    assert mine.lookup(urls) == expect and len(reads) == n_first
    assert dict(mine._cache) == {u: r["bytes"] for u, r in expect.items()}

    read_urls: list = []
    real = join.UnitImages._bytes
    monkeypatch.setattr(join.UnitImages, "_bytes", lambda self, where: (read_urls.extend(u for *_, u in where),
                                                                         real(self, where))[1])
    n = len(expect)
    for budget in (0, 3000):  # none kept (a writer's), or some: the others read again, the same rows
        read_urls.clear()
        mine = join.UnitImages(str(table.folder), str(tmp_path / "units" / "u0.parquet"), cache_bytes=budget)
        assert mine.lookup(urls) == expect and len(read_urls) == n
        assert mine.lookup(urls) == expect
        assert mine._cached <= budget
        assert len(read_urls) == 2 * n - len(mine._cache)
        assert (0 < len(mine._cache) < n) if budget else not mine._cache


def _one_pass_canonical(table) -> dict:
    """The pHash clusters of ``table``'s downloaded images by the one-pass reference."""
    from filters.phash_canonical import canonical_urls
    from pipeline.dedup import config_of

    def one_pass():
        for part in table.parts():
            t = pq.read_table(part, columns=["url", "status", "bytes"])
            for url, status, data in zip(t["url"].to_pylist(), t["status"].to_pylist(), t["bytes"].to_pylist()):
                if status == "success" and data:
                    yield url, data

    return canonical_urls(one_pass(), config_of("default"))


def test_run_units_read_their_rows_not_the_table(tmp_path, monkeypatch):
    """The sample run (WARC source, pHash on): each unit of the image-table decision has its joined rows,
    equal to ImageTable.lookup of its documents' URLs, with the pHash canonical URLs of its own URLs; and no
    unit op reads a table part's footer."""
    from pipeline import stages
    from pipeline.images.table import ImageTable as IT
    from pipeline.run import run
    from tests.pipeline.test_run import OFFLINE, sample_warc

    ranges = []
    real = IT._ranges
    monkeypatch.setattr(IT, "_ranges", lambda self: (ranges.append(self.folder), real(self))[1])
    out = tmp_path / "out"
    run("default", out, [str(sample_warc())], overrides=OFFLINE + ["run.use_ray=false", "output.formats=[parquet]"])
    assert ranges == []  # no op (merge, image filters, NSFW, opt-out) looked up the whole table
    ddir = next((out / "work").glob("*-image_table"))
    decision = storage.read_json(str(ddir / "decision.json"))["decision"]
    assert decision["unit_dir"] and decision.get("phash") and not list(ddir.rglob("phash_canonical*"))
    number = int(ddir.name.split("-")[0])
    prev = next(p for p in (out / "work").iterdir() if p.name.startswith(f"{number - 1:02d}-"))
    table = IT(decision["table_dir"])
    canonical = _one_pass_canonical(table)
    assert canonical  # the sample's WARCs hold near-identical images under several URLs
    units = sorted(p.name[: -len(".parquet")] for p in prev.glob("*.parquet") if ".image_records" not in p.name)
    assert units
    for u in units:
        urls = {x for lst in pq.read_table(prev / f"{u}.parquet", columns=["images"])["images"].to_pylist()
                for x in lst or () if x}
        mine = join.UnitImages(decision["table_dir"], storage.join(decision["unit_dir"], f"{u}.parquet"))
        assert mine.lookup(urls) == table.lookup(urls) and len(mine.rows()) > 0
        assert mine.canonical() == {k: v for k, v in canonical.items() if k in urls}
        ctx = {"decisions": {"image_table": decision}, "unit": u}
        assert isinstance(stages.image_table_of(ctx), join.UnitImages)


def test_web_source_decision_joins_downloaded_rows(tmp_path, monkeypatch):
    """images.source=web: the distinct URLs of the units (from files) are downloaded from the loopback server,
    and each unit's joined rows equal the table's lookup."""
    from obelics.config import load_profile
    from obelics.document import WebDocument, documents_to_table
    from pipeline import stages
    from pipeline.images.loopback import LoopbackImageServer, skimage_photos

    monkeypatch.setenv("OBELICS_NET_ALLOW", "127.0.0.1/32")
    photos = skimage_photos(("astronaut.png", "rocket.jpg", "chelsea.png"))
    prev = tmp_path / "prev"
    prev.mkdir()
    with LoopbackImageServer(photos, slow_seconds=1) as srv:
        urls = [srv.url("img", "astronaut.png"), srv.url("img", "rocket.jpg"), srv.url("status", "404"),
                srv.url("redirect", "chelsea.png")]
        for j, mine in enumerate([urls[:2], urls[1:], [urls[3]]]):
            texts, images = ["Words."], [None]
            for u in mine:
                texts.append(None)
                images.append(u)
            doc = WebDocument(texts=texts, images=images, metadata=[None] * len(texts),
                              general_metadata={"url": f"http://site/{j}", "warc_filename": "x", "warc_record_offset": 0,
                                                "warc_record_length": 1})
            pq.write_table(documents_to_table([doc]), prev / f"u{j}.parquet")
        profile = load_profile("default", ["images.source=web", "images.processes_count=1", "images.retries=0",
                                           "images.timeout=2"])
        ddir = tmp_path / "decision"
        ddir.mkdir()
        ctx = {"profile": profile, "decision_dir": str(ddir), "sources": {f"u{j}": None for j in range(3)},
               "use_ray": False}
        decision = stages._image_table_decide(str(prev), ["u0", "u1", "u2"], ctx)
    table = ImageTable(decision["table_dir"])
    assert decision["stats"][0]["in"]["image"] == 4
    for j, mine_urls in enumerate([urls[:2], urls[1:], [urls[3]]]):
        mine = join.UnitImages(decision["table_dir"], storage.join(decision["unit_dir"], f"u{j}.parquet"))
        assert set(mine.rows()) == set(mine_urls)
        assert mine.lookup(mine_urls) == table.lookup(mine_urls)
    assert table.lookup([urls[0]])[urls[0]]["status"] == "success"


def test_web_decision_hands_the_fetch_files_not_urls(tmp_path, monkeypatch):
    """The decision never reads the distinct URLs into the driver (a snapshot's ~1e8): the fetch gets their
    files, and img2dataset a folder of URL files, not one list the driver wrote."""
    from pathlib import Path

    from pipeline.images import download

    def refused(files):
        raise AssertionError("the distinct URLs were read into the driver")

    monkeypatch.setattr(join, "read_url_files", refused)
    given = []
    real = download.img2dataset_kwargs
    monkeypatch.setattr(download, "img2dataset_kwargs",
                        lambda cfg, url_list, out: (given.append(Path(url_list)), real(cfg, url_list, out))[1])
    test_web_source_decision_joins_downloaded_rows(tmp_path, monkeypatch)
    assert given and all(p.is_dir() and list(p.glob("urls-*.parquet")) for p in given)


def test_image_locations_one_listing_never_read_in_the_driver(tmp_path, monkeypatch):
    """The units' image-record lists: one listing of the extraction's folder (no existence check a unit), each
    source mapped to its file, which the image table's tasks read (the driver reads none); a unit without its
    list is left out (its WARC is scanned)."""
    from pipeline import stages

    sdir = tmp_path / "00-extract"
    sdir.mkdir()
    units = [f"u{i}" for i in range(5)]
    for i, u in enumerate(units[:4]):
        pq.write_table(pa.table({"url": pa.array([f"http://x.test/{u}.jpg"]), "offset": pa.array([i], pa.int64()),
                                 "length": pa.array([10 + i], pa.int64())}),
                       sdir / stages.IMAGE_RECORDS.format(unit=u))
    calls = {"exists": 0, "listdir": 0, "read_parquet": 0}
    for name in calls:
        real = getattr(storage, name)
        monkeypatch.setattr(storage, name, lambda p, *a, _r=real, _n=name, **k: (calls.__setitem__(_n, calls[_n] + 1),
                                                                              _r(p, *a, **k))[1])
    ctx = {"source_stage_dir": str(sdir), "sources": {u: f"/in/{u}.warc.gz" for u in units}}
    got = stages._image_locations(units, ctx)
    assert got == {f"/in/{u}.warc.gz": storage.join(str(sdir), stages.IMAGE_RECORDS.format(unit=u)) for u in units[:4]}
    assert calls == {"exists": 0, "listdir": 1, "read_parquet": 0}
