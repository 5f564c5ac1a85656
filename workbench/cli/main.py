"""`workbench` command line. Exit codes: 0 success, 1 the run failed, 2 bad usage or config.

Everything heavy (torch, the engine, plugin code, Qt) is imported inside the command that
needs it, so `workbench --help` starts fast.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
BUILTIN = ("plugins", "run", "resume", "runs", "show", "export", "profile", "report", "demo", "gui")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="workbench",
        description="Distillation Workbench: distill a large teacher into a compact domain student "
        "and inspect what it gains and loses. With no command, opens the desktop window.",
        epilog="Plugins add their own commands: `workbench PLUGIN --help` (e.g. `workbench sea --help`).",
    )
    p.add_argument("--selftest", action="store_true",
                   help="check this installation: open the window offscreen and run each plugin's smoke "
                   "pipelines in a temporary store; exit 0 if all pass")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    s = sub.add_parser("plugins", help="list discovered plugins, their pipelines and any broken plugin")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("run", help="run a pipeline headless: workbench run PLUGIN.PIPELINE")
    s.add_argument("pipeline", metavar="PLUGIN.PIPELINE")
    s.add_argument("--config", metavar="run.toml", help="TOML file with the pipeline's settings")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one setting (repeatable)")
    s.add_argument("--json", action="store_true", help="print the finished run as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s = sub.add_parser("resume", help="continue a cancelled, failed or interrupted run from its last checkpoint")
    s.add_argument("run_id", metavar="RUN")
    s.add_argument("--quiet", action="store_true")
    s = sub.add_parser("runs", help="list runs in the store")
    s.add_argument("--json", action="store_true")
    s.add_argument("--plugin")
    s.add_argument("--status")
    s.add_argument("--limit", type=int, default=50)
    s = sub.add_parser("show", help="a run's config, status, last metrics, evaluations and artifacts")
    s.add_argument("run_id", metavar="RUN")
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("export", help="export a finished run's model to ONNX or TorchScript")
    s.add_argument("run_id", metavar="RUN")
    s.add_argument("--format", choices=["onnx", "torchscript"], required=True)
    s.add_argument("--model", default=None, help="which model of the run (default: the first exportable)")
    s.add_argument("-o", "--output", help="output file (default: under the run's folder)")
    s = sub.add_parser("profile", help="parameters, storage, activation memory, MACs and latency of a run's models")
    s.add_argument("run_id", metavar="RUN")
    s.add_argument("--threads", type=int, default=None, help="CPU threads for latency (recorded)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--repeats", type=int, default=30)
    s.add_argument("--json", action="store_true")
    s = sub.add_parser("report", help="write a run's run card: a self-contained HTML report (the QA record)")
    s.add_argument("run_id", metavar="RUN")
    s.add_argument("-o", "--output", help="output file (default: run_card.html in the run's folder)")
    s = sub.add_parser("demo", help="run a plugin's end-to-end demo on generated data")
    s.add_argument("plugin")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--quiet", action="store_true")
    sub.add_parser("gui", help="open the desktop window (same as no command)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and not argv[0].startswith("-") and argv[0] not in BUILTIN:
        return _plugin_command(argv[0], argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.selftest:
        from workbench.api import load_target

        # By name, like the GUI below: the self-test opens the window, the CLI layer never imports Qt.
        return int(load_target("workbench.selftest:main")())
    if args.command in (None, "gui"):
        from workbench.api import load_target

        # Looked up by name: the CLI layer does not depend on the GUI, it only hands over.
        return int(load_target("workbench.gui.app:main")([]) or 0)
    from workbench.api import WorkbenchError

    try:
        return COMMANDS[args.command](args)
    except WorkbenchError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyError as exc:  # unknown run id
        _err(exc.args[0] if exc.args else str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_FAILED


def _err(message: str) -> None:
    print(f"workbench: error: {message}", file=sys.stderr)


def _session():
    from workbench.core.session import Session

    return Session.open()


# -- commands ---------------------------------------------------------------------------
def cmd_plugins(args: argparse.Namespace) -> int:
    from workbench.core.plugins import PluginManager

    manager = PluginManager.discover()
    rows = []
    for r in manager.results:
        row: dict[str, Any] = {"name": r.name, "source": r.source, "ok": r.ok, "error": r.error}
        if r.plugin:
            p = r.plugin
            row.update(title=p.title, version=p.version, api_version=p.api_version,
                       pipelines=[{"id": s.id, "title": s.title, "status": s.status} for s in p.pipelines],
                       components={k: p.registry().keys(k) for k in _kinds() if p.registry().keys(k)},
                       views=[v.id for v in p.views], cli=bool(p.cli), demo=p.demo.pipeline if p.demo else None)
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no plugins installed")
    for row in rows:
        if not row["ok"]:
            print(f"{row['name']}  BROKEN  ({row['source']})\n    {row['error']}")
            continue
        print(f"{row['name']}  {row['title']}  v{row['version']}  ({row['source']})")
        for s in row["pipelines"]:
            mark = "" if s["status"] == "ready" else "  [planned: not built yet]"
            print(f"    {row['name']}.{s['id']:<14} {s['title']}{mark}")
        for kind, keys in row["components"].items():
            print(f"    {kind}: {', '.join(keys)}")
    return EXIT_OK


def _kinds():
    from workbench.api import COMPONENT_KINDS

    return COMPONENT_KINDS


def cmd_run(args: argparse.Namespace) -> int:
    from workbench.core.config_io import build_config

    from workbench.core.worker import run_follower, torchrun_rank

    session = _session()
    plugin, spec = session.plugins.resolve(args.pipeline)
    config = build_config(plugin, spec, args.config, args.set)
    rank, world = torchrun_rank()
    if world > 1 and rank != 0:  # under torchrun only rank 0 records the run; the others just compute
        return run_follower(plugin, spec.id, config.model_dump(mode="json"), session.home)
    return _run_and_watch(session, plugin, spec, config, quiet=args.quiet or rank != 0, as_json=args.json)


def cmd_demo(args: argparse.Namespace) -> int:
    from workbench.api import WorkbenchError
    from workbench.core.config_io import build_config

    session = _session()
    plugin = session.plugins.get(args.plugin)
    if plugin.demo is None:
        raise WorkbenchError(f"plugin {plugin.name!r} has no demo")
    spec = plugin.pipeline(plugin.demo.pipeline)
    config = build_config(plugin, spec, None, args.set, base=plugin.demo.config)
    if plugin.demo.description:
        print(plugin.demo.description, file=sys.stderr)
    return _run_and_watch(session, plugin, spec, config, quiet=args.quiet, as_json=False, show_summary=True)


def cmd_resume(args: argparse.Namespace) -> int:
    session = _session()
    run = session.store.get_run(args.run_id)
    plugin = session.plugins.get(run["plugin"])
    watcher = _Watcher(quiet=args.quiet)
    job = session.engine.resume(plugin, run["id"], listener=watcher)
    return _wait(session, job, watcher, as_json=False)


def _run_and_watch(session, plugin, spec, config, quiet: bool, as_json: bool, show_summary: bool = False) -> int:
    watcher = _Watcher(quiet=quiet or as_json)
    job = session.engine.submit(plugin, spec, config, listener=watcher)
    print(f"run {job.run_id}: {plugin.name}.{spec.id}", file=sys.stderr)
    return _wait(session, job, watcher, as_json, show_summary)


def _wait(session, job, watcher: "_Watcher", as_json: bool, show_summary: bool = False) -> int:
    try:
        while not job.done:
            job.wait(0.5)
    except KeyboardInterrupt:
        print("\ncancelling (Ctrl-C again to stop hard)...", file=sys.stderr)
        job.cancel(grace_s=10)
        try:
            job.wait()
        except KeyboardInterrupt:
            job.process.kill()
            job.wait()
    watcher.close()
    run = session.store.get_run(job.run_id)
    if as_json:
        print(json.dumps(_run_json(session, run), indent=2, default=str))
    else:
        print(f"run {run['id']} {run['status']}" + (f": {run['error']}" if run["error"] else ""), file=sys.stderr)
        if show_summary and run["status"] == "completed":
            _print_summary(run)
    return EXIT_OK if run["status"] == "completed" else EXIT_FAILED


def _print_summary(run: dict) -> None:
    table = run["summary"].get("table")
    if isinstance(table, str):
        print(table)
    else:
        for key, value in run["summary"].items():
            print(f"{key}: {value}")


class _Watcher:
    """Turns engine events into a terminal progress bar and warning lines."""

    def __init__(self, quiet: bool):
        self.quiet, self.bar, self.phase = quiet, None, None

    def __call__(self, run_id: str, event: Any) -> None:
        from workbench.api import LogEvent, Progress

        if self.quiet:
            return
        if isinstance(event, Progress):
            from tqdm import tqdm

            if self.bar is None or event.phase != self.phase:
                self.close()
                self.phase = event.phase
                self.bar = tqdm(total=event.total, desc=event.phase or "run", file=sys.stderr, dynamic_ncols=True,
                                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} [{elapsed}<{remaining}] {postfix}")
            if event.total is not None and self.bar.total != event.total:
                self.bar.total = event.total
            self.bar.n = event.done
            self.bar.set_postfix_str(event.message, refresh=False)
            self.bar.refresh()
        elif isinstance(event, LogEvent) and event.level in ("warning", "error"):
            (self.bar.write if self.bar else print)(f"{event.level}: {event.message}", file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def cmd_runs(args: argparse.Namespace) -> int:
    session = _session()
    runs = session.store.list_runs(plugin=args.plugin, status=args.status, limit=args.limit)
    if args.json:
        print(json.dumps(runs, indent=2, default=str))
        return EXIT_OK
    if not runs:
        print("no runs yet")
    for r in runs:
        dur = f"{r['duration_s']:.1f}s" if r["duration_s"] else ""
        print(f"{r['id']}  {r['plugin']}.{r['pipeline']:<12} {r['status']:<11} seed={r['seed']:<4} {dur}")
    return EXIT_OK


def _run_json(session, run: dict) -> dict:
    return {
        **run,
        "last_metrics": session.store.last_metrics(run["id"]),
        "evaluations": session.store.evaluations(run["id"]),
        "artifacts": session.store.artifacts(run["id"]),
        "run_dir": str(session.run_dir(run["id"])),
    }


def cmd_show(args: argparse.Namespace) -> int:
    session = _session()
    info = _run_json(session, session.store.get_run(args.run_id))
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return EXIT_OK
    print(f"run       {info['id']}\npipeline  {info['plugin']}.{info['pipeline']}\nstatus    {info['status']}"
          + (f"  ({info['error']})" if info["error"] else ""))
    print(f"seed      {info['seed']}\ndevice    {info['device']}\nhost      {info['host']}\nfolder    {info['run_dir']}")
    if info["duration_s"]:
        print(f"duration  {info['duration_s']:.1f} s")
    print("config:")
    for k, v in info["config"].items():
        print(f"  {k} = {json.dumps(v)}")
    if info["last_metrics"]:
        print("last metrics:")
        for k, v in info["last_metrics"].items():
            print(f"  {k:<24} {v:.6g}")
    aggregate = [e for e in info["evaluations"] if not e["case_id"]]
    if aggregate:
        print("evaluations:")
        for e in aggregate:
            crit = f" [{e['criteria']}]" if e["criteria"] else ""
            print(f"  {e['subject']:<14} {e['metric']:<22} {e['value']:.6g}{crit}")
    if info["artifacts"]:
        print("artifacts:")
        for a in info["artifacts"]:
            print(f"  {a['kind']:<14} {a['bytes']:>12,d} B  {a['path']}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    session = _session()
    result = session.export(args.run_id, args.format, model_name=args.model, output=args.output)
    print(f"exported {result['model']} to {result['path']} ({result['bytes']:,d} bytes); "
          f"max |difference| vs PyTorch {result['max_abs_diff']:.2e}")
    return EXIT_OK


def cmd_profile(args: argparse.Namespace) -> int:
    session = _session()
    profiles = session.profile(args.run_id, device=args.device, threads=args.threads, repeats=args.repeats)
    if args.json:
        print(json.dumps(profiles, indent=2, default=str))
        return EXIT_OK
    from workbench.core.report import profile_table

    print(profile_table(profiles))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from workbench.core.report import write_run_card

    path = write_run_card(_session(), args.run_id, args.output)
    print(f"run card written to {path} ({path.stat().st_size:,d} bytes)")
    return EXIT_OK


def _plugin_command(name: str, argv: list[str]) -> int:
    from workbench.api import CliHost, WorkbenchError, load_target
    from workbench.core.paths import home
    from workbench.core.plugins import PluginManager

    try:
        plugin = PluginManager.discover().get(name)
    except WorkbenchError as exc:
        _err(f"{exc}; commands: {', '.join(BUILTIN)}")
        return EXIT_USAGE
    if not plugin.cli:
        _err(f"plugin {name!r} adds no commands")
        return EXIT_USAGE
    try:
        return int(load_target(plugin.cli)(argv, CliHost(home=home(), prog=f"workbench {name}")) or 0)
    except WorkbenchError as exc:
        _err(str(exc))
        return EXIT_USAGE


COMMANDS = {"plugins": cmd_plugins, "run": cmd_run, "resume": cmd_resume, "runs": cmd_runs, "show": cmd_show,
            "export": cmd_export, "profile": cmd_profile, "report": cmd_report, "demo": cmd_demo}


if __name__ == "__main__":
    sys.exit(main())
