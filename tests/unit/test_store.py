import sqlite3

import pytest

from workbench.core.store import SCHEMA_VERSION, Store


def test_fresh_store_is_migrated_to_current_schema(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    assert store.schema_version() == SCHEMA_VERSION
    assert {"runs", "metrics", "artifacts", "evaluations", "logs", "meta"} <= set(store.db.table_names())
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.integrity_check() == "ok"


def test_migration_from_v1_keeps_runs(tmp_path):
    from workbench.core import store as store_mod

    path = tmp_path / "old.sqlite"
    old = store_mod.MIGRATIONS.copy()
    try:
        store_mod.SCHEMA_VERSION = 1
        s1 = Store(path)
        s1.db["runs"].insert({"id": "old-run", "plugin": "p", "pipeline": "x", "config": "{}", "status": "completed",
                              "seed": 1, "host": "h", "device": "", "versions": "{}", "created": 1.0,
                              "pid": 0, "error": "", "summary": "{}"})
        assert s1.schema_version() == 1
        s1.close()
    finally:
        store_mod.SCHEMA_VERSION = 2
        store_mod.MIGRATIONS = old
    s2 = Store(path)
    assert s2.schema_version() == 2
    run = s2.get_run("old-run")
    assert run["status"] == "completed" and run["resumes"] == 0


def test_newer_store_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).db.execute("update meta set value='99' where key='schema_version'")
    with pytest.raises(RuntimeError, match="newer than this workbench"):
        Store(path)


def test_run_records_metrics_artifacts_evaluations(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    rid = store.create_run("tiny", "fit", {"epochs": 2}, seed=3)
    store.add_metrics(rid, [(0, "loss", 1.0, 0.0), (1, "loss", 0.5, 0.0), (1, "acc", 0.9, 0.0)])
    store.add_artifact(rid, "model", "/x/model.safetensors", 10, "ab" * 32, {"k": 1})
    store.add_evaluation(rid, "student", "gamma", 97.5, "2%/2mm", "case1")
    assert store.last_metrics(rid) == {"acc": 0.9, "loss": 0.5}
    assert [m["value"] for m in store.metrics(rid, "loss")] == [1.0, 0.5]
    assert store.artifacts(rid)[0]["meta"] == {"k": 1}
    assert store.evaluations(rid)[0]["case_id"] == "case1"
    store.drop_metrics_after(rid, 0)
    assert store.last_metrics(rid) == {"loss": 1.0}
    assert store.get_run(rid[:14])["id"] == rid  # unique prefix works
    with pytest.raises(KeyError):
        store.get_run("nope")


def test_running_run_of_dead_process_reads_as_interrupted(tmp_path):
    store = Store(tmp_path / "s.sqlite")
    rid = store.create_run("tiny", "fit", {}, seed=0)
    store.update_run(rid, status="running", pid=2**22 + 12345)  # no such pid
    assert store.get_run(rid)["status"] == "interrupted"


def test_two_connections_write_concurrently(tmp_path):
    a, b = Store(tmp_path / "s.sqlite"), Store(tmp_path / "s.sqlite")
    ra = a.create_run("tiny", "fit", {}, 0)
    rb = b.create_run("tiny", "fit", {}, 1)
    for i in range(50):
        a.add_metrics(ra, [(i, "x", float(i), 0.0)])
        b.add_metrics(rb, [(i, "x", float(i), 0.0)])
    assert len(a.metrics(rb)) == 50 and len(b.metrics(ra)) == 50
    assert sqlite3.connect(tmp_path / "s.sqlite").execute("PRAGMA integrity_check").fetchone()[0] == "ok"
