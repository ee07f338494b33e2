"""tokentui diff through typer's CliRunner, on two tiny random models saved as folders."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_tiny_loaded
from test_lockstep import js_bits, kl_bits, reference
from typer.testing import CliRunner

from tokentui.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def other_loaded(tokenizer):
    return make_tiny_loaded(tokenizer, seed=1)


@pytest.fixture(scope="module")
def other_dir(other_loaded, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-other")
    other_loaded.model.save_pretrained(folder)
    other_loaded.tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def foreign_dir(tmp_path_factory):
    """A tiny model with a tokenizer of its own (a BPE trained here on one sentence)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE(unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.ByteLevel()
    raw.train_from_iterator(["the cat sat on the mat"] * 20,
                            trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=1, num_attention_heads=2,
                                         num_key_value_heads=1, bos_token_id=1, eos_token_id=2))
    folder = tmp_path_factory.mktemp("tiny-foreign")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def invoke(*args: str):
    return runner.invoke(app, ["diff", *args])


def test_diff_json_gives_what_transformers_gives(tiny_dir, other_dir, tiny_loaded, other_loaded, tokenizer):
    result = invoke("Tell me a story.", "--model", str(tiny_dir), "--model-b", str(other_dir),
                    "--greedy", "-n", "4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["driver"] == "a" and data["estimated"] is False and len(data["steps"]) == 4
    ids = data["prompt_ids"] + [s["token"]["id"] for s in data["steps"]]
    ra = reference(tiny_loaded.model, ids, len(data["prompt_ids"]))
    rb = reference(other_loaded.model, ids, len(data["prompt_ids"]))
    for step, la, lb in zip(data["steps"], ra, rb, strict=True):
        assert step["kl_ab"] == pytest.approx(kl_bits(la, lb), rel=1e-4)
        assert step["kl_ba"] == pytest.approx(kl_bits(lb, la), rel=1e-4)
        assert step["js"] == pytest.approx(js_bits(la, lb), rel=1e-4)
        assert step["overlap"] == len(set(torch.topk(la, 10).indices.tolist())
                                      & set(torch.topk(lb, 10).indices.tolist()))
        assert step["rank_a"] == 1 and len(step["top_a"]) == len(step["top_b"]) == 10
    summary = data["summary"]
    assert summary["steps"] == 4
    assert summary["max_js"] == max(s["js"] for s in data["steps"])


def test_diff_jsonl_with_b_driving(tiny_dir, other_dir):
    result = invoke("Tell me a story.", "--model", str(tiny_dir), "--model-b", str(other_dir),
                    "--greedy", "-n", "3", "--jsonl", "--driver", "b")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 4 and "summary" in lines[-1]
    assert all(s["driver"] == "b" and s["rank_b"] == 1 for s in lines[:3])


def test_diff_table_and_text_file(tiny_dir, other_dir, tokenizer, tmp_path):
    text = tmp_path / "read.txt"
    text.write_text(" The cat sat on the mat.")
    result = invoke("Read this:", "--model", str(tiny_dir), "--model-b", str(other_dir), "--text", str(text))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "KL(A‖B)" in out and "KL(B‖A)" in out and "mean KL" in out and "largest JS" in out
    n = len(tokenizer(" The cat sat on the mat.", add_special_tokens=False).input_ids)
    assert f"{n} steps" in out
    data = json.loads(invoke("Read this:", "--model", str(tiny_dir), "--model-b", str(other_dir),
                             "--text", str(text), "--json").stdout)
    assert [s["token"]["id"] for s in data["steps"]] == tokenizer(
        " The cat sat on the mat.", add_special_tokens=False).input_ids
    assert all(s["how"] == "forced" for s in data["steps"])


def test_diff_refuses_other_tokenizers_in_one_line(tiny_dir, foreign_dir):
    result = invoke("hi", "--model", str(tiny_dir), "--model-b", str(foreign_dir), "-n", "2")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the two models have different tokenizers")
    assert "first differ at id 0" in lines[0]


def test_diff_bad_flags_fail_before_loading():
    for args, words in ((["--driver", "c"], "--driver"), (["--jsonl", "--json"], "not both"),
                        (["--dtype-b", "float8"], "unknown dtype"),
                        (["--served-model-b", "x"], "--base-url-b")):
        result = invoke("hi", *args)
        assert result.exit_code == 2 and words in result.stderr, (args, result.output)
