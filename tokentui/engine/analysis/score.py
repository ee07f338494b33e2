"""Score a given text: every token's probability, rank, surprisal and the model's alternatives.

The model reads the text once, in batched forward passes (never a decode step per token):
the logits of every position of a window come out of one pass, and each position's
softmax gives the probability of the token that actually follows, its rank (how many
tokens had a strictly larger logit, plus one), the entropy of the distribution in bits
and the top-N alternatives. Only those ids and scalars are kept per token, so memory does
not grow with the vocabulary times the length.

Long texts are read in overlapping windows of ``window`` tokens that move by ``stride``
(the sliding-window perplexity of the transformers docs): every token is scored with at
least ``window - stride`` tokens before it, or all the tokens before it when fewer exist.
A text that fits in one window is one window: exactly the unwindowed numbers.

Inside a window the positions go through the model in chunks that share one KV cache, so
the logits held at a time stay below ``CHUNK_FLOATS`` floats (a window shorter than a chunk,
the usual case, is one plain forward).

The first token of a text with nothing before it has no probability: its ``p`` is None,
never a number made up.

A server scores through its prompt log-probabilities (``remote.prompt_logprobs``): only its
top N come back, so the entropy is unknown there (None) and a rank beyond N is None.

Importing this module loads no torch (the CLI checks its input with it before any load).
"""

from __future__ import annotations

import math
import threading
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokentui.engine.errors import CapabilityError, ContextOverflowError, ParameterError, PromptError
from tokentui.engine.prompts import TokenTable
from tokentui.engine.results import Candidate, Distribution, StepResult, Token

if TYPE_CHECKING:
    import torch

    from tokentui.engine.backends.base import Backend

LN2 = math.log(2.0)
CHUNK_FLOATS = 1 << 25
"""Most logits (positions x vocabulary) one forward returns: 128 MB of float32."""
BLOCK_FLOATS = 1 << 22
"""Rows of logits turned into probabilities, ranks and entropies at a time (16 MB each copy)."""
SCORED = "scored"
"""The note on a step that was read from a given text, not chosen (``scored_steps``)."""
NO_CONTEXT = "the first token has nothing before it: no probability"
"""What the faces say for a token without a probability."""

ScoreProgress = Callable[[int, int], None]
"""``progress(scored, total)``: tokens scored so far of the tokens to score."""

RANK_BUCKETS: tuple[tuple[int, str], ...] = ((1, "1"), (10, "2-10"), (100, "11-100"),
                                             (1000, "101-1000"))
"""GLTR-style buckets by rank (upper bound, label); beyond the last: ``>1000``."""


def rank_bucket(rank: int | None) -> int:
    """0 for rank 1, 1 for 2-10, 2 for 11-100, 3 for 101-1000, 4 beyond, 5 unknown/none."""
    if rank is None:
        return 5
    for i, (upper, _) in enumerate(RANK_BUCKETS):
        if rank <= upper:
            return i
    return 4


BUCKET_LABELS = ("rank 1", "rank 2-10", "rank 11-100", "rank 101-1000", "rank >1000", "no probability")


