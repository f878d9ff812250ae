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

    kind: str  # "random" | "files" | "none" (a codec that needs no weights, e.g. the toy codec)
    seed: int | None = None
    files: tuple[str, ...] = ()  # absolute paths of checkpoint files (kind == "files")
    sha256: tuple[str, ...] = ()  # one per file
    source: str = ""  # "explicit" | "NCST_WEIGHTS_DIR" | "hf_cache" | "random"

    @property
    def weights_id(self) -> str:
        if self.kind == "random":
            return f"random:{self.seed}"
        if self.kind == "none":
            return "none"
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


def pad_to_multiple(audio: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad ``(..., samples)`` on the right to the next multiple of ``multiple`` samples."""
    total = audio.shape[-1]
    target = -(-total // multiple) * multiple if total else multiple
    if target == total:
        return audio
    return torch.nn.functional.pad(audio, (0, target - total))


def run_grouped(
    forward, audio: torch.Tensor, lengths: torch.Tensor, multiple: int
) -> torch.Tensor:
    """Run ``forward`` so that every item is processed exactly as if it were alone.

    Items are zero-padded to a multiple of ``multiple`` samples (their own length, not the batch
    maximum) and items with equal padded length share one ``forward`` call. Use this for codecs
    whose output inside an item depends on how far the right padding goes (non-causal convs,
    bidirectional LSTMs, attention over all frames, per-utterance normalisation).

    Args:
        forward: ``(b, 1, t) -> (b, 1, t')`` with ``t`` a multiple of ``multiple``.
        audio: ``(batch, 1, samples)``; lengths: ``(batch,)``.
    Returns:
        ``(batch, 1, samples)``: each item's output cut or zero-padded to ``samples``.
    """
    batch, _, total = audio.shape
    out = torch.zeros_like(audio)
    padded = [max(multiple, -(-int(n) // multiple) * multiple) for n in lengths.tolist()]
    for size in sorted(set(padded)):
        idx = [i for i, p in enumerate(padded) if p == size]
        chunk = audio[idx, :, : min(size, total)]
        chunk = torch.nn.functional.pad(chunk, (0, size - chunk.shape[-1]))
        # Zero everything past each item's own length (the batch may carry other padding values).
        mask = torch.arange(size, device=audio.device)[None, :] < lengths[idx].to(audio.device)[:, None]
        y = forward(chunk * mask[:, None, :].to(chunk.dtype))
        keep = min(y.shape[-1], total)
        out[idx, :, :keep] = y[..., :keep].to(out.dtype)
    return out


class BatchedCodec(Codec):
    """A codec with one padded-batch ``_forward``; it handles padding, grouping and trimming.

    Subclasses set ``hop_length`` (samples per codec frame) and ``padding_invariant``: True when
    an item's output does not depend on padding added after it once the input is padded to a
    multiple of the hop (causal models), so a batch runs in one call; False routes the batch
    through :func:`run_grouped` so that batched output equals one-by-one output.
    """

    hop_length: int = 1
    padding_invariant: bool = False

    @property
    def device(self) -> torch.device:
        model = getattr(self, "model", None)
        if isinstance(model, torch.nn.Module):
            for p in model.parameters():
                return p.device
        return torch.device("cpu")

    @abc.abstractmethod
    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Encode and decode ``(b, 1, t)`` with ``t`` a multiple of ``hop_length``; returns ``(b, 1, t')``."""

    def resynthesize(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"expected audio of shape (batch, 1, samples), got {tuple(audio.shape)}")
        if lengths.shape != (audio.shape[0],):
            raise ValueError(f"lengths must have shape ({audio.shape[0]},), got {tuple(lengths.shape)}")
        total = audio.shape[-1]
        audio = audio.to(self.device, torch.float32)
        lengths = lengths.to(torch.int64)
        with torch.inference_mode():
            if self.padding_invariant:
                mask = torch.arange(total, device=audio.device)[None, :] < lengths.to(audio.device)[:, None]
                out = self._forward(pad_to_multiple(audio * mask[:, None, :], self.hop_length))
            else:
                out = run_grouped(self._forward, audio, lengths, self.hop_length)
            return trim_to_lengths(out.float(), lengths, total)
