"""Cold start of `workbench --help`, median of N fresh processes (target < 1.5 s).

Side by side with a bare `python -c pass`, so the figure reads as the workbench's own cost.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=5)
    args = ap.parse_args()
    exe = shutil.which("workbench") or str(__import__("pathlib").Path(sys.executable).with_name("workbench"))
    rows = [("python -c pass", [sys.executable, "-c", "pass"]),
            ("workbench --help", [exe, "--help"]),
            ("workbench plugins", [exe, "plugins"])]
    print(f"{'command':<22}{'median s':>10}{'max s':>10}   (n={args.n})")
    medians = {}
    for name, cmd in rows:
        t = timed(cmd, args.n)
        medians[name] = statistics.median(t)
        print(f"{name:<22}{medians[name]:>10.3f}{max(t):>10.3f}")
    ok = medians["workbench --help"] < 1.5
    print(f"workbench --help / bare python: {medians['workbench --help'] / medians['python -c pass']:.1f}x; "
          f"target < 1.5 s: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
