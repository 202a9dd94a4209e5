"""Preflight (pipeline/preflight.py): every user error before any work, one line, exit code 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from obelics.cli import main
from pipeline.preflight import (
    PreflightError,
    Target,
    check_hub_token,
    check_network,
    check_output,
    check_perplexity_model,
    check_pins,
    network_targets,
    preflight,
)
from pipeline.profile import load_profile, validate
from tests.pipeline.test_run import OFFLINE

ROOT = Path(__file__).resolve().parents[2]


def _typed(*overrides, profile="default"):
    return validate(load_profile(profile, list(overrides)))


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_obelics_2023_needs_its_pins():
    typed = _typed(profile="obelics-2023")
    check_pins(typed, {"emoji": "1.6.1", "beautifulsoup4": "4.12.3"})
    with pytest.raises(PreflightError, match=r"emoji==1.6.1 \(installed: 2.14.0\).*obelics-toolkit\[obelics-2023\]"):
        check_pins(typed, {"emoji": "2.14.0", "beautifulsoup4": "4.12.3"})
    with pytest.raises(PreflightError, match=r"beautifulsoup4<4.13 \(installed: none\)"):
        check_pins(typed, {"emoji": "1.6.1", "beautifulsoup4": None})
    check_pins(_typed(), {"emoji": "2.14.0", "beautifulsoup4": None})  # the default profile needs neither pin
    check_pins(typed)  # the test environment has the extra installed


def test_output_must_be_a_writable_folder(tmp_path):
    check_output(str(tmp_path / "new" / "deeper"))  # creatable: fine, and nothing is created
    assert not (tmp_path / "new").exists()
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(PreflightError, match="not a folder"):
        check_output(str(f))
    with pytest.raises(PreflightError, match="not a folder"):
        check_output(str(f / "below"))


def test_hub_token_is_required_for_publishing():
    with pytest.raises(PreflightError, match="Hugging Face token"):
        check_hub_token("")
    check_hub_token("hf_x")


def test_publish_checks_the_hub_is_reachable(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setenv("HF_TOKEN", "hf_test")
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{_closed_port()}")
    (tmp_path / "run").mkdir()
    assert main(["publish", str(tmp_path / "run"), "--repo-id", "org/name"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needed for the Hugging Face Hub" in err[0], err
    assert not (tmp_path / "run" / "hub").exists()


def test_network_targets_follow_what_the_run_fetches():
    assert network_targets(_typed(*OFFLINE)) == []  # the offline sample: nothing
    hosts = {t.host for t in network_targets(_typed(), ["https://example.org/a.warc.gz"])}
    assert hosts == {"example.org", "opts-api.spawning.ai"}  # the input and the Spawning API
    typed = _typed("images.source=web", "optout.images=[x_robots]", "optout.documents=[x_robots]")
    assert [t.host for t in network_targets(typed)] == ["data.commoncrawl.org"]  # image hosts: the probe
    cc = network_targets(_typed(*OFFLINE), snapshot=True, cc_base_url="http://127.0.0.1:9/")
    assert [(t.host, t.port) for t in cc] == [("127.0.0.1", 9)]


def test_check_network_connects_and_names_the_failure():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    try:
        check_network([Target("127.0.0.1", server.getsockname()[1], "a test")], timeout=2)
    finally:
        server.close()
    with pytest.raises(PreflightError, match=r"cannot connect to 127.0.0.1:\d+.*needed for Common Crawl"):
        check_network([Target("127.0.0.1", _closed_port(), "Common Crawl")], timeout=2)
    with pytest.raises(PreflightError, match="cannot resolve nowhere.invalid"):
        check_network([Target("nowhere.invalid", 443, "an input")], timeout=2)


def test_builtin_perplexity_model_warns_or_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("OBELICS_RESOURCES", str(tmp_path))  # no Wikipedia model fetched
    assert "builtin-en" in check_perplexity_model(_typed(), "default")[0]
    with pytest.raises(PreflightError, match="obelics resources fetch"):
        check_perplexity_model(_typed("run.builtin_lm=refuse"), "default")
    assert check_perplexity_model(_typed("run.builtin_lm=allow"), "default") == []
    assert check_perplexity_model(_typed("perplexity.model=builtin-en"), "default") == []
    lm = tmp_path / "kenlm" / "wikipedia"
    lm.mkdir(parents=True)
    (lm / "en.arpa.bin").write_bytes(b"x")
    (lm / "en.sp.model").write_bytes(b"x")
    assert check_perplexity_model(_typed("run.builtin_lm=refuse"), "default") == []


def test_preflight_runs_every_check(tmp_path, monkeypatch):
    monkeypatch.delenv("SPAWNING_API_KEY", raising=False)
    with pytest.raises(PreflightError, match="SPAWNING_API_KEY"):
        preflight(load_profile("default"), tmp_path / "o", network=False)
    monkeypatch.setenv("SPAWNING_API_KEY", "k")
    with pytest.raises(PreflightError, match="cannot connect"):
        preflight(load_profile("default", OFFLINE), tmp_path / "o", snapshot=True,
                  cc_base_url=f"http://127.0.0.1:{_closed_port()}/")
    assert preflight(load_profile("default", [*OFFLINE, "run.builtin_lm=allow"]), tmp_path / "o") == []


@pytest.mark.parametrize("case", ["typo", "bad value", "missing key", "out is a file"])
def test_cli_run_fails_before_any_work_with_one_line(case, tmp_path, monkeypatch, capsys):
    warc = tmp_path / "x.warc.gz"
    warc.write_bytes(b"")
    out = tmp_path / "out"
    args = ["run", "--warc", str(warc), "--out", str(out)]
    monkeypatch.delenv("SPAWNING_API_KEY", raising=False)
    if case == "typo":
        args += ["--set", "nsfw.treshold=0.5"]
    elif case == "bad value":
        args += ["--set", "nsfw.threshold=abc"]
    elif case == "out is a file":
        out.write_text("x")
        args += ["--set", "optout.enabled=false"]
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = [x for x in captured.err.splitlines() if "WARNING" not in x]
    assert len(lines) == 1 and lines[0].startswith("obelics run: error: "), captured.err
    assert captured.out == ""
    assert not out.exists() or out.is_file()  # nothing written: no stage folder, no run.json


def test_cli_run_without_network_fails_in_one_line(tmp_path):
    """What the issue asks to see, as a user runs it (a process of its own): no network for a profile that
    needs it: one line on stderr, nothing on stdout, exit 2, no folder written."""
    warc = tmp_path / "x.warc.gz"
    warc.write_bytes(b"")
    out = tmp_path / "out"
    env = {**os.environ, "SPAWNING_API_KEY": "k"}
    args = ["run", "--warc", str(warc), "--out", str(out), "--set", "images.source=warc",
            "--set", f"optout.spawning.endpoint=http://127.0.0.1:{_closed_port()}/q"]
    proc = subprocess.run([sys.executable, "-m", "obelics", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = [x for x in proc.stderr.splitlines() if "WARNING" not in x]
    assert len(lines) == 1 and lines[0].startswith("obelics run: error: network: cannot connect"), proc.stderr
    assert "Spawning" in lines[0] and proc.stdout == "" and not out.exists()


def test_cli_publish_without_token_stops_before_building(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    (tmp_path / "run").mkdir()
    assert main(["publish", str(tmp_path / "run"), "--repo-id", "org/name"]) == 2
    err = capsys.readouterr().err
    assert "Hugging Face token" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "hub").exists()


def test_the_checks_import_neither_torch_nor_ray(tmp_path):
    """What keeps a user error to a few seconds: loading and checking a profile loads no heavy library
    (webdataset, imported by validating output.formats, would bring torch in)."""
    code = ("import sys\n"
            "from pipeline.profile import load_profile\n"
            "from pipeline.preflight import preflight\n"
            f"preflight(load_profile('default', ['run.builtin_lm=allow']), {str(tmp_path / 'o')!r}, network=False,"
            " env={'SPAWNING_API_KEY': 'k'})\n"
            "print(sorted(m for m in ('torch', 'ray', 'webdataset', 'img2dataset', 'datasets') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
