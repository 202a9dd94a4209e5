"""Tiny random LLaMA and CLIP vision checkpoints saved locally (no download), shaped for the tiny preset."""

from __future__ import annotations

import torch


def tiny_backbones(tmp_path, act="gelu"):
    from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=1000, hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                                         max_position_embeddings=512, rms_norm_eps=1e-6, tie_word_embeddings=False))
    clip = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, image_size=30, patch_size=2, num_hidden_layers=2,
                                            num_attention_heads=4, intermediate_size=64, hidden_act=act))
    llama.save_pretrained(tmp_path / "llama")
    clip.save_pretrained(tmp_path / "clip")
    return llama.eval(), clip.eval()
