"""Gamma analysis: ours (torch, CPU and CUDA) against pymedphys.gamma, side by side.

For several synthetic VMAT-like dose pairs and grid sizes it prints both pass rates,
the seconds each took and the speed-up. Same criteria for both (default 2%/2 mm, 10%
cutoff, interp_fraction 10, max gamma 2), global normalisation to the reference maximum.

    python benchmarks/gamma.py --quick             # a minute or two
    python benchmarks/gamma.py                      # 48x64x64, 64x96x96 and 96x128x128
    python benchmarks/gamma.py --sizes 64x96x96 --kinds shift,noise

Sizes are SLICESxROWSxCOLS (96x96 in-plane, 64 slices = 64x96x96), 2.5 mm voxels.
pymedphys needs numba (its interpolation is JIT-compiled; a small warm-up call compiles
it before timing). Timings are wall clock of the fastest of --repeat calls (default 3)
for each side alike, after warm-ups; all of ours run before pymedphys (see the note in
main). Ours runs twice by default: on one torch thread (what gamma() does unless told
otherwise) and on as many threads as there are cores, which is what pymedphys gets (its
numba threads use every core); --threads picks other counts. The cpu columns are process
CPU seconds during the call, summed over threads; on a machine shared with other busy
processes the wall-clock ratio depends on how much of each core each side got, the
CPU-time ratio much less.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import erf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "vmat"))

KINDS = {
    # a geometric miss, a calibration error, Monte Carlo noise, a local hot spot, and the
    # kind of error a network makes (smooth, low-frequency, a few percent) plus some noise
    "shift": {"shift": (1.5, -1.0, 0.8)},
    "scale": {"scale": 1.015},
    "noise": {"noise": 0.025},
    "hotspot": {"hotspot": 0.08},
    "model": {"smooth": 0.02, "noise": 0.01, "shift": (0.5, 0.5, -0.3)},
}


def dose(axes, ext, *, shift=(0.0, 0.0, 0.0), scale=1.0, noise=0.0, hotspot=0.0, smooth=0.0, seed=0):
    """A VMAT-like dose: PTV with a ~3 mm penumbra, a low-dose bath, a body outline."""
    grids = np.meshgrid(*axes, indexing="ij")
    c = [g - s for g, s in zip(grids, shift)]
    semi = np.array([45.0, 40.0, 50.0])
    r = np.sqrt(sum((ci / si) ** 2 for ci, si in zip(c, semi)))
    high = 0.5 * (1 - erf((r - 1) / (3.0 / semi.mean())))
    radial = np.sqrt((c[1] / (0.35 * ext[1])) ** 2 + (c[2] / (0.35 * ext[2])) ** 2)
    bath = 0.45 * np.exp(-1.6 * radial) * 0.5 * (1 - erf((np.abs(c[0]) - 0.3 * ext[0]) / 10.0))
    body = 0.5 * (1 - erf((np.sqrt((grids[1] / (0.45 * ext[1])) ** 2 + (grids[2] / (0.47 * ext[2])) ** 2) - 1) / 0.03))
    d = 60.0 * (0.7 * high + bath * body) * scale
    if hotspot:
        d = d + hotspot * 60.0 * np.exp(-((grids[0] - 10) ** 2 + (grids[1] + 12) ** 2 + (grids[2] - 15) ** 2) / (2 * 8.0**2))
    rng = np.random.default_rng(seed)
    if smooth:  # relative error field with ~15 mm correlation length, rms ``smooth``
        from scipy.ndimage import gaussian_filter

        spacing = [a[1] - a[0] for a in axes]
        field = gaussian_filter(rng.standard_normal(d.shape), [15.0 / s for s in spacing], mode="wrap")
        d = d * (1 + smooth * field / field.std())
    if noise:
        d = np.clip(d + noise * 60.0 * rng.standard_normal(d.shape), 0, None)
    return d


def pair(shape, spacing, kind):
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing)]
    ext = [a[-1] - a[0] for a in axes]
    return axes, dose(axes, ext), dose(axes, ext, seed=1, **KINDS[kind])


def best_of(repeat, call):
    """(result, wall seconds, process CPU seconds) of the fastest of ``repeat`` calls."""
    best = None
    for _ in range(max(1, repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        out = call()
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if best is None or dt < best[1]:
            best = (out, dt, dc)
    return best


def run_pymedphys(axes, ref, ev, a, interp_fraction=None, repeat=1):
    import pymedphys

    g, dt, dc = best_of(repeat, lambda: pymedphys.gamma(
        tuple(axes), ref, tuple(axes), ev, a.dd, a.dta, lower_percent_dose_cutoff=a.cutoff,
        interp_fraction=interp_fraction or a.interp_fraction, max_gamma=a.max_gamma,
    ))
    v = g[~np.isnan(g)]
    return 100.0 * np.count_nonzero(v <= 1) / v.size, v.size, dt, dc


def run_ours(axes, ref, ev, a, device, repeat=1, threads=1):
    import torch
    from workbench_vmat.compute.gamma import gamma

    def call():
        r = gamma(ref, ev, axes_reference=axes, dd=a.dd, dta=a.dta, cutoff=a.cutoff, interp_fraction=a.interp_fraction,
                  max_gamma=a.max_gamma, device=device, threads=threads)
        if device == "cuda":
            torch.cuda.synchronize()
        return r

    r, dt, dc = best_of(repeat, call)
    return r.pass_rate, r.n_evaluated, dt, dc


def _numba_threads():
    try:
        import numba

        return numba.get_num_threads()
    except ImportError:
        return "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="32x48x48 and 64x96x96, three kinds")
    ap.add_argument("--sizes", default=None, help="comma-separated SLICESxROWSxCOLS (default 48x64x64,64x96x96,96x128x128)")
    ap.add_argument("--kinds", default=None, help=f"comma-separated, from {','.join(KINDS)} (default all)")
    ap.add_argument("--spacing", type=float, default=2.5, help="voxel size, mm (default 2.5)")
    ap.add_argument("--dd", type=float, default=2.0)
    ap.add_argument("--dta", type=float, default=2.0)
    ap.add_argument("--cutoff", type=float, default=10.0)
    ap.add_argument("--interp-fraction", type=float, default=10)
    ap.add_argument("--max-gamma", type=float, default=2.0)
    ap.add_argument("--threads", default=None,
                    help="comma-separated torch CPU thread counts to time ours with (default: 1, as gamma() "
                         "does, and the number of cores, as pymedphys gets)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="calls per pair and method; the fastest counts, for both sides alike (default 3)")
    ap.add_argument("--no-pymedphys", action="store_true", help="time ours only")
    ap.add_argument("--converge", action="store_true",
                    help="where the pass rates differ by more than 0.3 pp, rerun pymedphys with interp_fraction 30")
    ap.add_argument("--pymedphys-max-voxels", type=int, default=None,
                    help="skip pymedphys above this many voxels (it can take minutes)")
    a = ap.parse_args()

    import torch

    sizes = a.sizes or ("32x48x48,64x96x96" if a.quick else "48x64x64,64x96x96,96x128x128")
    shapes = [tuple(int(x) for x in s.lower().split("x")) for s in sizes.split(",")]
    kinds = (a.kinds or ("shift,noise,model" if a.quick else ",".join(KINDS))).split(",")
    cuda = torch.cuda.is_available()
    use_pmp = not a.no_pymedphys
    if use_pmp:
        try:
            import numba  # noqa: F401
            import pymedphys  # noqa: F401
        except ImportError as exc:
            print(f"pymedphys unavailable ({exc}); timing ours only")
            use_pmp = False

    spacing = (a.spacing,) * 3
    cases = [(shape, kind) for shape in shapes for kind in kinds]
    # ours first, pymedphys after: numba's worker threads keep spinning for a while after
    # each parallel loop and would steal the cores from torch's threads in this process
    w_axes, w_ref, w_ev = pair((8, 10, 10), spacing, "model")
    run_ours(w_axes, w_ref, w_ev, a, "cpu")  # warm-up
    if cuda:
        run_ours(w_axes, w_ref, w_ev, a, "cuda")
    threads = [int(t) for t in a.threads.split(",")] if a.threads else sorted({1, os.cpu_count() or 1})
    ours, on_cuda = {}, {}
    for shape, kind in cases:
        axes, ref, ev = pair(shape, spacing, kind)
        ours[shape, kind] = [run_ours(axes, ref, ev, a, "cpu", a.repeat, t) for t in threads]
        if cuda:
            on_cuda[shape, kind] = run_ours(axes, ref, ev, a, "cuda", a.repeat)
        print(f"  ours {'x'.join(map(str, shape))} {kind}: " + ", ".join(f"{r[2]:.3f} s" for r in ours[shape, kind]),
              file=sys.stderr, flush=True)
    theirs = {}
    if use_pmp:
        run_pymedphys(w_axes, w_ref, w_ev, a)  # compiles numba's kernels
        for shape, kind in cases:
            axes, ref, ev = pair(shape, spacing, kind)
            if a.pymedphys_max_voxels is None or ref.size <= a.pymedphys_max_voxels:
                theirs[shape, kind] = run_pymedphys(axes, ref, ev, a, repeat=a.repeat)
                print(f"  pymedphys {'x'.join(map(str, shape))} {kind}: {theirs[shape, kind][2]:.2f} s", file=sys.stderr, flush=True)

    print(f"gamma {a.dd:g}%/{a.dta:g} mm, cutoff {a.cutoff:g}%, interp_fraction {a.interp_fraction:g}, "
          f"max gamma {a.max_gamma:g}; {a.spacing:g} mm voxels; best of {a.repeat} calls each; {os.cpu_count()} CPUs; "
          f"pymedphys on {_numba_threads()} numba thread(s)" + (f", CUDA: {torch.cuda.get_device_name()}" if cuda else ", no CUDA"))
    print("ours on T torch threads: seconds, speed-up (pymedphys seconds / ours) and CPU-time ratio")
    head = f"{'size':>11} {'kind':>8} {'points':>8} | {'pmp %':>7} {'ours %':>7} {'diff pp':>7} | {'pmp s':>6} {'pmp cpu':>7}"
    for t in threads:
        head += f" | {f'T={t} s':>7} {'x':>5} {'cpu x':>5}"
    if cuda:
        head += f" | {'cuda s':>7} {'vs pmp':>7}"
    print(head)
    print("-" * len(head))
    for shape, kind in cases:
        runs = ours[shape, kind]
        ours_rate, n = runs[0][0], runs[0][1]
        row = f"{'x'.join(map(str, shape)):>11} {kind:>8} {n:>8} | "
        pmp_s = pmp_c = None
        if (shape, kind) in theirs:
            pmp_rate, pmp_n, pmp_s, pmp_c = theirs[shape, kind]
            assert pmp_n == n, (pmp_n, n)
            row += f"{pmp_rate:>7.2f} {ours_rate:>7.2f} {ours_rate - pmp_rate:>+7.2f} | {pmp_s:>6.2f} {pmp_c:>7.2f}"
        else:
            row += f"{'-':>7} {ours_rate:>7.2f} {'-':>7} | {'-':>6} {'-':>7}"
        for _, _, ours_s, ours_c in runs:
            row += f" | {ours_s:>7.3f} " + (f"{pmp_s / ours_s:>4.0f}x {pmp_c / max(ours_c, 1e-9):>4.0f}x" if pmp_s else f"{'-':>5} {'-':>5}")
        if cuda:
            cuda_s = on_cuda[shape, kind][2]
            row += f" | {cuda_s:>7.3f} " + (f"{pmp_s / cuda_s:>6.0f}x" if pmp_s else f"{'-':>7}")
        print(row)
        other = sorted({r[0] for r in runs} - {ours_rate})
        if other:
            print(f"{'':>29}ours on other thread counts: {', '.join(f'{x:.4f}' for x in other)} %")
        if a.converge and (shape, kind) in theirs and abs(ours_rate - theirs[shape, kind][0]) > 0.3:
            axes, ref, ev = pair(shape, spacing, kind)
            fine_rate, _, fine_s, _ = run_pymedphys(axes, ref, ev, a, interp_fraction=30)
            print(f"{'':>29}pymedphys at interp_fraction 30: {fine_rate:.2f}% ({fine_s:.1f} s); "
                  f"ours - that: {ours_rate - fine_rate:+.2f} pp")
    return 0


if __name__ == "__main__":
    sys.exit(main())
