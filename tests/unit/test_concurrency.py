import json
import sqlite3
import subprocess

from workbench.core.config_io import build_config


def test_in_process_run_and_cli_run_at_once(wb_session, tiny_plugin, cli_env, workbench_cmd, wb_home):
    """The GUI's engine (in process) and a CLI run write the same store at the same time."""
    cli = subprocess.Popen([*workbench_cmd, "run", "tiny.fit", "--quiet", "--json", "--set", "epochs=15",
                            "--set", "step_delay_s=0.01"], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    spec = tiny_plugin.pipeline("fit")
    job = wb_session.engine.submit(tiny_plugin, spec, build_config(tiny_plugin, spec, None, ["epochs=15", "step_delay_s=0.01"]))
    out, err = cli.communicate(timeout=180)
    assert cli.returncode == 0, err
    assert job.wait(180) == "completed"
    cli_run = json.loads(out)["id"]
    statuses = {r["id"]: r["status"] for r in wb_session.store.list_runs()}
    assert statuses == {cli_run: "completed", job.run_id: "completed"}
    with sqlite3.connect(wb_home / "workbench.sqlite") as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        counts = dict(conn.execute("select run_id, count(*) from metrics group by run_id").fetchall())
    assert counts == {cli_run: 30, job.run_id: 30}
