"""The run store: SQLite through sqlite-utils, WAL, a schema version with migrations.

One writer per run: the job engine of the process that launched it. Several processes
(a GUI and a CLI) may each run jobs at once; WAL and a busy timeout keep them apart.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import sqlite_utils

SCHEMA_VERSION = 2
TERMINAL = ("completed", "failed", "cancelled")
RESUMABLE = ("cancelled", "failed", "interrupted")


def _v1(db: sqlite_utils.Database) -> None:
    db["runs"].create(
        {
            "id": str, "plugin": str, "pipeline": str, "config": str, "status": str, "seed": int,
            "host": str, "device": str, "versions": str, "created": float, "started": float,
            "finished": float, "duration_s": float, "pid": int, "error": str, "summary": str,
        },
        pk="id",
    )
    db["metrics"].create({"id": int, "run_id": str, "step": int, "key": str, "value": float, "time": float}, pk="id")
    db["artifacts"].create(
        {"id": int, "run_id": str, "kind": str, "path": str, "bytes": int, "sha256": str, "meta": str, "created": float},
        pk="id",
    )
    db["evaluations"].create(
        {"id": int, "run_id": str, "subject": str, "metric": str, "criteria": str, "case_id": str, "value": float},
        pk="id",
    )
    db["logs"].create({"id": int, "run_id": str, "time": float, "level": str, "message": str}, pk="id")
    db["metrics"].create_index(["run_id", "key", "step"])
    db["artifacts"].create_index(["run_id"])
    db["evaluations"].create_index(["run_id"])
    db["logs"].create_index(["run_id"])


def _v2(db: sqlite_utils.Database) -> None:
    # Sweeps group their child runs; resume counts how often a run was continued.
    db["runs"].add_column("parent", str)
    db["runs"].add_column("resumes", int, not_null_default=0)


MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _v1, 2: _v2}


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate()

    # -- connection ----------------------------------------------------------------
    @property
    def db(self) -> sqlite_utils.Database:
        """One connection per thread (sqlite3 connections must not cross threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
            db = self._local.db = sqlite_utils.Database(conn)
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    def schema_version(self) -> int:
        if "meta" not in self.db.table_names():
            return 0
        row = self.db.execute("select value from meta where key='schema_version'").fetchone()
        return int(row[0]) if row else 0

    def _migrate(self) -> None:
        db = self.db
        with db.conn:  # one transaction: a half-migrated store never exists
            db.execute("BEGIN IMMEDIATE")
            if "meta" not in db.table_names():
                db["meta"].create({"key": str, "value": str}, pk="key")
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path}: store schema {current} is newer than this workbench ({SCHEMA_VERSION}); upgrade it"
                )
            for version in range(current + 1, SCHEMA_VERSION + 1):
                MIGRATIONS[version](db)
                db["meta"].upsert({"key": "schema_version", "value": str(version)}, pk="key")

    def integrity_check(self) -> str:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    # -- runs ----------------------------------------------------------------------
    def create_run(self, plugin: str, pipeline: str, config: dict[str, Any], seed: int, parent: str | None = None) -> str:
        run_id = time.strftime("%y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.db["runs"].insert(
            {
                "id": run_id, "plugin": plugin, "pipeline": pipeline, "config": json.dumps(config),
                "status": "queued", "seed": seed, "host": socket.gethostname(), "device": "",
                "versions": "{}", "created": time.time(), "started": None, "finished": None,
                "duration_s": None, "pid": os.getpid(), "error": "", "summary": "{}",
                "parent": parent, "resumes": 0,
            }
        )
        return run_id

    def update_run(self, run_id: str, **fields: Any) -> None:
        for key in ("config", "versions", "summary"):
            if key in fields and not isinstance(fields[key], str):
                fields[key] = json.dumps(fields[key])
        self.db["runs"].update(run_id, fields)

    def get_run(self, run_id: str) -> dict[str, Any]:
        """Exact id, or a unique prefix of one (as typed in a terminal)."""
        rows = list(self.db.query("select * from runs where id = ? or id like ? order by id", [run_id, run_id + "%"]))
        exact = [r for r in rows if r["id"] == run_id]
        if exact:
            rows = exact
        if not rows:
            raise KeyError(f"no run {run_id!r} in {self.path}")
        if len(rows) > 1:
            raise KeyError(f"run id {run_id!r} is ambiguous: {', '.join(r['id'] for r in rows[:5])}")
        return self._decode(rows[0])

    def list_runs(self, plugin: str | None = None, status: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
        where, args = [], []
        if plugin:
            where.append("plugin = ?"), args.append(plugin)
        if status:
            where.append("status = ?"), args.append(status)
        sql = "select * from runs" + (" where " + " and ".join(where) if where else "")
        sql += " order by created desc limit ?"
        return [self._decode(r) for r in self.db.query(sql, [*args, limit])]

    def _decode(self, row: dict[str, Any]) -> dict[str, Any]:
        row = dict(row)
        for key in ("config", "versions", "summary"):
            row[key] = json.loads(row[key] or "{}")
        row["status"] = self.effective_status(row)
        return row

    @staticmethod
    def effective_status(row: dict[str, Any]) -> str:
        """A run left 'running' by a process that no longer exists was interrupted."""
        if row["status"] in ("running", "queued") and row.get("host") == socket.gethostname():
            if not _pid_alive(row.get("pid")):
                return "interrupted"
        return row["status"]

    # -- events --------------------------------------------------------------------
    def add_metrics(self, run_id: str, rows: list[tuple[int, str, float, float]]) -> None:
        self.db["metrics"].insert_all(
            {"run_id": run_id, "step": s, "key": k, "value": v, "time": t} for s, k, v, t in rows
        )

    def metrics(self, run_id: str, key: str | None = None) -> list[dict[str, Any]]:
        sql, args = "select step, key, value, time from metrics where run_id = ?", [run_id]
        if key:
            sql, args = sql + " and key = ?", [*args, key]
        return list(self.db.query(sql + " order by step, id", args))

    def last_metrics(self, run_id: str) -> dict[str, float]:
        # one pass over the run's rows (the correlated form was quadratic: 5 s at 10k points)
        sql = (
            "select key, value from metrics where id in "
            "(select max(id) from metrics where run_id = ? group by key) order by key"
        )
        return {r["key"]: r["value"] for r in self.db.query(sql, [run_id])}

    def drop_metrics_after(self, run_id: str, step: int) -> None:
        self.db.execute("delete from metrics where run_id = ? and step > ?", [run_id, step])

    def add_artifact(self, run_id: str, kind: str, path: str, nbytes: int, sha256: str, meta: dict | None = None) -> None:
        self.db["artifacts"].insert(
            {"run_id": run_id, "kind": kind, "path": path, "bytes": nbytes, "sha256": sha256,
             "meta": json.dumps(meta or {}), "created": time.time()}
        )

    def artifacts(self, run_id: str, kind: str | None = None) -> list[dict[str, Any]]:
        sql, args = "select * from artifacts where run_id = ?", [run_id]
        if kind:
            sql, args = sql + " and kind = ?", [*args, kind]
        rows = [dict(r) for r in self.db.query(sql + " order by id", args)]
        for r in rows:
            r["meta"] = json.loads(r["meta"] or "{}")
        return rows

    def add_evaluation(self, run_id: str, subject: str, metric: str, value: float, criteria: str = "", case: str = "") -> None:
        self.db["evaluations"].insert(
            {"run_id": run_id, "subject": subject, "metric": metric, "criteria": criteria, "case_id": case, "value": value}
        )

    def evaluations(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.db.query("select subject, metric, criteria, case_id, value from evaluations where run_id = ? order by id", [run_id]))

    def add_log(self, run_id: str, message: str, level: str = "info", when: float | None = None) -> None:
        self.db["logs"].insert({"run_id": run_id, "time": when or time.time(), "level": level, "message": message})

    def logs(self, run_id: str) -> list[dict[str, Any]]:
        return list(self.db.query("select time, level, message from logs where run_id = ? order by id", [run_id]))


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) is not alive for our purposes.
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True
