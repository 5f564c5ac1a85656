"""Time every SEA sampling strategy at N = 100 000 embeddings, D = 512, n = 2000 (the >= 100k claim).

Synthetic teacher-like embeddings: 64 clusters, non-negative (as ReLU features), 40 frames per
clip, 10 labels, a per-frame level in dB. Prints seconds per strategy side by side with
``random`` and, for the k-DPPs, how many of the n items came from the diversity kernel
(at most rank(F) <= D; the rest are the εI part's uniform completion). ``--scaling`` also
times ``dpp`` at N/4 and N/2 to show the growth is linear in N, and prints the memory a dense
N x N kernel would have needed. Run under ``nice``; timings on a shared machine are inflated.

    nice -n 10 .venv/bin/python benchmarks/sea_sampling.py [--items 100000] [--dims 512] [-n 2000]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from workbench_sea.compute import sampling
from workbench_sea.compute.sampling import STRATEGIES, KDPP, l1_normalise, sample_indices


def synthetic(items: int, dims: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, size=(64, dims)).astype(np.float32)
    which = rng.integers(0, 64, size=items)
    x = np.maximum(centres[which] + 0.5 * rng.standard_normal((items, dims), dtype=np.float32), 0.0)
    loud = rng.normal(55, 10, size=items)
    groups = np.arange(items) // 40
    labels = rng.integers(0, 10, size=items)
    return x, loud, groups, labels


class _CountingKDPP(KDPP):
    """Records how many items each draw took from the low-rank (diversity) part."""

    last_low_rank = 0

    def _sample_low_rank(self, t, *args):
        _CountingKDPP.last_low_rank = t
        return super()._sample_low_rank(t, *args)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--dims", type=int, default=512)
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--scaling", action="store_true", help="also time dpp at N/4 and N/2")
    args = ap.parse_args()

    x, loud, groups, labels = synthetic(args.items, args.dims)
    print(f"N = {args.items}, D = {args.dims}, n = {args.n}  (embeddings {x.nbytes / 2**20:.0f} MiB)")
    sampling.KDPP = _CountingKDPP  # same sampler, instrumented
    rows = []
    for strategy in args.strategies.split(","):
        t0 = time.perf_counter()
        idx = sample_indices(strategy, x, args.n, seed=0, loudness_db=loud, groups=groups, labels=labels)
        seconds = time.perf_counter() - t0
        assert len(idx) == args.n
        note = f"{_CountingKDPP.last_low_rank} of {args.n} from the kernel's low-rank part" if "dpp" in strategy else ""
        rows.append((strategy, seconds, note))
    base = next((s for name, s, _ in rows if name == "random"), None)
    print(f"{'strategy':<16}{'seconds':>10}{'x random':>10}  note")
    for name, seconds, note in rows:
        ratio = f"{seconds / base:>10.0f}" if base else f"{'-':>10}"
        print(f"{name:<16}{seconds:>10.2f}{ratio}  {note}")

    if args.scaling:
        print("\ndpp scaling (same D and n):")
        print(f"{'N':>8}{'seconds':>10}{'s per 10k':>11}{'dense L (GiB)':>15}")
        for items in (args.items // 4, args.items // 2, args.items):
            f = l1_normalise(x[:items])
            t0 = time.perf_counter()
            KDPP(f, 1e-3).sample(args.n, np.random.default_rng(0))
            seconds = time.perf_counter() - t0
            print(f"{items:>8}{seconds:>10.2f}{seconds / items * 1e4:>11.3f}{items * items * 8 / 2**30:>15.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
