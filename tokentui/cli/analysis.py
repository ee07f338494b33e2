"""attribute, attention and graph: which tokens drove the output and how attention flows."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tokentui.cli import progress, render
from tokentui.cli.options import SharedOptions, shared_options
from tokentui.cli.runtime import load_backend, model_config, parse_ids, run_config
from tokentui.engine import launch
from tokentui.engine.errors import ParameterError
from tokentui.heatmap import attribution_table, heatmap

if TYPE_CHECKING:
    from tokentui.engine.backends.base import Backend
    from tokentui.engine.session import Session

PromptArg = Annotated[str, typer.Argument(help="The prompt text.", show_default=False)]
CompletionIds = Annotated[str | None, typer.Option(
    "--completion-ids", help="Completion token ids to analyse instead of generating, comma-separated.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
Layer = Annotated[int | None, typer.Option(
    "--layer", help="0-based layer; negative counts from the end [default: the last layer].")]
DEFAULT_ATTRIBUTE_TOKENS = 16


def register(app: typer.Typer) -> None:
    app.command("attribute")(attribute)
    app.command("attention")(attention)
    app.command("graph")(graph)


# ----- building sessions --------------------------------------------------------------------
def session_over(backend: Backend, text: str, opts: SharedOptions, completion_ids: Sequence[int]) -> Any:
    """A session on an already loaded backend, with the given completion forced."""
    return launch.open_session(run_config(opts, text), backend, completion_ids=completion_ids)


def complete(session: Session, completion_ids: Sequence[int], max_new: int | None) -> None:
    """Generate ``max_new`` tokens unless the completion was given."""
    if not completion_ids and max_new:
        for _ in session.generate(max_new_tokens=max_new):
            pass


def llm_id(backend: Backend) -> str:
    loaded = backend.loaded
    return loaded.name if loaded is not None else backend.capabilities.name


# ----- attribute ------------------------------------------------------------------------------
@shared_options("model", "prompt", "sampling", "constraint")
def attribute(
    prompt: Annotated[str | None, typer.Argument(
        help="The prompt text (omit with --batch).", show_default=False)] = None,
    completion_ids: CompletionIds = None,
    method: Annotated[str, typer.Option(
        "--method", help="saliency, input_x_gradient, integrated_gradients, gradient_shap, "
        "layer_deeplift, attention_last, attention_mean or attention_rollout.")] = "saliency",
    aggregate: Annotated[str, typer.Option(
        "--aggregate", help="Per-token reduction of gradient scores: l2 (norm) or sum (signed).")] = "l2",
    steps: Annotated[int, typer.Option(
        "--steps", help="Integration steps (integrated_gradients) or samples (gradient_shap).")] = 16,
    baseline: Annotated[str, typer.Option(
        "--baseline", help="Baseline token: pad, eos, unk or a token id.")] = "pad",
    batch_size: Annotated[int, typer.Option(
        "--batch-size", help="Forward rows per pass (output tokens x steps).", min=1)] = 16,
    as_json: AsJson = False,
    batch: Annotated[Path | None, typer.Option(
        "--batch", help="A file of prompts, one a line: writes one JSON per prompt to --out.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Folder for the --batch JSON files.")] = None,
    open_file: Annotated[Path | None, typer.Option(
        "--open", help="Show a saved attribution (attribute --json, or J in the app) as the "
        "heatmap again; loads no model.", show_default=False)] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="With --batch: replace files in --out that are not attribution JSON.")] = False,
    *,
    opts: SharedOptions,
) -> None:
    """Which earlier tokens drove each output token: the association matrix of PROMPT.

    Without --completion-ids it generates --max-new-tokens tokens (16 unless given) first.
    With --open FILE it prints a saved attribution's heatmap instead (no model).
    """
    if open_file is not None:
        if prompt is not None or batch is not None or completion_ids:
            raise ParameterError("--open shows a saved file: drop PROMPT, --batch and --completion-ids")
        if as_json:
            raise ParameterError("--open prints the heatmap of a file that is already JSON: drop --json")
        from tokentui.engine.persist.attribution_file import read_attribution

        render.console().print(attribution_table(read_attribution(open_file)))
        return
    from tokentui.engine.analysis.attribution import AttributionConfig

    config = AttributionConfig(method=method, aggregation=aggregate, n_steps=steps,
                               baseline=int(baseline) if baseline.isdigit() else baseline,
                               batch_size=batch_size)
    ids = parse_ids(completion_ids)
    max_new = opts.max_new_tokens or DEFAULT_ATTRIBUTE_TOKENS
    if batch is not None:
        if out is None:
            raise ParameterError("--batch needs --out DIR for the JSON files")
        if prompt is not None or ids:
            raise ParameterError("--batch reads the prompts from the file: drop PROMPT and --completion-ids")
        run_batch(batch, out, opts, config, max_new, force=force)
        return
    if prompt is None:
        raise ParameterError("give a PROMPT (or --batch FILE --out DIR)")
    run = run_config(opts, prompt, need_prompt=True)
    backend = load_backend(run.model)
    session = launch.open_session(run, backend, completion_ids=ids)
    complete(session, ids, max_new)
    with progress.counts(f"attributing ({method})") as advance:
        data = association_json(session, prompt, config, advance)
    if as_json:
        render.print_json(data)
        return
    from tokentui.engine.persist.attribution_file import from_json

    render.console().print(attribution_table(from_json(data)))


def association_json(session: Session, prompt: str, config: Any, progress: Any = None) -> dict[str, Any]:
    from tokentui.engine.analysis.attribution import association_matrix

    matrix = association_matrix(session.backend, session.context_ids(), len(session.prompt_ids),
                                config, progress=progress)
    return matrix.to_json(llm_id=llm_id(session.backend), prompt=prompt,
                          generation_params=session.params.to_json())


def run_batch(path: Path, out: Path, opts: SharedOptions, config: Any, max_new: int, *,
              force: bool = False) -> None:
    """One JSON per prompt line, written as ``out/0001.json`` ..., with a progress bar."""
    from tokentui.engine.persist.files import check_overwrite

    text = launch.read_source_file(path, what="file for --batch")
    prompts = [line for line in text.splitlines() if line.strip()]
    if not prompts:
        raise ParameterError(f"{path} has no prompts (one a line)")
    if out.exists() and not out.is_dir():
        raise ParameterError(f"--out {out} is a file: --batch writes one JSON per prompt into a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ParameterError(f"cannot create the folder {out}: {exc.strerror or exc}") from None
    for n in range(1, len(prompts) + 1):  # refuse before the work, not after it
        check_overwrite(out / f"{n:04d}.json", kind="attribution JSON", is_own=is_attribution_json,
                        force=force)
    backend = load_backend(model_config(opts))
    with progress.counts(f"{config.method}", total=len(prompts)) as advance:
        for n, text in enumerate(prompts, start=1):
            session = session_over(backend, text, opts, [])
            complete(session, [], max_new)
            target = out / f"{n:04d}.json"
            write_json(target, association_json(session, text, config), force=force)
            advance(n, len(prompts))
    typer.echo(f"wrote {len(prompts)} files to {render.one_line(out)}", err=True)


def is_attribution_json(head: bytes) -> bool:
    """Whether a file's first bytes are an attribution JSON this command wrote."""
    return (head.lstrip().startswith(b"{") and b'"normalized_association"' in head) \
        or head.startswith(b'{"metadata"')


