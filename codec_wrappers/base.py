"""The codec contract every family implements.

A *variant* is one catalog entry (codec_wrappers/catalog.yaml): a family plus the settings that
make it one published configuration (sample rate, bitrate, codebooks, checkpoint, taxonomy).
A *family* turns a variant and resolved weights into a :class:`Codec`.

A codec knows nothing of manifests, files or Ray: it takes a padded batch at its native sample
rate and returns the resynthesised batch, trimmed to each item's length. Batching, resampling
and I/O are the pipeline's job.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, Mapping

import torch


@dataclass(frozen=True)
class Taxonomy:
    """CodecFake+ taxonomy of a codec: vector quantiser, auxiliary objective, decoder domain."""

    vq: str  # MVQ | SVQ | SQ
    aux: str  # none | semantic | disentangle
    decoder: str  # time | frequency


@dataclass(frozen=True)
class Variant:
    """One catalog entry. Immutable; read from catalog.yaml by :mod:`codec_wrappers.catalog`."""

    id: str
    family: str
    codec: str  # display name of the codec, e.g. "EnCodec"
    sample_rate: int
    bitrate_kbps: float
    n_codebooks: int
    taxonomy: Taxonomy
    st_label: int | None  # ST-Codecfake label 1..11 (None: not an ST class)
    st_role: str  # "id" | "ood" | "diff_config" | "ood_config" | "extra"
    condition: str = ""  # robustness condition name, e.g. "C3-1", "C4-2", "wavtokenizer_small40"
    checkpoint: Mapping[str, Any] = field(default_factory=dict)  # hf_repo/files or url, notes
    options: Mapping[str, Any] = field(default_factory=dict)  # family-specific hyperparameters
    notes: str = ""
    native: bool = False  # implemented in ncst (no maintained package upstream)


@dataclass(frozen=True)
class ResolvedWeights:
    """Where a codec's weights come from, as recorded in every manifest row (weights_id)."""

    kind: str  # "random" | "files"
    seed: int | None = None
    files: tuple[str, ...] = ()  # absolute paths of checkpoint files (kind == "files")
    sha256: tuple[str, ...] = ()  # one per file
    source: str = ""  # "explicit" | "NCST_WEIGHTS_DIR" | "hf_cache" | "random"

    @property
    def weights_id(self) -> str:
        if self.kind == "random":
            return f"random:{self.seed}"
        return "sha256:" + ",".join(h[:16] for h in self.sha256)

    @property
    def is_random(self) -> bool:
        return self.kind == "random"


class Codec(abc.ABC):
    """A loaded codec variant, ready to resynthesise audio at its native rate."""

    def __init__(self, variant: Variant, weights: ResolvedWeights):
        self.variant = variant
        self.weights = weights

    @property
    def sample_rate(self) -> int:
        return self.variant.sample_rate

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, device: str | torch.device) -> "Codec":
        """Move the model to ``device``; families with an ``nn.Module`` in ``self.model`` get it free."""
        model = getattr(self, "model", None)
        if model is not None:
            model.to(device)
        return self

    @abc.abstractmethod
    def resynthesize(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Encode and decode a padded batch.

        Args:
            audio: ``(batch, 1, samples)`` float32 at ``self.sample_rate``, zero-padded on the right.
            lengths: ``(batch,)`` int64, the valid samples of each item.
        Returns:
            ``(batch, 1, samples)``: each item resynthesised; samples past its length are zero.
        """


def trim_to_lengths(out: torch.Tensor, lengths: torch.Tensor, total: int) -> torch.Tensor:
    """Cut or zero-pad a decoder output ``(B, 1, T')`` to ``(B, 1, total)`` and zero each item's tail."""
    if out.shape[-1] >= total:
        out = out[..., :total]
    else:
        out = torch.nn.functional.pad(out, (0, total - out.shape[-1]))
    mask = torch.arange(total, device=out.device)[None, :] < lengths.to(out.device)[:, None]
    return out * mask[:, None, :].to(out.dtype)
