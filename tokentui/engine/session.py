"""The branch tree: step, generate, force, delete, rewind, branch and switch.

A session owns the prompt, the sampling parameters and a tree of branches that share
prefixes. It asks its backend for each distribution and never touches torch models
directly; the local backend reuses its KV cache across rewinds and branches.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import torch

from tokentui.engine import sampling
from tokentui.engine.backends.base import Backend, BackendOutput
from tokentui.engine.chat import turn_start
from tokentui.engine.errors import ConstraintError, ContextOverflowError, SessionError
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec, TokenTable, decode, encode_prompt, encode_text
from tokentui.engine.results import Distribution, PromptTokenView, StepResult, Token

READ_AHEAD_TOKENS = 256
"""Tokens known in advance (a forced text) are read this many per batched forward..."""
READ_AHEAD_FLOATS = 1 << 24
"""...and at most this many logits (64 MB of float32) are kept between the steps."""


def read_ahead_blocks(ids: Sequence[int], vocab_size: int) -> list[list[int]]:
    """``ids`` cut into the blocks that ``Session.read_ahead`` reads in one pass each."""
    size = max(1, min(READ_AHEAD_TOKENS, READ_AHEAD_FLOATS // max(1, vocab_size)))
    return [[int(i) for i in ids[k:k + size]] for k in range(0, len(ids), size)]


PROMPT_VIEWS_KEPT = 256
"""Prompt-token views a session remembers (each is a top-N and a few scalars)."""


class Constraint(Protocol):
    """What the session needs from a constraint (implemented in ``constraints.py``)."""

    description: str

    def sync(self, completion_ids: Sequence[int]) -> None:
        """Bring the matcher to the state after these completion tokens (rolling back as needed)."""

    def allowed_mask(self, vocab_size: int) -> torch.Tensor:
        """Boolean ``(vocab,)`` mask of the tokens allowed next."""

    def is_finished(self) -> bool: ...

    def refusal(self, completion_ids: Sequence[int], new_ids: Sequence[int]) -> str | None:
        """Why appending ``new_ids`` after ``completion_ids`` is forbidden, or None if allowed."""


@dataclass(slots=True)
class Branch:
    """One path through the tree: the completion tokens taken after the prompt."""

    id: int
    name: str
    parent: int | None = None
    fork_at: int = 0
    """Completion index where this branch first differs from its parent."""
    steps: list[StepResult] = field(default_factory=list)

    @property
    def ids(self) -> list[int]:
        return [s.token.id for s in self.steps]

    @property
    def finish_reason(self) -> str | None:
        return self.steps[-1].finish_reason if self.steps else None

    def __len__(self) -> int:
        return len(self.steps)


@dataclass(frozen=True, slots=True)
class BranchInfo:
    """A branch as the branch list shows it."""

    id: int
    name: str
    parent: int | None
    fork_at: int
    length: int
    text: str
    token: Token | None
    """The token this branch took at ``fork_at``."""
    p_final: float | None
    parent_token: Token | None
    """The parent's token at ``fork_at`` (None for the root or past the parent's end)."""
    parent_p_final: float | None
    current: bool
    finish_reason: str | None


FINAL_REASONS = frozenset({"eos", "stop", "constraint"})


class Session:
    """A prompt, its sampling parameters and a tree of branches over one backend."""

    def __init__(
        self,
        backend: Backend,
        prompt: PromptSpec | None = None,
        *,
        prompt_ids: Sequence[int] | None = None,
        params: SamplingParams | None = None,
        top_n: int = 10,
        constraint: Constraint | None = None,
    ) -> None:
        self.backend = backend
        self.tokenizer = backend.tokenizer
        self.tokens = TokenTable(self.tokenizer)
        self.params = params or SamplingParams()
        self.top_n = top_n
        self._prompt_views: dict[tuple[int, SamplingParams], PromptTokenView] = {}
        """``prompt_token`` results by (position, parameters): a top-N each, at most
        ``PROMPT_VIEWS_KEPT``."""
        self.constraint = constraint
        self.default_seed = random.randrange(2**31)
        """Used for sampled draws when ``params.seed`` is None (recorded in every step)."""
        self.prompt = prompt or PromptSpec(text="")
        self.prompt_ids: list[int] = []
        self.branches: dict[int, Branch] = {}
        self.current_id = 0
        self.next_branch_id = 0
        """The id the next branch gets (ids are never reused, so files and views stay stable)."""
        self.messages: list[dict[str, str]] = []
        """The chat conversation as recorded in session files (``chat.py`` keeps it)."""
        self._peeked: tuple[tuple[int, ...], Any, sampling.Processed, BackendOutput] | None = None
        self.last_attention: torch.Tensor | None = None
        """``(layers, heads, seq)`` for the newest step, when it was asked for."""
        self.last_output: tuple[tuple[int, ...], BackendOutput] | None = None
        """The newest step's backend output, keyed by the ids it read (for ``inside.py``)."""
        self.lock = threading.RLock()
        self.set_prompt(self.prompt, prompt_ids=prompt_ids)

    # ----- prompt and parameters -------------------------------------------------
    def set_prompt(self, prompt: PromptSpec, *, prompt_ids: Sequence[int] | None = None) -> None:
        """Replace the prompt; every branch is discarded (the caller asks first)."""
        ids = list(prompt_ids) if prompt_ids is not None else encode_prompt(self.tokenizer, prompt)
        max_ctx = self.backend.capabilities.max_context
        if max_ctx is not None and len(ids) >= max_ctx:
            raise ContextOverflowError(
                f"the prompt has {len(ids)} tokens but the model's context is {max_ctx}"
            )
        with self.lock:
            self.prompt = prompt
            self.prompt_ids = ids
            self._prompt_views.clear()
            self.branches.clear()
            self.next_branch_id = 0
            root = self._new_branch("main", parent=None, fork_at=0, steps=[])
            self.current_id = root.id
            self._peeked = None

    def set_params(self, params: SamplingParams) -> None:
        with self.lock:
            self.params = params
            self._peeked = None

    def set_constraint(self, constraint: Constraint | None) -> None:
        with self.lock:
            self.constraint = constraint
            self._peeked = None

    @property
    def seed(self) -> int:
        return self.params.seed if self.params.seed is not None else self.default_seed

    @property
    def prompt_tokens(self) -> list[Token]:
        return self.tokens.tokens(self.prompt_ids)

    # ----- branches ----------------------------------------------------------------
    @property
    def current(self) -> Branch:
        return self.branches[self.current_id]

    def _new_branch(self, name: str | None, *, parent: int | None, fork_at: int,
                    steps: list[StepResult]) -> Branch:
        bid = self.next_branch_id
        self.next_branch_id += 1
        branch = Branch(id=bid, name=name or f"branch {bid}", parent=parent, fork_at=fork_at,
                        steps=steps)
        self.branches[bid] = branch
        return branch

    def context_ids(self, branch: Branch | None = None) -> list[int]:
        return self.prompt_ids + (branch or self.current).ids

    def completion_text(self, branch: Branch | None = None) -> str:
        return decode(self.tokenizer, (branch or self.current).ids)

    def switch(self, branch_id: int) -> Branch:
        with self.lock:
            if branch_id not in self.branches:
                raise SessionError(f"no branch {branch_id}")
            self.current_id = branch_id
            self._peeked = None
            return self.current

    def rename(self, branch_id: int, name: str) -> None:
        if branch_id not in self.branches:
            raise SessionError(f"no branch {branch_id}")
        if not name.strip():
            raise SessionError("a branch name cannot be empty")
        self.branches[branch_id].name = name.strip()

    def delete_branch(self, branch_id: int) -> None:
        """Remove a branch; its children are re-attached to its parent."""
        with self.lock:
            if branch_id not in self.branches:
                raise SessionError(f"no branch {branch_id}")
            if len(self.branches) == 1:
                raise SessionError("cannot delete the only branch")
            doomed = self.branches.pop(branch_id)
            for b in self.branches.values():
                if b.parent == branch_id:
                    b.parent = doomed.parent
            if self.current_id == branch_id:
                self.current_id = doomed.parent if doomed.parent in self.branches else min(
                    self.branches)
            self._peeked = None

    def fork(self, name: str | None = None) -> Branch:
        """A copy of the current branch, made current (it shares the steps)."""
        with self.lock:
            src = self.current
            branch = self._new_branch(name, parent=src.id, fork_at=len(src),
                                      steps=list(src.steps))
            self.current_id = branch.id
            self._peeked = None
            return branch

    def branch_info(self) -> list[BranchInfo]:
        infos = []
        for b in self.branches.values():
            mine = b.steps[b.fork_at] if b.fork_at < len(b) else None
            parent = self.branches.get(b.parent) if b.parent is not None else None
            theirs = parent.steps[b.fork_at] if parent and b.fork_at < len(parent) else None
            infos.append(BranchInfo(
                id=b.id, name=b.name, parent=b.parent, fork_at=b.fork_at, length=len(b),
                text=decode(self.tokenizer, b.ids),
                token=mine.token if mine else None, p_final=mine.p_final if mine else None,
                parent_token=theirs.token if theirs else None,
                parent_p_final=theirs.p_final if theirs else None,
                current=b.id == self.current_id, finish_reason=b.finish_reason,
            ))
        return infos

    # ----- computing distributions -------------------------------------------------
    def _compute(self, branch: Branch, *, attention: bool = False, hidden_states: bool = False
                 ) -> tuple[sampling.Processed, BackendOutput]:
        ctx = self.context_ids(branch)
        max_ctx = self.backend.capabilities.max_context
        if max_ctx is not None and len(ctx) >= max_ctx:
            raise ContextOverflowError(
                f"context full: {len(ctx)} tokens reach the model's limit of {max_ctx}"
            )
        key = tuple(ctx)
        peeked = self._peeked
        if peeked and peeked[0] == key and peeked[1] == (self.params, id(self.constraint)) and (
                not attention or peeked[3].attention is not None) and (
                not hidden_states or peeked[3].hidden_states is not None):
            return peeked[2], peeked[3]
        valid = None
        if self.constraint is not None:
            self.constraint.sync(branch.ids)
            valid = self.constraint.allowed_mask(self.backend.vocab_size)
        out = self.backend.next_logits(ctx, attention=attention, hidden_states=hidden_states)
        processed = sampling.process(out.logits, ctx, branch.ids, self.params, valid,
                                     logits_are_logprobs=out.logits_are_logprobs)
        self._peeked = (key, (self.params, id(self.constraint)), processed, out)
        return processed, out

    def peek(self) -> Distribution:
        """The next-token distribution of the current branch (nothing is appended)."""
        with self.lock:
            processed, _ = self._compute(self.current)
            dist, _ = sampling.summarize(processed, self.tokens, self.top_n,
                                         top_n_only=not self.backend.capabilities.full_vocab)
            return dist

    def next_output(self, *, attention: bool = False, hidden_states: bool = False) -> BackendOutput:
        """The raw backend output for the next token of the current branch.

        It is kept for the next ``step`` (no extra forward when that step follows).
        """
        with self.lock:
            return self._compute(self.current, attention=attention, hidden_states=hidden_states)[1]

    def prompt_token(self, index: int) -> PromptTokenView:
        """The distribution the model gives at prompt position ``index`` (from the tokens
        before it) and where the prompt's own token ranks in it: one forward of the prefix,
        which the backend's cache mostly holds already."""
        with self.lock:
            if not 1 <= index < len(self.prompt_ids):
                raise SessionError(f"prompt position {index} has no distribution: use 1.."
                                   f"{len(self.prompt_ids) - 1} (the first token has nothing before it)")
            key = (index, self.params)
            if (kept := self._prompt_views.get(key)) is not None:
                return kept  # the same prompt and parameters: no forward, no cache crop
            view = self._prompt_token(index)
            if len(self._prompt_views) >= PROMPT_VIEWS_KEPT:
                self._prompt_views.pop(next(iter(self._prompt_views)))
            self._prompt_views[key] = view
            return view

    def _prompt_token(self, index: int) -> PromptTokenView:
        with self.lock:
            ctx = list(self.prompt_ids[:index])
            token_id = int(self.prompt_ids[index])
            out = self.backend.next_logits(ctx)
            processed = sampling.process(out.logits, ctx, [], self.params,
                                         logits_are_logprobs=out.logits_are_logprobs)
            dist, extras = sampling.summarize(processed, self.tokens, self.top_n, extra_ids=[token_id],
                                              top_n_only=not self.backend.capabilities.full_vocab)
            p_base: float | None = extras[token_id][0]
            rank: int | None = int((processed.p_base > processed.p_base[token_id]).sum()) + 1
            if dist.top_n_only and not p_base:  # a server's top N did not name it: unknown
                p_base = rank = None
            return PromptTokenView(index=index, token=self.tokens(token_id), distribution=dist,
                                   p_base=p_base, rank=rank)

    def distribution_at(self, index: int) -> Distribution:
        """The distribution the token at completion ``index`` was taken from."""
        branch = self.current
        if index < len(branch):
            return branch.steps[index].distribution
        return self.peek()

    # ----- adding tokens -------------------------------------------------------------
    def step(self, *, force_id: int | None = None, how: str | None = None,
             attention: bool = False, hidden_states: bool = False) -> StepResult:
        """Append one token to the current branch: chosen by the parameters, or forced."""
        with self.lock:
            branch = self.current
            t0 = time.perf_counter()
            key = tuple(self.context_ids(branch))
            processed, out = self._compute(branch, attention=attention, hidden_states=hidden_states)
            index = len(branch)
            note = None
            seed = None
            if force_id is not None:
                if not 0 <= force_id < self.backend.vocab_size:
                    raise SessionError(f"token id {force_id} is outside the vocabulary "
                                       f"(0..{self.backend.vocab_size - 1})")
                chosen = int(force_id)
                how = how or "forced"
            else:
                greedy = self.params.is_greedy
                seed = None if greedy else self.seed
                chosen = sampling.select(processed, greedy=greedy, seed=seed, index=index)
                how = "greedy" if greedy else "sampled"
                if processed.no_valid_kept:
                    note = "the filters left no token the constraint allows: took the best valid one"
            dist, extras = sampling.summarize(
                processed, self.tokens, self.top_n, extra_ids=[chosen],
                top_n_only=not self.backend.capabilities.full_vocab)
            p_base, p_final, logit = extras[chosen]
            token = self.tokens(chosen)
            finish = self._finish_reason(branch, chosen)
            result = StepResult(
                index=index, token=token, p_base=p_base, p_final=p_final, logit=logit, how=how,
                distribution=dist, seed=seed, branch_id=branch.id, finish_reason=finish,
                note=note, elapsed_ms=(time.perf_counter() - t0) * 1000.0, params=self.params,
            )
            branch.steps.append(result)
            self._peeked = None
            self.last_attention = out.attention if attention else None
            self.last_output = (key, out)
            return result

    def _finish_reason(self, branch: Branch, new_id: int) -> str | None:
        if new_id in self.backend.eos_token_ids and not self.params.ignore_eos:
            return "eos"
        if self.params.stop:
            tail = branch.ids[-16:]
            before = decode(self.tokenizer, tail)
            after = decode(self.tokenizer, [*tail, new_id])
            if any(s in after and after.count(s) > before.count(s) for s in self.params.stop):
                return "stop"
        if self.constraint is not None:
            self.constraint.sync([*branch.ids, new_id])
            if self.constraint.is_finished():
                return "constraint"
        return None

    def generate(self, max_new_tokens: int | None = None,
                 stop_event: threading.Event | None = None,
                 *, attention: bool = False, hidden_states: bool = False) -> Iterator[StepResult]:
        """Step until EOS, a stop sequence, a finished constraint, the length limit or the end
        of the model's context (``finish_reason`` ``context``: the steps made are kept).

        ``max_new_tokens`` caps the tokens added by this call (default: until the branch
        holds ``params.max_new_tokens``,
        counted from the newest chat turn: ``chat.py``). ``stop_event`` is checked between forward passes,
        so a cancel leaves the branch consistent.
        """
        branch = self.current
        if branch.finish_reason in FINAL_REASONS:
            return
        budget = (max_new_tokens if max_new_tokens is not None  # a chat turn counts on its own
                  else max(0, self.params.max_new_tokens - (len(branch) - turn_start(branch.steps))))
        max_ctx = self.backend.capabilities.max_context
        for n in range(budget):
            if stop_event is not None and stop_event.is_set():
                return
            result = self.step(attention=attention, hidden_states=hidden_states)
            if result.finish_reason is None and max_ctx is not None and \
                    len(self.prompt_ids) + len(self.current) >= max_ctx:
                # The model's context is full: the run ends here, with what it made kept.
                result = replace(result, finish_reason="context")
                self.current.steps[-1] = result
            elif result.finish_reason is None and n == budget - 1:
                result = replace(result, finish_reason="length")
                self.current.steps[-1] = result
            yield result
            if result.finish_reason is not None:
                return

    def force_token(self, token_id: int) -> StepResult:
        """Append a chosen token id (its probabilities are still computed and shown)."""
        self._check_constraint([int(token_id)])
        return self.step(force_id=int(token_id), how="forced")

    def force_text(self, text: str) -> list[StepResult]:
        """Tokenize text and append its tokens one by one (read in batched passes)."""
        ids = encode_text(self.tokenizer, text)
        if not ids:
            raise SessionError("nothing to force: the text has no tokens")
        self._check_constraint(ids)
        steps = []
        for block in read_ahead_blocks(ids, self.backend.vocab_size):
            self.read_ahead(block)
            steps += [self.step(force_id=i, how="forced") for i in block]
        return steps

    def read_ahead(self, ids: Sequence[int]) -> None:
        """Tokens about to be forced: the backend reads the context and what fits of ``ids`` in
        one pass, and the steps take their logits from it (``Backend.read_ahead``; a backend
        that cannot does nothing, and the steps run one forward each as before)."""
        ids = [int(i) for i in ids]
        context = self.context_ids()
        limit = self.backend.capabilities.max_context
        room = len(ids) if limit is None else min(len(ids), limit - 1 - len(context))
        if room > 0 and min(ids[:room]) >= 0 and max(ids[:room]) < self.backend.vocab_size:
            self.backend.read_ahead(context + ids[:room], len(context))

    def _check_constraint(self, ids: Sequence[int]) -> None:
        if self.constraint is not None:
            reason = self.constraint.refusal(self.current.ids, ids)
            if reason:
                raise ConstraintError(reason)

    def load_scored(self, prefix_ids: Sequence[int], result: Any) -> Branch:
        """Make a scored text (``analysis.score.ScoreResult``) the session: the unscored context
        (or, without one, the text's first token, which has nothing before it) becomes the
        prompt, and the scored tokens a branch of given steps carrying the distributions of the
        batched pass (no forward here). Branching at any of them works as at any other step."""
        from tokentui.engine.analysis.score import scored_steps

        tokens = result.tokens
        prompt_ids = list(prefix_ids) or ([tokens[0].id] if tokens else [])
        if not prompt_ids:
            raise SessionError("nothing scored to load")
        spec = PromptSpec(text=decode(self.tokenizer, prompt_ids), chat_template=False)
        with self.lock:
            self.set_prompt(spec, prompt_ids=prompt_ids)
            branch = self.current
            branch.name = "scored text"
            branch.steps = scored_steps(result, vocab_size=self.backend.vocab_size,
                                        params=self.params, branch_id=branch.id)
            return branch

    # ----- removing and branching -----------------------------------------------------
    def delete_last(self) -> StepResult:
        """Remove the newest token of the current branch."""
        with self.lock:
            branch = self.current
            if not branch.steps:
                raise SessionError("nothing to delete: the branch has no completion tokens")
            if len(branch) <= branch.fork_at:
                branch.fork_at = len(branch) - 1
            self._peeked = None
            return branch.steps.pop()

    def truncate(self, length: int) -> None:
        """Keep the first ``length`` completion tokens of the current branch."""
        with self.lock:
            branch = self.current
            if not 0 <= length <= len(branch):
                raise SessionError(f"cannot truncate a branch of {len(branch)} tokens to {length}")
            del branch.steps[length:]
            branch.fork_at = min(branch.fork_at, length)
            self._peeked = None

    def branch_from(self, index: int, token_id: int, *, name: str | None = None) -> StepResult:
        """A new branch: the current one up to ``index``, then ``token_id``; made current.

        The shared prefix is not recomputed (the backend crops its cache).
        """
        with self.lock:
            src = self.current
            if not 0 <= index <= len(src):
                raise SessionError(f"cannot branch at {index}: the branch has {len(src)} tokens")
            if self.constraint is not None:
                reason = self.constraint.refusal(src.ids[:index], [int(token_id)])
                if reason:
                    raise ConstraintError(reason)
            branch = self._new_branch(name, parent=src.id, fork_at=index,
                                      steps=list(src.steps[:index]))
            self.current_id = branch.id
            self._peeked = None
            try:
                return self.step(force_id=int(token_id), how="alternative")
            except Exception:
                self.branches.pop(branch.id, None)
                self.current_id = src.id
                raise
