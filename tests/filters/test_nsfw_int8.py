"""The int8 open_nsfw: built offline and deterministically, fp32's verdicts through the re-check near a threshold."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from filters.nsfw import NsfwConfig, OpenNsfwClassifier, is_flagged, nsfw_config
from filters.nsfw_int8 import RANGES, build_key, fp32_model_path, int8_model_path
from obelics.config import ConfigError, from_dict
from tests.filters.test_nsfw import real_images

# The largest |int8 - fp32| nsfw score allowed on the shared photos (measured: 0.0043). On the bench corpus's
# 416 images (bench_nsfw --images corpus --agreement 8) the largest is 0.155, under the default re-check margin.
SHARED_BOUND = 0.02


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    d = tmp_path_factory.mktemp("resources")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OBELICS_RESOURCES", str(d))
        yield d


@pytest.fixture(scope="module")
def photos():
    from skimage import data as skdata

    blobs = list(real_images().values())
    buf = io.BytesIO()
    Image.fromarray(skdata.astronaut()).save(buf, format="PNG")
    return blobs + [buf.getvalue()]


def nsfw_scores(cfg: NsfwConfig, blobs) -> np.ndarray:
    return np.array([s["nsfw"] for s in OpenNsfwClassifier(cfg).score(blobs)])


def test_build_is_offline_deterministic_and_once(cache, tmp_path):
    path = int8_model_path()
    assert path.startswith(str(cache / "nsfw")) and build_key() in path
    again = int8_model_path(tmp_path)  # a second, independent build
    assert open(path, "rb").read() == open(again, "rb").read()
    assert [p.name for p in (tmp_path / "nsfw").iterdir()] == [f"open-nsfw-int8-{build_key()}.onnx"]  # no temp left
    mtime = (tmp_path / "nsfw" / f"open-nsfw-int8-{build_key()}.onnx").stat().st_mtime_ns
    int8_model_path(tmp_path)
    assert (tmp_path / "nsfw" / f"open-nsfw-int8-{build_key()}.onnx").stat().st_mtime_ns == mtime  # not rebuilt


def test_a_cache_it_cannot_write_falls_back_to_the_temp_folder(cache, tmp_path, monkeypatch):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = int8_model_path(blocked)
    assert path.startswith(str(tmp_path / "tmp")) and open(path, "rb").read() == open(int8_model_path(), "rb").read()


def test_ranges_name_the_models_tensors():
    from filters.nsfw_int8 import _opset13

    graph = _opset13(fp32_model_path()).graph
    names = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    ranges = json.loads(RANGES.read_text())["ranges"]
    assert len(ranges) > 100 and set(ranges) <= names
    assert all(lo <= hi for lo, hi in ranges.values())


def test_the_int8_model_takes_the_fp32_models_input(cache, photos):
    """Both models take batch()'s floats (input:0): one NumPy batch feeds int8 and the fp32 re-check. No float
    step is left in the int8 graph (its Gather over the channel axis cost more than the NumPy pass)."""
    import onnx

    clf = OpenNsfwClassifier(NsfwConfig(threads=1))
    ins = {m: [(i.name, i.type, i.shape[1:]) for i in clf._get_session(m).get_inputs()] for m in ("int8", "fp32")}
    assert ins["int8"] == ins["fp32"] == [("input:0", "tensor(float)", [224, 224, 3])]
    graph = onnx.load(int8_model_path()).graph
    assert not [n for n in graph.node if n.op_type in ("Cast", "Gather", "Sub")]
    px = [clf.pixels(b) for b in photos]
    x = clf.batch(px)
    assert x.dtype == np.float32 and x.flags.c_contiguous
    assert np.array_equal(x, np.stack(px).astype(np.float32)[..., ::-1] - np.array([104, 117, 123], np.float32))
    whole = clf.run("int8", x)
    assert np.array_equal(clf.run("int8", x[[1, 3]]), whole[[1, 3]])  # rows scored apart equal the batch's


def test_int8_agrees_with_fp32_on_the_shared_photos(cache, photos):
    exact = nsfw_scores(NsfwConfig(model="fp32", threads=1), photos)
    raw = nsfw_scores(NsfwConfig(model="int8", threads=1, int8_recheck_margin=0), photos)
    assert np.abs(raw - exact).max() < SHARED_BOUND
    assert not np.array_equal(raw, exact)  # it is another model, not the fp32 one under a new name
    cfg = nsfw_config("default")
    assert cfg.model == "amx"  # int8 on onnxruntime until amx_min_images, or where AMX is not (test_nsfw_amx.py)
    for threshold in (cfg.threshold, 0.2, 0.01):  # the verdicts agree at the profile's and lower cut-offs
        assert list(raw > threshold) == list(exact > threshold), threshold
    ours = OpenNsfwClassifier(NsfwConfig(model="int8", threads=1)).score(photos)
    assert [is_flagged(s, cfg) for s in ours] == [bool(x > cfg.threshold) for x in exact]


def test_near_a_threshold_the_fp32_score_decides(cache, photos):
    exact = nsfw_scores(NsfwConfig(model="fp32", threads=1), photos)
    raw = nsfw_scores(NsfwConfig(model="int8", threads=1, int8_recheck_margin=0), photos)
    cfg = NsfwConfig(model="int8", threshold=0.02, int8_recheck_margin=0.01, threads=1, batch_size=5)
    clf = OpenNsfwClassifier(cfg)
    got = np.array([s["nsfw"] for s in clf.score(photos)])
    near = np.abs(raw - 0.02) <= 0.01
    assert 0 < near.sum() < len(photos) and clf.rechecked == near.sum()
    assert np.array_equal(got[near], exact[near])  # bit for bit: fp32 scores do not depend on the batch
    assert np.array_equal(got[~near], raw[~near])
    # label_thresholds count too: a rule on "sfw" near 1 re-checks every photo
    clf = OpenNsfwClassifier(NsfwConfig(model="int8", label_thresholds={"sfw": 0.99}, int8_recheck_margin=0.05,
                                        threads=1))
    assert np.array_equal(np.array([s["nsfw"] for s in clf.score(photos)]), exact)
    assert clf.rechecked == len(photos)


def test_profiles_and_validation():
    assert nsfw_config("obelics-2023").model == "fp32"  # the original's path stays exactly fp32
    assert from_dict(NsfwConfig, {"model": "fp32", "int8_recheck_margin": 0.5}, "t").int8_recheck_margin == 0.5
    for bad in ({"model": "int4"}, {"int8_recheck_margin": 1.5}, {"int8_recheck_margin": -0.1}):
        with pytest.raises(ConfigError):
            from_dict(NsfwConfig, bad, "t")
