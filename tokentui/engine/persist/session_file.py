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
from typing import Any

from tokentui.engine.chat import prompt_messages
from tokentui.engine.errors import TokentuiError
from tokentui.engine.params import SamplingParams
from tokentui.engine.persist.files import atomic_write_text
from tokentui.engine.prompts import PromptSpec
from tokentui.engine.results import Candidate, Distribution, StepResult, Token

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
def model_record(backend: Any) -> ModelRecord | None:
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


def snapshot(session: Any, *, messages: Iterable[dict[str, str]] | None = None) -> SessionFile:
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
    return json.dumps(sf.to_json(), ensure_ascii=False, separators=(",", ":"))


def save(session_or_file: Any, path: str | os.PathLike[str], *,
         messages: Iterable[dict[str, str]] | None = None) -> Path:
    """Write a session atomically: a temporary file in the same folder, fsync, rename.

    A reader (or a crash) sees the old file or the new one, never half of one. An existing
    file that is not a valid session file is refused, never overwritten.
    """
    sf = session_or_file if isinstance(session_or_file, SessionFile) else snapshot(
        session_or_file, messages=messages)
    target = Path(path).expanduser()
    check_writable(target)
    try:
        write_atomic(target, dumps(sf))
    except OSError as exc:
        raise SessionFileError(f"cannot save to {target}: {exc.strerror or exc}") from None
    return target


def check_writable(path: Path) -> None:
    """Raise SessionFileError unless ``path`` may be written as a session file."""
    if path.is_dir():
        raise SessionFileError(f"{path} is a folder, not a session file")
    if not path.parent.is_dir():
        raise SessionFileError(f"cannot save to {path}: the folder {path.parent} does not exist")
    if path.exists():
        st = path.stat()
        if _WRITTEN.get(str(path.resolve())) == (st.st_mtime_ns, st.st_size):
            return
        try:
            load_session_file(path)
        except SessionFileError as exc:
            raise SessionFileError(f"not overwriting {path}: {exc}") from None


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that it is never seen half-written (and remember it)."""
    atomic_write_text(path, text)
    st = path.stat()
    _WRITTEN[str(path.resolve())] = (st.st_mtime_ns, st.st_size)


# ----- reading ----------------------------------------------------------------------------
def load_session_file(path: str | os.PathLike[str]) -> SessionFile:
    """Read and validate a session file; every problem is one SessionFileError line."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise SessionFileError(f"{p} is a folder, not a session file")
    if not p.exists():
        raise SessionFileError(f"no such session file: {p}")
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise SessionFileError(f"cannot read {p}: {exc.strerror or exc}") from None
    if not raw.strip():
        raise SessionFileError(f"{p} is empty, not a session file")
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise SessionFileError(f"{p} is not a tokentui session file (not UTF-8 text)") from None
    except json.JSONDecodeError as exc:
        looks_ours = raw.lstrip().startswith(b'{"format":"' + FORMAT.encode())
        what = "truncated or corrupt" if looks_ours else "not a tokentui session file:"
        raise SessionFileError(f"{p} is {what} invalid JSON at line {exc.lineno} "
                               f"column {exc.colno}") from None
    return parse(data, source=str(p))


def parse(data: Any, *, source: str = "the session") -> SessionFile:
    """Validate decoded JSON and build a SessionFile."""
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
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        raise SessionFileError(f"{source} is damaged: {detail}") from None


