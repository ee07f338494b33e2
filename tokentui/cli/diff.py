"""diff: two models in lockstep on one prompt, where they disagree and by how much."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from tokentui.cli import render
from tokentui.cli.options import SharedOptions, shared_options
from tokentui.cli.runtime import load_backend, run_config
from tokentui.engine.errors import ParameterError
from tokentui.engine.launch import ModelConfig, read_source_file

if TYPE_CHECKING:
    from tokentui.engine.analysis.lockstep import LockstepSummary, StepDivergence
    from tokentui.engine.backends.base import Backend

MODEL_B_PANEL = "Model B"


def register(app: typer.Typer) -> None:
    app.command("diff")(diff)


def model_b_config(a: ModelConfig, *, spec: str | None, dtype: str | None, device: str | None,
                   base_url: str | None, served_model: str | None, tokenizer: str | None,
                   api_key_env: str | None) -> ModelConfig:
    """Model B: a server when ``base_url`` is given, else a local model (A's own model when no
    spec is given, so ``--dtype-b bfloat16`` alone compares A with itself in another dtype)."""
    if base_url:
        config = ModelConfig(backend="openai", base_url=base_url, served_model=served_model,
                             tokenizer=tokenizer, api_key_env=api_key_env)
    else:
        if served_model or tokenizer or api_key_env:
            raise ParameterError("--served-model-b, --tokenizer-b and --api-key-env-b need --base-url-b")
        config = ModelConfig(spec=spec if spec is not None else a.spec, device=device or a.device,
                             dtype=dtype or "auto", trust_remote_code=a.trust_remote_code)
    config.validate()
    return config


@shared_options("model", "prompt", "sampling")
def diff(
    prompt: Annotated[str, typer.Argument(help="The prompt text.", show_default=False)],
    model_b: Annotated[str | None, typer.Option(
        "--model-b", rich_help_panel=MODEL_B_PANEL,
        help="Model B: hub id, folder or .gguf (default: model A's model).")] = None,
    dtype_b: Annotated[str | None, typer.Option(
        "--dtype-b", rich_help_panel=MODEL_B_PANEL,
        help="auto, float32, bfloat16 or float16 for model B.")] = None,
    device_b: Annotated[str | None, typer.Option(
        "--device-b", rich_help_panel=MODEL_B_PANEL, help="Device of model B (default: A's).")] = None,
    base_url_b: Annotated[str | None, typer.Option(
        "--base-url-b", rich_help_panel=MODEL_B_PANEL,
        help="Model B is an OpenAI-compatible server at this URL (top-N: KL is estimated).")] = None,
    served_model_b: Annotated[str | None, typer.Option(
        "--served-model-b", rich_help_panel=MODEL_B_PANEL,
        help="Model name the B server expects.")] = None,
    tokenizer_b: Annotated[str | None, typer.Option(
        "--tokenizer-b", rich_help_panel=MODEL_B_PANEL,
        help="Local tokenizer (repo id or folder) for the B server.")] = None,
    api_key_env_b: Annotated[str | None, typer.Option(
        "--api-key-env-b", rich_help_panel=MODEL_B_PANEL,
        help="Environment variable holding the B server's API key.")] = None,
    driver: Annotated[str, typer.Option(
        "--driver", help="Which model picks the tokens: a or b.")] = "a",
    text: Annotated[Path | None, typer.Option(
        "--text", help="Read this text file after the prompt instead of generating: how both "
        "models read an existing text.")] = None,
    jsonl: Annotated[bool, typer.Option(
        "--jsonl", help="One JSON object per step, then the summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document at the end.")] = False,
    *,
    opts: SharedOptions,
) -> None:
    """Run PROMPT through two models in lockstep (A drives unless --driver b) and print per step
    the token, both probabilities, KL both ways, Jensen-Shannon, top-10 overlap and rank."""
    from tokentui.engine.analysis.lockstep import DRIVERS, Lockstep, summarize

    if driver not in DRIVERS:
        raise ParameterError(f"--driver takes a or b, not {driver!r}")
    if jsonl and as_json:
        raise ParameterError("give --jsonl or --json, not both")
    config = run_config(opts, prompt, need_prompt=True)
    config_b = model_b_config(config.model, spec=model_b, dtype=dtype_b, device=device_b,
                              base_url=base_url_b, served_model=served_model_b,
                              tokenizer=tokenizer_b, api_key_env=api_key_env_b)
    given_text = read_source_file(text, what="file for --text") if text is not None else None
    a = load_backend(config.model)
    b = load_backend(config_b)
    lock = Lockstep(a, b, config.prompt, params=config.params, top_n=config.top_n, driver=driver)
    steps = lock.force_text(given_text) if given_text is not None else lock.generate()
    rows: list[StepDivergence] = []
    for step in steps:
        rows.append(step)
        if jsonl:
            render.print_json(step.to_json())
    summary = summarize(rows)
    names = {"a": backend_label(a), "b": backend_label(b)}
    if jsonl:
        render.print_json({"summary": summary.to_json(), **names})
    elif as_json:
        render.print_json({**names, "driver": driver, "estimated": lock.estimated,
                           "prompt_ids": lock.prompt_ids,
                           "steps": [s.to_json() for s in rows], "summary": summary.to_json()})
    else:
        out = render.console()
        out.print(steps_table(rows, names, driver, lock.estimated))
        out.print(summary_text(summary, rows))


def backend_label(backend: Backend) -> str:
    """The model's name with its dtype (a local model), or the server's name."""
    loaded = backend.loaded
    return f"{loaded.name} ({loaded.dtype})" if loaded is not None else backend.capabilities.name


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def steps_table(rows: list[StepDivergence], names: dict[str, str], driver: str, estimated: bool) -> Table:
    approx = "≈" if estimated else ""
    title = (f"A: {names['a']} · B: {names['b']} · {driver.upper()} drives · "
             f"∩10: top-10 overlap · rank: of the token under the other model"
             + ("  ·  B returns only its top-N: KL and JS estimated (≈)" if estimated else ""))
    table = Table(title=title, title_justify="left")
    for name, justify in (("#", "right"), ("token", "left"), ("p A", "right"), ("p B", "right"),
                          (f"{approx}KL(A‖B)", "right"), (f"{approx}KL(B‖A)", "right"),
                          (f"{approx}JS", "right"), ("∩10", "right"),
                          ("rank " + ("B" if driver == "a" else "A"), "right")):
        table.add_column(name, justify=justify, no_wrap=True, min_width=8 if name == "token" else None)
    for d in rows:
        js_style = "bold red" if d.js >= 0.5 else "yellow" if d.js >= 0.1 else ""
        rank = d.rank_other
        table.add_row(str(d.index), render.token_cell(d.token), fmt(d.p_a), fmt(d.p_b),
                      fmt(d.kl_ab), fmt(d.kl_ba), Text(fmt(d.js), style=js_style), f"{d.overlap}/10",
                      "-" if rank is None else str(rank))
    return table


def summary_text(summary: LockstepSummary, rows: list[StepDivergence]) -> Text:
    if not summary.steps:
        return Text("no steps", style="dim")
    approx = "≈" if summary.estimated else ""
    worst = rows[summary.max_js_at or 0] if summary.max_js_at is not None else None
    line = (f"{summary.steps} steps · mean KL(A‖B) {approx}{summary.mean_kl_ab:.4f} bits · "
            f"mean KL(B‖A) {approx}{summary.mean_kl_ba:.4f} bits · mean JS {approx}{summary.mean_js:.4f} · "
            f"mean overlap {summary.mean_overlap:.1f}/10 · the other model agreed on "
            f"{summary.agreement:.0%} of the tokens")
    text = Text(line)
    if worst is not None:
        text.append(f"\nlargest JS {approx}{summary.max_js:.4f} at step {summary.max_js_at} (")
        text.append(render.visible(worst.token.text))
        text.append(")")
    return text
