"""The first start: converting the bundled GGUF reports its progress per tensor."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_gguf_conversion_reports_each_tensor(tmp_path, monkeypatch):
    from tokentui.engine import models

    monkeypatch.setenv("TOKENTUI_CACHE", str(tmp_path))
    seen: list[tuple[str, float | None]] = []
    folder = models.ensure_converted(models.bundled_gguf_path(), lambda s, f: seen.append((s, f)))
    assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
    tensor_lines = [(s, f) for s, f in seen if "tensor " in s]
    assert len(tensor_lines) >= 20, "the bar must move while the tensors are dequantised"
    fractions = [f for _, f in seen if f is not None]
    assert fractions == sorted(fractions), "progress never goes backwards"
    assert tensor_lines[-1][0].endswith(tensor_lines[-1][0].split("/")[-1])
    last = tensor_lines[-1][0].split("tensor ")[1]
    done, total = (int(x) for x in last.split("/"))
    assert done == total > 100  # SmolLM2-135M has 272 tensors
