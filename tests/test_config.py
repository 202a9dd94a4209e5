from dataclasses import dataclass, field

import pytest

from obelics.config import ConfigError, from_dict, load_profile


@dataclass
class Section:
    threshold: float = 0.5
    count: int = 3
    names: list[str] = field(default_factory=list)
    optional: int | None = None


def test_profiles_load():
    for name in ("default", "obelics-2023"):
        p = load_profile(name)
        assert p.name == name
        assert p.get("extract.mode") == name


def test_section_validation():
    s = from_dict(Section, {"threshold": 1, "names": ["a"], "optional": None})
    assert s.threshold == 1.0 and s.names == ["a"] and s.count == 3
    with pytest.raises(ConfigError, match="unknown keys"):
        from_dict(Section, {"treshold": 0.1})
    with pytest.raises(ConfigError, match="integer"):
        from_dict(Section, {"count": "3"})
    with pytest.raises(ConfigError):
        from_dict(Section, {"count": True})


def test_overrides():
    p = load_profile("default", ["warc.max_record_bytes=5"])
    assert p.get("warc.max_record_bytes") == 5
    with pytest.raises(ConfigError, match="unknown key"):
        load_profile("default", ["warc.nope=1"])
    with pytest.raises(ConfigError):
        load_profile("no-such-profile")
