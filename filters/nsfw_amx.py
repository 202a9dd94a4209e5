"""The int8 open_nsfw on oneDNN's AMX-INT8 convolutions (through torch), where the CPU has AMX and torch imports.

onnxruntime runs the int8 model's ``QLinearConv`` with its AVX512-VNNI kernels, never AMX (BENCHMARKS.md,
issue 17, amx17). This module runs the same int8 model (:func:`filters.nsfw_int8.int8_model_path`: its int8
weights, per-channel weight scales, activation scales and zero points) conv by conv with
``torch.ops.onednn.qconv2d_pointwise``: weights prepacked once, the residual Add and its ReLU fused into the conv
(oneDNN's ``sum`` post-op), uint8 activations in NHWC. The input is quantized straight from the uint8 pixels
through a 256-entry table per channel (the same values as quantizing ``batch()``'s floats, tested) into the
space-to-depth layout of the first conv (7x7 stride 2 on 3 channels run as 4x4 stride 1 on 12: the same int8
outputs bit for bit, tested), and the head (average pool, fully connected, softmax) runs in float with the fp32
model's weights.

The parsed model (:func:`read_plan`: steps, int8 weights, scales, biases) is kept beside the int8 model as a
NumPy file (:func:`load_plan`), so a worker that switches to this path imports torch but not ``onnx``.

Written by hand because no chosen library runs an ONNX QDQ graph on oneDNN's int8 AMX kernels: onnxruntime's
MLAS has AMX only in its QGEMM (the im2col it needs costs what AMX saves), ``torch.compile`` would compile C++
for seconds in every worker process, and OpenVINO is not a dependency. It parses only the graph
:mod:`filters.nsfw_int8` builds (a Conv, an Add that follows a Conv, MaxPool, then the head); anything else
raises ``ValueError`` and the caller falls back to onnxruntime's int8.

Scores differ from onnxruntime's int8 (the Add is not re-quantized before the ReLU, rounding differs): up to
~0.025 from fp32's on the bench corpus, like onnxruntime's int8. :class:`filters.nsfw.OpenNsfwClassifier`
re-scores every image within ``nsfw.int8_recheck_margin`` of a threshold with the exact fp32 model, as for int8.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

_MEAN_BGR = (104.0, 117.0, 123.0)  # filters.nsfw._MEAN_BGR
SUB_BATCH = 16  # images per oneDNN call: the fastest of 4/8/16/32 here (activations stay in cache)


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


@functools.lru_cache(maxsize=1)
def unavailable() -> str | None:
    """Why the AMX path cannot run here (a one-line reason), or None when it can."""
    missing = {"amx_int8", "amx_tile"} - cpu_flags()
    if missing:
        return f"the CPU has no {' / '.join(sorted(missing))}"
    if importlib.util.find_spec("torch") is None:
        return "torch is not installed (it is in the training extra, not a pipeline dependency)"
    if "torch" not in sys.modules:
        # OpenMP threads that spin between parallel regions cost ~5x the CPU time an image with 2 threads
        # (BENCHMARKS.md, amx17); the runtime reads this when torch loads it, so only before the first import
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    onednn = getattr(torch.ops, "onednn", None)
    if not (torch.backends.mkldnn.is_available() and hasattr(onednn, "qconv2d_pointwise")
            and hasattr(onednn, "qconv_prepack")):
        return f"torch {torch.__version__} has no oneDNN int8 convolution (torch.ops.onednn.qconv2d_pointwise)"
    init = getattr(torch._C._cpu, "_init_amx", None)  # asks the kernel for AMX's tile state (arch_prctl)
    if init is not None and not init():
        return "the kernel refused this process AMX's tile state (arch_prctl ARCH_REQ_XCOMP_PERM)"
    return None


PROBE_LOGIT_TOL = 1.0  # the AMX path's largest |logit difference| from fp32 on probe_pixels() (seen: 0.33)


def probe_pixels(n: int = 8) -> list[np.ndarray]:
    """``n`` fixed 224x224x3 uint8 images (noise, stripes, blocks, tinted noise; seed 0) for the AMX path's
    self-check at load: the same pixels on every machine, no files needed."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:224, 0:224]
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            a = rng.integers(0, 256, (224, 224, 3))
        elif kind == 1:
            a = np.stack([(x * (i + 1)) % 256, (y * (i + 2)) % 256, ((x + y) * 3) % 256], -1)
        elif kind == 2:
            a = np.kron(rng.integers(0, 256, (7, 7, 3)), np.ones((32, 32, 1)))
        else:
            a = np.clip(rng.integers(100, 230, 3) + rng.normal(0, 20, (224, 224, 3)), 0, 255)
        out.append(np.ascontiguousarray(a, dtype=np.uint8))
    return out


