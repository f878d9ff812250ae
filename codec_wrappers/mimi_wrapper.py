"""Mimi (Kyutai), through transformers' ``MimiModel``, with 8 of its 32 codebooks (1.1 kbps).

Weights: ``kyutai/mimi`` ``config.json`` + ``model.safetensors``. Random weights use a default
``MimiConfig`` (the kyutai/mimi architecture). ``options.num_quantizers`` is passed explicitly to
every encode. Mimi is causal (causal convs, causal windowed attention), so a right-padded batch
runs in one forward.
"""
from __future__ import annotations

from pathlib import Path

import torch

from codec_wrappers.base import BatchedCodec, ResolvedWeights, Variant
from codec_wrappers.weights import load_checkpoint, seeded_state_dict


class MimiCodec(BatchedCodec):
    """Mimi; ``resynthesize((batch, 1, samples), lengths) -> (batch, 1, samples)``."""

    padding_invariant = True

    def __init__(self, variant: Variant, weights: ResolvedWeights, device: str = "cpu"):
        super().__init__(variant, weights)
        from transformers import MimiConfig, MimiModel

        if weights.is_random:
            config = MimiConfig()
            model = MimiModel(config)
            state = seeded_state_dict(model, weights.seed)
        else:
            cfg = [f for f in weights.files if f.endswith(".json")]
            config = MimiConfig.from_json_file(cfg[0]) if cfg else MimiConfig()
            model = MimiModel(config)
            state = load_checkpoint([f for f in weights.files if not f.endswith(".json")][0])
            # transformers renames legacy checkpoint keys when it loads a folder; do the same
            # here when the state dict does not fit as is (safetensors only: no pickle).
            if set(state) != set(model.state_dict()) and len({Path(f).parent for f in weights.files}) == 1:
                model, info = MimiModel.from_pretrained(
                    str(Path(weights.files[0]).parent), local_files_only=True, output_loading_info=True
                )
                bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
                if bad:
                    raise ValueError(f"{variant.id}: {weights.files[-1]} does not fit MimiModel: {bad}")
                state = model.state_dict()
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{variant.id}: checkpoint does not fit MimiModel (missing {missing[:5]}, unexpected {unexpected[:5]})"
            )
        self.num_quantizers = int(variant.options.get("num_quantizers", variant.n_codebooks))
        if self.num_quantizers != variant.n_codebooks or self.num_quantizers > config.num_quantizers:
            raise ValueError(f"{variant.id}: num_quantizers {self.num_quantizers} does not fit")
        if config.sampling_rate != variant.sample_rate:
            raise ValueError(f"{variant.id}: model rate {config.sampling_rate} != catalog {variant.sample_rate}")
        self.hop_length = int(round(config.sampling_rate / config.frame_rate))
        self.model = model.eval().to(device)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """``(b, 1, t)`` -> codes ``(b, num_quantizers, frames)``."""
        with torch.inference_mode():
            return self.model.encode(audio.to(self.device), num_quantizers=self.num_quantizers).audio_codes

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` -> one ``(b, frames)`` tensor per quantizer (the first is the semantic one)."""
        return list(self.encode(audio).unbind(1))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        codes = self.model.encode(audio, num_quantizers=self.num_quantizers).audio_codes
        return self.model.decode(codes).audio_values


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> MimiCodec:
    return MimiCodec(variant, weights, device)
