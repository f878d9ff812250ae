"""Numeric precision of a codec forward pass: fp32 (default), bf16 autocast, or bf16 autocast with
the vector quantisers kept in fp32 (``bf16_fp32vq``).

bf16 is a speed lever on GPUs with bf16 tensor cores; it changes the output (and can flip codes),
so it is off by default, opt-in per recipe, and recorded in every row it produced. Most flipped
codes come from the nearest-codeword search, whose distances lose their low bits in bf16
(bench/README.md, precision); ``bf16_fp32vq`` runs every quantiser module in fp32 and the rest
of the network in bf16.
:func:`compare_precision` measures how much: the SNR of the bf16 output against the fp32 output
and the share of discrete codes that bf16 changes.
"""
from __future__ import annotations

import contextlib
import functools
import math
import re
import time
from dataclasses import asdict, dataclass

# No torch import at module level: recipes import PRECISIONS, and reading a recipe must stay light.
PRECISIONS = ("fp32", "bf16", "bf16_fp32vq")
# Quantiser modules by class name, in every family here: EnCodec/SpeechTokenizer
# ResidualVectorQuantizer, DAC/SNAC ResidualVectorQuantize, Mimi *ResidualVectorQuantizer, native
# ResidualVectorQuantizer / GroupResidualVQ / FunCodecRVQ / ResidualFVQ / FactorizedVQ / _Codebook.
QUANTIZER_CLASS = re.compile(r"(Vector|Residual|Group).*Quantiz|VQ|Codebook")  # not torch's NonDynamicallyQuantizableLinear
_QUANTIZER_METHODS = ("forward", "encode", "decode", "quantize", "dequantize", "from_codes", "from_latents")


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def autocast(device, precision: str):
    """Context for one forward pass: nothing for fp32, ``torch.autocast(bfloat16)`` for bf16.

    ``device`` is where the model runs (``cpu``, ``cuda``, ``cuda:1``...).
    """
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def quantizer_modules(model) -> list:
    """The outermost modules of ``model`` whose class name marks a quantiser (:data:`QUANTIZER_CLASS`)."""
    found = []

    def visit(module) -> None:
        if QUANTIZER_CLASS.search(type(module).__name__):
            found.append(module)
            return
        for child in module.children():
            visit(child)

    visit(model)
    return found


def _in_fp32(method):
    """Wrap a bound method: autocast off inside, half-precision tensor arguments cast to float32."""
    import torch

    def cast(x):
        return x.float() if isinstance(x, torch.Tensor) and x.dtype in (torch.bfloat16, torch.float16) else x

    @functools.wraps(method)
    def wrapped(*args, **kwargs):
        device = next((a.device.type for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor)), "cpu")
        with torch.autocast(device_type=device, enabled=False):
            return method(*[cast(a) for a in args], **{k: cast(v) for k, v in kwargs.items()})

    return wrapped


def keep_quantizers_fp32(model) -> int:
    """Make every quantiser module of ``model`` run in fp32 under autocast (its ``forward``,
    ``encode``, ``decode``... on the instance); idempotent, and a no-op without autocast. Returns
    how many quantiser modules the model has."""
    mods = quantizer_modules(model)
    for m in mods:
        if getattr(m, "_ncst_fp32", False):
            continue
        for name in _QUANTIZER_METHODS:
            if callable(getattr(type(m), name, None)):
                setattr(m, name, _in_fp32(getattr(m, name)))
        m._ncst_fp32 = True
    # Models that search their codebooks in a method of their own (AudioDec's SymAD.quantize).
    inside = {id(sub) for m in mods for sub in m.modules()}
    for m in model.modules():
        if id(m) not in inside and callable(getattr(type(m), "quantize", None)) and not getattr(m, "_ncst_fp32", False):
            m.quantize = _in_fp32(m.quantize)
            m._ncst_fp32 = True
    return len(mods)


