"""Session files: versioned JSON, atomic saves, loading with one clear error, autosave.

A file holds everything needed to reopen a session without recomputing (the model's
identity, prompt, parameters, messages, constraint and every branch with its recorded
steps and top-N candidates) and to replay it exactly (``replay.py``).

Format (``version`` 1)::

    {"format": "tokentui-session", "version": 1, "saved_at": ISO-8601, "app_version": str,
     "model": {"spec", "kind", "location", "name", "weights_hash", "dtype", "device"} | null,
     "prompt": {"text", "system", "chat_template"}, "prompt_ids": [int],
     "messages": [{"role", "content"}], "params": SamplingParams.to_json(),
     "default_seed": int, "top_n": int, "constraint": {"kind", "value", "eos_ids"} | null,
     "current": branch id, "next_id": int,
     "branches": [{"id", "name", "parent", "fork_at", "ids": [int], "inherit": n,
                   "steps": [step ...]}]}

A branch's first ``inherit`` steps are its parent's first ``inherit`` steps (stored once,
in the parent); ``steps`` holds the rest. ``ids`` is the whole branch, for readers and as
an integrity check. A step is ``{"i", "id", "text", "special", "how", "seed", "p_base",
"p_final", "logit", "finish", "note", "ms", "dist": Distribution.to_json()}``; a sampled
step's draw is ``draw_uniform(seed, i)``. A step computed with other parameters than the
file's ``params`` (changed mid-session) adds ``"pi": k``, an index into the file-level list
``"step_params": [SamplingParams.to_json()]``; readers that do not know it still work.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokentui.engine.chat import prompt_messages
from tokentui.engine.errors import TokentuiError
from tokentui.engine.params import SamplingParams
from tokentui.engine.persist.files import atomic_write_text, escape_json_text, read_regular_file
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.results import Candidate, Distribution, StepResult, Token

if TYPE_CHECKING:
    from tokentui.engine.backends.base import Backend
    from tokentui.engine.session import Session

FORMAT = "tokentui-session"
VERSION = 1
"""The newest format this code reads and the one it writes."""
SUFFIX = ".json"


class SessionFileError(TokentuiError):
    """A session file is missing, unreadable, damaged, foreign or from a newer version."""


# ----- the data a file holds ----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ModelRecord:
    """Which model produced the session, as far as it can be named again."""

    spec: str | None
    """What to pass to ``models.load`` (``default`` for the bundled model)."""
    kind: str
    location: str
    name: str
    weights_hash: str | None = None
    dtype: str | None = None
    device: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"spec": self.spec, "kind": self.kind, "location": self.location, "name": self.name,
                "weights_hash": self.weights_hash, "dtype": self.dtype, "device": self.device}


@dataclass(frozen=True, slots=True)
class BranchRecord:
    """One branch with its whole list of steps (inherited ones resolved)."""

    id: int
    name: str
    parent: int | None
    fork_at: int
    steps: tuple[StepResult, ...]
    inherit: int = 0
    """How many leading steps are the parent's (stored once in the file)."""

    @property
    def ids(self) -> list[int]:
        return [s.token.id for s in self.steps]


@dataclass(frozen=True, slots=True)
class SessionFile:
    """The contents of a session file: plain data, no model needed."""

    model: ModelRecord | None
    prompt: PromptSpec
    prompt_ids: tuple[int, ...]
    params: SamplingParams
    default_seed: int
    top_n: int
    branches: tuple[BranchRecord, ...]
    """Parents before children."""
    current: int
    next_id: int
    messages: tuple[dict[str, str], ...] = ()
    constraint: dict[str, Any] | None = None
    saved_at: str = ""
    version: int = VERSION

    def branch(self, branch_id: int) -> BranchRecord:
        for b in self.branches:
            if b.id == branch_id:
                return b
        raise SessionFileError(f"the session has no branch {branch_id}")

    @property
    def n_tokens(self) -> int:
        """Distinct steps in the tree (shared prefixes counted once)."""
        return sum(len(b.steps) - b.inherit for b in self.branches)

    def to_json(self) -> dict[str, Any]:
        table = _ParamsTable(self.params)
        branches = [_branch_json(b, table) for b in self.branches]
        out = {
            "format": FORMAT,
            "version": VERSION,
            "saved_at": self.saved_at,
            "app_version": _app_version(),
            "model": self.model.to_json() if self.model else None,
            "prompt": self.prompt.to_json(),
            "prompt_ids": list(self.prompt_ids),
            "messages": [dict(m) for m in self.messages],
            "params": self.params.to_json(),
            "default_seed": self.default_seed,
            "top_n": self.top_n,
            "constraint": dict(self.constraint) if self.constraint else None,
            "current": self.current,
            "next_id": self.next_id,
            "branches": branches,
        }
        if table.entries:
            out["step_params"] = [p.to_json() for p in table.entries]
        return out


