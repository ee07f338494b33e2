"""The one way every face opens things: a :class:`RunConfig` -> backend, session, constraint.

The CLI's flags, the app's start-up and its model screen, ``--session FILE``, ``replay``,
``compare --exact`` and the two-model views all describe what to open as plain values here
and call the functions below, so a model opens the same way wherever it is asked for.

Importing this module is cheap (no torch, no transformers): the heavy imports happen inside
the functions that load something, so ``--help`` and input checks stay instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokentui.engine.errors import ParameterError, SessionError
from tokentui.engine.params import PRESETS, SamplingParams, apply_preset
from tokentui.engine.prompts import PromptSpec

if TYPE_CHECKING:
    from tokentui.engine.backends.base import Backend
    from tokentui.engine.constraints import Constraint
    from tokentui.engine.persist.session_file import SessionFile
    from tokentui.engine.session import Session

Progress = Callable[[str, "float | None"], None]
"""``progress(stage, fraction)``: what a load is doing, ``fraction`` in [0, 1] or None."""

BACKEND_KINDS = ("local", "openai")
DEVICES_HELP = "auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps"
DTYPES = ("auto", "float32", "bfloat16", "float16")
CONSTRAINT_KINDS = ("choice", "regex", "grammar", "json_schema")
MAX_SOURCE_BYTES = 1 << 20
"""Largest constraint file read (a grammar or schema is never this large)."""


@dataclass(frozen=True, slots=True)
class ModelConfig:
    """Which model to open and where: a local model, or an inference server."""

    spec: str | None = None
    """Hub id, model folder or ``.gguf`` file; None is the bundled SmolLM2-135M-Instruct."""
    backend: str = "local"
    """``local`` (transformers in this process) or ``openai`` (an OpenAI-compatible server)."""
    device: str = "auto"
    dtype: str = "auto"
    device_map: str | None = None
    trust_remote_code: bool = False
    allow_pickle: bool = False
    """Load a checkpoint that has only pickle weights (``*.bin``): they can run code."""
    base_url: str | None = None
    served_model: str | None = None
    api_key_env: str | None = None
    """The name of the environment variable holding the key (never the key itself)."""
    tokenizer: str | None = None
    """A local tokenizer for a server: hub id, folder or ``.gguf``."""

    def validate(self) -> None:
        """Raise ParameterError for a value no load could use (checked before any load)."""
        if self.backend not in BACKEND_KINDS:
            raise ParameterError(f"unknown backend {self.backend!r}: use local or openai")
        if self.dtype not in DTYPES:
            raise ParameterError(f"unknown dtype {self.dtype!r}: use {', '.join(DTYPES)}")
        device = self.device
        if not (device in ("auto", "cpu", "cuda", "mps") or
                (device.startswith("cuda:") and device[5:].isdigit())):
            raise ParameterError(f"unknown device {device!r}: use {DEVICES_HELP}")
        if self.backend == "openai" and not self.base_url:
            raise ParameterError("--backend openai needs --base-url, e.g. http://127.0.0.1:8080")
        if self.backend == "local" and self.base_url:
            raise ParameterError("--base-url is for --backend openai (an inference server)")

    @property
    def label(self) -> str:
        """A short name for messages: the spec, the server, or the bundled model."""
        if self.backend == "openai":
            return self.served_model or self.base_url or "server"
        return self.spec or "the bundled SmolLM2-135M-Instruct"


@dataclass(frozen=True, slots=True)
class ConstraintSource:
    """A constraint as text: ``choice`` (one option a line), ``regex``, ``grammar`` (Lark) or
    ``json_schema`` (the schema as JSON). Building it needs the tokenizer: :func:`open_constraint`."""

    kind: str
    text: str

    def __post_init__(self) -> None:
        if self.kind not in CONSTRAINT_KINDS:
            raise ParameterError(f"unknown constraint kind {self.kind!r}; "
                                 f"choose one of {', '.join(CONSTRAINT_KINDS)}")


@dataclass(frozen=True, slots=True)
class RunConfig:
    """Everything a face asks for: model, prompt, sampling parameters and constraint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    prompt: PromptSpec | None = None
    params: SamplingParams = field(default_factory=SamplingParams)
    constraint: ConstraintSource | None = None
    top_n: int = 10
    """Candidates kept per step."""

    def with_model(self, **changes: Any) -> RunConfig:
        return replace(self, model=replace(self.model, **changes))


# ----- building a config from the values a face collected -------------------------------
def sampling_params(preset: str | None = None, *, base: SamplingParams | None = None,
                    **changes: Any) -> SamplingParams:
    """Defaults (or ``base``), then the preset, then every value given (None = not given)."""
    params = base or SamplingParams()
    if preset:
        if preset not in PRESETS:
            raise ParameterError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        params = apply_preset(params, preset)
    given = {k: v for k, v in changes.items() if v is not None and v is not False and v != ()}
    return params.with_changes(**given)


def constraint_source(**flags: str | Path | None) -> ConstraintSource | None:
    """At most one of ``choice`` (``a|b|c``), ``choices_file``, ``regex``, ``grammar`` (file),
    ``json_schema`` (file); files are read here. ParameterError for two, or an unreadable file."""
    given = {k: v for k, v in flags.items() if v is not None}
    if not given:
        return None
    if len(given) > 1:
        raise ParameterError(f"give one constraint, not {len(given)}: {', '.join(given)}")
    kind, value = next(iter(given.items()))
    if isinstance(value, Path):
        value = read_source_file(value, what=f"file for --{kind.replace('_', '-')}")
    if kind == "choice":
        return ConstraintSource("choice", "\n".join(part.strip() for part in str(value).split("|")))
    if kind == "choices_file":
        return ConstraintSource("choice", str(value))
    return ConstraintSource(kind, str(value))


