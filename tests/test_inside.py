"""Inside the model: every number checked against the model's own modules and forwards.

Mechanics on the tiny random Llama (and a tiny random GPT-2 for learned positions); the
numbers that matter once more on the bundled SmolLM2-135M.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from tokentui.engine import sampling
from tokentui.engine.analysis import inside
from tokentui.engine.analysis.inside import InsideError
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.session import Session
from tokentui.tui.help_texts import EXPLANATIONS, explain


@contextlib.contextmanager
def truncated(model, layers: int):
    """The model cut to its first ``layers`` blocks (LlamaModel loops over
    ``layers[:config.num_hidden_layers]``): its logits are then the lens at that layer."""
    config = model.model.config
    before = config.num_hidden_layers
    config.num_hidden_layers = layers
    try:
        yield
    finally:
        config.num_hidden_layers = before


def entropy_bits(p):
    """The textbook formula, as the reference: -sum p log2 p over p > 0."""
    p = p[p > 0].double()
    return float(-(p * torch.log2(p)).sum())


def full_forward(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([list(ids)]), use_cache=False, output_hidden_states=True)


def stepped(session: Session, n: int = 3) -> Session:
    for _ in range(n):
        session.step(hidden_states=True, attention=True)
    return session


# ----- logit lens ---------------------------------------------------------------------------
def check_last_layer_is_p_base(session: Session) -> None:
    stepped(session)
    step = session.current.steps[-1]
    before = session.backend.forward_tokens
    report = inside.inspect(session, -2)
    assert session.backend.forward_tokens == before, "the newest step's position needs no forward"
    last = report.logit_lens[-1]
    assert report.target.id == step.token.id
    assert last.target_p == pytest.approx(step.p_base, abs=1e-5)
    by_id = {e.token.id: e.p for e in last.top}
    for cand in step.distribution.candidates[:len(last.top)]:
        assert by_id[cand.token.id] == pytest.approx(cand.p_base, abs=1e-5)
    assert last.entropy == pytest.approx(step.distribution.entropy, abs=1e-4)
    # The rank among the whole vocabulary under p_base, counted afresh from the model's logits.
    logits = session.backend.next_logits(session.context_ids()[:-1]).logits
    p_base = torch.softmax(logits.float(), dim=-1)
    assert last.target_rank == int((p_base > p_base[step.token.id]).sum()) + 1


def test_last_layer_lens_equals_the_steps_p_base(tiny_session):
    check_last_layer_is_p_base(tiny_session)


def test_last_layer_lens_equals_p_base_on_the_bundled_model(real_backend):
    real_backend.reset()
    check_last_layer_is_p_base(Session(real_backend, PromptSpec("Name a colour."),
                                       params=SamplingParams(seed=3)))


def test_inner_layers_equal_the_truncated_models_output(tiny_session, tiny_loaded):
    model = tiny_loaded.model
    stepped(tiny_session, 2)
    ctx = tiny_session.context_ids()
    report = inside.inspect(tiny_session, 4)
    with truncated(model, 1):
        logits = full_forward(model, ctx[:5]).logits[0, -1]
    p = torch.softmax(logits, -1)
    first = report.logit_lens[0]
    assert first.layer == 0 and len(report.logit_lens) == model.config.num_hidden_layers
    assert first.top[0].token.id == int(p.argmax())
    assert first.target_p == pytest.approx(float(p[ctx[5]]), abs=1e-6)


def test_inner_layer_on_the_bundled_model(real_backend, bundled):
    model = bundled.model
    session = Session(real_backend, PromptSpec("The capital of France is", chat_template=False))
    report = inside.inspect(session, -1)
    with truncated(model, 15):
        logits = full_forward(model, session.context_ids()).logits[0, -1]
    p = torch.softmax(logits.float(), -1)
    layer = report.logit_lens[14]
    assert layer.layer == 14
    assert [e.token.id for e in layer.top] == torch.topk(p, len(layer.top)).indices.tolist()
    assert layer.top[0].p == pytest.approx(float(p.max()), abs=1e-5)
    assert len(report.logit_lens) == 30


def test_older_position_uses_one_prefix_forward_and_matches_the_model(tiny_session, tiny_loaded):
    stepped(tiny_session, 3)
    ctx = tiny_session.context_ids()
    report = inside.inspect(tiny_session, 2)
    logits = full_forward(tiny_loaded.model, ctx).logits[0, 2]
    p = torch.softmax(logits, -1)
    assert report.logit_lens[-1].target_p == pytest.approx(float(p[ctx[3]]), abs=1e-5)
    assert report.logit_lens[-1].target_rank == int((p > p[ctx[3]]).sum()) + 1


def test_last_position_is_reused_by_the_next_step(tiny_session):
    stepped(tiny_session, 1)
    before = tiny_session.backend.forward_tokens
    report = inside.inspect(tiny_session, -1)
    assert report.target is None and report.logit_lens[-1].target_p is None
    step = tiny_session.step(hidden_states=True, attention=True)
    assert tiny_session.backend.forward_tokens == before + 1, "inspect + step cost one forward"
    assert report.logit_lens[-1].top[0].p == pytest.approx(step.distribution.candidates[0].p_base,
                                                            abs=1e-6)


def test_lens_grid_matches_the_model(tiny_session, tiny_loaded):
    stepped(tiny_session, 2)
    ctx = tiny_session.context_ids()
    grid = inside.Inspector(tiny_session.backend).lens_grid(ctx)
    p = torch.softmax(full_forward(tiny_loaded.model, ctx).logits[0], -1)
    assert len(grid.top) == 2 and len(grid.top[-1]) == len(ctx)
    assert [e.token.id for e in grid.top[-1]] == p.argmax(-1).tolist()
    for t in (0, len(ctx) - 2):
        assert grid.target_p[-1][t] == pytest.approx(float(p[t, ctx[t + 1]]), abs=1e-6)
    assert grid.target_p[-1][-1] is None
    data = grid.to_json()
    assert len(data["layers"]) == 2 and len(data["layers"][0]["cells"]) == len(ctx)


# ----- token, embedding, position --------------------------------------------------------------
def test_embedding_row_and_nearest_tokens(tiny_session, tiny_loaded):
    weight = tiny_loaded.model.get_input_embeddings().weight
    ctx = tiny_session.context_ids()
    info = inside.Inspector(tiny_session.backend).embedding(ctx[-1])
    assert torch.equal(torch.tensor(info.values), weight[ctx[-1]])
    assert info.norm == pytest.approx(float(weight[ctx[-1]].norm()), rel=1e-6)
    cos = torch.nn.functional.cosine_similarity(weight, weight[ctx[-1]][None], dim=-1)
    cos[ctx[-1]] = -2
    assert [n.token.id for n in info.nearest] == torch.topk(cos, 8).indices.tolist()
    assert info.nearest[0].cosine == pytest.approx(float(cos.max()), abs=1e-5)


def test_bundled_embedding_rows(real_backend, bundled):
    session = Session(real_backend, PromptSpec("cat", chat_template=False))
    report = inside.inspect(session, 0)
    weight = bundled.model.get_input_embeddings().weight
    assert torch.equal(torch.tensor(report.embedding.values), weight[session.prompt_ids[0]])
    assert len(report.embedding.values) == 576 and len(report.embedding.nearest) == 8


def test_tied_embeddings_ride_in_the_lens_matmul(real_backend, tiny_session):
    """SmolLM2 ties its unembedding to its input embedding, so the nearest-token products
    come from the lens matmul; they must name the same neighbours as a separate product."""
    session = Session(real_backend, PromptSpec("The sky is blue because", chat_template=False))
    inspector = inside.Inspector(real_backend)
    token = session.context_ids()[-2]
    assert inspector.fused_embedding_row(token) is not None
    fused = inside.inspect(session, -2, inspector=inspector).embedding
    assert inspector.fused_embedding_row(token) is None  # cached now
    alone = inside.Inspector(real_backend).embedding(token)
    assert [n.token.id for n in fused.nearest] == [n.token.id for n in alone.nearest]
    for a, b in zip(fused.nearest, alone.nearest, strict=True):
        assert a.cosine == pytest.approx(b.cosine, abs=1e-5)
    # The tiny Llama has an untied head: nothing rides along there.
    tiny = inside.Inspector(tiny_session.backend)
    assert tiny.fused_embedding_row(tiny_session.context_ids()[-1]) is None


@pytest.mark.parametrize("which", ["tiny", "bundled"])
def test_rotary_cos_sin_are_the_models_own(which, request):
    loaded = request.getfixturevalue("tiny_loaded" if which == "tiny" else "bundled")
    backend = request.getfixturevalue("tiny_backend" if which == "tiny" else "real_backend")
    rotary = loaded.model.model.rotary_emb
    info = inside.Inspector(backend).position(7, 42)
    # What the model computes for a whole sequence, row 7.
    x = torch.zeros(1, 12, loaded.model.config.hidden_size)
    cos, sin = rotary(x, position_ids=torch.arange(12)[None])
    assert info.kind == "rope"
    assert torch.allclose(torch.tensor(info.cos), cos[0, 7].float(), atol=1e-6)
    assert torch.allclose(torch.tensor(info.sin), sin[0, 7].float(), atol=1e-6)
    assert torch.allclose(torch.tensor(info.inv_freq), rotary.inv_freq.float())
    assert info.base == loaded.model.config.rope_parameters["rope_theta"]
    assert info.head_dim == len(info.cos) == 2 * len(info.inv_freq)
    assert info.to_json()["kind"] == "rope"


def tiny_gpt2_backend(tokenizer):
    from transformers import GPT2Config, GPT2LMHeadModel

    from tokentui.engine.backends.local import LocalBackend
    from tokentui.engine.models import LoadedModel, ModelSource

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=len(tokenizer),
                                       n_positions=128, bos_token_id=1, eos_token_id=2)).eval()
    model.requires_grad_(False)
    return LocalBackend(LoadedModel(model=model, tokenizer=tokenizer,
                                    source=ModelSource("dir", "tiny-gpt2", "tiny-gpt2"),
                                    device="cpu", dtype="float32", weights_hash=None))


def test_learned_positions_on_gpt2(tokenizer):
    backend = tiny_gpt2_backend(tokenizer)
    session = Session(backend, PromptSpec("Hello there, friend", chat_template=False),
                      params=SamplingParams(seed=1))
    stepped(session, 2)
    ctx = session.context_ids()
    report = inside.inspect(session, 3)
    model = backend.model
    assert report.position.kind == "learned"
    assert torch.equal(torch.tensor(report.position.vector), model.transformer.wpe.weight[3])
    h0 = full_forward(model, ctx).hidden_states[0][0, 3]
    assert torch.allclose(torch.tensor(report.position.token_plus_position), h0, atol=1e-6)
    # The lens works through ln_f too, and its last layer is the model's distribution.
    p = torch.softmax(full_forward(model, ctx).logits[0, 3], -1)
    assert report.logit_lens[-1].target_p == pytest.approx(float(p[ctx[4]]), abs=1e-6)
    check_last_layer_is_p_base(session)


# ----- attention ------------------------------------------------------------------------------
def test_attention_by_layer_matches_the_backends_matrix(tiny_session):
    stepped(tiny_session, 2)
    ctx = tiny_session.context_ids()
    i = len(ctx) - 3
    report = inside.inspect(tiny_session, i)
    matrix = tiny_session.backend.attention_matrix(ctx)  # (layers, heads, T, T)
    assert len(report.attention_by_layer) == matrix.shape[0]
    for layer, row in zip(report.attention_by_layer, matrix, strict=True):
        assert len(layer.mean) == i + 1
        assert torch.allclose(torch.tensor(layer.mean), row[:, i, :i + 1].mean(0), atol=1e-5)
        assert sum(layer.mean) == pytest.approx(1.0, abs=1e-5)
        ent = -(row[:, i, :i + 1] * torch.log2(row[:, i, :i + 1].clamp_min(1e-30))).sum(-1)
        assert torch.allclose(torch.tensor(layer.head_entropy), ent, atol=1e-4)
        assert all(0 <= h <= math.log2(i + 1) + 1e-4 for h in layer.head_entropy)


def test_newest_step_attention_needs_no_forward(tiny_session):
    stepped(tiny_session, 2)
    ctx = tiny_session.context_ids()
    before = tiny_session.backend.forward_tokens
    report = inside.inspect(tiny_session, -2)
    assert tiny_session.backend.forward_tokens == before
    matrix = tiny_session.backend.attention_matrix(ctx)
    i = len(ctx) - 2
    assert torch.allclose(torch.tensor(report.attention_by_layer[0].mean),
                          matrix[0, :, i, :i + 1].mean(0), atol=1e-5)


# ----- the temperature knob ---------------------------------------------------------------------
@pytest.mark.parametrize("which", ["tiny", "bundled"])
def test_sweep_at_the_current_temperature_is_the_pipelines_softmax(which, request):
    backend = request.getfixturevalue("tiny_backend" if which == "tiny" else "real_backend")
    params = SamplingParams(temperature=0.65, top_k=0, top_p=1.0, min_p=0.0,
                            repetition_penalty=1.3, presence_penalty=0.5, seed=2)
    session = Session(backend, PromptSpec("Count: one two three"), params=params)
    stepped(session, 3)
    out = session.next_output()
    ctx, comp = session.context_ids(), session.current.ids
    sweep = inside.temperature_sweep(out.logits, ctx, comp, params, session.tokens)
    processed = sampling.process(out.logits, ctx, comp, params)
    k = sweep.temperatures.index(0.65)
    assert sweep.temperatures[0] == 0.1 and sweep.temperatures[-1] == 2.0
    for token, row in zip(sweep.tokens, sweep.p, strict=True):
        assert row[k] == pytest.approx(float(processed.p_final[token.id]), abs=1e-6)
    assert sweep.entropy[k] == pytest.approx(entropy_bits(processed.p_final), abs=1e-4)
    assert list(sweep.p_final) == pytest.approx([float(processed.p_final[t.id]) for t in sweep.tokens])
    # Lower temperature, lower entropy.
    assert all(a <= b + 1e-6 for a, b in zip(sweep.entropy, sweep.entropy[1:], strict=False))


def test_sweep_cuts_at_the_current_settings(tiny_session):
    params = SamplingParams(temperature=0.9, top_k=7, top_p=0.5, min_p=0.1, seed=1)
    tiny_session.set_params(params)
    out = tiny_session.next_output()
    ctx = tiny_session.context_ids()
    sweep = inside.temperature_sweep(out.logits, ctx, [], params, tiny_session.tokens)
    cuts = {c.name: c for c in sweep.cuts}
    assert cuts["top_k"].kept == 7
    alone = sampling.process(out.logits, ctx, [], params.with_changes(top_k=0, min_p=0.0))
    assert cuts["top_p"].kept == int(alone.kept.sum())
    assert sweep.kept == int(sampling.process(out.logits, ctx, [], params).kept.sum())
    assert sweep.kept <= min(c.kept for c in cuts.values())
    off = inside.temperature_sweep(out.logits, ctx, [], SamplingParams(top_p=1.0), tiny_session.tokens)
    assert all(c.kept is None for c in off.cuts)


# ----- token pieces, errors, JSON -----------------------------------------------------------------
def test_word_split_and_bytes(tiny_backend, tokenizer):
    text = "We saw unbelievably large cats."
    session = Session(tiny_backend, PromptSpec(text, chat_template=False))
    ctx = session.context_ids()
    inspector = inside.Inspector(tiny_backend)
    pieces = [tokenizer.decode([i]) for i in ctx]
    start = next(k for k, p in enumerate(pieces) if p.startswith(" un"))
    info = inspector.token_info(ctx, start + 1, prompt_length=len(ctx))
    assert info.word.text == " unbelievably" and len(info.word.pieces) > 1
    assert info.raw == tokenizer.decode([ctx[start + 1]]).encode()
    last = inspector.token_info(ctx, len(ctx) - 1, prompt_length=len(ctx))
    assert last.word.text == "." and last.vocab_size == tiny_backend.vocab_size


def test_special_tokens_stand_alone(tiny_session):
    ctx = tiny_session.context_ids()
    info = inside.Inspector(tiny_session.backend).token_info(ctx, 0, prompt_length=len(ctx))
    assert info.token.special and info.word.pieces == (info.token,)


def test_position_outside_the_sequence(tiny_session):
    n = len(tiny_session.context_ids())
    with pytest.raises(InsideError, match=f"position {n} is outside the sequence of {n} tokens"):
        inside.inspect(tiny_session, n)
    with pytest.raises(InsideError, match="outside"):
        inside.inspect(tiny_session, -n - 1)
    assert inside.inspect(tiny_session, -n).index == 0


def test_missing_parts_name_themselves(tiny_session, monkeypatch):
    monkeypatch.setattr(inside, "FINAL_NORM_NAMES", ("no_such_norm",))
    with pytest.raises(InsideError, match="no final norm found in LlamaModel"):
        inside.inspect(tiny_session, -1)
    monkeypatch.setattr(inside, "rotary_module", lambda model: None)
    with pytest.raises(InsideError, match="no rotary module was found"):
        inside.inspect(tiny_session, -1)
    report = inside.inspect(tiny_session, -1, strict=False)
    assert report.logit_lens is None and "no final norm" in report.missing["logit_lens"]
    assert "no rotary module" in report.missing["position"]
    assert report.embedding is not None and report.attention_by_layer is not None
    assert report.temperature_sweep is not None
    assert report.to_json()["logit_lens"] is None


def test_a_backend_without_hidden_states_is_refused(tiny_backend):
    """A backend that declares no hidden states (as a server does) is refused in one line."""
    from dataclasses import replace

    tiny_backend.capabilities = replace(tiny_backend.capabilities, hidden_states=False)
    with pytest.raises(InsideError, match="no access to the model's internals"):
        inside.Inspector(tiny_backend)


def test_report_json_is_plain(tiny_session):
    import json

    stepped(tiny_session, 1)
    data = json.loads(json.dumps(inside.inspect(tiny_session, -1).to_json()))
    assert {"token", "embedding", "position", "logit_lens", "attention_by_layer",
            "temperature_sweep"} <= set(data)
    assert set(data["embedding"]) >= {"values", "norm", "nearest"}
    assert data["position"]["kind"] == "rope"
    assert set(data["logit_lens"][0]) == {"layer", "top", "entropy", "target_rank", "target_p"}
    assert set(data["logit_lens"][0]["top"][0]) == {"id", "text", "p"}


def test_every_pane_has_an_explanation():
    panes = {"prompt", "token_stream", "alternatives", "attention", "params", "charts"}
    inside = {"inside_token", "inside_embedding", "inside_position", "inside_logit_lens",
              "inside_attention", "inside_temperature"}
    assert panes | inside <= set(EXPLANATIONS)
    for key, text in EXPLANATIONS.items():
        assert all(text.to_json().values()), key
    assert "exp(z_i / T)" in explain("inside_temperature").formula
    with pytest.raises(KeyError, match="known"):
        explain("nope")
