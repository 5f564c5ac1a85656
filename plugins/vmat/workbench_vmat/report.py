"""The run report: one self-contained HTML file (figures embedded as base64 PNG), headless.

Reads a distillation run's ``evaluation.json`` and ``predictions/<case>.npz`` and writes
tables (gamma pass rates mean ± sd per subject and per case, high-dose MAE, DVH metrics,
footprint and latency of teacher and student, package versions) and figures (dose slices:
CT with a dose colour wash, isodose lines and structure outlines, reference vs prediction
vs difference, the gamma map with failing points in red; pass rates per case; DVHs;
training curves). Matplotlib is used through ``Figure`` objects and the Agg canvas only,
so it never selects a GUI backend and runs without a display.
"""
from __future__ import annotations

import base64
import html
import io
import math
import platform
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from workbench.api import InputError

from .compute.dvh import cumulative_dvh
from .compute.evaluation import (CRITERIA, HIGH_DOSE_FRACTION, LOW_DOSE_CUTOFF_PCT, gamma_map, load_case_doses,
                                 ordered_subjects, read_evaluation, summarise)

__all__ = ["write_report", "case_figure", "SUBJECT_LABELS"]

SUBJECT_LABELS = {"input": "input (dose in water)", "teacher": "teacher", "student": "student (KD)",
                  "student_only": "student-only", "reference": "reference"}
#: npz array holding each subject's dose
SUBJECT_ARRAY = {"input": "dose_water", "teacher": "teacher", "student": "student", "student_only": "student_only"}
SUBJECT_COLORS = {"reference": "#222222", "input": "#7f7f7f", "teacher": "#1f77b4", "student": "#d62728",
                  "student_only": "#ff7f0e"}
ISODOSE_PCT = (30, 50, 80, 95, 100, 105)
ISODOSE_COLORS = ("#2166ac", "#00bcd4", "#4caf50", "#ffeb3b", "#ff9800", "#e91e63")
STRUCTURE_COLORS = {"PTV": "#ff1744", "CTV": "#ff9100", "Rectum": "#a1887f", "Bladder": "#ffee58",
                    "FemoralHead_L": "#76ff03", "FemoralHead_R": "#76ff03", "BODY": "#9e9e9e"}
GAMMA_CRITERIA_LABELS = {key: f"{dd:g}%/{dta:g}mm" for key, dd, dta in CRITERIA}


# ---------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------

def _figure(width: float, height: float):
    """A Figure on its own Agg canvas. Margins are set by hand: a layout engine draws each
    figure twice (measured: half of the report's time)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=90)


def _png(fig, save_as: Path | None = None) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    data = buf.getvalue()
    if save_as is not None:
        save_as.write_bytes(data)
    return base64.b64encode(data).decode("ascii")


def _gamma_cmap():
    from matplotlib.colors import ListedColormap
    from matplotlib import colormaps

    passing = colormaps["Greens_r"](np.linspace(0.05, 0.75, 128))
    failing = colormaps["Reds"](np.linspace(0.55, 1.0, 128))
    return ListedColormap(np.vstack([passing, failing]), name="gamma_pass_fail")


def _slice(volume: np.ndarray, orientation: str, index: int) -> np.ndarray:
    """Rows top to bottom as shown: axial (y down), coronal and sagittal (z up)."""
    if orientation == "axial":
        return volume[index]
    if orientation == "coronal":
        return volume[:, index, :][::-1]
    return volume[:, :, index][::-1]


def _extent(shape: Sequence[int], spacing: Sequence[float], orientation: str) -> tuple[float, float, float, float]:
    sz, sy, sx = spacing
    nz, ny, nx = shape
    w, h = {"axial": (nx * sx, ny * sy), "coronal": (nx * sx, nz * sz), "sagittal": (ny * sy, nz * sz)}[orientation]
    return (0.0, w, h, 0.0)


def focus_point(case: Mapping[str, Any]) -> tuple[int, int, int]:
    """Voxel the slices go through: the target's centre (PTV, else CTV) or the high-dose centroid."""
    for name in ("PTV", "CTV"):
        mask = case["structures"].get(name)
        if mask is not None and mask.any():
            return tuple(int(round(c)) for c in np.argwhere(mask).mean(0))  # type: ignore[return-value]
    ref = case["doses"]["reference"]
    return tuple(int(round(c)) for c in np.argwhere(ref >= 0.9 * ref.max()).mean(0))  # type: ignore[return-value]


