"""Light starts: help, sessions and tokenize import no torch and no transformers model code,
and the light tokenizer gives exactly transformers' ids, pieces and chat text."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tokentui.engine.prompts import PromptSpec, TokenTable, encode_prompt

HEAVY = ("torch", "transformers.modeling_utils", "transformers.models.auto.modeling_auto")
SUBCOMMANDS = ("tokenize", "next", "generate", "attribute", "attention", "graph", "inspect", "lens",
               "replay", "export", "sessions", "forks", "compare")


def loaded_after(*argv: str, env: dict[str, str] | None = None) -> tuple[list[str], str]:
    """Run the CLI in a fresh interpreter; return the heavy modules it imported and its output."""
    code = (
        "import sys\n"
        f"sys.argv = ['tokentui', *{list(argv)!r}]\n"
        "import tokentui.cli as cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env=env)
    line = [x for x in out.stdout.splitlines() if x.startswith("HEAVY=")][-1]
    return [m for m in line[6:].split(",") if m], out.stdout + out.stderr


def test_help_imports_nothing_heavy():
    heavy, text = loaded_after("--help")
    assert heavy == []
    assert "Usage: tokentui" in text and "Sampling:" in text and "Commands:" in text


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_help_imports_nothing_heavy(command):
    heavy, text = loaded_after(command, "--help")
    assert heavy == []
    assert f"Usage: tokentui {command}" in text


def test_sessions_imports_nothing_heavy(tmp_path):
    import os

    heavy, text = loaded_after("sessions", "--dir", str(tmp_path), env={**os.environ})
    assert heavy == []
    assert "error" not in text.lower() or "no session" in text.lower()


def test_tokenize_loads_only_the_tokenizer(bundled):
    heavy, text = loaded_after("tokenize", "Hello world", "--chat", "--json")
    assert heavy == []
    assert '"count"' in text


def test_empty_prompt_is_refused_before_any_load():
    heavy, text = loaded_after("generate", "   ")
    assert heavy == []
    assert "error: the prompt is empty" in text


def test_two_constraints_are_refused_before_any_load():
    heavy, text = loaded_after("generate", "Hi", "--regex", "[a-z]+", "--choice", "a|b")
    assert heavy == []
    assert "error: give one constraint, not 2" in text


def test_a_bad_flag_value_is_refused_before_any_load():
    heavy, text = loaded_after("next", "Hi", "--top-p", "1.5")
    assert heavy == []
    assert "error: top-p must be in (0, 1]" in text


SPECS = [PromptSpec("Hello world"), PromptSpec("Write a haiku about the sea.", system="Be brief."),
         PromptSpec("raw text, no template:\n\ttabs and  spaces", chat_template=False),
         PromptSpec("unicode: ü ß ∑ 😀 日本語 <|im_end|>")]


@pytest.mark.parametrize("spec", SPECS, ids=["chat", "system", "raw", "unicode"])
def test_light_tokenizer_matches_transformers(bundled, spec):
    from tokentui.engine import models
    from tokentui.engine.light_tokenizer import LightTokenizer

    light = models.load_tokenizer()
    assert isinstance(light, LightTokenizer)
    full = bundled.tokenizer
    ids = encode_prompt(full, spec)
    assert encode_prompt(light, spec) == ids
    assert light.decode(ids) == full.decode(ids)
    assert [t for t in TokenTable(light).tokens(ids)] == [t for t in TokenTable(full).tokens(ids)]


def test_light_tokenizer_pieces_match_over_the_vocabulary(bundled):
    from tokentui.engine import models

    light, full = models.load_tokenizer(), bundled.tokenizer
    assert len(light) == len(full)
    assert set(light.all_special_ids) == set(full.all_special_ids)
    sample = list(range(0, len(full), 97)) + list(range(0, 300))
    assert TokenTable(light).tokens(sample) == TokenTable(full).tokens(sample)
