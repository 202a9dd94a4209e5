"""The step interface and its one runner; the text-check list; the add-a-filter example, through the runner
and through a pipeline run."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys
from pathlib import Path

import pytest

from filters import steps as step_registry
from filters import text_checks
from filters.step import Step, run_step
from filters.text_filters import DocChecks, NodeChecks, TextFilter, TextFiltersConfig
from filters.text_metrics import get_words
from obelics.config import ConfigError, load_profile
from obelics.document import WebDocument

ROOT = Path(__file__).resolve().parents[2]


def doc(url: str, *nodes: str) -> WebDocument:
    texts = [None if n.startswith("img:") else n for n in nodes]
    images = [n[4:] if n.startswith("img:") else None for n in nodes]
    return WebDocument(texts, images, [{"src": i} if i else None for i in images], {"url": url})


class _Short(Step):
    """Drops documents with fewer than 3 words; first removes text nodes saying "ad" (counted as nodes)."""

    name = "short"

    def transform(self, d, state, prepared, tally):
        keep = [k for k, t in enumerate(d.texts) if t != "ad"]
        tally.drop("node", "ad", len(d.texts) - len(keep)) if len(keep) < len(d.texts) else None
        return WebDocument([d.texts[k] for k in keep], [d.images[k] for k in keep], [d.metadata[k] for k in keep],
                           d.general_metadata)

    def verdict(self, d, state, prepared):
        return "too_short" if sum(len(t.split()) for t in d.texts if t) < 3 else None

    def late_verdicts(self, docs, state):
        return ["late:" + d.url if "late" in d.url else None for d in docs]


class _NoGif(Step):
    name = "no_gif"
    level = "image"
    needs = ("sizes",)

    def prepare(self, docs, state, inputs):
        return inputs["sizes"]([u for d in docs for u in d.images if u])

    def image_verdict(self, url, meta, state, sizes):
        return ("gif" if url.endswith(".gif") else None), dict(meta, size=sizes[url])

    def document_verdict_from_images(self, reasons, state):
        return "all_gif" if reasons and all(reasons) else None


def test_document_step_counts_transforms_and_diverts():
    docs = [doc("https://a", "one two three", "ad", "img:https://x/1.jpg"), doc("https://b", "one two"),
            doc("https://late", "one two three four")]
    rejects: list = []
    kept, stats, metrics = run_step(_Short(), docs, rejects=rejects)
    assert [d.url for d in kept] == ["https://a"] and kept[0].texts == ["one two three", None]
    assert metrics is None
    assert stats.as_dict() == {"stage": "short", "in": {"document": 3}, "out": {"document": 1},
                               "dropped": {"document": {"too_short": 1, "late:https://late": 1}, "node": {"ad": 1}}}
    assert [(d.url, r) for d, r in rejects] == [("https://b", "document:too_short"),
                                                ("https://late", "document:late:https://late")]


def test_image_step_rewrites_metadata_and_can_drop_the_document():
    docs = [doc("https://a", "text", "img:https://x/1.jpg", "img:https://x/2.gif"), doc("https://b", "img:https://x/3.gif")]
    asked = []

    def sizes(urls):
        asked.append(sorted(urls))
        return {u: len(u) for u in urls}

    rejects: list = []
    kept, stats, _ = run_step(_NoGif(), docs, inputs={"sizes": sizes}, rejects=rejects)
    assert asked == [["https://x/1.jpg", "https://x/2.gif", "https://x/3.gif"]]  # one prepare for the chunk
    assert [d.images for d in kept] == [[None, "https://x/1.jpg"]]
    assert kept[0].metadata[1] == {"src": "https://x/1.jpg", "size": 15}
    assert stats.as_dict() == {"stage": "no_gif", "in": {"document": 2, "image": 3},
                               "out": {"document": 1, "image": 1},
                               "dropped": {"document": {"all_gif": 1}, "image": {"gif": 2}}}
    assert [r for _, r in rejects] == ["document:all_gif"]


def test_inactive_step_passes_documents_through():
    @dataclasses.dataclass
    class Cfg:
        enabled: bool = False

    kept, stats, _ = run_step(_Short(), [doc("https://b", "x")], state=Cfg())
    assert len(kept) == 1 and stats.as_dict()["out"] == {"document": 1}


def test_every_op_of_the_registry_is_a_step_with_a_typed_section():
    assert set(step_registry.OPS) >= {"url_ban", "text_filters", "image_filters", "optout", "nsfw",
                                      "doc_filters", "recheck", "clean", "final"}
    profile = load_profile("default")
    for steps in step_registry.OPS.values():
        for s in steps:
            assert isinstance(s, Step) and s.name and s.level in ("document", "image")
            if s.section:
                assert isinstance(s.config_of(profile), s.config)
    assert step_registry.sections()["nsfw"].__name__ == "NsfwConfig"


# -- the text checks, declared once ----------------------------------------------------------------------
def test_text_check_list_drives_both_levels_and_the_report():
    names = [c.name for c in text_checks.TEXT_CHECKS]
    assert names[0] == "number_words" and len(set(names)) == len(names)
    assert set(names) == set(text_checks.REFERENCE)
    for c in text_checks.TEXT_CHECKS:  # every cutoff key exists at both levels
        for key in (c.min_key, c.max_key):
            assert key is None or (hasattr(NodeChecks(), key) and hasattr(DocChecks(), key))
    chain = TextFilter(TextFiltersConfig(doc=DocChecks(punctuation_ratio_min=None)))
    assert [c.name for c, _, _ in chain.node_plan] == names[:-1]          # no common-words list: off
    assert "punctuation_ratio" not in [c.name for c, _, _ in chain.doc_plan]  # null cutoff: off
    report = chain.document_metrics([doc("https://a", "one two three. four", "img:https://x/1.jpg")])
    (values,) = report["metrics"].values()
    assert list(values) == names[:-1] and values["number_words"] == [4]
    assert report["thresholds"]["text_filters (document level, before filtering).number_words"] == {"min": 10}


@pytest.mark.parametrize("text", ["", "one", "Hello, world! This is fine.", "spam spam spam spam spam spam " * 5,
                                  "$$$ %%% ^^^ a", "the of and to in is it that was for on are with as " * 3])
def test_compiled_values_equal_the_reference(text):
    from filters import fast_metrics

    if not fast_metrics.available():
        pytest.skip("numba not installed")
    chain = TextFilter(TextFiltersConfig(), fast=True)
    cut, vocab = chain.cfg.node, chain._vocab_lists
    words = fast_metrics.words_many([text], chain._vocabularies)
    chars = fast_metrics.char_stats([text], cut.character_repetition_length)
    rep = fast_metrics.word_repetition_ids(words.ids, words.counts, cut.word_repetition_length)
    checks = [c for c in text_checks.TEXT_CHECKS if c.vocabulary != "common"]
    rows = text_checks.Rows(1, words, chars, rep, cut)
    reference = text_checks.reference_values(text, get_words(text), checks, cut, vocab)
    assert {c.name: text_checks.COLUMNS[c.name](rows)[0] for c in checks} == reference
    plan = text_checks.plan(cut, vocab, "paragraph")
    assert rows.verdicts(plan) == [text_checks.reference_verdict(text, get_words(text), plan, cut, vocab)]


def test_a_new_text_check_is_one_declaration(monkeypatch):
    """A check added to the list (with its two implementations and a cutoff) runs in both paths and agrees."""
    from filters import fast_metrics

    @dataclasses.dataclass
    class Node(NodeChecks):
        long_word_ratio_max: float | None = 0.3

    def reference(text, words, cut, v):
        return sum(len(w) > 9 for w in words) / len(words) if words else 0.0

    def compiled(rows):
        return [reference(None, w, None, None) for w in rows.words.words]

    check = text_checks.TextCheck("long_word_ratio", max_key="long_word_ratio_max", levels=("paragraph",))
    monkeypatch.setattr(text_checks, "TEXT_CHECKS", text_checks.TEXT_CHECKS + (check,))
    monkeypatch.setitem(text_checks.REFERENCE, check.name, reference)
    monkeypatch.setitem(text_checks.COLUMNS, check.name, compiled)
    para = ("Interoperability considerations notwithstanding, the extraordinarily comprehensive documentation "
            "was, in this particular case, the reason the people of the town all liked it and went there.")
    cfg = TextFiltersConfig(node=Node(character_repetition_max=None, word_repetition_max=None, stopword_ratio_min=None,
                                      flagged_word_ratio_max=None, special_character_ratio_max=None))
    slow = TextFilter(cfg, fast=False)
    assert slow.paragraph_verdict(para) is None  # 7 words of 10+ letters out of 27: below 0.3
    strict = dataclasses.replace(cfg, node=dataclasses.replace(cfg.node, long_word_ratio_max=0.2))
    assert TextFilter(strict, fast=False).paragraph_verdict(para) == "long_word_ratio"
    assert "long_word_ratio" not in [c.name for c, _, _ in TextFilter(strict).doc_plan]  # paragraph level only
    if fast_metrics.available():
        assert TextFilter(strict, fast=True).paragraph_verdicts([para, "short one"]) == ["long_word_ratio", "number_words"]


# -- the example of README "How to add a filter" --------------------------------------------------------------
def _example():
    spec = importlib.util.spec_from_file_location("url_length_example", ROOT / "examples" / "add_filter" / "url_length.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and type hints look their module up there
    spec.loader.exec_module(module)
    return module


def _profile(tmp_path: Path, max_chars: int, section: str = "max_chars") -> Path:
    """A profile that states only what differs from default: the new op in run.stages and its section."""
    path = tmp_path / f"url_length_{max_chars}.yaml"
    path.write_text(f"extends: default\nrun:\n  stages: [extract, url_length]\nurl_length:\n  {section}: {max_chars}\n")
    return path


def test_example_filter_through_the_runner(tmp_path):
    from pipeline.profile import load_profile as load_whole

    ex = _example()
    profile = load_whole(_profile(tmp_path, 20))
    assert profile.data["url_length"] == {"enabled": True, "max_chars": 20}
    docs = [doc("https://a.org/", "x"), doc("https://example.org/a/long/path", "y"), doc("", "z")]
    rejects: list = []
    kept, stats, _ = run_step(ex.URL_LENGTH, docs, profile, rejects=rejects)
    assert [d.url for d in kept] == ["https://a.org/", ""]
    assert stats.as_dict()["dropped"] == {"document": {"url_too_long": 1}}
    assert [r for _, r in rejects] == ["document:url_too_long"]
    assert step_registry.OPS["url_length"] == (ex.URL_LENGTH,)
    with pytest.raises(ConfigError, match="max_char"):  # its section is validated at load like any other
        load_whole(_profile(tmp_path, 20, section="max_char"))


def test_example_filter_in_a_pipeline_run(tmp_path):
    from pipeline.run import run
    from tests.pipeline.test_run import OFFLINE, sample_warc

    _example()
    overrides = OFFLINE + ["run.use_ray=false"]
    everything = run(str(_profile(tmp_path, 10_000)), tmp_path / "all", [str(sample_warc())], overrides=overrides)
    stats = run(str(_profile(tmp_path, 58)), tmp_path / "cut", [str(sample_warc())], overrides=overrides)
    stage = next(s for s in stats["stages"] if s["stage"] == "url_length")
    kept_all = next(s for s in everything["stages"] if s["stage"] == "url_length")
    assert kept_all["dropped"] == {} and kept_all["out"]["document"] == stage["in"]["document"] > 0
    dropped = stage["dropped"]["document"]["url_too_long"]
    assert 0 < dropped < stage["in"]["document"]
    assert stats["summary"]["documents"] == stage["in"]["document"] - dropped
