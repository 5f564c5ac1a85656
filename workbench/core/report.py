"""Reports of a run: plain-text tables for the CLI, and the run card.

The run card is one self-contained HTML file (inline styles, SVG charts, PNG images as data
URIs; nothing fetched from anywhere) that records a run for review: its config, the data
summary the user saw in the guided flow, the metric curves, the plugin's result figures, the
footprint/latency table teacher vs student, evaluations, artifacts with checksums, package
versions and the end of the log. For a clinical physicist it is the QA record of a model.
"""
from __future__ import annotations

import base64
import html
import io
import json
import math
import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: artifacts embedded in the card as result figures (larger ones are only listed)
FIGURE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
MAX_FIGURE_BYTES = 3_000_000
PROFILE_KEYS = [("parameters", "parameters"), ("storage_bytes", "storage"),
                ("activation_peak_bytes", "activation memory"), ("macs", "MACs"),
                ("latency_median_ms", "latency median"), ("latency_p90_ms", "latency p90")]
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"]


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"


def profile_table(profiles: dict[str, dict[str, Any]]) -> str:
    cols = [("parameters", "params", lambda v: f"{v:,.0f}"), ("storage_bytes", "storage", human_bytes),
            ("activation_peak_bytes", "activations", human_bytes), ("macs", "MACs", lambda v: f"{v / 1e6:,.1f} M"),
            ("latency_median_ms", "latency med", lambda v: f"{v:.2f} ms"), ("latency_p90_ms", "p90", lambda v: f"{v:.2f} ms")]
    header = f"{'model':<14}" + "".join(f"{title:>16}" for _, title, _ in cols)
    lines = [header, "-" * len(header)]
    for name, prof in profiles.items():
        cells = "".join(f"{fmt(prof[key]) if key in prof else '-':>16}" for key, _, fmt in cols)
        lines.append(f"{name:<14}{cells}")
    names = list(profiles)
    if len(names) >= 2:
        a, b = profiles[names[0]], profiles[names[-1]]
        ratios = []
        for key, title, _ in cols:
            if b.get(key) and a.get(key):
                ratios.append(f"{title} {a[key] / b[key]:.1f}x")
        lines.append(f"{names[0]} / {names[-1]}: " + ", ".join(ratios))
    threads = next((p.get("threads") for p in profiles.values() if p.get("threads")), None)
    if threads:
        lines.append(f"latency on {next(iter(profiles.values())).get('device', 'cpu')} with {threads} thread(s)")
    return "\n".join(lines)


