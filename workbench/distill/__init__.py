"""Generic knowledge-distillation machinery plugins share (imports only workbench.api, torch,
numpy and safetensors): device and seeding, checkpointable state, losses, forward hooks,
deterministic batches, and the resumable training loop."""
from .data import TensorBatches, shuffled_indices
from .device import epoch_generator, epoch_rng, resolve_device, seed_everything
from .hooks import FeatureCapture, capture_features
from .losses import L1, LOSS_TERMS, MSE, Cosine, FeatureMSE, KLDiv, LossTerm, WeightedLoss, build_loss
from .state import pack_state, storage_safe, unpack_state
from .trainer import (
    CHECKPOINT_FORMAT,
    AmpSettings,
    EarlyStopping,
    SchedulerSpec,
    Trainer,
    batch_size_of,
    make_scheduler,
    move_to_device,
    resolve_amp,
    rng_state,
    set_rng_state,
)

__all__ = [
    "AmpSettings", "CHECKPOINT_FORMAT", "Cosine", "EarlyStopping", "FeatureCapture", "FeatureMSE", "KLDiv", "L1",
    "LOSS_TERMS", "LossTerm", "MSE", "SchedulerSpec", "TensorBatches", "Trainer", "WeightedLoss", "batch_size_of",
    "build_loss", "capture_features", "epoch_generator", "epoch_rng", "make_scheduler", "move_to_device",
    "pack_state", "resolve_amp", "resolve_device", "rng_state", "seed_everything", "set_rng_state",
    "shuffled_indices", "storage_safe", "unpack_state",
]
