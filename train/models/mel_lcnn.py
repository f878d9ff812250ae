"""Mel-LCNN: a light CNN with max-feature-map activations on a log-mel spectrogram.

As in ST-Codecfake's ``MELLCNN``: ``torchaudio`` MelSpectrogram (80 mels, n_fft 512, hop 128,
16 kHz), nine conv blocks with max-feature-map (MFM) activations, four 2x2 max-pools, then
dropout 0.7 -> linear -> MFM -> linear to a 256-dim embedding and a linear classifier.

One deliberate difference: the anchor feeds the linear power mel spectrogram to the CNN; we take
``log(mel + 1e-6)`` (``log_mel=True``, the usual LCNN input); ``log_mel=False`` restores the anchor.
The flatten size depends on the input length: it is computed from ``num_samples`` (4960 for the
default 64600 samples: 32 channels x 5 mel bins x 31 frames).
"""
from __future__ import annotations

import torch
from torch import nn


class MaxFeatureMap(nn.Module):
    """Element-wise max of the two halves of ``dim``: ``(B, 2C, ...) -> (B, C, ...)``."""

    def __init__(self, dim: int = 1):
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[self.dim] % 2:
            raise ValueError(f"MaxFeatureMap needs an even size on dim {self.dim}, got {tuple(x.shape)}")
        a, b = torch.chunk(x, 2, dim=self.dim)
        return torch.maximum(a, b)


def _block(c_in: int, c_out: int, kernel: int, *, pool: bool = False, bn: bool = True) -> nn.Sequential:
    """conv (c_in -> c_out) -> MFM (-> c_out / 2) [-> max-pool 2x2] [-> BN without affine]."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2), MaxFeatureMap()]
    if pool:
        layers.append(nn.MaxPool2d(2, 2))
    if bn:
        layers.append(nn.BatchNorm2d(c_out // 2, affine=False))
    return nn.Sequential(*layers)


class MelLCNN(nn.Module):
    """``forward(wave (B, S))`` -> ``(logits (B, n_classes), embedding (B, 256))``."""

    def __init__(self, n_classes: int, *, num_samples: int = 64600, sample_rate: int = 16000, n_mels: int = 80,
                 n_fft: int = 512, hop_length: int = 128, embedding_dim: int = 256, dropout: float = 0.7,
                 log_mel: bool = True):
        super().__init__()
        import torchaudio

        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
        )
        self.log_mel = log_mel
        self.features = nn.Sequential(
            _block(1, 64, 5, pool=True, bn=False),
            _block(32, 64, 1),
            _block(32, 96, 3, pool=True),
            _block(48, 96, 1),
            _block(48, 128, 3, pool=True, bn=False),
            _block(64, 128, 1),
            _block(64, 64, 3),
            _block(32, 64, 1),
            _block(32, 64, 3, pool=True, bn=False),
        )
        frames = num_samples // hop_length + 1  # centred STFT
        flat = 32 * (n_mels // 16) * (frames // 16)
        if flat <= 0:
            raise ValueError(f"num_samples={num_samples} is too short for Mel-LCNN (needs >= {16 * hop_length} samples)")
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(flat, 160), MaxFeatureMap(), nn.Linear(80, embedding_dim))
        self.fc = nn.Linear(embedding_dim, n_classes)
        self.embedding_dim = embedding_dim

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        spec = self.mel(x)  # (B, n_mels, frames)
        if self.log_mel:
            spec = torch.log(spec + 1e-6)
        h = self.features(spec.unsqueeze(1))  # (B, 32, n_mels / 16, frames / 16)
        emb = self.head(torch.flatten(h, 1))
        return self.fc(emb), emb
