"""The classifiers. Every model's ``forward`` returns ``(logits (B, C), embedding (B, D))``.

- ``mel_lcnn``: waveform ``(B, S)`` -> log-mel LCNN (:mod:`.mel_lcnn`), D = 256;
- ``aasist``: waveform ``(B, S)`` -> AASIST (:mod:`.aasist`), D = 160;
- ``w2v2_aasist``: frozen wav2vec 2.0 features ``(B, T, 1024)`` -> AASIST graph (:mod:`.w2v2_aasist`),
  D = 160; the front end is :class:`train.features.W2V2FrontEnd`.
- ``taxonomy``: the codec-taxonomy multi-task model (:mod:`.taxonomy`), one of nine variants;
  waveforms (fine-tuned wav2vec 2.0 inside the model) or frozen features in, the heads' logits
  side by side out (``model.split(logits)`` -> per task), D = 160 per head.
- ``refd``: frozen wav2vec 2.0 features -> REFD's Real Emphasis + Fake Dispersion (:mod:`.refd`),
  Conformer or AASIST back end; column 0 real, D = the FD embedding.
"""
from __future__ import annotations

from torch import nn

from .aasist import AASIST
from .mel_lcnn import MelLCNN
from .taxonomy import TaxonomyModel
from .w2v2_aasist import W2V2AASIST

MODEL_NAMES = ("mel_lcnn", "aasist", "w2v2_aasist", "taxonomy", "refd")
WAVEFORM_MODELS = ("mel_lcnn", "aasist")


def build_model(name: str, n_classes: int, *, num_samples: int = 64600, sample_rate: int = 16000,
                ssl_dim: int = 1024, **kwargs) -> nn.Module:
    """A freshly initialised model ``name`` with ``n_classes`` outputs; ``kwargs`` go to its constructor.

    ``taxonomy`` ignores ``n_classes`` (its heads' sizes are fixed by its ``variant`` kwarg)."""
    if name == "mel_lcnn":
        return MelLCNN(n_classes, num_samples=num_samples, sample_rate=sample_rate, **kwargs)
    if name == "aasist":
        return AASIST(n_classes, sample_rate=sample_rate, **kwargs)
    if name == "w2v2_aasist":
        return W2V2AASIST(n_classes, ssl_dim=ssl_dim, **kwargs)
    if name == "taxonomy":
        return TaxonomyModel(ssl_dim=ssl_dim, **kwargs)
    if name == "refd":
        from .refd import RefdConfig, RefdModel

        fusion_w = kwargs.pop("fusion_w", 0.5)
        return RefdModel(n_classes, RefdConfig(ssl_dim=ssl_dim, **kwargs), fusion_w=fusion_w)
    raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["AASIST", "MelLCNN", "TaxonomyModel", "W2V2AASIST", "MODEL_NAMES", "WAVEFORM_MODELS", "build_model", "count_parameters"]