class _ParamsTable:
    """The distinct per-step parameters that differ from the file's own, each written once."""

    def __init__(self, default: SamplingParams) -> None:
        self.default = default
        self.entries: list[SamplingParams] = []
        self._index: dict[SamplingParams, int] = {}

    def ref(self, params: SamplingParams | None) -> int | None:
        if params is None or params is self.default or params == self.default:
            return None
        k = self._index.get(params)
        if k is None:
            k = self._index[params] = len(self.entries)
            self.entries.append(params)
        return k


def _app_version() -> str:
    from tokentui import __version__

    return str(__version__)


def _step_json(s: StepResult, table: _ParamsTable | None = None) -> dict[str, Any]:
    out = {"i": s.index, "id": s.token.id, "text": s.token.text, "special": s.token.special,
           "how": s.how, "seed": s.seed, "p_base": s.p_base, "p_final": s.p_final,
           "logit": s.logit, "finish": s.finish_reason, "note": s.note,
           "ms": s.elapsed_ms, "dist": s.distribution.to_json()}
    k = table.ref(s.params) if table is not None else None
    if k is not None:
        out["pi"] = k
    return out


def _branch_json(b: BranchRecord, table: _ParamsTable | None = None) -> dict[str, Any]:
    return {"id": b.id, "name": b.name, "parent": b.parent, "fork_at": b.fork_at, "ids": b.ids,
            "inherit": b.inherit, "steps": [_step_json(s, table) for s in b.steps[b.inherit:]]}


# ----- from a live session ----------------------------------------------------------------
def model_record(backend: Backend) -> ModelRecord | None:
    """What the file says about the model: from ``backend.loaded`` when there is one."""
    loaded = backend.loaded
    if loaded is None:
        name = backend.capabilities.name
        return ModelRecord(spec=None, kind="remote", location=name or "", name=name or "") \
            if name else None
    from tokentui.engine import models

    source = loaded.source
    spec: str | None = source.location
    if source.kind == "gguf" and source.display_name == models.BUNDLED_NAME:
        spec = "default"
    elif source.kind in ("dir", "gguf") and not Path(source.location).exists():
        spec = None  # a model built in memory (tests): nothing to load again
    return ModelRecord(spec=spec, kind=source.kind, location=source.location, name=source.display_name,
                       weights_hash=loaded.weights_hash, dtype=loaded.dtype, device=str(loaded.device))


def constraint_record(constraint: Any) -> dict[str, Any] | None:
    """The constraint's kind and source text when it exposes them (None otherwise)."""
    if constraint is None:
        return None
    kind = getattr(constraint, "kind", None)
    value = next((getattr(constraint, a) for a in ("text", "value", "source")
                  if isinstance(getattr(constraint, a, None), str)), None)
    if not isinstance(kind, str) or value is None:
        return None
    out: dict[str, Any] = {"kind": kind, "value": value}
    eos = getattr(constraint, "eos_ids", None)
    if eos:
        out["eos_ids"] = sorted(int(e) for e in eos)
    return out