def _draw_dose(ax, ct2d, dose2d, rx, extent, structures2d: Mapping[str, np.ndarray], title: str) -> Any:
    ax.imshow(np.clip(ct2d, -160, 240), cmap="gray", vmin=-160, vmax=240, extent=extent, interpolation="bilinear")
    wash = np.ma.masked_less(dose2d, 0.3 * rx)
    im = ax.imshow(wash, cmap="jet", vmin=0.3 * rx, vmax=1.1 * rx, alpha=0.45, extent=extent, interpolation="bilinear")
    if float(dose2d.max()) > 0.3 * rx:
        levels = [p / 100 * rx for p in ISODOSE_PCT]
        ax.contour(dose2d, levels=levels, colors=ISODOSE_COLORS, linewidths=0.9, extent=extent, origin="upper")
    for name, m in structures2d.items():
        if m.any() and not m.all():
            ax.contour(m.astype(np.float32), levels=[0.5], colors=[STRUCTURE_COLORS.get(name, "#ffffff")],
                       linewidths=0.7, linestyles="--", extent=extent, origin="upper")
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return im


def case_figure(case: Mapping[str, Any], subject: str = "student", *, orientations: Sequence[str] = ("axial", "coronal", "sagittal"),
                gamma_volume: np.ndarray | None = None):
    """CT + dose wash + isodoses for the reference, the subject (and teacher, input when
    present), the subject - reference difference (% of the prescription) and its gamma map
    (2%/2mm), one row per orientation through the target. Returns a matplotlib Figure."""
    doses = case["doses"]
    if SUBJECT_ARRAY.get(subject, subject) not in doses:
        raise ValueError(f"case {case['case']!r} has no {subject!r} dose (has: {', '.join(sorted(doses))})")
    ref = doses["reference"]
    rx = case["prescription_gy"] or float(ref.max())
    pred = doses[SUBJECT_ARRAY.get(subject, subject)]
    panels = [("reference", ref)]
    panels.append((subject, pred))
    for other in ("teacher", "input"):
        if other != subject and SUBJECT_ARRAY[other] in doses:
            panels.append((other, doses[SUBJECT_ARRAY[other]]))
    if gamma_volume is None:
        gamma_volume = gamma_map(ref, pred, case["spacing_mm"], 2, 2, LOW_DOSE_CUTOFF_PCT, prescription_gy=case["prescription_gy"])
    diff = 100.0 * (pred - ref) / rx
    low = (ref < LOW_DOSE_CUTOFF_PCT / 100 * ref.max()) & (pred < LOW_DOSE_CUTOFF_PCT / 100 * ref.max())
    ncol = len(panels) + 2
    focus = focus_point(case)
    spacing = case["spacing_mm"]
    # rows as tall as their slices are (mm), so no row is padded with blank space
    ratios = [(lambda e: abs(e[2] - e[3]) / abs(e[1] - e[0]))(_extent(ref.shape, spacing, o)) for o in orientations]
    fig = _figure(2.45 * ncol, 2.25 * sum(ratios) + 0.35 * len(orientations) + 0.4)
    top = 1.0 - 0.75 / fig.get_size_inches()[1]
    # image columns, each colour bar in a narrow column of its own (after the last dose
    # panel, the difference and the gamma map), spanning all rows
    bar_after = {len(panels) - 1, len(panels), len(panels) + 1}
    widths, where = [], {}
    for c in range(ncol):
        where[c] = len(widths)
        widths.append(1.0)
        if c in bar_after:
            where[("bar", c)] = len(widths)
            widths += [0.06, 0.22]  # the bar, room for its labels
    grid = fig.add_gridspec(len(orientations), len(widths), width_ratios=widths, height_ratios=ratios, left=0.01,
                            right=0.99, bottom=0.02, top=top, wspace=0.06, hspace=0.3)
    axes = np.array([[fig.add_subplot(grid[r, where[c]]) for c in range(ncol)] for r in range(len(orientations))])
    n_rows = len(orientations)
    bar_axes = {c: fig.add_subplot(grid[max(0, n_rows // 2 - 1) if n_rows > 2 else 0: n_rows, where[("bar", c)]])
                for c in bar_after}
    gcmap = _gamma_cmap()
    wash = diff_im = gam_im = None
    for r, orient in enumerate(orientations):
        index = focus[("axial", "coronal", "sagittal").index(orient)]
        extent = _extent(ref.shape, spacing, orient)
        ct2d = _slice(case["ct"], orient, index)
        st2d = {n: _slice(m, orient, index) for n, m in case["structures"].items()}
        for c, (name, dose) in enumerate(panels):
            title = f"{SUBJECT_LABELS.get(name, name)}" + (f"\n{orient} {index + 1}/{ref.shape[('axial', 'coronal', 'sagittal').index(orient)]}" if c == 0 else "")
            wash = _draw_dose(axes[r, c], ct2d, _slice(dose, orient, index), rx, extent, st2d, title)
        ax = axes[r, len(panels)]
        ax.imshow(np.clip(ct2d, -160, 240), cmap="gray", vmin=-160, vmax=240, extent=extent)
        d2 = np.ma.masked_where(_slice(low, orient, index), _slice(diff, orient, index))
        diff_im = ax.imshow(d2, cmap="RdBu_r", vmin=-5, vmax=5, extent=extent, interpolation="nearest")
        ax.set_title(f"{SUBJECT_LABELS.get(subject, subject)}\n− reference", fontsize=9)
        ax = axes[r, len(panels) + 1]
        ax.imshow(np.clip(ct2d, -160, 240), cmap="gray", vmin=-160, vmax=240, extent=extent)
        g2 = _slice(gamma_volume, orient, index)
        gam_im = ax.imshow(np.ma.masked_invalid(g2), cmap=gcmap, vmin=0, vmax=2, extent=extent, interpolation="nearest")
        g_ok = g2[~np.isnan(g2)]
        rate = f"{100 * np.count_nonzero(g_ok <= 1) / g_ok.size:.1f} % pass in slice" if g_ok.size else "no points"
        ax.set_title(f"γ 2%/2mm\n{rate}", fontsize=9)
        for a in axes[r, len(panels):]:
            a.set_xticks([])
            a.set_yticks([])
    for im, col, label in ((wash, len(panels) - 1, "dose (Gy)"), (diff_im, len(panels), "% of prescription"),
                           (gam_im, len(panels) + 1, "γ (red: > 1, fails)")):
        cb = fig.colorbar(im, cax=bar_axes[col])
        cb.set_label(label, fontsize=8)
        cb.ax.tick_params(labelsize=7)
    iso = ", ".join(f"{p} %" for p in ISODOSE_PCT)
    fig.suptitle(f"{case['case']} · prescription {rx:g} Gy · isodose lines {iso} · dashed: structures", fontsize=10)
    return fig


def _pass_rate_figure(subjects: Mapping[str, Any], order: Sequence[str]):
    fig = _figure(3.3 * len(CRITERIA), 3.1)
    axes = fig.subplots(1, len(CRITERIA), squeeze=False, gridspec_kw={
        "left": 0.07, "right": 0.98, "bottom": 0.18, "top": 0.84, "wspace": 0.3})[0]
    for ax, (key, _, _) in zip(axes, CRITERIA):
        for i, s in enumerate(order):
            vals = [m.get(key, np.nan) for m in subjects[s].get("per_case", {}).values()]
            vals = np.array([v for v in vals if v is not None and np.isfinite(v)], dtype=float)
            if not vals.size:
                continue
            jitter = (np.arange(vals.size) - (vals.size - 1) / 2) * (0.3 / max(vals.size, 1))
            ax.scatter(i + jitter, vals, s=14, color=SUBJECT_COLORS.get(s, "#555"), alpha=0.7)
            sd = vals.std(ddof=1) if vals.size > 1 else 0.0
            ax.errorbar(i + 0.28, vals.mean(), yerr=sd, fmt="o", color="black", capsize=3, markersize=4)
        ax.set_xticks(range(len(order)), [SUBJECT_LABELS.get(s, s).replace(" (", "\n(") for s in order], fontsize=7)
        ax.set_title(f"γ {GAMMA_CRITERIA_LABELS[key]}", fontsize=10)
        ax.set_ylabel("pass rate (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("Pass rate per test case (dots) and mean ± sd (black)", fontsize=10)
    return fig


def _dvh_figure(case: Mapping[str, Any], subjects: Sequence[str]):
    names = [n for n, m in case["structures"].items() if m.any()]
    fig = _figure(3.4 * min(len(names), 3), 3.0 * math.ceil(len(names) / 3))
    rows = math.ceil(len(names) / 3)
    axes = fig.subplots(rows, min(len(names), 3), squeeze=False, gridspec_kw={
        "left": 0.08, "right": 0.98, "bottom": 0.16 / rows, "top": 1 - 0.16 / rows, "wspace": 0.3,
        "hspace": 0.45}).ravel()
    styles = {"reference": "-", "input": ":", "teacher": "-.", "student": "--", "student_only": (0, (1, 1))}
    for ax, name in zip(axes, names):
        for s in ["reference", *subjects]:
            key = "reference" if s == "reference" else SUBJECT_ARRAY.get(s, s)
            if key not in case["doses"]:
                continue
            h = cumulative_dvh(case["doses"][key], case["structures"][name], case["spacing_mm"])
            d, v = h.curve(300)
            ax.plot(d, v, linestyle=styles.get(s, "-"), color=SUBJECT_COLORS.get(s, "#555"),
                    label=SUBJECT_LABELS.get(s, s), linewidth=1.3)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("dose (Gy)")
        ax.set_ylabel("volume (%)")
        ax.set_ylim(0, 102)
        ax.grid(alpha=0.3)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.suptitle(f"Cumulative DVH · {case['case']}", fontsize=10)
    return fig


def _curve_points(value: Any) -> tuple[np.ndarray, np.ndarray]:
    """Accepts [(step, value), ...], {"step": [...], "value": [...]} or a plain list of values."""
    if isinstance(value, Mapping):
        steps = value.get("step", value.get("steps"))
        values = value.get("value", value.get("values"))
        if values is None:
            raise ValueError("a curve mapping needs 'value' (or 'values') and optionally 'step'")
        values = np.asarray(values, dtype=float)
        steps = np.arange(values.size) if steps is None else np.asarray(steps, dtype=float)
        return steps, values
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 2 and arr.shape[1] == 2:
        return arr[:, 0], arr[:, 1]
    return np.arange(arr.size, dtype=float), arr.reshape(-1)


def _curves_figure(curves: Mapping[str, Any]):
    losses = {k: v for k, v in curves.items() if "loss" in k.lower()}
    others = {k: v for k, v in curves.items() if k not in losses}
    groups = [g for g in (losses, others) if g]
    fig = _figure(5.0 * len(groups), 3.2)
    axes = fig.subplots(1, len(groups), squeeze=False, gridspec_kw={
        "left": 0.08, "right": 0.98, "bottom": 0.16, "top": 0.9, "wspace": 0.22})[0]
    for ax, group in zip(axes, groups):
        positive = True
        for name, value in group.items():
            x, y = _curve_points(value)
            if y.size == 0:
                continue
            positive &= bool(np.all(y[np.isfinite(y)] > 0))
            ax.plot(x, y, label=name, linewidth=1.3, marker="o" if y.size < 15 else None, markersize=3)
        if group is losses and positive:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title("losses" if group is losses else "validation metrics", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


# ---------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------

def _e(x: Any) -> str:
    return html.escape(str(x))


def _ms(summary: Mapping[str, Any] | None, digits: int = 2) -> str:
    if not summary or summary.get("n", 0) == 0 or not np.isfinite(summary.get("mean", np.nan)):
        return "–"
    return f"{summary['mean']:.{digits}f} ± {summary['sd']:.{digits}f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    h = "".join(f"<th>{c}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='{cls}'><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>"


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _fmt_footprint(key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _e(value)
    if key.endswith("bytes"):
        return f"{value / 1e6:,.2f} MB"
    if "parameters" in key or key.endswith("macs") or key.endswith("flops"):
        return f"{value / 1e6:,.2f} M" if abs(value) >= 1e6 else f"{value:,.0f}"
    return f"{value:,.4g}" if isinstance(value, float) else f"{value:,d}"


def _footprint_table(footprint: Mapping[str, Any]) -> str:
    models = [m for m in footprint if isinstance(footprint[m], Mapping)]
    if not models:
        return "<p class='muted'>No footprint recorded.</p>"
    flat = {m: _flatten(footprint[m]) for m in models}
    keys: list[str] = []
    for m in models:
        keys += [k for k in flat[m] if k not in keys]
    ratio = "teacher" in flat and "student" in flat
    rows = []
    for k in keys:
        row = [f"<code>{_e(k)}</code>"] + [_fmt_footprint(k, flat[m].get(k, "–")) for m in models]
        if ratio:
            t, s = flat["teacher"].get(k), flat["student"].get(k)
            ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (t, s)) and s
            row.append(f"{t / s:,.2f}×" if ok else "")
        rows.append(row)
    table = _table(["", *map(_e, models), *(["teacher / student"] if ratio else [])], rows, "num")
    scalars = [f"<code>{_e(k)}</code> {_fmt_footprint(k, v)}" for k, v in footprint.items() if not isinstance(v, Mapping)]
    return table + (f"<p class='note'>{' · '.join(scalars)}</p>" if scalars else "")


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for dist in ("distillation-workbench", "workbench-vmat", "torch", "numpy", "scipy", "pydicom", "matplotlib",
                 "pymedphys", "pydosert", "pyradmc", "onnxruntime"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px 36px; color: #222; max-width: 1500px; }
h1 { font-size: 22px; margin-bottom: 2px; } h2 { font-size: 17px; margin-top: 30px; border-bottom: 1px solid #ddd; padding-bottom: 3px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 13px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f5f6f8; font-weight: 600; }
table.num td:not(:first-child) { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #777; } .note { color: #555; font-size: 13px; max-width: 1100px; }
img { max-width: 100%; border: 1px solid #eee; margin: 6px 0; }
code { font-size: 12px; }
"""


# ---------------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------------

def write_report(run_dir: str | Path, evaluation_json_path: str | Path, predictions_dir: str | Path,
                 footprint: Mapping[str, Any] | None = None, curves: Mapping[str, Any] | None = None, *,
                 subject: str = "student", slice_cases: int | None = 3, out_name: str = "report.html",
                 png_dir: str | Path | None = None, title: str = "VMAT dose engine · distillation run report") -> Path:
    """Write ``run_dir/out_name`` and return its path.

    ``footprint``: ``{model: {key: value or nested dict}}`` (default: the evaluation's own
    ``footprint``). ``curves``: training curves ``{name: [(step, value), ...] or {"step": [...],
    "value": [...]}}``. ``subject``: whose dose the slice figures compare with the reference.
    ``slice_cases``: how many test cases get slice figures (the first gets all three
    orientations, the others axial only; None: every case). ``png_dir``: also save every
    figure there as PNG.
    """
    run_dir = Path(run_dir)
    predictions_dir = Path(predictions_dir)
    evaluation = read_evaluation(evaluation_json_path)
    subjects = evaluation["subjects"]
    order = ordered_subjects(list(subjects))
    footprint = footprint if footprint is not None else evaluation.get("footprint") or {}
    if not predictions_dir.is_dir():
        raise InputError(predictions_dir, "predictions folder not found")
    files = sorted(predictions_dir.glob("*.npz"))
    save_dir = Path(png_dir) if png_dir is not None else None
    if save_dir is not None:
        save_dir.mkdir(parents=True, exist_ok=True)

    def img(fig, name: str, alt: str) -> str:
        data = _png(fig, save_dir / f"{name}.png" if save_dir is not None else None)
        return f"<img alt='{_e(alt)}' src='data:image/png;base64,{data}'>"

    parts = [f"<h1>{_e(title)}</h1>",
             f"<p class='muted'>{_e(run_dir)} · written {time.strftime('%Y-%m-%d %H:%M:%S')} · "
             f"{len(files)} test case(s)</p>"]

    # -- headline table ------------------------------------------------------------------
    cases_all = sorted({c for s in order for c in subjects[s].get("per_case", {})})
    rows = []
    for s in order:
        summ = subjects[s].get("summary", {})
        n = max((summ.get(k, {}).get("n", 0) for k, _, _ in CRITERIA), default=0)
        rows.append([_e(SUBJECT_LABELS.get(s, s))] + [_ms(summ.get(k)) for k, _, _ in CRITERIA]
                    + [_ms(summ.get("mae_high_dose_pct")), _ms(summ.get("mean_diff_high_dose_pct")), str(n)])
    parts += ["<h2>Gamma pass rates and high-dose error (mean ± sd over test cases)</h2>",
              _table(["subject", *(f"γ {GAMMA_CRITERIA_LABELS[k]} (%)" for k, _, _ in CRITERIA),
                      "MAE high dose (% Rx)", "mean diff. high dose (% Rx)", "cases"], rows, "num"),
              f"<p class='note'>Global 3-D gamma against the reference dose: the dose criterion is a percentage of "
              f"the prescription (of the reference maximum when a case has none); reference points below "
              f"{LOW_DOSE_CUTOFF_PCT:g} % of the reference maximum are not evaluated. High-dose region: reference "
              f"≥ {HIGH_DOSE_FRACTION * 100:g} % of the prescription; MAE is the mean absolute difference there, the "
              f"mean difference its signed mean (positive: prediction hotter), both in % of the prescription. "
              f"sd: sample standard deviation over cases. For comparison, Tseng et al. (PMB 2023) report 2%/2mm "
              f"pass rates of 98.64 ± 0.62 % (teacher), 98.13 ± 0.76 % (student) and 96.95 ± 1.02 % (student-only) "
              f"on their clinical test set.</p>"]
    if any(subjects[s].get("per_case") for s in order):
        parts.append(img(_pass_rate_figure(subjects, order), "pass_rates", "pass rates per case"))

    # -- per case ----------------------------------------------------------------------------
    head = ["case"] + [f"{_e(SUBJECT_LABELS.get(s, s))}<br>γ {GAMMA_CRITERIA_LABELS[k]}" for s in order for k, _, _ in CRITERIA] \
        + [f"{_e(SUBJECT_LABELS.get(s, s))}<br>MAE hi (%)" for s in order]

    def cell(s: str, c: str, k: str) -> str:
        v = subjects[s].get("per_case", {}).get(c, {}).get(k)
        return f"{v:.2f}" if isinstance(v, (int, float)) and np.isfinite(v) else "–"
    rows = [[_e(c)] + [cell(s, c, k) for s in order for k, _, _ in CRITERIA] + [cell(s, c, "mae_high_dose_pct") for s in order]
            for c in cases_all]
    parts += ["<h2>Per test case</h2>", _table(head, rows, "num")]

    # -- DVH ---------------------------------------------------------------------------------
    dvh_keys = sorted({k for s in order for k in subjects[s].get("summary", {}) if k.startswith("dvh/") and not k.endswith("_error")})
    if dvh_keys:
        rows = []
        for k in dvh_keys:
            _, name, stat = k.split("/", 2)
            # the reference's own value, per case: any subject's value minus its error
            ref_vals = {c: m[k] - m[k + "_error"] for s in order for c, m in subjects[s].get("per_case", {}).items()
                        if k in m and k + "_error" in m}
            row = [_e(name), _e(stat), _ms(summarise({c: {"v": v} for c, v in ref_vals.items()}).get("v"))]
            for s in order:
                summ = subjects[s].get("summary", {})
                row.append(f"{_ms(summ.get(k))}<br><span class='muted'>error {_ms(summ.get(k + '_error'))}</span>")
            rows.append(row)
        parts += ["<h2>DVH metrics (Gy, mean ± sd over cases; error = prediction − reference)</h2>",
                  _table(["structure", "metric", "reference", *(_e(SUBJECT_LABELS.get(s, s)) for s in order)], rows, "num"),
                  "<p class='note'>D95 / D2: dose received by at least 95 % / 2 % of the structure's volume; "
                  "Dmean: mean dose; voxel-centre sampling of the structure masks on the dose grid.</p>"]

    # -- footprint -----------------------------------------------------------------------
    parts += ["<h2>Footprint and latency</h2>", _footprint_table(footprint)]

    # -- curves --------------------------------------------------------------------------
    if curves:
        parts += ["<h2>Training curves</h2>", img(_curves_figure(curves), "curves", "training curves")]

    # -- slices, DVH curves --------------------------------------------------------------
    shown = files if slice_cases is None else files[: max(slice_cases, 0)]
    if shown:
        parts.append("<h2>Dose distributions</h2>")
        parts.append("<p class='note'>CT (W 400 / L 40) with the dose as a colour wash from 30 % to 110 % of the "
                     "prescription and isodose lines; the difference is the prediction minus the reference in % of the "
                     "prescription (below the low-dose cutoff left blank); the gamma map (2%/2mm) shows passing "
                     "points in green and failing points in red. Slices through the target's centre.</p>")
    for i, path in enumerate(shown):
        case = load_case_doses(path)
        who = subject if SUBJECT_ARRAY.get(subject, subject) in case["doses"] else next(
            (s for s in ("student", "teacher", "student_only", "input") if SUBJECT_ARRAY[s] in case["doses"]), None)
        if who is None:
            parts.append(f"<p class='muted'>{_e(case['case'])}: no predicted dose in {_e(path.name)}.</p>")
            continue
        orientations = ("axial", "coronal", "sagittal") if i == 0 else ("axial",)
        parts.append(f"<h3>{_e(case['case'])}</h3>")
        parts.append(img(case_figure(case, who, orientations=orientations), f"slices_{case['case']}", f"dose slices {case['case']}"))
        if i == 0 and any(m.any() for m in case["structures"].values()):
            parts.append(img(_dvh_figure(case, [s for s in order if SUBJECT_ARRAY.get(s, s) in case["doses"]]),
                             f"dvh_{case['case']}", f"DVH {case['case']}"))

    # -- versions ----------------------------------------------------------------------------
    parts += ["<h2>Software</h2>", _table(["package", "version"], [[_e(k), _e(v)] for k, v in _versions().items()])]

    doc = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
           f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")
    out = run_dir / out_name
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".part")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(out)
    return out
