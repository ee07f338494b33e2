"""A scored text as one offline HTML page: coloured by rank bucket, alternatives on hover or focus.

No script and nothing fetched: the colours and the pop-ups are CSS (``:hover`` and
``:focus``; every token is focusable with the keyboard), each token also has a ``title``.
Token text is data: HTML-escaped, control characters shown as visible escapes.
"""

from __future__ import annotations

import html

from tokentui.engine.analysis.score import (
    BUCKET_LABELS,
    NO_CONTEXT,
    ScoredToken,
    ScoreResult,
    rank_bucket,
)
from tokentui.visible import visible

COLOURS = ("#b7f5b0", "#fff3a0", "#ffc38a", "#f59a9a", "#d9a8f5", "#e0e0e0")
"""Background per bucket: rank 1, 2-10, 11-100, 101-1000, >1000, no probability."""

CSS = """
body{font:15px/1.5 system-ui,sans-serif;margin:2em auto;max-width:62em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:2em}
.meta{color:#555;font-size:.9em}
.legend span{display:inline-block;padding:0 .5em;margin-right:.4em;border-radius:3px}
.stream{font-family:ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-word;
 background:#fff;border:1px solid #ddd;padding:.8em;line-height:1.9}
.t{position:relative;border-radius:2px;cursor:default}
.t:focus{outline:2px solid #333}
.t .tip{display:none;position:absolute;left:0;top:1.7em;z-index:10;background:#fff;color:#222;
 border:1px solid #888;box-shadow:0 2px 6px #0003;padding:.3em .5em;white-space:pre;font-size:12px;
 line-height:1.3}
.t:hover .tip,.t:focus .tip{display:block}
.tip b{font-weight:600}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.15em .6em;text-align:left;
 border-bottom:1px solid #eee}td.n{text-align:right;font-variant-numeric:tabular-nums}
code{font-family:ui-monospace,Menlo,Consolas,monospace;background:#eee;padding:0 .2em}
""" + "".join(f".b{i}{{background:{c}}}" for i, c in enumerate(COLOURS))


def _esc(text: str) -> str:
    return html.escape(visible(text, glyphs=False), quote=True)


def _piece(text: str) -> str:
    """A token inside a table cell or a tip: whitespace as glyphs so it can be seen."""
    return html.escape(visible(text), quote=True)


def _num(x: float | None, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def _tip(tok: ScoredToken) -> tuple[str, str]:
    """The pop-up's HTML and the one-line ``title`` of one token (the pop-up lists the
    alternatives; the title alone keeps a long text's page small)."""
    if tok.p is None:
        return html.escape(NO_CONTEXT), NO_CONTEXT
    head = (f"p {tok.p:.4g} · rank {tok.rank if tok.rank is not None else '?'} · "
            f"{tok.surprisal_bits:.2f} bits" + (f" · entropy {tok.entropy_bits:.2f} bits"
                                                 if tok.entropy_bits is not None else ""))
    rows = [f"<b>{html.escape(head)}</b>"]
    for c in tok.top:
        mark = " ◀" if c.id == tok.id else ""
        rows.append(f"{c.rank:>2}. {c.p_base:.4f}  {_piece(c.text)}{mark}")
    return "\n".join(rows), head


def to_html(result: ScoreResult, *, title: str = "tokentui score", top: int = 10,
            source: str = "") -> str:
    """The whole page as one string."""
    spans = []
    for tok in result.tokens:
        tip, plain = _tip(tok)
        spans.append(f'<span class="t b{rank_bucket(tok.rank)}" tabindex="0" title="'
                     f'{html.escape(plain, quote=True)}">{_esc(tok.text)}'
                     f'<span class="tip">{tip}</span></span>')
    legend = "".join(f'<span class="b{i}">{html.escape(label)}</span>'
                     for i, label in enumerate(BUCKET_LABELS))
    summary = (f"perplexity {_num(result.perplexity, '.3f')} · "
               f"{_num(result.bits_per_token, '.3f')} bits per token · {result.n_tokens} tokens, "
               f"{len(result.scored)} scored")
    if result.window:
        summary += f" · windows of {result.window} tokens, stride {result.stride}"
    if result.prefix_tokens:
        summary += f" · after {result.prefix_tokens} unscored context tokens"
    if result.cancelled:
        summary += " · stopped early: only part of the text is scored"
    surprises = "".join(
        f"<tr><td class=n>{t.position}</td><td><code>{_piece(t.text)}</code></td>"
        f"<td class=n>{t.p:.4g}</td><td class=n>{t.rank if t.rank is not None else '?'}</td>"
        f"<td class=n>{t.surprisal_bits:.2f}</td>"
        f"<td>{' '.join(f'<code>{_piece(c.text)}</code>' for c in t.top[:3])}</td></tr>"
        for t in result.surprises(top) if t.p is not None)
    lines = "".join(
        f"<tr><td class=n>{ln.number}</td><td class=n>{_num(ln.mean_surprisal_bits, '.2f')}</td>"
        f"<td>{_esc(ln.text[:120])}</td></tr>" for ln in result.lines())
    first = result.tokens[0] if result.tokens else None
    note = ('<p class="meta">The first token has no probability: nothing comes before it.</p>'
            if first is not None and first.p is None else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{CSS}</style></head><body>
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(result.model)}{(' · ' + html.escape(source)) if source else ''}</p>
<p>{html.escape(summary)}</p>
<p class="legend">{legend}</p>
<p class="meta">Hover over a token or focus it (Tab) to see the model's alternatives there.</p>
<div class="stream">{''.join(spans)}</div>
{note}
<h2>The {top} most surprising tokens</h2>
<table><tr><th>#</th><th>token</th><th>p</th><th>rank</th><th>bits</th><th>the model expected</th></tr>
{surprises}</table>
<h2>Mean surprisal per line</h2>
<table><tr><th>line</th><th>bits</th><th>text</th></tr>{lines}</table>
</body></html>
"""
