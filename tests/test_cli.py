"""CLI conventions (obelics/cli.py): --version, global flags anywhere, results alone on stdout."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from obelics.cli import build_parser, hoist_global_flags, is_network_error, main, version

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"obelics-toolkit {version()}"


def test_global_flags_may_follow_the_sub_command():
    assert hoist_global_flags(["run", "x.yaml", "-v", "--out", "o"]) == ["-v", "run", "x.yaml", "--out", "o"]
    assert hoist_global_flags(["resources", "fetch", "--quiet"]) == ["--quiet", "resources", "fetch"]
    assert hoist_global_flags(["run", "--", "-v"]) == ["run", "--", "-v"]  # after --: an argument
    args = build_parser().parse_args(hoist_global_flags(["profile", "default", "-v", "-q"]))
    assert args.verbose and args.quiet and args.command == "profile"


def test_quiet_prints_nothing_on_stdout(capsys):
    assert main(["profile", "default", "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["profile", "default"]) == 0
    assert "extract:" in capsys.readouterr().out


def test_readme_images_usage_parses():
    args = build_parser().parse_args(["images", "docs.parquet", "--out", "images/"])
    assert args.work == "images/" and args.inputs == ["docs.parquet"]


def test_network_errors_are_recognised():
    import requests

    assert is_network_error(requests.ConnectionError("x")) and is_network_error(OSError("x"))
    assert not is_network_error(RuntimeError("x"))


def test_network_error_is_one_line_without_traceback(tmp_path, monkeypatch, capsys):
    import requests

    from filters import resources

    def fail(*a, **k):
        raise requests.ConnectionError("Failed to resolve 'raw.githubusercontent.com'")

    monkeypatch.setattr(resources, "fetch", fail)
    assert main(["resources", "fetch", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["obelics resources: network error: Failed to resolve 'raw.githubusercontent.com'"]


def test_library_prints_and_child_processes_go_to_stderr():
    """img2dataset prints its banner and progress on stdout, its worker processes too: while a command
    runs, file descriptor 1 is stderr and only the result reaches the real stdout."""
    code = textwrap.dedent("""
        import os, sys
        from obelics.cli import results_to_stdout
        with results_to_stdout(False) as out:
            print("banner from a library")
            os.system("echo from a child process")
            out.write("RESULT\\n")
        print("after")
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "RESULT\nafter\n"
    assert "banner from a library" in proc.stderr and "from a child process" in proc.stderr
