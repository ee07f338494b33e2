"""Session exports: JSON lines for tools, a self-contained HTML page, Markdown for notes.

Everything is built from a :class:`~tokentui.engine.persist.session_file.SessionFile` (no model needed).
Token text is data in every format: JSON escapes control characters itself, the HTML page
escapes every piece and shows control characters as visible escapes, and Markdown keeps
text inside code fences or escaped table cells, so ``<script>``, Rich markup and ANSI
escapes in a token stay inert.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

from tokentui.engine.persist.files import json_text
from tokentui.engine.persist.session_file import BranchRecord, SessionFile
from tokentui.engine.results import Candidate, StepResult
from tokentui.visible import visible

FORMATS = ("jsonl", "html", "md")
KINDS = {"jsonl": "JSON-lines export", "html": "HTML export", "md": "Markdown export"}
HTML_HEAD = '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'


def is_own(fmt: str, head: bytes) -> bool:
    """Whether a file's first bytes are an earlier export in ``fmt`` (safe to replace)."""
    if fmt == "jsonl":
        return head.startswith(b'{"branch": ')
    if fmt == "html":
        return head.startswith(HTML_HEAD.encode()) and b"<title>tokentui session" in head
    if fmt == "md":
        return head.startswith(b"# tokentui session\n")
    return False


def export(sf: SessionFile, fmt: str) -> str:
    """The whole export as one string."""
    if fmt == "jsonl":
        return "".join(line + "\n" for line in jsonl_lines(sf))
    if fmt == "html":
        return to_html(sf)
    if fmt == "md":
        return to_markdown(sf)
    raise ValueError(f"unknown export format {fmt!r}")


# ----- JSON lines ----------------------------------------------------------------------------
def jsonl_lines(sf: SessionFile) -> Iterator[str]:
    """One JSON object per step of every branch (a branch's shared prefix marked ``inherited``)."""
    for b in sf.branches:
        for s in b.steps:
            row: dict[str, Any] = {"branch": b.id, "branch_name": b.name, "parent": b.parent,
                                   "fork_at": b.fork_at, "inherited": s.index < b.inherit}
            row.update(s.to_json())
            row["entropy_final"] = s.distribution.entropy_final
            yield json_text(row)


