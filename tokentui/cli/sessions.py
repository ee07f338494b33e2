"""replay, export, sessions, compare and forks: session files as regression tests, documents,
lists and comparisons."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from tokentui.cli import render
from tokentui.cli.options import SharedOptions, fail, shared_options, warn

if TYPE_CHECKING:
    from tokentui.engine.persist.session_file import SessionFile

SessionPath = Annotated[Path, typer.Argument(help="A session file (.json).", show_default=False)]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
    app.command("export")(export)
    app.command("sessions")(sessions)
    app.command("forks")(forks)
    app.command("compare")(compare)


def _load_for(sf: SessionFile, opts: SharedOptions) -> Any:
    """The backend for a session file: ``--model`` if given, else the recorded model."""
    from tokentui.cli.runtime import load_backend, model_config
    from tokentui.engine.launch import model_for_file

    return load_backend(model_for_file(sf, model_config(opts)))


@shared_options("model")
def replay(
    file: SessionPath,
    check: Annotated[bool, typer.Option(
        "--check", help="Compare every token and recorded probability; exit 1 on a difference.")] = False,
    tolerance: Annotated[float, typer.Option(
        help="Largest absolute difference of a probability that still matches.", min=0.0)] = 1e-4,
    as_json: AsJson = False,
    *,
    opts: SharedOptions,
) -> None:
    """Rebuild every branch of a session file with its model and settings (and check it)."""
    from tokentui.engine.persist import replay as engine_replay
    from tokentui.engine.persist import session_file as store

    sf = store.load_session_file(file)
    backend = _load_for(sf, opts)
    warnings = store.model_warnings(sf, backend.loaded)
    report = engine_replay.replay(sf, backend, check=check, tolerance=tolerance)
    if as_json:
        render.print_json({**report.to_json(), "warnings": warnings, "checked_probabilities": check})
    else:
        for w in warnings:
            warn(w)
        _print_report(report, check)
    if check and not report.ok:
        raise typer.Exit(1)


def _print_report(report: Any, check: bool) -> None:
    out = render.console()
    table = Table(title=f"replay · {report.checked} steps"
                  + (f" · tolerance {report.tolerance:g}" if check else ""), title_justify="left")
    for name, justify in (("branch", "right"), ("name", "left"), ("steps", "right"),
                          ("result", "left"), ("text", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for b in report.branches:
        result = Text("rebuilt") if not check else (
            Text("ok", style="green") if b.difference is None
            else render.safe(b.difference.message, style="red"))
        table.add_row(str(b.branch_id), render.safe(b.name), str(b.checked), result,
                      Text(render.visible(b.text[:60])))
    out.print(table)
    if report.prompt_difference:
        out.print(render.safe(report.prompt_difference.message, style="red"))
    if check:
        if report.ok:
            out.print(Text(f"ok: every token and probability matches within {report.tolerance:g}"))
        else:
            for d in report.differences:
                sys.stderr.write(f"difference: {render.one_line(d.message)}\n")


@shared_options()
def export(
    file: SessionPath,
    fmt: Annotated[str, typer.Option("--format", "-f", help="jsonl, html or md.")] = "jsonl",
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="Write here instead of to standard output.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing file that is not an earlier export.")] = False,
    *,
    opts: SharedOptions,
) -> None:
    """Write a session as JSON lines (one per step), a self-contained HTML page or Markdown."""
    from tokentui.engine.persist import session_file as store
    from tokentui.engine.persist.files import write_checked
    from tokentui.export import formats

    if fmt not in formats.FORMATS:
        raise fail(f"unknown format {fmt!r}: use {', '.join(formats.FORMATS)}")
    sf = store.load_session_file(file)
    text = formats.export(sf, fmt)
    if output is None:
        sys.stdout.write(text)
        return
    if output.expanduser().resolve() == file.expanduser().resolve():
        raise fail("the output would overwrite the session file itself")
    write_checked(output, text, kind=formats.KINDS[fmt], force=force,
                  is_own=lambda head: formats.is_own(fmt, head))
    typer.echo(f"wrote {render.one_line(output)}", err=True)


@shared_options()
def sessions(
    folder: Annotated[Path | None, typer.Option(
        "--dir", help="List this folder instead of the autosave folder.")] = None,
    as_json: AsJson = False,
    *,
    opts: SharedOptions,
) -> None:
    """List the autosaved sessions ($XDG_DATA_HOME/tokentui): date, model, prompt, branches."""
    from tokentui.engine.persist import session_file as store

    where = folder or store.autosave_dir()
    found = store.list_sessions(where)
    if as_json:
        render.print_json({"folder": str(where), "sessions": [s.to_json() for s in found]})
        return
    out = render.console()
    if not found:
        out.print(render.safe(f"no sessions in {where}"))
        return
    table = Table(title=f"{len(found)} sessions in {render.one_line(where)}", title_justify="left")
    for name in ("saved", "model", "prompt", "branches", "tokens", "file"):
        table.add_column(name, justify="right" if name in ("branches", "tokens") else "left",
                         overflow="fold")
    for s in found:
        if s.error:
            table.add_row("", "", render.safe(s.error, style="red"), "", "", render.safe(s.path.name))
            continue
        table.add_row(render.safe(s.saved_at.replace("T", " ")[:19]), render.safe(s.model),
                      Text(render.visible(s.prompt[:40])), str(s.branches), str(s.tokens),
                      render.safe(s.path))
    out.print(table)


@shared_options("model", "prompt", "sampling", "constraint")
def forks(
    prompt: Annotated[str, typer.Argument(help="The prompt text.", show_default=False)],
    top: Annotated[int, typer.Option("--top", help="How many critical positions to list.", min=1)] = 10,
    alternatives: Annotated[int, typer.Option(help="Alternatives shown per position.", min=1)] = 3,
    as_json: AsJson = False,
    *,
    opts: SharedOptions,
) -> None:
    """Generate from PROMPT and list the positions that could most easily have gone otherwise."""
    from tokentui.cli.runtime import open_session, run_config
    from tokentui.engine.analysis.forks import critical_tokens

    session = open_session(run_config(opts, prompt, need_prompt=True))
    steps = list(session.generate())
    critical = critical_tokens(steps, top=top, alternatives=alternatives)
    if as_json:
        render.print_json({"text": session.completion_text(),
                           "tokens": [s.token.to_json() for s in steps],
                           "critical": [c.to_json() for c in critical]})
        return
    out = render.console()
    out.print(render.safe(session.completion_text()))
    table = Table(title=f"{len(critical)} most critical of {len(steps)} positions", title_justify="left")
    for name, justify in (("pos", "right"), ("token", "left"), ("p_final", "right"),
                          ("margin", "right"), ("entropy", "right"), ("alternatives", "left")):
        table.add_column(name, justify=justify)
    for c in critical:
        alts = Text()
        for i, cand in enumerate(c.alternatives):
            if i:
                alts.append("  ")
            alts.append_text(render.token_cell(cand.token))
            alts.append(f" {cand.p_final:.2f}", style="dim")
        table.add_row(str(c.index), render.token_cell(c.token), f"{c.p_final:.3f}", f"{c.margin:.3f}",
                      f"{c.entropy:.2f}", alts)
    out.print(table)


@shared_options("model")
def compare(
    file: SessionPath,
    a: Annotated[int | None, typer.Argument(
        help="Branch A's id; without it, the first branch.", show_default=False)] = None,
    b: Annotated[int | None, typer.Argument(
        help="Branch B's id; without it, the current branch (or the newest).", show_default=False)] = None,
    exact: Annotated[bool, typer.Option(
        "--exact", help="KL from the full distributions: loads the model and runs it at every "
                        "position of both branches (else: estimated from the recorded top-10, instantly).")
    ] = False,
    as_json: AsJson = False,
    *,
    opts: SharedOptions,
) -> None:
    """Two branches of a session file side by side from their fork: tokens, probabilities, KL."""
    from tokentui.engine.analysis.compare import compare_branches, compare_recorded
    from tokentui.engine.persist import session_file as store

    sf = store.load_session_file(file)
    ids = [r.id for r in sf.branches]
    if len(ids) < 2:
        raise fail(f"the file has only one branch ({ids[0]}): nothing to compare")
    if a is None:
        a = ids[0]
    if b is None:
        b = sf.current if sf.current != a else next(i for i in reversed(ids) if i != a)
    for which in (a, b):
        if which not in ids:
            raise fail(f"no branch {which} in the file (it has {', '.join(map(str, ids))})")
    if a == b:
        raise fail(f"compare needs two different branches (the file has {', '.join(map(str, ids))})")
    if exact:
        from tokentui.engine.launch import restore_session

        session = restore_session(sf, _load_for(sf, opts))
        cmp = compare_branches(session, a, b, exact=True)
    else:
        cmp = compare_recorded(sf, a, b)
    if as_json:
        render.print_json(cmp.to_json())
        return
    _print_comparison(cmp, {r.id: r.name for r in sf.branches})


def _print_comparison(cmp: Any, names: dict[int, str]) -> None:
    out = render.console()
    kl = "exact, from the full distributions" if cmp.kl_method == "exact" else \
        "estimated from the recorded top-10 (--exact runs the model)"
    out.print(render.safe(f"A: {names.get(cmp.a, cmp.a)} (#{cmp.a})  vs  B: {names.get(cmp.b, cmp.b)} "
                          f"(#{cmp.b}) · they part at completion position {cmp.fork_at} · KL {kl}"))
    if cmp.fork:
        fork = Table(title=f"at the fork (position {cmp.fork_at})", title_justify="left")
        for name, justify in (("#", "right"), ("token", "left"), ("p_base", "right"),
                              ("p_final", "right"), ("A", "center"), ("B", "center")):
            fork.add_column(name, justify=justify)
        for choice in cmp.fork:
            c = choice.candidate
            fork.add_row(str(c.rank), render.token_cell(c.token), f"{c.p_base:.3f}", f"{c.p_final:.3f}",
                         "●" if choice.picked_by_a else "", "●" if choice.picked_by_b else "")
        out.print(fork)
    else:
        out.print(Text("the branches do not differ (one is a prefix of the other, or they are equal)"))
        return
    steps = Table(title="from the fork on", title_justify="left")
    for name, justify in (("pos", "right"), ("A token", "left"), ("A p_final", "right"),
                          ("A H", "right"), ("B token", "left"), ("B p_final", "right"),
                          ("B H", "right"), ("KL bits", "right")):
        steps.add_column(name, justify=justify)

    def side(step: Any) -> tuple[Text | str, str, str]:
        if step is None:
            return "—", "", ""
        return render.token_cell(step.token), f"{step.p_final:.3f}", f"{step.entropy:.2f}"

    for row in cmp.steps:
        steps.add_row(str(row.index), *side(row.a), *side(row.b),
                      "" if row.kl is None else f"{row.kl:.3f}")
    out.print(steps)