@dataclass(frozen=True, slots=True)
class ScoredToken:
    """One token of the text and how expected it was.

    Stored compactly (a long text keeps one per token): the log-probability, rank, entropy
    and the top N as three small arrays; ``p``, ``surprisal_bits`` and the ``top`` candidates
    are computed when read.
    """

    position: int
    """Index in the scored text (0 = its first token; a prefix is not counted)."""
    token: Token
    logprob: float | None
    """Natural log of the model's probability of this token here; None with nothing before it."""
    rank: int | None
    """1 = the model's favourite; None without a probability, or beyond a server's top N."""
    entropy_bits: float | None
    """Entropy of the model's distribution here; None without one, or from a top-N server."""
    logit: float | None = None
    top_ids: array[int] = field(default_factory=lambda: array("l"))
    """The model's top alternatives here, best first."""
    top_logprobs: array[float] = field(default_factory=lambda: array("f"))
    """Their log-probabilities (float32, as the model computed them)."""
    top_logits: array[float] = field(default_factory=lambda: array("f"))
    """Their raw logits (NaN from a server)."""
    table: TokenTable | None = field(default=None, compare=False, repr=False)
    """Turns the top ids into tokens when ``top`` is read."""

    @property
    def p(self) -> float | None:
        """The model's probability of this token here; None with nothing before it."""
        return None if self.logprob is None else math.exp(self.logprob)

    @property
    def surprisal_bits(self) -> float | None:
        """``-log2 p``."""
        if self.logprob is None:
            return None
        return -self.logprob / LN2 if math.isfinite(self.logprob) else math.inf

    @property
    def top(self) -> tuple[Candidate, ...]:
        """The top alternatives as candidates (``p_base`` = ``p_final`` = the softmax)."""
        if self.table is None:
            return ()
        out = []
        for k, (tid, lp, lg) in enumerate(zip(self.top_ids, self.top_logprobs, self.top_logits,
                                              strict=True), start=1):
            p = math.exp(lp)
            out.append(Candidate(token=self.table(tid), p_base=p, p_final=p, logit=lg, kept=True,
                                 rank=k))
        return tuple(out)

    @property
    def id(self) -> int:
        return self.token.id

    @property
    def text(self) -> str:
        return self.token.text

    def to_json(self) -> dict[str, Any]:
        return {
            "position": self.position, "id": self.token.id, "text": self.token.text,
            "special": self.token.special, "p": self.p, "rank": self.rank,
            "surprisal_bits": self.surprisal_bits, "entropy_bits": self.entropy_bits,
            "logit": self.logit,
            "top": [{"id": c.token.id, "text": c.token.text, "p": c.p_base, "rank": c.rank,
                     "logit": c.logit if math.isfinite(c.logit) else None} for c in self.top],
        }


@dataclass(frozen=True, slots=True)
class LineScore:
    """One line of the text and the mean surprisal of its scored tokens."""

    number: int
    """1-based."""
    text: str
    n_scored: int
    mean_surprisal_bits: float | None


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """A scored text: per token, then the whole text's perplexity and bits per token."""

    tokens: tuple[ScoredToken, ...]
    perplexity: float | None
    """``exp`` of the mean negative log-likelihood (natural log) over the scored tokens."""
    bits_per_token: float | None
    """Mean surprisal in bits over the scored tokens."""
    n_tokens: int
    """Tokens in the text (scored or not)."""
    model: str
    window: int | None
    """Tokens per window; None when the text was read in one pass."""
    stride: int | None
    prefix_tokens: int = 0
    """Tokens of context before the text (a prefix, a chat prompt) that were not scored."""
    cancelled: bool = False
    """Stopped early: ``tokens`` holds what was scored before the stop."""
    top_n_only: bool = False
    """A server's top N: entropies unknown, ranks beyond N unknown."""

    @property
    def scored(self) -> list[ScoredToken]:
        return [t for t in self.tokens if t.p is not None]

    def surprises(self, n: int) -> list[ScoredToken]:
        """The ``n`` most surprising tokens, most surprising first (ties: earlier first)."""
        ranked = sorted(self.scored, key=lambda t: (-(t.surprisal_bits or 0.0), t.position))
        return ranked[:n]

    def lines(self) -> list[LineScore]:
        """Per line of the text: its text and the mean surprisal of the tokens starting in it."""
        texts: list[list[str]] = [[]]
        bits: list[list[float]] = [[]]
        for tok in self.tokens:
            if tok.surprisal_bits is not None:
                bits[-1].append(tok.surprisal_bits)
            parts = tok.text.split("\n")
            texts[-1].append(parts[0])
            for part in parts[1:]:
                texts.append([part])
                bits.append([])
        if len(texts) > 1 and not "".join(texts[-1]) and not bits[-1]:
            texts.pop()  # the text ends with a newline: no empty last line
            bits.pop()
        return [LineScore(number=i + 1, text="".join(t), n_scored=len(b),
                          mean_surprisal_bits=sum(b) / len(b) if b else None)
                for i, (t, b) in enumerate(zip(texts, bits, strict=True))]

    def to_json(self, *, with_tokens: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model, "n_tokens": self.n_tokens, "n_scored": len(self.scored),
            "perplexity": self.perplexity, "bits_per_token": self.bits_per_token,
            "window": self.window, "stride": self.stride, "prefix_tokens": self.prefix_tokens,
            "cancelled": self.cancelled, "top_n_only": self.top_n_only,
        }
        if with_tokens:
            out["tokens"] = [t.to_json() for t in self.tokens]
        return out


