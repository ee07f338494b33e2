"""Locating models, devices and dtypes, and the converted-GGUF cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import transformers

from tokentui.engine import models
from tokentui.engine.errors import ModelLoadError


def test_default_resolves_to_the_bundled_gguf(monkeypatch):
    monkeypatch.delenv("TOKENTUI_MODEL", raising=False)
    source = models.resolve(None)
    assert source.kind == "gguf" and source.location.endswith(models.BUNDLED_FILE)
    assert Path(source.location).is_file()
    assert models.resolve("default") == source


def test_env_var_names_the_model(monkeypatch, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("TOKENTUI_MODEL", str(tmp_path))
    assert models.resolve(None).kind == "dir"


@pytest.mark.parametrize("spec,needle", [
    ("/definitely/missing.gguf", "no such GGUF"),
    ("./missing-folder/model", "no such model"),
])
def test_missing_files_are_clear_errors(spec, needle):
    with pytest.raises(ModelLoadError, match=needle):
        models.resolve(spec)


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        models.resolve(str(tmp_path))


def test_unknown_hub_id_offline_is_one_clear_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        models.load("no-such-user/no-such-model-xyz")
    assert "\n" not in str(info.value) and "no-such-model-xyz" in str(info.value)


def test_cache_dir_honours_overrides(monkeypatch, tmp_path):
    monkeypatch.setenv("TOKENTUI_CACHE", str(tmp_path / "c"))
    assert models.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("TOKENTUI_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert models.cache_dir() == tmp_path / "x" / "tokentui"


def test_converted_cache_is_keyed_by_hash_and_version(bundled):
    path = models.bundled_gguf_path()
    folder = models.converted_dir(path)
    assert folder.name.startswith(models.file_hash(path)[:20])
    assert transformers.__version__ in folder.name
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert bundled.weights_hash == models.file_hash(path)


def test_file_hash_is_sha256_and_memoised(tmp_path, monkeypatch):
    import hashlib

    monkeypatch.setenv("TOKENTUI_CACHE", str(tmp_path / "cache"))
    f = tmp_path / "w.bin"
    f.write_bytes(b"abc" * 1000)
    assert models.file_hash(f) == hashlib.sha256(b"abc" * 1000).hexdigest()
    assert (tmp_path / "cache" / "hashes.json").is_file()


def test_devices_and_dtypes():
    assert models.pick_device("cpu") == "cpu"
    assert models.pick_dtype("auto", "cpu") == "float32"
    with pytest.raises(ModelLoadError, match="unknown device"):
        models.pick_device("tpu")
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        models.pick_dtype("int3", "cpu")


def test_loaded_model_is_ready_for_stepping(bundled):
    assert bundled.device == "cpu" and bundled.dtype == "float32"
    assert not bundled.model.training
    assert not any(p.requires_grad for p in bundled.model.parameters())


def test_unknown_hub_id_fails_fast_when_the_network_swallows_requests(tmp_path):
    """A hub that accepts connections and never answers (a firewalled box): the load of a
    made-up id not in the cache fails within seconds with one line, not after minutes of retries."""
    import socket
    import subprocess
    import sys
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)  # never answered

    threading.Thread(target=accept, daemon=True).start()
    script = (
        "import time, sys\n"
        "from tokentui.engine import models\n"
        "from tokentui.engine.errors import ModelLoadError\n"
        "import transformers, torch\n"
        "t = time.perf_counter()\n"
        "try:\n"
        "    models.load('made-up-org/no-such-model-xyz')\n"
        "except ModelLoadError as exc:\n"
        "    print(f'{time.perf_counter() - t:.2f}|{exc}')\n"
    )
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{server.getsockname()[1]}",
           "HF_HOME": str(tmp_path / "hf")}
    env.pop("HF_HUB_OFFLINE", None)
    try:
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                             timeout=180, check=True).stdout.strip()
    finally:
        server.close()
        for conn in held:
            conn.close()
    seconds, line = out.split("|", 1)
    assert float(seconds) < models.HUB_PROBE_S + 4  # the probe, plus imports under load
    assert "made-up-org/no-such-model-xyz" in line and "\n" not in line


# ----- checkpoint rules: safetensors preferred, pickle only when asked, text-only multimodal -----
def _tiny_llama_folder(folder: Path, *, safe: bool) -> Path:
    import torch

    from tests.architectures import zoo

    model = zoo.build_model("llama")
    model.save_pretrained(folder)
    if not safe:
        # transformers 5 writes only safetensors: write the pickle checkpoint by hand.
        for f in folder.glob("*.safetensors"):
            f.unlink()
        torch.save(model.state_dict(), folder / "pytorch_model.bin")
    zoo.make_tokenizer().save_pretrained(folder)
    return folder


@pytest.mark.tiny
def test_pickle_only_checkpoint_is_refused_in_one_line(tmp_path):
    folder = _tiny_llama_folder(tmp_path / "pickled", safe=False)
    assert not list(folder.glob("*.safetensors"))
    with pytest.raises(ModelLoadError) as err:
        models.load(str(folder), device="cpu")
    message = str(err.value)
    assert "\n" not in message and "pickle" in message and "--allow-pickle" in message


@pytest.mark.tiny
def test_pickle_checkpoint_loads_when_allowed(tmp_path):
    import torch

    folder = _tiny_llama_folder(tmp_path / "pickled", safe=False)
    loaded = models.load(str(folder), device="cpu", allow_pickle=True)
    reference = torch.load(folder / "pytorch_model.bin", weights_only=True)
    assert torch.equal(loaded.model.lm_head.weight, reference["lm_head.weight"])


@pytest.mark.tiny
def test_allow_pickle_flag_reaches_the_loader(tmp_path):
    from typer.testing import CliRunner

    from tokentui.cli import app

    folder = _tiny_llama_folder(tmp_path / "pickled", safe=False)
    runner = CliRunner()
    refused = runner.invoke(app, ["next", "hi", "--no-chat-template", "--model", str(folder)])
    assert refused.exit_code == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--allow-pickle" in lines[0]
    allowed = runner.invoke(app, ["next", "hi", "--no-chat-template", "--model", str(folder),
                                  "--allow-pickle", "--json"])
    assert allowed.exit_code == 0, allowed.stderr


@pytest.mark.tiny
def test_multimodal_checkpoint_loads_text_only(tmp_path):
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    from tests.architectures import zoo

    text = dict(vocab_size=zoo.VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=8, sliding_window=8,
                max_position_embeddings=256)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                  image_size=28, patch_size=14)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4,
                          boi_token_index=3, eoi_token_index=4, image_token_index=5)
    torch.manual_seed(0)
    full = Gemma3ForConditionalGeneration(config).eval()
    folder = tmp_path / "gemma3-mm"
    full.save_pretrained(folder)
    zoo.make_tokenizer().save_pretrained(folder)
    loaded = models.load(str(folder), device="cpu")
    assert type(loaded.model).__name__ == "Gemma3ForCausalLM"
    assert not any("vision" in name for name, _ in loaded.model.named_parameters())
    ids = torch.tensor([[7, 9, 11, 13, 17]])
    with torch.no_grad():
        assert torch.allclose(loaded.model(input_ids=ids).logits, full(input_ids=ids).logits, atol=1e-5)