# ----- HTML ----------------------------------------------------------------------------------
CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
pre,.stream{font-family:ui-monospace,Menlo,Consolas,monospace}
pre{background:#eee;padding:.6em;white-space:pre-wrap;word-break:break-word}
.meta{color:#555;font-size:.9em}
.stream{white-space:pre-wrap;word-break:break-word;background:#fff;border:1px solid #ddd;
 padding:.8em;line-height:1.9}
.t{position:relative;border-radius:3px;padding:0 1px;cursor:default}
.t.shared{opacity:.55}.t.special{font-weight:bold;color:#708}
.t.forced,.t.alternative{outline:1px dashed #333}
.t .tip{display:none;position:absolute;left:0;top:1.7em;z-index:10;background:#fff;color:#222;
 border:1px solid #888;box-shadow:0 2px 6px #0003;padding:.3em .5em;white-space:nowrap;
 font-size:12px;line-height:1.3}
.t:hover .tip,.t:focus .tip{display:block}
.tip table{border-collapse:collapse}.tip td{padding:0 .4em}.tip tr.chosen{font-weight:bold}
.tip td.num{text-align:right}
.legend span{padding:0 .5em;margin-right:.3em;border-radius:3px}
"""


def colour(p: float) -> str:
    """Red (unlikely) through yellow to green (likely)."""
    p = min(1.0, max(0.0, p))
    return f"hsl({round(120 * p)},75%,82%)"


def _esc(text: str) -> str:
    """Outside text for the page: controls, bidi and invisible characters shown as escapes
    (a name can neither reorder the page nor hide), then HTML-escaped."""
    return html.escape(visible(text, glyphs=False), quote=True)


def _tip(step: StepResult) -> str:
    rows = []
    for c in step.distribution.candidates:
        cls = ' class="chosen"' if c.token.id == step.token.id else ""
        rows.append(f"<tr{cls}><td class=num>{c.rank}</td><td>{_esc(visible(c.token.text))}</td>"
                    f"<td class=num>{c.p_final:.3f}</td><td class=num>{c.p_base:.3f}</td></tr>")
    head = (f"<div>{_esc(step.how)} · p_final {step.p_final:.3f} · p_base {step.p_base:.3f} · "
            f"entropy {step.entropy:.2f} bits</div>")
    return (f'<span class="tip">{head}<table><tr><td>#</td><td>token</td><td>p_final</td>'
            f'<td>p_base</td></tr>{"".join(rows)}</table></span>')


def _stream(b: BranchRecord) -> str:
    spans = []
    for s in b.steps:
        classes = ["t", s.how]
        if s.index < b.fork_at:
            classes.append("shared")
        if s.token.special:
            classes.append("special")
        text = visible(s.token.text, glyphs=False)
        spans.append(f'<span class="{" ".join(classes)}" tabindex="0" '
                     f'style="background:{colour(s.p_final)}">{_esc(text)}{_tip(s)}</span>')
    return "".join(spans)


def _title_of(b: BranchRecord) -> str:
    where = "" if b.parent is None else f" · from branch {b.parent} at token {b.fork_at}"
    end = f" · stopped: {b.steps[-1].finish_reason}" if b.steps and b.steps[-1].finish_reason else ""
    return f"branch {b.id} · {b.name} · {len(b.steps)} tokens{where}{end}"


def to_html(sf: SessionFile) -> str:
    """A single page with inline CSS and no scripts or external resources (works offline)."""
    model = sf.model.name if sf.model else "unknown model"
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">",
        f"<title>tokentui session · {_esc(model)}</title><style>{CSS}</style></head><body>",
        "<h1>tokentui session</h1>",
        f'<p class="meta">model {_esc(model)} · saved {_esc(sf.saved_at)} · '
        f"{_esc(_params_line(sf))}</p>",
    ]
    if sf.prompt.system:
        parts.append(f"<h2>System</h2><pre>{_esc(visible(sf.prompt.system, glyphs=False))}</pre>")
    parts.append(f"<h2>Prompt</h2><pre>{_esc(visible(sf.prompt.text, glyphs=False))}</pre>")
    parts.append('<p class="legend">probability of the chosen token (p_final): '
                 + "".join(f'<span style="background:{colour(p)}">{p:.2g}</span>'
                           for p in (0.0, 0.25, 0.5, 0.75, 1.0))
                 + " · dashed: forced or alternative · faded: shared with the parent · "
                 "hover or focus a token for its top alternatives</p>")
    for b in sf.branches:
        parts.append(f'<h2 id="branch-{b.id}">{_esc(_title_of(b))}</h2>')
        parts.append(f'<div class="stream">{_stream(b)}</div>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _params_line(sf: SessionFile) -> str:
    p = sf.params
    if p.is_greedy:
        return "greedy"
    bits = [f"temperature {p.temperature:g}", f"top-p {p.top_p:g}"]
    if p.top_k:
        bits.append(f"top-k {p.top_k}")
    if p.min_p:
        bits.append(f"min-p {p.min_p:g}")
    if p.repetition_penalty != 1.0:
        bits.append(f"repetition penalty {p.repetition_penalty:g}")
    bits.append(f"seed {p.seed if p.seed is not None else sf.default_seed}")
    return ", ".join(bits)


# ----- Markdown ------------------------------------------------------------------------------
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#!|~])")


def md_cell(text: str, *, glyphs: bool = True) -> str:
    """Text safe inline in Markdown (a table cell, a heading): visible, HTML-escaped, and
    the punctuation that starts emphasis, code, links or cells backslash-escaped."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(visible(text, glyphs=glyphs).replace("\n", " "), quote=False))


def md_text(text: str) -> str:
    """Prose (names, settings) escaped like a cell but with ordinary spaces."""
    return md_cell(text, glyphs=False)


def fenced(text: str, info: str = "text") -> str:
    """A code fence longer than any run of backticks inside ``text``."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{visible(text, glyphs=False)}\n{fence}"


def _alts(step: StepResult, n: int = 3) -> str:
    others: list[Candidate] = sorted((c for c in step.distribution.candidates if c.token.id != step.token.id),
                                     key=lambda c: (c.p_final, c.p_base), reverse=True)[:n]
    return ", ".join(f"{md_cell(c.token.text)} {c.p_final:.2f}" for c in others)


def to_markdown(sf: SessionFile) -> str:
    """Notes: the settings, the prompt, and per branch its text and a table of its own steps."""
    model = sf.model.name if sf.model else "unknown model"
    lines = ["# tokentui session", "", f"- model: {md_text(model)}",
             f"- saved: {md_text(sf.saved_at)}", f"- sampling: {md_text(_params_line(sf))}", ""]
    if sf.prompt.system:
        lines += ["## System", "", fenced(sf.prompt.system), ""]
    lines += ["## Prompt", "", fenced(sf.prompt.text), ""]
    for b in sf.branches:
        text = "".join(s.token.text for s in b.steps)
        lines += [f"## {md_text(_title_of(b))}", "", fenced(text), ""]
        own = b.steps[b.fork_at:] if b.parent is not None else b.steps
        if not own:
            continue
        lines += ["| # | token | how | p_final | p_base | entropy | alternatives |",
                  "|--:|---|---|--:|--:|--:|---|"]
        for s in own:
            lines.append(f"| {s.index} | {md_cell(s.token.text)} | {s.how} | {s.p_final:.3f} | "
                         f"{s.p_base:.3f} | {s.entropy:.2f} | {_alts(s)} |")
        lines.append("")
    return "\n".join(lines)
