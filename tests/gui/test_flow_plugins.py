"""The guided flows of the two real plugins, walked in the window with tiny inputs.

Default: every preview step (SEA on an eight-clip folder dataset with three bad files, VMAT on
the built-in tiny cohort) and a whole VMAT run from Distill to Inspect. Marked slow: a whole
SEA run (it embeds the generated demo set with the aiSFX teacher first).
"""
import numpy as np
import pytest

pytestmark = pytest.mark.gui

sea_manifest = pytest.importorskip("workbench_sea.manifest")
vmat_manifest = pytest.importorskip("workbench_vmat.manifest")


@pytest.fixture
def plugin_window(qtbot, wb_home):
    from workbench.core.plugins import PluginManager
    from workbench.core.session import Session
    from workbench.gui.main_window import MainWindow

    session = Session.open(wb_home, PluginManager.from_plugins(sea_manifest.plugin, vmat_manifest.plugin))
    win = MainWindow(session)
    qtbot.addWidget(win)
    win.show()
    yield win
    for job in session.engine.jobs.values():
        if not job.done:
            job.cancel(grace_s=1)
            job.wait(10)
    win.runs.timer.stop()
    win.close()
    session.store.close()


@pytest.fixture
def sound_folder(tmp_path):
    """Two classes of four 1.5 s clips, plus a corrupt WAV, a silent WAV and a text file."""
    import soundfile as sf

    root = tmp_path / "sounds"
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * 16000)) / 16000
    for label, f0 in (("siren", 800), ("engine", 120)):
        (root / label).mkdir(parents=True)
        for k in range(4):
            wave = 0.3 * np.sin(2 * np.pi * (f0 + 50 * k) * t) + 0.05 * rng.normal(size=t.size)
            sf.write(root / label / f"{label}{k}.wav", wave.astype(np.float32), 16000)
    (root / "siren" / "broken.wav").write_bytes(b"RIFF1234WAVEjunk")
    sf.write(root / "engine" / "quiet.wav", np.zeros(16000, np.float32), 16000)
    (root / "engine" / "notes.txt").write_text("not audio")
    return root


def show(qtbot, page, kind, timeout=90_000):
    page.go_to(kind)
    step = page.step_page(kind)
    qtbot.waitUntil(lambda: not step.computing and (step.view.preview is not None or step.view.error_line.message),
                    timeout=timeout)
    assert not step.view.error_line.message, step.view.error_line.detail
    return step.view.preview


def test_sea_flow_data_and_student_steps(plugin_window, qtbot, sound_folder):
    from workbench_sea.compute.students import StudentSpec, build_student

    page = plugin_window.open_flow("sea", "distill")
    assert [s.kind for s in page.flow.steps] == ["teacher", "data", "sampling", "student", "distill", "inspect"]
    page.form.set_values({"dataset_dir": str(sound_folder), "dataset_format": "folders", "student_width": 0.125,
                          "reduced_dim": 64, "device": "cpu"})
    assert page.form.config is not None, page.form.message
    data = show(qtbot, page, "data")
    assert data.figures["clips"] == "8" and data.figures["classes"] == "2" and data.figures["skipped"] == "3"
    reasons = "\n".join(data.warnings)
    assert "broken.wav: cannot decode audio" in reasons and "quiet.wav: silent" in reasons
    assert "notes.txt: not an audio file" in reasons
    assert data.tables[0].rows == [["engine", 4, 4], ["siren", 4, 4], ["all", 8, 8]]
    assert len(data.images) == 2 and all(np.asarray(i.data).shape[0] == 64 for i in data.images)  # 64 mel bands
    student = show(qtbot, page, "student")
    expected = sum(p.numel() for p in build_student(StudentSpec(out_dim=64, width=0.125, blocks=4)).parameters())
    assert student.figures["parameters"] == f"{expected:,d}"
    table = student.tables[0]
    assert table.columns[1:3] == ["teacher", "student"] and table.rows[0][2] == f"{expected:,d}"
    assert table.rows[0][1] == "4,686,144"  # the aiSFX teacher


