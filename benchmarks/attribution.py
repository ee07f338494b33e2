"""Attribution speed: tokentui's batched methods against captum's own unbatched calls.

1. Integrated gradients (layer IG over the embeddings) with 32 steps over a 100-token
   context: ``attribute_token`` against ``LayerIntegratedGradients`` called directly on
   the whole model's logits.
2. The full association matrix for 32 generated tokens: ``association_matrix`` (several
   targets per forward pass) against one captum call per output token.

Run: ``uv run python benchmarks/attribution.py [--device cpu] [--matrix-method saliency]``.
The numbers are checked to agree before the times are printed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TEXT = ("The old lighthouse keeper climbed the spiral stairs every evening, counting each of the "
        "ninety-nine steps, lighting the great lamp, and watching the ships pass safely through the "
        "narrow channel between the rocks. One stormy night in late autumn, he noticed a small boat")


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best time of ``repeat`` runs: process CPU seconds (``--clock cpu``, steady on a shared
    machine) or wall seconds (``--clock wall``)."""
    clock = time.process_time if CLOCK == "cpu" else time.perf_counter
    result = None
    best = float("inf")
    for _ in range(repeat):
        t0 = clock()
        result = fn()
        best = min(best, clock() - t0)
    return best, result


CLOCK = "cpu"


def captum_target(model: Any, position: int, token: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        logits = model(input_ids=input_ids, use_cache=False).logits
        return logits[:, position - 1].float().log_softmax(-1)[:, token]
    return forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--context", type=int, default=100)
    parser.add_argument("--generated", type=int, default=32)
    parser.add_argument("--matrix-method", default="saliency")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--only", choices=("ig", "matrix", "both"), default="both")
    args = parser.parse_args()
    global CLOCK
    CLOCK = args.clock


    torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    from tokentui.engine import models
    from tokentui.engine.backends.local import LocalBackend

    loaded = models.load(device=args.device)
    backend = LocalBackend(loaded)
    device = backend.model.get_input_embeddings().weight.device
    ids = backend.tokenizer(TEXT * 4, add_special_tokens=False).input_ids[:args.context + 1]
    print(f"model {loaded.name} on {device} ({loaded.dtype}), torch threads {torch.get_num_threads()}, "
          f"times in {args.clock} seconds" + (" (summed over threads)" if args.clock == "cpu" else ""))
    if args.only in ("ig", "both"):
        bench_ig(args, backend, ids)
    if args.only in ("matrix", "both"):
        bench_matrix(args, backend)


def bench_ig(args: argparse.Namespace, backend: Any, ids: list[int]) -> None:
    import captum.attr as ca

    from tokentui.engine.analysis import attribution as attr

    model, tok = backend.model, backend.tokenizer
    device = model.get_input_embeddings().weight.device

    # 1. IG, one target over a 100-token context
    pos = args.context
    pad = attr.baseline_id(tok, "pad")
    x = torch.tensor([ids[:pos]], device=device)
    lig = ca.LayerIntegratedGradients(captum_target(model, pos, ids[pos]), model.get_input_embeddings())
    t_captum, (raw, delta) = timed(lambda: lig.attribute(
        x, baselines=torch.full_like(x, pad), n_steps=args.steps, return_convergence_delta=True),
        args.repeat)
    cfg = attr.AttributionConfig(method="integrated_gradients", aggregation="sum", n_steps=args.steps,
                                 batch_size=max(args.batch_size, args.steps))
    t_ours, ours = timed(lambda: attr.attribute_token(backend, ids, pos, cfg), args.repeat)
    torch.testing.assert_close(torch.tensor(ours.scores), raw[0].sum(-1).float().cpu(), rtol=2e-3, atol=2e-3)
    print(f"\nIG, {args.steps} steps, {pos}-token context (delta {ours.convergence_delta:+.3f}, captum "
          f"{float(delta[0]):+.3f})")
    print(f"  captum LayerIntegratedGradients, full logits : {t_captum:8.2f} s")
    print(f"  tokentui attribute_token                     : {t_ours:8.2f} s   ({t_captum / t_ours:.2f}x)")



def bench_matrix(args: argparse.Namespace, backend: Any) -> None:
    import captum.attr as ca

    from tokentui.engine.analysis import attribution as attr

    model, tok = backend.model, backend.tokenizer
    device = model.get_input_embeddings().weight.device
    pad = attr.baseline_id(tok, "pad")
    with torch.no_grad():
        prompt = tok(TEXT, add_special_tokens=False).input_ids
        out = model.generate(torch.tensor([prompt], device=device), max_new_tokens=args.generated,
                             min_new_tokens=args.generated, do_sample=False)
    seq = out[0].tolist()
    n_in = len(prompt)
    method = args.matrix_method

    def captum_unbatched() -> list[torch.Tensor]:
        rows = []
        for p in range(n_in, len(seq)):
            forward = captum_target(model, p, seq[p])
            if method == "integrated_gradients":
                xi = torch.tensor([seq[:p]], device=device)
                r = ca.LayerIntegratedGradients(forward, model.get_input_embeddings()).attribute(
                    xi, baselines=torch.full_like(xi, pad), n_steps=args.steps)
                rows.append(r[0].sum(-1).float().cpu())
                continue

            def from_embeds(e: torch.Tensor, p: int = p) -> torch.Tensor:
                logits = model(inputs_embeds=e, use_cache=False).logits
                return logits[:, p - 1].float().log_softmax(-1)[:, seq[p]]

            e = model.get_input_embeddings()(torch.tensor([seq[:p]], device=device)).detach()
            cls = {"saliency": ca.Saliency, "input_x_gradient": ca.InputXGradient}[method]
            rows.append(cls(from_embeds).attribute(e)[0].float().norm(dim=-1).cpu())
        return rows

    agg = "sum" if method == "integrated_gradients" else "l2"
    with torch.enable_grad():
        t_plain, plain = timed(captum_unbatched, args.repeat)
    results = []
    for batch in sorted({1, args.batch_size}):
        mcfg = attr.AttributionConfig(method=method, aggregation=agg, n_steps=args.steps, batch_size=batch)
        t, matrix = timed(lambda c=mcfg: attr.association_matrix(backend, seq, n_in, c), args.repeat)
        for row, ref in zip(matrix.rows, plain, strict=True):
            torch.testing.assert_close(torch.tensor(row), ref, rtol=2e-3, atol=2e-3)
        results.append((batch, t))
    print(f"\nassociation matrix, {method}, {args.generated} generated tokens after a {n_in}-token prompt")
    print(f"  captum, one call per output token            : {t_plain:8.2f} s")
    for batch, t in results:
        print(f"  tokentui, {batch:3d} rows per forward pass        : {t:8.2f} s   ({t_plain / t:.2f}x)")


if __name__ == "__main__":
    main()
