"""SEA students: widths from the reduction factors, the chunked log-mel front end, safe loading, footprint."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.api import ConfigError, InputError
from workbench.testing.memory_context import MemoryContext
from workbench_sea.compute.students import (L3_WIDTHS, REDUCTION_FACTORS, LogMel, SeaStudent, StudentSpec,
                                            block_widths, build_student, example_input, frame_hop, load_student,
                                            save_student, spectrograms)

REFERENCE = Path(__file__).resolve().parents[3] / ".." / "shared" / "reference-models" / "edgel3_sea_ust_audio_emb_64.h5"


@pytest.mark.parametrize("dim", sorted(REDUCTION_FACTORS))
def test_widths_are_l3_widths_divided_by_the_sea_factors(dim):
    widths = block_widths(StudentSpec(out_dim=dim))
    expected = [L3_WIDTHS[i] // REDUCTION_FACTORS[dim][i] for i in range(4)]
    assert [w[0] for w in widths] == expected
    assert widths[-1][1] == dim  # the last conv is the embedding
    assert build_student(StudentSpec(out_dim=dim, width=0.125))(torch.zeros(2, 8000)).shape == (2, dim)


def test_width_and_depth_are_free_parameters():
    assert block_widths(StudentSpec(64, width=0.5)) == [(16, 16), (32, 32), (64, 64), (32, 64)]
    two = build_student(StudentSpec(64, width=0.25, blocks=2))
    assert len(two.blocks) == 2 and two(torch.zeros(1, 8000)).shape == (1, 64)
    with pytest.raises(ConfigError):
        StudentSpec(64, blocks=5)
    with pytest.raises(ConfigError):
        StudentSpec(64, width=0)


@pytest.mark.skipif(not REFERENCE.is_file(), reason=f"published SEA-64 student not found at {REFERENCE}")
def test_sea64_matches_the_published_students_conv_shapes():
    from workbench_sea.compute.teachers import load_teacher

    ref = load_teacher(f"keras-h5:{REFERENCE}")
    ref_convs = [tuple(m.weight.shape) for m in ref.model.modules() if isinstance(m, torch.nn.Conv2d)]
    ours = [tuple(m.weight.shape) for m in SeaStudent(StudentSpec(64)).modules() if isinstance(m, torch.nn.Conv2d)]
    assert ours == ref_convs
    assert ref.sample_rate == 8000 and ref.window_s == 1.0 and ref.embedding_dim == 64


def test_chunked_front_end_equals_one_pass():
    import torchaudio

    audio = torch.randn(3, 8000)
    chunked = LogMel(chunk_frames=5)(audio)
    whole = torchaudio.transforms.MelSpectrogram(sample_rate=8000, n_fft=1024, hop_length=160, n_mels=64,
                                                 center=True, pad_mode="constant", power=2.0)(audio)
    assert chunked.shape == (3, 1, 64, 51)
    torch.testing.assert_close(chunked[:, 0], 10 * torch.log10(whole.clamp_min(1e-10)), atol=1e-3, rtol=1e-4)


def test_save_and_load_roundtrip_and_bad_files(tmp_path):
    spec = StudentSpec(64, width=0.125)
    model = build_student(spec).eval()
    path = tmp_path / "s.safetensors"
    save_student(model, path, {})
    back = load_student(path, spec.to_dict())
    x = torch.randn(2, 8000)
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x))
    with pytest.raises(InputError) as err:
        load_student(path, StudentSpec(128, width=0.125))
    assert str(path) in str(err.value)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file")
    with pytest.raises(InputError) as err:
        load_student(junk, spec)
    assert "junk.safetensors" in str(err.value)


def test_stem_stride_quarters_the_first_maps_and_training_path_equals_forward():
    x = torch.randn(3, 8000)
    plain, strided = (build_student(StudentSpec(64, width=0.5, stem_stride=s)).eval() for s in (1, 2))
    maps = {}
    for name, model in (("plain", plain), ("strided", strided)):
        model.blocks[0].conv1.register_forward_hook(lambda m, i, o, name=name: maps.__setitem__(name, o.shape))
        with torch.no_grad():
            out = model(x)
        assert out.shape == (3, 64)
    assert maps["plain"][2:] == (64, 51) and maps["strided"][2:] == (32, 26)
    with torch.no_grad():  # training feeds cached spectrograms; it must be the same network
        torch.testing.assert_close(strided.from_spectrogram(spectrograms(x.numpy(), chunk=2)), strided(x))
    with pytest.raises(ConfigError):
        StudentSpec(64, stem_stride=0)
    assert StudentSpec.from_dict(StudentSpec(64, stem_stride=2).to_dict()).stem_stride == 2


def test_demo_student_footprint_on_the_host_profiler():
    """The demo's student keeps peak activations under 4.95 MB / 30 and storage under 19.17 MB / 12
    (the aiSFX teacher's); without its stride the same widths would not fit."""
    from workbench_sea.manifest import DEMO

    spec = StudentSpec(DEMO["reduced_dim"], width=DEMO["student_width"], stem_stride=DEMO["student_stem_stride"],
                       window_s=DEMO["student_window_s"], widths=tuple(DEMO["student_block_widths"]))
    prof = MemoryContext().profile(build_student(spec), example_input(spec), repeats=20)
    assert prof["activation_peak_bytes"] < 4.95e6 / 30
    assert prof["storage_bytes"] < 19.17e6 / 12
    unstrided = StudentSpec(spec.out_dim, width=spec.width, window_s=spec.window_s, widths=spec.widths)
    wide = MemoryContext().profile(build_student(unstrided), example_input(unstrided), repeats=20)
    assert wide["activation_peak_bytes"] > 4.95e6 / 30


def test_a_longer_window_keeps_the_feature_maps_and_explicit_widths_override_the_multiplier():
    """2.3 s of audio (the aiSFX teacher's context) gives the 1 s student's 51 spectrogram frames: the hop
    scales with the window, so the network and its activation memory stay the same size."""
    short = StudentSpec(64, width=0.5, stem_stride=2)
    long = StudentSpec(64, width=0.5, stem_stride=2, window_s=2.3)
    assert (short.window_samples, long.window_samples) == (8000, 18400)
    assert (frame_hop(short.window_samples), frame_hop(long.window_samples)) == (160, 368)
    x = torch.randn(2, long.window_samples)
    with torch.no_grad():
        spec_long = build_student(long).frontend(x)
        spec_short = build_student(short).frontend(x[:, :8000])
    assert spec_long.shape == spec_short.shape == (2, 1, 64, 51)
    with torch.no_grad():  # the cached-spectrogram path derives the same hop from the window length
        torch.testing.assert_close(spectrograms(x.numpy(), chunk=1), spec_long)
    a = MemoryContext().profile(build_student(short), example_input(short), repeats=20)
    b = MemoryContext().profile(build_student(long), example_input(long), repeats=20)
    assert b["activation_peak_bytes"] < 1.25 * a["activation_peak_bytes"]

    widened = StudentSpec(64, width=0.5, stem_stride=2, window_s=2.3, widths=(16, 32, 96, 96))
    assert block_widths(widened) == [(16, 16), (32, 32), (96, 96), (96, 64)]
    assert StudentSpec.from_dict(widened.to_dict()) == widened
    assert widened.to_dict()["hop"] == 368
    assert (short.label(), widened.label()) == ("SEA 64-d, width 0.5", "SEA 64-d, widths 16/32/96/96, 2.3 s")
    with pytest.raises(ConfigError, match="widths"):
        StudentSpec(64, widths=(16, 32))
    with pytest.raises(ConfigError, match="window"):
        StudentSpec(64, window_s=0.1)
