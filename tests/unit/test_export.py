"""Export to ONNX / TorchScript, checked against PyTorch; int8 dynamic quantization."""
import pytest
import torch
from torch import nn

from workbench.core.export import ExportCheckError, ExportError, export_model, quantize_dynamic_int8


class TinyConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU())
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


@pytest.fixture
def net():
    torch.manual_seed(0)
    model = TinyConv()
    model.train()(torch.randn(4, 3, 12, 12))  # non-trivial BatchNorm statistics
    return model, torch.randn(2, 3, 12, 12)


def test_onnx_export_is_checked(tmp_path, net):
    model, x = net
    info = export_model(model, x, tmp_path / "out" / "student.onnx", format="onnx")
    path = tmp_path / "out" / "student.onnx"
    assert info["path"] == str(path) and path.is_file() and info["bytes"] == path.stat().st_size
    assert info["format"] == "onnx" and info["checked"] and info["exporter"] in ("legacy", "dynamo")
    assert 0 <= info["max_abs_diff"] <= 1e-4
    assert model.training  # mode handed back

    import onnx
    onnx.checker.check_model(str(path))


def test_onnx_dynamic_batch(tmp_path, net):
    model, x = net
    export_model(model, x, tmp_path / "m.onnx", dynamic_batch=True)
    import onnxruntime as ort
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    bigger = torch.randn(5, 3, 12, 12)
    (out,) = session.run(None, {"input": bigger.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(out), model.eval()(bigger), atol=1e-4)


def test_torchscript_export_is_checked(tmp_path, net):
    model, x = net
    info = export_model(model, x, tmp_path / "student.pt", format="torchscript")
    assert info["format"] == "torchscript" and info["exporter"] == "trace"
    assert info["max_abs_diff"] <= 1e-4 and info["bytes"] > 0


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_mismatch_is_detected_and_file_removed(tmp_path, net, fmt):
    model, x = net
    torch.manual_seed(1)
    other = TinyConv()
    path = tmp_path / f"bad.{fmt}"
    with pytest.raises(ExportCheckError, match="does not match PyTorch") as err:
        export_model(model, x, path, format=fmt, reference=other)
    assert err.value.max_abs_diff > 1e-4
    assert not path.exists()


def test_unchecked_and_bad_arguments(tmp_path, net):
    model, x = net
    info = export_model(model, x, tmp_path / "m.pt", format="torchscript", check=False)
    assert info["max_abs_diff"] is None and not info["checked"]
    with pytest.raises(ExportError, match="unknown export format"):
        export_model(model, x, tmp_path / "m.x", format="tflite")
    with pytest.raises(TypeError):
        export_model(model, {"x": x}, tmp_path / "m.onnx")


def test_quantize_dynamic_int8(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4)).eval()
    q = quantize_dynamic_int8(model)
    assert isinstance(model[0], nn.Linear) and type(q[0]) is not nn.Linear  # original untouched
    x = torch.randn(8, 16)
    with torch.no_grad():
        assert torch.allclose(q(x), model(x), atol=0.05)
    info = export_model(q, x, tmp_path / "q.pt", format="torchscript")
    assert info["max_abs_diff"] <= 1e-4


@pytest.mark.slow
def test_onnx_dynamo_exporter(tmp_path, net):
    """The torch.export-based exporter (slow to import: ~8 s); the fallback of `auto`."""
    model, x = net
    info = export_model(model, x, tmp_path / "d.onnx", exporter="dynamo", dynamic_batch=True)
    assert info["exporter"] == "dynamo" and info["max_abs_diff"] <= 1e-4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.onnx"]  # weights inside, no .data file
    import onnxruntime as ort
    session = ort.InferenceSession(str(tmp_path / "d.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {"input": torch.randn(5, 3, 12, 12).numpy()})
    assert out.shape == (5, 4)
