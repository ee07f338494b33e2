"""Constrained decoding: masks against llguidance itself, outputs against re / jsonschema / ast,
rollback through branches, refusals of forced tokens, and one-line errors."""

from __future__ import annotations

import ast
import json
import re

import jsonschema
import llguidance
import llguidance.hf
import llguidance.numpy
import numpy as np
import pytest
import torch
from constraint_sources import ARITHMETIC, PHONE
from llguidance import LLMatcher

from tokentui.engine import constraints
from tokentui.engine.errors import ConstraintError
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.session import Session

EOS = 2
PERSON = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "pet": {"enum": ["cat", "dog", "none"]},
    },
    "required": ["name", "age", "pet"],
    "additionalProperties": False,
}


def build(kind, text, backend):
    return constraints.build(kind, text, backend.tokenizer, backend.vocab_size,
                             eos_ids=backend.eos_token_ids)


def ids_of(tokenizer, text):
    return tokenizer(text, add_special_tokens=False).input_ids


def completion(session):
    """The completion text without a trailing end-of-text token."""
    ids = session.current.ids
    if ids and ids[-1] == EOS:
        ids = ids[:-1]
    return session.tokenizer.decode(ids)


@pytest.fixture(scope="module")
def lltok(tokenizer):
    """llguidance's own view of the tokenizer: the reference the masks are checked against."""
    return llguidance.hf.from_tokenizer(tokenizer)


def reference_mask(lltok, grammar, prefix, vocab):
    """The allowed set by llguidance's own numpy helpers, after consuming ``prefix``."""
    matcher = LLMatcher(lltok, grammar, log_level=0)
    assert matcher.consume_tokens(list(prefix))
    bitmask = llguidance.numpy.allocate_token_bitmask(1, lltok.vocab_size)
    llguidance.numpy.fill_next_token_bitmask(matcher, bitmask)
    logits = np.zeros((1, vocab), dtype=np.float32)
    llguidance.numpy.apply_token_bitmask_inplace(logits, bitmask)
    return torch.from_numpy(np.isfinite(logits[0]))


# ----- masks ------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["", "1", "123", "123-", "123-456"])
def test_mask_equals_llguidance_numpy_helpers(real_backend, tokenizer, lltok, prefix):
    c = build("regex", PHONE, real_backend)
    ids = ids_of(tokenizer, prefix)
    c.sync(ids)
    mine = c.allowed_mask(real_backend.vocab_size)
    ref = reference_mask(lltok, LLMatcher.grammar_from_regex(PHONE), ids, real_backend.vocab_size)
    assert mine.dtype == torch.bool and mine.shape == (real_backend.vocab_size,)
    assert torch.equal(mine, ref)
    assert bool(mine[EOS]) is False  # the number is never complete at these points


def test_eos_allowed_exactly_when_accepting_and_mask_resized(real_backend, tokenizer):
    c = build("regex", "[0-9]+", real_backend)
    c.sync([])
    assert not bool(c.allowed_mask(real_backend.vocab_size)[EOS])
    c.sync(ids_of(tokenizer, "12"))
    mask = c.allowed_mask(real_backend.vocab_size)
    assert bool(mask[EOS]) and c.is_accepting() and not c.is_finished()
    assert int(mask.sum()) == 11  # ten digits and the end
    padded = c.allowed_mask(real_backend.vocab_size + 64)
    assert padded.shape == (real_backend.vocab_size + 64,) and not padded[-64:].any()
    assert torch.equal(c.allowed_mask(1000), mask[:1000])


# ----- every output matches --------------------------------------------------------------
RUNS = [(1, 0.0), (2, 0.8), (3, 1.2)]
"""(seed, temperature): greedy, warm, hot."""


def run(backend, prompt, constraint, seed, temperature, n):
    params = SamplingParams(seed=seed, temperature=temperature, max_new_tokens=n)
    session = Session(backend, PromptSpec(prompt), params=params, constraint=constraint)
    steps = list(session.generate())
    assert steps[-1].finish_reason in {"eos", "constraint"}, completion(session)
    for step in steps:
        chosen = [c for c in step.distribution.candidates if c.token.id == step.token.id]
        assert all(c.valid for c in chosen)
        assert step.distribution.n_valid < backend.vocab_size
    return session, steps


@pytest.mark.parametrize("pattern,prompt", [
    (PHONE, "Give me a phone number."),
    (r"(cat|dog|bird)s? (run|sleep|sing)", "What do animals do?"),
])
def test_regex_outputs_fullmatch(real_backend, pattern, prompt):
    c = build("regex", pattern, real_backend)
    for seed, temperature in RUNS:
        session, _ = run(real_backend, prompt, c, seed, temperature, 16)
        assert re.fullmatch(pattern, completion(session)), completion(session)


