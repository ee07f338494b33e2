"""The filter pipeline against transformers' own logits processors on the real model."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import (
    LogitsProcessorList,
    MinPLogitsWarper,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from tokentui.engine import sampling
from tokentui.engine.errors import ParameterError
from tokentui.engine.params import SamplingParams, apply_preset
from tokentui.engine.results import Token


@pytest.fixture(scope="module")
def real_logits(bundled):
    """Next-token logits for a real prompt, plus its ids."""
    tok = bundled.tokenizer
    ids = tok("The quick brown fox jumps over the lazy dog. The quick brown").input_ids
    with torch.no_grad():
        logits = bundled.model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    return logits, ids


def hf_pipeline(params: SamplingParams) -> LogitsProcessorList:
    procs = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if params.temperature not in (0.0, 1.0):
        procs.append(TemperatureLogitsWarper(params.temperature))
    if params.top_k:
        procs.append(TopKLogitsWarper(params.top_k))
    if params.top_p < 1.0:
        procs.append(TopPLogitsWarper(params.top_p))
    if params.min_p > 0:
        procs.append(MinPLogitsWarper(params.min_p))
    return procs


CASES = [
    SamplingParams(),
    SamplingParams(temperature=1.0, top_p=1.0, repetition_penalty=1.0),
    SamplingParams(temperature=0.5, top_k=5, top_p=1.0, repetition_penalty=1.3),
    SamplingParams(temperature=1.3, top_k=50, top_p=0.9, min_p=0.05, repetition_penalty=1.1),
    SamplingParams(temperature=0.9, top_p=0.5, min_p=0.2, repetition_penalty=0.9),
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: f"T{p.temperature}-k{p.top_k}-p{p.top_p}-m{p.min_p}")
def test_p_final_matches_transformers_processors(real_logits, params):
    logits, ids = real_logits
    expected_scores = hf_pipeline(params)(torch.tensor([ids]), logits[None].clone())[0]
    expected = torch.softmax(expected_scores, dim=-1)
    got = sampling.process(logits, ids, [], params)
    assert torch.allclose(got.p_final, expected, atol=1e-6)
    assert torch.equal(got.kept, torch.isfinite(expected_scores))
    assert torch.allclose(got.p_base, torch.softmax(logits, -1), atol=1e-7)
    assert got.p_final.sum().item() == pytest.approx(1.0, abs=1e-4)


def test_presence_and_frequency_penalties_follow_openai_definition(real_logits):
    logits, ids = real_logits
    completion = [ids[-1], ids[-1], ids[-2]]
    params = SamplingParams(temperature=1.0, top_p=1.0, repetition_penalty=1.0,
                            presence_penalty=0.5, frequency_penalty=0.25)
    got = sampling.process(logits, ids + completion, completion, params)
    expected = logits.clone()
    for tid in set(completion):
        count = completion.count(tid)
        expected[tid] -= 0.25 * count + 0.5 * (count > 0)
    assert torch.allclose(got.p_final, torch.softmax(expected, -1), atol=1e-6)
    # Prompt tokens that are not in the completion are not penalised.
    assert got.scores[ids[0]].item() == pytest.approx(logits[ids[0]].item()) or ids[0] in completion


def test_constraint_mask_renormalises_over_kept_and_valid(real_logits):
    logits, ids = real_logits
    params = SamplingParams(temperature=1.0, top_p=0.9, repetition_penalty=1.0)
    valid = torch.zeros_like(logits, dtype=torch.bool)
    top = torch.topk(logits, 6).indices
    valid[top[1:]] = True  # forbid the favourite
    got = sampling.process(logits, ids, [], params, valid)
    assert got.p_final[top[0]].item() == 0.0
    allowed = got.kept & valid
    assert got.p_final[allowed].sum().item() == pytest.approx(1.0, abs=1e-4)
    assert torch.all(got.p_final[~allowed] == 0)


def test_no_valid_kept_falls_back_to_best_valid_by_p_base(real_logits):
    logits, ids = real_logits
    params = SamplingParams(temperature=1.0, top_k=1, top_p=1.0, repetition_penalty=1.0)
    order = torch.argsort(logits, descending=True)
    valid = torch.zeros_like(logits, dtype=torch.bool)
    valid[order[3]] = True
    valid[order[7]] = True
    got = sampling.process(logits, ids, [], params, valid)
    assert got.no_valid_kept
    assert int(got.p_final.argmax()) == int(order[3])
    assert sampling.select(got, greedy=False, seed=1, index=0) == int(order[3])


def test_seeded_selection_is_keyed_by_seed_and_index(real_logits):
    logits, ids = real_logits
    processed = sampling.process(logits, ids, [], SamplingParams(temperature=1.5, top_p=1.0))
    draws = [sampling.select(processed, greedy=False, seed=11, index=i) for i in range(30)]
    again = [sampling.select(processed, greedy=False, seed=11, index=i) for i in range(30)]
    other = [sampling.select(processed, greedy=False, seed=12, index=i) for i in range(30)]
    assert draws == again
    assert draws != other
    assert len(set(draws)) > 1
    assert all(processed.p_final[d] > 0 for d in draws)


def test_sampling_frequencies_follow_p_final(real_logits):
    logits, ids = real_logits
    processed = sampling.process(logits, ids, [], SamplingParams(temperature=1.0, top_k=3, top_p=1.0))
    draws = [sampling.select(processed, greedy=False, seed=5, index=i) for i in range(3000)]
    for tid in torch.nonzero(processed.p_final).squeeze(-1).tolist():
        freq = draws.count(tid) / len(draws)
        assert freq == pytest.approx(processed.p_final[tid].item(), abs=0.03)


def test_greedy_is_argmax_and_temperature_zero_means_greedy(real_logits):
    logits, ids = real_logits
    params = SamplingParams(temperature=0.0)
    assert params.is_greedy
    processed = sampling.process(logits, ids, [], params)
    assert sampling.select(processed, greedy=True, seed=None, index=0) == int(
        torch.argmax(sampling.process(logits, ids, [], params).scores))


@pytest.mark.parametrize("field,value", [
    ("temperature", -0.1), ("temperature", math.nan), ("top_p", 0.0), ("top_p", 1.5),
    ("top_k", -1), ("min_p", 1.5), ("repetition_penalty", 0.0), ("presence_penalty", 3.0),
    ("frequency_penalty", -2.5), ("max_new_tokens", 0), ("seed", -1),
])
def test_out_of_range_parameters_are_rejected(field, value):
    with pytest.raises(ParameterError, match=field.split("_")[0]):
        SamplingParams(**{field: value})


def test_presets_apply_and_unknown_preset_is_rejected():
    base = SamplingParams(seed=4, max_new_tokens=9)
    greedy = apply_preset(base, "greedy")
    assert greedy.is_greedy and greedy.seed == 4 and greedy.max_new_tokens == 9
    assert apply_preset(base, "balanced") == base
    with pytest.raises(ParameterError, match="unknown preset"):
        apply_preset(base, "wild")


def test_params_round_trip_through_json():
    params = SamplingParams(temperature=0.3, stop=("\n\n", "END"), seed=3)
    assert SamplingParams.from_json(params.to_json()) == params


@pytest.mark.parametrize("top_p", [0.3, 0.8, 0.95, 0.999])
def test_top_p_cut_is_the_warpers_own_on_ties_too(real_logits, top_p):
    """The fast threshold cut removes exactly the warper's tokens, also when tied values sit
    on the cut (the warper's own sort order decides there)."""
    logits, _ = real_logits
    warper = TopPLogitsWarper(top_p)
    # Real logits, then the same logits rounded so that many values tie.
    for scores in (logits.clone(), (logits * 4).round() / 4):
        expected = ~torch.isfinite(warper(None, scores[None].clone())[0])
        assert torch.equal(sampling.top_p_removed(scores, top_p), expected)
    # Every value tied: the cut falls inside one run of equals.
    flat = torch.zeros(1000)
    expected = ~torch.isfinite(warper(None, flat[None].clone())[0])
    assert 0 < int(expected.sum()) < 1000
    assert torch.equal(sampling.top_p_removed(flat, top_p), expected)


@pytest.mark.parametrize("params", CASES[:3], ids=["default", "plain", "top-k"])
def test_entropies_are_the_textbook_formula(real_logits, params):
    """``entropy`` of p_base and ``entropy_final`` of p_final: -sum p log2 p over p > 0."""
    logits, ids = real_logits

    def bits(p):
        p = p[p > 0].double()
        return float(-(p * torch.log2(p)).sum())

    processed = sampling.process(logits, ids, [], params)
    dist, _ = sampling.summarize(processed, lambda i: Token(id=i, text=str(i)), 10)
    assert dist.entropy == pytest.approx(bits(torch.softmax(logits.double(), -1)), abs=1e-4)
    assert dist.entropy_final == pytest.approx(bits(processed.p_final), abs=1e-4)
    if params.top_k == 5:
        assert 0 < dist.entropy_final <= math.log2(5) + 1e-6
