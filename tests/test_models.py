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
