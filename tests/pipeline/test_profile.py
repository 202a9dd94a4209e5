"""pipeline.profile: every section of a profile validated at load, defaults written once."""

from __future__ import annotations

import argparse
import dataclasses

import pytest
import yaml

from obelics.cli import main
from obelics.config import PROFILE_DIR, ConfigError
from pipeline.profile import PipelineProfile, load_profile, resolved, validate

SECTIONS = [f.name for f in dataclasses.fields(PipelineProfile)]


def test_code_defaults_are_the_default_profile():
    # default.yaml states no value of its own: the dataclass defaults are the only place of a default
    assert yaml.safe_load((PROFILE_DIR / "default.yaml").read_text()) == {"name": "default"}
    assert validate(load_profile("default")) == PipelineProfile()
    assert load_profile("default").data == dataclasses.asdict(PipelineProfile())


def _leaves(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict) and k not in ("css_replace", "label_thresholds", "max_perplexity"):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def test_other_profiles_state_only_differences():
    # each shipped profile extends another and repeats none of its values
    for path in PROFILE_DIR.glob("*.yaml"):
        if path.stem == "default":
            continue
        data = yaml.safe_load(path.read_text())
        assert data.get("extends"), f"{path.name}: no `extends`"
        base, prof = load_profile(data["extends"]), load_profile(path.stem)
        for key, _ in _leaves({k: v for k, v in data.items() if k not in ("name", "extends")}):
            assert prof.get(key) != base.get(key), f"{path.name}: {key} repeats {data['extends']}"


def test_obelics_2023_differs_where_it_should():
    p = validate(load_profile("obelics-2023"))
    assert p.text_filters.node.stopword_ratio_min == 0.3 and p.text_filters.doc.number_words_max == 2000
    assert p.text_filters.url_ban == "substring" and p.dedup.recency == "warc_filename"
    assert p.warc.max_record_bytes == PipelineProfile().warc.max_record_bytes   # inherited from default
    assert "clean" in p.run.stages and "recheck" not in p.run.stages


@pytest.mark.parametrize("section", SECTIONS)
def test_unknown_key_in_every_section_is_refused(section):
    with pytest.raises(ConfigError, match=r"unknown keys \['no_such_key'\]"):
        load_profile("default", [f"{section}.no_such_key=1"])


@pytest.mark.parametrize("override,match", [
    ("nsfw.treshold=1", "nsfw: unknown keys"),
    ("nsfww.threshold=1", "unknown keys"),
    ("text_filters.node.stopword_ratio=0.3", "text_filters.node: unknown keys"),
    ("dedup.minhash.tresh=0.5", "dedup.minhash: unknown keys"),
    ("optout.spawning.batch=3", "optout.spawning: unknown keys"),
    ("nsfw.threshold=abc", "nsfw.threshold: expected a number"),
    ("images.retries=1.5", "images.retries: expected an integer"),
    ("dedup.image_url.count=docs", "not one of"),
    ("text_filters.url_ban=none", "not one of"),
    ("optout.images=[x_robots,nope]", "unknown checks"),
    ("dedup.order=[url,nope]", "unknown passes"),
    ("run.stages=[extract,no_such_op]", "unknown pipeline op"),
    ("warc=5", "warc: expected a mapping"),
    ("images.source=disk", "images.source"),
])
def test_wrong_values_are_refused_at_load(override, match):
    with pytest.raises(ConfigError, match=match):
        load_profile("obelics-2023", [override])


def test_unquoted_off_is_accepted_where_off_is_a_choice():
    assert validate(load_profile("default", ["text_filters.url_ban=off"])).text_filters.url_ban == "off"


def test_mappings_merge_over_defaults():
    p = validate(load_profile("default", ["perplexity.max_perplexity.custom=99"]))
    assert p.perplexity.max_perplexity == {"wikipedia-en": 1500.0, "builtin-en": 1000.0, "custom": 99.0}


def test_resolved_profile_is_complete_and_reloads(tmp_path):
    full = resolved(load_profile("obelics-2023", ["nsfw.threshold=0.9"]))
    assert full["name"] == "obelics-2023" and set(full) == {"name", *SECTIONS}
    path = tmp_path / "saved.yaml"
    path.write_text(yaml.safe_dump(full, sort_keys=False))
    assert validate(load_profile(path)) == validate(load_profile("obelics-2023", ["nsfw.threshold=0.9"]))


