"""`workbench sea embed`: exit codes, messages naming the file, output keys; import is cheap."""
import subprocess
import sys

import numpy as np
import soundfile as sf
import torch

from workbench_sea.cli import main as sea_main


class Host:
    prog = "workbench sea"


def teacher_file(tmp_path):
    class Stats(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.sample_rate = 8000

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.stack([x.mean(1), x.std(1)], dim=1)

    path = tmp_path / "stats.pt"
    torch.jit.script(Stats()).save(str(path))
    return path


def test_embed_writes_stems_and_timestamps(tmp_path, capsys):
    spec = f"torchscript:{teacher_file(tmp_path)}"
    for name, seconds in (("a", 2.0), ("b", 0.5)):
        sf.write(tmp_path / f"{name}.wav", (0.1 * np.random.default_rng(0).normal(size=int(16000 * seconds))).astype(np.float32), 16000)
    out = tmp_path / "out"  # no suffix: .npz is added, and said
    code = sea_main(["embed", "--teacher", spec, "--hop", "0.5", str(tmp_path / "a.wav"), str(tmp_path / "b.wav"),
                     "-o", str(out)], Host())
    assert code == 0 and f"{out}.npz" in capsys.readouterr().err
    with np.load(f"{out}.npz") as data:
        assert sorted(data.files) == ["a", "a__timestamps", "b", "b__timestamps"]
        assert data["a"].shape == (4, 2) and data["a__timestamps"].tolist() == [0.0, 0.5, 1.0, 1.5]
        assert data["b"].shape == (1, 2) and data["b__timestamps"].tolist() == [0.0]


def test_bad_input_exits_2_naming_the_file(tmp_path, capsys):
    spec = f"torchscript:{teacher_file(tmp_path)}"
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF????")
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(8000, np.float32), 8000)
    out = tmp_path / "o.npz"
    assert sea_main(["embed", "--teacher", spec, str(bad), "-o", str(out)], None) == 2
    assert f"{bad}: cannot decode audio" in capsys.readouterr().err
    assert sea_main(["embed", "--teacher", spec, str(silent), "-o", str(out)], None) == 2
    assert f"{silent}: silent" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written
    assert sea_main(["embed", "--teacher", f"keras-h5:{tmp_path / 'none.h5'}", str(silent), "-o", str(out)], None) == 2
    assert "none.h5: Keras .h5 file not found" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path, capsys):
    assert sea_main([], None) == 2
    assert sea_main(["embed", "x.wav"], None) == 2  # no --teacher, no -o
    err = capsys.readouterr().err
    assert "usage: workbench sea" in err
    assert sea_main(["embed", "--teacher", "aisfx", "--hop", "0", "x.wav", "-o", "o.npz"], None) == 2
    assert "--hop must be positive" in capsys.readouterr().err
    assert sea_main(["embed", "--teacher", "aisfx", "a/x.wav", "b/x.flac", "-o", str(tmp_path / "o.npz")], None) == 2
    assert "b/x.flac: same name stem 'x' as a/x.wav" in capsys.readouterr().err
    assert sea_main(["embed", "--teacher", "nope", "x.wav", "-o", str(tmp_path / "o.npz")], None) == 2
    assert "unknown teacher spec 'nope'" in capsys.readouterr().err
    assert sea_main(["embed", "--teacher", "aisfx", "x.wav", "-o", str(tmp_path / "no" / "o.npz")], None) == 2
    assert "output folder does not exist" in capsys.readouterr().err
    assert sea_main(["--help"], None) == 0


def test_importing_the_cli_is_cheap():
    code = "import sys, workbench_sea.cli; print(any(m in sys.modules for m in ('torch', 'numpy', 'soundfile')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
