"""Checks run before any work: every user error found in seconds, as one line, before a stage folder exists.

:func:`preflight` takes the loaded (hence validated) profile, the output folder and the inputs, and checks,
cheapest first:

- the ``obelics-2023`` pins (``emoji==1.6.1``, ``beautifulsoup4<4.13``: the ``obelics-2023`` extra) when
  the profile reproduces the original build (:func:`check_pins`);
- keys and tokens: ``$SPAWNING_API_KEY`` when the Spawning check is on (:func:`check_keys`); the Hub token
  for ``obelics publish`` (:func:`check_hub_token`);
- the output: a folder (or a folder that can be created) the user may write in (:func:`check_output`);
- the network, only when the run needs it (:func:`network_targets`: URL inputs, a Common Crawl snapshot,
  opt-out checks that fetch, images from the web): a DNS lookup and a TCP connect to each host it
  will use first, a few seconds at most in all (:func:`check_network`). ``run.preflight_network: false``
  skips it.

Each failure is a :class:`PreflightError` (a ``ValueError``: the CLI prints one line and exits with 2).
Warnings (the built-in perplexity model standing in for the real one) are returned for the caller to log,
or refused with ``run.builtin_lm: refuse``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit

from obelics import storage
from obelics.config import ConfigError, Profile

log = logging.getLogger("obelics.preflight")

# opt-out checks that fetch something (the others read the response headers and the page)
NETWORK_OPTOUT = ("tdmrep", "robots", "ai_txt", "spawning")
# what the obelics-2023 profile needs exactly (pyproject.toml's obelics-2023 extra)
PINS_2023 = {"emoji": ("==", "1.6.1"), "beautifulsoup4": ("<", "4.13")}
EXTRA_2023 = "pip install 'obelics-toolkit[obelics-2023]'"


class PreflightError(ConfigError):
    """A user error found before any work (one line for the CLI, exit code 2)."""


@dataclass(frozen=True)
class Target:
    """A host the run will contact, and why."""

    host: str
    port: int
    why: str


def _version_tuple(v: str) -> tuple[int, ...]:
    out = []
    for part in v.split("."):
        digits = "".join(c for c in part if c.isdigit())
        if not digits:
            break
        out.append(int(digits))
    return tuple(out)


def needs_2023_pins(typed) -> bool:
    """Whether the profile runs the original build's decoding (bs4) and character set (emoji 1.6.1)."""
    return typed.extract.mode == "obelics-2023" or typed.extract.bs4_roundtrip


def check_pins(typed, versions: dict[str, str | None] | None = None) -> None:
    """PreflightError when an ``obelics-2023`` profile runs without the pinned emoji and bs4 versions
    (``versions``: package -> installed version or None, for tests; default: the installed ones)."""
    if not needs_2023_pins(typed):
        return
    bad = []
    for pkg, (op, want) in PINS_2023.items():
        if versions is not None:
            have = versions.get(pkg)
        else:
            try:
                have = metadata.version(pkg)
            except metadata.PackageNotFoundError:
                have = None
        ok = have is not None and (
            _version_tuple(have) == _version_tuple(want) if op == "==" else _version_tuple(have) < _version_tuple(want))
        if not ok:
            bad.append(f"{pkg}{op}{want} (installed: {have or 'none'})")
    if bad:
        raise PreflightError(f"the obelics-2023 profile reproduces the original build and needs {', '.join(bad)}: "
                             f"{EXTRA_2023}")


def check_keys(typed, env=None) -> None:
    """PreflightError when a check that needs a key is on and the key is missing (``$SPAWNING_API_KEY``)."""
    if typed.optout.enabled and "optout" in typed.run.stages:
        try:
            typed.optout.check_environment(env)
        except ConfigError as e:
            raise PreflightError(str(e)) from None


def check_hub_token(token: str | None = None) -> None:
    """PreflightError when no Hugging Face token is configured (``$HF_TOKEN`` or ``huggingface-cli login``)."""
    if token is None:
        from huggingface_hub import get_token

        token = get_token()
    if not token:
        raise PreflightError("publishing needs a Hugging Face token: set $HF_TOKEN or run `hf auth login` "
                             "(or use --dry-run to build the folder only)")


def hub_target() -> Target:
    """The Hugging Face Hub's host (``$HF_ENDPOINT`` or huggingface.co), for :func:`check_network`."""
    from huggingface_hub import constants

    return _target(constants.ENDPOINT, "the Hugging Face Hub") or Target("huggingface.co", 443, "the Hugging Face Hub")


def check_output(out: str) -> None:
    """PreflightError when ``out`` is not a folder the user can write in (or create). Creates nothing."""
    if storage.is_remote(out):
        return  # object storage: credentials and the bucket are checked by the first write
    p = Path(out)
    if p.exists() and not p.is_dir():
        raise PreflightError(f"--out {out}: exists and is not a folder")
    existing = p
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise PreflightError(f"--out {out}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PreflightError(f"--out {out}: {existing} is not writable")


def _target(url: str, why: str) -> Target | None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return Target(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), why)


