"""Descript Audio Codec (``descript-audio-codec`` package), 16/24/44.1 kHz.

Official checkpoints are torch pickles ``{"state_dict", "metadata": {"kwargs"}}``; they are read
with ``torch.load(weights_only=True)`` (the package's own loader unpickles freely) and the model
is built from the catalog's ``options.config``, which must agree with the file's kwargs.
``options.n_quantizers`` sets the codebooks used (the variant's bitrate).

DAC is non-causal (zero-padded convs on both sides), so an item's last frames would depend on
how much padding follows it. It is fully convolutional, so a :class:`ValidLengthMask` zeroes each
conv's input past the item's valid frames: one padded forward per batch, and batched output
equals one-by-one output (the 24 kHz model decodes 8 samples short of a hop multiple; the masks
follow that too).
"""
from __future__ import annotations

import torch

from codec_wrappers.base import BatchedCodec, ResolvedWeights, ValidLengthMask, Variant
from codec_wrappers.weights import load_checkpoint, scale_residual_branches, seeded_state_dict


class DACCodec(BatchedCodec):
    """DAC; ``resynthesize((batch, 1, samples), lengths) -> (batch, 1, samples)``."""

    padding_invariant = False

    def __init__(self, variant: Variant, weights: ResolvedWeights, device: str = "cpu"):
        super().__init__(variant, weights)
        from dac.model.dac import DAC

        config = dict(variant.options["config"])
        if weights.is_random:
            model = DAC(**config)
            state = scale_residual_branches(model, seeded_state_dict(model, weights.seed))
        else:
            ckpt = load_checkpoint(weights.files[0])
            if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
                raise ValueError(f"{weights.files[0]}: expected a DAC checkpoint with a 'state_dict' key")
            kwargs = dict((ckpt.get("metadata") or {}).get("kwargs") or {})
            for key, value in config.items():
                found = kwargs.get(key, value)
                if (list(found) if isinstance(found, (list, tuple)) else found) != value:
                    raise ValueError(
                        f"{weights.files[0]}: checkpoint {key}={kwargs[key]!r} but {variant.id} expects {value!r}"
                    )
            model = DAC(**config)
            state = ckpt["state_dict"]
        model.load_state_dict(state, strict=True)
        self.n_quantizers = int(variant.options.get("n_quantizers", variant.n_codebooks))
        if self.n_quantizers != variant.n_codebooks or self.n_quantizers > model.n_codebooks:
            raise ValueError(f"{variant.id}: n_quantizers {self.n_quantizers} does not fit the model/catalog")
        self.hop_length = int(model.hop_length)
        if variant.sample_rate != model.sample_rate:
            raise ValueError(f"{variant.id}: model rate {model.sample_rate} != catalog {variant.sample_rate}")
        self.model = model.eval().to(device)
        self.length_mask = ValidLengthMask(self.model)

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        """``(b, 1, t)`` (t a multiple of the hop) -> codes ``(b, n_quantizers, frames)``."""
        with torch.inference_mode():
            _, codes, *_ = self.model.encode(audio.to(self.device), self.n_quantizers)
        return codes[:, : self.n_quantizers]

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """``(b, 1, t)`` (t a multiple of the hop) -> one ``(b, frames)`` tensor per quantizer used."""
        return list(self.encode(audio).unbind(1))

    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        z, *_ = self.model.encode(audio, self.n_quantizers)
        return self.model.decode(z)


def load_codec(variant: Variant, weights: ResolvedWeights, device: str = "cpu") -> DACCodec:
    return DACCodec(variant, weights, device)
