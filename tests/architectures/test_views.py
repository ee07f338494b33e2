"""Views per architecture: per-step attention, positions in the Inside report, and the views a
recurrent model does not have (greyed with a reason, never a crash)."""

from __future__ import annotations

import pytest
import torch

from tests.architectures import zoo
from tokentui.engine.analysis import attention as attn
from tokentui.engine.analysis import inside
from tokentui.engine.backends.local import LocalBackend
from tokentui.engine.errors import CapabilityError
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.session import Session

pytestmark = pytest.mark.architectures


def session_for(loaded, text="The cat sat on the mat"):
    return Session(LocalBackend(loaded), PromptSpec(text, chat_template=False),
                   params=SamplingParams(greedy=True, ignore_eos=True))


CACHED_STEP_DRIFT = {"falcon": 1e-3, "bamba": 1e-2}
"""transformers' own cached step differs from its uncached forward here (measured with a plain
DynamicCache, no tokentui code): Falcon's second layer reports attention weights 6e-4 away (its
logits agree to 1e-7); Bamba's torch fallback drifts by ~1e-2 in logits after the prefill."""


@pytest.mark.parametrize("name", zoo.names())
def test_step_attention_matches_the_full_matrix(name, zoo_loaded):
    loaded = zoo_loaded(name)
    session = session_for(loaded)
    list(session.generate(3))
    ids = session.context_ids()
    backend = session.backend
    if not backend.capabilities.attention:
        with pytest.raises(CapabilityError, match="recurrent model: it has no attention weights"):
            attn.step_attention(backend, ids)
        with pytest.raises(CapabilityError, match="recurrent model"):
            attn.full_attention(backend, ids)
        assert backend.capabilities.heads is None
        return
    step = attn.step_attention(backend, ids)
    full = attn.full_attention(backend, ids)
    tolerance = CACHED_STEP_DRIFT.get(name, 1e-5)
    assert torch.allclose(torch.tensor(step.weights), full[:, :, -1, :], atol=tolerance)


def test_recurrent_model_keeps_every_other_view(zoo_loaded):
    loaded = zoo_loaded("mamba")
    session = session_for(loaded)
    list(session.generate(3))
    report = inside.inspect(session, -1, strict=True)
    assert report.attention_by_layer is None
    assert report.missing == {"attention_by_layer": "Mamba is a recurrent model: it has no attention "
                                                    "weights"}
    # the lens goes through Mamba's own final norm (norm_f): its last layer is the model's output
    assert inside.final_norm(loaded.model) is loaded.model.backbone.norm_f
    with torch.no_grad():
        ref = torch.softmax(loaded.model(input_ids=torch.tensor([session.context_ids()])).logits[0, -1], -1)
    assert report.logit_lens[-1].top[0].token.id == int(ref.argmax())
    assert report.logit_lens[-1].top[0].p == pytest.approx(float(ref.max()), abs=1e-5)
    assert report.embedding is not None and report.temperature_sweep is not None
    assert session.backend.capabilities.why_not("attention").startswith("Mamba is a recurrent")


