"""VMAT dose networks: teacher vs student latency and footprint through the host profiler.

One full volume, batch 1, side by side: parameters, weight bytes, MACs, peak activation
memory, median/p90 latency and the teacher/student ratios. Models come from a finished
vmat.distill run folder (``--run``: its teacher.safetensors and student.safetensors) or are
built from a preset with their initial weights (latency does not depend on the values).

    python benchmarks/vmat_latency.py                          # demo preset, 40x96x96, CPU, 2 threads
    python benchmarks/vmat_latency.py --preset paper --shape 64x128x128
    python benchmarks/vmat_latency.py --run ~/.workbench/runs/<id> --device cuda

Target (Tseng et al.): the student >= 5x faster than the teacher on the CPU.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "vmat"))

from workbench.core.profiling import profile_model  # noqa: E402
from workbench_vmat.compute.models import build_model, student_spec, teacher_spec  # noqa: E402


def _models(args) -> tuple[torch.nn.Module, torch.nn.Module, tuple[int, int, int], str]:
    if args.run:
        from workbench_vmat.pipelines.distill import build_model_for_profile

        teacher, x = build_model_for_profile(Path(args.run), {}, "teacher")
        student, _ = build_model_for_profile(Path(args.run), {}, "student")
        shape = tuple(x.shape[2:]) if not args.shape else _shape(args.shape)
        return teacher, student, shape, f"run {args.run}"
    teacher = build_model(teacher_spec(args.preset))
    student = build_model(student_spec(args.preset, args.student))
    return teacher, student, _shape(args.shape or "40x96x96"), f"preset {args.preset}, student {args.student}"


def _shape(text: str) -> tuple[int, int, int]:
    parts = tuple(int(v) for v in text.lower().split("x"))
    if len(parts) != 3:
        raise SystemExit(f"--shape wants SLICESxROWSxCOLS, got {text!r}")
    return parts  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", help="a finished vmat.distill run folder")
    p.add_argument("--preset", default="demo", choices=["tiny", "demo", "paper"])
    p.add_argument("--student", default="unet-s", choices=["unet-s", "unet-xs", "cnn"])
    p.add_argument("--shape", default="", help="volume SLICESxROWSxCOLS (padded to the networks' multiple)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (the demo target: 2 cores)")
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    teacher, student, shape, source = _models(args)
    m = max(teacher.spec.multiple, student.spec.multiple)
    shape = tuple(-(-n // m) * m for n in shape)
    x = torch.zeros(1, 2, *shape)
    rows = {}
    for name, model in (("teacher", teacher), ("student", student)):
        rows[name] = profile_model(model.eval(), x, device=args.device, threads=args.threads, warmup=3,
                                   repeats=args.repeats)
    t, s = rows["teacher"], rows["student"]
    ratios = {"parameters": t["parameters"] / s["parameters"], "macs": t["macs"] / max(s["macs"], 1),
              "activation_peak_bytes": t["activation_peak_bytes"] / max(s["activation_peak_bytes"], 1),
              "latency_median_ms": t["latency_median_ms"] / s["latency_median_ms"]}
    if args.json:
        print(json.dumps({"source": source, "shape": shape, "teacher": t, "student": s, "ratios": ratios},
                         indent=1, default=str))
        return 0
    print(f"VMAT latency/footprint: {source}; input 1x2x{'x'.join(map(str, shape))}; device {t['device']} "
          f"({t.get('device_name', '')}), threads {t['threads']}, {args.repeats} timed passes")
    fmt = "{:<24}{:>16}{:>16}{:>12}"
    print(fmt.format("", "teacher", "student", "ratio"))
    for key, label, scale, unit in (("parameters", "parameters", 1, ""), ("macs", "MACs", 1e9, " G"),
                                    ("activation_peak_bytes", "peak activations", 2**20, " MiB"),
                                    ("latency_median_ms", "latency median", 1, " ms")):
        print(fmt.format(label, f"{t[key] / scale:,.{0 if scale == 1 and key == 'parameters' else 1}f}{unit}",
                         f"{s[key] / scale:,.{0 if scale == 1 and key == 'parameters' else 1}f}{unit}",
                         f"{ratios[key]:.1f}x"))
    print(fmt.format("latency p90", f"{t['latency_p90_ms']:.1f} ms", f"{s['latency_p90_ms']:.1f} ms", ""))
    verdict = "meets" if ratios["latency_median_ms"] >= 5 else "misses"
    print(f"student is {ratios['latency_median_ms']:.1f}x faster than the teacher ({verdict} the >= 5x target)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
