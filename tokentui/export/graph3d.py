"""The 3D attention graph: tokens as nodes, attention above a threshold as edges.

networkx lays the tokens out in 3D (a spring layout with a fixed seed, so the same input
always gives the same picture); plotly draws them into one HTML file with plotly.js
inline, which opens offline. The page carries a short explanation and legend above the
plot; the plot's own legend sits below it, clear of the colour bar at the right. The
attention sink (most heads park their weight on the first token) is dropped by default:
the first key column is left out and every row renormalised over the other earlier
tokens, so the picture shows what the tokens attend to besides it. Token text is
HTML-escaped everywhere it is shown. Layers and heads are numbered from 0.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from tokentui.engine.errors import ParameterError
from tokentui.engine.persist.files import write_checked
from tokentui.engine.results import Token
from tokentui.visible import terminal_safe, visible

LAYOUT_SEED = 7
COLOR_BY = ("layer", "weight")
ZWJ = "\u200d"


@dataclass(frozen=True, slots=True)
class Edge:
    """Query token ``source`` attends to key token ``target`` with ``weight`` in ``layer``."""

    source: int
    target: int
    layer: int | None
    """None when the edge is the mean over layers."""
    weight: float


def label(token: Token, position: int) -> str:
    """``"3: cat"`` for hover text and titles (SVG in the DOM): HTML-escaped."""
    return f"{position}: {html.escape(visible(token.text))}"


def scene_label(token: Token, position: int) -> str:
    """The label drawn in the 3D scene.

    WebGL text is painted on a canvas, never parsed as HTML, and shows entities literally;
    its only markup is ``<b>``/``<i>``/``<sub>``/``<sup>``/``<br>``, which a zero-width
    joiner after each ``<`` disarms. (plotly also writes ``<`` as ``\\u003c`` in the JSON.)
    """
    return f"{position}: {visible(token.text).replace('<', '<' + ZWJ)}"


def drop_sink(att: np.ndarray) -> np.ndarray:
    """``(..., T, T)`` weights without the first key column: each row from position 1 on is
    renormalised over keys ``1..i`` (a row whose whole weight was on the sink stays 0)."""
    out = np.array(att, dtype=np.float64, copy=True)
    out[..., 1:, 0] = 0.0
    sums = out[..., 1:, :].sum(axis=-1, keepdims=True)
    out[..., 1:, :] = np.divide(out[..., 1:, :], sums, out=np.zeros_like(out[..., 1:, :]), where=sums > 0)
    return out


def attention_edges(att: np.ndarray, *, layers: Sequence[int] | None, threshold: float,
                    head: int | None = None) -> list[Edge]:
    """Edges from ``(L, H, T, T)`` weights: one per layer in ``layers`` (None: the layer mean)."""
    att = np.asarray(att, dtype=np.float64)
    per_head = att if head is None else att[:, head:head + 1]
    heads_mean = per_head.mean(axis=1)
    edges: list[Edge] = []
    groups: list[tuple[int | None, np.ndarray]] = (
        [(None, heads_mean.mean(axis=0))] if layers is None
        else [(layer, heads_mean[layer]) for layer in layers])
    for layer, weights in groups:
        below = np.tri(*weights.shape, k=-1, dtype=bool)  # keys before the query; no self-loops
        queries, keys = np.nonzero(below & (weights >= threshold))
        edges.extend(Edge(int(q), int(k), layer, float(weights[q, k]))
                     for q, k in zip(queries, keys, strict=True))
    return edges


def layout(n_tokens: int, edges: Sequence[Edge], seed: int = LAYOUT_SEED) -> np.ndarray:
    """``(T, 3)`` positions: a seeded 3D spring layout over attention plus the reading order."""
    graph = nx.Graph()
    graph.add_nodes_from(range(n_tokens))
    for i in range(n_tokens - 1):
        graph.add_edge(i, i + 1, weight=0.5)
    for e in edges:
        old = graph.get_edge_data(e.source, e.target, {"weight": 0.0})["weight"]
        graph.add_edge(e.source, e.target, weight=old + e.weight)
    pos = nx.spring_layout(graph, dim=3, seed=seed, weight="weight")
    return np.array([pos[i] for i in range(n_tokens)]) if n_tokens else np.zeros((0, 3))


def build_figure(tokens: Sequence[Token], edges: Sequence[Edge], *, color_by: str = "layer",
                 title: str = "", n_layers: int | None = None, sink_dropped: bool = False) -> Any:
    """The plotly figure: node markers with labels, one line trace per layer (or a weight scale)."""
    import plotly.colors as pc
    import plotly.graph_objects as go

    if color_by not in COLOR_BY:
        raise ParameterError(f"unknown colouring {color_by!r}: use layer or weight")
    xyz = layout(len(tokens), edges)
    labels = [label(t, i) for i, t in enumerate(tokens)]
    incoming = np.zeros(len(tokens))
    for e in edges:
        incoming[e.target] += e.weight
    traces: list[Any] = []

    def segments(group: Sequence[Edge]) -> tuple[list[float | None], ...]:
        xs: list[float | None] = []
        ys: list[float | None] = []
        zs: list[float | None] = []
        for e in group:
            for axis, out in ((0, xs), (1, ys), (2, zs)):
                out.extend([float(xyz[e.source, axis]), float(xyz[e.target, axis]), None])
        return xs, ys, zs

    if color_by == "layer":
        layers = sorted({e.layer for e in edges}, key=lambda v: -1 if v is None else v)
        span = max(1, (n_layers or (max((v for v in layers if v is not None), default=0) + 1)) - 1)
        for layer in layers:
            group = [e for e in edges if e.layer == layer]
            colour = pc.sample_colorscale("Turbo", [0.5 if layer is None else layer / span])[0]
            xs, ys, zs = segments(group)
            traces.append(go.Scatter3d(
                x=xs, y=ys, z=zs, mode="lines", hoverinfo="skip",
                line={"color": colour, "width": 3},
                name="layer mean" if layer is None else f"layer {layer}"))
    else:
        xs, ys, zs = segments(edges)
        colours = [w for e in edges for w in (e.weight, e.weight, e.weight)]
        top = max((e.weight for e in edges), default=1.0)
        scale = "weight<br>(sink dropped)" if sink_dropped else "weight"
        traces.append(go.Scatter3d(
            x=xs, y=ys, z=zs, mode="lines", hoverinfo="skip", name="attention (edge colour = weight)",
            line={"color": colours, "colorscale": "Viridis", "cmin": 0.0, "cmax": top, "width": 4,
                  "colorbar": {"title": {"text": scale}, "x": 1.0, "xanchor": "left", "y": 0.55,
                               "len": 0.8, "thickness": 14}}))

    mid = [(xyz[e.source] + xyz[e.target]) / 2 for e in edges]
    traces.append(go.Scatter3d(
        x=[float(m[0]) for m in mid], y=[float(m[1]) for m in mid], z=[float(m[2]) for m in mid],
        mode="markers", marker={"size": 2, "color": "rgba(80,80,80,0.35)"}, name="edge info",
        hovertext=[f"{labels[e.source]} → {labels[e.target]}<br>"
                   f"{'layer mean' if e.layer is None else f'layer {e.layer}'} · weight {e.weight:.3f}"
                   for e in edges], hoverinfo="text", showlegend=False))
    traces.append(go.Scatter3d(
        x=xyz[:, 0].tolist(), y=xyz[:, 1].tolist(), z=xyz[:, 2].tolist(), mode="markers+text",
        text=[scene_label(t, i) for i, t in enumerate(tokens)], textposition="top center",
        name="tokens (size = attention received)",
        marker={"size": 5 + 10 * (incoming / incoming.max() if incoming.max() > 0 else incoming),
                "color": "#222", "line": {"width": 1, "color": "white"}},
        hovertext=[f"{lab}<br>id {t.id}{' · special' if t.special else ''}"
                   f"<br>attention received {incoming[i]:.3f}"
                   for i, (t, lab) in enumerate(zip(tokens, labels, strict=True))],
        hoverinfo="text"))
    fig = go.Figure(traces)
    hidden = {"showticklabels": False, "title": {"text": ""}, "showbackground": False}
    fig.update_layout(
        title={"text": html.escape(title)}, showlegend=True, margin={"l": 0, "r": 90, "t": 40, "b": 10},
        legend={"orientation": "h", "x": 0.0, "xanchor": "left", "y": 0.0, "yanchor": "top"},
        scene={"xaxis": hidden, "yaxis": hidden, "zaxis": hidden, "domain": {"y": [0.08, 1.0]}},
        template="plotly_white")
    return fig


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 0; color: #222; }}
#explain {{ padding: 8px 16px 0 16px; font-size: 14px; line-height: 1.35; }}
#explain h1 {{ font-size: 17px; margin: 0 0 4px 0; }}
#explain ul {{ margin: 4px 0; padding-left: 20px; }}
#plot {{ height: calc(100vh - 170px); min-height: 420px; }}
</style></head>
<body>
<div id="explain"><h1>{title}</h1>
<ul id="tokentui-legend">{items}</ul></div>
<div id="plot">{plot}</div>
</body></html>
"""


