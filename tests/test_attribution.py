"""Attribution: numbers against captum called directly, batching, IG completeness, the JSON format."""

from __future__ import annotations

import json
import threading

import captum.attr as ca
import jsonschema
import pytest
import torch
from typer.testing import CliRunner

from tokentui.engine.analysis import attribution as attr
from tokentui.engine.errors import ParameterError, TokentuiError

IDS_TEXT = "The cat sat on the mat because it was"


@pytest.fixture(scope="module")
def ids(tokenizer):
    return tokenizer(IDS_TEXT, add_special_tokens=False).input_ids


def full_logprob(model, target_pos, target_id):
    """The reference target: the whole model's logits (no shortcut), at the query position."""
    def forward(embeds):
        logits = model(inputs_embeds=embeds, use_cache=False).logits
        return logits[:, target_pos - 1].float().log_softmax(-1)[:, target_id]
    return forward


def test_target_logprob_matches_full_logits(tiny_backend, ids):
    model = tiny_backend.model
    x = torch.tensor([ids, ids])
    pos, tgt = torch.tensor([3, 7]), torch.tensor([ids[3], ids[7]])
    with torch.no_grad():
        got = attr.target_logprob(model, pos, tgt, input_ids=x)
        full = model(input_ids=x).logits.float().log_softmax(-1)
    want = torch.stack([full[0, 2, ids[3]], full[1, 6, ids[7]]])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("method", "cls", "aggregation"), [
    ("saliency", ca.Saliency, "l2"),
    ("input_x_gradient", ca.InputXGradient, "sum"),
])
def test_gradient_methods_match_captum(tiny_backend, ids, method, cls, aggregation):
    model, p = tiny_backend.model, 6
    embeds = model.get_input_embeddings()(torch.tensor([ids[:p]])).detach()
    raw = cls(full_logprob(model, p, ids[p])).attribute(embeds)[0]
    want = raw.norm(dim=-1) if aggregation == "l2" else raw.sum(dim=-1)
    got = attr.attribute_token(tiny_backend, ids, p, method, aggregation=aggregation)
    assert len(got.scores) == p and got.target.id == ids[p] and len(got.tokens) == p
    torch.testing.assert_close(torch.tensor(got.scores), want, rtol=1e-4, atol=1e-6)


def test_integrated_gradients_match_captum(tiny_backend, ids, tokenizer):
    model, p = tiny_backend.model, 7
    pad = attr.baseline_id(tokenizer, "pad")

    def forward(input_ids):
        logits = model(input_ids=input_ids, use_cache=False).logits
        return logits[:, p - 1].float().log_softmax(-1)[:, ids[p]]

    x = torch.tensor([ids[:p]])
    raw, delta = ca.LayerIntegratedGradients(forward, model.get_input_embeddings()).attribute(
        x, baselines=torch.full_like(x, pad), n_steps=8, return_convergence_delta=True)
    got = attr.attribute_token(tiny_backend, ids, p, "integrated_gradients", aggregation="sum", n_steps=8)
    torch.testing.assert_close(torch.tensor(got.scores), raw[0].sum(-1), rtol=1e-4, atol=1e-5)
    assert got.convergence_delta == pytest.approx(float(delta[0]), abs=1e-4)
    assert got.target_logprob == pytest.approx(float(forward(x)[0]), abs=1e-5)


def test_gradient_shap_is_seeded(tiny_backend, ids):
    a = attr.attribute_token(tiny_backend, ids, 5, "gradient_shap", n_steps=4)
    b = attr.attribute_token(tiny_backend, ids, 5, "gradient_shap", n_steps=4)
    assert a.scores == b.scores and len(a.scores) == 5 and a.convergence_delta is not None


def test_attention_methods_read_the_attention(tiny_backend, ids):
    att = tiny_backend.attention_matrix(ids[:6])
    p = 6
    last = attr.attribute_token(tiny_backend, ids, p, "attention_last")
    torch.testing.assert_close(torch.tensor(last.scores), att[-1].mean(0)[p - 1, :p])
    mean = attr.attribute_token(tiny_backend, ids, p, "attention_mean")
    torch.testing.assert_close(torch.tensor(mean.scores), att.mean((0, 1))[p - 1, :p])
    roll = attr.attribute_token(tiny_backend, ids, p, "attention_rollout")
    assert sum(roll.scores) == pytest.approx(1.0, abs=1e-5)
    assert roll.aggregation == "attention weight"


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients", "attention_rollout"])
def test_batched_matrix_equals_one_token_at_a_time(tiny_backend, ids, method):
    cfg = attr.AttributionConfig(method=method, n_steps=4, batch_size=8)
    calls: list[tuple[int, int]] = []
    matrix = attr.association_matrix(tiny_backend, ids, 5, cfg, progress=lambda d, t: calls.append((d, t)))
    assert [len(r) for r in matrix.rows] == [5, 6, 7, 8]
    assert calls[-1] == (4, 4)
    if method == "integrated_gradients":
        assert len(calls) == 2  # two targets (x 4 steps) per pass of 8 rows
    for i, row in enumerate(matrix.rows):
        one = attr.attribute_token(tiny_backend, ids, 5 + i, cfg)
        torch.testing.assert_close(torch.tensor(row), torch.tensor(one.scores), rtol=1e-4, atol=1e-5)


