"""inspect and lens: what the model did with one token, and the logit lens of a whole sequence."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tokentui.cli import render
from tokentui.cli.options import SharedOptions, shared_options
from tokentui.cli.runtime import open_session, parse_ids, run_config
from tokentui.engine.results import Token

if TYPE_CHECKING:  # the analysis imports torch: only when a command runs
    from tokentui.engine.analysis.inside import (
        InsideReport,
        LensGrid,
        PositionInfo,
        TemperatureSweep,
        TokenInfo,
    )

Prompt = Annotated[str, typer.Argument(help="The prompt text.", show_default=False)]
CompletionIds = Annotated[str | None, typer.Option(
    "--completion-ids", help="Completion token ids already taken, comma-separated (e.g. 1,2,3).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
SWEEP_ROWS = (0.1, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_position)
    app.command("lens")(lens)


@shared_options("model", "prompt", "sampling", "constraint")
def inspect_position(
    prompt: Prompt,
    position: Annotated[int, typer.Option(
        "--position", help="0-based index into prompt + completion tokens; negative counts from "
        "the end (-1 = the last token).")] = -1,
    completion_ids: CompletionIds = None,
    show: Annotated[int, typer.Option(help="Tokens per layer in the logit lens.", min=1)] = 5,
    as_json: AsJson = False,
    *,
    opts: SharedOptions,
) -> None:
    """Everything the model did with one token: piece, embedding, position, logit lens,
    attention by layer and the temperature knob (--top-k/--top-p/--min-p/--temperature
    set the cuts it shows)."""
    from tokentui.engine.analysis import inside

    config = run_config(opts, prompt, need_prompt=True)
    session = open_session(config, completion_ids=parse_ids(completion_ids))
    report = inside.inspect(session, position, top_k=show)
    if as_json:
        render.print_json(report.to_json())
        return
    out = render.console()
    for part in report_parts(report):
        out.print(part)


@shared_options("model", "prompt", "sampling", "constraint")
def lens(
    prompt: Prompt,
    completion_ids: CompletionIds = None,
    as_json: AsJson = False,
    *,
    opts: SharedOptions,
) -> None:
    """The logit-lens grid: each layer's most likely next token at every position
    (green: it is the token that actually comes next)."""
    from tokentui.engine.analysis import inside

    config = run_config(opts, prompt, need_prompt=True)
    session = open_session(config, completion_ids=parse_ids(completion_ids))
    grid = inside.Inspector(session.backend).lens_grid(session.context_ids())
    if as_json:
        render.print_json(grid.to_json())
        return
    out = render.console()
    width = max(1, (out.width - 8) // 13)
    for lo in range(0, len(grid.tokens), width):
        out.print(grid_table(grid, lo, min(len(grid.tokens), lo + width)))


# ----- rendering -------------------------------------------------------------------------
def _piece(token: Token, limit: int = 12) -> Text:
    text = render.visible(token.text)
    return Text(text if len(text) <= limit else text[:limit - 1] + "…",
                style="bold magenta" if token.special else "")


def report_parts(report: InsideReport) -> list[object]:
    parts: list[object] = []
    if report.token:
        parts.append(token_panel(report.token, report))
    if report.embedding:
        emb = report.embedding
        parts.append(Text(f"Embedding · {len(emb.values)} numbers · L2 norm {emb.norm:.3f} · "
                          f"first: {', '.join(f'{v:+.3f}' for v in emb.values[:6])} …", style="bold"))
        table = Table()
        table.add_column("nearest token")
        table.add_column("id", justify="right")
        table.add_column("cosine", justify="right")
        for n in emb.nearest:
            table.add_row(render.token_cell(n.token), str(n.token.id), f"{n.cosine:.3f}")
        parts.append(table)
    if report.position:
        parts.append(position_part(report.position))
    if report.logit_lens:
        target = render.visible(report.target.text) if report.target else None
        table = Table(title="Logit lens · each layer's guess for the next token"
                            + (f" (actual: {target!r})" if target else ""), title_justify="left")
        table.add_column("layer", justify="right")
        table.add_column("top tokens")
        table.add_column("entropy", justify="right")
        if report.target:
            table.add_column("rank of actual", justify="right")
            table.add_column("p actual", justify="right")
        for layer in report.logit_lens:
            top = Text()
            for k, entry in enumerate(layer.top):
                if k:
                    top.append("  ")
                top.append_text(_piece(entry.token))
                top.append(f" {entry.p:.2f}", style="dim")
            row: list[Text | str] = [str(layer.layer), top, f"{layer.entropy:.2f}"]
            if report.target:
                row += [str(layer.target_rank), f"{layer.target_p:.4f}"]
            table.add_row(*row)
        parts.append(table)
    if report.attention_by_layer:
        parts.append(attention_table(report))
    if report.temperature_sweep:
        parts.extend(sweep_parts(report.temperature_sweep))
    for pane, reason in report.missing.items():
        parts.append(Text(f"{pane}: {reason}", style="yellow"))
    return parts


def token_panel(info: TokenInfo, report: InsideReport) -> Panel:
    word = Text()
    for k, piece in enumerate(info.word.pieces):
        if k:
            word.append("|", style="dim")
        word.append(render.visible(piece.text),
                    style="bold reverse" if info.word.start + k == info.index else "")
    body = Text()
    body.append(f"position {info.index} of {report.sequence_length} "
                f"({'prompt' if info.in_prompt else 'completion'}) · id {info.token.id} of "
                f"{info.vocab_size} · piece ")
    body.append_text(render.token_cell(info.token))
    body.append(f" · bytes {info.raw.hex(' ') or '(none)'}")
    if info.token.special:
        body.append(" · special", style="bold magenta")
    body.append("\nword: ")
    body.append_text(word)
    body.append(f"  ({len(info.word.pieces)} piece{'s' if len(info.word.pieces) != 1 else ''})")
    return Panel(body, title="Token", title_align="left")


def position_part(pos: PositionInfo) -> Table | Panel:
    if pos.kind == "rope":
        table = Table(title=f"Position {pos.index} · rotary (base {pos.base:g}, head_dim "
                            f"{pos.head_dim}, {pos.rope_type})", title_justify="left",
                      caption=pos.note, caption_justify="left")
        for name in ("pair", "freq (rad/pos)", "angle", "cos", "sin"):
            table.add_column(name, justify="right")
        half = len(pos.inv_freq)
        pairs = sorted({*range(min(4, half)), *range(max(0, half - 2), half)})
        for j in pairs:
            table.add_row(f"{j} & {j + half}", f"{pos.inv_freq[j]:.3g}", f"{pos.angle[j]:.3f}",
                          f"{pos.cos[j]:+.4f}", f"{pos.sin[j]:+.4f}")
        return table
    if pos.kind == "learned":
        return Panel(Text(f"{pos.note}\nposition vector norm {pos.vector_norm:.3f} · token + "
                          f"position norm {pos.sum_norm:.3f} · first: "
                          f"{', '.join(f'{v:+.3f}' for v in pos.vector[:6])} …"),
                     title=f"Position {pos.index} · learned", title_align="left")
    return Panel(Text(pos.note), title=f"Position {pos.index} · {pos.kind}", title_align="left")


def attention_table(report: InsideReport) -> Table:
    table = Table(title=f"Attention from position {report.index} to earlier tokens "
                        "(mean over heads)", title_justify="left")
    table.add_column("layer", justify="right")
    table.add_column("most attended (position: weight)")
    table.add_column("head entropy min..max (bits)", justify="right")
    for layer in report.attention_by_layer or ():
        order = sorted(range(len(layer.mean)), key=lambda k: -layer.mean[k])[:3]
        table.add_row(str(layer.layer), ", ".join(f"{k}: {layer.mean[k]:.2f}" for k in order),
                      f"{min(layer.head_entropy):.2f}..{max(layer.head_entropy):.2f}")
    return table


def sweep_parts(sweep: TemperatureSweep) -> list[object]:
    cuts = [f"{c.name} {c.setting:g} keeps {c.kept}" for c in sweep.cuts if c.kept is not None]
    title = Text(f"Temperature knob · now T={sweep.current_temperature:g} · "
                 + (", ".join(cuts) + " · " if cuts else "")
                 + f"{sweep.kept} token{'s' if sweep.kept != 1 else ''} survive all filters",
                 style="bold")
    table = Table()
    table.add_column("T", justify="right")
    for token in sweep.tokens:
        table.add_column(_piece(token), justify="right")
    table.add_column("entropy", justify="right")
    wanted = {*SWEEP_ROWS, sweep.current_temperature}
    for k, t in enumerate(sweep.temperatures):
        if not any(abs(t - w) < 1e-9 for w in wanted):
            continue
        style = "bold" if abs(t - sweep.current_temperature) < 1e-9 else ""
        table.add_row(f"{t:g}", *(f"{row[k]:.3f}" for row in sweep.p), f"{sweep.entropy[k]:.2f}",
                      style=style)
    return [title, table]


def grid_table(grid: LensGrid, lo: int, hi: int) -> Table:
    table = Table(title=f"Logit lens · positions {lo}..{hi - 1} · top-1 per layer", title_justify="left")
    table.add_column("layer", justify="right")
    for pos in range(lo, hi):
        header = Text(f"{pos} ")
        header.append_text(_piece(grid.tokens[pos], 8))
        table.add_column(header, justify="left", no_wrap=True)
    for n, row in enumerate(grid.top):
        cells: list[Text | str] = [str(n)]
        for pos in range(lo, hi):
            entry = row[pos]
            hit = pos + 1 < len(grid.tokens) and grid.tokens[pos + 1].id == entry.token.id
            cell = _piece(entry.token, 8)
            cell.stylize("green" if hit else "")
            cell.append(f" {entry.p:.2f}", style="dim")
            cells.append(cell)
        table.add_row(*cells)
    return table