def legend_items(tokens: Sequence[Token], *, color_by: str, threshold: float, where: str,
                 keep_sink: bool) -> list[str]:
    """The page's legend and explanation, one HTML line each (token text escaped)."""
    first = html.escape(visible(tokens[0].text)) if tokens else ""
    colour = ("<b>Line colour</b>: the layer (one legend entry each, below the plot; click one to hide it)"
              if color_by == "layer" else
              "<b>Line colour</b>: the attention weight (the scale at the right, 0 to the largest edge)")
    sink = (f"<b>Attention sink kept</b>: raw weights, the first token (0: {first}) included; "
            "--drop-sink leaves it out" if keep_sink else
            f"<b>Attention sink dropped</b>: most heads park their weight on the first token "
            f"(0: {first}); its column is left out and each row renormalised over the other "
            "earlier tokens (--keep-sink shows the raw weights)")
    return [
        "<b>Points</b>: the tokens (position: piece); a point's size is the attention it "
        "receives (the sum of its incoming edges)",
        f"<b>Lines</b>: a token and an earlier token it attends to with weight ≥ {threshold:g} "
        f"({html.escape(where)}, mean of the heads unless one is named; layers and heads from 0)",
        colour,
        sink,
        "Drag to turn, scroll to zoom, hover a point or an edge's midpoint for its numbers. "
        "The layout is a seeded spring layout: strongly linked tokens are pulled together",
    ]


