"""Scoring a given text: numbers against a plain transformers forward, windows, prefix, cancel."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from tokentui.engine.analysis import score as score_mod
from tokentui.engine.analysis.score import score_text, windows
from tokentui.engine.errors import ContextOverflowError, ParameterError, PromptError
from tokentui.engine.prompts import encode_text

TEXT = ("The quick brown fox jumps over the lazy dog.\n"
        "Then it sat down, looked at the river, and thought about zebras.\n")


def plain_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids]), use_cache=False).logits[0].float()


def test_probabilities_match_transformers(real_backend, tokenizer):
    ids = encode_text(tokenizer, TEXT)
    result = score_text(real_backend, ids, top_n=5)
    logits = plain_logits(real_backend.model, ids)
    probs = torch.softmax(logits, dim=-1)
    assert len(result.tokens) == len(ids) == result.n_tokens
    first = result.tokens[0]
    assert first.p is None and first.rank is None and first.surprisal_bits is None
    nll = []
    for tok in result.tokens[1:]:
        row = probs[tok.position - 1]
        expect = float(row[ids[tok.position]])
        assert tok.id == ids[tok.position]
        assert tok.p == pytest.approx(expect, abs=5e-4)
        assert tok.rank == int((logits[tok.position - 1] > logits[tok.position - 1, tok.id]).sum()) + 1
        entropy = float(-(row * torch.log2(row.clamp_min(1e-45))).sum())
        assert tok.entropy_bits == pytest.approx(entropy, abs=5e-4)
        top = torch.topk(row, 5)
        assert [c.id for c in tok.top] == top.indices.tolist()
        assert [c.p_base for c in tok.top] == pytest.approx(top.values.tolist(), abs=5e-4)
        assert tok.surprisal_bits == pytest.approx(-math.log2(expect), rel=1e-3)
        nll.append(-math.log(expect))
    # perplexity computed independently: torch's cross entropy over the same positions
    ce = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]))
    assert result.perplexity == pytest.approx(math.exp(float(ce)), rel=1e-4)
    assert result.perplexity == pytest.approx(math.exp(sum(nll) / len(nll)), rel=1e-4)
    assert result.bits_per_token == pytest.approx(float(ce) / math.log(2), rel=1e-4)
    assert result.window is None and result.stride is None


def test_prefix_conditions_without_being_scored(tiny_backend, tokenizer):
    prefix = encode_text(tokenizer, "A note about animals:")
    ids = encode_text(tokenizer, " the fox and the dog")
    result = score_text(tiny_backend, ids, prefix_ids=prefix)
    logits = plain_logits(tiny_backend.model, prefix + ids)
    probs = torch.softmax(logits, dim=-1)
    assert result.prefix_tokens == len(prefix)
    assert [t.position for t in result.tokens] == list(range(len(ids)))
    for tok in result.tokens:  # the first text token has the prefix before it: scored
        at = len(prefix) + tok.position
        assert tok.p == pytest.approx(float(probs[at - 1, ids[tok.position]]), abs=5e-4)


def test_one_window_equals_unwindowed_exactly(tiny_backend, tokenizer):
    ids = encode_text(tokenizer, TEXT)
    plain = score_text(tiny_backend, ids)
    windowed = score_text(tiny_backend, ids, window=256, stride=100)
    assert windowed.window == 256 and windowed.stride == 100
    assert windowed.tokens == plain.tokens
    assert windowed.perplexity == plain.perplexity


def test_windows_give_each_token_its_stated_context(tiny_backend, tokenizer):
    ids = encode_text(tokenizer, TEXT * 3)
    size, stride = 16, 6
    assert len(ids) > 3 * size
    result = score_text(tiny_backend, ids, window=size, stride=stride, top_n=3)
    assert [t.position for t in result.tokens] == list(range(len(ids)))
    spans = windows(len(ids), size, stride)
    checked = 0
    for begin, end, first in spans:
        logits = plain_logits(tiny_backend.model, ids[begin:end])
        probs = torch.softmax(logits, dim=-1)
        for pos in range(max(first, 1), end):
            before = pos - begin
            assert before >= min(size - stride, pos)  # the stated guarantee
            tok = result.tokens[pos]
            assert tok.p == pytest.approx(float(probs[before - 1, ids[pos]]), abs=5e-4)
            checked += 1
    assert checked == len(ids) - 1


def test_chunked_window_matches_one_forward(tiny_backend, tokenizer, monkeypatch):
    ids = encode_text(tokenizer, TEXT * 2)
    whole = score_text(tiny_backend, ids)
    monkeypatch.setattr(score_mod, "CHUNK_FLOATS", tiny_backend.vocab_size * 7)  # 7 positions
    chunked = score_text(tiny_backend, ids)
    for a, b in zip(whole.tokens[1:], chunked.tokens[1:], strict=True):
        assert b.p == pytest.approx(a.p, rel=1e-4, abs=1e-6)
        assert b.rank == a.rank
    assert chunked.perplexity == pytest.approx(whole.perplexity, rel=1e-5)


def test_bad_input_raises_one_line_errors(tiny_backend, tokenizer):
    with pytest.raises(PromptError):
        score_text(tiny_backend, [])
    long = encode_text(tokenizer, TEXT * 20)
    assert len(long) > 256
    with pytest.raises(ContextOverflowError, match="--stride"):
        score_text(tiny_backend, long)
    with pytest.raises(ParameterError):
        score_text(tiny_backend, long, window=512)
    with pytest.raises(ParameterError):
        score_text(tiny_backend, long, window=32, stride=32)
    result = score_text(tiny_backend, long, stride=128)  # the window defaults to the context
    assert result.window == 256 and len(result.tokens) == len(long)


def test_cancel_keeps_what_is_scored(tiny_backend, tokenizer):
    ids = encode_text(tokenizer, TEXT * 3)
    stop = threading.Event()
    seen = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        if done >= 20:
            stop.set()

    full = score_text(tiny_backend, ids, window=16, stride=8)
    part = score_text(tiny_backend, ids, window=16, stride=8, progress=progress, stop_event=stop)
    assert part.cancelled and not full.cancelled
    assert 20 <= len(part.tokens) < len(ids)
    assert part.tokens == full.tokens[:len(part.tokens)]
    assert seen == sorted(seen) and seen[-1] == len(part.tokens)


def test_lines_and_surprises(tiny_backend, tokenizer):
    ids = encode_text(tokenizer, TEXT)
    result = score_text(tiny_backend, ids)
    lines = result.lines()
    assert [ln.text for ln in lines] == TEXT.rstrip("\n").split("\n")
    assert sum(ln.n_scored for ln in lines) == len(ids) - 1
    top = result.surprises(3)
    bits = sorted((t.surprisal_bits for t in result.scored), reverse=True)
    assert [t.surprisal_bits for t in top] == bits[:3]
    data = result.to_json()
    assert data["n_scored"] == len(ids) - 1 and data["tokens"][0]["p"] is None


def test_load_scored_makes_given_steps_that_branch(tiny_session, tokenizer):
    session = tiny_session
    ids = encode_text(tokenizer, TEXT)
    result = score_text(session.backend, ids, top_n=8)
    forwards = session.backend.forward_tokens
    branch = session.load_scored([], result)
    assert session.backend.forward_tokens == forwards  # no per-token forward to load it
    assert session.prompt_ids == ids[:1] and branch.ids == ids[1:]
    for step, tok in zip(branch.steps, result.tokens[1:], strict=True):
        assert step.how == "forced" and step.note == "scored"
        assert step.p_base == step.p_final == tok.p and step.distribution.candidates == tok.top
        assert step.entropy == tok.entropy_bits
    # branching at a scored token: the session's own forward agrees with the batched pass
    at = 5
    alt = next(c for c in branch.steps[at].candidates if c.id != branch.steps[at].token.id)
    new = session.branch_from(at, alt.id)
    assert new.index == at and new.p_base == pytest.approx(alt.p_base, abs=5e-4)
    assert session.current.steps[:at] == branch.steps[:at]
    more = list(session.generate(2))
    assert len(more) == 2 and len(session.current) == at + 3
