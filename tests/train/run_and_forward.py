"""Test helper run under a launcher (deepspeed / torchrun) or plainly: train as ``python -m train`` would, then
forward one saved batch through the trainer's own (possibly ZeRO-3-partitioned) model; rank 0 saves the logits.

    python tests/train/run_and_forward.py BATCH.pt LOGITS.pt --config CFG key=value ...
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(argv: list[str]) -> None:
    import torch

    from train.config import load_config
    from train.trainer import Trainer

    batch_file, logits_file, _, config, *overrides = [a for a in argv if not a.startswith("--local")]
    trainer = Trainer(load_config(config, overrides))
    trainer.train()
    batch = {k: v.to(trainer.device) for k, v in torch.load(batch_file).items()}
    trainer.backend.train_mode(False)
    with torch.no_grad():
        logits = trainer.backend.forward(batch, training=False).float().cpu()
    if trainer.rank == 0:
        torch.save(logits, logits_file)
    trainer.close()


if __name__ == "__main__":
    main(sys.argv[1:])
