"""Attention aggregation and rollout, lazy per-step capture, and the attention command."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from tokentui.engine.analysis import attention as attn
from tokentui.engine.errors import ParameterError


@pytest.fixture(scope="module")
def ids(tokenizer):
    return tokenizer("Once upon a time there was", add_special_tokens=False).input_ids


def random_attention(layers=3, heads=2, t=5):
    torch.manual_seed(1)
    a = torch.rand(layers, heads, t, t).tril()
    return a / a.sum(-1, keepdim=True)


def test_select_layer_head_and_means():
    a = random_attention()
    torch.testing.assert_close(attn.select(a, 1, 0), a[1, 0])
    torch.testing.assert_close(attn.select(a, -1, None), a[2].mean(0))
    torch.testing.assert_close(attn.select(a, None, 1), a[:, 1].mean(0))
    torch.testing.assert_close(attn.select(a, None, None), a.mean((0, 1)))


def test_rollout_by_hand():
    a = random_attention(layers=2)
    eye = torch.eye(5)
    steps = []
    for layer in a.mean(1):
        m = 0.5 * eye + 0.5 * layer
        steps.append(m / m.sum(-1, keepdim=True))
    want = steps[1] @ steps[0]
    got = attn.rollout(a)
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(got.sum(-1), torch.ones(5))
    assert torch.all(got.triu(1) == 0)  # still causal


@pytest.mark.parametrize(("layer", "head", "message"), [(3, None, "layer 3"), (-4, None, "layer -4"),
                                                       (0, 2, "head 2")])
def test_out_of_range(layer, head, message):
    with pytest.raises(ParameterError, match=message):
        attn.select(random_attention(), layer, head)


def test_attention_matrix_matches_the_backend(tiny_backend, ids):
    full = tiny_backend.attention_matrix(ids)
    m = attn.attention_matrix(tiny_backend, ids, layer=1, head=0)
    assert (m.layer, m.head, m.n_layers, m.n_heads) == (1, 0, 2, 4)
    torch.testing.assert_close(torch.tensor(m.weights), full[1, 0])
    assert [t.id for t in m.tokens] == ids
    assert json.loads(json.dumps(m.to_json()))["description"] == "layer 1, head 0"


def test_step_attention_is_the_last_row_of_the_full_matrix(tiny_backend, ids):
    """The cached one-token step gives the same row as the uncached full forward."""
    tiny_backend.next_logits(ids[:-1])  # warm the cache: the step then computes one position
    before = tiny_backend.forward_tokens
    step = attn.step_attention(tiny_backend, ids)
    assert tiny_backend.forward_tokens - before == 1
    full = tiny_backend.attention_matrix(ids)
    assert step.position == len(ids) - 1
    torch.testing.assert_close(torch.tensor(step.weights), full[:, :, -1, :], rtol=1e-4, atol=1e-5)


def test_cli_attention(tokenizer, real_backend, monkeypatch):
    from tokentui.cli import analysis, app

    monkeypatch.setattr(analysis, "load_backend", lambda opts, quiet=False: real_backend)
    runner = CliRunner()
    result = runner.invoke(app, ["attention", "Hello world", "--no-chat-template", "--layer", "2",
                                 "--head", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    n = len(tokenizer("Hello world").input_ids)
    assert (data["layer"], data["head"], len(data["weights"])) == (2, 3, n)
    assert all(sum(row) == pytest.approx(1.0, abs=1e-4) for row in data["weights"])
    table = runner.invoke(app, ["attention", "Hello world", "--no-chat-template"])
    assert table.exit_code == 0 and "layer 29, head mean" in " ".join(table.stdout.split())
    bad = runner.invoke(app, ["attention", "Hello", "--layer", "30"])
    assert bad.exit_code == 2 and "layer 30 is out of range" in bad.output
    assert bad.output.strip().count("\n") == 0
    both = runner.invoke(app, ["attention", "Hello", "--head", "1", "--mean"])
    assert both.exit_code == 2 and "not both" in both.output


def test_cli_attention_table_labels_rows_and_columns(tiny_backend, tokenizer, monkeypatch):
    """Rows carry position and piece; columns their position and piece while they fit (16 tokens or
    fewer), their position alone beyond that."""
    from tokentui.cli import analysis, app
    from tokentui.visible import visible

    monkeypatch.setattr(analysis, "load_backend", lambda *a, **k: tiny_backend)
    runner = CliRunner()
    short_prompt = "Once upon a time"
    result = runner.invoke(app, ["attention", short_prompt, "--no-chat-template", "--layer", "0"],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    pieces = [visible(tokenizer.decode([i])) for i in tokenizer(short_prompt).input_ids]
    lines = result.stdout.splitlines()
    header = next(k for k, line in enumerate(lines) if "┃" in line)
    positions = lines[header].split("┃")[2:]
    assert [p.strip() for p in positions] == [str(j) for j in range(len(pieces))]
    tops = [c.strip() for c in lines[header + 1].split("┃")[2:]]
    assert all(piece.startswith(top.rstrip("…")) for top, piece in zip(tops, pieces, strict=True))
    rows = [line.split("│") for line in lines if "│" in line]
    assert [r[0].strip() for r in rows] == [str(i) for i in range(len(pieces))]
    assert [r[1].strip() for r in rows] == [p.strip() for p in pieces]
    long_prompt = " ".join(["cat"] * 20)
    wide = runner.invoke(app, ["attention", long_prompt, "--no-chat-template"], env={"COLUMNS": "200"})
    assert wide.exit_code == 0, wide.output
    n = len(tokenizer(long_prompt).input_ids)
    head = next(line for line in wide.stdout.splitlines() if "┃" in line)
    assert [c.strip() for c in head.split("┃")[2:]] == [str(j) for j in range(n)]