def test_vmat_flow_data_sampling_and_student_steps(plugin_window, qtbot):
    from workbench_vmat.compute.models import build_model, student_spec

    page = plugin_window.open_flow("vmat", "distill")
    page.form.set_values({"cohort_dir": "builtin:tiny", "preset": "tiny", "patches_per_epoch": 12, "device": "cpu"})
    assert page.form.config is not None, page.form.message
    data = show(qtbot, page, "data")
    assert data.figures["cases"] == "5" and data.figures["train"] == "3" and data.figures["unusable"] == "0"
    assert [r[1] for r in data.tables[0].rows] == ["train", "train", "train", "val", "test"]
    ct, dose = data.images
    assert ct.colormap == "gray" and "dose in water" in dose.title and np.asarray(dose.data).max() > 0
    sampling = show(qtbot, page, "sampling")
    assert sampling.figures["patches per epoch"] == "12"
    assert sum(r[1] for r in sampling.tables[1].rows) == 12  # patches per case add up to one epoch
    assert sampling.images[0].points is not None and len(sampling.images[0].points) >= 1
    page.form.widgets["sampler"].setCurrentIndex(page.form.widgets["sampler"].findData("case-balanced"))
    qtbot.waitUntil(lambda: page.step_page("sampling").view.preview is not None and
                    page.step_page("sampling").view.preview.summary.startswith("case-balanced"), timeout=60_000)
    assert [r[1] for r in page.step_page("sampling").view.preview.tables[1].rows] == [4, 4, 4]
    student = show(qtbot, page, "student")
    expected = sum(p.numel() for p in build_model(student_spec("tiny", "unet-s")).parameters())
    assert student.figures["parameters"] == f"{expected:,d}"
    assert student.tables[0].rows[0][1] != student.tables[0].rows[0][2]  # teacher next to student


def test_sea_flow_teacher_preview_times_the_teacher(plugin_window, qtbot):
    page = plugin_window.open_flow("sea", "distill")
    teacher = show(qtbot, page, "teacher", timeout=180_000)
    assert teacher.figures["parameters"] == "4,686,144" and teacher.figures["latency (median)"].endswith("ms")
    assert any(r[1] == "Conv2d" for r in teacher.tables[0].rows)


def test_vmat_flow_runs_from_distill_to_inspect(plugin_window, qtbot, tmp_path):
    page = plugin_window.open_flow("vmat", "distill")
    page.form.set_values({"cohort_dir": "builtin:tiny", "preset": "tiny", "epochs": 1, "student_epochs": 1,
                          "patches_per_epoch": 4, "device": "cpu"})
    teacher = show(qtbot, page, "teacher", timeout=180_000)
    assert teacher.figures["latency (median)"].endswith("ms")
    page.go_to("distill")
    with qtbot.waitSignal(page.run_finished, timeout=900_000) as finished:
        page.run_button.click()
    assert finished.args[1] == "completed"
    page.go_to("inspect")
    inspect = page.inspect
    assert inspect.run_id == finished.args[0] and inspect.detail.count() > 1
    qtbot.waitUntil(lambda: inspect.table.rowCount() == 3, timeout=300_000)  # student, teacher, ratio
    with qtbot.waitSignal(inspect.card_written, timeout=300_000) as written:
        inspect.export_card(tmp_path / "card.html")
    text = (tmp_path / "card.html").read_text(encoding="utf-8")
    assert written.args[1] == "" and "What was chosen" in text and "dose in water" in text


@pytest.mark.slow
def test_sea_flow_runs_from_distill_to_inspect(plugin_window, qtbot, sound_folder):
    page = plugin_window.open_flow("sea", "distill")
    page.form.set_values({**sea_manifest.SMOKE, "dataset_dir": str(sound_folder), "dataset_format": "folders",
                          "max_clips": 0, "hop_s": 0.5, "sample_size": 10, "device": "cpu"})
    assert page.form.config is not None, page.form.message
    sampling = show(qtbot, page, "sampling", timeout=300_000)
    assert sampling.warnings[0].startswith("the run will stop: pca to 64 dimensions needs at least 64")
    # the plugin's own smoke settings on the generated demo set (what its contract tests run)
    page.form.set_values({**sea_manifest.SMOKE, "dataset_dir": "", "dataset_format": "auto", "device": "cpu"})
    page.go_to("distill")
    with qtbot.waitSignal(page.run_finished, timeout=900_000) as finished:
        page.run_button.click()
    assert finished.args[1] == "completed", plugin_window.session.store.get_run(finished.args[0])["error"]
    page.go_to("inspect")
    assert page.inspect.run_id == finished.args[0] and page.inspect.detail.count() > 1
