"""obelics.config: loading, ``extends``, the one override parser and typed validation."""

from dataclasses import dataclass, field
from typing import Literal

import pytest

from obelics.config import ConfigError, apply_overrides, deep_merge, from_dict, load_profile, parse_override


@dataclass
class Inner:
    level: int = 1


@dataclass
class Section:
    threshold: float = 0.5
    count: int = 3
    names: list[str] = field(default_factory=list)
    optional: int | None = None
    mode: Literal["word", "substring", "off"] = "word"
    limits: dict[str, float] = field(default_factory=lambda: {"a": 1.0, "b": 2.0})
    inner: Inner = field(default_factory=Inner)


def test_profiles_load():
    for name in ("default", "obelics-2023"):
        p = load_profile(name)
        assert p.name == name
        assert "extends" not in p.data and "name" not in p.data
    assert load_profile("obelics-2023").get("extract.mode") == "obelics-2023"
    with pytest.raises(ConfigError, match="unknown profile"):
        load_profile("no-such-profile")


def test_section_validation():
    s = from_dict(Section, {"threshold": 1, "names": ["a"], "optional": None})
    assert s.threshold == 1.0 and s.names == ["a"] and s.count == 3
    with pytest.raises(ConfigError, match="unknown keys"):
        from_dict(Section, {"treshold": 0.1})
    with pytest.raises(ConfigError, match="unknown keys"):
        from_dict(Section, {"inner": {"levle": 2}})
    with pytest.raises(ConfigError, match="integer"):
        from_dict(Section, {"count": "3"})
    with pytest.raises(ConfigError):
        from_dict(Section, {"count": True})
    with pytest.raises(ConfigError, match="number"):
        from_dict(Section, {"threshold": "abc"})
    with pytest.raises(ConfigError, match="optional: expected an integer"):
        from_dict(Section, {"optional": "x"})
    with pytest.raises(ConfigError, match="not one of"):
        from_dict(Section, {"mode": "words"})


def test_yaml_off_is_a_choice_where_offered():
    # YAML 1.1 reads unquoted off as False: the type, not the text, decides
    assert from_dict(Section, {"mode": False}).mode == "off"
    assert from_dict(Section, apply_overrides({}, ["mode=off"])).mode == "off"
    with pytest.raises(ConfigError, match="not one of"):
        from_dict(Section, {"mode": True})  # "on" is not a choice here
    with pytest.raises(ConfigError, match="integer"):
        from_dict(Section, {"count": False})


def test_exponent_without_dot_is_a_number():
    # YAML 1.1 reads 3e-4 as a string; where a number is expected it is one
    assert from_dict(Section, apply_overrides({}, ["threshold=3e-4"])).threshold == pytest.approx(3e-4)
    assert from_dict(Section, {"optional": None}).optional is None


def test_mapping_fields_merge_onto_their_default():
    assert from_dict(Section, {"limits": {"b": 5}}).limits == {"a": 1.0, "b": 5.0}


def test_overrides():
    p = load_profile("default", ["warc.max_record_bytes=5", "text_filters.node.stopword_ratio_min=null"])
    assert p.get("warc.max_record_bytes") == 5
    assert p.data["text_filters"] == {"node": {"stopword_ratio_min": None}}
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("a=x=y") == (["a"], "x=y")
    with pytest.raises(ConfigError, match="key.path=value"):
        apply_overrides({}, ["warc.max_record_bytes"])
    with pytest.raises(ConfigError, match="not a section"):
        apply_overrides({"warc": {"accept_status": [200]}}, ["warc.accept_status.x=1"])
    with pytest.raises(ConfigError, match="empty key"):
        apply_overrides({}, ["warc..x=1"])
    with pytest.raises(ConfigError, match="list"):
        apply_overrides({}, "warc.x=1")
    data = {"a": {"b": 1}}
    assert apply_overrides(data, ["a.c=2"]) == {"a": {"b": 1, "c": 2}} and data == {"a": {"b": 1}}


def test_deep_merge_merges_mappings_and_replaces_lists():
    base = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    assert deep_merge(base, {"a": {"y": [3]}, "c": {"z": 1}}) == {"a": {"x": 1, "y": [3]}, "b": 1, "c": {"z": 1}}
    assert base == {"a": {"x": 1, "y": [1, 2]}, "b": 1}


def test_extends(tmp_path):
    (tmp_path / "mine.yaml").write_text("extends: obelics-2023\nname: mine\n"
                                        "dedup: {image_url: {max_count: 4}}\nrun: {stages: [extract]}\n")
    (tmp_path / "child.yaml").write_text("extends: mine.yaml\ntext_filters: {url_ban: off}\n")
    mine = load_profile(tmp_path / "mine.yaml")
    assert mine.name == "mine"
    assert mine.get("dedup.image_url") == {"count": "occurrences", "use_phash": False, "max_count": 4}
    assert mine.get("dedup.recency") == "warc_filename"                      # inherited
    assert mine.get("run.stages") == ["extract"]                             # lists replace
    child = load_profile(tmp_path / "child.yaml")
    assert child.name == "child"                                            # the name is not inherited
    assert child.get("text_filters.url_ban") is False                       # raw YAML; typed: "off"
    assert child.get("text_filters.wordlists") == "obelics-2023" and child.get("dedup.image_url.max_count") == 4


def test_extends_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_profile(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nope\n")
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        load_profile(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("- a\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_profile(tmp_path / "d.yaml")
