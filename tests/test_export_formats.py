"""Exports: JSON lines, HTML and Markdown; hostile token text stays inert in all three."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace

import pytest

from tokentui.engine.persist import session_file as store
from tokentui.engine.results import Token
from tokentui.export import formats

HOSTILE = ["<script>alert(1)</script>", "[bold red]boom[/bold red]", "\x1b[31mred\x1b[0m",
           "```", "| a | b |", "<img src=x onerror=alert(2)>", "&amp;"]


@pytest.fixture(scope="module")
def session_file(tiny_loaded) -> store.SessionFile:
    from tokentui.engine.backends.local import LocalBackend
    from tokentui.engine.params import SamplingParams
    from tokentui.engine.prompts import PromptSpec
    from tokentui.engine.session import Session

    s = Session(LocalBackend(tiny_loaded), PromptSpec("Write <b>bold</b> [red]x[/red]", system="sys"),
                params=SamplingParams(seed=3))
    list(s.generate(len(HOSTILE) + 2))
    s.branch_from(1, 200)
    list(s.generate(2))
    return store.snapshot(s)


@pytest.fixture(scope="module")
def hostile(session_file) -> store.SessionFile:
    """The same session with token texts (chosen and candidates) replaced by hostile strings."""
    def poison(step, k):
        text = HOSTILE[k % len(HOSTILE)]
        cands = tuple(replace(c, token=Token(c.token.id, HOSTILE[(k + j) % len(HOSTILE)]))
                      for j, c in enumerate(step.distribution.candidates))
        return replace(step, token=Token(step.token.id, text),
                       distribution=replace(step.distribution, candidates=cands))

    branches = tuple(replace(b, steps=tuple(poison(s, k) for k, s in enumerate(b.steps)))
                     for b in session_file.branches)
    return replace(session_file, branches=branches)


def test_jsonl_has_one_line_per_step(session_file):
    lines = formats.export(session_file, "jsonl").splitlines()
    assert len(lines) == sum(len(b.steps) for b in session_file.branches)
    rows = [json.loads(line) for line in lines]
    assert {r["branch"] for r in rows} == {0, 1}
    assert sum(not r["inherited"] for r in rows) == session_file.n_tokens
    assert set(rows[0]) >= {"step", "token", "how", "p_base", "p_final", "entropy", "candidates"}


def test_hostile_text_is_inert_in_jsonl(hostile):
    text = formats.export(hostile, "jsonl")
    assert "\x1b" not in text  # JSON escapes control characters
    texts = {json.loads(line)["token"]["text"] for line in text.splitlines()}
    assert set(HOSTILE) <= texts  # and the data survives exactly


def test_hostile_text_is_inert_in_html(hostile):
    page = formats.export(hostile, "html")
    assert "<script" not in page.lower() and "<img" not in page.lower() and "\x1b" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "[bold red]boom[/bold red]" in page  # just text in HTML
    assert "\\x1b[31mred" in page  # the escape shown, not interpreted
    assert "&amp;amp;" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page  # the prompt too
    assert "http" not in page.replace("http-equiv", "")  # nothing to fetch: works offline


def test_hostile_text_is_inert_in_markdown(hostile):
    from markdown_it import MarkdownIt

    md = formats.export(hostile, "md")
    assert "\x1b" not in md
    # rendered by a CommonMark parser that passes raw HTML through, nothing becomes a tag
    rendered = MarkdownIt("commonmark", {"html": True}).enable("table").render(md)
    assert "<script" not in rendered and "<img" not in rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered
    assert rendered.count("<table>") == len(hostile.branches)
    # a token of backticks cannot close the fence around the branch text
    assert rendered.count("<pre><code") == len(hostile.branches) + 2  # system, prompt, branches
    rows = rendered.split("<tbody>")[1].split("</tbody>")[0].count("<tr>")
    assert rows == len(hostile.branches[0].steps)  # pipes in tokens did not split rows or cells


def test_markdown_lists_each_branch_from_its_fork(session_file):
    md = formats.export(session_file, "md")
    assert "## branch 0 · main" in md and "## branch 1 · branch 1 · 4 tokens · from branch 0 at token 1" in md
    assert "## System" in md and "## Prompt" in md


def test_unknown_format(session_file):
    with pytest.raises(ValueError, match="unknown export format"):
        formats.export(session_file, "pdf")


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_html_renders_in_headless_chromium(hostile, tmp_path):
    page = tmp_path / "session.html"
    page.write_text(formats.export(hostile, "html"), encoding="utf-8")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    assert 'class="stream"' in dom and dom.count('class="tip"') == sum(len(b.steps) for b in hostile.branches)
    assert "<script" not in dom.lower() and "<img" not in dom.lower()  # escaped text stayed text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, f"--screenshot={shot}", "--window-size=1000,900", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 5000
