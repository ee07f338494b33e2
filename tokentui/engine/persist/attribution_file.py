"""Read a saved attribution back: ``attribute --json`` (the analyzer format, every output token)
or ``J`` in the app (one target token), as one plain :class:`SavedAttribution`.

No torch and no model: the file carries the tokens and the scores. Anything that is not one of
the two formats is one :class:`AttributionFileError` line naming the file and what is wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokentui.engine.errors import ParameterError
from tokentui.engine.results import Token


class AttributionFileError(ParameterError):
    """A file that is not a saved tokentui attribution."""


@dataclass(frozen=True, slots=True)
class SavedAttribution:
    """Scores of output tokens over the tokens before each (normalised to 0..1 per output)."""

    method: str
    aggregation: str
    tokens: tuple[Token, ...]
    """The whole sequence the scores cover: the context, then the output tokens."""
    outputs: tuple[int, ...]
    """Positions (into ``tokens``) of the output tokens, increasing."""
    normalized: tuple[tuple[float, ...], ...]
    """``normalized[k][j]``: |score| of token ``j`` for output ``k`` over the output's maximum;
    ``len(normalized[k]) == outputs[k]`` (only tokens before the output)."""
    note: str | None = None
    source: str = ""
    """``attribute --json`` or ``J`` (which format the file was)."""

    def column(self, k: int) -> list[float | None]:
        """Output ``k``'s values over every token but the last (None at and after the output)."""
        row = self.normalized[k]
        return [row[j] if j < len(row) else None for j in range(len(self.tokens) - 1)]


def _fail(path: str, why: str) -> AttributionFileError:
    return AttributionFileError(f"{path} is not a tokentui attribution (attribute --json or J): {why}")


def _get(data: Any, dotted: str, kind: type | tuple[type, ...], path: str) -> Any:
    node = data
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            raise _fail(path, f"no {dotted!r}")
        node = node[key]
    if not isinstance(node, kind) or (kind is not bool and isinstance(node, bool) and kind is int):
        raise _fail(path, f"{dotted!r} has the wrong type")
    return node


def _token(entry: Any, path: str, where: str) -> Token:
    if not isinstance(entry, dict):
        raise _fail(path, f"{where} is not a token object")
    tid = entry.get("id", entry.get("token_id"))
    text = entry.get("text", entry.get("token"))
    if not isinstance(tid, int) or isinstance(tid, bool) or not isinstance(text, str):
        raise _fail(path, f"{where} needs an integer id and a text")
    return Token(tid, text, bool(entry.get("special", False)))


def _scores(values: Any, n: int, path: str, where: str) -> tuple[float, ...]:
    if not isinstance(values, list) or len(values) < n:
        raise _fail(path, f"{where} needs {n} scores")
    out = []
    for v in values[:n]:
        number = isinstance(v, int | float) and not isinstance(v, bool)
        if not number or not math.isfinite(v) or not 0 <= v <= 1 + 1e-9:
            raise _fail(path, f"{where} holds {v!r}, not a normalised score in 0..1")
        out.append(float(v))
    return tuple(out)


def from_json(data: Any, path: str = "the file") -> SavedAttribution:
    """A :class:`SavedAttribution` from either saved format (validated)."""
    if not isinstance(data, dict):
        raise _fail(path, "not a JSON object")
    if "metadata" in data or "data" in data:  # attribute --json
        inputs = _get(data, "data.input_tokens", list, path)
        outputs = _get(data, "data.output_tokens", list, path)
        rows = _get(data, "data.normalized_association", list, path)
        lengths = _get(data, "metadata.attribution.row_lengths", list, path)
        info = _get(data, "metadata.attribution", dict, path)
        tokens = tuple(_token(t, path, f"token {i}") for i, t in enumerate([*inputs, *outputs]))
        if not outputs:
            raise _fail(path, "no output tokens")
        if len(rows) != len(outputs) or len(lengths) != len(outputs):
            raise _fail(path, f"{len(outputs)} output tokens but {len(rows)} rows and "
                              f"{len(lengths)} row lengths")
        positions = tuple(len(inputs) + k for k in range(len(outputs)))
        if any(not isinstance(n, int) or n != p for n, p in zip(lengths, positions, strict=True)):
            raise _fail(path, "row_lengths do not match the tokens (row i covers the tokens before output i)")
        normalized = tuple(_scores(r, p, path, f"row {k}")
                           for k, (r, p) in enumerate(zip(rows, positions, strict=True)))
        method = data.get("metadata", {}).get("attribution_method") or info.get("method", "")
        return SavedAttribution(method=str(method), aggregation=str(info.get("aggregation", "")),
                                tokens=tokens, outputs=positions, normalized=normalized,
                                note=info.get("note"), source="attribute --json")
    if "target_position" in data:  # J in the app
        before = _get(data, "tokens", list, path)
        target = _token(_get(data, "target", dict, path), path, "target")
        position = _get(data, "target_position", int, path)
        if position != len(before) or position < 1:
            raise _fail(path, f"target_position {position} but {len(before)} tokens before it")
        tokens = (*(_token(t, path, f"token {i}") for i, t in enumerate(before)), target)
        normalized = (_scores(_get(data, "normalized", list, path), position, path, "normalized"),)
        return SavedAttribution(method=str(data.get("method", "")),
                                aggregation=str(data.get("aggregation", "")), tokens=tokens,
                                outputs=(position,), normalized=normalized,
                                note=data.get("note"), source="J")
    raise _fail(path, "neither 'metadata'/'data' (attribute --json) nor 'target_position' (J)")


def read_attribution(path: str | Path) -> SavedAttribution:
    """Read and validate a saved attribution file."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AttributionFileError(f"no such file: {name}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AttributionFileError(f"cannot read {name}: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(name, f"not JSON (line {exc.lineno}: {exc.msg})") from None
    return from_json(data, name)