def export_graph(tokens: Sequence[Token], attention: Any, path: str | Path, *,
                 layer: int | None = -1, all_layers: bool = False, head: int | None = None,
                 threshold: float = 0.1, color_by: str = "layer", title: str = "",
                 keep_sink: bool = False, force: bool = False) -> Path:
    """Write the 3D attention graph of ``attention`` (``(L, H, T, T)``) to one offline HTML file.

    ``layer`` picks one layer (negative from the end; None averages the layers);
    ``all_layers`` draws every layer's edges, coloured by layer. Unless ``keep_sink``, the
    first key column is dropped and the rows renormalised (:func:`drop_sink`).
    """
    att = np.asarray(attention.numpy() if hasattr(attention, "numpy") else attention, dtype=np.float64)
    if att.ndim != 4 or att.shape[2] != att.shape[3] or att.shape[2] != len(tokens):
        raise ParameterError(f"attention must be (layers, heads, {len(tokens)}, {len(tokens)}), "
                             f"got {tuple(att.shape)}")
    n_layers, n_heads = att.shape[0], att.shape[1]
    if not 0.0 <= threshold <= 1.0:
        raise ParameterError(f"threshold must be between 0 and 1, got {threshold}")
    if head is not None and not -n_heads <= head < n_heads:
        raise ParameterError(f"head {head} is out of range: the model has {n_heads} heads")
    if all_layers:
        layers: list[int] | None = list(range(n_layers))
    elif layer is None:
        layers = None
    else:
        if not -n_layers <= layer < n_layers:
            raise ParameterError(f"layer {layer} is out of range: the model has {n_layers} layers "
                                 f"(0..{n_layers - 1}, or negative from the end)")
        layers = [layer % n_layers]
    edges = attention_edges(att if keep_sink else drop_sink(att), layers=layers, threshold=threshold,
                            head=None if head is None else head % n_heads)
    fig = build_figure(tokens, edges, color_by=color_by, title=title, n_layers=n_layers,
                       sink_dropped=not keep_sink)
    where = ("every layer" if layers is not None and len(layers) > 1 else "the mean of the layers"
             if layers is None else f"layer {layers[0]}")
    where += "" if head is None else f", head {head % n_heads}"
    items = legend_items(tokens, color_by=color_by, threshold=threshold, where=where, keep_sink=keep_sink)
    plot = fig.to_html(include_plotlyjs=True, full_html=False, default_height="100%",
                       config={"displaylogo": False, "responsive": True})
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = PAGE.format(title=html.escape(terminal_safe(title or "tokentui attention graph")), plot=plot,
                       items="".join(f"<li>{item}</li>" for item in items))
    return write_checked(out, GRAPH_MARK + page, kind="graph page", is_own=is_graph_page, force=force)


GRAPH_MARK = "<!-- tokentui attention graph -->\n"


def is_graph_page(head: bytes) -> bool:
    """Whether a file's first bytes are a graph page this command wrote (safe to replace)."""
    return head.startswith(GRAPH_MARK.encode())
