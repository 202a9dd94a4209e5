"""The ``dedup`` section of a profile, one dataclass per pass (code defaults = the ``default`` profile)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from obelics.config import load_profile
from obelics.document import EOD_TOKEN

PASSES = ("url", "image_url", "paragraphs", "image_set", "minhash")
# DedupConfig fields that change how the passes run, never what they decide: a run folder's plan ignores
# them (pipeline.run), so a rerun with other values, or with a new code default, resumes the run
EXECUTION_ONLY = ("num_partitions", "docs_per_partition", "shuffle_fan_in", "shuffle_single_round_max",
                  "shuffle_strategy")


@dataclass
class UrlDedupConfig:
    """One document per URL, the most recent crawl (docs/reference.md §6.3)."""

    enabled: bool = True
    drop_without_images: bool = True  # docs/reference.md §6.3 step 3: documents left with no image are removed too


@dataclass
class ImageUrlDedupConfig:
    """Image URLs seen more than ``max_count`` times lose their image nodes (docs/reference.md §6.1)."""

    enabled: bool = True
    max_count: int = 10
    count: Literal["occurrences", "documents"] = "documents"  # obelics-2023 counted occurrences (docs/reference.md §9.3 #13)
    use_phash: bool = True  # with an image table: near-identical image bytes count as one image


@dataclass
class ParagraphDedupConfig:
    """Paragraphs seen ``min_count`` times or more within one domain are removed (docs/reference.md §6.4)."""

    enabled: bool = True
    min_count: int = 3
    separator: str = "\n\n"
    exempt_substring: str = EOD_TOKEN


@dataclass
class ImageSetDedupConfig:
    """Documents with the same set of image URLs: keep the most recent (docs/reference.md §6.6)."""

    enabled: bool = True
    key: Literal["sorted_delimited", "concat"] = "sorted_delimited"  # obelics-2023: concat, no delimiter
    remove_by: Literal["doc_id", "url_warc"] = "doc_id"  # obelics-2023 removed by (url, warc_filename)


@dataclass
class MinHashConfig:
    """Near-duplicate documents by MinHash LSH on word n-grams of the text."""

    enabled: bool = True
    ngram: int = 5
    bands: int = 20
    rows: int = 8  # 20 x 8: P(candidate) = 0.975 at Jaccard 0.8, 0.69 at 0.7, 0.07 at 0.5
    seed: int = 1
    threshold: float = 0.8  # Jaccard similarity at which two documents are near-duplicates
    # How candidate pairs (a shared LSH band) are confirmed before linking: "exact" computes the
    # Jaccard similarity of their shingle sets, "signature" estimates it from the MinHash signatures,
    # "none" links every candidate (datatrove's behaviour).
    verify: Literal["exact", "signature", "none"] = "exact"
    min_words: int = 5  # documents with fewer words are never linked


@dataclass
class PhashConfig:
    """Perceptual hash (DCT pHash) of downloaded image bytes, for near-identical images."""

    enabled: bool = True
    hash_size: int = 8
    max_distance: int = 4  # Hamming distance at most this: the same image


@dataclass
class DedupConfig:
    """The whole ``dedup`` section."""

    # Which copy is "most recent": the lexicographically last warc_filename (obelics-2023, ties within
    # one WARC all kept) or the latest capture_date, ties broken by warc_filename then doc_id.
    recency: Literal["warc_filename", "capture_date"] = "capture_date"
    order: list[str] = field(default_factory=lambda: list(PASSES))
    num_partitions: int = 16  # at least this many hash partitions per global pass
    # at most this many documents per partition: the partitions grow with the data, so what one worker
    # holds (rows of one partition: ~1 M MinHash band rows, ~50 MB) does not. In one round every reduce task
    # reads from every map task, so the files and batches a pass handles grow as (map tasks x partitions)
    # (at 6,250 documents the URL pass over 10 million documents took > 5 CPU-minutes); beyond the limits
    # below the shuffle merges in rounds instead, and this needs no tuning with the size of the data
    docs_per_partition: int = 50_000
    # The shuffle's fan-in (pipeline.rounds): no task opens more than this many partition files. One round
    # (each reduce task reads every map file) while map tasks <= shuffle_fan_in and (map tasks x
    # partitions) <= shuffle_single_round_max; beyond, merge rounds keep the opens ~linear in the data.
    # Neither changes a decision, only how the rows reach it.
    shuffle_fan_in: int = 64
    shuffle_single_round_max: int = 100_000
    url: UrlDedupConfig = field(default_factory=UrlDedupConfig)
    image_url: ImageUrlDedupConfig = field(default_factory=ImageUrlDedupConfig)
    paragraphs: ParagraphDedupConfig = field(default_factory=ParagraphDedupConfig)
    image_set: ImageSetDedupConfig = field(default_factory=ImageSetDedupConfig)
    minhash: MinHashConfig = field(default_factory=MinHashConfig)
    phash: PhashConfig = field(default_factory=PhashConfig)
    # no longer used (the passes partition on disk since docs_per_partition); still accepted so that the
    # profile.yaml saved by an older run loads
    shuffle_strategy: str | None = None

    def __post_init__(self) -> None:
        unknown = [p for p in self.order if p not in PASSES]
        if unknown:
            raise ValueError(f"dedup.order: unknown passes {unknown}; known: {list(PASSES)}")
        if self.shuffle_fan_in < 2:
            raise ValueError(f"dedup.shuffle_fan_in must be at least 2, not {self.shuffle_fan_in}")
        if self.shuffle_single_round_max < 1:
            raise ValueError(f"dedup.shuffle_single_round_max must be at least 1, not {self.shuffle_single_round_max}")
        if self.num_partitions < 1 or self.docs_per_partition < 1:
            raise ValueError("dedup.num_partitions and dedup.docs_per_partition must be at least 1")


def dedup_config(profile="default", overrides: list[str] | None = None) -> DedupConfig:
    """The ``dedup`` section of ``profile`` (a name, a path or a loaded Profile)."""
    return load_profile(profile, overrides).section("dedup", DedupConfig)
