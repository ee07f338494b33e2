"""Two models in lockstep: the numbers against transformers' own full distributions, the
driver, branching in step, and the tokenizer check."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import make_tiny_loaded

from tokentui.engine.analysis.lockstep import Lockstep, TokenizerMismatchError, check_tokenizers
from tokentui.engine.backends.local import LocalBackend
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec

GREEDY = SamplingParams(greedy=True, max_new_tokens=6)
LN2 = math.log(2.0)


@pytest.fixture(scope="module")
def tiny_other(tokenizer):
    """A second tiny random model with the same vocabulary and other weights."""
    return make_tiny_loaded(tokenizer, seed=1)


def reference(model, ids: list[int], n_prompt: int) -> torch.Tensor:
    """transformers' log-probabilities for every completion position, one uncached forward."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0]
    return torch.log_softmax(logits.double(), dim=-1)[n_prompt - 1:len(ids) - 1]


def reference_stepped(model, ids: list[int], n_prompt: int) -> torch.Tensor:
    """The same through transformers' DynamicCache, the prompt first and then one token a
    forward (in bfloat16 a batched forward differs from this by ~1e-2 in probability)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    rows = []
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids[:n_prompt]]), past_key_values=cache, use_cache=True)
        rows.append(out.logits[0, -1])
        for t in ids[n_prompt:-1]:
            out = model(input_ids=torch.tensor([[t]]), past_key_values=cache, use_cache=True)
            rows.append(out.logits[0, -1])
    return torch.log_softmax(torch.stack(rows).double(), dim=-1)


def kl_bits(lp: torch.Tensor, lq: torch.Tensor) -> float:
    """KL(p || q) in bits by torch's own kl_div."""
    return float(F.kl_div(lq, lp, log_target=True, reduction="sum")) / LN2


def js_bits(lp: torch.Tensor, lq: torch.Tensor) -> float:
    lm = torch.log(0.5 * (lp.exp() + lq.exp()))
    return 0.5 * (kl_bits(lp, lm) + kl_bits(lq, lm))


def rank_ok(rank: int | None, lp: torch.Tensor, t: int, eps: float = 1e-4) -> bool:
    """``rank`` is ``t``'s rank under ``lp`` up to ties within ``eps`` (a cached forward and an
    uncached one differ by about 1e-5, which can swap near-equal tokens deep in the tail)."""
    return rank is not None and int((lp > lp[t] + eps).sum()) + 1 <= rank <= int((lp > lp[t] - eps).sum()) + 1


def check_against_reference(ls: Lockstep, model_a, model_b, tol: float, *, ref=reference) -> None:
    ids = ls.prompt_ids + ls.ids
    ra = ref(model_a, ids, len(ls.prompt_ids))
    rb = ref(model_b, ids, len(ls.prompt_ids))
    assert len(ls.divergences) == len(ls.ids) == ra.shape[0]
    for d, la, lb in zip(ls.divergences, ra, rb, strict=True):
        assert d.kl_ab == pytest.approx(kl_bits(la, lb), rel=tol, abs=tol)
        assert d.kl_ba == pytest.approx(kl_bits(lb, la), rel=tol, abs=tol)
        assert d.js == pytest.approx(js_bits(la, lb), rel=tol, abs=tol)
        top_a = torch.topk(la, 10).indices.tolist()
        top_b = torch.topk(lb, 10).indices.tolist()
        assert d.overlap == len(set(top_a) & set(top_b))
        assert [c.token.id for c in d.top_a] == top_a
        assert [c.token.id for c in d.top_b] == top_b
        t = d.token.id
        assert d.p_a == pytest.approx(float(la[t].exp()), rel=tol, abs=1e-7)
        assert d.p_b == pytest.approx(float(lb[t].exp()), rel=tol, abs=1e-7)
        assert rank_ok(d.rank_b, lb, t) and rank_ok(d.rank_a, la, t)
        for c in d.top_a:  # each candidate's rank under the other model
            assert rank_ok(c.rank_other, lb, c.token.id)
        for c in d.top_b:
            assert rank_ok(c.rank_other, la, c.token.id)
        assert not d.estimated