def test_cancel_stops_between_batches(tiny_backend, ids):
    cancel = threading.Event()
    cfg = attr.AttributionConfig(method="saliency", batch_size=1)

    def progress(done, total):
        cancel.set()

    with pytest.raises(attr.AttributionCancelled, match="after 1 of 4"):
        attr.association_matrix(tiny_backend, ids, 5, cfg, progress=progress, cancel=cancel)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "nope"}, "unknown method"),
    ({"aggregation": "max"}, "unknown aggregation"),
    ({"n_steps": 0}, "steps"),
    ({"baseline": "zero"}, "unknown baseline"),
])
def test_bad_config(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        attr.AttributionConfig(**kwargs)


def test_baseline_token_id_must_be_in_the_vocabulary(tiny_backend, ids):
    vocab = len(tiny_backend.tokenizer)
    assert attr.baseline_id(tiny_backend.tokenizer, vocab - 1) == vocab - 1
    for bad in (vocab, 10**9):
        with pytest.raises(ParameterError, match="outside the vocabulary"):
            attr.attribute_token(tiny_backend, ids, 3, "integrated_gradients", baseline=bad, n_steps=2)


def test_bad_position_and_deeplift_refusal(tiny_backend, ids):
    with pytest.raises(ParameterError, match="out of range"):
        attr.attribute_token(tiny_backend, ids, 0, "saliency")
    with pytest.raises(ParameterError, match="out of range"):
        attr.attribute_token(tiny_backend, ids, len(ids), "saliency")
    # SiLU has no DeepLift rule in captum: the method says so instead of returning a gradient.
    with pytest.raises(ParameterError, match="layer_deeplift is not meaningful"):
        attr.attribute_token(tiny_backend, ids, 4, "layer_deeplift")
    assert issubclass(attr.AttributionCancelled, TokentuiError)


def test_integrated_gradients_completeness_on_the_bundled_model(real_backend, tokenizer):
    """sum(attributions) = f(input) - f(baseline) within the reported delta (f computed here)."""
    ids = tokenizer("The capital of France is Paris", add_special_tokens=False).input_ids
    p = len(ids) - 1
    got = attr.attribute_token(real_backend, ids, p, "integrated_gradients", aggregation="sum", n_steps=8)
    model = real_backend.model
    pad = attr.baseline_id(tokenizer, "pad")
    with torch.no_grad():
        f_x = model(input_ids=torch.tensor([ids[:p]])).logits[0, -1].float().log_softmax(-1)[ids[p]]
        f_b = model(input_ids=torch.tensor([[pad] * p])).logits[0, -1].float().log_softmax(-1)[ids[p]]
    assert got.target_logprob == pytest.approx(float(f_x), abs=1e-3)
    assert got.baseline_logprob == pytest.approx(float(f_b), abs=1e-3)
    gap = abs(sum(got.scores) - float(f_x - f_b))
    assert gap <= abs(got.convergence_delta) + 1e-3
    assert gap == pytest.approx(abs(got.convergence_delta), abs=1e-3)


ANALYZER_SCHEMA = {
    "type": "object",
    "required": ["metadata", "data"],
    "properties": {
        "metadata": {
            "type": "object",
            "required": ["timestamp", "llm_id", "prompt", "attribution_method", "generation_params"],
            "properties": {"timestamp": {"type": "string"}, "llm_id": {"type": "string"},
                           "prompt": {"type": "string"}, "attribution_method": {"type": "string"},
                           "generation_params": {"type": "object"}},
        },
        "data": {
            "type": "object",
            "required": ["input_tokens", "output_tokens", "association_matrix", "normalized_association"],
            "properties": {
                "input_tokens": {"type": "array", "items": {"$ref": "#/$defs/token"}},
                "output_tokens": {"type": "array", "items": {"$ref": "#/$defs/token"}},
                "association_matrix": {"type": "array", "items": {
                    "type": "array", "items": {"type": "number"}}},
                "normalized_association": {"type": "array", "items": {
                    "type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}}},
            },
        },
    },
    "$defs": {"token": {"type": "object", "required": ["token", "token_id"],
                        "properties": {"token": {"type": "string"}, "token_id": {"type": "integer"}}}},
}


def check_analyzer_json(data, method):
    jsonschema.validate(data, ANALYZER_SCHEMA)
    d = data["data"]
    n_in, n_out = len(d["input_tokens"]), len(d["output_tokens"])
    assert data["metadata"]["attribution_method"] == method
    assert len(d["association_matrix"]) == n_out == len(d["normalized_association"])
    for i, (row, norm) in enumerate(zip(d["association_matrix"], d["normalized_association"], strict=True)):
        assert len(row) == len(norm) == n_in + n_out
        assert all(v == 0 for v in row[n_in + i:])  # the token itself and later: padding
        assert max(norm) == pytest.approx(1.0)
        top = max(abs(v) for v in row)
        assert norm == pytest.approx([abs(v) / top for v in row])
    assert data["metadata"]["attribution"]["row_lengths"] == [n_in + i for i in range(n_out)]


def test_matrix_json_format(tiny_backend, ids):
    cfg = attr.AttributionConfig(method="input_x_gradient", aggregation="sum")
    matrix = attr.association_matrix(tiny_backend, ids, 6, cfg)
    data = json.loads(json.dumps(matrix.to_json(llm_id="tiny", prompt=IDS_TEXT)))
    check_analyzer_json(data, "input_x_gradient")
    assert data["metadata"]["attribution"]["aggregation"] == "sum"


# ----- the CLI (bundled model, short prompts) ------------------------------------------------------
@pytest.fixture
def cli(real_backend, monkeypatch):
    """The CLI over the already loaded bundled model (loading is tested with `generate`)."""
    from tokentui.cli import analysis, app

    monkeypatch.setattr(analysis, "load_backend", lambda opts, quiet=False: real_backend)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args))


def test_cli_attribute_json(cli, tokenizer):
    completion = tokenizer(" Paris.", add_special_tokens=False).input_ids
    result = cli("attribute", "The capital of France is", "--no-chat-template", "--completion-ids",
                 ",".join(map(str, completion)), "--method", "input_x_gradient", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    check_analyzer_json(data, "input_x_gradient")
    assert [t["token_id"] for t in data["data"]["output_tokens"]] == completion
    assert data["metadata"]["prompt"] == "The capital of France is"


def test_cli_attribute_table_and_errors(cli):
    result = cli("attribute", "Hi", "--no-chat-template", "-n", "2", "--greedy", "--method", "attention_last")
    assert result.exit_code == 0, result.output
    assert "attention_last" in result.stdout and "columns" in result.stdout
    bad = cli("attribute", "Hi", "--method", "bogus")
    assert bad.exit_code == 2 and bad.output.strip().count("\n") == 0
    assert "unknown method" in bad.output
    assert cli("attribute", "--batch", "x.txt").exit_code == 2


def test_cli_attribute_batch(cli, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("One plus one is\n\nThe sky is\n")
    out = tmp_path / "out"
    result = cli("attribute", "--batch", str(prompts), "--out", str(out), "--no-chat-template",
                 "-n", "2", "--greedy", "--method", "saliency")
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.json"))
    assert [f.name for f in files] == ["0001.json", "0002.json"]
    for f, prompt in zip(files, ["One plus one is", "The sky is"], strict=True):
        data = json.loads(f.read_text())
        check_analyzer_json(data, "saliency")
        assert data["metadata"]["prompt"] == prompt and len(data["data"]["output_tokens"]) == 2


def test_gradients_fall_back_to_cpu_with_a_note(monkeypatch):
    """A device that cannot do the backward pass: the work is redone on a CPU copy, and said so."""
    class OnDevice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(3, 2, device="meta")

        def get_input_embeddings(self):
            return self.embed

    class Backend:
        capabilities = type("Caps", (), {"gradients": True, "name": "fake"})()
        model = OnDevice()
        lock = threading.RLock()

    cpu_model = object()
    monkeypatch.setattr(attr, "_cpu_copy", lambda model: cpu_model)

    def work(model):
        if model is not cpu_model:
            raise NotImplementedError("aten::foo_backward is not implemented for this device\nmore")
        return "done"

    result, device, note = attr._run_gradient(Backend(), work)
    assert (result, device) == ("done", "cpu")
    assert note == ("gradients failed on meta (aten::foo_backward is not implemented for this device): "
                    "computed on CPU in float32")