# -- previews from the guided flow ---------------------------------------------------------------
def _plain(value: Any) -> Any:
    """Dataclasses, numpy arrays and scalars -> JSON-able data (arrays become nested lists)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in asdict(value).items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def previews_to_json(previews: dict[str, Any]) -> dict[str, Any]:
    """{step kind: Preview} -> JSON-able data, kept with a run started from the flow."""
    return {"format": 1, "steps": {kind: _plain(p) for kind, p in previews.items()}}


# -- small SVG charts ------------------------------------------------------------------------------
def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 2.5, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def svg_lines(series: dict[str, tuple[list[float], list[float]]], title: str, x_label: str = "step",
              width: int = 540, height: int = 250) -> str:
    """A line chart of several series (name -> (x, y)) as inline SVG; NaNs break the line."""
    pts = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if y is not None and math.isfinite(y)]
    if not pts:
        return ""
    x0, x1 = min(p[0] for p in pts), max(p[0] for p in pts)
    y0, y1 = min(p[1] for p in pts), max(p[1] for p in pts)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - abs(y0) * 0.1 - 1e-9, y1 + abs(y1) * 0.1 + 1e-9
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad
    left, right, top, bottom = 58, 12, 26, 36
    w, h = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * w

    def sy(y: float) -> float:
        return top + (1 - (y - y0) / (y1 - y0)) * h

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' "
           f"font-size='10'><rect width='{width}' height='{height}' fill='white'/>",
           f"<text x='{left}' y='15' font-size='12' font-weight='bold'>{html.escape(title)}</text>"]
    for t in _ticks(y0, y1):
        out.append(f"<line x1='{left}' x2='{left + w}' y1='{sy(t):.1f}' y2='{sy(t):.1f}' stroke='#e6e9ee'/>"
                   f"<text x='{left - 4}' y='{sy(t) + 3:.1f}' text-anchor='end' fill='#555'>{t:.3g}</text>")
    for t in _ticks(x0, x1):
        out.append(f"<text x='{sx(t):.1f}' y='{top + h + 14}' text-anchor='middle' fill='#555'>{t:.4g}</text>")
    out.append(f"<rect x='{left}' y='{top}' width='{w}' height='{h}' fill='none' stroke='#999'/>")
    out.append(f"<text x='{left + w / 2:.0f}' y='{height - 4}' text-anchor='middle' fill='#333'>{html.escape(x_label)}</text>")
    for i, (name, (xs, ys)) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for x, y in zip(xs, ys):
            if y is None or not math.isfinite(y):
                if segment:
                    segments.append(segment)
                segment = []
            else:
                segment.append(f"{sx(x):.1f},{sy(y):.1f}")
        if segment:
            segments.append(segment)
        for seg in segments:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                out.append(f"<circle cx='{cx}' cy='{cy}' r='2.5' fill='{color}'/>")
            else:
                out.append(f"<polyline fill='none' stroke='{color}' stroke-width='1.6' points='{' '.join(seg)}'/>")
        out.append(f"<rect x='{left + w - 150}' y='{top + 6 + 13 * i}' width='10' height='3' fill='{color}'/>"
                   f"<text x='{left + w - 136}' y='{top + 10 + 13 * i}' fill='#333'>{html.escape(name)}</text>")
    out.append("</svg>")
    return "".join(out)


def _png(data: np.ndarray, cmap: str, levels: tuple[float, float] | None) -> str:
    """A 2-D array as a base64 PNG through a matplotlib colormap."""
    from matplotlib import colormaps
    from matplotlib.image import imsave

    arr = np.asarray(data, dtype=float)
    finite = arr[np.isfinite(arr)]
    lo, hi = levels or ((float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
    buf = io.BytesIO()
    name = cmap if cmap in colormaps else "viridis"
    imsave(buf, np.nan_to_num(arr, nan=lo), cmap=name, vmin=lo, vmax=hi if hi > lo else lo + 1, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def svg_image(image: dict, max_side: int = 300) -> str:
    data = np.asarray(image.get("data") or [[0]], dtype=float)
    if image.get("origin") == "lower":  # row 0 at the bottom
        data = data[::-1]
        image = {**image, "points": [[len(data) - 1 - r, c] for r, c in (image.get("points") or [])]}
    rows, cols = data.shape
    scale = max_side / max(rows, cols)
    w, h = max(int(cols * scale), 1), max(int(rows * scale), 1)
    png = _png(data, str(image.get("colormap") or "viridis"), image.get("levels"))
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{w}' height='{h}'>"
             f"<image href='data:image/png;base64,{png}' width='{w}' height='{h}' preserveAspectRatio='none' "
             "style='image-rendering: pixelated'/>"]
    for r, c in (image.get("points") or [])[:5000]:
        parts.append(f"<circle cx='{(c + 0.5) * scale:.1f}' cy='{(r + 0.5) * scale:.1f}' r='3' fill='#ff3b30' "
                     "stroke='white' stroke-width='0.8'/>")
    parts.append("</svg>")
    return "".join(parts)


def svg_scatter(sc: dict, width: int = 360, height: int = 280, max_points: int = 4000) -> str:
    x, y = np.asarray(sc.get("x") or [], dtype=float), np.asarray(sc.get("y") or [], dtype=float)
    if not len(x):
        return ""
    hl = np.asarray(sc["highlight"], dtype=bool) if sc.get("highlight") is not None else np.zeros(len(x), bool)
    labels = sc.get("labels")
    keep = np.linspace(0, len(x) - 1, min(len(x), max_points)).astype(int)
    pad = 10
    x0, x1, y0, y1 = x.min(), x.max(), y.min(), y.max()
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

    def sx(v: float) -> float:
        return pad + (v - x0) / (x1 - x0) * (width - 2 * pad)

    def sy(v: float) -> float:
        return height - pad - (v - y0) / (y1 - y0) * (height - 2 * pad)

    names = sorted({str(v) for v in labels}) if labels is not None else []
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}'>"
             f"<rect width='{width}' height='{height}' fill='white' stroke='#ccc'/>"]
    for i in keep:
        color = COLORS[names.index(str(labels[i])) % len(COLORS)] if names else "#9aa0a8"
        parts.append(f"<circle cx='{sx(x[i]):.1f}' cy='{sy(y[i]):.1f}' r='2' fill='{color}' fill-opacity='0.6'/>")
    for i in np.flatnonzero(hl)[:max_points]:
        parts.append(f"<circle cx='{sx(x[i]):.1f}' cy='{sy(y[i]):.1f}' r='4' fill='none' stroke='#111'/>")
    parts.append("</svg>")
    return "".join(parts)


# -- the card ----------------------------------------------------------------------------------
CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #1f2328; max-width: 1100px;
       margin: 24px auto; padding: 0 16px; font-size: 14px; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #dde2e8;
padding-bottom: 4px; } h3 { font-size: 14px; margin-bottom: 4px; }
table { border-collapse: collapse; margin: 6px 0; } td, th { border: 1px solid #dde2e8; padding: 3px 8px;
text-align: left; vertical-align: top; } th { background: #eef1f5; } td.num { text-align: right;
font-variant-numeric: tabular-nums; } .muted { color: #6b7280; } .warn { color: #a15c00; } .bad { color: #b00020; }
.figs { display: flex; flex-wrap: wrap; gap: 12px; } .figs figure { margin: 0; } figcaption { font-size: 12px;
color: #555; max-width: 540px; } code { font-size: 12px; } .keyfig { display: inline-block; margin: 0 18px 6px 0; }
.keyfig b { display: block; font-size: 16px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> str:
    if value is None:
        return "nan"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,d}"
    return _e(value)


def _table(head: list[str], rows: list[list[Any]], numeric_from: int = 1) -> str:
    if not rows:
        return "<p class='muted'>none</p>"
    out = "<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"
    for row in rows:
        out += "<tr>" + "".join(
            f"<td class='num'>{_num(c)}</td>" if i >= numeric_from and isinstance(c, (int, float)) and not
            isinstance(c, bool) else f"<td>{c if isinstance(c, _Raw) else _e(c)}</td>" for i, c in enumerate(row)) + "</tr>"
    return out + "</table>"


class _Raw(str):
    """Cell content that is already HTML."""


def _profiles(evaluations: list[dict]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for e in evaluations:
        if str(e.get("criteria", "")).startswith("profile "):
            out.setdefault(e["subject"], {"_device": e["criteria"][8:]})[e["metric"]] = e["value"]
    return out


def _fmt_profile(key: str, v: float | None) -> str:
    if v is None:
        return "-"
    if key in ("storage_bytes", "activation_peak_bytes"):
        return human_bytes(v)
    if key == "macs":
        return f"{v / 1e6:,.2f} M"
    if key.startswith("latency"):
        return f"{v:.3f} ms"
    return f"{v:,.0f}"


def _footprint_html(profiles: dict[str, dict[str, float]]) -> str:
    if not profiles:
        return ("<p class='muted'>Not measured for this run (Inspect → Measure footprint &amp; latency, or "
                "<code>workbench profile RUN</code>).</p>")
    rows = [[name] + [_fmt_profile(k, p.get(k)) for k, _ in PROFILE_KEYS] + [p.get("_device", "")]
            for name, p in profiles.items()]
    if "teacher" in profiles and "student" in profiles:
        t, s = profiles["teacher"], profiles["student"]
        rows.append(["teacher / student"] + [f"{t[k] / s[k]:.1f}×" if t.get(k) and s.get(k) else "-"
                                             for k, _ in PROFILE_KEYS] + [""])
    return _table(["model"] + [t for _, t in PROFILE_KEYS] + ["measured on"], rows, numeric_from=99)


def _previews_html(data: dict) -> str:
    from workbench.api import STEP_TITLES

    steps = data.get("steps", {})
    if not steps:
        return ""
    out = ["<h2>What was chosen (as previewed in the guided flow)</h2>"]
    for kind, p in steps.items():
        out.append(f"<h3>{_e(STEP_TITLES.get(kind, kind))}</h3>")
        if p.get("summary"):
            out.append(f"<p>{_e(p['summary'])}</p>")
        if p.get("figures"):
            out.append("<div>" + "".join(f"<span class='keyfig'><span class='muted'>{_e(k)}</span><b>{_e(v)}</b></span>"
                                         for k, v in p["figures"].items()) + "</div>")
        warnings = p.get("warnings") or []
        if warnings:
            out.append("<details><summary class='warn'>" + _e(f"{len(warnings)} warning(s), e.g. {warnings[0]}") +
                       "</summary><ul>" + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul></details>")
        for t in p.get("tables") or []:
            out.append(f"<p><b>{_e(t.get('title', ''))}</b> <span class='muted'>{_e(t.get('note', ''))}</span></p>")
            out.append(_table(list(t.get("columns", [])), [list(r) for r in t.get("rows", [])]))
        figs = []
        for im in p.get("images") or []:
            try:
                figs.append(f"<figure>{svg_image(im)}<figcaption>{_e(im.get('title', ''))}"
                            f"{(' — ' + _e(im['caption'])) if im.get('caption') else ''}</figcaption></figure>")
            except Exception as exc:  # noqa: BLE001 - one bad image must not lose the card
                figs.append(f"<p class='bad'>image {_e(im.get('title', ''))}: {_e(exc)}</p>")
        for sc in p.get("scatters") or []:
            svg = svg_scatter(sc)
            if svg:
                figs.append(f"<figure>{svg}<figcaption>{_e(sc.get('title', ''))}"
                            f"{(' — ' + _e(sc['caption'])) if sc.get('caption') else ''}</figcaption></figure>")
        if figs:
            out.append("<div class='figs'>" + "".join(figs) + "</div>")
    return "".join(out)


def _curves_html(metrics: list[dict]) -> str:
    by_key: dict[str, tuple[list[float], list[float]]] = {}
    for m in metrics:
        xs, ys = by_key.setdefault(m["key"], ([], []))
        xs.append(float(m["step"]))
        ys.append(None if m["value"] is None else float(m["value"]))
    if not by_key:
        return "<p class='muted'>no metrics recorded</p>"
    losses = {k: v for k, v in by_key.items() if "loss" in k}
    others = {k: v for k, v in by_key.items() if "loss" not in k}
    charts = []
    if losses:
        charts.append(svg_lines(losses, "losses"))
    for key, series in list(others.items())[:11]:
        charts.append(svg_lines({key: series}, key))
    return "<div class='figs'>" + "".join(f"<figure>{c}</figure>" for c in charts if c) + "</div>"


def _figures_html(artifacts: list[dict]) -> str:
    out = []
    for a in artifacts:
        path = Path(a["path"])
        mime = FIGURE_SUFFIXES.get(path.suffix.lower())
        if mime is None or not path.is_file() or path.stat().st_size > MAX_FIGURE_BYTES:
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        out.append(f"<figure><img src='data:{mime};base64,{data}' style='max-width:520px'>"
                   f"<figcaption>{_e(a['kind'])}: {_e(path.name)}</figcaption></figure>")
    return "<div class='figs'>" + "".join(out) + "</div>" if out else "<p class='muted'>no image artifacts</p>"


def run_card_html(session, run_id: str) -> str:
    """The run card of a run in `session`'s store (see the module docstring)."""
    store = session.store
    run = store.get_run(run_id)
    rid = run["id"]
    run_dir = session.run_dir(rid)
    when = lambda t: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else "-"  # noqa: E731
    evaluations = store.evaluations(rid)
    artifacts = store.artifacts(rid)
    metrics = store.metrics(rid)
    facts = [["run", rid], ["pipeline", f"{run['plugin']}.{run['pipeline']}"], ["status", run["status"]],
             ["created", when(run.get("created"))], ["started", when(run.get("started"))],
             ["finished", when(run.get("finished"))],
             ["duration", f"{run['duration_s']:.1f} s" if run.get("duration_s") else "-"],
             ["device", run.get("device") or "-"], ["host", run.get("host") or "-"], ["seed", run.get("seed")],
             ["resumed", run.get("resumes") or 0], ["run folder", str(run_dir)]]
    if run.get("parent"):
        facts.append(["derived from", run["parent"]])
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Run card {_e(rid)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>Run card · {_e(rid)}</h1><p class='muted'>{_e(run['plugin'])}.{_e(run['pipeline'])} · "
             f"{_e(run['status'])} · generated {when(time.time())} by the Distillation Workbench</p>"]
    if run.get("error"):
        parts.append(f"<p class='bad'><b>{_e(run['error'])}</b></p>")
    parts.append("<h2>Run</h2>" + _table(["", ""], facts, numeric_from=99))
    parts.append("<h2>Config</h2>" + _table(["setting", "value"], [[k, _Raw(f"<code>{_e(json.dumps(v))}</code>")]
                                                                   for k, v in run["config"].items()], numeric_from=99))
    previews = run_dir / "flow_previews.json"
    if previews.is_file():
        try:
            parts.append(_previews_html(json.loads(previews.read_text(encoding="utf-8"))))
        except (ValueError, OSError) as exc:
            parts.append(f"<p class='warn'>The flow's previews ({_e(previews)}) could not be read: {_e(exc)}</p>")
    parts.append("<h2>Curves</h2>" + _curves_html(metrics))
    last = store.last_metrics(rid)
    if last:
        parts.append("<h3>Last values</h3>" + _table(["metric", "value"], [[k, v] for k, v in last.items()]))
    parts.append("<h2>Footprint and latency</h2>" + _footprint_html(_profiles(evaluations)))
    plain = [e for e in evaluations if not str(e.get("criteria", "")).startswith("profile ")]
    plain.sort(key=lambda e: (e.get("case_id") or "") != "")  # aggregates first
    parts.append("<h2>Evaluations</h2>" + _table(
        ["subject", "metric", "value", "criteria", "case"],
        [[e["subject"], e["metric"], e["value"], e["criteria"], e.get("case_id") or ""] for e in plain[:400]],
        numeric_from=2))
    if len(plain) > 400:
        parts.append(f"<p class='muted'>… and {len(plain) - 400} more (see <code>workbench show {_e(rid)}</code>)</p>")
    parts.append("<h2>Result figures</h2>" + _figures_html(artifacts))
    parts.append("<h2>Artifacts</h2>" + _table(
        ["kind", "bytes", "sha256", "path"],
        [[a["kind"], a["bytes"], _Raw(f"<code>{_e(a['sha256'][:16])}…</code>"), a["path"]] for a in artifacts]))
    versions = run.get("versions") or {}
    parts.append("<h2>Package versions</h2>" + _table(["package", "version"], sorted(
        [[k, str(v)] for k, v in versions.items()]), numeric_from=99))
    logs = store.logs(rid)[-60:]
    if logs:
        lines = "\n".join(f"{time.strftime('%H:%M:%S', time.localtime(l['time']))} {l['level']}: {l['message']}"
                          for l in logs)
        parts.append(f"<h2>Log (last {len(logs)} lines)</h2><pre style='white-space: pre-wrap'>{_e(lines)}</pre>")
    parts.append("</body></html>")
    return "".join(parts)


def write_run_card(session, run_id: str, path: str | Path | None = None) -> Path:
    """Write the run card; default path: ``<run folder>/run_card.html``. Returns the path."""
    run = session.store.get_run(run_id)
    out = Path(path) if path else session.run_dir(run["id"]) / "run_card.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    text = run_card_html(session, run["id"])
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
