"""Mapping the token strings a server returns back to token ids.

The OpenAI completions API names each top log-probability by its decoded *string*.
Most strings name one token, but some do not: a byte-fallback or partial-UTF-8 token
decodes to nothing (or to the replacement character) once invalid bytes are dropped,
and llama-cpp-python decodes every special token to ``""``. Exact, cleanly decoding
matches win; an ambiguous string goes to the most plausible id (end-of-sequence
first, then other special tokens, then the lowest id) and is counted, so the backend
can say how often it had to guess. Servers that give ids (llama.cpp's native
endpoint, vLLM's ``token_id:N``) or raw bytes never need a guess.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tokentui.engine.prompts import token_bytes

TOKEN_ID_RE = re.compile(r"^token_id:(\d+)$")


class TokenMap:
    """Reverse index from decoded strings (and bytes) to token ids, built on first use."""

    def __init__(self, tokenizer: Any, vocab_size: int, priority_ids: Iterable[int] = ()) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.priority_ids = list(priority_ids)
        self._exact: dict[str, int] | None = None
        self._bytes: dict[bytes, int] = {}
        self._lossy: dict[str, list[int]] = {}
        self._pieces: dict[str, int] = {}
        self.guesses = 0
        """How many ambiguous strings were resolved by priority (not by an exact match)."""

    def _build(self) -> dict[str, int]:
        tok = self.tokenizer
        size = min(self.vocab_size, len(tok)) if hasattr(tok, "__len__") else self.vocab_size
        specials = {int(i) for i in getattr(tok, "all_special_ids", [])}
        added = getattr(tok, "added_tokens_decoder", {}) or {}
        specials |= {int(i) for i, t in added.items() if getattr(t, "special", False)}
        exact: dict[str, int] = {}
        lossy: dict[str, list[int]] = {}
        pieces = tok.convert_ids_to_tokens(list(range(size)))
        for tid in range(size):
            piece = pieces[tid]
            if piece is not None and piece not in self._pieces:
                self._pieces[piece] = tid
            if tid in specials:
                if piece:
                    exact.setdefault(piece, tid)
                lossy.setdefault("", []).append(tid)
                continue
            raw = token_bytes(tok, tid)
            self._bytes.setdefault(raw, tid)
            try:
                exact.setdefault(raw.decode("utf-8"), tid)
            except UnicodeDecodeError:
                for errors in ("ignore", "replace"):
                    key = raw.decode("utf-8", errors=errors)
                    ids = lossy.setdefault(key, [])
                    if tid not in ids:
                        ids.append(tid)
        order = {tid: rank for rank, tid in enumerate(self.priority_ids)}
        for ids in lossy.values():
            ids.sort(key=lambda t: (order.get(t, len(order) + (0 if t in specials else 1)), t))
        self._lossy = lossy
        self._exact = exact
        return exact

    def lookup(self, text: str | None, *, token_id: int | None = None,
               raw: bytes | None = None) -> int | None:
        """The id for one returned entry, or None when no token matches."""
        if token_id is not None and 0 <= int(token_id) < self.vocab_size:
            return int(token_id)
        if text is not None and (m := TOKEN_ID_RE.match(text)):
            return int(m.group(1))
        exact = self._exact if self._exact is not None else self._build()
        if raw is not None and raw in self._bytes:
            return self._bytes[raw]
        if text is None:
            return None
        if text in exact:
            return exact[text]
        ids = self._lossy.get(text)
        if ids:
            self.guesses += len(ids) > 1
            return ids[0]
        return self._pieces.get(text)
