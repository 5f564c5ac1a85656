"""`torchrun --nproc-per-node 2 -m workbench.cli.main run vmat.distill` trains data-parallel on
gloo with 2 CPU processes; rank 0 alone records the run (slow: two interpreters, ~40 s)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_torchrun_two_cpu_processes_train_distill_and_only_rank0_records(tmp_path):
    env = {**os.environ, "WORKBENCH_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517",
           "-m", "workbench.cli.main", "run", "vmat.distill", "--quiet",
           "--set", "cohort_dir=builtin:tiny", "--set", "preset=tiny", "--set", "epochs=1",
           "--set", "student_epochs=1", "--set", "patches_per_epoch=8", "--set", "beta=0.01", "--set", "device=cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = subprocess.run([sys.executable, "-m", "workbench.cli.main", "runs", "--json"], env=env,
                         capture_output=True, text=True, timeout=60)
    runs = json.loads(out.stdout)
    assert len(runs) == 1 and runs[0]["status"] == "completed"  # the follower rank recorded nothing
    from workbench.core.store import Store

    store = Store(tmp_path / "workbench.sqlite")
    try:
        logs = [row["message"] for row in store.logs(runs[0]["id"])]
        metrics = {row["key"] for row in store.metrics(runs[0]["id"])}
    finally:
        store.close()
    assert any("data-parallel training on 2 processes (gloo); this is rank 0" in m for m in logs)
    assert not any("this is rank 1" in m for m in logs)
    assert {"teacher/val_gamma_2_2", "student/train_features", "student_only/train_loss"} <= metrics
    run_dir = tmp_path / "runs" / runs[0]["id"]
    assert (run_dir / "student.safetensors").is_file() and (run_dir / "evaluation.json").is_file()
    assert sorted(p.name for p in (run_dir / "predictions").iterdir()) == ["case_004.npz"]
    # no second run folder from rank 1
    assert [p.name for p in (tmp_path / "runs").iterdir()] == [runs[0]["id"]]