def write_json(path: Path, data: dict[str, Any], *, force: bool = False) -> None:
    """Atomically (a full disk leaves no half file), and only over an earlier attribution JSON."""
    from tokentui.engine.persist.files import json_text, write_checked

    write_checked(path, json_text(data) + "\n", kind="attribution JSON", is_own=is_attribution_json,
                  force=force)


# ----- attention and graph -------------------------------------------------------------------
def sequence(prompt: str, opts: SharedOptions, completion_ids: str | None) -> Any:
    """Prompt + the given completion (+ ``-n`` generated tokens when asked)."""
    ids = parse_ids(completion_ids)
    config = run_config(opts, prompt, need_prompt=True)
    backend = load_backend(config.model)
    session = launch.open_session(config, backend, completion_ids=ids)
    complete(session, ids, opts.max_new_tokens)
    return session


@shared_options("model", "prompt", "sampling", "constraint")
def attention(
    prompt: PromptArg,
    completion_ids: CompletionIds = None,
    layer: Layer = -1,
    head: Annotated[int | None, typer.Option(
        "--head", help="0-based head; negative counts from the end [default: the head mean].")] = None,
    mean: Annotated[bool, typer.Option("--mean", help="Average the heads (the default).")] = False,
    as_json: AsJson = False,
    *,
    opts: SharedOptions,
) -> None:
    """The attention matrix of PROMPT (+ completion) for one layer: rows attend to columns."""
    from tokentui.engine.analysis.attention import attention_matrix

    if head is not None and mean:
        raise ParameterError("give --head H or --mean, not both")
    session = sequence(prompt, opts, completion_ids)
    matrix = attention_matrix(session.backend, session.context_ids(),
                              layer=-1 if layer is None else layer, head=head)
    if as_json:
        render.print_json({**matrix.to_json(), "prompt": prompt, "llm_id": llm_id(session.backend),
                           "n_prompt_tokens": len(session.prompt_ids)})
        return
    n = len(matrix.tokens)
    values = [[row[j] / max(max(row[:i + 1]), 1e-12) if j <= i else None for j in range(n)]
              for i, row in enumerate(matrix.weights)]
    table = heatmap(f"attention · {matrix.description}", matrix.tokens, matrix.tokens, values,
                    numbers=n <= 16)
    table.caption = f"{n} tokens · rows (queries) attend to columns (keys) · shade: weight / row max"
    table.caption_justify = "left"
    render.console().print(table)


