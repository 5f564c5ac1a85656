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
