"""Shared fixtures: the real bundled model (loaded once) and a tiny random model.

Mechanics are tested on the tiny model (fast, deterministic); the numbers that matter
(probabilities, filters, greedy agreement) on the real SmolLM2-135M.

Tiers (markers set here from the fixtures a test uses, or by the test module): ``unit`` (no
model), ``tiny`` (tiny random models and the tokenizer only), ``bundled`` (the real model),
``slow`` (builds servers, Chromium, first-start conversion), ``architectures`` (the model
matrix), ``hostile`` (hostile input through the real CLI and app). ``uv run pytest`` runs all;
``uv run pytest -m "not slow"`` is the quick loop.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


BUNDLED_FIXTURES = {"bundled", "real_backend"}
TIERS = ("unit", "tiny", "bundled", "slow", "architectures", "hostile")


def pytest_configure(config):
    for tier in TIERS:
        config.addinivalue_line("markers", f"{tier}: the {tier} test tier (see tests/conftest.py)")


def pytest_collection_modifyitems(config, items):
    """Give every test its tier from the fixtures it uses (a module's own marker wins)."""
    for item in items:
        own = {m.name for m in item.iter_markers()} & set(TIERS)
        if own - {"slow"}:
            continue
        names = set(getattr(item, "fixturenames", ()))
        if names & BUNDLED_FIXTURES:
            item.add_marker(pytest.mark.bundled)
        elif any(n.startswith("tiny") or n in {"tokenizer", "make_app", "two_branches"} for n in names):
            item.add_marker(pytest.mark.tiny)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def bundled():
    """The bundled SmolLM2-135M-Instruct (converted once into the user cache)."""
    from tokentui.engine import models

    return models.load()


@pytest.fixture(scope="session")
def real_backend(bundled):
    from tokentui.engine.backends.local import LocalBackend

    return LocalBackend(bundled)


@pytest.fixture(scope="session")
def tokenizer():
    """The bundled model's tokenizer alone (converted once from the GGUF, without its weights):
    the tiny models use it, so the quick tiers never load the real model."""
    from tokentui.engine import models

    return models.load_tokenizer(light=False)


def make_tiny_loaded(tokenizer, *, seed: int = 0, layers: int = 2):
    """A randomly initialised Llama with the bundled tokenizer's vocabulary."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from tokentui.engine.models import LoadedModel, ModelSource

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    # Sharper logits than the default init so sampling filters have something to cut.
    with torch.no_grad():
        model.lm_head.weight.mul_(40.0)
    model.requires_grad_(False)
    model.generation_config.eos_token_id = 2
    return LoadedModel(model=model, tokenizer=tokenizer,
                       source=ModelSource("dir", "tiny-random", "tiny-random"),
                       device="cpu", dtype="float32", weights_hash=None)


@pytest.fixture(scope="session")
def tiny_loaded(tokenizer):
    return make_tiny_loaded(tokenizer)


@pytest.fixture
def tiny_backend(tiny_loaded):
    """A fresh backend (its own cache) over the shared tiny model."""
    from tokentui.engine.backends.local import LocalBackend

    return LocalBackend(tiny_loaded)


@pytest.fixture
def tiny_session(tiny_backend):
    from tokentui.engine.params import SamplingParams
    from tokentui.engine.prompts import PromptSpec
    from tokentui.engine.session import Session

    return Session(tiny_backend, PromptSpec("Tell me a story about a cat."),
                   params=SamplingParams(seed=7, max_new_tokens=12))


@pytest.fixture
def two_branches(tiny_session):
    """Greedy main branch of 6 tokens and a second branch that parts at completion position 2
    (the second candidate there) and runs 3 tokens further; the second one is current."""
    s = tiny_session
    s.set_params(s.params.with_changes(greedy=True))
    list(s.generate(6))
    alt = next(c.token.id for c in s.current.steps[2].candidates if c.token.id != s.current.ids[2])
    s.branch_from(2, alt)
    list(s.generate(3))
    return s


@pytest.fixture(scope="session")
def tiny_dir(tiny_loaded, tmp_path_factory):
    """The tiny random model saved as a model folder, so the CLI can load it by path."""
    folder = tmp_path_factory.mktemp("tiny-model")
    tiny_loaded.model.save_pretrained(folder)
    tiny_loaded.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def llama_cpp_python_server(tmp_path_factory):
    """llama-cpp-python's OpenAI-compatible server on the bundled GGUF, on 127.0.0.1 (built the
    first time, see tests/remote_server.py), shared by the tests that need a server."""
    from remote_server import LlamaCppPythonServer, ensure_llama_cpp_python

    from tokentui.engine.models import bundled_gguf_path

    logs = tmp_path_factory.mktemp("llama-cpp-python-server")
    ensure_llama_cpp_python(logs / "build.log")
    srv = LlamaCppPythonServer(bundled_gguf_path(), logs / "server.log")
    try:
        yield srv.start()
    finally:
        srv.stop()