def network_targets(typed, inputs: list[str] = (), snapshot: bool = False,
                    cc_base_url: str | None = None) -> list[Target]:
    """The hosts the run will contact first: URL inputs, Common Crawl, the Spawning API, and (for opt-out
    checks on pages' hosts and images from the web, whose hosts are known only later) the probe host
    ``run.network_probe_url``. Empty for an offline run."""
    from pipeline.sources import cc_base_url as default_cc_base

    out: list[Target] = []
    for i in inputs:
        t = _target(i, "an input")
        if t:
            out.append(t)
    if snapshot:
        t = _target(cc_base_url or default_cc_base(), "Common Crawl")
        if t:
            out.append(t)
    stages = typed.run.stages
    o = typed.optout
    checks = set(o.images) | set(o.documents) if o.enabled and "optout" in stages else set()
    if "spawning" in checks and (o.spawning.require_key or os.environ.get(o.spawning.api_key_env)):
        t = _target(o.spawning.endpoint, "the Spawning opt-out API")
        if t:
            out.append(t)
    web_images = typed.images.source == "web" and "image_table" in stages
    if (web_images or checks & {"tdmrep", "robots", "ai_txt"}) and not out and typed.run.network_probe_url:
        why = "image downloads" if web_images else "opt-out checks (robots.txt, TDMRep, ai.txt)"
        t = _target(typed.run.network_probe_url, why)
        if t:
            out.append(t)
    seen, unique = set(), []
    for t in out:
        if (t.host, t.port) not in seen:
            seen.add((t.host, t.port))
            unique.append(t)
    return unique


def _connect(t: Target, timeout: float, result: dict) -> None:
    try:
        infos = socket.getaddrinfo(t.host, t.port, type=socket.SOCK_STREAM)
    except OSError as e:
        result[t] = f"cannot resolve {t.host} ({e.strerror or e})"
        return
    last = None
    for family, kind, proto, _, addr in infos:
        s = socket.socket(family, kind, proto)
        s.settimeout(timeout)
        try:
            s.connect(addr)
            result[t] = None
            return
        except OSError as e:
            last = e
        finally:
            s.close()
    result[t] = f"cannot connect to {t.host}:{t.port} ({last})"


def check_network(targets: list[Target], timeout: float = 3.0) -> None:
    """PreflightError unless every target resolves and accepts a TCP connection within ``timeout`` seconds
    (all checked at once, in threads: DNS lookups have no timeout of their own)."""
    if not targets:
        return
    result: dict = {}
    threads = [threading.Thread(target=_connect, args=(t, timeout, result), daemon=True) for t in targets]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout + 0.5)
    for t in targets:
        problem = result.get(t, f"no answer from {t.host} within {timeout:g} s")
        if problem:
            raise PreflightError(f"network: {problem}, needed for {t.why}; check the connection, or run "
                                 "offline (images.source=warc, opt-out checks without fetches), or skip this "
                                 "check with --set run.preflight_network=false")


def check_perplexity_model(typed, profile_name: str) -> list[str]:
    """A warning when the run scores perplexity with the small built-in model because the real one
    (``obelics resources fetch``) is missing; a PreflightError instead with ``run.builtin_lm: refuse``."""
    p = typed.perplexity
    if not (p.node_level or p.doc_level) or "text_filters" not in typed.run.stages or p.model != "auto":
        return []
    if typed.run.builtin_lm == "allow":
        return []
    from filters.resources import kenlm_paths

    lm, sp = kenlm_paths("wikipedia", "en")
    if lm.is_file() and sp.is_file():
        return []
    msg = (f"perplexity.model=auto: the Wikipedia KenLM model is not in {lm.parent}, so the small built-in model "
           "(builtin-en, for tests and the sample) scores perplexity; run `obelics resources fetch` for the real "
           "one, or set perplexity.model=builtin-en / run.builtin_lm=allow to accept it")
    if typed.run.builtin_lm == "refuse":
        raise PreflightError(msg)
    return [msg]


def preflight(profile: Profile, out: str | None = None, inputs: list[str] = (), *, snapshot: bool = False,
              cc_base_url: str | None = None, network: bool | None = None, env=None) -> list[str]:
    """Every check above for a run of ``profile`` into ``out``; returns the warnings (already logged)."""
    from pipeline.profile import validate

    typed = validate(profile)
    check_pins(typed)
    check_keys(typed, env)
    if out is not None:
        check_output(str(out))
    warnings = check_perplexity_model(typed, profile.name)
    if network if network is not None else typed.run.preflight_network:
        check_network(network_targets(typed, list(inputs), snapshot, cc_base_url))
    for w in warnings:
        log.warning("%s", w)
    return warnings