def snapshot(session: Session, *, messages: Iterable[dict[str, str]] | None = None) -> SessionFile:
    """A SessionFile of a live session (cheap: the steps are shared, not copied)."""
    with session.lock:
        branches = _ordered(session.branches)
        records = []
        for b in branches:
            inherit = 0
            parent = session.branches.get(b.parent) if b.parent is not None else None
            if parent is not None:
                limit = min(len(parent.steps), len(b.steps))
                while inherit < limit and (b.steps[inherit] is parent.steps[inherit]
                                           or b.steps[inherit] == parent.steps[inherit]):
                    inherit += 1
            records.append(BranchRecord(id=b.id, name=b.name, parent=b.parent, fork_at=b.fork_at,
                                        steps=tuple(b.steps), inherit=inherit))
        if messages is None:
            messages = getattr(session, "messages", None) or prompt_messages(session.prompt)
        return SessionFile(
            model=model_record(session.backend), prompt=session.prompt,
            prompt_ids=tuple(session.prompt_ids), params=session.params,
            default_seed=int(session.default_seed), top_n=int(session.top_n),
            branches=tuple(records), current=session.current_id, next_id=session.next_branch_id,
            messages=tuple(dict(m) for m in messages),
            constraint=constraint_record(session.constraint),
            saved_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )


def _ordered(branches: dict[int, Any]) -> list[Any]:
    """Parents before children (ids alone do not guarantee it after a delete re-parents)."""
    done: set[int] = set()
    out: list[Any] = []
    pending = sorted(branches.values(), key=lambda b: b.id)
    while pending:
        rest = []
        for b in pending:
            if b.parent is None or b.parent in done or b.parent not in branches:
                out.append(b)
                done.add(b.id)
            else:
                rest.append(b)
        if len(rest) == len(pending):  # a cycle cannot happen in a session; keep the rest as roots
            out.extend(rest)
            break
        pending = rest
    return out


# ----- writing ----------------------------------------------------------------------------
_WRITTEN: dict[str, tuple[int, int]] = {}
"""Files this process wrote last, by path: (mtime_ns, size); they need no re-validation."""


def dumps(sf: SessionFile) -> str:
    """The file's text: compact JSON, with C1/bidi/zero-width characters as \\u escapes (so
    ``cat`` of a session file runs nothing)."""
    return escape_json_text(json.dumps(sf.to_json(), ensure_ascii=False, separators=(",", ":")))


def save(session_or_file: Any, path: str | os.PathLike[str], *,
         messages: Iterable[dict[str, str]] | None = None, force: bool = False) -> Path:
    """Write a session atomically: a temporary file in the same folder, fsync, rename.

    A reader (or a crash) sees the old file or the new one, never half of one. An existing
    file that is not a valid session file is refused, never overwritten.
    """
    sf = session_or_file if isinstance(session_or_file, SessionFile) else snapshot(
        session_or_file, messages=messages)
    target = Path(path).expanduser()
    check_writable(target, force=force)
    try:
        write_atomic(target, dumps(sf))
    except OSError as exc:
        raise SessionFileError(f"cannot save to {target}: {exc.strerror or exc}") from None
    return target


