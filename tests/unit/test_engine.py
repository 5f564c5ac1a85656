import time

import pytest
import torch

from workbench.core.config_io import build_config


def _submit(session, plugin, **overrides):
    spec = plugin.pipeline("fit")
    config = build_config(plugin, spec, None, [f"{k}={v}" for k, v in overrides.items()])
    return session.engine.submit(plugin, spec, config)


def test_run_completes_and_records_everything(wb_session, tiny_plugin):
    events = []
    spec = tiny_plugin.pipeline("fit")
    config = build_config(tiny_plugin, spec, None, ["epochs=3"])
    job = wb_session.engine.submit(tiny_plugin, spec, config, listener=lambda rid, e: events.append(e))
    assert job.wait(120) == "completed", job.error
    run = wb_session.store.get_run(job.run_id)
    assert run["status"] == "completed" and run["duration_s"] > 0 and run["device"].startswith("cpu")
    assert run["versions"]["torch"].startswith("2.11")
    assert [m["step"] for m in wb_session.store.metrics(job.run_id, "val_loss")] == [0, 1, 2]
    art = wb_session.store.artifacts(job.run_id, "model")[0]
    assert art["bytes"] > 0 and len(art["sha256"]) == 64
    assert (wb_session.run_dir(job.run_id) / "checkpoints" / "last.safetensors").exists()
    kinds = {type(e).__name__ for e in events}
    assert {"Progress", "MetricEvent", "ArtifactEvent", "StatusEvent"} <= kinds
    assert run["summary"]["val_loss"] == pytest.approx(wb_session.store.last_metrics(job.run_id)["val_loss"])


def test_failing_run_is_marked_failed_with_message(wb_session, tiny_plugin):
    job = _submit(wb_session, tiny_plugin, epochs=4, fail_at_epoch=2)
    assert job.wait(120) == "failed"
    run = wb_session.store.get_run(job.run_id)
    assert "failing at epoch 2" in run["error"]
    # what was stored before the failure is kept
    assert len(wb_session.store.metrics(job.run_id, "val_loss")) == 2


def test_bad_data_file_fails_naming_the_file(wb_session, tiny_plugin, tmp_path):
    bad = tmp_path / "inputs.npy"
    bad.write_bytes(b"not numpy")
    job = _submit(wb_session, tiny_plugin, data_file=f'"{bad}"')
    assert job.wait(120) == "failed"
    assert str(bad) in wb_session.store.get_run(job.run_id)["error"]


def test_cancel_is_cooperative(wb_session, tiny_plugin):
    job = _submit(wb_session, tiny_plugin, epochs=200, step_delay_s=0.02)
    deadline = time.time() + 60
    while job.last_progress is None and time.time() < deadline:
        time.sleep(0.05)
    job.cancel(grace_s=20)
    assert job.wait(60) == "cancelled"
    assert wb_session.store.get_run(job.run_id)["status"] == "cancelled"
    assert job.process.exitcode == 0  # it stopped by itself at a yield, not killed


def test_hard_stop_after_grace_period(wb_session, tiny_plugin):
    # a step that sleeps 5 s cannot reach its next yield within a 0.5 s grace period
    job = _submit(wb_session, tiny_plugin, epochs=50, step_delay_s=5, samples=64)
    deadline = time.time() + 60
    while job.last_progress is None and time.time() < deadline:
        time.sleep(0.05)
    job.cancel(grace_s=0.5)
    assert job.wait(30) == "cancelled"
    assert job.process.exitcode != 0


def test_resume_after_cancel_matches_uninterrupted(wb_session, tiny_plugin):
    full = _submit(wb_session, tiny_plugin, epochs=6, optimizer="adam", seed=5)
    assert full.wait(120) == "completed"
    cut = _submit(wb_session, tiny_plugin, epochs=6, optimizer="adam", seed=5, step_delay_s=0.05)
    while not wb_session.store.metrics(cut.run_id, "val_loss") and not cut.done:
        time.sleep(0.05)
    cut.cancel(grace_s=20)
    assert cut.wait(60) == "cancelled"
    done_epochs = len(wb_session.store.metrics(cut.run_id, "val_loss"))
    assert 1 <= done_epochs < 6
    resumed = wb_session.engine.resume(tiny_plugin, cut.run_id)
    assert resumed.wait(120) == "completed"
    a, b = wb_session.store.metrics(full.run_id, "val_loss"), wb_session.store.metrics(cut.run_id, "val_loss")
    assert [m["step"] for m in b] == list(range(6))
    assert [m["value"] for m in a] == [m["value"] for m in b]  # bitwise equal on CPU
    assert wb_session.store.get_run(cut.run_id)["resumes"] == 1


