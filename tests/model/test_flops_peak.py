"""The MFU peak: looked up from the GPU's name, None when unknown (the trainer then refuses or, on CPU, skips MFU)."""

from __future__ import annotations

from model.flops import MFU_DEFINITION, peak_tflops, trained_flops_per_token


def test_peak_from_device_name():
    assert peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert peak_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_tflops("NVIDIA H200") == 989.4
    assert peak_tflops("NVIDIA GeForce RTX 4090") is None and peak_tflops("cpu") is None
    assert trained_flops_per_token(1000) == 6000.0
    assert "peak bf16 dense" in MFU_DEFINITION and "frozen" in MFU_DEFINITION
