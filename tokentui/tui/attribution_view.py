"""Attribution in the token stream (``a``, ``A``) and the 3D graph export (``e``).

:class:`AttributionView` is an object the App holds (``app.attribution_view``); the App's
``action_*`` for these keys call it. ``a`` scores every token before the completion token
under the cursor with
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
from typing import TYPE_CHECKING

from rich.style import Style
from rich.text import Text

from tokentui.engine.analysis.attribution import METHODS, AttributionConfig, TokenAttribution, attribute_token
from tokentui.engine.persist.files import atomic_write_text, json_text
from tokentui.palette import heat
from tokentui.tui.screens.attribution_options import AttributionOptionsScreen
from tokentui.tui.styling import MONO_BAND_STYLES
from tokentui.tui.widgets.status import StatusLine
from tokentui.tui.widgets.token_stream import TokenStream

if TYPE_CHECKING:
    from tokentui.tui.app import TokenApp

CYCLE = ("saliency", "input_x_gradient", "integrated_gradients", "gradient_shap",
         "attention_last", "attention_mean", "attention_rollout")
"""The methods ``A`` cycles through (``layer_deeplift`` refuses on Llama-style models)."""
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
    return Style(color=heat(value))


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


class AttributionView:
    """Attribution (``a``, ``A``, ``o``, ``J``) and the graph export (``e``) for TokenApp."""

    def __init__(self, app: TokenApp) -> None:
        self.app = app
        self.config = AttributionConfig(method=CYCLE[0])
        """How ``a`` attributes: ``A`` cycles the method, ``o`` edits every option."""
        self.overlay: AttributionOverlay | None = None
        """The attribution shown in the stream, or None."""

    @property
    def method(self) -> str:
        return self.config.method

    @method.setter
    def method(self, method: str) -> None:
        self.config = replace(self.config, method=method)

    def _status(self, text: str) -> None:
        self.app.query_one(StatusLine).info(text)

    def _unsupported(self, method: str) -> str | None:
        """Why the backend cannot run ``method`` (None when it can)."""
        backend = self.app.backend
        assert backend is not None
        caps = backend.capabilities
        kind = METHODS[method].kind
        if kind == "gradient" and not caps.gradients:
            return (f"{method} needs gradients, which {caps.name} does not give "
                    f"({caps.reason or 'no local model'}): try an attention method (A)")
        if kind == "attention" and not caps.attention:
            return f"{method} needs attention weights, which {caps.name} does not give"
        return None

    def clear(self) -> bool:
        """Back to the colour mode; False when nothing was shown."""
        if self.overlay is None:
            return False
        self.overlay = None
        stream = self.app.query_one(TokenStream)
        stream.overlay = None
        stream.watch_colour_mode()  # legend and layout of the colour mode again
        return True

    def attribute(self) -> None:
        """Attribute the token under the cursor; on the same token again: clear."""
        if self.app.busy():
            return
        stream = self.app.query_one(TokenStream)
        ids = [t.id for t in stream.prompt_tokens] + [s.token.id for s in stream.steps]
        if stream.at_next:
            if self.clear():
                self._status("attribution cleared")
            else:
                self._status("move the cursor onto a token (left/right), then press a")
            return
        target = stream.position
        if target < 1:
            self._status("the first token has no tokens before it to attribute to")
            return
        shown = self.overlay
        if shown is not None and shown.target == target and shown.valid_for(ids):
            self.clear()
            self._status("attribution cleared")
            return
        self.compute(target)

    def next_method(self) -> None:
        """Next method; recompute when an attribution is shown."""
        i = CYCLE.index(self.method) if self.method in CYCLE else -1
        self.method = CYCLE[(i + 1) % len(CYCLE)]
        shown = self.overlay
        if shown is not None and self.app.session is not None and not self.app.busy():
            self.compute(shown.target)
        else:
            self._status(f"attribution method: {self.method} "
                         f"({METHODS[self.method].summary}) · a: attribute the cursor's token")

    def options(self) -> None:
        """Method, per-token reduction, steps and baseline in one dialog."""

        def chosen(config: AttributionConfig | None) -> None:
            if config is None:
                return
            self.config = config
            shown = self.overlay
            if shown is not None and self.app.session is not None and not self.app.busy():
                self.compute(shown.target)
            else:
                self._status(f"attribution: {describe(config)} · a: attribute the cursor's token")

        self.app.push_screen(AttributionOptionsScreen(self.config), chosen)

    def save(self) -> None:
        """Write the shown attribution (scores, tokens, options) as JSON in the current directory."""
        shown = self.overlay
        if shown is None:
            self._status("no attribution shown: move onto a generated token and press a first")
            return
        data = {**shown.result.to_json(), "options": shown.config.to_json()}
        try:
            path = _free_path(Path.cwd(), f"tokentui-attribution-{time.strftime('%Y%m%d-%H%M%S')}",
                              ".json")
            atomic_write_text(path, json_text(data, indent=2) + "\n")
        except OSError as exc:
            self.app.show_error(f"attribution not saved: {exc}")
            return
        self._status(f"saved {path.name} in the current directory (attribution of position {shown.target})")

    def compute(self, target: int) -> None:
        """Score every token before ``target`` (sequence position) on the engine thread."""
        config = self.config
        if (why := self._unsupported(config.method)) is not None:
            self.app.show_error(why)
            return
        self.app.run_worker(self._compute(target, config), group="attribution", exclusive=True,
                            name=f"attributing with {config.method}", exit_on_error=False)

    async def _compute(self, target: int, config: AttributionConfig) -> None:
        app = self.app
        stream = app.query_one(TokenStream)
        ids = [t.id for t in stream.prompt_tokens] + [s.token.id for s in stream.steps]
        self._status(f"attributing position {target} with {config.method}…")
        backend = app.backend
        result = await app.engine.call(lambda: attribute_token(backend, ids[:target + 1], target, config))
        self.overlay = AttributionOverlay(result, tuple(ids[:target + 1]), mono=stream.mono, config=config)
        stream.overlay = self.overlay
        stream.border_subtitle = self.overlay.legend()
        stream.relayout()
        top = max(range(len(result.scores)), key=lambda i: result.normalized[i], default=None)
        line = f"attribution of position {target} ({describe(config)}, {result.elapsed_ms:.0f} ms)"
        if top is not None:
            line += f" · strongest: position {top}"
        if result.note:
            line += f" · {result.note}"
        self._status(line + " · a / escape: clear · A: method · o: options · J: save JSON")

    def export_graph(self) -> None:
        """Write the 3D attention graph of the sequence to an HTML file here."""
        app = self.app
        if app.busy():
            return
        assert app.backend is not None
        caps = app.backend.capabilities
        if not caps.attention:
            app.show_error(f"the graph needs attention weights, which {caps.name} does not give")
            return
        app.run_worker(self._export_graph(), group="export", exclusive=True,
                       name="exporting the attention graph", exit_on_error=False)

    async def _export_graph(self) -> None:
        session = self.app.session
        assert session is not None
        path = _free_path(Path.cwd(), f"tokentui-graph-{time.strftime('%Y%m%d-%H%M%S')}", ".html")
        self._status("exporting the attention graph…")

        def job() -> Path:
            from tokentui.engine.analysis.attention import full_attention
            from tokentui.export.graph3d import export_graph

            ids = session.context_ids()
            att = full_attention(session.backend, ids)
            return export_graph(session.tokens.tokens(ids), att, path, layer=-1, color_by="weight",
                                title=f"tokentui · {len(ids)} tokens · last layer")

        written = await self.app.engine.call(job)
        self._status(f"wrote {written}")