def test_a_checkpoint_counts_only_once_the_host_has_stored_the_events_before_it(wb_session, tiny_plugin):
    # the worker stages a checkpoint and the host commits it when it records the worker's
    # CheckpointEvent, after the epoch's metrics sent before it: a host killed in between
    # must leave the previous checkpoint, so that the resumed run produces those metrics again
    # (a worker that committed its own checkpoints lost a val_loss step this way in CI)
    from workbench.api import CheckpointEvent, MetricEvent
    from workbench.core import worker

    full = _submit(wb_session, tiny_plugin, epochs=6, optimizer="adam", seed=5)
    assert full.wait(120) == "completed"
    cut = _submit(wb_session, tiny_plugin, epochs=6, optimizer="adam", seed=5, step_delay_s=0.05)
    while len(wb_session.store.metrics(cut.run_id, "val_loss")) < 2 and not cut.done:
        time.sleep(0.05)
    cut.cancel(grace_s=20)
    assert cut.wait(60) == "cancelled"
    run_dir = wb_session.run_dir(cut.run_id)
    step = worker.checkpoint_step(run_dir)
    assert [m["step"] for m in wb_session.store.metrics(cut.run_id, "val_loss")] == list(range(step + 1))
    # what a host killed after storing the next epoch's metric, before committing its
    # checkpoint, leaves behind: the metric stored, the checkpoint staged
    tensors, state = worker.read_checkpoint(run_dir)
    worker.write_checkpoint(run_dir, tensors, {**state, "epoch": step + 1}, step + 1, commit=False)
    stale = worker.write_checkpoint(run_dir, tensors, state, 77, commit=False)  # one the resumed run won't write
    wb_session.store.add_metrics(cut.run_id, [(step + 1, "val_loss", 123.0, time.time())])
    assert worker.checkpoint_step(run_dir) == step  # staged is not what resume reads
    resumed = wb_session.engine.resume(tiny_plugin, cut.run_id)
    assert resumed.wait(120) == "completed"
    assert not stale.exists()  # discarded when the run resumed
    a, b = wb_session.store.metrics(full.run_id, "val_loss"), wb_session.store.metrics(cut.run_id, "val_loss")
    assert [m["step"] for m in b] == list(range(6))
    assert [m["value"] for m in a] == [m["value"] for m in b]
    # and the host commits in order: a checkpoint event after the events before it
    job = type("J", (), {"run_id": cut.run_id})()
    staged = worker.write_checkpoint(run_dir, tensors, state, 9, commit=False)
    wb_session.engine._record(job, MetricEvent("val_loss", 0.5, 9))
    assert worker.checkpoint_step(run_dir) == 5
    event = CheckpointEvent(9, str(staged))
    wb_session.engine._record(job, event)
    assert worker.checkpoint_step(run_dir) == 9 and event.path == str(run_dir / "checkpoints" / "last.safetensors")


def test_completed_run_cannot_be_resumed(wb_session, tiny_plugin):
    from workbench.api import WorkbenchError

    job = _submit(wb_session, tiny_plugin, epochs=1)
    job.wait(120)
    with pytest.raises(WorkbenchError, match="only cancelled, failed, interrupted"):
        wb_session.engine.resume(tiny_plugin, job.run_id)


def test_planned_pipeline_refuses_to_run(wb_session):
    from workbench.api import PipelineConfig, PipelineSpec, Plugin, WorkbenchError

    plugin = Plugin("p", "P", "1", pipelines=[PipelineSpec("x", "X", PipelineConfig, "m:r", status="planned")])
    with pytest.raises(WorkbenchError, match="planned but not built"):
        wb_session.engine.submit(plugin, plugin.pipeline("x"), PipelineConfig())


def test_profile_and_export_through_session(wb_session, tiny_plugin, tmp_path):
    job = _submit(wb_session, tiny_plugin, epochs=1)
    assert job.wait(120) == "completed"
    prof = wb_session.profile(job.run_id, repeats=20)["student"]
    assert prof["parameters"] == 4 * 16 + 16 + 16 + 1
    out = wb_session.export(job.run_id, "torchscript")
    assert out["max_abs_diff"] <= 1e-4
    loaded = torch.jit.load(out["path"])
    assert loaded(torch.zeros(1, 4)).shape == (1, 1)
