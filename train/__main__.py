"""``python -m train --config configs/train/NAME.yaml [key.path=value ...]``"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from train.config import ConfigError, load_config


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train", description=__doc__)
    ap.add_argument("--config", required=True, help="YAML under configs/train/")
    ap.add_argument("overrides", nargs="*", help="key.path=value (value parsed as YAML)")
    ap.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.config, args.overrides)
        from train.trainer import Trainer

        trainer = Trainer(cfg)
    except ConfigError as e:  # a user error found before any work: one line, exit code 2
        print(f"python -m train: {e}", file=sys.stderr)
        return 2
    if trainer.rank == 0:
        logging.getLogger("train").info("params: %s", trainer.counts)
    last = trainer.train()
    if trainer.rank == 0 and last:
        keep = {k: v for k, v in last.items() if not isinstance(v, dict)}
        print(json.dumps(keep))
    trainer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