def test_numbers_match_both_full_distributions(tiny_loaded, tiny_other) -> None:
    ls = Lockstep(LocalBackend(tiny_loaded), LocalBackend(tiny_other), PromptSpec("Tell me a story."),
                  params=GREEDY)
    steps = list(ls.generate())
    assert len(steps) == 6
    check_against_reference(ls, tiny_loaded.model, tiny_other.model, tol=1e-4)
    assert all(d.kl_ab > 1 and d.kl_ba > 1 for d in steps)  # two random models disagree a lot
    # A drives greedily: every token is A's first choice.
    assert all(d.rank_a == 1 and d.driver == "a" for d in steps)
    assert ls.a.current.ids == ls.b.current.ids


def test_driver_b_picks_with_b_and_the_driver_swaps(tiny_loaded, tiny_other) -> None:
    ls = Lockstep(LocalBackend(tiny_loaded), LocalBackend(tiny_other), PromptSpec("Tell me a story."),
                  params=GREEDY, driver="b")
    b_steps = list(ls.generate(3))
    assert all(d.rank_b == 1 and d.driver == "b" for d in b_steps)
    assert ls.swap_driver() == "a"
    a_steps = list(ls.generate(3))
    assert all(d.rank_a == 1 and d.driver == "a" for d in a_steps)
    assert any(d.rank_b != 1 for d in a_steps)  # B would have said something else
    check_against_reference(ls, tiny_loaded.model, tiny_other.model, tol=1e-4)


def test_branching_keeps_both_in_step_and_reuses_the_caches(tiny_loaded, tiny_other) -> None:
    a, b = LocalBackend(tiny_loaded), LocalBackend(tiny_other)
    ls = Lockstep(a, b, PromptSpec("Tell me a story."), params=GREEDY)
    list(ls.generate(6))
    main = ls.divergences
    alt = main[2].top_a[1].token.id
    fed_a, fed_b = a.forward_tokens, b.forward_tokens
    d = ls.branch_from(2, alt)
    assert d.index == 2 and d.token.id == alt and d.how == "forced"
    assert ls.a.current_id == ls.b.current_id != 0
    # Only the new token went through each model: the shared prefix came from the caches.
    assert (a.forward_tokens - fed_a, b.forward_tokens - fed_b) == (1, 1)
    list(ls.generate(3))
    assert ls.a.current.ids == ls.b.current.ids
    assert ls.ids[:2] == [s.token.id for s in main[:2]] and ls.ids[2] == alt
    assert ls.divergences[:2] == main[:2]
    check_against_reference(ls, tiny_loaded.model, tiny_other.model, tol=1e-4)
    ls.switch(0)
    assert ls.divergences == main
    ls.truncate(4)
    assert len(ls.divergences) == 4 and len(ls.a.current) == len(ls.b.current) == 4
    ls.delete_last()
    assert len(ls.divergences) == 3 and ls.b.current.ids == ls.a.current.ids


def test_reading_a_given_text(tiny_loaded, tiny_other, tokenizer) -> None:
    ls = Lockstep(LocalBackend(tiny_loaded), LocalBackend(tiny_other), PromptSpec("Read this:"),
                  params=GREEDY)
    text = " The cat sat on the mat."
    divs = list(ls.force_text(text))
    assert [d.token.id for d in divs] == tokenizer(text, add_special_tokens=False).input_ids
    assert all(d.how == "forced" for d in divs)
    check_against_reference(ls, tiny_loaded.model, tiny_other.model, tol=1e-4)
    s = ls.summary()
    assert s.steps == len(divs)
    assert s.max_js == max(d.js for d in divs) and divs[s.max_js_at].js == s.max_js
    assert s.mean_kl_ab == pytest.approx(sum(d.kl_ab for d in divs) / len(divs))


