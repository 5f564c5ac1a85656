from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from workbench.api import InputError
from workbench_sea.compute.keras_import import load_keras_h5

from sea_keras_reference import evaluate

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "reference-models"
SEA64 = SHARED / "edgel3_sea_ust_audio_emb_64.h5"
needs_model = pytest.mark.skipif(not SEA64.exists(), reason=f"reference model not found at {SEA64} (shared/ is absent in a user's clone)")


def clips(sr=8000):
    t = np.arange(sr) / sr
    rng = np.random.default_rng(0)
    return {
        "tone": 0.5 * np.sin(2 * np.pi * 440 * t),
        "chirp": 0.3 * np.sin(2 * np.pi * (100 + 1500 * t) * t),
        "noise": 0.1 * rng.normal(size=sr),
        "horn": 0.4 * np.sign(np.sin(2 * np.pi * 400 * t)) * (t < 0.6),
    }


@needs_model
def test_import_matches_independent_float64_evaluation():
    model = load_keras_h5(SEA64)
    assert model.sample_rate == 8000 and model.input_shape == [1, 8000]
    for name, audio in clips().items():
        ref = evaluate(SEA64, audio)
        with torch.no_grad():
            ours = model(torch.from_numpy(audio.astype(np.float32)).view(1, 1, -1))[0].double().numpy()
        rel = np.linalg.norm(ours - ref) / np.linalg.norm(ref)
        assert ref.shape == (64,) and rel <= 5e-3, f"{name}: relative error {rel:.2e}"


@needs_model
def test_weights_only_file_and_unknown_layer_are_named_errors(tmp_path):
    import json

    bare = tmp_path / "weights_only.h5"
    with h5py.File(bare, "w") as f:
        f.create_group("conv")
    with pytest.raises(InputError, match="weights_only.h5: has no model_config"):
        load_keras_h5(bare)
    odd = tmp_path / "odd.h5"
    with h5py.File(SEA64, "r") as src, h5py.File(odd, "w") as dst:
        cfg = json.loads(src.attrs["model_config"])
        cfg["config"]["layers"][3]["class_name"] = "LSTM"
        dst.attrs["model_config"] = json.dumps(cfg)
        src.copy("model_weights", dst)
    with pytest.raises(InputError, match="odd.h5: layer 'conv2d_1' of class LSTM is not supported"):
        load_keras_h5(odd)
    not_h5 = tmp_path / "model.h5"
    not_h5.write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable HDF5 file"):
        load_keras_h5(not_h5)
