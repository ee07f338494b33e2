"""The CLI's side of opening things: options -> :class:`RunConfig` -> ``engine.launch``.

Everything here is a thin layer over :mod:`tokentui.engine.launch` (the one way every face
opens a model and a session) that adds the CLI's progress bar on stderr.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tokentui.cli import progress
from tokentui.cli.options import SharedOptions
from tokentui.engine import launch
from tokentui.engine.errors import ParameterError
from tokentui.engine.launch import ModelConfig, RunConfig
from tokentui.engine.params import SamplingParams
from tokentui.engine.prompts import PromptSpec

if TYPE_CHECKING:
    from tokentui.engine.backends.base import Backend
    from tokentui.engine.session import Session

SAMPLING_FIELDS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty",
                   "presence_penalty", "frequency_penalty", "seed", "max_new_tokens")
CONSTRAINT_FIELDS = ("choice", "choices_file", "regex", "grammar", "json_schema")
MODEL_FIELDS = ("device", "dtype", "device_map", "trust_remote_code", "allow_pickle", "backend", "base_url",
                "served_model", "api_key_env", "tokenizer")


def model_config(opts: SharedOptions) -> ModelConfig:
    """The model flags as a validated ModelConfig (no load happens here)."""
    config = ModelConfig(spec=opts.model, **{f: getattr(opts, f) for f in MODEL_FIELDS})
    config.validate()
    return config


def sampling_params(opts: SharedOptions) -> SamplingParams:
    """Defaults, then the preset, then every flag given explicitly."""
    return launch.sampling_params(
        opts.preset, **{f: getattr(opts, f) for f in SAMPLING_FIELDS},
        greedy=opts.greedy, stop=tuple(opts.stop or ()), ignore_eos=opts.ignore_eos)


def prompt_spec(text: str, opts: SharedOptions) -> PromptSpec:
    return PromptSpec(text=text, system=opts.system, chat_template=not opts.no_chat_template)


def run_config(opts: SharedOptions, prompt: str | None = None, *, need_prompt: bool = False) -> RunConfig:
    """Every flag checked and gathered before any model loads: a bad value, a missing file, two
    constraints or an empty prompt fail here, in well under a second."""
    if need_prompt and (prompt is None or not (prompt.strip() or (opts.system or "").strip())):
        raise ParameterError("the prompt is empty: give some text to start from")
    return RunConfig(model=model_config(opts),
                     prompt=prompt_spec(prompt, opts) if prompt is not None else None,
                     params=sampling_params(opts),
                     constraint=launch.constraint_source(**{f: getattr(opts, f) for f in CONSTRAINT_FIELDS}))


def load_backend(model: ModelConfig, *, quiet: bool = False) -> Backend:
    """``launch.open_backend`` with a progress bar on stderr."""
    with progress.stages("loading", quiet=quiet) as bar:
        return launch.open_backend(model, progress=bar)


def open_session(config: RunConfig, *, quiet: bool = False, completion_ids: Sequence[int] = ()) -> Session:
    """``launch.open_session`` with a progress bar on stderr while the model loads."""
    backend = load_backend(config.model, quiet=quiet)
    return launch.open_session(config, backend, completion_ids=completion_ids)


def parse_ids(text: str | None) -> list[int]:
    """``"1,2,3"`` -> ``[1, 2, 3]``."""
    if not text:
        return []
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise ParameterError(f"--completion-ids takes comma-separated integers, got {text!r}") from None