def logit_gap(probs: np.ndarray, reference: np.ndarray) -> float:
    """The largest |log(nsfw/sfw)| difference between two (sfw, nsfw) probability arrays: unlike the
    probabilities (near 0 on the probes), the logits tell a working model from a broken one."""
    def logit(p):
        return np.log(np.clip(p[:, 1], 1e-7, 1.0)) - np.log(np.clip(p[:, 0], 1e-7, 1.0))
    return float(np.abs(logit(np.asarray(probs, np.float64)) - logit(np.asarray(reference, np.float64))).max())


_S2D = 115  # the first conv's input as space-to-depth: 224 + 2 x 3 padding = 230 = 2 x 115


def space_to_depth_weights(w):
    """open_nsfw's first conv (64 x 3 x 7 x 7 int8 on BGR, stride 2, padding 3) as a stride-1 4x4 conv on 12
    channels: the kernel zero-extended to 8x8, w2[o, (dy * 2 + dx) * 3 + c, a, b] = w[o, 2 - c, 2a + dy, 2b + dx]
    with c in RGB order, for :meth:`AmxInt8Net.quantize`'s layout. The same int8 products and zeros, so the
    same int32 sums and outputs bit for bit (tested), but oneDNN runs 12 channels on AMX far better than 3."""
    import torch

    o = w.shape[0]
    w8 = torch.zeros(o, 3, 8, 8, dtype=w.dtype)
    w8[:, :, :7, :7] = w.flip(1)  # BGR -> RGB: quantize() keeps the pixels' order
    return w8.reshape(o, 3, 4, 2, 4, 2).permute(0, 3, 5, 1, 2, 4).reshape(o, 12, 4, 4).contiguous()


def _maxpool_3x3s2(v):
    """open_nsfw's 3x3 stride-2 max pool padded by one row and column at the bottom and right (onnxruntime pads
    with -inf: the last window holds two), on NCHW-shaped uint8 in NHWC memory; separable maxima over
    contiguous NHWC blocks (aten's max_pool2d on uint8 channels-last costs several times more)."""
    import torch

    n, c, h, w = v.shape
    if h % 2 or w % 2:
        raise ValueError(f"max pool on an odd size {h}x{w}")
    x = v.permute(0, 2, 3, 1)
    oh, ow = h // 2, w // 2
    a = x.reshape(n, oh, 2, w, c)
    r = torch.empty(n, oh, w, c, dtype=v.dtype)
    torch.maximum(a[:, :, 0], a[:, :, 1], out=r)
    torch.maximum(r[:, :oh - 1], a[:, 1:, 0], out=r[:, :oh - 1])
    b = r.reshape(n, oh, ow, 2, c)
    o = torch.empty(n, oh, ow, c, dtype=v.dtype)
    torch.maximum(b[:, :, :, 0], b[:, :, :, 1], out=o)
    torch.maximum(o[:, :, :ow - 1], b[:, :, 1:, 0], out=o[:, :, :ow - 1])
    return o.permute(0, 3, 1, 2)


PLAN_VERSION = 1  # change when read_plan()'s output changes