def prepare_codec(codec, precision: str) -> None:
    """Get a loaded codec ready for ``precision`` (for ``bf16_fp32vq``: its quantisers in fp32).

    Raises ValueError when ``bf16_fp32vq`` is asked of a codec with no quantiser module to keep."""
    if check_precision(precision) != "bf16_fp32vq":
        return
    model = getattr(codec, "model", None)
    if model is None or keep_quantizers_fp32(model) == 0:
        raise ValueError(f"{codec.variant.id}: precision bf16_fp32vq needs quantiser modules, and this codec "
                         "has none that ncst recognises; use bf16 or fp32")


@dataclass(frozen=True)
class PrecisionReport:
    """How far a codec's output under ``precision_b`` is from its output under ``precision_a``.

    ``snr_db``: per item, ``10 log10(sum a^2 / sum (a - b)^2)`` over the item's valid samples
    (``inf`` when the outputs are identical). ``codes_changed`` / ``codes_compared``: code entries
    (all levels, all items) that differ between the two encodes, and how many were compared; both
    ``None`` when the codec exposes no codes (:meth:`Codec.encode_codes` not implemented);
    ``level_changed`` / ``level_compared``: the same per code level (first level first).
    ``seconds_a`` / ``seconds_b``: one ``resynthesize`` call each (the first call: not a benchmark).
    """

    variant: str
    precision_a: str
    precision_b: str
    snr_db: tuple[float, ...]
    max_abs_diff: float
    codes_changed: int | None
    codes_compared: int | None
    code_levels: int | None
    level_changed: tuple[int, ...] | None
    level_compared: tuple[int, ...] | None
    seconds_a: float
    seconds_b: float

    @property
    def snr_min_db(self) -> float:
        return min(self.snr_db) if self.snr_db else math.nan

    @property
    def snr_mean_db(self) -> float:
        """Mean of the per-item dB values (``inf`` if any item is identical)."""
        return sum(self.snr_db) / len(self.snr_db) if self.snr_db else math.nan

    @property
    def codes_changed_share(self) -> float | None:
        """Share of code entries that differ, in [0, 1]; None without codes."""
        if self.codes_changed is None or not self.codes_compared:
            return None
        return self.codes_changed / self.codes_compared

    @property
    def level_changed_shares(self) -> tuple[float, ...] | None:
        """Per code level, the share of its entries that differ (coarse/first level first)."""
        if self.level_changed is None:
            return None
        return tuple(c / n if n else 0.0 for c, n in zip(self.level_changed, self.level_compared))

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("snr_db", "level_changed", "level_compared"):
            d[key] = None if d[key] is None else list(d[key])
        shares = self.level_changed_shares
        d.update(snr_min_db=self.snr_min_db, snr_mean_db=self.snr_mean_db, codes_changed_share=self.codes_changed_share,
                 level_changed_shares=None if shares is None else list(shares))
        return d


def snr_db(reference, test) -> float:
    """SNR in dB of ``test`` against ``reference`` (same shape): ``inf`` if equal, ``-inf`` if the
    reference is silent and the test is not. Computed in float64."""
    import torch

    ref = reference.detach().to(torch.float64)
    err = float((ref - test.detach().to(torch.float64)).pow(2).sum())
    if err == 0.0:
        return math.inf
    sig = float(ref.pow(2).sum())
    return 10.0 * math.log10(sig / err) if sig > 0 else -math.inf


def _item_codes(codec, audio, lengths, precision: str):
    """Per item (alone, zero-padded to a multiple of ``codec.hop_length``): list of code tensors."""
    from codec_wrappers.base import pad_to_multiple

    hop = max(1, int(getattr(codec, "hop_length", 1)))
    out = []
    for i, n in enumerate(lengths.tolist()):
        x = pad_to_multiple(audio[i : i + 1, :, : max(1, int(n))], hop)
        with autocast(codec.device, precision):
            out.append([c.detach().cpu() for c in codec.encode_codes(x)])
    return out