def check_writable(path: Path, *, force: bool = False) -> None:
    """Raise SessionFileError unless ``path`` may be written as a session file (``force``: any
    regular file may be replaced)."""
    import stat

    path = Path(path).expanduser()
    if path.is_dir():
        raise SessionFileError(f"{path} is a folder, not a session file")
    if not path.parent.is_dir():
        raise SessionFileError(f"cannot save to {path}: the folder {path.parent} does not exist")
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        raise SessionFileError(f"{path} is not a regular file (a device, pipe or socket)")
    if path.exists() and not force:
        st = path.stat()
        if _WRITTEN.get(str(path.resolve())) == (st.st_mtime_ns, st.st_size):
            return
        try:
            load_session_file(path)
        except SessionFileError as exc:
            raise SessionFileError(f"not overwriting {path}: {exc} (add --force to replace it)") from None


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that it is never seen half-written (and remember it)."""
    atomic_write_text(path, text)
    st = path.stat()
    _WRITTEN[str(path.resolve())] = (st.st_mtime_ns, st.st_size)


# ----- reading ----------------------------------------------------------------------------
MAX_FILE_BYTES = 512 * 1024 * 1024
"""The largest session file read (a long autosaved session is a few MB; /dev/zero is endless)."""
MAX_TOP_N = 1000
MAX_TOKEN_ID = 2**31 - 1


def load_session_file(path: str | os.PathLike[str]) -> SessionFile:
    """Read and validate a session file; every problem is one SessionFileError line."""
    p = Path(path).expanduser()
    raw = read_regular_file(p, limit=MAX_FILE_BYTES, what="session file", error=SessionFileError)
    if not raw.strip():
        raise SessionFileError(f"{p} is empty, not a session file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SessionFileError(f"{p} is not a tokentui session file (not UTF-8 text)") from None
    except RecursionError:
        raise SessionFileError(f"{p} is not a tokentui session file (JSON nested too deeply)") from None
    except json.JSONDecodeError as exc:
        looks_ours = raw.lstrip().startswith(b'{"format":"' + FORMAT.encode())
        what = "truncated or corrupt" if looks_ours else "not a tokentui session file:"
        raise SessionFileError(f"{p} is {what} invalid JSON at line {exc.lineno} "
                               f"column {exc.colno}") from None
    return parse(data, source=str(p))


def parse(data: Any, *, source: str = "the session") -> SessionFile:
    """Validate decoded JSON completely (every field's type and range) and build a SessionFile.

    This is the one place a file's contents are checked: whatever it lets through, every
    reader (replay, export, compare, the app) may trust.
    """
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SessionFileError(f"{source} is not a tokentui session file")
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SessionFileError(f"{source} has no valid format version")
    if version > VERSION:
        raise SessionFileError(f"{source} was written by a newer tokentui (format version {version}; "
                               f"this one reads up to {VERSION}): upgrade tokentui to open it")
    try:
        return _parse_v1(data)
    except SessionFileError as exc:
        raise SessionFileError(f"{source} is damaged: {exc}") from None
    except TokentuiError as exc:  # e.g. parameters out of range
        raise SessionFileError(f"{source} is damaged: {exc}") from None
    except RecursionError:
        raise SessionFileError(f"{source} is damaged: nested too deeply") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        raise SessionFileError(f"{source} is damaged: {detail}") from None


def _show(x: Any) -> str:
    try:
        text = json.dumps(x, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = type(x).__name__
    return text if len(text) <= 40 else text[:37] + "..."


def _field(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise SessionFileError(f"{where} has no {key!r}")
    return d[key]


def _dict(x: Any, where: str) -> dict[str, Any]:
    if not isinstance(x, dict):
        raise SessionFileError(f"{where} should be an object, found {_show(x)}")
    return x


def _list(x: Any, where: str) -> list[Any]:
    if not isinstance(x, list):
        raise SessionFileError(f"{where} should be a list, found {_show(x)}")
    return x


def _int(x: Any, where: str = "a field", *, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise SessionFileError(f"{where}: expected an integer, found {_show(x)}")
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        bounds = f"at least {lo}" if hi is None else f"between {lo if lo is not None else '-inf'} and {hi}"
        raise SessionFileError(f"{where} should be {bounds}, found {x}")
    return x


def _str(x: Any, where: str = "a field") -> str:
    if not isinstance(x, str):
        raise SessionFileError(f"{where}: expected text, found {_show(x)}")
    return x


def _opt_str(x: Any, where: str) -> str | None:
    return None if x is None else _str(x, where)


def _bool(x: Any, where: str) -> bool:
    if not isinstance(x, bool):
        raise SessionFileError(f"{where}: expected true or false, found {_show(x)}")
    return x


def _float(x: Any, where: str = "a field") -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise SessionFileError(f"{where}: expected a number, found {_show(x)}")
    return float(x)


def _prob(x: Any, where: str) -> float:
    """A recorded probability: a number in [0, 1] (NaN or infinity is damage, not data)."""
    v = _float(x, where)
    if not (0.0 <= v <= 1.0 + 1e-6):
        raise SessionFileError(f"{where} should be a probability in [0, 1], found {_show(x)}")
    return v


def _logit(x: Any, where: str) -> float:
    """A logit: finite, or -inf for a masked token (written as -Infinity or null)."""
    if x is None:
        return -math.inf
    v = _float(x, where)
    if math.isnan(v) or v == math.inf:
        raise SessionFileError(f"{where} should be a finite number or -Infinity, found {_show(x)}")
    return v


def _nonneg(x: Any, where: str) -> float:
    v = _float(x, where)
    if not (v >= 0.0 and math.isfinite(v)):
        raise SessionFileError(f"{where} should be a finite number >= 0, found {_show(x)}")
    return v


_PARAM_TYPES: dict[str, str] = {
    "temperature": "float", "top_k": "int", "top_p": "float", "min_p": "float",
    "repetition_penalty": "float", "presence_penalty": "float", "frequency_penalty": "float",
    "seed": "int?", "greedy": "bool", "max_new_tokens": "int", "stop": "strs", "ignore_eos": "bool",
}


def _params(x: Any, where: str) -> SamplingParams:
    """Sampling parameters with every field's type checked before their ranges."""
    d = _dict(x, where)
    for key, kind in _PARAM_TYPES.items():
        if key not in d:
            continue
        v, w = d[key], f"{where}.{key}"
        if kind == "float":
            _float(v, w)
        elif kind == "int":
            _int(v, w)
        elif kind == "int?":
            if v is not None:
                _int(v, w)
        elif kind == "bool":
            _bool(v, w)
        elif kind == "strs" and v is not None:
            for item in _list(v, w):
                _str(item, w)
    return SamplingParams.from_json(d)


def _parse_v1(data: dict[str, Any]) -> SessionFile:
    m = data.get("model")
    model = None
    if m is not None:
        m = _dict(m, "model")
        model = ModelRecord(spec=_opt_str(m.get("spec"), "model.spec"),
                            kind=_str(_field(m, "kind", "model"), "model.kind"),
                            location=_str(_field(m, "location", "model"), "model.location"),
                            name=_str(_field(m, "name", "model"), "model.name"),
                            weights_hash=_opt_str(m.get("weights_hash"), "model.weights_hash"),
                            dtype=_opt_str(m.get("dtype"), "model.dtype"),
                            device=_opt_str(m.get("device"), "model.device"))
    pr = _dict(_field(data, "prompt", "the file"), "prompt")
    prompt = PromptSpec(text=_str(_field(pr, "text", "prompt"), "prompt.text"),
                        system=_opt_str(pr.get("system"), "prompt.system"),
                        chat_template=_bool(pr.get("chat_template", True), "prompt.chat_template"))
    prompt_ids = tuple(_int(i, "prompt_ids", lo=0, hi=MAX_TOKEN_ID)
                       for i in _list(_field(data, "prompt_ids", "the file"), "prompt_ids"))
    params = _params(_field(data, "params", "the file"), "params")
    step_params = [_params(p, "step_params") for p in _list(data.get("step_params") or [], "step_params")]
    by_id: dict[int, BranchRecord] = {}
    branches = []
    for bj in _list(_field(data, "branches", "the file"), "branches"):
        bj = _dict(bj, "a branch")
        bid = _int(_field(bj, "id", "a branch"), "branch id", lo=0)
        where = f"branch {bid}"
        parent = bj.get("parent")
        parent = None if parent is None else _int(parent, f"{where} parent", lo=0)
        inherit = _int(bj.get("inherit", 0), f"{where} inherit", lo=0)
        inherited: tuple[StepResult, ...] = ()
        if parent is not None and parent not in by_id:
            raise SessionFileError(f"{where} names a parent {parent} that is not before it in the file")
        if inherit:
            assert parent is not None
            if inherit > len(by_id[parent].steps):
                raise SessionFileError(f"{where} inherits more steps than its parent has")
            inherited = tuple(by_id[parent].steps[:inherit])
        own = tuple(_step(_dict(s, f"a step of {where}"), bid, params, step_params)
                    for s in _list(_field(bj, "steps", where), f"{where} steps"))
        steps = inherited + own
        for i, s in enumerate(steps):
            if s.index != i:
                raise SessionFileError(f"{where} step {i} is numbered {s.index}")
        ids = [_int(i, f"{where} ids") for i in _list(bj.get("ids", [s.token.id for s in steps]),
                                                      f"{where} ids")]
        if ids != [s.token.id for s in steps]:
            raise SessionFileError(f"{where}: its token ids disagree with its steps")
        fork_at = _int(bj.get("fork_at", 0), f"{where} fork_at", lo=0, hi=len(steps))
        rec = BranchRecord(id=bid, name=_str(_field(bj, "name", where), f"{where} name"), parent=parent,
                           fork_at=fork_at, steps=steps, inherit=inherit)
        if bid in by_id:
            raise SessionFileError(f"branch {bid} appears twice")
        by_id[bid] = rec
        branches.append(rec)
    if not branches:
        raise SessionFileError("it has no branches")
    current = _int(data.get("current", branches[0].id), "current")
    if current not in by_id:
        current = branches[0].id
    constraint = data.get("constraint")
    if constraint is not None:
        constraint = _dict(constraint, "constraint")
        if not (isinstance(constraint.get("kind"), str) and isinstance(constraint.get("value"), str)):
            raise SessionFileError("the constraint needs a kind and a value")
        for e in _list(constraint.get("eos_ids") or [], "constraint.eos_ids"):
            _int(e, "constraint.eos_ids", lo=0, hi=MAX_TOKEN_ID)
    messages = tuple({"role": _str(_field(_dict(x, "a message"), "role", "a message"), "message role"),
                      "content": _str(_field(x, "content", "a message"), "message content")}
                     for x in _list(data.get("messages") or [], "messages"))
    return SessionFile(
        model=model, prompt=prompt, prompt_ids=prompt_ids, params=params,
        default_seed=_int(data.get("default_seed", 0), "default_seed", lo=0, hi=2**63 - 1),
        top_n=_int(data.get("top_n", 10), "top_n", lo=1, hi=MAX_TOP_N),
        branches=tuple(branches), current=current,
        next_id=max(_int(data.get("next_id", 0), "next_id", lo=0), max(by_id) + 1),
        messages=messages, constraint=constraint,
        saved_at=_str(data.get("saved_at", ""), "saved_at"),
        version=int(data["version"]),
    )


HOWS = frozenset({"greedy", "sampled", "forced", "alternative"})


def _candidate(c: Any, where: str) -> Candidate:
    c = _dict(c, where)
    return Candidate(
        token=Token(_int(_field(c, "id", where), f"{where} id", lo=0, hi=MAX_TOKEN_ID),
                    _str(_field(c, "text", where), f"{where} text"),
                    _bool(c.get("special", False), f"{where} special")),
        p_base=_prob(_field(c, "p_base", where), f"{where} p_base"),
        p_final=_prob(_field(c, "p_final", where), f"{where} p_final"),
        logit=_logit(_field(c, "logit", where), f"{where} logit"),
        kept=_bool(_field(c, "kept", where), f"{where} kept"),
        valid=_bool(c.get("valid", True), f"{where} valid"),
        rank=_int(c.get("rank", 0), f"{where} rank", lo=0))


def _step(s: dict[str, Any], branch_id: int, params: SamplingParams | None = None,
          step_params: list[SamplingParams] | None = None) -> StepResult:
    """One recorded step; its parameters are shared objects (the file's, or ``step_params[pi]``)."""
    index = _int(_field(s, "i", f"a step of branch {branch_id}"), f"a step of branch {branch_id}", lo=0)
    where = f"step {index} of branch {branch_id}"
    how = _str(_field(s, "how", where), f"{where} how")
    pi = s.get("pi")
    if pi is not None:
        pi = _int(pi, f"{where} pi")
        if not step_params or not 0 <= pi < len(step_params):
            raise SessionFileError(f"{where} names missing parameters {pi}")
        params = step_params[pi]
    if how not in HOWS:
        raise SessionFileError(f"{where}: unknown step kind {how!r}")
    seed = s.get("seed")
    if how == "sampled" and seed is None:
        raise SessionFileError(f"sampled {where} has no seed")
    d = _dict(_field(s, "dist", where), f"{where} dist")
    cands = tuple(_candidate(c, f"a candidate of {where}")
                  for c in _list(_field(d, "candidates", where), f"{where} candidates"))
    dist = Distribution(candidates=cands, entropy=_nonneg(_field(d, "entropy", where), f"{where} entropy"),
                        entropy_final=_nonneg(_field(d, "entropy_final", where), f"{where} entropy_final"),
                        n_kept=_int(_field(d, "n_kept", where), f"{where} n_kept", lo=0),
                        n_valid=_int(_field(d, "n_valid", where), f"{where} n_valid", lo=0),
                        vocab_size=_int(_field(d, "vocab_size", where), f"{where} vocab_size", lo=0),
                        top_n_only=_bool(d.get("top_n_only", False), f"{where} top_n_only"),
                        other_mass=_prob(d.get("other_mass", 0.0), f"{where} other_mass"))
    return StepResult(
        index=index,
        token=Token(_int(_field(s, "id", where), f"{where} id", lo=0, hi=MAX_TOKEN_ID),
                    _str(_field(s, "text", where), f"{where} text"),
                    _bool(s.get("special", False), f"{where} special")),
        p_base=_prob(_field(s, "p_base", where), f"{where} p_base"),
        p_final=_prob(_field(s, "p_final", where), f"{where} p_final"),
        logit=_logit(_field(s, "logit", where), f"{where} logit"), how=how,
        distribution=dist, seed=None if seed is None else _int(seed, f"{where} seed", lo=0, hi=2**63 - 1),
        branch_id=branch_id,
        finish_reason=_opt_str(s.get("finish"), f"{where} finish"),
        note=_opt_str(s.get("note"), f"{where} note"),
        elapsed_ms=_nonneg(s.get("ms", 0.0), f"{where} ms"),
        params=params,
    )


# ----- back to a live session: tokentui.engine.launch.restore_session ------------------------
def model_warnings(sf: SessionFile, loaded: Any) -> list[str]:
    """Differences between the file's model and the loaded one (a replay may then differ)."""
    if sf.model is None or loaded is None:
        return []
    out = []
    if sf.model.weights_hash and loaded.weights_hash and sf.model.weights_hash != loaded.weights_hash:
        out.append(f"the weights differ from the recorded ones ({sf.model.name}, "
                   f"hash {sf.model.weights_hash[:12]} recorded, {loaded.weights_hash[:12]} now)")
    if sf.model.dtype and loaded.dtype != sf.model.dtype:
        out.append(f"dtype {loaded.dtype} now, {sf.model.dtype} recorded")
    return out


# ----- the autosave folder ------------------------------------------------------------------
def autosave_dir() -> Path:
    """``$XDG_DATA_HOME/tokentui``, else ``~/.local/share/tokentui`` (not created here)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "tokentui"


def autosave_path(prompt: PromptSpec | None = None, *, now: float | None = None) -> Path:
    """A new file name in the autosave folder: time and the prompt's first words."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now if now is not None else time.time()))
    words = "".join(ch if ch.isalnum() else "-" for ch in (prompt.text if prompt else "")[:32].lower())
    slug = "-".join(w for w in words.split("-") if w)[:32] or "session"
    return autosave_dir() / f"{stamp}-{slug}{SUFFIX}"


class Autosaver:
    """Saves a session to one file on every change that adds a token, at most once per interval.

    The TUI calls ``changed(session)`` after each token and ``flush(session)`` from a timer
    and on quit; a change inside the interval is kept pending, not lost.
    """

    def __init__(self, path: Path, *, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.interval = interval
        self.clock = clock
        self.pending = False
        self.last_save = -math.inf
        self.saves = 0

    def changed(self, session: Session, **kw: Any) -> bool:
        """Note a change; save now if the interval has passed. True when it saved."""
        self.pending = True
        if self.clock() - self.last_save >= self.interval:
            return self.flush(session, **kw)
        return False

    def flush(self, session: Session, **kw: Any) -> bool:
        """Save if a change is pending (on quit, or when the interval has passed)."""
        if not self.pending:
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save(session, self.path, **kw)
        self.pending = False
        self.last_save = self.clock()
        self.saves += 1
        return True


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """One line of ``tokentui sessions``."""

    path: Path
    saved_at: str
    model: str
    prompt: str
    branches: int
    tokens: int
    error: str | None = None
    mtime: float = field(default=0.0, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "saved_at": self.saved_at, "model": self.model,
                "prompt": self.prompt, "branches": self.branches, "tokens": self.tokens,
                "error": self.error}


def list_sessions(folder: Path | None = None) -> list[SessionSummary]:
    """The session files in a folder (the autosave folder by default), newest first."""
    folder = folder or autosave_dir()
    if not folder.is_dir():
        return []
    out = []
    for p in folder.glob(f"*{SUFFIX}"):
        mtime = p.stat().st_mtime
        try:
            sf = load_session_file(p)
        except SessionFileError as exc:
            out.append(SessionSummary(p, "", "", "", 0, 0, error=str(exc), mtime=mtime))
            continue
        out.append(SessionSummary(p, sf.saved_at, sf.model.name if sf.model else "?", sf.prompt.text,
                                  len(sf.branches), sf.n_tokens, mtime=mtime))
    out.sort(key=lambda s: s.mtime, reverse=True)
    return out