def read_source_file(path: Path, *, what: str) -> str:
    """A small UTF-8 text file (a grammar, a schema, a list of choices): one line when it is not."""
    from tokentui.engine.persist.files import read_user_text

    return read_user_text(path, what=what, limit=MAX_SOURCE_BYTES)


# ----- opening -------------------------------------------------------------------------------
def open_backend(model: ModelConfig, *, progress: Progress | None = None) -> Backend:
    """The backend ``model`` names: local transformers, or a remote server (checked on connect)."""
    model.validate()
    if model.backend == "openai":
        from tokentui.engine.backends import remote

        if progress is not None:
            progress(f"connecting to {model.base_url}", None)
        return remote.from_options(base_url=model.base_url, served_model=model.served_model,
                                   api_key_env=model.api_key_env, tokenizer=model.tokenizer)
    from tokentui.engine import heap, models
    from tokentui.engine.backends.local import LocalBackend

    with heap.paused():
        loaded = models.load(model.spec, device=model.device, dtype=model.dtype,
                             trust_remote_code=model.trust_remote_code, device_map=model.device_map,
                             allow_pickle=model.allow_pickle,
                             progress=progress or _silent)
        backend = LocalBackend(loaded)
        heap.settle()  # the model's objects out of later garbage collections (see heap.py)
    return backend


def open_constraint(source: ConstraintSource | None, backend: Backend,
                    eos_ids: Sequence[int] | None = None) -> Constraint | None:
    """The constraint for this backend's tokenizer (None for none); ConstraintError if invalid."""
    if source is None:
        return None
    from tokentui.engine import constraints

    return constraints.build(source.kind, source.text, backend.tokenizer, backend.vocab_size,
                             eos_ids=backend.eos_token_ids if eos_ids is None else eos_ids)


def open_session(config: RunConfig, backend: Backend | None = None, *,
                 progress: Progress | None = None, completion_ids: Sequence[int] = ()) -> Session:
    """A session over ``config.prompt`` (loading the backend unless given), with the
    constraint set and ``completion_ids`` forced after the prompt."""
    from tokentui.engine.session import Session

    if config.prompt is None:
        raise ParameterError("no prompt given")
    if backend is None:
        backend = open_backend(config.model, progress=progress)
    session = Session(backend, config.prompt, params=config.params, top_n=config.top_n)
    constraint = open_constraint(config.constraint, backend)
    if constraint is not None:
        session.set_constraint(constraint)
    for token_id in completion_ids:
        session.force_token(token_id)
    return session


# ----- session files -------------------------------------------------------------------------
def model_for_file(sf: SessionFile, model: ModelConfig, *, required: bool = True) -> ModelConfig:
    """The model to open a session file with: ``model`` when it names one, else the recorded
    one (with its dtype unless one was asked for). ``required``: say so when neither exists."""
    if model.spec is not None or model.backend != "local":
        return model
    record = sf.model
    if record is None or not record.spec:
        if not required:
            return model
        name = record.name if record else "an unknown model"
        raise SessionError(f"the session's model ({name}) cannot be loaded again: pass --model")
    dtype = record.dtype if model.dtype == "auto" and record.dtype else model.dtype
    return replace(model, spec=record.spec, dtype=dtype)


def config_from_file(sf: SessionFile, model: ModelConfig | None = None) -> RunConfig:
    """What a session file asks for, as a RunConfig (the model as :func:`model_for_file` picks)."""
    constraint = None
    if sf.constraint:
        constraint = ConstraintSource(str(sf.constraint["kind"]), str(sf.constraint["value"]))
    return RunConfig(model=model_for_file(sf, model or ModelConfig(), required=False), prompt=sf.prompt,
                     params=sf.params, constraint=constraint, top_n=sf.top_n)


def session_for_file(sf: SessionFile, backend: Backend) -> Session:
    """An empty session with the file's prompt ids, parameters, seed and constraint, ready to be
    filled with its branches (as recorded by :func:`restore_session`, or recomputed by replay)."""
    from tokentui.engine.persist.session_file import SessionFileError
    from tokentui.engine.session import Session

    vocab = int(backend.vocab_size)
    too_big = [i for i in sf.prompt_ids if not 0 <= i < vocab]
    too_big += [s.token.id for b in sf.branches for s in b.steps if not 0 <= s.token.id < vocab]
    if too_big:
        raise SessionFileError(f"token id {too_big[0]} does not fit this model's vocabulary of {vocab}: "
                               "the session was made with another model")
    session = Session(backend, sf.prompt, prompt_ids=list(sf.prompt_ids), params=sf.params,
                      top_n=sf.top_n)
    session.default_seed = sf.default_seed
    source = config_from_file(sf).constraint
    constraint = open_constraint(source, backend, eos_ids=(sf.constraint or {}).get("eos_ids", ()))
    if constraint is not None:
        session.set_constraint(constraint)
    session.messages = list(sf.messages)
    return session


def restore_session(sf: SessionFile, backend: Backend) -> Session:
    """A live session with every branch exactly as recorded, without running the model.

    The recorded steps (with their top-N candidates) are reused as they are, so opening a long
    session is instant; :func:`tokentui.engine.persist.replay.replay` recomputes them.
    """
    from tokentui.engine.session import Branch

    session = session_for_file(sf, backend)
    with session.lock:
        session.branches.clear()
        for b in sf.branches:
            session.branches[b.id] = Branch(id=b.id, name=b.name, parent=b.parent, fork_at=b.fork_at,
                                            steps=list(b.steps))
        session.current_id = sf.current
        session.next_branch_id = sf.next_id
    return session


def _silent(stage: str, fraction: float | None) -> None:
    """No progress shown."""

