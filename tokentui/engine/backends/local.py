"""transformers in this process: one KV cache, cropped to the longest shared prefix.

Rewinding, deleting and branching never recompute the shared prefix: the cache keeps the
ids it was built from, and a request for another sequence crops it to their common
prefix (``DynamicCache.crop``) and feeds only the rest.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import torch

from tokentui.engine.backends.base import BackendOutput, Capabilities
from tokentui.engine.errors import ContextOverflowError
from tokentui.engine.models import LoadedModel


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class LocalBackend:
    """A transformers causal LM with a reusable KV cache."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.tokenizer = loaded.tokenizer
        config = self.model.config
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])
        self.max_context: int | None = getattr(text_config, "max_position_embeddings", None)
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        eos_list = eos if isinstance(eos, list | tuple) else [eos]
        self.eos_token_ids = frozenset(int(e) for e in eos_list if e is not None)
        layers = getattr(text_config, "num_hidden_layers", None) or getattr(text_config, "n_layer", None)
        heads = getattr(text_config, "num_attention_heads", None) or getattr(text_config, "n_head", None)
        self.capabilities = Capabilities(name=f"local · {loaded.name}", max_context=self.max_context,
                                         layers=int(layers) if layers else None,
                                         heads=int(heads) if heads else None)
        self.device = torch.device(loaded.device) if loaded.device != "meta" else torch.device("cpu")
        self.lock = threading.RLock()
        self._cache: Any = None
        self._cache_ids: list[int] = []
        self.forward_tokens = 0
        """How many token positions went through the model (for tests and benchmarks)."""

    @property
    def input_device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def reset(self) -> None:
        with self.lock:
            self._cache = None
            self._cache_ids = []

    def cancel(self) -> None:
        """Nothing to abort: a local forward pass ends by itself (the engine checks its stop
        event between passes)."""

    def check_length(self, n: int) -> None:
        if self.max_context is not None and n > self.max_context:
            raise ContextOverflowError(
                f"the sequence has {n} tokens but the model's context is {self.max_context}"
            )

    def next_logits(
        self, ids: Sequence[int], *, attention: bool = False, hidden_states: bool = False
    ) -> BackendOutput:
        from transformers import DynamicCache

        ids = [int(i) for i in ids]
        if not ids:
            raise ValueError("next_logits needs at least one token")
        self.check_length(len(ids))
        with self.lock, torch.no_grad():
            keep = min(common_prefix(self._cache_ids, ids), len(ids) - 1)
            if self._cache is None or keep == 0:
                self._cache = DynamicCache(config=self.model.config)
                keep = 0
            elif keep < self._cache.get_seq_length():
                self._cache.crop(keep - self._cache.get_seq_length())
            new = torch.tensor([ids[keep:]], device=self.input_device)
            try:
                out = self._forward(new, attention=attention, hidden_states=hidden_states)
            except BaseException:
                self._cache = None
                self._cache_ids = []
                raise
            self._cache_ids = ids
            self.forward_tokens += new.shape[1]
            result = BackendOutput(logits=out.logits[0, -1].float())
            if attention and out.attentions:
                result.attention = torch.stack(
                    [layer[0, :, -1, :].float().cpu() for layer in out.attentions]
                )
            if hidden_states and out.hidden_states:
                result.hidden_states = torch.stack(
                    [h[0, -1, :].float().cpu() for h in out.hidden_states]
                )
            return result

    def _forward(self, new: torch.Tensor, *, attention: bool, hidden_states: bool) -> Any:
        if not attention:
            return self.model(input_ids=new, past_key_values=self._cache, use_cache=True,
                              output_hidden_states=hidden_states)
        with eager_attention(self.model):
            return self.model(input_ids=new, past_key_values=self._cache, use_cache=True,
                              output_attentions=True, output_hidden_states=hidden_states)

    def attention_matrix(self, ids: Sequence[int]) -> torch.Tensor:
        """``(layers, heads, T, T)`` attention of a whole sequence (one uncached forward)."""
        self.check_length(len(ids))
        with self.lock, torch.no_grad(), eager_attention(self.model):
            out = self.model(input_ids=torch.tensor([list(ids)], device=self.input_device),
                             use_cache=False, output_attentions=True)
        return torch.stack([layer[0].float().cpu() for layer in out.attentions])


class eager_attention:
    """Switch a model to eager attention (sdpa returns no weights) and back."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.previous: str | None = None

    def __enter__(self) -> None:
        current = getattr(self.model.config, "_attn_implementation", None)
        if current != "eager":
            self.previous = current
            self.model.set_attn_implementation("eager")

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            self.model.set_attn_implementation(self.previous)
