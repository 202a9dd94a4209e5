"""IDEFICS model construction: configs (9B, 80B, tiny), backbone loading, freezing, parameter groups, loss.

Plain torch/transformers; ``model/zero3.py`` runs the same construction on a DeepSpeed ZeRO-3-partitioned model.
"""

from model.build import ModelConfig, build_config, build_model, count_params, param_groups
from model.loss import IGNORE_INDEX, LossConfig, LossOutput, causal_lm_loss
from model.presets import PRESETS, idefics_config

__all__ = ["ModelConfig", "build_config", "build_model", "count_params", "param_groups", "IGNORE_INDEX",
           "LossConfig", "LossOutput", "causal_lm_loss", "PRESETS", "idefics_config"]
