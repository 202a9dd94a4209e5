"""model amx: the int8 open_nsfw on oneDNN's AMX kernels, fp32's verdicts through the re-check, int8 where it cannot run."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from filters import nsfw as nsfw_mod
from filters import nsfw_amx
from filters.nsfw import NsfwConfig, OpenNsfwClassifier, is_flagged, nsfw_config
from obelics.config import ConfigError, from_dict
from tests.filters.test_nsfw_int8 import cache, nsfw_scores, photos  # noqa: F401 - fixtures

REASON = nsfw_amx.unavailable()
needs_amx = pytest.mark.skipif(REASON is not None, reason=f"AMX path unavailable: {REASON}")
# The largest |amx - fp32| nsfw score allowed on the shared photos (onnxruntime's int8 is bounded at 0.02 there;
# on the bench corpus's 416 images both are ~0.025-0.16, under the default re-check margin: BENCHMARKS.md).
SHARED_BOUND = 0.02


def amx_cfg(**kw) -> NsfwConfig:
    return NsfwConfig(**{"model": "amx", "threads": 1, "amx_min_images": 0, **kw})


@needs_amx
def test_amx_agrees_with_fp32_on_the_shared_photos(cache, photos):  # noqa: F811
    exact = nsfw_scores(NsfwConfig(model="fp32", threads=1), photos)
    clf = OpenNsfwClassifier(amx_cfg(int8_recheck_margin=0))
    raw = np.array([s["nsfw"] for s in clf.score(photos)])
    assert clf.amx() is not None  # it ran on the AMX path, not on the fallback
    int8 = nsfw_scores(NsfwConfig(model="int8", threads=1, int8_recheck_margin=0), photos)
    assert not np.array_equal(raw, int8) and not np.array_equal(raw, exact)  # its own kernels
    assert np.abs(raw - exact).max() < SHARED_BOUND
    for threshold in (0.8, 0.2, 0.01):
        assert list(raw > threshold) == list(exact > threshold), threshold
    cfg = nsfw_config("default")
    ours = OpenNsfwClassifier(amx_cfg()).score(photos)  # with the default margin
    assert [is_flagged(s, cfg) for s in ours] == [bool(x > cfg.threshold) for x in exact]


def ort_quantize(net, x: np.ndarray) -> np.ndarray:
    """onnxruntime's QuantizeLinear of ``x`` with the int8 model's input scale and zero point (NHWC, BGR)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    s, z = net.input_q
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])], "q",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("q", TensorProto.UINT8, None)],
        [helper.make_tensor("s", TensorProto.FLOAT, [], [s]), helper.make_tensor("z", TensorProto.UINT8, [], [z])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def every_value() -> list[np.ndarray]:
    """Two images holding each uint8 value in each channel, and at the borders."""
    every = (np.arange(224 * 224 * 3) % 251).astype(np.uint8).reshape(224, 224, 3)
    return [every, 255 - every, np.zeros_like(every), np.full_like(every, 255)]


@needs_amx
def test_the_input_table_equals_onnxruntimes_quantize_of_the_float_batch(cache, photos):  # noqa: F811
    clf = OpenNsfwClassifier(amx_cfg())
    clf.score(photos[:1])
    net = clf.amx()
    pixels = [p for p in map(clf.pixels, photos) if p is not None]
    for px in (pixels, every_value()):
        q = ort_quantize(net, clf.batch(px))
        padded = np.pad(q, ((0, 0), (3, 3), (3, 3), (0, 0)), constant_values=net.input_q[1])[..., ::-1]  # RGB
        want = np.empty((len(px), 115, 115, 2, 2, 3), np.uint8)
        for dy in range(2):
            for dx in range(2):
                want[:, :, :, dy, dx] = padded[:, dy::2, dx::2]
        assert np.array_equal(net.quantize(px), want)


@needs_amx
def test_the_space_to_depth_first_conv_gives_the_7x7_convs_int8_outputs_bit_for_bit(cache, photos):  # noqa: F811
    import onnx
    import torch
    from onnx import numpy_helper

    from filters.nsfw_int8 import int8_model_path

    clf = OpenNsfwClassifier(amx_cfg())
    clf.score(photos[:1])
    net = clf.amx()
    kind, out, (x, packed, ws, wz, b, s, p), (os_, oz) = net.steps[0]
    assert kind == "conv" and x == net.first and (s, p) == ([1, 1], [0, 0])  # the 4x4 stride-1 form
    w7 = next(numpy_helper.to_array(i) for i in onnx.load(int8_model_path()).graph.initializer
              if tuple(i.dims) == (64, 3, 7, 7))
    xs, xz = net.input_q
    onednn = torch.ops.onednn
    pixels = [p for p in map(clf.pixels, photos) if p is not None] + every_value() + nsfw_amx.probe_pixels()
    n = len(pixels)
    old = onednn.qconv_prepack(torch.from_numpy(w7.copy()), ws, xs, xz, [2, 2], [3, 3], [1, 1], 1, [n, 3, 224, 224])
    with torch.no_grad():  # the AMX path before: the 7x7 stride-2 conv on the quantized NHWC BGR input
        want = onednn.qconv2d_pointwise(torch.from_numpy(ort_quantize(net, clf.batch(pixels))).permute(0, 3, 1, 2),
                                        xs, xz, old, ws, wz, b, [2, 2], [3, 3], [1, 1], 1, os_, oz, None, "none", [], "")
        got = onednn.qconv2d_pointwise(torch.from_numpy(net.quantize(pixels)).reshape(n, 115, 115, 12)
                                       .permute(0, 3, 1, 2), xs, xz, packed, ws, wz, b, s, p, [1, 1], 1, os_, oz,
                                       None, "none", [], "")
    assert got.shape == want.shape == (n, 64, 112, 112)
    assert torch.equal(got, want)
    assert len(torch.unique(want)) > 100  # not a saturated map


def test_space_to_depth_weights_re_index_the_7x7_kernel():
    torch = pytest.importorskip("torch")
    w = torch.randint(-127, 128, (5, 3, 7, 7), dtype=torch.int8)
    w2 = nsfw_amx.space_to_depth_weights(w)
    assert w2.shape == (5, 12, 4, 4) and w2.dtype == torch.int8
    for o in range(5):
        for c in range(3):  # RGB channel c of the pixels is BGR channel 2 - c of the model
            for i in range(8):
                for j in range(8):
                    v = w2[o, (i % 2 * 2 + j % 2) * 3 + c, i // 2, j // 2]
                    assert v == (w[o, 2 - c, i, j] if i < 7 and j < 7 else 0)


@needs_amx
def test_near_a_threshold_the_fp32_score_decides_bit_for_bit(cache, photos):  # noqa: F811
    exact = nsfw_scores(NsfwConfig(model="fp32", threads=1), photos)
    raw = nsfw_scores(amx_cfg(int8_recheck_margin=0), photos)
    clf = OpenNsfwClassifier(amx_cfg(threshold=0.02, int8_recheck_margin=0.01, batch_size=5))
    got = np.array([s["nsfw"] for s in clf.score(photos)])
    near = np.abs(raw - 0.02) <= 0.01
    assert 0 < near.sum() < len(photos) and clf.rechecked == near.sum()
    assert np.array_equal(got[near], exact[near])
    assert np.array_equal(got[~near], raw[~near])  # the others keep the AMX path's scores (batch-size free)


@needs_amx
def test_a_worker_scores_amx_min_images_with_int8_first(cache, photos):  # noqa: F811
    int8 = nsfw_scores(NsfwConfig(model="int8", threads=1, int8_recheck_margin=0), photos)
    amx = nsfw_scores(amx_cfg(int8_recheck_margin=0), photos)
    clf = OpenNsfwClassifier(amx_cfg(int8_recheck_margin=0, amx_min_images=4, batch_size=4))
    first = np.array([s["nsfw"] for s in clf.score(photos[:4])])
    assert clf._amx is None and np.array_equal(first, int8[:4])  # torch not loaded yet
    rest = np.array([s["nsfw"] for s in clf.score(photos[4:])])
    assert clf.amx() is not None and np.array_equal(rest, amx[4:])


def test_without_amx_it_is_the_int8_path_and_says_why_once(cache, photos, monkeypatch, caplog):  # noqa: F811
    monkeypatch.setattr(nsfw_amx, "unavailable", lambda: "the CPU has no amx_int8 / amx_tile")
    monkeypatch.setattr(nsfw_mod, "_AMX_LOGGED", set())
    int8 = [s["nsfw"] for s in OpenNsfwClassifier(NsfwConfig(model="int8", threads=1)).score(photos)]
    with caplog.at_level(logging.INFO, logger="filters.nsfw"):
        for _ in range(2):
            clf = OpenNsfwClassifier(amx_cfg(batch_size=4))
            assert [s["nsfw"] for s in clf.score(photos)] == int8
            assert clf.amx() is None and clf._amx is False
    said = [r.getMessage() for r in caplog.records if "model amx" in r.getMessage()]
    assert said == ["nsfw: model amx runs onnxruntime's int8 instead: the CPU has no amx_int8 / amx_tile"]


def test_a_graph_it_does_not_know_falls_back(cache, photos, monkeypatch, caplog):  # noqa: F811
    def refuse(*a, **k):
        raise ValueError("Gemm x: not in open_nsfw's int8 graph as built")

    monkeypatch.setattr(nsfw_amx, "unavailable", lambda: None)
    monkeypatch.setattr(nsfw_amx, "AmxInt8Net", refuse)
    monkeypatch.setattr(nsfw_mod, "_AMX_LOGGED", set())
    with caplog.at_level(logging.INFO, logger="filters.nsfw"):
        clf = OpenNsfwClassifier(amx_cfg())
        assert all(s is not None for s in clf.score(photos[:2])) and clf._amx is False
    assert any("could not be built (Gemm x" in r.getMessage() for r in caplog.records)


@needs_amx
def test_a_path_that_computes_something_else_fails_its_self_check(cache, photos, monkeypatch, caplog):  # noqa: F811
    # a torch whose oneDNN op means another thing: the built net runs, but its scores are not the model's
    real = nsfw_amx.AmxInt8Net

    class Wrong(real):
        def __call__(self, q):
            p = real.__call__(self, q)
            return np.ascontiguousarray(p[:, ::-1])  # sfw and nsfw swapped

    monkeypatch.setattr(nsfw_amx, "AmxInt8Net", Wrong)
    monkeypatch.setattr(nsfw_mod, "_AMX_LOGGED", set())
    int8 = [s["nsfw"] for s in OpenNsfwClassifier(NsfwConfig(model="int8", threads=1)).score(photos)]
    with caplog.at_level(logging.INFO, logger="filters.nsfw"):
        clf = OpenNsfwClassifier(amx_cfg())
        assert [s["nsfw"] for s in clf.score(photos)] == int8 and clf._amx is False
    assert any("differ from fp32's on the probe images" in r.getMessage() for r in caplog.records)


def test_the_probe_images_are_fixed_and_the_logit_gap_sees_a_swap():
    a, b = nsfw_amx.probe_pixels(), nsfw_amx.probe_pixels()
    assert len(a) == 8 and all(x.dtype == np.uint8 and x.shape == (224, 224, 3) for x in a)
    assert all((x == y).all() for x, y in zip(a, b))
    p = np.array([[0.999, 0.001], [0.99, 0.01]])
    assert nsfw_amx.logit_gap(p, p) == 0.0
    assert nsfw_amx.logit_gap(p[:, ::-1], p) > 2 * nsfw_amx.PROBE_LOGIT_TOL


@needs_amx
def test_a_failure_at_run_time_falls_back_for_good(cache, photos, caplog):  # noqa: F811
    int8 = [s["nsfw"] for s in OpenNsfwClassifier(NsfwConfig(model="int8", threads=1)).score(photos)]
    clf = OpenNsfwClassifier(amx_cfg())
    clf.score(photos[:1])

    def broken(q):
        raise RuntimeError("could not create a primitive")

    clf.amx().__class__ = type("Broken", (type(clf.amx()),), {"__call__": lambda self, q: broken(q)})
    with caplog.at_level(logging.WARNING, logger="filters.nsfw"):
        assert [s["nsfw"] for s in clf.score(photos)] == int8
    assert clf._amx is False and clf.amx() is None
    assert any("could not create a primitive" in r.getMessage() for r in caplog.records)


def test_unavailable_names_what_is_missing(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    assert nsfw_amx.cpu_flags(str(cpuinfo)) >= {"avx2", "avx512_vnni"}
    assert nsfw_amx.cpu_flags(str(tmp_path / "absent")) == set()
    monkeypatch.setattr(nsfw_amx, "cpu_flags", lambda: {"avx512_vnni"})
    assert nsfw_amx.unavailable.__wrapped__() == "the CPU has no amx_int8 / amx_tile"
    monkeypatch.setattr(nsfw_amx, "cpu_flags", lambda: {"amx_int8", "amx_tile"})
    monkeypatch.setattr(nsfw_amx.importlib.util, "find_spec", lambda name: None)
    assert "torch is not installed" in nsfw_amx.unavailable.__wrapped__()


def test_openmp_threads_wait_passively_when_it_imports_torch():
    import os
    import subprocess
    import sys

    pytest.importorskip("torch")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = "from filters.nsfw_amx import unavailable; import os; unavailable(); print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split()[-1] == ("PASSIVE" if nsfw_amx.cpu_flags() >= {"amx_int8", "amx_tile"} else "None")


def test_max_pool_equals_torchs_with_onnxruntimes_padding():
    torch = pytest.importorskip("torch")
    v = torch.randint(0, 256, (2, 8, 12, 10), dtype=torch.uint8).contiguous(memory_format=torch.channels_last)
    want = torch.nn.functional.max_pool2d(torch.nn.functional.pad(v.float(), (0, 1, 0, 1), value=-1.0), 3, 2)
    assert torch.equal(nsfw_amx._maxpool_3x3s2(v).float(), want)


def test_profiles_and_validation():
    assert nsfw_config("default").model == "amx"
    assert nsfw_config("obelics-2023").model == "fp32"  # the original's path stays exactly fp32
    assert from_dict(NsfwConfig, {"model": "amx", "amx_min_images": 0}, "t").amx_min_images == 0
    with pytest.raises(ConfigError):
        from_dict(NsfwConfig, {"amx_min_images": -1}, "t")


def test_the_plan_is_kept_beside_the_model_and_read_back_without_onnx(cache, tmp_path, monkeypatch):  # noqa: F811
    import os
    import shutil
    import subprocess
    import sys

    from filters.nsfw_int8 import fp32_model_path, int8_model_path

    src = tmp_path / "m.onnx"
    shutil.copy(int8_model_path(), src)
    fp32 = fp32_model_path()
    meta, arrays = nsfw_amx.load_plan(str(src), fp32)
    plan = tmp_path / f"m.amx-plan-v{nsfw_amx.PLAN_VERSION}.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([plan.name, "m.onnx"])  # no temporary file left
    assert meta["steps"][0]["kind"] == "conv" and meta["steps"][-1]["kind"] == "head" and arrays["w0"].dtype == np.int8

    parsed = []
    real = nsfw_amx.read_plan
    monkeypatch.setattr(nsfw_amx, "read_plan", lambda *a: parsed.append(a) or real(*a))
    again, same = nsfw_amx.load_plan(str(src), fp32)
    assert not parsed and again == meta and sorted(same) == sorted(arrays)
    assert all(np.array_equal(same[k], arrays[k]) and same[k].dtype == arrays[k].dtype for k in arrays)

    code = (f"import sys; from filters.nsfw_amx import load_plan; m, a = load_plan({str(src)!r}, {fp32!r}); "
            "print('onnx' in sys.modules, len(m['steps']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", str(len(meta["steps"]))]  # a worker that finds the plan does not import onnx

    good = plan.read_bytes()
    for k, broken in enumerate([b"not an npz file", good[:len(good) // 2]]):  # a broken plan is made again
        plan.write_bytes(broken)
        assert nsfw_amx.load_plan(str(src), fp32)[0] == meta and len(parsed) == k + 1
        assert nsfw_amx.load_plan(str(src), fp32)[0] == meta and len(parsed) == k + 1  # written again, read back
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # another model file under the same name
    assert nsfw_amx.load_plan(str(src), fp32)[0]["steps"] == meta["steps"] and len(parsed) == 3

    if REASON is None:  # the net from the plan file scores as the net from the model
        probes = nsfw_amx.probe_pixels()
        plan.unlink()
        first = nsfw_amx.AmxInt8Net(str(src), fp32)
        assert plan.is_file() and len(parsed) == 4
        second = nsfw_amx.AmxInt8Net(str(src), fp32)
        assert len(parsed) == 4
        assert np.array_equal(first(first.quantize(probes)), second(second.quantize(probes)))


@needs_amx
def test_bench_amx_ab_and_layers_run(cache, photos, capsys):  # noqa: F811
    import re

    from bench.bench_nsfw import amx_ab, amx_layers

    amx_ab(photos, "HEAD", rounds=1, batch=4)
    amx_layers(photos[:3], repeat=1)
    out = capsys.readouterr().out
    assert "probabilities equal bit for bit: True, scores from bytes equal: True" in out
    assert len(re.findall(r" ratio +\d+\.\d+x", out)) == 3 and " 0 conv     12x115x115" in out and "maxpool  64x112x112" in out
