"""The `workbench` command as a user runs it: subprocesses, exit codes, the store on disk."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest


def wb(cmd, env, *args, timeout=180):
    return subprocess.run([*cmd, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_help_and_cli_import_load_neither_torch_nor_qt():
    code = ("import sys, workbench.cli.main as m\n"
            "try:\n    m.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "bad = [k for k in ('torch', 'PySide6', 'pyqtgraph') if k in sys.modules]\n"
            "print('LOADED', bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "LOADED []" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("args,needle", [
    (["run", "tiny.fit", "--set", "bogus=1"], "bogus: unknown key"),
    (["run", "tiny.fit", "--set", "epochs=many"], "epochs:"),
    (["run", "tiny.fit", "--set", "epochs=0"], "epochs: Input should be greater than or equal to 1"),
    (["run", "tiny.fit", "--config", "/nonexistent/run.toml"], "/nonexistent/run.toml: config file not found"),
    (["run", "nosuch.fit"], "no plugin named 'nosuch'"),
    (["run", "tiny.nope"], "no pipeline 'nope'"),
    (["run", "later.distill"], "planned but not built yet"),
    (["show", "does-not-exist"], "no run 'does-not-exist'"),
])
def test_bad_usage_exits_2_naming_the_problem(cli_env, workbench_cmd, tmp_path, args, needle):
    # a plugin that declares a pipeline without building it (every bundled pipeline is built)
    (tmp_path / "later.py").write_text(
        "from workbench.api import Plugin, PipelineSpec, PipelineConfig\n"
        "plugin = Plugin('later', 'Later', '1.0', pipelines=[\n"
        "    PipelineSpec('distill', 'Distill later', PipelineConfig, 'later_impl:run', status='planned')])\n")
    cli_env["PYTHONPATH"] = str(tmp_path)
    cli_env["WORKBENCH_EXTRA_PLUGINS"] += ",later:plugin"
    out = wb(workbench_cmd, cli_env, *args)
    assert out.returncode == 2, out.stderr
    assert needle in out.stderr
    runs = json.loads(wb(workbench_cmd, cli_env, "runs", "--json").stdout)
    assert not [r for r in runs if r["status"] == "completed"]


def test_missing_data_file_fails_the_run_with_exit_1(cli_env, workbench_cmd, tmp_path):
    missing = tmp_path / "nothere.npy"
    out = wb(workbench_cmd, cli_env, "run", "tiny.fit", "--quiet", "--set", f'data_file="{missing}"')
    assert out.returncode == 1
    assert f"{missing}: data file not found" in out.stderr
    runs = json.loads(wb(workbench_cmd, cli_env, "runs", "--json").stdout)
    assert [r["status"] for r in runs] == ["failed"]


def test_run_show_runs_json(cli_env, workbench_cmd, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text("epochs = 2\nhidden = 5\n")
    out = wb(workbench_cmd, cli_env, "run", "tiny.fit", "--config", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["status"] == "completed" and info["config"]["hidden"] == 5
    assert set(info["last_metrics"]) == {"train_loss", "val_loss"}
    shown = json.loads(wb(workbench_cmd, cli_env, "show", info["id"], "--json").stdout)
    assert shown["artifacts"][0]["path"].endswith("model.safetensors")
    text = wb(workbench_cmd, cli_env, "show", info["id"]).stdout
    assert "status    completed" in text and "val_loss" in text
    assert info["id"] in wb(workbench_cmd, cli_env, "runs").stdout


def _wait_for_epochs(db_path, n, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with sqlite3.connect(db_path) as conn:
                rows = conn.execute("select run_id, count(*) from metrics where key='val_loss' group by run_id").fetchall()
            if rows and rows[0][1] >= n:
                return rows[0][0]
        except sqlite3.OperationalError:
            pass
        time.sleep(0.1)
    raise AssertionError("run did not reach the epoch in time")


def test_kill_9_then_resume_matches_uninterrupted(cli_env, workbench_cmd, wb_home):
    args = ["run", "tiny.fit", "--quiet", "--set", "epochs=8", "--set", "optimizer=adam", "--set", "seed=11",
            "--set", "samples=512"]
    full = json.loads(wb(workbench_cmd, cli_env, *args, "--json").stdout)
    assert full["status"] == "completed"
    proc = subprocess.Popen([*workbench_cmd, *args, "--set", "step_delay_s=0.03"], env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_id = None
    try:
        db = wb_home / "workbench.sqlite"
        deadline = time.time() + 90
        while run_id is None and time.time() < deadline:
            try:
                with sqlite3.connect(db) as conn:
                    row = conn.execute("select id from runs where id != ? order by created desc", [full["id"]]).fetchone()
                run_id = row[0] if row else None
            except sqlite3.OperationalError:
                pass
            time.sleep(0.1)
        deadline = time.time() + 90
        while time.time() < deadline:
            with sqlite3.connect(db) as conn:
                n = conn.execute("select count(*) from metrics where run_id=? and key='val_loss'", [run_id]).fetchone()[0]
            if n >= 3:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    time.sleep(1.5)  # the orphaned worker notices its parent is gone and exits
    runs = {r["id"]: r for r in json.loads(wb(workbench_cmd, cli_env, "runs", "--json").stdout)}
    assert runs[run_id]["status"] == "interrupted"
    out = wb(workbench_cmd, cli_env, "resume", run_id, "--quiet")
    assert out.returncode == 0, out.stderr
    resumed = json.loads(wb(workbench_cmd, cli_env, "show", run_id, "--json").stdout)
    assert resumed["status"] == "completed"
    assert resumed["last_metrics"] == full["last_metrics"]
    with sqlite3.connect(wb_home / "workbench.sqlite") as conn:
        steps = [r[0] for r in conn.execute("select step from metrics where run_id=? and key='val_loss' order by step", [run_id])]
        assert steps == list(range(8))
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
