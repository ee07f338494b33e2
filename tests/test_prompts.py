"""Prompts to ids, and ids to readable pieces that lose nothing."""

from __future__ import annotations

import pytest

from tokentui.engine.errors import PromptError
from tokentui.engine.prompts import (
    IncrementalDecoder,
    PromptSpec,
    TokenTable,
    encode_prompt,
    readable_bytes,
    token_bytes,
)


def test_chat_template_wraps_the_user_message(tokenizer):
    ids = encode_prompt(tokenizer, PromptSpec("Hello", system="Be brief."))
    expected = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        add_generation_prompt=True, tokenize=True)["input_ids"]
    assert ids == list(expected)
    assert encode_prompt(tokenizer, PromptSpec("Hello", chat_template=False)) == tokenizer("Hello").input_ids


def test_empty_prompt_is_refused(tokenizer):
    with pytest.raises(PromptError, match="empty"):
        encode_prompt(tokenizer, PromptSpec("   "))


def test_token_pieces_keep_spaces_newlines_and_specials(tokenizer):
    table = TokenTable(tokenizer)
    text = "Hi there\n  x"
    ids = tokenizer(text).input_ids
    assert "".join(table(i).text for i in ids) == text
    assert table(2).special and table(2).text == "<|im_end|>"
    assert not table(ids[0]).special


def test_partial_utf8_pieces_are_shown_as_bytes(tokenizer):
    table = TokenTable(tokenizer)
    text = "日本語の文章です🙂"
    ids = tokenizer(text).input_ids
    raw = b"".join(token_bytes(tokenizer, i) for i in ids)
    assert raw.decode("utf-8") == text
    pieces = [table(i).text for i in ids]
    assert all("\ufffd" not in p for p in pieces)
    assert any("<0x" in p for p in pieces)


def test_readable_bytes():
    assert readable_bytes("é".encode()) == "é"
    assert readable_bytes(b"\xe6\x97") == "<0xE6><0x97>"
    assert readable_bytes(b"a\xffb") == "a<0xFF>b"


def test_incremental_decoder_holds_back_partial_characters(tokenizer):
    text = "naïve 🙂 café"
    decoder = IncrementalDecoder(tokenizer)
    out = "".join(decoder.push(i) for i in tokenizer(text).input_ids)
    assert out == text
