"""Generation from an exported tiny model: greedy is deterministic, prompts match the processor's, URLs are
fetched through the network guard within their budgets."""

from __future__ import annotations

import http.server
import threading

import pytest

from tests.train.shards import photo_bytes
from tests.train.test_train import _cfg


@pytest.fixture(scope="module")
def exported(shards, tmp_path_factory):
    from train.export import export_checkpoint
    from train.trainer import Trainer

    tmp = tmp_path_factory.mktemp("gen")
    Trainer(_cfg(shards, tmp / "run", "run.max_steps=3")).train()
    return export_checkpoint(tmp / "run", tmp / "export"), tmp / "run"


@pytest.fixture()
def server():
    """A loopback HTTP server: /photo.jpg, /big (1 MB)."""
    body = {"/photo.jpg": photo_bytes(2), "/big": b"x" * (1 << 20)}

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = body.get(self.path)
            self.send_response(200 if data else 404)
            self.send_header("Content-Length", str(len(data or b"")))
            self.end_headers()
            self.wfile.write(data or b"")

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_greedy_generation_is_deterministic_from_folder_and_checkpoint(exported):
    from train.generate import generate, load

    folder, run = exported
    prompt = [("text", "A photo of"), ("image", photo_bytes(1)), ("text", "the")]
    a = load(folder)
    text, ids = generate(a, prompt, max_new_tokens=8)
    assert len(ids) == 8 and a.tok.eos_token_id not in ids[:-1]  # a 3-step model rambles to the token budget
    assert generate(a, prompt, max_new_tokens=8) == (text, ids)
    assert generate(load(run), prompt, max_new_tokens=8) == (text, ids)  # the checkpoint itself: same tokens
    image_ids = {a.tok.convert_tokens_to_ids(t) for t in ("<image>", "<fake_token_around_image>")}
    samples = {tuple(generate(a, prompt, max_new_tokens=8, sample=True, seed=s)[1]) for s in range(4)}
    assert not image_ids & {t for s in samples for t in s}  # image tokens are never generated
    assert len(samples) > 1  # sampling explores (greedy would give one sequence)
    with pytest.raises(Exception, match="end_of_utterance"):
        generate(a, prompt, instruct=True)


def test_prompt_inputs_equal_the_processors(exported):
    from transformers import IdeficsProcessor

    from train.generate import load, prompt_batch

    folder, _ = exported
    import io

    from PIL import Image

    a = load(folder)
    ours = prompt_batch(a, [("text", "A photo of"), ("image", photo_bytes(1)), ("image", photo_bytes(2)),
                            ("text", "two things")])
    proc = IdeficsProcessor.from_pretrained(folder)
    theirs = proc(text=[["A photo of", Image.open(io.BytesIO(photo_bytes(1))), Image.open(io.BytesIO(photo_bytes(2))),
                         "two things"]], return_tensors="pt")
    for k in ("input_ids", "attention_mask", "image_attention_mask"):
        assert ours[k].tolist() == theirs[k].tolist(), k
    assert (ours["pixel_values"] - theirs["pixel_values"]).abs().max() < 1e-5


def test_urls_are_fetched_through_the_guard_within_budgets(server):
    from train.generate import FetchError, fetch_image

    allow = ["127.0.0.0/8"]
    assert fetch_image(f"{server}/photo.jpg", allow=allow) == photo_bytes(2)
    with pytest.raises(FetchError, match="loopback"):
        fetch_image(f"{server}/photo.jpg")  # no allow-list: loopback is refused before connecting
    with pytest.raises(FetchError, match="budget"):
        fetch_image(f"{server}/big", max_bytes=1000, allow=allow)
    with pytest.raises(FetchError, match="404"):
        fetch_image(f"{server}/missing", allow=allow)


def test_cli_prints_one_line_and_refuses_bad_input(exported, server, tmp_path, capsys):
    from train.generate import main

    folder, _ = exported
    assert main([str(folder), "--text", "A photo of", "--image", f"{server}/photo.jpg", "--allow", "127.0.0.0/8",
                 "--max-new-tokens", "5"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1
    for argv in ([str(folder), "--image", str(tmp_path / "none.jpg"), "--text", "x"],
                 [str(folder), "--image", f"{server}/photo.jpg", "--text", "x"],  # refused by the guard
                 [str(tmp_path / "nothing"), "--text", "x"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("python -m train.generate: ") and len(err.strip().splitlines()) == 1