def test_choice_outputs_are_options(real_backend):
    options = ["red", "green", "blue", "light yellow"]
    c = constraints.from_cli("choice", " | ".join(options), real_backend.tokenizer,
                             real_backend.vocab_size, eos_ids=real_backend.eos_token_ids)
    for seed, temperature in RUNS:
        session, _ = run(real_backend, "What colour is the sky?", c, seed, temperature, 8)
        assert completion(session) in options


def test_json_schema_outputs_validate(real_backend):
    c = build("json_schema", json.dumps(PERSON), real_backend)
    for seed, temperature in RUNS:
        session, steps = run(real_backend, "Describe a person as JSON.", c, seed, temperature, 64)
        jsonschema.validate(json.loads(completion(session)), PERSON)
        assert steps[-1].finish_reason == "constraint"  # the closing brace ends it


def _is_arithmetic(node: ast.AST) -> bool:
    if isinstance(node, ast.Expression):
        return _is_arithmetic(node.body)
    if isinstance(node, ast.BinOp):
        return (isinstance(node.op, ast.Add | ast.Sub | ast.Mult)
                and _is_arithmetic(node.left) and _is_arithmetic(node.right))
    return isinstance(node, ast.Constant) and type(node.value) is int and 1 <= node.value <= 999


def test_grammar_outputs_are_arithmetic(real_backend):
    c = build("grammar", ARITHMETIC, real_backend)
    for seed, temperature in RUNS:
        session, _ = run(real_backend, "Write an arithmetic expression with parentheses.", c,
                         seed, temperature, 40)
        text = completion(session)
        assert re.fullmatch(r"[0-9+\-*()]+", text), text
        assert _is_arithmetic(ast.parse(text, mode="eval")), text


def test_filters_leaving_nothing_valid_take_best_valid_by_p_base(real_backend, lltok):
    c = build("regex", "[0-9]+", real_backend)
    session = Session(real_backend, PromptSpec("Tell me a story."),
                      params=SamplingParams(seed=1, top_k=1, max_new_tokens=4), constraint=c)
    step = session.step()
    assert step.note and "constraint" in step.note
    logits = real_backend.next_logits(session.prompt_ids).logits.float()
    ref = reference_mask(lltok, LLMatcher.grammar_from_regex("[0-9]+"), [],
                         real_backend.vocab_size)
    assert not bool(ref[int(logits.argmax())])  # the favourite was refused
    best_valid = int(torch.where(ref, logits, torch.full_like(logits, -torch.inf)).argmax())
    assert step.token.id == best_valid and step.p_final == pytest.approx(1.0)


# ----- finishing ---------------------------------------------------------------------------
def test_finished_constraint_ends_generation(tiny_backend, tokenizer):
    c = build("regex", "(yes|no)", tiny_backend)
    session = Session(tiny_backend, PromptSpec("Answer."), params=SamplingParams(seed=3),
                      constraint=c)
    session.force_text("yes")
    assert session.current.finish_reason == "constraint" and c.is_finished()
    assert list(session.generate()) == []
    assert c.why_invalid(ids_of(tokenizer, "no")[0]) == "the regex is complete: only the end may follow"


def test_eos_only_when_complete(tiny_backend, tokenizer):
    c = build("regex", "[0-9]+", tiny_backend)
    session = Session(tiny_backend, PromptSpec("Count."), params=SamplingParams(seed=3),
                      constraint=c)
    with pytest.raises(ConstraintError, match="not complete"):
        session.force_token(EOS)
    assert c.why_invalid(EOS, []) == "the regex is not complete yet"
    session.force_text("42")
    step = session.force_token(EOS)
    assert step.finish_reason == "eos" and completion(session) == "42"


# ----- branches and rollback ---------------------------------------------------------------
def assert_in_step(c, backend, lltok, grammar, ids):
    """The session's constraint agrees with a matcher built from scratch for ``ids``."""
    c.sync(ids)
    assert torch.equal(c.allowed_mask(backend.vocab_size),
                       reference_mask(lltok, grammar, ids, backend.vocab_size))


