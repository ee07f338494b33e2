"""Turning prompts into token ids and token ids into readable pieces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from tokentui.engine.errors import PromptError
from tokentui.engine.results import Token


@dataclass(frozen=True, slots=True)
class PromptSpec:
    """What the user typed and how it becomes the model's input."""

    text: str
    system: str | None = None
    chat_template: bool = True
    """Wrap the text as a user message with the tokenizer's chat template (when it has one)."""

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "system": self.system, "chat_template": self.chat_template}


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def encode_prompt(tokenizer: Any, spec: PromptSpec) -> list[int]:
    """Prompt token ids: the chat template with a generation prompt, or the raw text."""
    if not spec.text.strip() and not (spec.system or "").strip():
        raise PromptError("the prompt is empty: type some text first")
    if spec.chat_template and has_chat_template(tokenizer):
        messages = []
        if spec.system:
            messages.append({"role": "system", "content": spec.system})
        messages.append({"role": "user", "content": spec.text})
        encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        return [int(i) for i in ids]
    return [int(i) for i in tokenizer(spec.text).input_ids]


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of a piece of text to append (no special tokens added)."""
    return [int(i) for i in tokenizer(text, add_special_tokens=False).input_ids]


_BYTE_DECODER: dict[str, int] | None = None


def _byte_decoder() -> dict[str, int]:
    """GPT-2's printable-character-to-byte table (byte-level BPE vocabularies)."""
    global _BYTE_DECODER
    if _BYTE_DECODER is None:
        bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
              + list(range(ord("®"), ord("ÿ") + 1)))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        _BYTE_DECODER = {chr(c): b for b, c in zip(bs, cs, strict=True)}
    return _BYTE_DECODER


def _is_byte_level(tokenizer: Any) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    decoder = getattr(backend, "decoder", None)
    return type(decoder).__name__ == "ByteLevel"


def token_bytes(tokenizer: Any, token_id: int) -> bytes:
    """The raw bytes a token stands for."""
    piece = tokenizer.convert_ids_to_tokens(int(token_id))
    if piece is None:
        return b""
    if _is_byte_level(tokenizer):
        table = _byte_decoder()
        if all(ch in table for ch in piece):
            return bytes(table[ch] for ch in piece)
    if piece.startswith("<0x") and piece.endswith(">") and len(piece) == 6:
        return bytes([int(piece[3:5], 16)])
    return tokenizer.decode([int(token_id)]).encode("utf-8")


def readable_bytes(raw: bytes) -> str:
    """Decode UTF-8, showing each byte that is not part of a valid character as ``<0xNN>``."""
    out: list[str] = []
    i = 0
    while i < len(raw):
        for width in (1, 2, 3, 4):
            chunk = raw[i:i + width]
            try:
                out.append(chunk.decode("utf-8"))
            except UnicodeDecodeError:
                continue
            i += width
            break
        else:
            out.append(f"<0x{raw[i]:02X}>")
            i += 1
    return "".join(out)


class TokenTable:
    """Caches ``Token`` objects for one tokenizer (ids are looked up every step)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.special_ids = frozenset(int(i) for i in getattr(tokenizer, "all_special_ids", []))
        added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
        self.special_ids |= {int(i) for i, t in added.items() if getattr(t, "special", False)}
        self._lookup = lru_cache(maxsize=65536)(self._make)

    def __call__(self, token_id: int) -> Token:
        return self._lookup(int(token_id))

    def _make(self, token_id: int) -> Token:
        special = token_id in self.special_ids
        if special:
            text = self.tokenizer.convert_ids_to_tokens(token_id) or ""
        else:
            text = self.tokenizer.decode([token_id])
            if "\ufffd" in text:
                text = readable_bytes(token_bytes(self.tokenizer, token_id))
        return Token(id=token_id, text=text, special=special)

    def tokens(self, ids: Sequence[int]) -> list[Token]:
        return [self(i) for i in ids]


def decode(tokenizer: Any, ids: Sequence[int], *, skip_special: bool = False) -> str:
    return tokenizer.decode(list(ids), skip_special_tokens=skip_special)


class IncrementalDecoder:
    """Yields the new text as tokens arrive, holding back incomplete UTF-8 characters."""

    def __init__(self, tokenizer: Any, *, skip_special: bool = False) -> None:
        self.tokenizer = tokenizer
        self.skip_special = skip_special
        self.ids: list[int] = []
        self.emitted = ""

    def push(self, token_id: int) -> str:
        self.ids.append(int(token_id))
        text = decode(self.tokenizer, self.ids, skip_special=self.skip_special)
        if text.endswith("\ufffd"):
            return ""
        new = text[len(self.emitted):] if text.startswith(self.emitted) else text
        self.emitted = text
        return new
