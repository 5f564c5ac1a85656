"""Plain-text tables the CLI prints (the GUI shows the same numbers in widgets)."""
from __future__ import annotations

from typing import Any


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
