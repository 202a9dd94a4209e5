"""Opt-out signal parsers: X-Robots-Tag, meta tags, TDMRep rules, robots.txt/ai.txt, Spawning helpers, config."""

from __future__ import annotations

from email.message import Message

import pytest

from filters.optout import OptOutChecker, OptOutConfig, meta_signals, optout_config
from filters.optout.html_meta import meta_robots_values
from filters.optout.robots import RobotsRules, normalize_ai_txt
from filters.optout.spawning import RateLimiter, SpawningClient, retry_delays
from filters.optout.tdmrep import TdmRepError, header_verdict, meta_verdict, parse_tdmrep, rules_verdict
from filters.optout.x_robots import directives_for, header_values, parse_directives, x_robots_verdict
from obelics.config import ConfigError

ME = "obelics-toolkit"
IMG = ["noai", "noimageai", "noindex", "noimageindex", "none"]
DOC = ["noai", "noindex", "none"]


@pytest.mark.parametrize("values,expected", [
    (["noai"], "optout:x-robots-tag:noai"),
    (["NoIndex, NoFollow"], "optout:x-robots-tag:noindex"),
    (["nofollow", "noimageai"], "optout:x-robots-tag:noimageai"),   # several headers
    (["obelics-toolkit: noai"], "optout:x-robots-tag:noai"),         # scoped to us
    (["Obelics-Toolkit: none"], "optout:x-robots-tag:none"),
    (["otherbot: noai"], None),                                       # scoped to someone else
    (["googlebot: noindex, obelics-toolkit: noimageai"], "optout:x-robots-tag:noimageai"),
    (["obelics-toolkit: nofollow, otherbot: noai"], None),           # the scope switches to otherbot
    (["unavailable_after: 25 Jun 2010 15:00:00 PST"], None),         # not a user agent
    (["max-image-preview: large, noai"], "optout:x-robots-tag:noai"),
    (["all"], None),
    ([""], None),
])
def test_x_robots_tag(values, expected):
    headers = [("X-Robots-Tag", v) for v in values] + [("Content-Type", "image/jpeg")]
    assert x_robots_verdict(headers, ME, IMG) == expected


def test_header_containers_and_document_directives():
    msg = Message()
    msg["X-Robots-Tag"] = "nofollow"
    msg["x-robots-tag"] = "noimageai"
    assert header_values(msg, "X-Robots-Tag") == ["nofollow", "noimageai"]
    assert header_values({"x-robots-tag": ["a", "b"]}, "X-ROBOTS-TAG") == ["a", "b"]
    assert header_values({"X-Robots-Tag": "noai"}, "x-robots-tag") == ["noai"]
    assert header_values(None, "x") == []
    # noimageai opts images out, not the page's text.
    assert x_robots_verdict(msg, ME, DOC) is None
    assert x_robots_verdict(msg, ME, IMG) == "optout:x-robots-tag:noimageai"
    assert parse_directives("bot: a, b, other: c") == [("bot", "a"), ("bot", "b"), ("other", "c")]
    assert directives_for(["bot: a", "b"], "BOT") == {"a", "b"}


def test_meta_signals_from_html():
    html = b"""<html><head><META NAME="Robots" content="noai, noimageai">
    <meta name="obelics-toolkit" content="noindex"><meta name="tdm-reservation" content="1">
    <meta name="tdm-policy" content="https://example.com/policy.json"><meta name="description" content="x">
    </head><body><p>hi</p></body></html>"""
    signals = meta_signals(html, ME)
    assert signals == {"robots": ["noai, noimageai"], ME: ["noindex"], "tdm-reservation": ["1"],
                       "tdm-policy": ["https://example.com/policy.json"]}
    assert directives_for(meta_robots_values(signals, ME), ME) == {"noai", "noimageai", "noindex"}
    assert meta_verdict(signals) == "optout:tdmrep:meta"
    assert meta_verdict(meta_signals("<meta name='tdm-reservation' content='0'>", ME)) is None
    assert meta_signals("", ME) == {} and meta_signals(None, ME) == {}


def test_tdmrep_header_and_well_known_rules():
    assert header_verdict([("tdm-reservation", "1"), ("tdm-policy", "https://x/p")]) == "optout:tdmrep:header"
    assert header_verdict({"TDM-Reservation": "0"}) is None
    rules = parse_tdmrep(b"""[
        {"location": "/public/*", "tdm-reservation": 0},
        {"location": "/img/*.jpg$", "tdm-reservation": 1, "tdm-policy": "https://example.com/p"},
        {"location": "/news", "tdm-reservation": 1},
        {"nolocation": true}
    ]""")
    assert len(rules) == 3
    assert rules_verdict(rules, "https://s.example/public/img/a.jpg") is None         # first match wins
    assert rules_verdict(rules, "https://s.example/img/a.jpg") == "optout:tdmrep:well-known"
    assert rules_verdict(rules, "https://s.example/img/a.jpg?size=2") is None          # $ anchors the end
    assert rules_verdict(rules, "https://s.example/img/a.png") is None
    assert rules_verdict(rules, "https://s.example/news/2023/story.html") == "optout:tdmrep:well-known"
    assert rules_verdict(rules, "https://s.example/about") is None
    assert rules_verdict(parse_tdmrep('{"location": "/", "tdm-reservation": 1}'), "http://x/a") is not None
    for bad in (b"not json", b'"a string"', b"\xff\xfe"):
        with pytest.raises(TdmRepError):
            parse_tdmrep(bad)


