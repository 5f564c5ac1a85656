"""Screenshots of every step of the guided flows (SEA and VMAT) for the README's guided-flow section.

Opens the real main window offscreen on a fresh temporary home with the installed plugins,
walks each flow as a user would (the previews are computed by the plugins themselves), runs a
small distillation from the Distill step and opens Inspect. Slow on a 2-core CPU (minutes:
it generates the SEA demo audio, embeds it with the aiSFX teacher and trains two students).

    .venv/bin/python docs/make_flow_screenshots.py assets/screenshots [sea|vmat ...]
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SEA = {"demo_clips_per_class_per_fold": 1, "hop_s": 1.0, "sample_size": 200, "student_width": 0.5,
       "student_stem_stride": 2, "student_window_s": 2.3, "student_block_widths": [16, 32, 96, 96], "lr": 3e-3,
       "lr_schedule": "cosine",
       "epochs": 40, "patience": 40, "eval_folds": 3, "mlp_epochs": 100, "scratch_baseline": False,
       "projection_points": 400, "export_onnx": False, "quantize_int8": False, "device": "cpu"}
VMAT = {"cohort_dir": "builtin:tiny", "preset": "tiny", "epochs": 4, "student_epochs": 4, "patches_per_epoch": 16,
        "device": "cpu"}


def messy_copy(demo_root: str, folder: str) -> str:
    """A folder-per-class dataset from a few demo clips plus the kinds of files a real folder has:
    a truncated WAV, a silent one and a text file (the data step lists each with its reason)."""
    import shutil
    from pathlib import Path

    import numpy as np
    import soundfile as sf

    root = Path(folder)
    clips = sorted(Path(demo_root).glob("audio/fold1/*.wav"))[:6]
    for clip in clips:
        label = f"class{clip.name.split('-')[1]}"
        (root / label).mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, root / label / clip.name)
    first = sorted(p for p in root.iterdir() if p.is_dir())[0]
    data = Path(clips[0]).read_bytes()
    (first / "cut-off.wav").write_bytes(data[: len(data) // 3])
    sf.write(first / "silence.wav", np.zeros(16000, np.float32), 16000)
    (first / "README.txt").write_text("recording notes")
    return str(root)


def wait(app, cond, timeout_s: float = 900.0) -> bool:
    t0 = time.time()
    while not cond() and time.time() - t0 < timeout_s:
        app.processEvents()
        time.sleep(0.03)
    app.processEvents()
    return cond()


def shoot(app, win, path: str) -> None:
    for _ in range(5):
        app.processEvents()
        time.sleep(0.05)
    win.grab().save(path)
    print(f"  {path} ({os.path.getsize(path) // 1024} KB)", flush=True)


def walk(app, win, plugin: str, values: dict, folder: str) -> None:
    page = win.open_flow(plugin, "distill")
    page.form.set_values(values)
    assert page.form.config is not None, page.form.message
    for kind in ("teacher", "data", "sampling", "student"):
        page.go_to(kind)
        step = page.step_page(kind)
        t0 = time.time()
        wait(app, lambda: not step.computing and (step.view.preview is not None or step.view.error_line.message))
        print(f"{plugin} {kind}: preview in {time.time() - t0:.1f} s"
              + (f" — ERROR {step.view.error_line.message}" if step.view.error_line.message else ""), flush=True)
        shoot(app, win, os.path.join(folder, f"flow_{plugin}_{kind}.png"))
        if plugin == "sea" and kind == "data":  # a folder with unusable files: each listed with why
            import glob

            demo = glob.glob(os.path.join(str(win.session.home), "cache", "sea-demo-data", "*"))[0]
            page.form.set_values({"dataset_dir": messy_copy(demo, tempfile.mkdtemp(prefix="messy-")),
                                  "dataset_format": "folders"})
            step.refresh(force=True)
            wait(app, lambda: not step.computing and step.view.preview is not None and
                 "folder" in step.view.preview.summary)
            shoot(app, win, os.path.join(folder, "flow_sea_data_skipped.png"))
            page.form.set_values({"dataset_dir": "", "dataset_format": "auto"})
    page.go_to("distill")
    t0 = time.time()
    page.run_button.click()
    wait(app, lambda: page.jobs.run_id != "" and page.jobs.progress.value() > 300, 1200)
    shoot(app, win, os.path.join(folder, f"flow_{plugin}_distill_running.png"))
    wait(app, lambda: page.jobs.job is not None and page.jobs.job.done and page.jobs.status_kind != "running", 1800)
    wait(app, lambda: False, 1.0)
    print(f"{plugin} run {page.jobs.run_id}: {page.jobs.status_kind} in {time.time() - t0:.0f} s", flush=True)
    shoot(app, win, os.path.join(folder, f"flow_{plugin}_distill.png"))
    page.go_to("inspect")
    inspect = page.inspect
    wait(app, lambda: not inspect.busy.isVisible(), 600)
    shoot(app, win, os.path.join(folder, f"flow_{plugin}_inspect.png"))
    inspect.last_export = ""
    inspect.export_card(os.path.join(tempfile.gettempdir(), f"run-card-{plugin}.html"))
    wait(app, lambda: inspect.last_export.startswith("Run card") or bool(inspect.error_line.message), 300)
    print(f"{plugin} {inspect.last_export or inspect.error_line.message}", flush=True)


def main(argv: list[str]) -> int:
    folder = argv[0] if argv else "assets/screenshots"
    which = argv[1:] or ["sea", "vmat"]
    os.makedirs(folder, exist_ok=True)
    from PySide6.QtWidgets import QApplication

    from workbench.core.plugins import PluginManager
    from workbench.core.session import Session
    from workbench.gui import theme
    from workbench.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    theme.apply(app)
    session = Session.open(tempfile.mkdtemp(prefix="wb-flow-shots-"), PluginManager.discover())
    win = MainWindow(session)
    win.resize(1440, 960)
    win.show()
    values = {"sea": SEA, "vmat": VMAT}
    for plugin in which:
        walk(app, win, plugin, values[plugin], folder)
    win.close()
    session.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