@shared_options("model", "prompt", "sampling", "constraint")
def graph(
    prompt: PromptArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")],
    completion_ids: CompletionIds = None,
    layer: Layer = None,
    all_layers: Annotated[bool, typer.Option("--all-layers", help="Draw every layer's edges.")] = False,
    head: Annotated[int | None, typer.Option(
        "--head", help="0-based head; negative counts from the end [default: the head mean].")] = None,
    threshold: Annotated[float, typer.Option(
        "--threshold", help="Draw edges with attention at or above this weight (0..1).")] = 0.1,
    color_by: Annotated[str | None, typer.Option(
        "--color-by", help="layer or weight [default: layer with --all-layers, else weight].")] = None,
    keep_sink: Annotated[bool, typer.Option(
        "--keep-sink/--drop-sink", help="Keep the attention sink (the first token's column) in the "
        "edge weights and the colour scale; dropped by default, each row renormalised over the "
        "other earlier tokens.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an existing file that is not a graph page.")] = False,
    *,
    opts: SharedOptions,
) -> None:
    """The 3D attention graph of PROMPT as one self-contained HTML file (works offline)."""
    from tokentui.engine.analysis.attention import full_attention
    from tokentui.engine.persist.files import check_overwrite
    from tokentui.export.graph3d import export_graph, is_graph_page

    if layer is not None and all_layers:
        raise ParameterError("give --layer L or --all-layers, not both")
    check_overwrite(output, kind="graph page", is_own=is_graph_page, force=force)  # before the work
    session = sequence(prompt, opts, completion_ids)
    ids = session.context_ids()
    att = full_attention(session.backend, ids)
    tokens = session.tokens.tokens(ids)
    where = "all layers" if all_layers else f"layer {(-1 if layer is None else layer) % att.shape[0]}"
    path = export_graph(tokens, att, output, layer=-1 if layer is None else layer, all_layers=all_layers,
                        head=head, threshold=threshold,
                        color_by=color_by or ("layer" if all_layers else "weight"), keep_sink=keep_sink,
                        title=f"{llm_id(session.backend)} · {where} · threshold {threshold}",
                        force=force)
    sink = "sink kept" if keep_sink else "sink dropped"
    typer.echo(f"wrote {render.one_line(path)} ({len(tokens)} tokens, {where}, {sink})", err=True)