def test_run_refuses_a_bad_profile_before_writing(tmp_path):
    from pipeline.run import run

    out = tmp_path / "out"
    with pytest.raises(ConfigError, match="treshold"):
        run("default", out, ["x.warc.gz"], overrides=["nsfw.treshold=1"])
    assert not out.exists()


def _cli_fails_cleanly(capsys, argv, out, match):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and match in err and "Traceback" not in err, err
    assert not out.exists() or not any(out.iterdir())


def test_cli_run_refuses_a_typo_before_any_work(tmp_path, capsys):
    warc = tmp_path / "in.warc.gz"
    warc.write_bytes(b"")
    out = tmp_path / "out"
    _cli_fails_cleanly(capsys, ["run", "--warc", str(warc), "--out", str(out), "--set", "nsfw.treshold=1"],
                       out, "unknown keys ['treshold']")
    _cli_fails_cleanly(capsys, ["run", "--warc", str(warc), "--out", str(out), "--set", "nsfw.threshold=abc"],
                       out, "expected a number")
    prof = tmp_path / "mine.yaml"
    prof.write_text("extends: default\nnsfw:\n  treshold: 0.9\n")
    _cli_fails_cleanly(capsys, ["run", "--warc", str(warc), "--out", str(out), "--profile", str(prof)],
                       out, "unknown keys ['treshold']")
    prof.write_text("extends: obelics-2023\ntext_filters:\n  node: {stopword_ratio_min: high}\n")
    _cli_fails_cleanly(capsys, ["run", "--warc", str(warc), "--out", str(out), "--profile", str(prof)],
                       out, "stopword_ratio_min: expected a number")


def test_cli_extract_refuses_a_typo(tmp_path, capsys):
    html = tmp_path / "a.html"
    html.write_text("<p>hi</p>")
    out = tmp_path / "out"
    _cli_fails_cleanly(capsys, ["extract", str(html), "-o", str(out / "x.parquet"), "--set", "extract.mod=x"],
                       out, "unknown keys ['mod']")


def test_run_yaml_set_is_extended_by_command_line_set(tmp_path):
    from obelics.commands.run import resolve

    conf = tmp_path / "run.yaml"
    conf.write_text("out: o\nwarc: [a.warc.gz]\nset:\n  - images.source=warc\n  - nsfw.threshold=0.5\n")
    args = argparse.Namespace(config=str(conf), set=["nsfw.threshold=0.7"], **{k: None for k in (
        "profile", "out", "warc", "snapshot", "shard", "num_shards", "limit", "workers", "cc_base_url")})
    sets = resolve(args)["set"]
    assert sets == ["images.source=warc", "nsfw.threshold=0.5", "nsfw.threshold=0.7"]
    assert validate(load_profile("default", sets)).nsfw.threshold == 0.7   # the command line wins
    conf.write_text("out: o\nwarc: [a.warc.gz]\nset: images.source=warc\n")
    with pytest.raises(ValueError, match="list"):
        resolve(args)


def test_cli_profile_prints_the_whole_profile(capsys):
    assert main(["profile", "obelics-2023", "--set", "text_filters.url_ban=off"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == resolved(load_profile("obelics-2023", ["text_filters.url_ban=off"]))
    assert printed["text_filters"]["url_ban"] == "off" and printed["dedup"]["recency"] == "warc_filename"


def test_missing_spawning_key_stops_the_run_before_any_work(tmp_path, monkeypatch, capsys):
    from pipeline.run import run

    monkeypatch.delenv("SPAWNING_API_KEY", raising=False)
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"\$SPAWNING_API_KEY is not set"):
        run("default", out, ["x.warc.gz"])
    assert not out.exists()
    warc = tmp_path / "in.warc.gz"
    warc.write_bytes(b"")
    _cli_fails_cleanly(capsys, ["run", "--warc", str(warc), "--out", str(out)], out, "SPAWNING_API_KEY")
    # no optout op in the run, or the check not required: nothing to ask for
    validate(load_profile("default", ["optout.spawning.require_key=false"])).optout.check_environment()
    validate(load_profile("default")).optout.check_environment({"SPAWNING_API_KEY": "k"})
