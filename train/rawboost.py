"""RawBoost data augmentation (Tak et al., "RawBoost: A Raw Data Boosting and Augmentation Method
applied to Automatic Speaker Verification Anti-Spoofing", ICASSP 2022), written from the paper.

No maintained RawBoost package exists on PyPI, so this is ncst's own implementation. Two of the
paper's three distortions are here, and its series combination "algorithm 5" that the codec
taxonomy model trains with:

- **LnL** (linear and non-linear convolutive noise, algorithm 1): the sum over orders
  ``j = 1..n_f`` of ``x ** j`` passed through its own random multi-band notch filter: a cascade
  of ``n_bands`` FIR band-stop filters with random centre frequency, bandwidth and length,
  scaled to a random peak gain (dB). Order 1 draws its gain from ``[min_g, max_g]``; the
  non-linear orders are attenuated by a further ``[min_bias, max_bias]`` dB. The sum is
  centred and scaled down to a peak of 1 if it exceeds it.
- **ISD** (impulsive signal-dependent additive noise, algorithm 2): a random ``beta`` in
  ``[0, p]`` percent of the samples, picked at random, get ``x_i * g_sd * u1 * u2`` added
  (``u1, u2`` uniform in ``[-1, 1]``); scaled down to a peak of 1 if it exceeds it.
- **algorithm 5**: LnL, then ISD.

Defaults are the paper's (and the codec-taxonomy authors' command-line defaults): 5 bands,
centre 20-8000 Hz, bandwidth 100-1000 Hz, 10-100 filter taps, gain 0 dB, non-linear bias 5-20 dB,
5 orders; ISD up to 10 % of samples with ``g_sd = 2``.

Every random draw comes from the ``numpy.random.Generator`` passed in, so a seeded generator
gives the same output every time (the dataset seeds one per ``(seed, epoch, item)``). Output
length always equals input length.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ALGORITHMS = (0, 1, 2, 5)  # 0 = off


@dataclass(frozen=True)
class LnLParams:
    n_bands: int = 5
    min_f: float = 20.0
    max_f: float = 8000.0
    min_bw: float = 100.0
    max_bw: float = 1000.0
    min_taps: int = 10
    max_taps: int = 100
    min_g: float = 0.0
    max_g: float = 0.0
    min_bias: float = 5.0
    max_bias: float = 20.0
    n_f: int = 5


@dataclass(frozen=True)
class ISDParams:
    p: float = 10.0  # at most this percentage of samples get an impulse
    g_sd: float = 2.0


def check_algo(algo: int | None) -> int:
    """``algo`` as an int, or ``ValueError`` naming the supported ones."""
    a = int(algo or 0)
    if a not in ALGORITHMS:
        raise ValueError(f"RawBoost algorithm {algo!r} is not supported; expected one of {ALGORITHMS} (0 = off)")
    return a


def _peak_limit(y: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    return y / peak if peak > 1.0 else y


def notch_filter(rng: np.random.Generator, fs: int, params: LnLParams, gain_db: tuple[float, float]) -> np.ndarray:
    """FIR taps of a random cascade of ``params.n_bands`` band-stop filters, scaled so that the
    peak of its magnitude response is a gain drawn from ``gain_db`` (dB)."""
    from scipy import signal

    nyq = fs / 2.0
    taps = np.ones(1)
    for _ in range(params.n_bands):
        fc = rng.uniform(params.min_f, params.max_f)
        bw = rng.uniform(params.min_bw, params.max_bw)
        n = int(rng.uniform(params.min_taps, params.max_taps))
        n += 1 - n % 2  # a band-stop FIR needs an odd length
        lo, hi = max(fc - bw / 2.0, 1e-3), min(fc + bw / 2.0, nyq - 1e-3)
        if not lo < hi:  # the band fell above Nyquist (low sample rates): no notch this time
            continue
        taps = np.convolve(taps, signal.firwin(n, [lo, hi], window="hamming", fs=fs))
    lo_g, hi_g = sorted(gain_db)
    gain = rng.uniform(lo_g, hi_g)
    _, h = signal.freqz(taps, 1, fs=fs)
    return (10.0 ** (gain / 20.0)) * taps / np.max(np.abs(h))


def lnl_convolutive_noise(x: np.ndarray, fs: int, rng: np.random.Generator, params: LnLParams = LnLParams()) -> np.ndarray:
    """Linear and non-linear convolutive noise (RawBoost algorithm 1). ``(n,) -> (n,)`` float32."""
    from scipy import signal

    x = np.asarray(x, dtype=np.float64)
    y = np.zeros_like(x)
    for order in range(1, params.n_f + 1):
        gain = (params.min_g, params.max_g) if order == 1 else (params.min_g - params.min_bias, params.max_g - params.max_bias)
        taps = notch_filter(rng, fs, params, gain)
        # "same": centred output, so the filter's delay does not shift the signal
        y += signal.fftconvolve(x ** order, taps, mode="same")
    y -= y.mean()
    return _peak_limit(y).astype(np.float32)


def isd_additive_noise(x: np.ndarray, rng: np.random.Generator, params: ISDParams = ISDParams()) -> np.ndarray:
    """Impulsive signal-dependent additive noise (RawBoost algorithm 2). ``(n,) -> (n,)`` float32."""
    x = np.asarray(x, dtype=np.float64)
    beta = rng.uniform(0.0, params.p)
    n = int(x.shape[0] * beta / 100.0)
    y = x.copy()
    where = rng.permutation(x.shape[0])[:n]
    shape = rng.uniform(-1.0, 1.0, n) * rng.uniform(-1.0, 1.0, n)
    y[where] += params.g_sd * x[where] * shape
    return _peak_limit(y).astype(np.float32)


def rawboost(x: np.ndarray, fs: int, algo: int, rng: np.random.Generator, *, lnl: LnLParams = LnLParams(),
             isd: ISDParams = ISDParams()) -> np.ndarray:
    """Apply RawBoost ``algo`` (0 off, 1 LnL, 2 ISD, 5 LnL then ISD) to ``x (n,)``; float32, same length."""
    algo = check_algo(algo)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"rawboost expects a mono waveform (samples,), got shape {x.shape}")
    if algo == 0 or x.size == 0:
        return x
    if algo in (1, 5):
        x = lnl_convolutive_noise(x, fs, rng, lnl)
    if algo in (2, 5):
        x = isd_additive_noise(x, rng, isd)
    return x
