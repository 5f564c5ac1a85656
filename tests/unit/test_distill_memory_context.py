"""The in-memory RunContext used by distill tests (and offered to plugin authors)."""
import pytest
import torch

from workbench.api import Cancelled, Progress, UnknownComponentError
from workbench.testing.memory_context import MemoryContext, drive


def test_records_everything(tmp_path):
    ctx = MemoryContext(tmp_path, seed=4, components={"students": {"lin": torch.nn.Linear}})
    ctx.metric("loss", 1.5, step=0)
    ctx.log("hello")
    ctx.warn("careful")
    ctx.evaluation("student", "accuracy", 0.9, case="fold1")
    (tmp_path / "a.txt").write_text("x")
    ctx.artifact("report", tmp_path / "a.txt", note=1)
    assert ctx.values("loss") == {0: 1.5} and ctx.messages("warning") == ["careful"]
    assert ctx.evaluations[0].case == "fold1" and ctx.artifacts[0].bytes == 1 and ctx.artifacts[0].meta == {"note": 1}
    assert ctx.component("students", "lin") is torch.nn.Linear
    with pytest.raises(UnknownComponentError):
        ctx.component("students", "nope")
    assert ctx.cache_dir("c").is_dir()


def test_checkpoints_are_files_and_resume_can_be_off(tmp_path):
    ctx = MemoryContext(tmp_path)
    assert ctx.load_checkpoint() is None
    ctx.save_checkpoint({"w": torch.ones(2)}, {"epoch": 0}, step=0)
    assert (tmp_path / "checkpoints/last.safetensors").is_file()
    tensors, state = MemoryContext(tmp_path).load_checkpoint()
    assert torch.equal(tensors["w"], torch.ones(2)) and state == {"epoch": 0}
    assert MemoryContext(tmp_path, resume=False).load_checkpoint() is None
    with pytest.raises(ValueError):  # the state must be strict JSON
        ctx.save_checkpoint({}, {"x": float("nan")}, step=1)


@pytest.mark.parametrize("die_at_rename", [1, 2, 3])
def test_a_kill_during_a_checkpoint_write_keeps_tensors_and_state_of_one_step(tmp_path, monkeypatch, die_at_rename):
    # the worker can die anywhere (it exits within 0.5 s of its parent's death): whichever
    # rename of the write it dies at, the checkpoint read back pairs tensors and state from
    # one step (the older two-file writer failed this when killed at its second rename)
    import os

    from workbench.core import worker

    worker.write_checkpoint(tmp_path, {"w": torch.full((2,), 1.0)}, {"epoch": 1}, step=1)
    real_replace, calls = os.replace, []

    def replace(*args):
        calls.append(args)
        if len(calls) == die_at_rename:
            raise SystemExit("killed")
        real_replace(*args)

    monkeypatch.setattr(worker.os, "replace", replace)
    try:
        worker.write_checkpoint(tmp_path, {"w": torch.full((2,), 2.0)}, {"epoch": 2}, step=2)
    except SystemExit:
        pass
    tensors, state = worker.read_checkpoint(tmp_path)
    step = worker.checkpoint_step(tmp_path)
    assert state == {"epoch": step} and torch.equal(tensors["w"], torch.full((2,), float(step)))


def test_checkpoints_in_the_older_two_file_layout_still_load(tmp_path):
    import json

    from safetensors.torch import save_file

    from workbench.core import worker

    (tmp_path / "checkpoints").mkdir()
    save_file({"w": torch.ones(3)}, str(tmp_path / "checkpoints/last.safetensors"))
    (tmp_path / "checkpoints/last.json").write_text(json.dumps({"step": 4, "state": {"epoch": 4}}))
    tensors, state = worker.read_checkpoint(tmp_path)
    assert state == {"epoch": 4} and torch.equal(tensors["w"], torch.ones(3))
    assert worker.checkpoint_step(tmp_path) == 4


def test_drive_stops_at_a_yield_after_cancel():
    def pipeline():
        for i in range(10):
            yield Progress(i + 1, 10)
        return {"done": True}

    ctx = MemoryContext(cancel_when=lambda c: len(c.progress) == 3)
    with pytest.raises(Cancelled):
        drive(pipeline(), ctx)
    assert [p.done for p in ctx.progress] == [1, 2, 3]
    assert drive(pipeline()) == {"done": True}
    ctx.close()