def read_plan(qdq_path: str, fp32_path: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The int8 QDQ model at ``qdq_path`` parsed into what :class:`AmxInt8Net` runs: JSON-able steps (names,
    quantization parameters, strides, paddings) and their arrays (int8 weights, weight scales, float biases, the
    fp32 model's fully connected head). Raises ``ValueError`` on a graph it does not know."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(qdq_path)
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    qp, dq_of, q_of = {}, {}, {}
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear":
            qp[n.input[0]] = (float(init[n.input[1]]), int(init[n.input[2]]))
            q_of[n.output[0]] = n.input[0]
        elif n.op_type == "DequantizeLinear":
            dq_of[n.output[0]] = n.input[0]
    wdq = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in init}

    def src(name):  # the float tensor a DequantizeLinear output stands for
        t = dq_of.get(name, name)
        return q_of.get(t, t)

    nodes = [n for n in model.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    readers: dict[str, list] = {}
    for n in nodes:
        for i in n.input:
            readers.setdefault(src(i), []).append(n)
    meta: dict = {"qp": qp, "steps": []}
    arrays: dict[str, np.ndarray] = {}
    steps, fused, shape = meta["steps"], set(), {}
    for n in nodes:
        if id(n) in fused:
            continue
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        if n.op_type == "Transpose" and not steps and not shape:
            meta["first"] = n.output[0]
            shape[n.output[0]] = (224, 3)
        elif n.op_type == "Conv":
            x, wn = src(n.input[0]), wdq[n.input[1]]
            w = init[wn.input[0]]
            if w.dtype != np.int8 or np.any(init[wn.input[2]] != 0) or a.get("group", 1) != 1:
                raise ValueError(f"conv {n.output[0]}: not per-channel symmetric int8 weights")
            bn = wdq[n.input[2]]  # the int32 bias onnxruntime adds, dequantized (scale: input's x weights')
            p, s = list(a.get("pads", [0, 0, 0, 0])), list(a["strides"])
            if p[0] != p[2] or p[1] != p[3] or a.get("dilations", [1, 1]) != [1, 1]:
                raise ValueError(f"conv {n.output[0]}: asymmetric padding or dilation")
            size, cin = shape[x]
            k = a["kernel_shape"][0]
            if x == meta.get("first") and (k, s, p, size, cin) != (7, [2, 2], [3, 3, 3, 3], 224, 3):
                raise ValueError(f"conv {n.output[0]}: not open_nsfw's first conv")  # see space_to_depth_weights
            i = len(steps)
            arrays[f"w{i}"] = w.copy()  # writable (torch.from_numpy warns on a read-only array)
            arrays[f"ws{i}"] = np.asarray(init[wn.input[1]], dtype=np.float32).reshape(-1)
            arrays[f"b{i}"] = (init[bn.input[0]].astype(np.float64) * init[bn.input[1]]).astype(np.float32)
            step = {"kind": "conv", "out": n.output[0], "x": x, "stride": s, "pad": p[:2], "in": [size, cin]}
            after = readers.get(n.output[0], [])
            other = [src(j) for j in after[0].input if src(j) != n.output[0]] if len(after) == 1 else []
            if after and after[0].op_type == "Add" and len(other) == 1 and other[0] in shape:
                # the Add after the block's last conv, its other input (the shortcut) computed before: fused.
                # A shortcut conv's own Add waits for that conv (an Add left unfused raises below).
                fused.add(id(after[0]))
                step.update(kind="conv_add", out=after[0].output[0], other=other[0])
            steps.append(step)
            shape[step["out"]] = ((size + p[0] + p[2] - k) // s[0] + 1, w.shape[0])
        elif n.op_type == "MaxPool":
            x, out = src(n.input[0]), n.output[0]
            if (a["kernel_shape"], a["strides"], a.get("pads")) != ([3, 3], [2, 2], [0, 0, 1, 1]) \
                    or qp[x] != qp[out]:
                raise ValueError("max pool: not open_nsfw's")
            steps.append({"kind": "maxpool", "out": out, "x": x})
            shape[out] = (shape[x][0] // 2, shape[x][1])
        elif n.op_type == "AveragePool":
            steps.append({"kind": "head", "x": src(n.input[0])})
            break
        else:
            raise ValueError(f"{n.op_type} {n.output[0]}: not in open_nsfw's int8 graph as built")
    if not steps or steps[-1]["kind"] != "head" or "first" not in meta:
        raise ValueError("no average pool head")
    f32 = onnx.load(fp32_path)
    f_init = {i.name: numpy_helper.to_array(i) for i in f32.graph.initializer}
    mm = next(n for n in f32.graph.node if n.op_type == "MatMul")
    add = next(n for n in f32.graph.node if n.op_type == "Add" and mm.output[0] in n.input)
    arrays["fc_w"] = f_init[mm.input[1]].copy()
    arrays["fc_b"] = f_init[next(i for i in add.input if i in f_init)].copy()
    return meta, arrays


def _sources(qdq_path: str, fp32_path: str) -> list:
    return [[Path(p).name, os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in (qdq_path, fp32_path)]


def load_plan(qdq_path: str, fp32_path: str) -> tuple[dict, dict[str, np.ndarray]]:
    """:func:`read_plan`, kept beside the int8 model as ``<model>.amx-plan-v<N>.npz`` (written under a temporary
    name, then renamed): a worker that finds it reads NumPy arrays and JSON instead of importing ``onnx``
    (~0.6 CPU-s, most of it ml_dtypes') and parsing both models. Keyed by both files' names, sizes and mtimes;
    a plan that does not match or does not load is made again."""
    import json

    path = Path(qdq_path).with_name(f"{Path(qdq_path).stem}.amx-plan-v{PLAN_VERSION}.npz")
    sources = _sources(qdq_path, fp32_path)
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("sources") == sources:
                return meta, {k: z[k] for k in z.files if k != "meta"}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # none yet, or a broken one
        pass
    meta, arrays = read_plan(qdq_path, fp32_path)
    meta["sources"] = sources
    try:
        import io

        from obelics.storage import write_bytes_atomic

        buf = io.BytesIO()
        np.savez(buf, meta=np.array(json.dumps(meta)), **arrays)
        write_bytes_atomic(path, buf.getvalue())
    except OSError:  # a read-only model folder: every worker parses the model itself
        pass
    return json.loads(json.dumps(meta)), arrays  # the same types (lists) as when read back


class AmxInt8Net:
    """The int8 QDQ model at ``qdq_path`` as a list of oneDNN int8 steps; the head from the fp32 model."""

    def __init__(self, qdq_path: str, fp32_path: str, threads: int = 1, sub_batch: int = SUB_BATCH) -> None:
        import torch

        if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
            threads = 1  # torch was imported before unavailable() could ask for passive OpenMP threads
        torch.set_num_threads(max(1, threads))  # this process's pool (the caller's worker CPUs)
        self.sub_batch = sub_batch
        meta, arrays = load_plan(qdq_path, fp32_path)
        qp = self._qp = {k: tuple(v) for k, v in meta["qp"].items()}
        self.first = meta["first"]
        self.input_q = qp[self.first]
        onednn = torch.ops.onednn
        self.steps = []
        for i, st in enumerate(meta["steps"]):
            if st["kind"] in ("conv", "conv_add"):
                w, ws = torch.from_numpy(arrays[f"w{i}"]), torch.from_numpy(arrays[f"ws{i}"])
                (size, cin), s, p, x = st["in"], st["stride"], st["pad"], st["x"]
                if x == self.first:  # the 7x7 stride-2 conv on the 3 input channels, as space-to-depth
                    w, s, p, size, cin = space_to_depth_weights(w), [1, 1], [0, 0], _S2D, 12
                xs, xz = qp[x]
                packed = onednn.qconv_prepack(w, ws, xs, xz, s, p, [1, 1], 1, [sub_batch, cin, size, size])
                conv = (x, packed, ws, torch.zeros(len(ws), dtype=torch.int64), torch.from_numpy(arrays[f"b{i}"]),
                        s, p)
                if st["kind"] == "conv_add":
                    self.steps.append(("conv_add", st["out"], conv, qp[st["out"]], st["other"], qp[st["other"]]))
                else:
                    self.steps.append(("conv", st["out"], conv, qp[st["out"]]))
            elif st["kind"] == "maxpool":
                self.steps.append(("maxpool", st["out"], st["x"]))
            else:
                self.steps.append(("head", None, st["x"], qp[st["x"]]))
        self.fc_w = torch.from_numpy(arrays["fc_w"])
        self.fc_b = torch.from_numpy(arrays["fc_b"])
        s, z = self.input_q
        v = np.arange(256, dtype=np.float32)
        # table[c * 256 + p]: the quantized input for BGR channel c holding pixel value p (p - mean, as batch()),
        # as ONNX's QuantizeLinear computes it: float32 division, rounding half to even, saturation
        self.table = np.concatenate([np.clip(np.rint((v - np.float32(m)) / np.float32(s)) + z, 0, 255)
                                     for m in _MEAN_BGR]).astype(np.uint8)
        self._rgb = [(int(m), self.table[(2 - c) * 256:(3 - c) * 256].tobytes())  # R, G, B: (mean, table)
                     for c, m in enumerate(_MEAN_BGR[::-1])]
        if any(t[m] != z for m, t in self._rgb):  # the padding: a mean pixel is the zero point (a float 0)
            raise ValueError("the input quantization does not map the mean pixel to its zero point")

    def quantize(self, pixels: list[np.ndarray]) -> np.ndarray:
        """224x224x3 uint8 RGB pixels (:meth:`filters.nsfw.OpenNsfwClassifier.pixels`) -> the first conv's input:
        each quantized as ``batch()``'s floats would be (BGR minus the mean, ONNX's QuantizeLinear), padded by 3
        with the zero point and laid out space-to-depth (:func:`space_to_depth_weights`): (N, 115, 115, 2, 2, 3),
        [n, a, b, dy, dx, c] = the padded image's pixel (2a + dy, 2b + dx), channel c in RGB order."""
        n = len(pixels)
        out = np.empty((n, _S2D, _S2D, 2, 2, 3), dtype=np.uint8)
        plane = np.empty((2 * _S2D, 2 * _S2D), dtype=np.uint8)
        for i, px in enumerate(pixels):
            for c, (mean, table) in enumerate(self._rgb):
                plane.fill(mean)  # the padding: the table maps the mean pixel to the zero point
                plane[3:227, 3:227] = px[..., c]
                # bytes.translate: a 256-byte table look-up in C, ~4x faster than NumPy's indexing by uint8
                # (which converts the indices to intp first); no chosen library has a faster one
                q = np.frombuffer(plane.tobytes().translate(table), np.uint8).reshape(_S2D, 2, _S2D, 2)
                for dy in range(2):  # 115-long inner loops (one copy of 2x2 blocks runs ~2x slower)
                    for dx in range(2):
                        out[i, :, :, dy, dx, c] = q[:, dy, :, dx]
        return out

    def __call__(self, q: np.ndarray) -> np.ndarray:
        """(sfw, nsfw) probabilities, float32, for a :meth:`quantize` batch."""
        import torch

        with torch.no_grad():
            parts = [self._run(torch.from_numpy(q[k:k + self.sub_batch]))
                     for k in range(0, len(q), self.sub_batch)]
        return torch.cat(parts).numpy() if parts else np.empty((0, 2), np.float32)

    def _run(self, q):
        env = self.inputs(q)
        for step in self.steps:
            probs = self.step(env, step)
            if probs is not None:
                return probs
        raise AssertionError("unreachable: the steps end with the head")

    def inputs(self, q) -> dict:
        """The first conv's input of a :meth:`quantize` sub-batch (a torch tensor), by name, for :meth:`step`:
        NCHW shape, NHWC memory (oneDNN's channels-last), the 12 channels (dy, dx, c) of the space-to-depth."""
        return {self.first: q.reshape(len(q), _S2D, _S2D, 12).permute(0, 3, 1, 2)}

    def step(self, env: dict, step: tuple):
        """Run one of :attr:`steps` on ``env`` (tensors by name, from :meth:`inputs`): its output added to
        ``env``; the head returns the (sfw, nsfw) probabilities, the others None."""
        import torch

        onednn = torch.ops.onednn
        kind, out = step[0], step[1]
        if kind == "conv":
            (x, w, ws, wz, b, s, p), (os_, oz) = step[2], step[3]
            xs, xz = self._q(x)
            env[out] = onednn.qconv2d_pointwise(env[x], xs, xz, w, ws, wz, b, s, p, [1, 1], 1, os_, oz, None,
                                                "none", [], "")
        elif kind == "conv_add":
            (x, w, ws, wz, b, s, p), (os_, oz), other, (as_, az) = step[2], step[3], step[4], step[5]
            xs, xz = self._q(x)
            # relu(conv + other), quantized with the Add's output scale; without a zero point of 0 the QDQ
            # graph has no ReLU there (the quantizer folds a ReLU only into a zero point of 0)
            env[out] = onednn.qconv2d_pointwise.binary(
                env[x], xs, xz, w, ws, wz, env[other], b, s, p, [1, 1], 1, os_, oz, None, as_, az, "sum",
                1.0, "relu" if oz == 0 else "none", [], "")
        elif kind == "maxpool":
            env[out] = _maxpool_3x3s2(env[step[2]])
        else:  # head: dequantize, average over the 7x7 map, fully connected, softmax
            s, z = step[3]
            pooled = (env[step[2]].to(torch.float32).mean((2, 3)) - z) * s
            return torch.softmax(pooled @ self.fc_w + self.fc_b, dim=1)
        return None

    def _q(self, name):
        return self._qp[name]