def test_robots_txt_rfc9309_semantics_and_ai_txt():
    robots = RobotsRules("""User-agent: *
Disallow: /private/

User-agent: obelics-toolkit
Disallow: /*.png$
Disallow: /members/
Allow: /members/public/
""", [ME])
    assert robots.allowed("https://x.example/a.jpg")
    assert not robots.allowed("https://x.example/img/a.png")                 # wildcard + end anchor
    assert robots.allowed("https://x.example/img/a.png?x=1")
    assert not robots.allowed("https://x.example/members/a.html")
    assert robots.allowed("https://x.example/members/public/a.html")        # longest match wins
    assert robots.allowed("https://x.example/private/a.html")               # our group replaces "*"
    with_ccbot = RobotsRules("User-agent: CCBot\nDisallow: /\n", [ME, "CCBot"])
    assert not with_ccbot.allowed("https://x.example/a")
    assert RobotsRules("User-agent: CCBot\nDisallow: /\n", [ME]).allowed("https://x.example/a")
    ai = RobotsRules(normalize_ai_txt("# Spawning AI\nUser-Agent: *\nDisallow: *.jpg\nDisallow: media/\n"), [ME])
    assert not ai.allowed("https://x.example/photos/cat.jpg")
    assert not ai.allowed("https://x.example/media/clip.mp4")
    assert ai.allowed("https://x.example/index.html")


def test_rate_limiter_and_retry_schedule():
    now = {"t": 0.0}
    slept = []

    def sleep(s):
        slept.append(round(s, 6))
        now["t"] += s

    limiter = RateLimiter(4.0, clock=lambda: now["t"], sleep=sleep)
    for _ in range(5):
        limiter.acquire()
    assert slept == [0.25, 0.25, 0.25, 0.25] and now["t"] == 1.0
    assert retry_delays([[5, 1], [5, 10], [10, 600], [10, 3600]]) == [1.0] * 5 + [10.0] * 5 + [600.0] * 10 + [3600.0] * 10
    assert retry_delays(optout_config("obelics-2023").spawning.retry_delays_s)[-1] == 3600.0


def test_spawning_response_parsing_by_url_then_position():
    parse = SpawningClient._parse
    assert parse(["a", "b"], {"urls": [{"url": "b", "optOut": True}, {"url": "a", "optOut": False}]}) == [False, True]
    assert parse(["a", "b"], {"urls": [{"optOut": True}, {"optOut": False}]}) == [True, False]
    with pytest.raises(KeyError):
        parse(["a", "b"], {"urls": [{"url": "a", "optOut": True}]})


def test_config_validation_and_missing_key():
    with pytest.raises(ConfigError):
        OptOutConfig(images=["x_robots", "robotz"])
    with pytest.raises(ConfigError, match="SPAWNING_API_KEY"):
        OptOutChecker(OptOutConfig(), env={})
    checker = OptOutChecker(OptOutConfig(images=["spawning"], documents=[]), env={"SPAWNING_API_KEY": "k"})
    assert checker.spawning is not None and checker.spawning.api_key == "k"
    # require_key: false -> the check is skipped and counted, never silently.
    cfg = OptOutConfig(images=["x_robots", "spawning"], documents=[])
    cfg.spawning.require_key = False
    skipping = OptOutChecker(cfg, env={})
    assert skipping.check_urls(["http://127.0.0.1:9/a.jpg"], "image") == {"http://127.0.0.1:9/a.jpg": None}
    assert skipping.events["optout:spawning_skipped_no_key"] == 1
    # Local-only checks need no network.
    local = OptOutChecker(OptOutConfig(images=["x_robots"], documents=["x_robots", "meta", "tdmrep"]), env={})
    assert local.check_url("http://127.0.0.1:9/a.jpg", "image", headers={"X-Robots-Tag": "noimageai"}) \
        == "optout:x-robots-tag:noimageai"
    assert local.local_verdict("http://127.0.0.1:9/p", "document",
                               html="<meta name=robots content='noai'>") == "optout:meta-robots:noai"
    assert local.local_verdict("http://127.0.0.1:9/p", "document",
                               html="<meta name=tdm-reservation content=1>") == "optout:tdmrep:meta"
    assert local.page_blocks_images(html="<meta name=robots content='noimageai'>") == "optout:page:noimageai"


def test_profiles():
    default, original = optout_config("default"), optout_config("obelics-2023")
    assert default == OptOutConfig()
    assert "spawning" in default.documents and original.documents == []
    assert original.images == ["x_robots", "spawning"] and original.on_error == "fail"
    assert original.spawning.batch_size == 1000 and original.spawning.pad_single
