"""transformers in this process: one cache, cut back to the longest shared prefix.

Rewinding, deleting and branching never recompute the shared prefix when the cache can be cut:
the backend keeps the ids the cache was built from, and a request for another sequence cuts the
cache to their common prefix and feeds only the rest. How it is cut depends on the cache kind
(``CACHE_KINDS``):

* ``attention`` (full attention, rotary, ALiBi or learned positions): ``DynamicCache.crop``.
* ``sliding`` (Mistral, Gemma 2/3 local layers): transformers' sliding layers drop keys older
  than the window and cannot be cropped past it, so the cache is built with full layers instead
  (every key kept, the mask still applies the window): exact, and crops like ``attention``.
* ``recurrent`` (Mamba, Mamba 2) and ``hybrid`` (Jamba, Bamba, ...): a recurrent state cannot be
  run backwards. The backend keeps copies of the cache at every ``snapshot_every``-th position
  and at the last few positions fed (keyed by the ids they saw, so they serve every branch);
  a request restores the longest kept state that is a prefix of it and feeds the tokens from
  there one at a time: a branch costs at most ``snapshot_every`` extra tokens, or a recompute
  from the start when the fork lies inside the prompt.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch

from tokentui.engine.backends.base import BackendOutput, Capabilities
from tokentui.engine.errors import CapabilityError, ContextOverflowError
from tokentui.engine.models import LoadedModel

CACHE_KINDS = ("attention", "sliding", "recurrent", "hybrid")


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def cache_kind(model: Any) -> str:
    """Which of ``CACHE_KINDS`` the model's default cache is (read from transformers' own layers)."""
    from transformers.cache_utils import CacheLayerMixin, LinearAttentionCacheLayerMixin

    layers = _cache_layers(model)
    recurrent = [isinstance(layer, LinearAttentionCacheLayerMixin) for layer in layers]
    attention = [isinstance(layer, CacheLayerMixin) for layer in layers]
    if any(recurrent):
        return "hybrid" if any(attention) else "recurrent"
    if any(getattr(layer, "is_sliding", False) for layer in layers):
        return "sliding"
    return "attention"


def _cache_layers(model: Any) -> list[Any]:
    from transformers import DynamicCache

    return list(DynamicCache(config=model.config).layers)


def attention_layers(model: Any) -> int:
    """How many layers have attention (all of them but a hybrid's recurrent ones)."""
    from transformers.cache_utils import CacheLayerMixin

    return sum(isinstance(layer, CacheLayerMixin) for layer in _cache_layers(model))


def architecture_name(model: Any) -> str:
    """``Mamba``, ``Llama``, ...: the model class without its causal-LM suffix."""
    name = type(model).__name__
    for suffix in ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration"):
        name = name.removesuffix(suffix)
    return name or type(model).__name__


class LocalBackend:
    """A transformers causal LM with a reusable cache."""

    snapshot_every = 16
    """Recurrent and hybrid models: keep the recurrent state at every N-th position."""
    recent_snapshots = 4
    """... and at the last N positions fed (re-rolling the newest steps costs one step)."""
    max_snapshots = 48
    """At most this many kept states (least recently used off-grid ones go first)."""

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
        self.cache_kind = cache_kind(self.model)
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "past_key_values" if "past_key_values" in params else "cache_params"
        if self.cache_kind == "recurrent":
            arch = architecture_name(self.model)
            self.capabilities = Capabilities(
                name=f"local · {loaded.name}", max_context=self.max_context,
                layers=int(layers) if layers else None, heads=None, attention=False,
                reasons=(("attention", f"{arch} is a recurrent model: it has no attention weights"),))
        else:
            if self.cache_kind == "hybrid":
                # The attention pane offers the layers that have attention weights.
                layers = attention_layers(self.model) or layers
            self.capabilities = Capabilities(name=f"local · {loaded.name}", max_context=self.max_context,
                                             layers=int(layers) if layers else None,
                                             heads=int(heads) if heads else None)
        self.device = torch.device(loaded.device) if loaded.device != "meta" else torch.device("cpu")
        self.lock = threading.RLock()
        self._cache: Any = None
        self._cache_ids: list[int] = []
        self._snapshots: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        """Recurrent and hybrid models: copies of the whole cache by the ids it had seen (LRU)."""
        self._ahead: dict[int, torch.Tensor] = {}
        """Logits after ``_ahead_ids[:k]`` by ``k``, from the last ``read_ahead``."""
        self._ahead_ids: list[int] = []
        self.forward_tokens = 0
        """How many token positions went through the model (for tests and benchmarks)."""
        self.forward_calls = 0
        """How many forward passes ran (for tests and benchmarks)."""
        self.restores = 0
        """How many times a kept recurrent state was restored (for tests)."""

    @property
    def input_device(self) -> torch.device:
        return self.model.get_input_embeddings().weight.device

    def reset(self) -> None:
        with self.lock:
            self._cache = None
            self._cache_ids = []
            self._snapshots.clear()
            self._ahead, self._ahead_ids = {}, []

    def cancel(self) -> None:
        """Nothing to abort: a local forward pass ends by itself (the engine checks its stop
        event between passes)."""

    def check_length(self, n: int) -> None:
        if self.max_context is not None and n > self.max_context:
            raise ContextOverflowError(
                f"the sequence has {n} tokens but the model's context is {self.max_context}"
            )

    # -- the cache ---------------------------------------------------------------------------
    def _new_cache(self) -> Any:
        from transformers import DynamicCache

        if self.cache_kind == "sliding":
            # Full layers: every key kept, so a crop past the window is exact (the mask still
            # applies the window from the config).
            return DynamicCache()
        return DynamicCache(config=self.model.config)

    def _snapshot(self, ids: Sequence[int]) -> None:
        key = tuple(ids)
        self._snapshots[key] = copy.deepcopy(self._cache)
        self._snapshots.move_to_end(key)
        recent = {tuple(ids[:n]) for n in range(max(1, len(ids) - self.recent_snapshots + 1),
                                                len(ids) + 1)}
        while len(self._snapshots) > self.max_snapshots:
            victim = next((k for k in self._snapshots if k not in recent and len(k) % self.snapshot_every),
                          next(k for k in self._snapshots if k not in recent))
            del self._snapshots[victim]

    def _cut(self, ids: list[int], keep: int) -> int:
        """Cut the cache back so it holds ``ids[:n]`` for some ``n <= len(ids) - 1``; returns n."""
        held = len(self._cache_ids)
        if keep >= held:
            return held
        if self.cache_kind in ("attention", "sliding"):
            self._cache.crop(keep - held)
            return keep
        best: tuple[int, ...] = ()
        for key in self._snapshots:
            if len(best) < len(key) < len(ids) and tuple(ids[:len(key)]) == key:
                best = key
        if not best:
            self._cache = self._new_cache()
            return 0
        self._cache = copy.deepcopy(self._snapshots[best])
        self._snapshots.move_to_end(best)
        self.restores += 1
        return len(best)

    def read_ahead(self, ids: Sequence[int], start: int) -> bool:
        """One forward over ``ids`` (after what the cache holds); the logits after every prefix
        ``ids[:k]``, ``start <= k <= len(ids)``, are kept for ``next_logits``. Attention and
        sliding caches only: transformers' recurrent states take one token at a time here."""
        ids = [int(i) for i in ids]
        if self.cache_kind not in ("attention", "sliding") or not 1 <= start <= len(ids):
            return False
        self.check_length(len(ids))
        with self.lock, torch.no_grad():
            keep = min(common_prefix(self._cache_ids, ids), start - 1)
            out, fed = self._run(ids, keep, attention=False, hidden_states=False)
            rows = out.logits[0].float()
            self._ahead_ids = ids
            self._ahead = {k: rows[k - 1 - fed] for k in range(max(start, fed + 1), len(ids) + 1)}
            return True

    def next_logits(
        self, ids: Sequence[int], *, attention: bool = False, hidden_states: bool = False
    ) -> BackendOutput:
        ids = [int(i) for i in ids]
        if not ids:
            raise ValueError("next_logits needs at least one token")
        self.check_length(len(ids))
        attention = attention and self.capabilities.attention
        with self.lock, torch.no_grad():
            if self._ahead and not attention and not hidden_states:
                row = self._ahead.get(len(ids))
                if row is not None and self._ahead_ids[:len(ids)] == ids:
                    return BackendOutput(logits=row)
            self._ahead, self._ahead_ids = {}, []
            keep = min(common_prefix(self._cache_ids, ids), len(ids) - 1)
            out, _ = self._run(ids, keep, attention=attention, hidden_states=hidden_states)
            result = BackendOutput(logits=out.logits[0, -1].float())
            attentions = getattr(out, "attentions", None)
            if attention and attentions:
                result.attention = torch.stack(
                    [layer[0, :, -1, :].float().cpu() for layer in attentions]
                )
            states = getattr(out, "hidden_states", None)
            if hidden_states and states:
                result.hidden_states = torch.stack([h[0, -1, :].float().cpu() for h in states])
            return result

    def _run(self, ids: list[int], keep: int, *, attention: bool, hidden_states: bool
             ) -> tuple[Any, int]:
        """Cut the cache back to at most ``ids[:keep]`` and feed the rest of ``ids``. Returns the
        output and how many tokens the cache held before it (logits row ``j`` follows
        ``ids[:fed + j + 1]``); a failure leaves no cache, never a half-fed one."""
        try:
            if self._cache is None or (keep == 0 and self.cache_kind in ("attention", "sliding")):
                self._cache, fed = self._new_cache(), 0
            else:
                fed = self._cut(ids, keep)
            self._cache_ids = ids[:fed]
            out = self._feed(ids, fed, attention=attention, hidden_states=hidden_states)
        except BaseException:
            self.reset()
            raise
        self._cache_ids = ids
        return out, fed

    def _feed(self, ids: list[int], start: int, *, attention: bool, hidden_states: bool) -> Any:
        """Feed ``ids[start:]``. A recurrent state is advanced one token at a time (transformers'
        Mamba gives wrong outputs for several tokens fed onto a kept state) and kept at grid
        positions and at the last few positions."""
        recurrent = self.cache_kind in ("recurrent", "hybrid")
        stops = [len(ids)]
        if recurrent and start > 0:
            stops = list(range(start + 1, len(ids) + 1))
        out = None
        at = start
        for stop in stops:
            new = torch.tensor([ids[at:stop]], device=self.input_device)
            last = stop == len(ids)
            out = self._forward(new, attention=attention and last, hidden_states=hidden_states and last)
            self.forward_tokens += stop - at
            at = stop
            if recurrent and (stop % self.snapshot_every == 0 or stop > len(ids) - self.recent_snapshots):
                self._snapshot(ids[:stop])
        return out

    def _forward(self, new: torch.Tensor, *, attention: bool, hidden_states: bool) -> Any:
        self.forward_calls += 1
        kwargs: dict[str, Any] = {"input_ids": new, self._cache_arg: self._cache, "use_cache": True,
                                  "output_hidden_states": hidden_states}
        if not attention:
            return self.model(**kwargs)
        with eager_attention(self.model):
            return self.model(**kwargs, output_attentions=True)

    def attention_matrix(self, ids: Sequence[int]) -> torch.Tensor:
        """``(layers, heads, T, T)`` attention of a whole sequence (one uncached forward)."""
        if not self.capabilities.attention:
            raise CapabilityError(f"{self.capabilities.name} gives no attention weights: "
                                  f"{self.capabilities.why_not('attention')}")
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
