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

    def __hash__(self) -> int:  # checkpoint/options are dicts; ids are unique in a catalog
        return hash((self.id, self.family))


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

    # Values ``batch_mode`` may take (a recipe's per-variant ``batch_mode`` is checked against them).
    batch_modes: tuple[str, ...] = ("exact",)
    batch_mode: str = "exact"

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
            ``(batch, 1, samples)``: each item resynthesised as upstream's inference resynthesises
            it alone (at its raw length unless the codec documents otherwise), its output cut or
            zero-filled to the item's length; samples past its length are zero.
        """

    def encode_codes(self, audio: torch.Tensor) -> list[torch.Tensor]:
        """The discrete codes the encoder gives for ``audio`` (optional part of the contract).

        Args:
            audio: ``(b, 1, t)`` float32 at ``self.sample_rate``; ``t`` a multiple of the codec's
                ``hop_length`` (the padding :meth:`resynthesize` itself applies; 1 for codecs that
                run each item at its raw length).
        Returns:
            One integer tensor per codebook level or stream, batch first, e.g. ``(b, frames)`` per
            RVQ level; frames may differ between levels (multi-scale codecs). These are the codes
            :meth:`resynthesize` decodes (same number of levels, same bandwidth).
        Raises:
            NotImplementedError: the codec has no discrete codes, or its family does not expose them.
        """
        raise NotImplementedError(f"{self.variant.id}: this codec does not expose its discrete codes")


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
    forward, audio: torch.Tensor, lengths: torch.Tensor, multiple: int = 1, min_samples: int = 1
) -> torch.Tensor:
    """Run ``forward`` so that every item is processed exactly as if it were alone.

    Each item is cut to its own length (not the batch maximum), zero-padded to a multiple of
    ``multiple`` samples (1: it runs at its raw length, as most upstream inference scripts run a
    file) and to at least ``min_samples``; items with equal run length share one ``forward`` call.
    Use this for codecs whose output inside an item depends on the item's end or on padding after
    it (non-causal convs, reflect padding, LSTMs, attention over all frames, normalisation over
    time).

    Args:
        forward: ``(b, 1, t) -> (b, 1, t')``; ``t'`` may differ from ``t`` (e.g. a codec that drops
            a partial last frame returns fewer samples).
        audio: ``(batch, 1, samples)``; lengths: ``(batch,)``.
        multiple, min_samples: the run length of an item of ``n`` samples is
            ``max(min_samples, multiple, ceil(n / multiple) * multiple)``.
    Returns:
        ``(batch, 1, samples)``: each item's output cut or zero-filled to ``samples``.
    """
    batch, _, total = audio.shape
    out = torch.zeros_like(audio)
    multiple = max(1, int(multiple))
    runs = [max(int(min_samples), multiple, -(-int(n) // multiple) * multiple) for n in lengths.tolist()]
    for size in sorted(set(runs)):
        idx = [i for i, p in enumerate(runs) if p == size]
        chunk = audio[idx, :, : min(size, total)]
        chunk = torch.nn.functional.pad(chunk, (0, size - chunk.shape[-1]))
        # Zero everything past each item's own length (the batch may carry other padding values).
        mask = torch.arange(size, device=audio.device)[None, :] < lengths[idx].to(audio.device)[:, None]
        y = forward(chunk * mask[:, None, :].to(chunk.dtype))
        keep = min(y.shape[-1], total)
        out[idx, :, :keep] = y[..., :keep].to(out.dtype)
    return out


class ValidLengthMask:
    """Zero every conv input past each item's valid frames, so one padded batch equals one-by-one.

    For fully convolutional codecs with zero padding (no LSTM, no reflect padding, no
    normalisation over time, attention only in windows aligned to the padded length): a conv at
    an item's end then sees zeros, exactly as its own zero padding gives when the item runs
    alone. Install with ``ValidLengthMask(model)`` (hooks every ``Conv1d``/``ConvTranspose1d``).

    Each item's valid length is tracked layer by layer with the conv length arithmetic (so
    decoders whose output is a few samples shorter than the input, like DAC 24 kHz, stay exact),
    keyed by the batch's length at that layer; a length no conv produced (e.g. after average
    pooling) falls back to the item's share of the padded input.
    """

    def __init__(self, model: torch.nn.Module):
        self._own: torch.Tensor | None = None
        self._total = 0
        self._valid: dict[int, torch.Tensor] = {}
        convs = (torch.nn.Conv1d, torch.nn.ConvTranspose1d)
        self.handles = []
        for m in model.modules():
            if isinstance(m, convs):
                self.handles.append(m.register_forward_pre_hook(self._pre_hook))
                self.handles.append(m.register_forward_hook(self._post_hook))

    def begin(self, own_lengths: torch.Tensor, total: int) -> None:
        """Start a batch: ``own_lengths`` (B,) each item's padded length, ``total`` the batch's."""
        self._own, self._total = own_lengths.to(torch.int64).cpu(), int(total)
        self._valid = {self._total: self._own}

    def end(self) -> None:
        self._own, self._valid = None, {}

    @property
    def active(self) -> bool:
        return self._own is not None

    def valid_for(self, frames: int) -> torch.Tensor:
        """Each item's valid frames at a layer whose batch length is ``frames``."""
        known = self._valid.get(frames)
        if known is not None:
            return known
        share = self._own.to(torch.float64) * frames / self._total
        return torch.round(share).to(torch.int64)

    @staticmethod
    def mask(x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        frames = x.shape[-1]
        if bool((valid >= frames).all()):
            return x
        keep = torch.arange(frames, device=x.device)[None, :] < valid.to(x.device)[:, None]
        return x * keep[:, None, :].to(x.dtype)

    def _pre_hook(self, module, args):
        if not self.active:
            return None
        x = args[0]
        return (self.mask(x, self.valid_for(x.shape[-1])),) + tuple(args[1:])

    def _post_hook(self, module, args, out):
        if not self.active:
            return None
        v = self.valid_for(args[0].shape[-1])
        k, s, d = module.kernel_size[0], module.stride[0], module.dilation[0]
        if isinstance(module, torch.nn.ConvTranspose1d):
            p = module.padding[0]
            v_out = (v - 1) * s - 2 * p + d * (k - 1) + module.output_padding[0] + 1
        elif isinstance(module.padding, str):
            v_out = v.clone() if module.padding == "same" else (v - d * (k - 1) - 1) // s + 1
        else:
            v_out = (v + 2 * module.padding[0] - d * (k - 1) - 1) // s + 1
        self._valid[out.shape[-1]] = v_out.clamp(min=0)
        return None


class BatchedCodec(Codec):
    """A codec with one padded-batch ``_forward``; it handles padding, grouping and trimming.

    Subclasses set ``hop_length``, the multiple each item is zero-padded to before ``_forward``:
    the frame hop for codecs whose upstream inference pads the input to whole frames (or where
    that padding cannot change the valid samples), 1 for codecs that upstream runs at the raw
    length (their frame hop then lives in the model's config). ``min_samples``: items shorter
    than this (too short for upstream to give one frame) are zero-padded to it.
    ``padding_invariant``: True when an item's output does not depend on padding added after it
    once the input is padded to a multiple of ``hop_length`` (causal models), so a batch runs in
    one call. Fully convolutional zero-padded models set ``length_mask = ValidLengthMask(model)``
    and also run in one call. Otherwise the batch goes through :func:`run_grouped`. Either way
    batched output equals one-by-one output (each item alone, padded as above), cut or
    zero-filled to the item's length.
    """

    hop_length: int = 1
    min_samples: int = 1
    padding_invariant: bool = False
    length_mask: ValidLengthMask | None = None  # set by fully convolutional subclasses
    # "exact": batched output == one-by-one output (default). "padded": one forward of the
    # right-padded batch even when that lets padding change item ends (faster for codecs that
    # would otherwise run in equal-length groups, e.g. SpeechTokenizer); record it if you use it.
    batch_mode: str = "exact"
    batch_modes = ("exact", "padded")

    @property
    def device(self) -> torch.device:
        model = getattr(self, "model", None)
        if isinstance(model, torch.nn.Module):
            for p in model.parameters():
                return p.device
        return torch.device("cpu")

    @abc.abstractmethod
    def _forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Encode and decode ``(b, 1, t)`` with ``t`` a multiple of ``hop_length`` and at least
        ``min_samples``; returns ``(b, 1, t')`` (``t'`` may differ from ``t``)."""

    def resynthesize(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if audio.dim() != 3 or audio.shape[1] != 1:
            raise ValueError(f"expected audio of shape (batch, 1, samples), got {tuple(audio.shape)}")
        if lengths.shape != (audio.shape[0],):
            raise ValueError(f"lengths must have shape ({audio.shape[0]},), got {tuple(lengths.shape)}")
        total = audio.shape[-1]
        audio = audio.to(self.device, torch.float32)
        lengths = lengths.to(torch.int64)
        with torch.inference_mode():
            if self.batch_mode not in ("exact", "padded"):
                raise ValueError(f"batch_mode must be 'exact' or 'padded', got {self.batch_mode!r}")
            fast = self.batch_mode == "padded"
            if self.padding_invariant or self.length_mask is not None or fast:
                mask = torch.arange(total, device=audio.device)[None, :] < lengths.to(audio.device)[:, None]
                padded = pad_to_multiple(audio * mask[:, None, :], self.hop_length)
                if padded.shape[-1] < self.min_samples:
                    padded = torch.nn.functional.pad(padded, (0, self.min_samples - padded.shape[-1]))
                if self.length_mask is None or fast:
                    out = self._forward(padded)
                else:
                    hop = self.hop_length
                    own = ((lengths.clamp(min=1) + hop - 1) // hop * hop).clamp(min=self.min_samples)
                    self.length_mask.begin(own, padded.shape[-1])
                    try:
                        out = self._forward(padded)
                        out = ValidLengthMask.mask(out, self.length_mask.valid_for(out.shape[-1]))
                    finally:
                        self.length_mask.end()
            else:
                out = run_grouped(self._forward, audio, lengths, self.hop_length, self.min_samples)
            return trim_to_lengths(out.float(), lengths, total)
