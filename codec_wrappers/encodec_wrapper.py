"""EnCodec 24 kHz (``encodec`` package) at an explicit bandwidth per variant.

The bandwidth is always set from the catalog (``options.bandwidth``): the encodec package (and
HF's EncodecModel) silently fall back to 1.5 kbps when none is set, which is how AudioDecBenchmark
ended up resynthesising "6 kbps" EnCodec at 1.5 kbps. The 24 kHz model is causal (causal convs,
unidirectional LSTM, no normalisation), so a right-padded batch gives each item exactly what it
gets alone: the whole batch runs in one forward.
"""
from __future__ import annotations

import torch

from codec_wrappers.base import BatchedCodec, ResolvedWeights, Variant
from codec_wrappers.weights import load_checkpoint, seeded_state_dict


class EncodecCodec(BatchedCodec):
    """EnCodec 24 kHz; ``resynthesize((batch, 1, samples), lengths) -> (batch, 1, samples)``."""

    padding_invariant = True

    def __init__(self, variant: Variant, weights: ResolvedWeights, device: str = "cpu"):
        super().__init__(variant, weights)
        from encodec import EncodecModel

        if variant.sample_rate != 24000:
            raise ValueError(f"{variant.id}: only the 24 kHz EnCodec model is wrapped")
        model = EncodecModel.encodec_model_24khz(pretrained=False)
        if weights.is_random:
            state = seeded_state_dict(model, weights.seed)
        else:
            state = load_checkpoint(weights.files[0])
        model.load_state_dict(state, strict=True)
        bandwidth = float(variant.options["bandwidth"])
        model.set_target_bandwidth(bandwidth)  # ValueError for a bandwidth the model lacks
        n_q = model.quantizer.get_num_quantizers_for_bandwidth(model.frame_rate, bandwidth)
        if n_q != variant.n_codebooks:
            raise ValueError(
                f"{variant.id}: {bandwidth} kbps uses {n_q} codebooks, catalog says {variant.n_codebooks}"
            )
        self.hop_length = int(model.encoder.hop_length)
        self.model = model.eval().to(device)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """``(b, 1, t)`` -> codes ``(b, n_codebooks, frames)`` at the variant's bandwidth."""
        with torch.inference_mode():
            frames = self.model.encode(audio.to(self.device))
        return torch.cat([codes for codes, _ in frames], dim=-1)

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` -> one ``(b, frames)`` tensor per RVQ level (``n_codebooks`` levels)."""
        self.model.set_target_bandwidth(float(self.variant.options["bandwidth"]))
        return list(self.encode(audio).unbind(1))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        self.model.set_target_bandwidth(float(self.variant.options["bandwidth"]))
        return self.model.decode(self.model.encode(audio))


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> EncodecCodec:
    return EncodecCodec(variant, weights, device)
