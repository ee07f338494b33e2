"""A tokenizer read straight from ``tokenizer.json`` with the ``tokenizers`` library.

``from transformers import AutoTokenizer`` imports torch and most of transformers (10-15 s on
a slow 2-core machine). ``tokentui tokenize`` needs none of that: this class gives the part of a
transformers fast tokenizer that :mod:`tokentui.engine.prompts` uses, from the same files, with
the same ids. Chat templates are rendered by transformers' own renderer
(``transformers.utils.chat_template_utils``, which imports no torch), so the text is the same.
Folders it cannot read (no ``tokenizer.json``, remote code) fall back to AutoTokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SPECIAL_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token",
                 "mask_token")


@dataclass(frozen=True, slots=True)
class Encoded:
    """What ``tokenizer(text)`` returns, as far as tokentui reads it."""

    input_ids: list[int]


@dataclass(frozen=True, slots=True)
class AddedToken:
    content: str
    special: bool


class LightTokenizer:
    """The transformers fast-tokenizer calls tokentui needs, without torch or transformers' models."""

    def __init__(self, folder: str | Path) -> None:
        from tokenizers import Tokenizer

        folder = Path(folder)
        self.name_or_path = str(folder)
        self.backend_tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config = _read_json(folder / "tokenizer_config.json")
        special_map = _read_json(folder / "special_tokens_map.json")
        self.special_tokens_map: dict[str, str] = {}
        for name in SPECIAL_NAMES:
            value = config.get(name, special_map.get(name))
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                self.special_tokens_map[name] = value
        template_file = folder / "chat_template.jinja"
        template = template_file.read_text(encoding="utf-8") if template_file.is_file() else None
        self.chat_template: str | None = template or config.get("chat_template") or None
        added = self.backend_tokenizer.get_added_tokens_decoder()
        self.added_tokens_decoder = {int(i): AddedToken(t.content, bool(t.special)) for i, t in added.items()}
        self.add_bos = bool(config.get("add_bos_token", False))

    # ----- the attributes prompts.py and the CLI read ----------------------------------------
    def __len__(self) -> int:
        return int(self.backend_tokenizer.get_vocab_size(with_added_tokens=True))

    def _id(self, name: str) -> int | None:
        token = self.special_tokens_map.get(name)
        return None if token is None else self.backend_tokenizer.token_to_id(token)

    @property
    def eos_token_id(self) -> int | None:
        return self._id("eos_token")

    @property
    def bos_token_id(self) -> int | None:
        return self._id("bos_token")

    @property
    def all_special_ids(self) -> list[int]:
        """The ids of the named special tokens (bos, eos, unk, pad ...), as transformers counts them;
        other added special tokens are in ``added_tokens_decoder``."""
        ids = {self._id(name) for name in self.special_tokens_map}
        return sorted(i for i in ids if i is not None)

    def __call__(self, text: str, add_special_tokens: bool = True) -> Encoded:
        ids = self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens).ids
        return Encoded([int(i) for i in ids])

    def convert_ids_to_tokens(self, token_id: int) -> str | None:
        return self.backend_tokenizer.id_to_token(int(token_id))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        plain = [int(i) for i in ids]
        return str(self.backend_tokenizer.decode(plain, skip_special_tokens=skip_special_tokens))

    def apply_chat_template(self, messages: list[dict[str, str]], *, add_generation_prompt: bool = False,
                            tokenize: bool = True, **kwargs: Any) -> list[int] | str:
        """The chat template rendered by transformers' own renderer, tokenised without added
        special tokens, as ``PreTrainedTokenizerBase.apply_chat_template`` does."""
        from transformers.utils.chat_template_utils import render_jinja_template

        if not self.chat_template:
            raise ValueError("this tokenizer has no chat template")
        rendered: Any = render_jinja_template(conversations=[messages], chat_template=self.chat_template,
                                              add_generation_prompt=add_generation_prompt,
                                              **{**self.special_tokens_map, **kwargs})
        text = str(rendered[0][0])
        return self(text, add_special_tokens=False).input_ids if tokenize else text


def can_read(folder: str | Path) -> bool:
    """Whether :class:`LightTokenizer` reads this folder (a ``tokenizer.json`` is there)."""
    return (Path(folder) / "tokenizer.json").is_file()


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