def test_gemma3_shows_both_rotary_embeddings(zoo_loaded):
    loaded = zoo_loaded("gemma3")
    session = session_for(loaded)
    pos = inside.Inspector(session.backend).position(5, session.context_ids()[5])
    config = loaded.model.config
    assert pos.kind == "rope" and len(pos.variants) == 2
    by_type = {v.layer_type: v for v in pos.variants}
    assert set(by_type) == {"sliding_attention", "full_attention"}
    for kind, variant in by_type.items():
        assert variant.layers == tuple(i for i, t in enumerate(config.layer_types) if t == kind)
        theta = config.rope_parameters[kind]["rope_theta"]
        dim = config.head_dim
        expected = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)
        assert variant.base == theta
        assert torch.allclose(torch.tensor(variant.inv_freq), expected)
        assert torch.allclose(torch.tensor(variant.cos[:dim // 2]), torch.cos(5 * expected), atol=1e-6)
    assert by_type["sliding_attention"].base != by_type["full_attention"].base
    assert "sliding_attention" in pos.note and "full_attention" in pos.note
    assert pos.to_json()["variants"][0]["layers"] == list(pos.variants[0].layers)


def test_opt_reads_its_offset_position_table(zoo_loaded):
    loaded = zoo_loaded("opt")
    session = session_for(loaded)
    ids = session.context_ids()
    pos = inside.Inspector(session.backend).position(3, ids[3])
    table = loaded.model.model.decoder.embed_positions
    with torch.no_grad():
        used = table(torch.ones(1, len(ids), dtype=torch.long))[0, 3]  # what OPT adds at position 3
    assert pos.kind == "learned" and pos.table_row == 3 + table.offset
    assert torch.allclose(torch.tensor(pos.vector), used.float())


def test_alibi_models_show_slopes_and_no_position_vector(zoo_loaded):
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    loaded = zoo_loaded("bloom")
    session = session_for(loaded)
    pos = inside.Inspector(session.backend).position(2, session.context_ids()[2])
    heads = loaded.model.config.n_head
    alibi = build_alibi_tensor(torch.ones(1, 2), heads, torch.float32)  # (heads, 1, 2): slope * j
    assert pos.kind == "alibi" and not pos.vector and not pos.cos
    assert torch.allclose(torch.tensor(pos.slopes), alibi[:, 0, 1])
    assert "no position vector" in pos.note
    assert inside.alibi_slopes(12) == pytest.approx(
        build_alibi_tensor(torch.ones(1, 2), 12, torch.float32)[:, 0, 1].tolist())


@pytest.mark.parametrize("name,needles", [
    ("bloom", ("Position 2 · alibi", "no position vector", "Slopes per head")),
    ("gemma3", ("sliding_attention (base", "full_attention (base", "in layers 0, 1")),
    ("opt", ("row 4 (position 2 + offset 2)",)),
    ("mamba", ("attention_by_layer: Mamba is a recurrent model",)),
    ("gptj", ("Position 2 · rotary (base 10000", "adjacent pairs")),
])
def test_inspect_tables_say_it(name, needles, zoo_loaded, monkeypatch):
    from typer.testing import CliRunner

    from tokentui.cli import app
    from tokentui.engine import models

    loaded = zoo_loaded(name)
    monkeypatch.setattr(models, "load", lambda *args, **kwargs: loaded)
    result = CliRunner().invoke(app, ["inspect", "The cat sat on", "--no-chat-template",
                                      "--position", "2", "--model", loaded.source.location],
                                env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.stderr
    flat = " ".join(result.stdout.split())
    for needle in needles:
        assert needle in flat, (needle, result.stdout)


@pytest.mark.parametrize("name,every_layer", [("jamba", False), ("bamba", False), ("falcon_h1", True)])
def test_hybrid_offers_its_attention_layers(name, every_layer, zoo_loaded):
    """Jamba and Bamba alternate attention and Mamba layers; Falcon-H1 runs both in every layer."""
    backend = LocalBackend(zoo_loaded(name))
    att = attn.full_attention(backend, [5, 6, 7, 8])
    assert backend.capabilities.attention
    assert backend.capabilities.layers == att.shape[0]
    assert (att.shape[0] == backend.model.config.num_hidden_layers) == every_layer
    assert backend.capabilities.heads == att.shape[1]


def test_gptj_rotary_table_is_read(zoo_loaded):
    from transformers.models.gptj.modeling_gptj import create_sinusoidal_positions

    loaded = zoo_loaded("gptj")
    session = session_for(loaded)
    pos = inside.Inspector(session.backend).position(4, session.context_ids()[4])
    dim = loaded.model.config.rotary_dim
    reference = create_sinusoidal_positions(16, dim)[4]  # [sin | cos] as GPT-J builds it
    assert pos.kind == "rope" and pos.head_dim == dim
    assert torch.allclose(torch.tensor(pos.sin[:dim // 2]), reference[:dim // 2], atol=1e-6)
    assert torch.allclose(torch.tensor(pos.cos[:dim // 2]), reference[dim // 2:], atol=1e-6)
    inv_freq = 1.0 / 10000 ** (torch.arange(0, dim, 2, dtype=torch.float) / dim)
    assert torch.allclose(torch.tensor(pos.inv_freq), inv_freq, atol=1e-6)
    assert pos.base == pytest.approx(10000, rel=1e-3)
