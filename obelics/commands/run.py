"""``obelics run [CONFIG] [options]``: the whole pipeline on local WARCs or a Common Crawl shard."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import yaml

RUN_KEYS = {"profile", "out", "warc", "snapshot", "shard", "num_shards", "limit", "workers", "set", "cc_base_url"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the pipeline: WARCs or a Common Crawl shard -> dataset shards",
                       description="Run extraction, filters, dedup, images, writers and the report. "
                                   "Resumable: rerun the same command after a failure.")
    p.add_argument("config", nargs="?", help="run YAML (keys: profile, out, warc, snapshot, shard, num_shards, "
                                             "limit, workers, set); command-line options override it")
    p.add_argument("--profile", help="pipeline profile name or YAML (default: default)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--warc", nargs="+", help="local WARC files or http(s) URLs")
    p.add_argument("--snapshot", help="Common Crawl snapshot, e.g. CC-MAIN-2023-06")
    p.add_argument("--shard", type=int, help="shard index k (with --snapshot)")
    p.add_argument("--num-shards", type=int, help="number of shards n (with --snapshot)")
    p.add_argument("--limit", type=int, help="take at most this many WARC files of the shard")
    p.add_argument("--workers", type=int, help="concurrent units (default: one per CPU of the Ray cluster)")
    p.add_argument("--cc-base-url", help="Common Crawl HTTP base (default https://data.commoncrawl.org/)")
    p.add_argument("--restart", action="store_true", help="discard a previous run in --out and start again")
    p.add_argument("--restart-if-changed", action="store_true",
                   help="start again when --out holds a run with another plan (inputs, profile or stages); "
                        "without it such a run is refused")
    p.add_argument("--set", action="append", default=None, metavar="KEY=VALUE", help="override a profile value")
    p.set_defaults(func=main)


def resolve(args: argparse.Namespace) -> dict:
    """Merge the run YAML and the command-line options into one run description."""
    conf: dict = {}
    if args.config:
        with open(args.config, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
        unknown = set(conf) - RUN_KEYS
        if unknown:
            raise ValueError(f"{args.config}: unknown keys {sorted(unknown)}")
    sets = conf.get("set") or []
    if not isinstance(sets, list) or not all(isinstance(x, str) for x in sets):
        raise ValueError(f"{args.config}: `set:` must be a list of key.path=value strings")
    for key in RUN_KEYS:
        value = getattr(args, key, None)
        if value is not None:
            conf[key] = value
    conf["set"] = sets + list(getattr(args, "set", None) or [])  # --set adds to the YAML's set:, after it
    conf.setdefault("profile", "default")
    conf.setdefault("shard", 0)
    conf.setdefault("num_shards", 1)
    if not conf.get("out"):
        raise ValueError("no output folder: give --out or `out:` in the run YAML")
    if bool(conf.get("warc")) == bool(conf.get("snapshot")):
        raise ValueError("give exactly one of --warc (local files/URLs) or --snapshot")
    return conf


def main(args: argparse.Namespace) -> int:
    from obelics import storage
    from obelics.warc import resolve_source
    from pipeline.profile import load_profile
    from pipeline.run import run
    from pipeline.sources import cc_url, fetch_warc_paths, plan_shard

    conf = resolve(args)
    # the whole profile (overrides included) is validated before anything is fetched or written
    profile = load_profile(conf["profile"], conf["set"])
    out = Path(conf["out"])
    if conf.get("snapshot"):
        paths = fetch_warc_paths(conf["snapshot"], conf.get("cc_base_url"), cache_dir=out / "cache")
        plan = plan_shard(paths, conf["shard"], conf["num_shards"], conf.get("limit"))
        inputs = [cc_url(p, conf.get("cc_base_url")) for p in plan.inputs]
        print(f"{conf['snapshot']} {plan.name()}: {len(inputs)} of {len(paths)} WARC files")
    else:
        warcs = conf["warc"] if isinstance(conf["warc"], list) else [conf["warc"]]
        inputs = [w if storage.is_remote(w) else str(Path(w).resolve()) for w in warcs]
        for w in inputs:  # http(s) inputs are checked when read (a 404 is counted, the run goes on)
            src = resolve_source(w)
            if not src.startswith(("http://", "https://")) and not storage.exists(src):
                raise FileNotFoundError(f"no such WARC: {w}")
    stats = run(profile, out, inputs, workers=conf.get("workers"),
                restart=args.restart, restart_if_changed=args.restart_if_changed)
    print(json.dumps(stats.get("summary", {}), indent=2))
    print(f"output: {out}")
    return 0