MAX_TEXT_BYTES = 64 << 20
"""Largest text read (64 MiB): far more than anything scored in reasonable time."""


def decode_text(data: bytes, source: str) -> str:
    """Bytes to score as text: one-line errors for a binary, non-UTF-8 or empty input."""
    from tokentui.engine.persist.files import decode_user_text

    if len(data) > MAX_TEXT_BYTES:
        raise ParameterError(f"{source} is larger than {MAX_TEXT_BYTES >> 20} MiB")
    decoded = decode_user_text(data, source)
    if not decoded.strip():
        raise PromptError(f"{source} is empty: there is nothing to score")
    return decoded


def read_text_file(path: str | Path) -> str:
    """A text file to score (checked before any model loads)."""
    from tokentui.engine.persist.files import read_regular_file

    path = Path(path).expanduser()
    return decode_text(read_regular_file(path, limit=MAX_TEXT_BYTES, what="text file"), str(path))


def text_ids(tokenizer: Any, text: str, *, prefix: str | None = None,
             chat: str | None = None, system: str | None = None) -> tuple[list[int], list[int]]:
    """``(prefix_ids, ids)`` of a text to score: ``ids`` are the text's own tokens.

    - ``chat``: the text is the assistant's answer to ``chat`` (the chat template's prompt,
      with the generation prompt, is the unscored context);
    - ``prefix``: a context that is not scored (the text's tokens follow its tokens);
    - neither: the special tokens the tokenizer puts before a text (a BOS), if any.
    """
    from tokentui.engine.prompts import PromptSpec, encode_prompt, encode_text, has_chat_template

    if not text.strip():
        raise PromptError("the text is empty: there is nothing to score")
    if chat is not None and prefix is not None:
        raise ParameterError("give --chat or --prefix, not both")
    ids = encode_text(tokenizer, text)
    if not ids:
        raise PromptError("the text has no tokens: there is nothing to score")
    if chat is not None:
        if not chat.strip():
            raise PromptError("the --chat prompt is empty")
        if not has_chat_template(tokenizer):
            raise ParameterError("--chat needs a model with a chat template; this one has none "
                                 "(use --prefix)")
        return encode_prompt(tokenizer, PromptSpec(text=chat, system=system)), ids
    if prefix is not None:
        if not prefix:
            raise PromptError("the --prefix text is empty")
        head = [int(i) for i in tokenizer(prefix).input_ids]
        return head, ids
    full = [int(i) for i in tokenizer(text).input_ids]
    if len(full) > len(ids) and full[len(full) - len(ids):] == ids:
        return full[:len(full) - len(ids)], ids
    return [], ids


