"""The 3D attention graph: edges, a seeded layout, the attention sink dropped, escaping, offline
HTML with its legend that renders in Chromium (the colour bar clear of the legend)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tokentui.engine.errors import ParameterError
from tokentui.engine.results import Token
from tokentui.export import graph3d

HOSTILE = "</script><script>alert(1)</script>"


def sample(t=6, layers=3, heads=2):
    torch.manual_seed(0)
    a = torch.rand(layers, heads, t, t).tril()
    a = a / a.sum(-1, keepdim=True)
    tokens = [Token(i, text) for i, text in enumerate(["<s>", "The", HOSTILE, " cat", "\n", "<b>x</b>"][:t])]
    return tokens, a


def test_edges_follow_threshold():
    _, a = sample()
    edges = graph3d.attention_edges(a.numpy(), layers=[2], threshold=0.2)
    mean = a[2].mean(0).numpy()
    want = {(q, k) for q in range(6) for k in range(q) if mean[q, k] >= 0.2}
    assert {(e.source, e.target) for e in edges} == want
    assert all(e.layer == 2 and e.weight == pytest.approx(float(mean[e.source, e.target])) for e in edges)
    every = graph3d.attention_edges(a.numpy(), layers=[0, 1, 2], threshold=0.0)
    assert len(every) == 3 * 15  # all pairs below the diagonal, self-attention left out


def test_layout_is_seeded():
    tokens, a = sample()
    edges = graph3d.attention_edges(a.numpy(), layers=None, threshold=0.1)
    first = graph3d.layout(len(tokens), edges)
    assert first.shape == (6, 3)
    np.testing.assert_array_equal(first, graph3d.layout(len(tokens), edges))


def test_html_is_offline_and_escaped(tmp_path):
    tokens, a = sample()
    path = graph3d.export_graph(tokens, a, tmp_path / "g.html", all_layers=True, threshold=0.2,
                                title="<i>title</i>")
    html = path.read_text()
    assert "<script src" not in html and "plotly" in html.lower()
    assert HOSTILE not in html and "<b>x</b>" not in html and "<i>title</i>" not in html
    unjson = re.sub(r"\\u([0-9a-f]{4})", lambda m: chr(int(m[1], 16)), html)  # plotly's JSON escapes
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in unjson  # hover text, escaped
    assert "&lt;i&gt;title" in unjson
    assert "<\u200d/script><\u200dscript>" in unjson  # the WebGL label: drawn on a canvas, tags disarmed


def sink_sample():
    """Attention that parks most of every row on the first token, as real heads do."""
    tokens, a = sample()
    a = a.clone()
    a[:, :, 1:, 0] += 3.0
    return tokens, a / a.sum(-1, keepdim=True)


def test_drop_sink_renormalises_the_other_keys():
    _, a = sink_sample()
    dropped = graph3d.drop_sink(a.numpy())
    for q in range(1, 6):
        want = a[..., q, 1:q + 1] / a[..., q, 1:q + 1].sum(-1, keepdim=True)
        np.testing.assert_allclose(dropped[..., q, 1:q + 1], want.numpy(), rtol=1e-6)
        np.testing.assert_allclose(dropped[..., q, :].sum(-1), 1.0, rtol=1e-6)
    assert (dropped[..., 1:, 0] == 0).all()
    np.testing.assert_array_equal(dropped[..., 0, :], a[..., 0, :].numpy())  # nothing else to attend to
    kept = graph3d.attention_edges(a.numpy(), layers=[2], threshold=0.3)
    assert kept and all(e.target == 0 for e in kept)  # the sink drowns every other edge
    edges = graph3d.attention_edges(dropped, layers=[2], threshold=0.3)
    assert edges and all(e.target != 0 for e in edges)


def test_the_page_explains_itself_and_names_the_sink(tmp_path):
    tokens, a = sink_sample()
    page = graph3d.export_graph(tokens, a, tmp_path / "g.html", layer=2, threshold=0.15,
                                color_by="weight").read_text()
    legend = page[page.index('<ul id="tokentui-legend">'):page.index("</ul>")]
    assert "Attention sink dropped" in legend and "0: &lt;s&gt;" in legend and "--keep-sink" in legend
    assert "layer 2" in legend and "0.15" in legend and "scale at the right" in legend
    raw = graph3d.export_graph(tokens, a, tmp_path / "raw.html", layer=2, threshold=0.15,
                               color_by="weight", keep_sink=True).read_text()
    assert "Attention sink kept" in raw and "Attention sink dropped" not in raw
    layers = graph3d.export_graph(tokens, a, tmp_path / "l.html", all_layers=True).read_text()
    assert "Line colour</b>: the layer" in layers


def test_bad_arguments(tmp_path):
    tokens, a = sample()
    with pytest.raises(ParameterError, match="layer 3 is out of range"):
        graph3d.export_graph(tokens, a, tmp_path / "g.html", layer=3)
    with pytest.raises(ParameterError, match="threshold"):
        graph3d.export_graph(tokens, a, tmp_path / "g.html", threshold=2)
    with pytest.raises(ParameterError, match="attention must be"):
        graph3d.export_graph(tokens[:3], a, tmp_path / "g.html")
    with pytest.raises(ParameterError, match="colouring"):
        graph3d.export_graph(tokens, a, tmp_path / "g.html", color_by="rainbow")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed")
def test_html_renders_in_headless_chromium(tmp_path):
    tokens, a = sample()
    path = graph3d.export_graph(tokens, a, tmp_path / "g.html", all_layers=True, threshold=0.15)
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--window-size=1000,700",
             "--virtual-time-budget=10000"]
    dom = subprocess.run([*flags, "--dump-dom", path.as_uri()], capture_output=True, text=True,
                         timeout=180).stdout
    assert "main-svg" in dom and "gl-container" in dom  # plotly drew its layers and the WebGL scene
    assert "legendtext" in dom and "layer 2" in dom
    shot = tmp_path / "g.png"
    subprocess.run([*flags, f"--screenshot={shot}", path.as_uri()], capture_output=True, timeout=180)
    assert shot.stat().st_size > 10_000
    try:
        from PIL import Image
    except ImportError:
        return
    pixels = np.asarray(Image.open(shot).convert("L"))
    scene = pixels[100:600, 100:800]
    assert (scene < 200).mean() > 0.002  # lines and markers, not a blank page


PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const box = (sel) => { const e = document.querySelector(sel); if (!e) return null;
    const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const pre = document.createElement("pre"); pre.id = "probe";
  pre.textContent = JSON.stringify({legend: box("g.legend"), colorbar: box("g.colorbar"),
    explain: box("#tokentui-legend"), scene: box(".gl-container"), width: window.innerWidth,
    height: window.innerHeight});
  document.body.appendChild(pre);
}, 3000));
</script>"""


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Chromium is not installed")
@pytest.mark.parametrize("window", ["1400,900", "900,700"])
def test_colour_bar_and_legend_do_not_overlap_in_chromium(tmp_path, window):
    """Measured in the page Chromium laid out: the plot's legend, its colour bar and the
    explanation above the plot are apart, and all of them on screen."""
    tokens, a = sink_sample()
    path = graph3d.export_graph(tokens, a, tmp_path / "g.html", layer=2, threshold=0.15, color_by="weight")
    probed = tmp_path / "probed.html"
    probed.write_text(path.read_text().replace("</body>", PROBE + "</body>"))
    flags = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
             "--enable-unsafe-swiftshader", "--use-angle=swiftshader", f"--window-size={window}",
             "--virtual-time-budget=15000"]
    dom = subprocess.run([*flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True,
                         timeout=180).stdout
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run"
    boxes = json.loads(found[1].replace("&amp;", "&"))
    legend, colorbar, explain = boxes["legend"], boxes["colorbar"], boxes["explain"]
    assert legend and colorbar and explain and boxes["scene"]
    assert not overlap(legend, colorbar), boxes
    assert not overlap(explain, colorbar) and not overlap(explain, legend), boxes
    for box in (legend, colorbar, explain):
        assert box[0] >= 0 and box[2] <= boxes["width"] + 1, boxes  # nothing cut off at the sides
    assert "Attention sink dropped" in dom


def test_cli_graph(tmp_path, real_backend, monkeypatch):
    from tokentui.cli import analysis, app

    monkeypatch.setattr(analysis, "load_backend", lambda opts, quiet=False: real_backend)
    out = tmp_path / "graph.html"
    result = CliRunner().invoke(app, ["graph", "Hello world", "--no-chat-template", "--all-layers",
                                      "--threshold", "0.3", "-o", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert out.is_file() and "<script src" not in page
    assert "Attention sink dropped" in page and "Line colour</b>: the layer" in page
    kept = CliRunner().invoke(app, ["graph", "Hello world", "--no-chat-template", "--layer", "0",
                                    "--keep-sink", "-o", str(out)])
    assert kept.exit_code == 0, kept.output
    assert "Attention sink kept" in out.read_text() and "sink kept" in kept.output
    bad = CliRunner().invoke(app, ["graph", "Hello", "--layer", "1", "--all-layers", "-o", str(out)])
    assert bad.exit_code == 2 and "not both" in bad.output