def compare_precision(codec, audio, lengths, precision_a: str = "fp32", precision_b: str = "bf16",
                      codes: bool = True) -> PrecisionReport:
    """Resynthesise one padded batch under ``precision_a`` (the reference) and ``precision_b``.

    Args:
        codec: a loaded :class:`codec_wrappers.base.Codec`.
        audio: ``(batch, 1, samples)`` float32 at ``codec.sample_rate``, zero-padded on the right.
        lengths: ``(batch,)`` int64, each item's valid samples.
        precision_a, precision_b: names from :data:`PRECISIONS` (``fp32`` vs ``fp32`` gives ``inf`` dB
            and 0 changed codes: the deterministic baseline).
        codes: also compare the discrete codes (each item encoded alone under both precisions).
    Returns:
        A :class:`PrecisionReport`; ``resynthesize`` runs under ``autocast(codec.device, p)`` and
        ``torch.inference_mode`` for each precision ``p``.
    """
    import torch

    check_precision(precision_a)
    check_precision(precision_b)
    if audio.dim() != 3 or audio.shape[1] != 1 or lengths.shape != (audio.shape[0],):
        raise ValueError(f"expected audio (batch, 1, samples) and lengths (batch,), got {tuple(audio.shape)}, "
                         f"{tuple(lengths.shape)}")
    lengths = lengths.to(torch.int64).cpu()
    outputs, seconds = [], []
    for p in (precision_a, precision_b):
        prepare_codec(codec, p)
    with torch.inference_mode():
        for p in (precision_a, precision_b):
            t0 = time.perf_counter()
            with autocast(codec.device, p):
                y = codec.resynthesize(audio, lengths)
            seconds.append(time.perf_counter() - t0)
            outputs.append(y.detach().to("cpu", torch.float32))
        a, b = outputs
        snrs = tuple(snr_db(a[i, :, :n], b[i, :, :n]) for i, n in enumerate(lengths.tolist()))
        max_abs = float((a - b).abs().max()) if a.numel() else 0.0

        changed = compared = levels = level_changed = level_compared = None
        if codes:
            try:
                codes_a = _item_codes(codec, audio, lengths, precision_a)
            except NotImplementedError:
                codes_a = None
            if codes_a is not None:
                codes_b = _item_codes(codec, audio, lengths, precision_b)
                levels = len(codes_a[0]) if codes_a else 0
                level_changed, level_compared = [0] * levels, [0] * levels
                for i, (ca, cb) in enumerate(zip(codes_a, codes_b)):
                    if len(ca) != len(cb):
                        raise RuntimeError(f"{codec.variant.id}: item {i} has {len(ca)} code levels under "
                                           f"{precision_a} but {len(cb)} under {precision_b}")
                    if len(ca) != levels:
                        raise RuntimeError(f"{codec.variant.id}: item {i} has {len(ca)} code levels, item 0 {levels}")
                    for level, (x, y) in enumerate(zip(ca, cb)):
                        if x.shape != y.shape:
                            raise RuntimeError(f"{codec.variant.id}: item {i} level {level} codes have shape "
                                               f"{tuple(x.shape)} under {precision_a}, {tuple(y.shape)} under {precision_b}")
                        level_changed[level] += int((x != y).sum())
                        level_compared[level] += x.numel()
                changed, compared = sum(level_changed), sum(level_compared)
                level_changed, level_compared = tuple(level_changed), tuple(level_compared)
    return PrecisionReport(
        variant=codec.variant.id, precision_a=precision_a, precision_b=precision_b, snr_db=snrs,
        max_abs_diff=max_abs, codes_changed=changed, codes_compared=compared, code_levels=levels,
        level_changed=level_changed, level_compared=level_compared,
        seconds_a=seconds[0], seconds_b=seconds[1],
    )