def windows(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """``(begin, end, first_scored)`` per window over ``n`` tokens: the window reads
    ``[begin, end)`` and scores ``[first_scored, end)``; each token is scored exactly once."""
    out = []
    begin, done = 0, 0
    while done < n:
        end = min(begin + window, n)
        out.append((begin, end, done))
        done = end
        if end == n:
            break
        begin += stride
    return out


def check_window(window: int | None, stride: int | None, max_context: int | None) -> tuple[int, int] | None:
    """The ``(window, stride)`` to use, None for one pass; ParameterError for a bad pair."""
    if window is None and stride is None:
        return None
    if window is None:
        if max_context is None:
            raise ParameterError("the model's context is unknown: give --window N with --stride")
        window = max_context
    if window < 2:
        raise ParameterError(f"--window must be at least 2 tokens (got {window})")
    if max_context is not None and window > max_context:
        raise ParameterError(f"--window {window} is larger than the model's context of {max_context}")
    if stride is None:
        stride = max(1, window // 2)
    if not 1 <= stride < window:
        raise ParameterError(f"--stride must be between 1 and {window - 1} (the window less one), "
                             f"got {stride}")
    return window, stride


def score_text(
    backend: Backend,
    ids: Sequence[int],
    *,
    prefix_ids: Sequence[int] = (),
    window: int | None = None,
    stride: int | None = None,
    top_n: int = 10,
    progress: ScoreProgress | None = None,
    stop_event: threading.Event | None = None,
    model: str | None = None,
) -> ScoreResult:
    """Score the tokens ``ids`` after the unscored context ``prefix_ids``.

    ``window``/``stride``: read in overlapping windows (``window`` defaults to the model's
    context, ``stride`` to half the window). Without either, the whole sequence must fit
    the context (ContextOverflowError says how to window it). ``stop_event`` is checked
    between passes; a stop returns what was scored, with ``cancelled`` set.
    """
    ids = [int(i) for i in ids]
    prefix = [int(i) for i in prefix_ids]
    if not ids:
        raise PromptError("the text is empty: there is nothing to score")
    if top_n < 1:
        raise ParameterError(f"top N must be at least 1 (got {top_n})")
    caps = backend.capabilities
    seq = prefix + ids
    span = check_window(window, stride, caps.max_context)
    if span is None:
        if caps.max_context is not None and len(seq) > caps.max_context:
            raise ContextOverflowError(
                f"the text has {len(seq)} tokens but the model's context is {caps.max_context}: "
                "score it in overlapping windows with --stride N (and --window N)")
        span = (len(seq), 1)
        windowed = False
    else:
        windowed = True
    size, step = span
    if windowed and len(prefix) >= size:
        raise ParameterError(f"the prefix has {len(prefix)} tokens: it does not fit a window of "
                             f"{size} with room for the text")
    table = TokenTable(backend.tokenizer)
    total = len(ids)
    scored: list[ScoredToken] = []
    if not prefix:
        scored.append(ScoredToken(position=0, token=table(ids[0]), logprob=None, rank=None,
                                  entropy_bits=None, table=table))
    start = max(1, len(prefix))
    cancelled = False
    if progress is not None:
        progress(len(scored), total)
    for begin, end, first in windows(len(seq), size, step):
        if end <= start:
            continue
        if stop_event is not None and stop_event.is_set():
            cancelled = True
            break
        first = max(first, start)
        rows = _score_span(backend, seq[begin:end], first - begin, top_n, stop_event)
        for offset, row in enumerate(rows):
            pos = first + offset
            scored.append(_scored_token(pos - len(prefix), table(seq[pos]), row, table))
            if progress is not None:
                progress(len(scored), total)
        if len(rows) < end - first:
            cancelled = True
            break
    nll = [-t.logprob for t in scored if t.logprob is not None]
    mean = sum(nll) / len(nll) if nll else None
    return ScoreResult(
        tokens=tuple(scored),
        perplexity=math.exp(mean) if mean is not None and mean < 700 else (
            math.inf if mean is not None else None),
        bits_per_token=mean / LN2 if mean is not None else None,
        n_tokens=total, model=model or caps.name,
        window=size if windowed else None, stride=step if windowed else None,
        prefix_tokens=len(prefix), cancelled=cancelled, top_n_only=not caps.full_vocab,
    )


Row = tuple[float, float | None, int | None, float | None, list[tuple[int, float, float]]]
"""One scored position: log p, logit (None from a server), rank (None when unknown), entropy in
bits (None from a server), and the top N as ``(id, log p, logit)`` best first."""


def _scored_token(position: int, token: Token, row: Row, table: TokenTable) -> ScoredToken:
    logp, logit, rank, entropy, top = row
    return ScoredToken(position=position, token=token, logprob=logp, rank=rank,
                       entropy_bits=entropy, logit=logit,
                       top_ids=array("l", [t[0] for t in top]),
                       top_logprobs=array("f", [t[1] for t in top]),
                       top_logits=array("f", [t[2] for t in top]), table=table)


def _score_span(backend: Backend, seq: list[int], first: int, top_n: int,
                stop_event: threading.Event | None) -> list[Row]:
    """Rows for positions ``first .. len(seq) - 1`` of ``seq`` (each read from what precedes it)."""
    if backend.model is None:
        from tokentui.engine.backends.remote import RemoteBackend, prompt_logprobs

        if not isinstance(backend, RemoteBackend):
            raise CapabilityError(f"{backend.capabilities.name} cannot score a text")
        return prompt_logprobs(backend, seq, first, top_n)
    return _local_rows(backend, seq, first, top_n, stop_event)


def _local_rows(backend: Backend, seq: list[int], first: int, top_n: int,
                stop_event: threading.Event | None) -> list[Row]:
    import torch
    from transformers import DynamicCache

    model = backend.model
    vocab = backend.vocab_size
    chunk = max(1, CHUNK_FLOATS // max(1, vocab))
    block = max(1, BLOCK_FLOATS // max(1, vocab))
    rows: list[Row] = []
    n = min(top_n, vocab)
    trim = _takes_logits_to_keep(model)
    with backend.lock, torch.inference_mode():
        cache = DynamicCache(config=model.config) if len(seq) > chunk else None
        pos = 0
        while pos < len(seq) - 1:
            if rows and stop_event is not None and stop_event.is_set():
                break
            end = min(pos + chunk, len(seq))
            # logits row j (input position pos + j) predicts the token at pos + j + 1
            lo = max(first - 1, pos) - pos
            hi = min(end, len(seq) - 1) - pos
            kwargs: dict[str, Any] = {}
            offset = 0
            if trim:  # the needed rows are a suffix of the chunk: the rest skip the vocabulary
                keep = max(1, (end - pos) - lo)
                kwargs["logits_to_keep"] = keep
                offset = (end - pos) - keep
            inputs = torch.tensor([seq[pos:end]], device=backend.device)
            if cache is None:
                out = model(input_ids=inputs, use_cache=False, **kwargs)
            else:
                out = model(input_ids=inputs, past_key_values=cache, use_cache=True, **kwargs)
            for a in range(lo, hi, block):  # the softmax and its copies, a block of rows at a time
                b = min(a + block, hi)
                logits = out.logits[0, a - offset:b - offset].float()
                targets = torch.tensor(seq[pos + a + 1:pos + b + 1], device=logits.device)
                rows.extend(_rows(logits, targets, n))
            del out
            pos = end
    return rows


def _takes_logits_to_keep(model: Any) -> bool:
    """Whether the model's forward can skip the vocabulary projection of rows not needed."""
    import inspect

    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _rows(logits: torch.Tensor, targets: torch.Tensor, n: int) -> list[Row]:
    """Rows from ``(k, vocab)`` logits and the ``(k,)`` tokens that followed."""
    import torch

    logp = torch.log_softmax(logits, dim=-1)
    target_logit = logits.gather(1, targets[:, None])
    rank = (logits > target_logit).sum(dim=1) + 1
    target_logp = logp.gather(1, targets[:, None])[:, 0]
    entropy = -torch.linalg.vecdot(logp.exp(), logp) / LN2
    if bool(entropy.isnan().any()):  # a -inf log-probability (a masked logit): 0 * -inf
        entropy = -torch.linalg.vecdot(logp.exp(), logp.clamp_min(torch.finfo(logp.dtype).min)) / LN2
    top_lp, top_ids = torch.topk(logp, n, dim=-1)
    top_logits = logits.gather(1, top_ids)
    rows: list[Row] = []
    for lp, lg, rk, ent, ids, lps, lgs in zip(
            target_logp.tolist(), target_logit[:, 0].tolist(), rank.tolist(), entropy.tolist(),
            top_ids.tolist(), top_lp.tolist(), top_logits.tolist(), strict=True):
        rows.append((lp, lg, rk, ent, list(zip(ids, lps, lgs, strict=True))))
    return rows


def scored_steps(result: ScoreResult, *, vocab_size: int, params: Any = None,
                 branch_id: int = 0) -> list[StepResult]:
    """The scored tokens (those with a probability) as given steps of a branch: ``how`` is
    ``forced``, ``note`` is ``scored``, and each carries the distribution read in the batched
    pass (its top N; ``p_final`` = ``p_base``: no sampling filter chose these tokens)."""
    steps: list[StepResult] = []
    for tok in result.tokens:
        if tok.p is None:
            continue
        top = tok.top
        listed = sum(c.p_base for c in top)
        entropy = tok.entropy_bits
        if entropy is None:  # a server's top N: the entropy of what it listed (a lower bound)
            entropy = -sum(c.p_base * math.log2(c.p_base) for c in top if c.p_base > 0)
        dist = Distribution(
            candidates=top, entropy=entropy, entropy_final=entropy,
            n_kept=vocab_size, n_valid=vocab_size, vocab_size=vocab_size,
            top_n_only=result.top_n_only,
            other_mass=max(0.0, 1.0 - listed) if result.top_n_only else 0.0)
        steps.append(StepResult(
            index=len(steps), token=tok.token, p_base=tok.p, p_final=tok.p,
            logit=tok.logit if tok.logit is not None else math.nan, how="forced",
            distribution=dist, branch_id=branch_id, note=SCORED, params=params))
    return steps
