"""SpeechTokenizer 16 kHz (``speechtokenizer`` package; needs ``beartype``).

Weights: ``fnlp/SpeechTokenizer`` ``speechtokenizer_hubert_avg/config.json`` +
``SpeechTokenizer.pt`` (a plain state dict, read with ``weights_only=True``). For random weights
the architecture is the catalog's ``options.config`` (that config.json's model hyperparameters).
``options.n_q`` codebooks are used (8: 4 kbps).

The encoder has a bidirectional LSTM and reflect-padded convs, so every output sample depends on
the whole (padded) input: items run in groups of equal padded length so that batched output
equals one-by-one output.
"""
from __future__ import annotations

import json

import torch

from codec_wrappers.base import BatchedCodec, ResolvedWeights, Variant
from codec_wrappers.weights import load_checkpoint, seeded_state_dict

_ARCH_KEYS = (
    "n_filters", "strides", "dimension", "semantic_dimension", "bidirectional", "dilation_base",
    "residual_kernel_size", "n_residual_layers", "lstm_layers", "activation", "codebook_size",
    "n_q", "sample_rate",
)


class SpeechTokenizerCodec(BatchedCodec):
    """SpeechTokenizer; ``resynthesize((batch, 1, samples), lengths) -> (batch, 1, samples)``."""

    padding_invariant = False

    def __init__(self, variant: Variant, weights: ResolvedWeights, device: str = "cpu"):
        super().__init__(variant, weights)
        from speechtokenizer import SpeechTokenizer

        config = dict(variant.options["config"])
        if weights.is_random:
            model = SpeechTokenizer(config)
            state = seeded_state_dict(model, weights.seed)
        else:
            cfg_files = [f for f in weights.files if f.endswith(".json")]
            if cfg_files:
                with open(cfg_files[0]) as f:
                    file_config = json.load(f)
                diff = {k: (file_config.get(k), config[k]) for k in _ARCH_KEYS if k in file_config and file_config[k] != config[k]}
                if diff:
                    raise ValueError(f"{cfg_files[0]}: config differs from {variant.id}'s catalog entry: {diff}")
            model = SpeechTokenizer(config)
            state = load_checkpoint([f for f in weights.files if not f.endswith(".json")][0])
        model.load_state_dict(state, strict=True)
        self.n_q = int(variant.options.get("n_q", variant.n_codebooks))
        if self.n_q != variant.n_codebooks:
            raise ValueError(f"{variant.id}: n_q {self.n_q} != n_codebooks {variant.n_codebooks}")
        self.hop_length = int(model.downsample_rate)
        self.model = model.eval().to(device)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """``(b, 1, t)`` -> codes ``(n_q, b, frames)`` (RVQ layer 0 is the semantic one)."""
        with torch.inference_mode():
            return self.model.encode(audio.to(self.device), n_q=self.n_q)

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` -> one ``(b, frames)`` tensor per RVQ layer (layer 0: semantic)."""
        return list(self.encode(audio).unbind(0))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.model.decode(self.model.encode(audio, n_q=self.n_q))


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> SpeechTokenizerCodec:
    return SpeechTokenizerCodec(variant, weights, device)
