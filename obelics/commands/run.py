"""``obelics run [CONFIG] [options]``: the whole pipeline on local WARCs or Common Crawl snapshots and shards.

One run is one dataset: ``--snapshot A --snapshot B --shards 0-99 --num-shards 1000`` takes shards 0..99
of both snapshots, and every global pass (dedup) decides over all of them. Rerunning with more
snapshots or shards on the same ``--out`` extends the run.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import yaml

from obelics.commands import result

log = logging.getLogger("obelics.run")
# `warc: [sample]` in a run YAML (or --warc sample): the embedded sample WARC, built on demand
SAMPLE_INPUT = "sample"

RUN_KEYS = {"profile", "out", "warc", "snapshot", "shard", "shards", "num_shards", "limit", "workers", "set",
            "cc_base_url"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the pipeline: WARCs or Common Crawl snapshots/shards -> one dataset",
                       description="Run extraction, filters, dedup, images, writers and the report over all "
                                   "inputs as one dataset (dedup decides over all of them). Resumable: rerun the "
                                   "same command after a failure; rerun with more snapshots or shards to extend.")
    p.add_argument("config", nargs="?", help="run YAML (keys: profile, out, warc, snapshot, shard, shards, "
                                             "num_shards, limit, workers, set), or the name of a shipped one "
                                             "(`sample`: configs/run/sample.yaml); command-line options "
                                             "override it")
    p.add_argument("--profile", help="pipeline profile name or YAML (default: default)")
    p.add_argument("--out", help="output folder")
    p.add_argument("--warc", nargs="+", help="local WARC files or http(s) URLs (`sample`: the embedded sample)")
    p.add_argument("--snapshot", action="append", help="Common Crawl snapshot, e.g. CC-MAIN-2023-06 (repeat it, "
                                                       "or space-separate, for several: one dataset)")
    p.add_argument("--shard", type=int, help="shard index k (with --snapshot)")
    p.add_argument("--shards", help="shard indices, e.g. 0-99 or 0,5,10-12 (with --snapshot and --num-shards)")
    p.add_argument("--num-shards", type=int, help="number of shards n (with --snapshot)")
    p.add_argument("--limit", type=int, help="take at most this many WARC files of each shard")
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
        args.config = run_yaml_path(args.config)
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
    conf.setdefault("num_shards", 1)
    if not conf.get("out"):
        raise ValueError("no output folder: give --out or `out:` in the run YAML")
    if bool(conf.get("warc")) == bool(conf.get("snapshot")):
        raise ValueError("give exactly one of --warc (local files/URLs) or --snapshot")
    if conf.get("shard") is not None and conf.get("shards") is not None:
        raise ValueError("give --shard or --shards, not both")
    if conf.get("snapshot"):
        snaps = conf["snapshot"] if isinstance(conf["snapshot"], list) else [conf["snapshot"]]
        conf["snapshot"] = [x for s in snaps for x in str(s).split()]
        if len(set(conf["snapshot"])) != len(conf["snapshot"]):
            raise ValueError(f"a snapshot is given twice: {conf['snapshot']}")
        shards = conf.pop("shard", None)
        conf["shards"] = parse_shards(conf["shards"] if conf.get("shards") is not None
                                      else 0 if shards is None else shards, conf["num_shards"])
    return conf


def run_yaml_path(name_or_path: str) -> str:
    """A run YAML: the file given, else the shipped ``configs/run/<name>.yaml`` for a bare name (``sample``)
    or for ``configs/run/<name>.yaml`` given outside a checkout."""
    from obelics.paths import configs_dir

    p = Path(name_or_path)
    if p.exists():
        return name_or_path
    shipped = configs_dir() / "run" / (p.name if p.suffix in (".yaml", ".yml") else f"{p.name}.yaml")
    if (len(p.parts) == 1 or p.parts[-2:-1] == ("run",)) and shipped.is_file():
        return str(shipped)
    known = sorted(x.stem for x in (configs_dir() / "run").glob("*.yaml"))
    raise FileNotFoundError(f"no run YAML {name_or_path!r}: not a file and not one of the shipped {known}")


def local_input(w: str) -> str:
    """A local WARC input as an absolute path; ``sample`` is the embedded sample (built if missing)."""
    if w == SAMPLE_INPUT:
        from obelics.sample import sample_warc_path

        return str(sample_warc_path())
    return str(Path(w).resolve())


def parse_shards(spec, num_shards: int) -> list[int]:
    """Shard indices from ``"0-99"``, ``"0,5,10-12"``, ``"0 1 2"``, an int or a list; each in [0, num_shards)."""
    if isinstance(spec, int):
        items = [str(spec)]
    elif isinstance(spec, list):
        items = [str(x) for x in spec]
    else:
        items = str(spec).replace(",", " ").split()
    out: list[int] = []
    for item in items:
        try:
            lo, _, hi = item.partition("-")
            first, last = int(lo), int(hi) if hi else int(lo)
        except ValueError:
            raise ValueError(f"bad shard range {item!r}: use k, a-b or a list such as 0,5,10-12") from None
        if last < first:
            raise ValueError(f"bad shard range {item!r}: the end is before the start")
        out.extend(range(first, last + 1))
    if not out:
        raise ValueError("no shard given")
    bad = [k for k in out if not 0 <= k < num_shards]
    if bad:
        raise ValueError(f"shard {bad[0]} is not in [0, {num_shards}) (--num-shards {num_shards})")
    if len(set(out)) != len(out):
        raise ValueError(f"a shard is given twice in {spec!r}")
    return out


def snapshot_inputs(conf: dict, cache_dir: str | Path) -> list[str]:
    """The WARC URLs of every (snapshot, shard) of ``conf``, snapshot by snapshot, shard by shard."""
    from pipeline.sources import cc_url, fetch_warc_paths, plan_shard

    inputs: list[str] = []
    for snapshot in conf["snapshot"]:
        paths = fetch_warc_paths(snapshot, conf.get("cc_base_url"), cache_dir=cache_dir)
        n = 0
        for k in conf["shards"]:
            plan = plan_shard(paths, k, conf["num_shards"], conf.get("limit"))
            inputs.extend(cc_url(p, conf.get("cc_base_url")) for p in plan.inputs)
            n += len(plan.inputs)
        log.info("%s: %d shard(s) of %d, %d of %d WARC files", snapshot, len(conf["shards"]), conf["num_shards"],
                 n, len(paths))
    return inputs


def main(args: argparse.Namespace) -> int:
    from obelics import storage
    from obelics.warc import resolve_source
    from pipeline.preflight import preflight
    from pipeline.profile import load_profile

    conf = resolve(args)
    # the whole profile (overrides included) is validated before anything is fetched or written
    profile = load_profile(conf["profile"], conf["set"])
    out = str(conf["out"])  # a folder or an object-store URI (Path would turn s3://b into s3:/b)
    warcs = [] if conf.get("snapshot") else conf["warc"] if isinstance(conf["warc"], list) else [conf["warc"]]
    warcs = [str(w) for w in warcs]
    # keys, tokens, pins, the output folder and the network: one line and exit 2, before any work
    preflight(profile, out, [w for w in warcs if w != SAMPLE_INPUT], snapshot=bool(conf.get("snapshot")),
              cc_base_url=conf.get("cc_base_url"))
    if conf.get("snapshot"):
        inputs = snapshot_inputs(conf, storage.join(out, "cache"))
    else:
        inputs = [w if storage.is_remote(w) else local_input(w) for w in warcs]
        for w in inputs:  # http(s) inputs are checked when read (a 404 is counted, the run goes on)
            src = resolve_source(w)
            if not src.startswith(("http://", "https://")) and not storage.exists(src):
                raise FileNotFoundError(f"no such WARC: {w}")
    from pipeline.loss import SystemicLoss
    from pipeline.run import loss_message, run  # after the checks: it imports Ray (seconds)

    stats = run(profile, out, inputs, workers=conf.get("workers"),
                restart=args.restart, restart_if_changed=args.restart_if_changed)
    result(json.dumps(stats.get("summary", {}), indent=2))
    log.info("output: %s", out)
    loss = stats.get("systemic_loss") or {}
    if loss.get("stages") and loss.get("policy") == "fail":  # a finished run found again by a rerun
        raise SystemicLoss(loss_message(loss["stages"], out))
    if inputs and not (stats.get("read") or {}).get("records"):
        log.error("no input could be read (%s)", (stats.get("read") or {}).get("skipped"))
        return 1
    return 0
