"""IDEFICS model construction: configs (9B, 80B, tiny), backbone loading, freezing, parameter groups."""

from model.build import ModelConfig, build_config, build_model, count_params, param_groups
from model.loss import IGNORE_INDEX, causal_lm_loss
from model.presets import PRESETS, idefics_config

__all__ = ["ModelConfig", "build_config", "build_model", "count_params", "param_groups", "IGNORE_INDEX",
           "causal_lm_loss", "PRESETS", "idefics_config"]
