"""An installed package (no checkout around it) finds its profiles and writes only to the user's cache.

The wheel's layout is copied by hand here (the packages, configs/ as obelics/configs, as setup.py and
MANIFEST.in ship it); .ci/run builds the real wheel and installs it into a clean venv."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from obelics import paths

ROOT = Path(__file__).resolve().parents[1]


def test_checkout_layout():
    assert paths.checkout_root() == ROOT
    assert paths.configs_dir() == ROOT / "configs" and paths.build_dir() == ROOT / "build"


def test_user_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("OBELICS_CACHE", str(tmp_path / "c"))
    assert paths.user_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("OBELICS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert paths.user_cache_dir() == tmp_path / "x" / "obelics"


def test_setup_ships_every_configs_folder():
    setup = (ROOT / "setup.py").read_text()
    assert '"obelics.configs"' in setup and "graft configs" in (ROOT / "MANIFEST.in").read_text()
    assert '"obelics.configs" = "configs"' in (ROOT / "pyproject.toml").read_text()


def test_installed_layout_runs_from_another_folder(tmp_path):
    site = tmp_path / "site-packages"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pkg in ("obelics", "filters", "pipeline"):
        shutil.copytree(ROOT / pkg, site / pkg, ignore=ignore)
    shutil.copytree(ROOT / "configs", site / "obelics" / "configs", ignore=ignore)
    before = sorted(str(p.relative_to(site)) for p in site.rglob("*"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    page = elsewhere / "page.html"
    page.write_text("<html><body><h1>Title</h1><p>" + "A paragraph of plain words. " * 20 + "</p></body></html>")
    env = {**os.environ, "PYTHONPATH": str(site), "OBELICS_CACHE": str(tmp_path / "cache")}
    env.pop("OBELICS_RESOURCES", None)

    def obelics(*args):
        return subprocess.run([sys.executable, "-m", "obelics", *args], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=300)

    where = subprocess.run([sys.executable, "-c", "from obelics import paths; from obelics.sample import "
                            "sample_warc_path; print(paths.configs_dir()); print(paths.build_dir()); "
                            "print(sample_warc_path())"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert where.returncode == 0, where.stderr
    sample = tmp_path / "cache" / "sample" / "sample.warc.gz"  # built on first use, in the user cache
    assert where.stdout.split() == [str(site / "obelics" / "configs"), str(tmp_path / "cache"), str(sample)]
    assert sample.stat().st_size > 0
    proc = obelics("extract", "page.html", "--url", "https://example.com/a.html", "-o", "docs.parquet",
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (elsewhere / "docs.parquet").is_file()
    prof = obelics("profile", "obelics-2023")
    assert prof.returncode == 0 and "mode: obelics-2023" in prof.stdout, prof.stderr
    after = sorted(str(p.relative_to(site)) for p in site.rglob("*") if "__pycache__" not in p.parts)
    assert after == [p for p in before if "__pycache__" not in p]  # nothing written into the package


def _deps():
    import re
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    name = re.compile(r"[A-Za-z0-9_.\-]+")
    groups = {"core": data["project"]["dependencies"], **data["project"]["optional-dependencies"]}
    return data, {g: {name.match(d).group(0).lower(): d for d in deps} for g, deps in groups.items()}


def test_dependencies_are_listed_once_with_the_bounds_the_code_needs():
    import re

    from packaging.version import Version

    data, groups = _deps()
    seen: dict[str, str] = {}
    for group, deps in groups.items():
        for dep in deps:
            if group != "obelics-2023":  # the extra pins what the core allows more loosely
                assert dep not in seen, f"{dep} listed in {seen.get(dep)} and {group}"
                seen[dep] = group
    core = groups["core"]
    ray_low = Version(re.search(r">=([0-9.]+)", core["ray"]).group(1))
    # the bound tested with (units and passes run as plain Ray tasks; Ray Data is quieted where it is used)
    assert core["ray"].startswith("ray[data]") and ray_low >= Version("2.10")
    assert "datasketch" not in core and "datasketch" in groups["dev"]  # only the reference test imports it
    assert groups["obelics-2023"]["emoji"] == "emoji==1.6.1" and "<4.13" in groups["obelics-2023"]["beautifulsoup4"]
    assert "beautifulsoup4" not in core
    assert "setuptools>=77" in data["build-system"]["requires"]  # the SPDX licence string
