"""Attribution in the token stream (``a``, ``A``) and the 3D graph export (``e``).

``a`` scores every token before the completion token under the cursor with
:func:`~tokentui.engine.analysis.attribution.attribute_token` on the engine thread; the stream then
colours each earlier token by its normalised ``|score|`` (a heat scale, or the mono glyph
styles under NO_COLOR) and marks the target. ``a`` on the same token or ``escape`` clears
it; ``A`` cycles the method, ``o`` sets every option, ``J`` saves the shown attribution as
JSON. ``e`` writes the attention graph of the sequence to HTML.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.style import Style
from rich.text import Text
from textual import work

from tokentui.engine.analysis.attribution import METHODS, AttributionConfig, TokenAttribution, attribute_token
from tokentui.engine.persist.files import atomic_write_text, json_text
from tokentui.tui.screens.attribution_options import AttributionOptionsScreen
from tokentui.tui.styling import MONO_BAND_STYLES
from tokentui.tui.widgets.status import StatusLine
from tokentui.tui.widgets.token_stream import TokenStream

CYCLE = ("saliency", "input_x_gradient", "integrated_gradients", "gradient_shap",
         "attention_last", "attention_mean", "attention_rollout")
"""The methods ``A`` cycles through (``layer_deeplift`` refuses on Llama-style models)."""
HEAT = ((48, 54, 61), (240, 136, 62), (255, 234, 160))
"""Heat scale stops: cold grey, orange, hot pale yellow."""
MONO_HEAT = (MONO_BAND_STYLES[2], MONO_BAND_STYLES[1], MONO_BAND_STYLES[0], MONO_BAND_STYLES[3],
             MONO_BAND_STYLES[4])
"""Without colour: dim, plain, bold, underline, reverse (low to high), as the bands use them."""
TARGET_STYLE = Style(color="#58a6ff", bold=True, underline=True)
MONO_TARGET_STYLE = Style(bold=True, italic=True, underline=True)
LATER_STYLE = Style(color="#484f58")


def describe(config: AttributionConfig) -> str:
    """``integrated_gradients · l2 · 16 steps · baseline pad``: what matters for the method."""
    parts = [config.method, config.aggregation_name]
    options = config.to_json()
    if "n_steps" in options:
        parts.append(f"{config.n_steps} steps")
    if "baseline" in options:
        parts.append(f"baseline {config.baseline}")
    return " · ".join(parts)


def _free_path(folder: Path, stem: str, suffix: str) -> Path:
    """``stem.suffix`` in ``folder``, or ``stem-2.suffix``... when taken."""
    path, n = folder / f"{stem}{suffix}", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}{suffix}"
    return path


def heat_style(value: float, *, mono: bool) -> Style:
    """The style of a normalised score in [0, 1]."""
    value = min(1.0, max(0.0, value))
    if mono:
        return MONO_HEAT[min(4, int(value * 5))]
    low, high, t = (HEAT[0], HEAT[1], value * 2) if value < 0.5 else (HEAT[1], HEAT[2], value * 2 - 1)
    r, g, b = (round(x + (y - x) * t) for x, y in zip(low, high, strict=True))
    return Style(color=f"#{r:02x}{g:02x}{b:02x}")


@dataclass(frozen=True)
class AttributionOverlay:
    """One attribution as the stream shows it; empty once the tokens up to the target change."""

    result: TokenAttribution
    prefix: tuple[int, ...]
    """Token ids ``0..target`` it was computed on."""
    mono: bool = False
    config: AttributionConfig = field(default_factory=AttributionConfig)
    """The options it was computed with (saved beside the scores)."""

    @property
    def target(self) -> int:
        return self.result.target_position

    def valid_for(self, ids: Sequence[int]) -> bool:
        return tuple(ids[:len(self.prefix)]) == self.prefix

    def __call__(self, ids: list[int]) -> dict[int, Style]:
        """Styles by sequence position for the tokens the stream shows (``ids``)."""
        if not self.valid_for(ids):
            return {}
        styles = {i: heat_style(v, mono=self.mono) for i, v in enumerate(self.result.normalized)}
        styles[self.target] = MONO_TARGET_STYLE if self.mono else TARGET_STYLE
        styles.update({i: Style(dim=True) if self.mono else LATER_STYLE
                       for i in range(self.target + 1, len(ids))})
        return styles

    def legend(self) -> Text:
        out = Text(f"attribution · {self.result.method}: ")
        for value, label in ((0.0, "low"), (0.5, "→"), (1.0, "high")):
            out.append(label, style=heat_style(value, mono=self.mono))
            out.append(" ")
        out.append("target", style=MONO_TARGET_STYLE if self.mono else TARGET_STYLE)
        return out


class AttributionMixin:
    """Actions ``attribute`` (a), ``attribution_method`` (A), ``export_graph`` (e) for TokenApp."""

    attribution_config: AttributionConfig = AttributionConfig(method=CYCLE[0])
    """How ``a`` attributes: ``A`` cycles the method, ``o`` edits every option."""
    attribution: AttributionOverlay | None = None
    """The attribution shown in the stream, or None."""

    # The app provides these (TokenApp); declared for readers and type checkers.
    session: Any
    backend: Any
    engine: Any
    no_color: bool

    @property
    def attribution_method(self) -> str:
        return self.attribution_config.method

    @attribution_method.setter
    def attribution_method(self, method: str) -> None:
        self.attribution_config = replace(self.attribution_config, method=method)

    def _status(self, text: str) -> None:
        self.query_one(StatusLine).info(text)  # type: ignore[attr-defined]

    def _unsupported(self, method: str) -> str | None:
        """Why the backend cannot run ``method`` (None when it can)."""
        caps = self.backend.capabilities
        kind = METHODS[method].kind
        if kind == "gradient" and not caps.gradients:
            return (f"{method} needs gradients, which {caps.name} does not give "
                    f"({caps.reason or 'no local model'}): try an attention method (A)")
        if kind == "attention" and not caps.attention:
            return f"{method} needs attention weights, which {caps.name} does not give"
        return None

    def clear_attribution(self) -> bool:
        """Back to the colour mode; False when nothing was shown."""
        if self.attribution is None:
            return False
        self.attribution = None
        stream = self.query_one(TokenStream)  # type: ignore[attr-defined]
        stream.overlay = None
        stream.watch_colour_mode()  # legend and layout of the colour mode again
        return True

    def action_attribute(self) -> None:
        """Attribute the token under the cursor; on the same token again: clear."""
        if self._busy():  # type: ignore[attr-defined]
            return
        stream = self.query_one(TokenStream)  # type: ignore[attr-defined]
        ids = [t.id for t in stream.prompt_tokens] + [s.token.id for s in stream.steps]
        if stream.at_next:
            if self.clear_attribution():
                self._status("attribution cleared")
            else:
                self._status("move the cursor onto a token (left/right), then press a")
            return
        target = stream.position
        if target < 1:
            self._status("the first token has no tokens before it to attribute to")
            return
        shown = self.attribution
        if shown is not None and shown.target == target and shown.valid_for(ids):
            self.clear_attribution()
            self._status("attribution cleared")
            return
        self.compute_attribution(target)

    def action_attribution_method(self) -> None:
        """Next method; recompute when an attribution is shown."""
        i = CYCLE.index(self.attribution_method) if self.attribution_method in CYCLE else -1
        self.attribution_method = CYCLE[(i + 1) % len(CYCLE)]
        shown = self.attribution
        if shown is not None and self.session is not None and not self._busy():  # type: ignore[attr-defined]
            self.compute_attribution(shown.target)
        else:
            self._status(f"attribution method: {self.attribution_method} "
                         f"({METHODS[self.attribution_method].summary}) · a: attribute the cursor's token")

    def action_attribution_options(self) -> None:
        """Method, per-token reduction, steps and baseline in one dialog."""

        def chosen(config: AttributionConfig | None) -> None:
            if config is None:
                return
            self.attribution_config = config
            shown = self.attribution
            if shown is not None and self.session is not None and not self._busy():  # type: ignore[attr-defined]
                self.compute_attribution(shown.target)
            else:
                self._status(f"attribution: {describe(config)} · a: attribute the cursor's token")

        self.push_screen(AttributionOptionsScreen(self.attribution_config), chosen)  # type: ignore[attr-defined]

    def action_save_attribution(self) -> None:
        """Write the shown attribution (scores, tokens, options) as JSON in the current directory."""
        shown = self.attribution
        if shown is None:
            self._status("no attribution shown: move onto a generated token and press a first")
            return
        data = {**shown.result.to_json(), "options": shown.config.to_json()}
        try:
            path = _free_path(Path.cwd(), f"tokentui-attribution-{time.strftime('%Y%m%d-%H%M%S')}",
                              ".json")
            atomic_write_text(path, json_text(data, indent=2) + "\n")
        except OSError as exc:
            self.query_one(StatusLine).error(f"attribution not saved: {exc}")  # type: ignore[attr-defined]
            return
        self._status(f"saved {path.name} in the current directory (attribution of position {shown.target})")

    @work(exclusive=True, exit_on_error=False, group="attribution")
    async def compute_attribution(self, target: int) -> None:
        """Score every token before ``target`` (sequence position) on the engine thread."""
        config = self.attribution_config
        method = config.method
        if (why := self._unsupported(method)) is not None:
            self.query_one(StatusLine).error(why)  # type: ignore[attr-defined]
            return
        stream = self.query_one(TokenStream)  # type: ignore[attr-defined]
        ids = [t.id for t in stream.prompt_tokens] + [s.token.id for s in stream.steps]
        self._status(f"attributing position {target} with {method}…")
        backend = self.backend
        result = await self.engine.call(lambda: attribute_token(backend, ids[:target + 1], target, config))
        self.attribution = AttributionOverlay(result, tuple(ids[:target + 1]), mono=stream.mono,
                                              config=config)
        stream.overlay = self.attribution
        stream.border_subtitle = self.attribution.legend()
        stream.relayout()
        top = max(range(len(result.scores)), key=lambda i: result.normalized[i], default=None)
        line = f"attribution of position {target} ({describe(config)}, {result.elapsed_ms:.0f} ms)"
        if top is not None:
            line += f" · strongest: position {top}"
        if result.note:
            line += f" · {result.note}"
        self._status(line + " · a / escape: clear · A: method · o: options · J: save JSON")

    def action_export_graph(self) -> None:
        """Write the 3D attention graph of the sequence to an HTML file here."""
        if self._busy():  # type: ignore[attr-defined]
            return
        if not self.backend.capabilities.attention:
            self.query_one(StatusLine).error(  # type: ignore[attr-defined]
                f"the graph needs attention weights, which {self.backend.capabilities.name} does not give")
            return
        self.export_graph_file()

    @work(exclusive=True, exit_on_error=False, group="export")
    async def export_graph_file(self) -> None:
        session = self.session
        path = _free_path(Path.cwd(), f"tokentui-graph-{time.strftime('%Y%m%d-%H%M%S')}", ".html")
        self._status("exporting the attention graph…")

        def job() -> Path:
            from tokentui.engine.analysis.attention import full_attention
            from tokentui.export.graph3d import export_graph

            ids = session.context_ids()
            att = full_attention(session.backend, ids)
            return export_graph(session.tokens.tokens(ids), att, path, layer=-1, color_by="weight",
                                title=f"tokentui · {len(ids)} tokens · last layer")

        written = await self.engine.call(job)
        self._status(f"wrote {written}")