def test_bundled_model_against_itself_gives_zero(bundled) -> None:
    ls = Lockstep(LocalBackend(bundled), LocalBackend(bundled), PromptSpec("What is the capital of France?"),
                  params=GREEDY)
    steps = list(ls.generate(4))
    assert len(steps) == 4
    for d in steps:
        assert d.kl_ab == 0.0 and d.kl_ba == 0.0 and d.js == 0.0
        assert d.overlap == 10 and d.rank_a == d.rank_b == 1 and d.p_a == d.p_b
        assert [c.rank_other for c in d.top_a] == list(range(1, 11))


def test_fp32_against_bf16_gives_a_small_positive_kl(bundled) -> None:
    from tokentui.engine import models

    half = models.load(dtype="bfloat16", device="cpu")
    assert next(half.model.parameters()).dtype == torch.bfloat16
    ls = Lockstep(LocalBackend(bundled), LocalBackend(half), PromptSpec("What is the capital of France?"),
                  params=GREEDY)
    steps = list(ls.generate(8))
    check_against_reference(ls, bundled.model, half.model, tol=1e-3, ref=reference_stepped)
    mean_kl = sum(d.kl_ab for d in steps) / len(steps)
    print(f"fp32 vs bf16: mean KL(A||B) {mean_kl:.5f} bits, mean KL(B||A) "
          f"{sum(d.kl_ba for d in steps) / len(steps):.5f}, max JS {max(d.js for d in steps):.5f}")
    assert 0 < mean_kl < 0.05
    assert all(d.kl_ab > 0 for d in steps)
    assert sum(d.overlap for d in steps) / len(steps) >= 8


