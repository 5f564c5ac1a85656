"""Footprint of SEA students against their teacher, through the host profiler.

Side by side: the aiSFX teacher (the demo's), the published SEA-64 student (EdgeL3 Keras file,
when ../shared/reference-models has it), SEA students of each output size at the published
widths, and the demo student as `workbench demo sea` builds it. Ratios are teacher / model
(> 1: smaller or faster).
Targets for the demo student: >= 12x less storage and >= 30x less peak activation memory.
Latency is one CPU thread, batch 1 (one analysis window); under load on a shared machine it
is inflated, the sizes are not.

    .venv/bin/python benchmarks/sea_footprint.py [--repeats 20] [--threads 1]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference-models" / "edgel3_sea_ust_audio_emb_64.h5"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from workbench.core.profiling import profile_model
    from workbench_sea.compute.students import StudentSpec, build_student, example_input
    from workbench_sea.configs import DistillConfig
    from workbench_sea.manifest import DEMO
    from workbench_sea.pipelines.distill import student_spec
    from workbench_sea.compute.teachers import load_teacher

    teacher = load_teacher("aisfx")
    models = [("teacher aiSFX (512-d)", teacher.model, torch.zeros(1, teacher.window_samples))]
    if REFERENCE.is_file():
        ref = load_teacher(f"keras-h5:{REFERENCE}")
        models.append(("published SEA-64 (EdgeL3)", ref.model, torch.zeros(1, ref.window_samples)))
    else:
        print(f"(published SEA-64 student not found at {REFERENCE}; row left out)")
    specs = [(f"SEA-{dim}, widths x1", StudentSpec(dim)) for dim in (256, 128, 64)]
    demo_spec = student_spec(DistillConfig(**DEMO), DEMO["reduced_dim"])
    demo = f"{demo_spec.label()} (demo)"
    specs.append((demo, demo_spec))
    models += [(name, build_student(spec), example_input(spec)) for name, spec in specs]

    profiles = {}
    for name, model, example in models:
        profiles[name] = profile_model(model, example, threads=args.threads, repeats=args.repeats)
    t = profiles[models[0][0]]
    head = (f"{'model':<46}{'params':>11}{'storage MB':>12}{'act. MB':>10}{'MMACs':>10}{'ms':>9}"
            f"{'storage x':>11}{'act. x':>9}{'MACs x':>9}{'latency x':>11}")
    print(f"host profiler, CPU ({t['device_name']}), {args.threads} thread(s), batch 1, {args.repeats} repeats")
    print(head)
    for name, p in profiles.items():
        print(f"{name:<46}{p['parameters']:>11,d}{p['storage_bytes'] / 1e6:>12.3f}{p['activation_peak_bytes'] / 1e6:>10.3f}"
              f"{p['macs'] / 1e6:>10.1f}{p['latency_median_ms']:>9.2f}"
              f"{t['storage_bytes'] / p['storage_bytes']:>10.1f}x{t['activation_peak_bytes'] / p['activation_peak_bytes']:>8.1f}x"
              f"{t['macs'] / p['macs']:>8.1f}x{t['latency_median_ms'] / p['latency_median_ms']:>10.1f}x")
    d = profiles[demo]
    storage_x, act_x = t["storage_bytes"] / d["storage_bytes"], t["activation_peak_bytes"] / d["activation_peak_bytes"]
    ok = storage_x >= 12 and act_x >= 30
    print(f"demo student vs teacher: storage {storage_x:.1f}x (target >= 12x), activations {act_x:.1f}x "
          f"(target >= 30x): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