def _parse_v1(data: dict[str, Any]) -> SessionFile:
    m = data.get("model")
    model = ModelRecord(spec=m.get("spec"), kind=str(m["kind"]), location=str(m["location"]),
                        name=str(m["name"]), weights_hash=m.get("weights_hash"),
                        dtype=m.get("dtype"), device=m.get("device")) if m else None
    pr = data["prompt"]
    prompt = PromptSpec(text=_str(pr["text"]), system=pr.get("system"),
                        chat_template=bool(pr.get("chat_template", True)))
    prompt_ids = tuple(_int(i) for i in data["prompt_ids"])
    params = SamplingParams.from_json(data["params"])
    step_params = [SamplingParams.from_json(p) for p in data.get("step_params") or []]
    by_id: dict[int, BranchRecord] = {}
    branches = []
    for bj in data["branches"]:
        bid = _int(bj["id"])
        parent = bj.get("parent")
        inherit = _int(bj.get("inherit", 0))
        inherited: tuple[StepResult, ...] = ()
        if inherit:
            if parent not in by_id:
                raise SessionFileError(f"branch {bid} inherits from a missing parent {parent}")
            if inherit > len(by_id[parent].steps):
                raise SessionFileError(f"branch {bid} inherits more steps than its parent has")
            inherited = tuple(by_id[parent].steps[:inherit])
        own = tuple(_step(s, bid, params, step_params) for s in bj["steps"])
        steps = inherited + own
        for i, s in enumerate(steps):
            if s.index != i:
                raise SessionFileError(f"branch {bid} step {i} is numbered {s.index}")
        ids = [_int(i) for i in bj.get("ids", [s.token.id for s in steps])]
        if ids != [s.token.id for s in steps]:
            raise SessionFileError(f"branch {bid}: its token ids disagree with its steps")
        rec = BranchRecord(id=bid, name=_str(bj["name"]), parent=None if parent is None else _int(parent),
                           fork_at=_int(bj.get("fork_at", 0)), steps=steps, inherit=inherit)
        if bid in by_id:
            raise SessionFileError(f"branch {bid} appears twice")
        by_id[bid] = rec
        branches.append(rec)
    if not branches:
        raise SessionFileError("it has no branches")
    current = _int(data.get("current", branches[0].id))
    if current not in by_id:
        current = branches[0].id
    constraint = data.get("constraint")
    if constraint is not None and not (isinstance(constraint.get("kind"), str)
                                       and isinstance(constraint.get("value"), str)):
        raise SessionFileError("the constraint needs a kind and a value")
    messages = tuple({"role": _str(x["role"]), "content": _str(x["content"])}
                     for x in data.get("messages") or [])
    return SessionFile(
        model=model, prompt=prompt, prompt_ids=prompt_ids, params=params,
        default_seed=_int(data.get("default_seed", 0)), top_n=_int(data.get("top_n", 10)),
        branches=tuple(branches), current=current,
        next_id=max(_int(data.get("next_id", 0)), max(by_id) + 1),
        messages=messages, constraint=constraint, saved_at=str(data.get("saved_at", "")),
        version=int(data["version"]),
    )


def _int(x: Any) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise SessionFileError(f"expected an integer, found {json.dumps(x)[:40]}")
    return x


def _str(x: Any) -> str:
    if not isinstance(x, str):
        raise SessionFileError(f"expected text, found {json.dumps(x)[:40]}")
    return x


def _float(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise SessionFileError(f"expected a number, found {json.dumps(x)[:40]}")
    return float(x)


HOWS = frozenset({"greedy", "sampled", "forced", "alternative"})


def _step(s: dict[str, Any], branch_id: int, params: SamplingParams | None = None,
          step_params: list[SamplingParams] | None = None) -> StepResult:
    """One recorded step; its parameters are shared objects (the file's, or ``step_params[pi]``)."""
    how = _str(s["how"])
    pi = s.get("pi")
    if pi is not None:
        pi = _int(pi)
        if not step_params or not 0 <= pi < len(step_params):
            raise SessionFileError(f"step {s.get('i')} of branch {branch_id} names missing parameters {pi}")
        params = step_params[pi]
    if how not in HOWS:
        raise SessionFileError(f"unknown step kind {how!r}")
    seed = s.get("seed")
    if how == "sampled" and seed is None:
        raise SessionFileError(f"sampled step {s.get('i')} of branch {branch_id} has no seed")
    d = s["dist"]
    cands = tuple(
        Candidate(token=Token(_int(c["id"]), _str(c["text"]), bool(c.get("special", False))),
                  p_base=_float(c["p_base"]), p_final=_float(c["p_final"]), logit=_float(c["logit"]),
                  kept=bool(c["kept"]), valid=bool(c.get("valid", True)), rank=_int(c.get("rank", 0)))
        for c in d["candidates"])
    dist = Distribution(candidates=cands, entropy=_float(d["entropy"]),
                        entropy_final=_float(d["entropy_final"]), n_kept=_int(d["n_kept"]),
                        n_valid=_int(d["n_valid"]), vocab_size=_int(d["vocab_size"]),
                        top_n_only=bool(d.get("top_n_only", False)),
                        other_mass=_float(d.get("other_mass", 0.0)))
    return StepResult(
        index=_int(s["i"]), token=Token(_int(s["id"]), _str(s["text"]), bool(s.get("special", False))),
        p_base=_float(s["p_base"]), p_final=_float(s["p_final"]), logit=_float(s["logit"]), how=how,
        distribution=dist, seed=None if seed is None else _int(seed), branch_id=branch_id,
        finish_reason=s.get("finish"), note=s.get("note"), elapsed_ms=_float(s.get("ms", 0.0)),
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

    def changed(self, session: Any, **kw: Any) -> bool:
        """Note a change; save now if the interval has passed. True when it saved."""
        self.pending = True
        if self.clock() - self.last_save >= self.interval:
            return self.flush(session, **kw)
        return False

    def flush(self, session: Any, **kw: Any) -> bool:
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
