"""Tiny random-weight models of many architectures, built from their configs at test time.

Each model is a few thousand parameters wide (hidden 32, 2 layers) with a small byte-level BPE
tokenizer trained here in milliseconds, so nothing depends on the bundled model or the network.
``build(name, folder)`` writes a model folder the CLI loads with ``--model FOLDER``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

VOCAB = 384
BOS, EOS, PAD = 0, 1, 2
WINDOW = 8
"""Sliding window of the sliding-window models: the tests run past it."""

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "The capital of France is Paris. The cat sat on the mat and told a story.",
    "Once upon a time there was a small model that counted tokens one by one.",
    "Hello world! 0123456789 a b c d e f g h i j k l m n o p q r s t u v w x y z",
    "Tell me a story about a cat. The quick brown fox jumps over the lazy dog.",
]


def make_tokenizer() -> Any:
    """A byte-level BPE of ``VOCAB`` entries with a ChatML template; ids 0..2 are special."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB, special_tokens=["<|im_start|>", "<|im_end|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>",
                                   eos_token="<|im_end|>", pad_token="<|pad|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


COMMON: dict[str, Any] = dict(vocab_size=VOCAB, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
                              tie_word_embeddings=False)
LLAMA_LIKE: dict[str, Any] = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2,
                                  max_position_embeddings=256)


def _configs() -> dict[str, Callable[[], Any]]:
    import transformers as tf

    def c(cls: str, **kw: Any) -> Callable[[], Any]:
        return lambda: getattr(tf, cls)(**{**COMMON, **kw})

    return {
        "gpt2": c("GPT2Config", n_embd=32, n_layer=2, n_head=4, n_positions=256),
        "opt": c("OPTConfig", hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                 max_position_embeddings=256, word_embed_proj_dim=32),
        "gptj": c("GPTJConfig", n_embd=32, n_layer=2, n_head=4, rotary_dim=4, n_positions=256),
        "gpt_neox": c("GPTNeoXConfig", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, max_position_embeddings=256),
        "bloom": c("BloomConfig", hidden_size=32, n_layer=2, n_head=4),
        "falcon": c("FalconConfig", hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                    new_decoder_architecture=False, multi_query=True, alibi=False,
                    max_position_embeddings=256),
        "llama": c("LlamaConfig", **LLAMA_LIKE),
        "mistral": c("MistralConfig", **LLAMA_LIKE, sliding_window=WINDOW),
        "qwen2": c("Qwen2Config", **LLAMA_LIKE),
        "qwen3": c("Qwen3Config", **LLAMA_LIKE, head_dim=8),
        "gemma": c("GemmaConfig", **LLAMA_LIKE, head_dim=8),
        "gemma2": c("Gemma2Config", **LLAMA_LIKE, head_dim=8, sliding_window=WINDOW),
        "gemma3": c("Gemma3TextConfig", **{**LLAMA_LIKE, "num_hidden_layers": 3}, head_dim=8,
                    sliding_window=WINDOW, layer_types=["sliding_attention", "sliding_attention",
                                                        "full_attention"]),
        "phi": c("PhiConfig", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                 num_attention_heads=4, max_position_embeddings=256),
        "phi3": c("Phi3Config", **LLAMA_LIKE),
        "olmo2": c("Olmo2Config", **LLAMA_LIKE),
        "granite": c("GraniteConfig", **LLAMA_LIKE),
        "stablelm": c("StableLmConfig", **LLAMA_LIKE),
        "mamba": c("MambaConfig", hidden_size=32, state_size=8, num_hidden_layers=2, expand=2,
                   conv_kernel=4),
        "mamba2": c("Mamba2Config", hidden_size=32, state_size=8, num_hidden_layers=2, expand=2,
                    conv_kernel=4, num_heads=8, head_dim=8, n_groups=1, chunk_size=16),
        "jamba": c("JambaConfig", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, attn_layer_period=2,
                   attn_layer_offset=1, expert_layer_period=2, expert_layer_offset=1,
                   num_experts=2, num_experts_per_tok=1, mamba_d_state=8, mamba_d_conv=4,
                   mamba_expand=2, mamba_dt_rank=4, use_mamba_kernels=False,
                   max_position_embeddings=256),
        "bamba": c("BambaConfig", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, attn_layer_indices=[1],
                   mamba_n_heads=8, mamba_d_head=8, mamba_n_groups=1, mamba_d_state=8,
                   mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=16,
                   max_position_embeddings=256),
        "falcon_h1": c("FalconH1Config", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, mamba_d_ssm=64,
                       mamba_n_heads=8, mamba_d_head=8, mamba_n_groups=1, mamba_d_state=8,
                       mamba_d_conv=4, mamba_expand=2, mamba_chunk_size=16,
                       max_position_embeddings=256),
    }


def names() -> list[str]:
    return list(_configs())


KINDS = {"mistral": "sliding", "gemma2": "sliding", "gemma3": "sliding", "bloom": "alibi",
         "gpt2": "learned", "opt": "learned", "mamba": "recurrent", "mamba2": "recurrent",
         "jamba": "hybrid", "bamba": "hybrid", "falcon_h1": "hybrid"}
"""The cache kind of each model that is not a plain rotary attention cache."""


def build_model(name: str, seed: int = 0) -> Any:
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    config = _configs()[name]()
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        # Sharper logits than the default init: a clear top-1 and something for filters to cut.
        model.get_output_embeddings().weight.mul_(20.0)
    model.requires_grad_(False)
    model.generation_config.eos_token_id = EOS
    model.generation_config.bos_token_id = BOS
    model.generation_config.pad_token_id = PAD
    return model


def build(name: str, folder: Path, tokenizer: Any | None = None, seed: int = 0) -> Path:
    """Write a loadable model folder (safetensors + tokenizer) for architecture ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    build_model(name, seed).save_pretrained(folder)
    (tokenizer or make_tokenizer()).save_pretrained(folder)
    return folder
