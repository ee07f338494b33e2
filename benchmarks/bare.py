"""The bare transformers loop every benchmark compares against, in one place."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

PROMPT = "Write a short story about a lighthouse keeper."


def bare_steps(model: Any, ids: list[int]) -> Iterator[None]:
    """A bare KV-cache loop; each ``next()`` runs one step (softmax, top-10, forward)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), past_key_values=cache, use_cache=True)
        while True:
            probs = out.logits[0, -1].float().softmax(-1)
            top = probs.topk(10)
            next_id = int(top.indices[0])
            _ = top.values.tolist()
            out = model(input_ids=torch.tensor([[next_id]]), past_key_values=cache, use_cache=True)
            yield