def test_rollback_follows_rewind_delete_branch_and_switch(tiny_backend, lltok):
    pattern = r"[a-z]{1,8}( [a-z]{1,8}){1,4}\."
    grammar = LLMatcher.grammar_from_regex(pattern)
    c = build("regex", pattern, tiny_backend)
    session = Session(tiny_backend, PromptSpec("Write words."),
                      params=SamplingParams(seed=5, temperature=1.0, top_p=1.0, max_new_tokens=40),
                      constraint=c)
    original = list(session.generate(12))
    main_ids = session.current.ids
    assert len(main_ids) >= 8

    session.delete_last()
    assert_in_step(c, tiny_backend, lltok, grammar, session.current.ids)

    k = 5
    alternative = next(cand.token.id for cand in original[k].distribution.candidates
                       if cand.valid and cand.token.id != original[k].token.id)
    session.branch_from(k, alternative)
    list(session.generate())
    branch = session.current
    assert branch.ids[:k] == main_ids[:k] and branch.ids[k] == alternative
    assert branch.finish_reason in {"eos", "constraint"}
    assert re.fullmatch(pattern, completion(session)), completion(session)

    invalid = next(cand.token.id for cand in original[k].distribution.candidates if not cand.valid)
    with pytest.raises(ConstraintError, match="forbids"):
        session.branch_from(k, invalid)
    assert session.current is branch and len(session.branches) == 2

    session.switch(0)  # back to main, rewound: generation continues validly from there
    session.truncate(4)
    assert_in_step(c, tiny_backend, lltok, grammar, session.current.ids)
    list(session.generate())
    assert re.fullmatch(pattern, completion(session)), completion(session)
    session.switch(branch.id)
    assert_in_step(c, tiny_backend, lltok, grammar, session.current.ids)


def test_forced_invalid_text_is_refused_naming_the_piece(tiny_backend):
    c = build("regex", PHONE, tiny_backend)
    session = Session(tiny_backend, PromptSpec("Phone?"), params=SamplingParams(seed=1),
                      constraint=c)
    session.force_text("555")
    with pytest.raises(ConstraintError) as err:
        session.force_text("-12a")
    message = str(err.value)
    assert "'a'" in message and "after '555-12'" in message and "\n" not in message
    assert session.current.ids == ids_of(tiny_backend.tokenizer, "555")  # nothing appended
    with pytest.raises(ConstraintError, match="forbids 'x' at the start"):
        Session(tiny_backend, PromptSpec("Phone?"), constraint=c).force_text("x")
    assert c.why_invalid(ids_of(tiny_backend.tokenizer, "x")[0], ids_of(tiny_backend.tokenizer, "555")) \
        == "the regex requires '-' next"


def test_branch_that_breaks_a_new_constraint_says_so(tiny_backend, tokenizer):
    session = Session(tiny_backend, PromptSpec("Hello."), params=SamplingParams(seed=2))
    session.force_text("hello")
    session.set_constraint(build("regex", "[0-9]+", tiny_backend))
    with pytest.raises(ConstraintError, match="breaks the regex at completion token 0"):
        session.peek()
    session.truncate(0)
    assert session.peek().n_valid == 10  # the ten digits; the end is not allowed yet


# ----- errors and labels -----------------------------------------------------------------------
@pytest.mark.parametrize("kind,text,needle", [
    ("regex", "(", "invalid regex '(': unclosed group"),
    ("regex", "a{3,1}", "invalid repetition count range"),
    ("grammar", "start: foo", 'line 1, column 8: unknown name: "foo"'),
    ("grammar", "   ", "the grammar is empty"),
    ("json_schema", "{bad", "not valid JSON"),
    ("json_schema", '{"type": "objec"}', "objec"),
    ("json_schema", "[1, 2]", "schema must be an object"),
    ("choice", "\n \n", "at least one option"),
    ("xml", "<a/>", "unknown constraint kind"),
])
def test_invalid_sources_give_one_line_errors(tiny_backend, kind, text, needle):
    with pytest.raises(ConstraintError) as err:
        build(kind, text, tiny_backend)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_descriptions_and_cli_splitting(tiny_backend):
    tok, vocab = tiny_backend.tokenizer, tiny_backend.vocab_size
    assert constraints.from_cli("choice", "yes| no |yes", tok, vocab).description == "choice: yes | no"
    assert constraints.from_cli("choices_file", "a b\n\nc\n", tok, vocab).description == "choice: a b | c"
    assert build("regex", PHONE, tiny_backend).description == f"regex {PHONE}"
    assert build("grammar", ARITHMETIC, tiny_backend).description == "grammar (5 lines)"
    assert build("json_schema", json.dumps(PERSON), tiny_backend).description == \
        "JSON schema (object: name, age, pet)"