def test_different_tokenizers_are_refused_naming_the_first_difference(tokenizer, tmp_path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel()
    raw.train_from_iterator(["the cat sat on the mat"] * 20,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>"]))
    other = PreTrainedTokenizerFast(tokenizer_object=raw)
    mine, theirs = tokenizer.convert_ids_to_tokens, other.convert_ids_to_tokens
    first = next(i for i in range(len(other)) if mine(i) != theirs(i))
    with pytest.raises(TokenizerMismatchError) as err:
        check_tokenizers(tokenizer, other)
    message = str(err.value)
    assert "\n" not in message
    assert f"at id {first}," in message and repr(mine(first)) in message and repr(theirs(first)) in message
    check_tokenizers(tokenizer, tokenizer)  # the same vocabulary passes


def completed_by_hand(p: dict[int, float], listed: set[int], union: list[int]) -> list[float]:
    """The estimate's rule in plain floats: listed ids exact; an unlisted id of the union gets
    min(smallest listed, leftover / (unlisted + 1)); the bucket holds what is left."""
    rest = max(0.0, 1.0 - sum(p[i] for i in listed))
    missing = [i for i in union if i not in listed]
    share = min(min(p[i] for i in listed), rest / (len(missing) + 1)) if missing else 0.0
    values = [p[i] if i in listed else share for i in union]
    return [*values, max(0.0, rest - share * len(missing))]


def test_a_top_n_side_gives_an_estimate_over_the_union(tiny_loaded, tiny_other) -> None:
    """B as a server returns it: its top 20 log-probabilities exact, nothing else."""
    from tokentui.engine.analysis.lockstep import divergence, token_stats

    ids = tiny_loaded.tokenizer("Once upon a time").input_ids
    la = reference(tiny_loaded.model, [*ids, 0], len(ids))[0]
    lb_full = reference(tiny_other.model, [*ids, 0], len(ids))[0]
    top_b = torch.topk(lb_full, 20).indices
    lb = torch.full_like(lb_full, -math.inf)
    lb[top_b] = lb_full[top_b]
    d = divergence(la, lb, full_a=True, full_b=False)
    assert d.estimated
    top_a = torch.topk(la, 20).indices
    union = sorted(set(top_a.tolist()) | set(top_b.tolist()))
    pa = {i: float(la[i].exp()) for i in union}
    pb = {i: float(lb_full[i].exp()) for i in top_b.tolist()}
    ca = [*(pa[i] for i in union), 1.0 - sum(pa.values())]  # A is local: exact, rest in the bucket
    cb = completed_by_hand(pb, set(pb), union)

    def kl(p: list[float], q: list[float]) -> float:
        terms = (x * math.log(x / (y if y > 0 else 1e-12)) for x, y in zip(p, q, strict=True) if x > 0)
        return sum(terms) / LN2

    m = [(x + y) / 2 for x, y in zip(ca, cb, strict=True)]
    assert d.kl_ab == pytest.approx(kl(ca, cb), rel=1e-9)
    assert d.kl_ba == pytest.approx(kl(cb, ca), rel=1e-9)
    assert d.js == pytest.approx((kl(ca, m) + kl(cb, m)) / 2, rel=1e-9)
    # A token B did not list has no probability or rank under B; a listed one has both.
    outside = next(i for i in torch.topk(la, 100).indices.tolist() if i not in pb)
    p_a, p_b, _, rank_b = token_stats(d, outside, full_a=True, full_b=False)
    assert p_b is None and rank_b is None and p_a == pytest.approx(float(la[outside].exp()))
    inside = top_b[3].item()
    assert token_stats(d, inside, full_a=True, full_b=False)[3] == 4
    for tid, _p, _r, p_other, rank_other in d.top_a:
        assert (p_other is None) == (tid not in pb) and (rank_other is None) == (tid not in pb)


TEXT = (" The cat sat on the mat and told a story about a lighthouse keeper who counted the"
        " ships, one by one, every night for twenty years.") * 3


def read_all(ls: Lockstep, ids: list[int]):
    divs, error = [], None
    try:
        for d in ls.force_ids(ids):
            divs.append(d)
    except Exception as exc:  # the context's end, as a one-line error
        error = exc
    return divs, error


def test_a_given_text_is_read_in_batched_passes_with_the_same_numbers(tiny_loaded, tiny_other,
                                                                       tokenizer, monkeypatch) -> None:
    from tokentui.engine import session as lockstep  # where the block size lives

    ids = tokenizer(TEXT, add_special_tokens=False).input_ids
    batched = Lockstep(LocalBackend(tiny_loaded), LocalBackend(tiny_other), PromptSpec("Read this:"),
                       params=GREEDY)
    fast, _ = read_all(batched, ids)
    monkeypatch.setattr(lockstep, "READ_AHEAD_TOKENS", 1)  # a pass per token, as stepping does
    stepped = Lockstep(LocalBackend(tiny_loaded), LocalBackend(tiny_other), PromptSpec("Read this:"),
                       params=GREEDY)
    slow, _ = read_all(stepped, ids)
    assert len(fast) == len(slow) == len(ids)
    for f, s in zip(fast, slow, strict=True):
        assert f.token == s.token and f.rank_a == s.rank_a and f.rank_b == s.rank_b
        for key in ("p_a", "p_b", "kl_ab", "kl_ba", "js"):
            assert getattr(f, key) == pytest.approx(getattr(s, key), rel=1e-5, abs=1e-5), key
    check_against_reference(batched, tiny_loaded.model, tiny_other.model, tol=1e-4)
    for side in ("a", "b"):
        # the prompt's pass, then one pass for the whole text (not one per token)
        assert getattr(batched, side).backend.forward_calls <= 2
        assert getattr(stepped, side).backend.forward_calls >= len(ids)


def test_a_text_past_the_context_ends_where_stepping_ends(tiny_loaded, tiny_other, tokenizer,
                                                          monkeypatch) -> None:
    from tokentui.engine import session as lockstep  # where the block size lives

    ids = tokenizer(TEXT * 4, add_special_tokens=False).input_ids
    assert len(ids) > tiny_loaded.model.config.max_position_embeddings
    fast, fast_error = read_all(Lockstep(LocalBackend(tiny_loaded), LocalBackend(tiny_other),
                                         PromptSpec("Read this:"), params=GREEDY), ids)
    monkeypatch.setattr(lockstep, "READ_AHEAD_TOKENS", 1)
    slow, slow_error = read_all(Lockstep(LocalBackend(tiny_loaded), LocalBackend(tiny_other),
                                         PromptSpec("Read this:"), params=GREEDY), ids)
    assert len(fast) == len(slow) < len(ids)
    assert type(fast_error) is type(slow_error) and "context" in str(fast_error)
    assert [d.token.id for d in fast] == [d.token.id for d in slow]
