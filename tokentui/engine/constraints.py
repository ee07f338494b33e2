"""Constrained decoding with llguidance: choice, regex, Lark grammar, JSON schema.

A :class:`Constraint` wraps one ``llguidance.LLMatcher`` and follows the session's
branch tree: ``sync`` rolls the matcher back to the common prefix with the requested
completion and consumes the rest, so rewinds, deletes and branch switches cost a few
tokens of work, not a replay. The matcher never sees an invalid token (it would enter a
permanent error state and lose its rollback), so every id is validated before it is
consumed, and end-of-text tokens are handled here rather than by the matcher.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tokentui.engine.errors import ConstraintError
from tokentui.engine.prompts import readable_bytes, token_bytes

if TYPE_CHECKING:
    from tokentui.engine.session import Session

KINDS: dict[str, str] = {
    "choice": "choice",
    "regex": "regex",
    "grammar": "grammar",
    "json_schema": "JSON schema",
}
"""The kinds ``build`` accepts and how each is named in messages."""

CLI_KINDS = frozenset({*KINDS, "choices_file"})

_LLTOKENIZERS: dict[tuple[int, tuple[int, ...]], tuple[Any, Any]] = {}
"""``(id(tokenizer), eos ids)`` -> ``(tokenizer, LLTokenizer)``: the bridge takes seconds to build.
The tokenizer is held in the value so its id cannot be reused while the entry lives."""
_LLTOKENIZERS_LOCK = threading.Lock()
_LLTOKENIZERS_KEPT = 4


def ll_tokenizer(tokenizer: Any, eos_ids: Collection[int] = ()) -> Any:
    """The llguidance view of a Hugging Face tokenizer, built once per tokenizer."""
    eos = tuple(sorted({int(e) for e in eos_ids}))
    key = (id(tokenizer), eos)
    with _LLTOKENIZERS_LOCK:
        hit = _LLTOKENIZERS.pop(key, None)
        if hit is not None:
            _LLTOKENIZERS[key] = hit  # most recently used last
            return hit[1]
        try:
            import llguidance.hf

            lltok = llguidance.hf.from_tokenizer(tokenizer, eos_token=list(eos) or None)
        except Exception as exc:  # a slow tokenizer, or one the bridge cannot read
            raise ConstraintError(
                f"constraints need a fast Hugging Face tokenizer: {_first_line(str(exc))}"
            ) from None
        _LLTOKENIZERS[key] = (tokenizer, lltok)
        while len(_LLTOKENIZERS) > _LLTOKENIZERS_KEPT:
            del _LLTOKENIZERS[next(iter(_LLTOKENIZERS))]
        return lltok


class Constraint:
    """One constraint over one tokenizer: the allowed-token mask at any point of any branch."""

    def __init__(self, kind: str, text: str, grammar: str, tokenizer: Any, vocab_size: int,
                 eos_ids: Collection[int] = ()) -> None:
        from llguidance import LLMatcher

        self.kind = kind
        """One of ``KINDS``."""
        self.text = text
        """The source as the user wrote it (one choice a line, regex, Lark or JSON)."""
        self.grammar = grammar
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self._ll = ll_tokenizer(tokenizer, eos_ids)
        self.eos_ids = frozenset(int(e) for e in eos_ids) | frozenset(self._ll.eos_tokens)
        self.description = describe(kind, text)
        """A short label: ``regex [0-9]+``, ``choice: yes | no`` ..."""
        self._new_matcher = lambda: LLMatcher(self._ll, grammar, log_level=0)
        self._matcher = self._new_matcher()
        self._check_matcher()
        self._ids: list[int] = []
        """The completion ids the matcher has consumed (never an end-of-text token)."""
        self._broken_at: int | None = None
        """Completion index of the first token the constraint forbids, if the branch has one."""
        self._eos_done = False
        """The synced completion ends with end-of-text while the matcher accepts."""
        self._mask: torch.Tensor | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Constraint({self.description!r})"

    # ----- following the branch ----------------------------------------------------------
    def sync(self, completion_ids: Sequence[int]) -> None:
        """Bring the matcher to the state after ``completion_ids``: roll back, then consume.

        Ids from the first end-of-text token on are not consumed (the text is over there).
        A forbidden id is not consumed either: the position is remembered and reported.
        """
        with self._lock:
            target = [int(i) for i in completion_ids]
            eos_at = next((k for k, t in enumerate(target) if t in self.eos_ids), None)
            body = target if eos_at is None else target[:eos_at]
            if body != self._ids or self._broken_at is not None:
                self._move_to(body)
            eos_done = eos_at is not None and self._broken_at is None and self._matcher.is_accepting()
            if eos_done != self._eos_done:
                self._eos_done = eos_done
                self._mask = None
            if eos_at is not None and self._broken_at is None and not self._eos_done:
                self._broken_at = eos_at

    def _move_to(self, body: list[int]) -> None:
        self._mask = None
        self._broken_at = None
        common = 0
        for a, b in zip(self._ids, body, strict=False):
            if a != b:
                break
            common += 1
        back = len(self._ids) - common
        if back and not self._matcher.rollback(back):
            self._matcher = self._new_matcher()  # a failed rollback: start over from empty
            self._check_matcher()
            common = 0
        del self._ids[common:]
        rest = body[common:]
        if not rest:
            return
        n = self._matcher.validate_tokens(rest) if not self._matcher.is_stopped() else 0
        if n and not self._matcher.consume_tokens(rest[:n]):
            self._check_matcher()
        self._ids.extend(rest[:n])
        if n < len(rest):
            self._broken_at = common + n

    def _check_matcher(self) -> None:
        if self._matcher.is_error():
            raise ConstraintError(f"the {KINDS[self.kind]} failed: {_first_line(self._matcher.get_error())}")

    # ----- what may come next ---------------------------------------------------------------
    def allowed_mask(self, vocab_size: int | None = None) -> torch.Tensor:
        """Boolean ``(vocab_size,)`` mask of the tokens allowed after the synced completion.

        Ids past the tokenizer's vocabulary (padding rows of the embedding) are never allowed.
        """
        size = vocab_size or self.vocab_size
        with self._lock:
            self._raise_if_broken()
            self._check_matcher()
            if self._mask is None or self._mask.shape[0] != size:
                self._mask = self._compute_mask(size)
            return self._mask

    def _compute_mask(self, size: int) -> torch.Tensor:
        if self._eos_done:
            bits = np.zeros(size, dtype=bool)
        else:
            raw = np.frombuffer(self._matcher.compute_bitmask(), dtype=np.uint8)
            bits = np.unpackbits(raw, bitorder="little")[: min(size, self._ll.vocab_size)].astype(bool)
            if bits.shape[0] < size:
                bits = np.concatenate([bits, np.zeros(size - bits.shape[0], dtype=bool)])
        accepting = self._eos_done or self._matcher.is_accepting()
        for e in self.eos_ids:
            if 0 <= e < size:
                bits[e] = accepting
        return torch.from_numpy(bits)

    def is_finished(self) -> bool:
        """Nothing but the end of the text may follow (or it has already come)."""
        with self._lock:
            if self._broken_at is not None:
                return False
            return self._eos_done or (self._matcher.is_stopped() and self._matcher.is_accepting())

    def is_accepting(self) -> bool:
        """The synced completion is a complete match (it could end here)."""
        with self._lock:
            return self._broken_at is None and (self._eos_done or self._matcher.is_accepting())

    def refusal(self, completion_ids: Sequence[int], new_ids: Sequence[int]) -> str | None:
        """Why appending ``new_ids`` after ``completion_ids`` is forbidden, or None if allowed."""
        with self._lock:
            self.sync(completion_ids)
            if self._broken_at is not None:
                return self._broken_message()
            new = [int(i) for i in new_ids]
            eos_at = next((k for k, t in enumerate(new) if t in self.eos_ids), None)
            body = new if eos_at is None else new[:eos_at]
            stopped = self._eos_done or self._matcher.is_stopped()
            n = self._matcher.validate_tokens(body) if body and not stopped else 0
            if n == len(body) and eos_at is not None:
                if self._eos_done:
                    return None
                self._matcher.consume_tokens(body)
                ok = self._matcher.is_accepting()
                self._matcher.rollback(len(body))
                if ok:
                    return None
                return (f"the {KINDS[self.kind]} is not complete: it does not allow the end "
                        f"of the text {self._where([*self._ids, *body])}")
            if n == len(body):
                return None
            return (f"the {KINDS[self.kind]} forbids {self._piece(body[n])!r} "
                    f"{self._where([*self._ids, *body[:n]])} ({self.description})")

    def why_invalid(self, token_id: int, completion_ids: Sequence[int] | None = None) -> str:
        """A short reason why ``token_id`` may not come next (empty if it may)."""
        with self._lock:
            if completion_ids is not None:
                self.sync(completion_ids)
            if self._broken_at is not None:
                return "the branch already breaks the constraint"
            label = KINDS[self.kind]
            mask = self._compute_mask(max(self.vocab_size, int(token_id) + 1))
            if bool(mask[int(token_id)]):
                return ""
            if int(token_id) in self.eos_ids:
                return f"the {label} is not complete yet"
            if self.is_finished():
                return f"the {label} is complete: only the end may follow"
            forced = self._matcher.compute_ff_bytes() if not self._eos_done else b""
            if forced:
                return f"the {label} requires {readable_bytes(forced)!r} next"
            allowed = torch.nonzero(mask).squeeze(-1).tolist()
            if len(allowed) <= 4:
                return f"the {label} allows only " + ", ".join(repr(self._piece(t)) for t in allowed)
            return f"not allowed by the {label} here"

    # ----- messages -----------------------------------------------------------------------
    def _raise_if_broken(self) -> None:
        if self._broken_at is not None:
            raise ConstraintError(self._broken_message())

    def _broken_message(self) -> str:
        return (f"the branch breaks the {KINDS[self.kind]} at completion token {self._broken_at}: "
                f"rewind before it or turn the constraint off")

    def _piece(self, token_id: int) -> str:
        try:
            return readable_bytes(token_bytes(self.tokenizer, token_id))
        except Exception:
            return f"<{token_id}>"

    def _where(self, ids: Sequence[int]) -> str:
        """``at the start`` or ``after '...'`` (the last 40 characters of the text so far)."""
        if not ids:
            return "at the start"
        text = self.tokenizer.decode(list(ids))
        return f"after {text if len(text) <= 40 else '...' + text[-37:]!r}"


# ----- building ------------------------------------------------------------------------
def build(kind: str, text: str, tokenizer: Any, vocab_size: int, *,
          eos_ids: Collection[int] = ()) -> Constraint:
    """A constraint of ``kind`` from its source text; one-line ConstraintError if invalid.

    ``choice`` takes one option a line; ``grammar`` is Lark as llguidance accepts it;
    ``json_schema`` is the schema as JSON text. This is the entry the constraint panel calls.
    """
    from llguidance import LLMatcher

    if kind not in KINDS:
        raise ConstraintError(f"unknown constraint kind {kind!r}; choose one of {', '.join(KINDS)}")
    grammar = _grammar(kind, text)
    error = LLMatcher.validate_grammar(grammar, ll_tokenizer(tokenizer, eos_ids))
    if error:
        raise ConstraintError(_clean_error(kind, text, error))
    return Constraint(kind, text, grammar, tokenizer, vocab_size, eos_ids)


def from_cli(kind: str, value: str, tokenizer: Any, vocab_size: int, *,
             eos_ids: Collection[int] = ()) -> Constraint:
    """What the CLI flags give: ``choice`` is ``a|b|c``, ``choices_file`` one option a line."""
    if kind not in CLI_KINDS:
        raise ConstraintError(f"unknown constraint kind {kind!r}")
    if kind == "choice":
        return build("choice", "\n".join(value.split("|")), tokenizer, vocab_size, eos_ids=eos_ids)
    if kind == "choices_file":
        return build("choice", value, tokenizer, vocab_size, eos_ids=eos_ids)
    return build(kind, value, tokenizer, vocab_size, eos_ids=eos_ids)


def choices(text: str) -> list[str]:
    """The options of a choice source: one a line, surrounding spaces dropped, no blanks or repeats."""
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))


def _grammar(kind: str, text: str) -> str:
    from llguidance import LLMatcher

    if kind == "choice":
        options = choices(text)
        if not options:
            raise ConstraintError("a choice constraint needs at least one option")
        lark = "start: " + " | ".join(json.dumps(o, ensure_ascii=False) for o in options)
        return LLMatcher.grammar_from_lark(lark)
    if kind == "regex":
        return LLMatcher.grammar_from_regex(text)
    if kind == "grammar":
        if not text.strip():
            raise ConstraintError("the grammar is empty")
        return LLMatcher.grammar_from_lark(text)
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConstraintError(
            f"the JSON schema is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    try:
        # Compact separators and no free whitespace between tokens by default: at a high
        # temperature a model may otherwise emit whitespace until max tokens (invalid JSON).
        # A schema asks for flexible whitespace with "x-guidance": {"whitespace_flexible": true};
        # even then at most a few whitespace characters in a row are allowed.
        defaults: Any = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
        guidance = schema.get("x-guidance") if isinstance(schema, dict) else None
        if isinstance(guidance, dict) and guidance.get("whitespace_flexible") \
                and not guidance.get("whitespace_pattern"):
            defaults["whitespace_pattern"] = JSON_FLEXIBLE_WHITESPACE
            schema = {**schema, "x-guidance": {**guidance, "whitespace_pattern": JSON_FLEXIBLE_WHITESPACE}}
        if not isinstance(schema, dict):  # llguidance's own message says what is wrong
            return LLMatcher.grammar_from_json_schema(json.dumps(schema))
        return LLMatcher.grammar_from_json_schema(json.dumps(schema), defaults=defaults)
    except ValueError as exc:
        raise ConstraintError(f"invalid JSON schema: {_first_line(str(exc))}") from None


JSON_FLEXIBLE_WHITESPACE = r"[\x20\x0A\x0D\x09]{0,4}"
"""Whitespace between JSON tokens when a schema asks for it: bounded, so it cannot run on."""

INCOMPLETE = "the constraint is not complete"


def incomplete_note(session: Session, reason: str | None) -> str | None:
    """``the constraint is not complete`` when max tokens cut a constrained run before the
    constraint could end (the text is then not a full match: invalid JSON, say); else None."""
    constraint = getattr(session, "constraint", None)
    if reason != "length" or constraint is None:
        return None
    try:
        constraint.sync([s.token.id for s in session.current.steps])
        accepting = constraint.is_accepting()
    except Exception:  # a broken constraint is reported by its own message
        return None
    return None if accepting else INCOMPLETE


_POSITION = re.compile(r"^at (\d+)\((\d+)\): ")


def _clean_error(kind: str, text: str, error: str) -> str:
    """llguidance's multi-line report -> one line naming the problem (and where, for grammars)."""
    lines = [ln.strip() for ln in error.strip().splitlines() if ln.strip()]
    head = lines[0] if lines else "unknown error"
    detail = next((ln.removeprefix("error:").strip() for ln in lines if ln.startswith("error:")), "")
    if kind == "regex":
        return f"invalid regex {text!r}: {detail or _POSITION.sub('', head)}"
    if kind == "json_schema":
        head = _POSITION.sub("", head)
        if head.endswith("regex parse error:"):  # the reason is on a later line: keep it
            pattern = lines[1] if len(lines) > 2 else ""
            return (f"invalid JSON schema: a pattern is not a valid regular expression: "
                    f"{detail or 'parse error'}" + (f" in {pattern!r}" if pattern else ""))
        return f"invalid JSON schema: {head}" + (f": {detail}" if detail and detail not in head else "")
    where = _POSITION.match(head)
    head = _POSITION.sub("", head).removesuffix("regex parse error:").strip().rstrip(":")
    if detail:
        head = f"{head}: {detail}"
    prefix = f"line {where.group(1)}, column {where.group(2)}: " if where and kind == "grammar" else ""
    return f"invalid {KINDS[kind]}: {prefix}{head}"


def describe(kind: str, text: str) -> str:
    """A short label for status lines and step notes."""
    if kind == "choice":
        body = " | ".join(choices(text))
        label = f"choice: {body}"
    elif kind == "regex":
        label = f"regex {text}"
    elif kind == "grammar":
        n = len([ln for ln in text.splitlines() if ln.strip()])
        label = f"grammar ({n} line{'s' if n != 1 else ''})"
    else:
        try:
            schema = json.loads(text)
            props = list(schema.get("properties", {})) if isinstance(schema, dict) else []
            kind_name = schema.get("type", "schema") if isinstance(schema, dict) else "schema"
            label = f"JSON schema ({kind_name}" + (f": {', '.join(props)})" if props else ")")
        except (json.JSONDecodeError, AttributeError):
            label = "JSON schema"
    return label if len(label) <= 60 else label[:59] + "…"


def _first_line(message: str) -> str:
    return (message.strip().splitlines() or ["unknown error"])[0]
