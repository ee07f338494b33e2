"""Scoring a text: tokens per second against a bare batched forward, and peak memory on 1 MB.

Speed (the bundled model): the same token ids go through ``score_text`` (softmax, rank,
entropy and top-N per position, results as dataclasses) and through a bare
``model(input_ids).logits`` pass, interleaved so machine load hits both alike. Prints the
medians and the ratio of tokens per second (goal: at least 0.9).

Memory (a tiny random model with the bundled tokenizer's vocabulary, so a 1 MB text runs in
about a minute): a 1 MB text read in windows; prints the peak resident memory above the
loaded model, the part held by the results, and what holding every position's logits would
have cost.

    uv run python benchmarks/score.py [--tokens 512] [--repeats 3] [--mb 1.0] [--threads 2]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path

import torch

from tokentui.engine import models
from tokentui.engine.analysis.score import score_text
from tokentui.engine.backends.local import LocalBackend
from tokentui.engine.prompts import encode_text

ROOT = Path(__file__).resolve().parent.parent


def corpus(n_bytes: int) -> str:
    """Real, varied text: this repository's Python and Markdown files, cut at ``n_bytes``."""
    parts: list[str] = []
    size = 0
    for path in sorted(ROOT.glob("tokentui/**/*.py")) + sorted(ROOT.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        parts.append(text)
        size += len(text.encode("utf-8"))
        if size >= n_bytes:
            break
    while size < n_bytes:  # a small checkout: repeat what there is
        parts.extend(parts)
        size *= 2
    return "".join(parts).encode("utf-8")[:n_bytes].decode("utf-8", "ignore")


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def speed(tokens: int, repeats: int) -> None:
    backend = LocalBackend(models.load())
    ids = encode_text(backend.tokenizer, corpus(tokens * 8))[:tokens]
    model = backend.model

    def bare() -> None:
        with torch.inference_mode():
            model(input_ids=torch.tensor([ids]), use_cache=False).logits.float()

    def scored() -> None:
        score_text(backend, ids, top_n=10)

    bare()
    scored()  # warm up
    times: dict[str, list[float]] = {"bare": [], "score": []}
    for _ in range(repeats):
        for name, fn in (("bare", bare), ("score", scored)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    b, s = statistics.median(times["bare"]), statistics.median(times["score"])
    print(f"speed · bundled {backend.loaded.name} · {len(ids)} tokens · {repeats} runs each, "
          f"interleaved, {torch.get_num_threads()} threads")
    print(f"  bare forward   {len(ids) / b:8.0f} tok/s   (median {b * 1000:.0f} ms; "
          f"runs {', '.join(f'{t * 1000:.0f}' for t in times['bare'])})")
    print(f"  score_text     {len(ids) / s:8.0f} tok/s   (median {s * 1000:.0f} ms; "
          f"runs {', '.join(f'{t * 1000:.0f}' for t in times['score'])})")
    print(f"  ratio          {b / s:8.2f}x (goal >= 0.9)")


def tiny_backend(context: int) -> LocalBackend:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = models.load_tokenizer(None)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=context, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).eval().requires_grad_(False)
    return LocalBackend(models.LoadedModel(model=model, tokenizer=tokenizer,
                                           source=models.ModelSource("dir", "tiny", "tiny"),
                                           device="cpu", dtype="float32", weights_hash=None))


def result_bytes(result: object) -> int:
    """Bytes of the per-token results: each ScoredToken, its arrays and its numbers (the Token
    objects are shared with the tokenizer's table and not counted)."""
    total = sys.getsizeof(result.tokens)  # type: ignore[attr-defined]
    for tok in result.tokens:  # type: ignore[attr-defined]
        total += sys.getsizeof(tok) + sys.getsizeof(tok.top_ids) + sys.getsizeof(tok.top_logprobs)
        total += sys.getsizeof(tok.top_logits)
        total += sum(sys.getsizeof(v) for v in (tok.position, tok.logprob, tok.rank,
                                                 tok.entropy_bits, tok.logit) if v is not None)
    return total


def memory(mb: float, top_n: int, context: int) -> None:
    backend = tiny_backend(context)
    text = corpus(int(mb * (1 << 20)))
    ids = encode_text(backend.tokenizer, text)
    gc.collect()
    base = status_kb("VmRSS")
    t0 = time.perf_counter()
    result = score_text(backend, ids, window=context, stride=context // 2, top_n=top_n)
    seconds = time.perf_counter() - t0
    peak = status_kb("VmHWM")
    held = result_bytes(result) // 1024
    vocab = backend.vocab_size
    print(f"memory · tiny random Llama (vocab {vocab}, context {context}) · "
          f"{len(text.encode('utf-8')) / (1 << 20):.2f} MB text · {len(ids)} tokens · windows of "
          f"{context}, stride {context // 2} · top {top_n} · {seconds:.0f} s "
          f"({len(ids) / seconds:.0f} tok/s)")
    print(f"  resident before scoring  {base / 1024:8.0f} MB")
    print(f"  peak during scoring      {peak / 1024:8.0f} MB   (+{(peak - base) / 1024:.0f} MB)")
    print(f"  held by the results      {held / 1024:8.1f} MB   "
          f"({held * 1024 / len(ids):.0f} bytes per token with its top {top_n}, by getsizeof)")
    per_mb = held * 1024 * (1 << 20) / len(text.encode("utf-8")) / (1 << 20)
    print(f"  1 MB of such text        ~{per_mb:.0f} MB of results; the passes' peak stays the same "
          "(it does not grow with the text)")
    print(f"  every logit kept instead {len(ids) * vocab * 4 / (1 << 30):8.1f} GB")
    assert len(result.tokens) == len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--mb", type=float, default=1.0)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=("speed", "memory"), default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.only != "memory":
        speed(args.tokens, args.repeats)
    if args.only != "speed":
        memory(args.mb, args.top, args.context)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
