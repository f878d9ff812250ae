"""A small, seeded, speech-like demo corpus in the real VCTK 0.92 and AISHELL-3 layouts.

No real corpus can be downloaded here, so the demo flow runs on synthetic speakers. The audio is
made like a source-filter vocoder would make it: a glottal pulse train whose pitch follows a
falling contour with slow wobble, shaped by a spectral tilt, passed through formant resonators
(one vowel per syllable), under a syllable-rate amplitude envelope, with short fricative noise
bursts as consonants, pauses between words, and a low noise floor. It is not speech, but it has
speech's pitch range, formant structure and rhythm, which is what the codecs care about.

Same seed -> byte-identical files. Counts and durations are parameters: the defaults (4 VCTK
speakers x 6 utterances at 48 kHz FLAC, 3 AISHELL-3 speakers x 6 at 44.1 kHz WAV, 1.5-2.5 s each)
give about 1.5 minutes of audio, small enough for the 11-codec demo on 2 CPU cores.

On request it also writes tiny NCSSD, ASVspoof 2019 LA and In-the-Wild trees (the study's
robustness corpora). Their "spoofs" come from :func:`synth_spoof` (demo speech re-synthesised
with random STFT phases, a crude vocoder artefact): another kind of fake than the codecs' for the
"OOD other fake type" set, not a real attack.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import signal

from pipeline.audio_io import write_audio

# Formants (Hz) of a few vowels (adult male averages; scaled per speaker).
VOWELS = {
    "a": (730, 1090, 2440),
    "i": (270, 2290, 3010),
    "u": (300, 870, 2240),
    "e": (530, 1840, 2480),
    "o": (570, 840, 2410),
}
BANDWIDTHS = (80.0, 100.0, 140.0)

_EN_WORDS = (
    "please call stella ask her to bring these things with her from the store six spoons of "
    "fresh snow peas five thick slabs of blue cheese and maybe a snack for her brother bob"
).split()
# (character, tone-numbered pinyin) pairs for AISHELL-3-style transcripts.
_ZH_SYLLABLES = (
    ("我", "wo3"), ("们", "men5"), ("今", "jin1"), ("天", "tian1"), ("去", "qu4"), ("北", "bei3"),
    ("京", "jing1"), ("看", "kan4"), ("朋", "peng2"), ("友", "you5"), ("他", "ta1"), ("说", "shuo1"),
    ("好", "hao3"), ("的", "de5"), ("学", "xue2"), ("生", "sheng1"), ("音", "yin1"), ("乐", "yue4"),
)


@dataclass(frozen=True)
class SyntheticSpeaker:
    speaker: str
    gender: str  # "F" / "M"
    f0: float  # mean pitch, Hz
    formant_scale: float  # vocal tract length factor


@dataclass(frozen=True)
class DemoCorpus:
    """Where :func:`make_demo_corpus` wrote things and how much."""

    root: Path
    vctk_dir: Path
    aishell3_dir: Path
    n_vctk: int  # utterances per mic
    n_aishell3: int
    duration_s: float  # total audio (one mic for VCTK)
    corrupt_files: tuple[Path, ...] = ()
    ncssd_dir: Path | None = None  # NCSSD-layout dialogues (unseen real / different source), if any
    n_ncssd: int = 0
    asvspoof2019_la_dir: Path | None = None  # ASVspoof 2019 LA layout (unseen real / other fake type)
    n_asvspoof2019_la: int = 0  # files of the eval partition (bona fide + spoof)
    in_the_wild_dir: Path | None = None  # In-the-Wild layout (unseen real / other fake type)
    n_in_the_wild: int = 0  # files (bona fide + spoof)


def synth_utterance(
    rng: np.random.Generator,
    sr: int,
    duration_s: float,
    f0: float,
    formant_scale: float = 1.0,
    n_syllables: int | None = None,
) -> np.ndarray:
    """One speech-like utterance ``(samples,)`` float32 in [-0.6, 0.6] at ``sr``.

    Syllables (voiced vowel, sometimes after a noise-burst consonant) are laid out with pauses
    and overlap-added into a buffer of exactly ``round(duration_s * sr)`` samples.
    """
    n = int(round(duration_s * sr))
    out = np.zeros(n, dtype=np.float64)
    n_syllables = n_syllables or max(2, int(duration_s * rng.uniform(3.0, 4.5)))
    lead = int(rng.uniform(0.05, 0.15) * sr)
    usable = n - lead - int(0.1 * sr)
    slot = usable // n_syllables
    t_total = n / sr
    for k in range(n_syllables):
        start = lead + k * slot
        syl_len = int(slot * rng.uniform(0.55, 0.85))
        if rng.random() < 0.15 and k > 0:  # an occasional pause between words
            continue
        # Pitch: declination over the utterance, a rise-fall inside the syllable, jitter.
        t0 = start / sr
        tt = np.arange(syl_len) / sr
        base = f0 * (1.0 - 0.15 * t0 / t_total)
        contour = base * (1.0 + 0.08 * np.sin(np.pi * tt / max(tt[-1], 1e-3)) + 0.01 * rng.standard_normal())
        phase = np.cumsum(contour / sr)
        pulses = np.diff(np.floor(phase), prepend=0.0)  # 1 at each glottal closure
        source = signal.lfilter([1.0], [1.0, -0.95], pulses)  # glottal spectral tilt
        source = source - source.mean()
        vowel = VOWELS[list(VOWELS)[rng.integers(len(VOWELS))]]
        voiced = source
        for fc, bw in zip(vowel, BANDWIDTHS):
            fc = min(fc * formant_scale, 0.45 * sr)
            r = np.exp(-np.pi * bw / sr)
            a = [1.0, -2.0 * r * np.cos(2 * np.pi * fc / sr), r * r]
            voiced = signal.lfilter([1.0 - r], a, voiced)
        env = np.sin(np.pi * np.arange(syl_len) / syl_len) ** 0.6
        voiced = voiced * env
        voiced /= np.max(np.abs(voiced)) + 1e-9
        seg = voiced * rng.uniform(0.6, 1.0)
        if rng.random() < 0.5:  # a fricative onset: high-passed noise burst before the vowel
            nb = int(rng.uniform(0.03, 0.07) * sr)
            b, a = signal.butter(2, min(3500.0 / (sr / 2), 0.95), btype="high")
            burst = signal.lfilter(b, a, rng.standard_normal(nb)) * np.hanning(nb) * 0.15
            seg = np.concatenate([burst, seg])
        end = min(start + len(seg), n)
        out[start:end] += seg[: end - start]
    out += 10 ** (-50 / 20) * rng.standard_normal(n)  # noise floor, -50 dBFS
    out *= 0.6 / (np.max(np.abs(out)) + 1e-9)
    return out.astype(np.float32)


def synth_spoof(rng: np.random.Generator, sr: int, duration_s: float, f0: float, formant_scale: float = 1.0) -> np.ndarray:
    """A demo "spoof" ``(samples,)`` float32: :func:`synth_utterance` with its STFT phases replaced
    by random ones (magnitudes kept), the buzzy smear of a vocoder without phase modelling."""
    x = synth_utterance(rng, sr, duration_s, f0, formant_scale)
    _, _, z = signal.stft(x, fs=sr, nperseg=512)
    _, y = signal.istft(np.abs(z) * np.exp(2j * np.pi * rng.random(z.shape)), fs=sr, nperseg=512)
    y = np.pad(y[: len(x)], (0, max(0, len(x) - len(y))))
    y *= 0.6 / (np.max(np.abs(y)) + 1e-9)
    return y.astype(np.float32)


def _speakers(rng: np.random.Generator, prefix: str, first: int, count: int) -> list[SyntheticSpeaker]:
    out = []
    for i in range(count):
        gender = "F" if i % 2 == 0 else "M"
        f0 = rng.uniform(180, 240) if gender == "F" else rng.uniform(95, 135)
        scale = rng.uniform(1.1, 1.2) if gender == "F" else rng.uniform(0.95, 1.05)
        out.append(SyntheticSpeaker(f"{prefix}{first + i:0{4 if prefix == 'SSB' else 3}d}", gender, f0, scale))
    return out


def make_demo_corpus(
    out_dir: str | os.PathLike,
    seed: int = 0,
    vctk_speakers: int = 4,
    aishell3_speakers: int = 3,
    utterances_per_speaker: int = 6,
    min_duration_s: float = 1.5,
    max_duration_s: float = 2.5,
    vctk_mics: tuple[str, ...] = ("mic1", "mic2"),
    corrupt: bool = False,
    ncssd_dialogues: int = 0,
    ncssd_turns: int = 3,
    asvspoof2019_la_utterances: int = 0,
    in_the_wild_utterances: int = 0,
) -> DemoCorpus:
    """Write a synthetic VCTK 0.92 tree and AISHELL-3 tree under ``out_dir``.

    Layout: ``out_dir/vctk/`` (``wav48_silence_trimmed/pXXX/pXXX_NNN_micK.flac`` at 48 kHz,
    ``txt/pXXX/pXXX_NNN.txt``, ``speaker-info.txt``) and ``out_dir/aishell3/``
    (``train/wav/SSBxxxx/SSBxxxxNNNN.wav`` at 44.1 kHz, ``train/content.txt`` with char/pinyin
    pairs, ``spk-info.txt``; the last AISHELL-3 speaker is in ``test/``, the others in ``train/``).

    Args:
        seed: everything (speakers, texts, audio) follows from it; same seed, same bytes.
        vctk_mics: which microphone files to write; mic2 is mic1 through a gentle low-pass with
            a little extra noise (a different "microphone" of the same performance).
        corrupt: also write one deliberately broken file (for tests): the last VCTK speaker's
            first mic1 FLAC is replaced by bytes that are not audio. Off for the demo.
        ncssd_dialogues: also write this many two-speaker dialogues of ``ncssd_turns`` turns in
            the NCSSD layout read by ``prepare_ncssd`` (``out_dir/ncssd/R-EN/<dialogue>/``: 16 kHz
            WAV turns, ``.lab`` transcripts, ``metadata.json``): the study's unseen-real and
            different-source sets. Written after VCTK and AISHELL-3, so they do not change with it.
        asvspoof2019_la_utterances: also write an ASVspoof 2019 LA tree (``out_dir/asvspoof2019_la/LA/``,
            16 kHz FLAC + CM protocol files) whose eval partition holds this many bona fide and
            this many spoofed utterances (attacks A07, A08, ...), plus train and dev partitions
            of one of each (so that reading only the eval partition is visible).
        in_the_wild_utterances: also write an In-the-Wild tree (``out_dir/in_the_wild/
            release_in_the_wild/``: ``<n>.wav`` at 16 kHz + ``meta.csv``) with this many bona fide
            and this many spoofed files. Both are written last, LA first.

    Returns:
        A :class:`DemoCorpus` with the two corpus roots to pass to ``prepare_vctk`` and
        ``prepare_aishell3``.
    """
    if not (0 < min_duration_s <= max_duration_s):
        raise ValueError(f"need 0 < min_duration_s <= max_duration_s, got {min_duration_s}, {max_duration_s}")
    root = Path(out_dir)
    rng = np.random.default_rng(seed)
    total = 0.0

    # VCTK 0.92 layout.
    vctk = root / "vctk"
    vsr = 48000
    v_speakers = _speakers(rng, "p", 900, vctk_speakers)  # p900+: not real VCTK speaker ids
    info = ["ID  AGE  GENDER  ACCENTS  REGION COMMENTS "]
    lp_b, lp_a = signal.butter(4, 9000 / (vsr / 2))
    for spk in v_speakers:
        info.append(f"{spk.speaker}  {int(rng.integers(18, 40))}  {spk.gender}    English    Synthetic  Demo")
        for u in range(1, utterances_per_speaker + 1):
            dur = float(rng.uniform(min_duration_s, max_duration_s))
            audio = synth_utterance(rng, vsr, dur, spk.f0, spk.formant_scale)
            words = rng.choice(_EN_WORDS, size=int(rng.integers(4, 9)))
            text = " ".join(words).capitalize() + "."
            name = f"{spk.speaker}_{u:03d}"
            (vctk / "txt" / spk.speaker).mkdir(parents=True, exist_ok=True)
            (vctk / "txt" / spk.speaker / f"{name}.txt").write_text(text + "\n", encoding="utf-8")
            for mic in vctk_mics:
                x = audio
                if mic == "mic2":
                    x = signal.lfilter(lp_b, lp_a, audio) + 10 ** (-45 / 20) * rng.standard_normal(len(audio))
                write_audio(vctk / "wav48_silence_trimmed" / spk.speaker / f"{name}_{mic}.flac", x, vsr, "FLAC")
            total += dur
    (vctk / "speaker-info.txt").write_text("\n".join(info) + "\n", encoding="utf-8")

    # AISHELL-3 layout.
    ai = root / "aishell3"
    asr = 44100
    a_speakers = _speakers(rng, "SSB", 9001, aishell3_speakers)
    spk_info = ["# AISHELL-3 speaker info (synthetic demo)", "# Speaker\tAgeGroup\tGender\tAccent"]
    content: dict[str, list[str]] = {"train": [], "test": []}
    for k, spk in enumerate(a_speakers):
        # As in the real corpus, test speakers are disjoint from train: the last one is test.
        part = "test" if k == len(a_speakers) - 1 and len(a_speakers) > 1 else "train"
        spk_info.append(f"{spk.speaker}\t{'BC'[int(rng.integers(2))]}\t{'female' if spk.gender == 'F' else 'male'}\tnorth")
        for u in range(1, utterances_per_speaker + 1):
            dur = float(rng.uniform(min_duration_s, max_duration_s))
            n_syl = max(2, int(dur * 4))
            audio = synth_utterance(rng, asr, dur, spk.f0, spk.formant_scale, n_syllables=n_syl)
            picks = rng.integers(len(_ZH_SYLLABLES), size=n_syl)
            pairs = " ".join(f"{_ZH_SYLLABLES[i][0]} {_ZH_SYLLABLES[i][1]}" for i in picks)
            name = f"{spk.speaker}{u:04d}"
            write_audio(ai / part / "wav" / spk.speaker / f"{name}.wav", audio, asr, "WAV")
            content[part].append(f"{name}.wav\t{pairs}")
            total += dur
    for part, lines in content.items():
        (ai / part).mkdir(parents=True, exist_ok=True)
        (ai / part / "content.txt").write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    (ai / "spk-info.txt").write_text("\n".join(spk_info) + "\n", encoding="utf-8")

    broken: list[Path] = []
    if corrupt and v_speakers and "mic1" in vctk_mics:
        bad = vctk / "wav48_silence_trimmed" / v_speakers[-1].speaker / f"{v_speakers[-1].speaker}_001_mic1.flac"
        bad.write_bytes(b"this is not a FLAC file\n" * 8)
        broken.append(bad)
    ncssd = root / "ncssd" if ncssd_dialogues else None
    n_ncssd = 0
    if ncssd is not None:
        nsr = 16000
        pair = _speakers(rng, "n", 0, 2)
        for d in range(1, ncssd_dialogues + 1):
            folder = ncssd / "R-EN" / f"{d:04d}"
            folder.mkdir(parents=True, exist_ok=True)
            turns = {}
            for t in range(ncssd_turns):
                spk = pair[t % 2]
                dur = float(rng.uniform(min_duration_s, max_duration_s))
                audio = synth_utterance(rng, nsr, dur, spk.f0 * rng.uniform(0.9, 1.1), spk.formant_scale)
                text = " ".join(rng.choice(_EN_WORDS, size=int(rng.integers(4, 9)))).capitalize() + "."
                stem = f"{t}_{t % 2}_d{d}"
                write_audio(folder / f"{stem}.wav", audio, nsr, "WAV")
                (folder / f"{stem}.lab").write_text(text + "\n", encoding="utf-8")
                turns[str(t)] = {"index": t, "duration": round(dur, 3), "speaker": t % 2, "text": text, "sample_rate": nsr}
                total += dur
                n_ncssd += 1
            (folder / "metadata.json").write_text(json.dumps({"dialog": d, "utterents": turns}, indent=1), encoding="utf-8")
    la = root / "asvspoof2019_la" if asvspoof2019_la_utterances else None
    n_la = _write_asvspoof2019_la(la, rng, asvspoof2019_la_utterances, min_duration_s, max_duration_s) if la else 0
    itw = root / "in_the_wild" if in_the_wild_utterances else None
    n_itw = _write_in_the_wild(itw, rng, in_the_wild_utterances, min_duration_s, max_duration_s) if itw else 0
    return DemoCorpus(
        root=root,
        ncssd_dir=ncssd,
        n_ncssd=n_ncssd,
        asvspoof2019_la_dir=la,
        n_asvspoof2019_la=n_la,
        in_the_wild_dir=itw,
        n_in_the_wild=n_itw,
        vctk_dir=vctk,
        aishell3_dir=ai,
        n_vctk=vctk_speakers * utterances_per_speaker,
        n_aishell3=aishell3_speakers * utterances_per_speaker,
        duration_s=total,
        corrupt_files=tuple(broken),
    )


LA_PROTOCOLS = {"train": "ASVspoof2019.LA.cm.train.trn.txt", "dev": "ASVspoof2019.LA.cm.dev.trl.txt",
                "eval": "ASVspoof2019.LA.cm.eval.trl.txt"}
LA_PREFIX = {"train": "LA_T", "dev": "LA_D", "eval": "LA_E"}


def _write_asvspoof2019_la(root: Path, rng: np.random.Generator, n: int, min_s: float, max_s: float) -> int:
    """An ASVspoof 2019 LA tree: eval = ``n`` bona fide + ``n`` spoofs, train and dev one of each.
    Returns the number of eval files. Speakers LA_9xxx (not real LA speaker ids)."""
    sr = 16000
    la = root / "LA"
    speakers = _speakers(rng, "LA_9", 1, 2)
    number = 1000000
    for part, count in (("train", 1), ("dev", 1), ("eval", n)):
        lines = []
        for k in range(2 * count):
            spk = speakers[k % 2]
            spoof = k % 2 == 1
            number += int(rng.integers(1, 5000))
            utt = f"{LA_PREFIX[part]}_{number}"
            dur = float(rng.uniform(min_s, max_s))
            make = synth_spoof if spoof else synth_utterance
            write_audio(la / f"ASVspoof2019_LA_{part}" / "flac" / f"{utt}.flac",
                        make(rng, sr, dur, spk.f0, spk.formant_scale), sr, "FLAC")
            attack = f"A{7 + k // 2 % 13:02d}" if spoof else "-"
            lines.append(f"{spk.speaker} {utt} - {attack} {'spoof' if spoof else 'bonafide'}")
        proto = la / "ASVspoof2019_LA_cm_protocols" / LA_PROTOCOLS[part]
        proto.parent.mkdir(parents=True, exist_ok=True)
        proto.write_text("".join(f"{ln}\n" for ln in lines), encoding="utf-8")
    return 2 * n


def _write_in_the_wild(root: Path, rng: np.random.Generator, n: int, min_s: float, max_s: float) -> int:
    """An In-the-Wild tree: ``n`` bona fide + ``n`` spoofed ``<k>.wav`` files and ``meta.csv``."""
    sr = 16000
    data = root / "release_in_the_wild"
    speakers = _speakers(rng, "itw", 0, 2)
    names = {speakers[0].speaker: "Demo Person A", speakers[1].speaker: "Demo Person B"}
    lines = ["file,speaker,label"]
    for k in range(2 * n):
        spk = speakers[k // 2 % 2]
        spoof = k % 2 == 1
        dur = float(rng.uniform(min_s, max_s))
        make = synth_spoof if spoof else synth_utterance
        write_audio(data / f"{k}.wav", make(rng, sr, dur, spk.f0, spk.formant_scale), sr, "WAV")
        lines.append(f"{k}.wav,{names[spk.speaker]},{'spoof' if spoof else 'bona-fide'}")
    (data / "meta.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 2 * n


def ingest_demo_corpus(
    demo: DemoCorpus, manifest_dir: str | os.PathLike, num_jobs: int = 1
) -> dict[str, tuple[Path, pd.DataFrame]]:
    """Read the demo's corpora with the real readers and write ``<corpus>.parquet`` source
    manifests (root = each corpus folder) into ``manifest_dir``: ``vctk``, ``aishell3``, and
    ``ncssd``, ``asvspoof2019_la`` (the eval partition only, as the study reads it) and
    ``in_the_wild`` when the demo has them.

    Returns ``{corpus: (path, frame)}``; the frames keep their ``attrs["warnings"]`` for
    :func:`pipeline.corpora.summarize`.
    """
    from functools import partial

    from manifests import write_manifest
    from pipeline.corpora import prepare_aishell3, prepare_asvspoof2019_la, prepare_in_the_wild, prepare_ncssd, prepare_vctk

    out: dict[str, tuple[Path, pd.DataFrame]] = {}
    corpora = [("vctk", prepare_vctk, demo.vctk_dir), ("aishell3", prepare_aishell3, demo.aishell3_dir),
               ("ncssd", prepare_ncssd, demo.ncssd_dir),
               ("asvspoof2019_la", partial(prepare_asvspoof2019_la, splits=("eval",)), demo.asvspoof2019_la_dir),
               ("in_the_wild", prepare_in_the_wild, demo.in_the_wild_dir)]
    for name, reader, corpus_dir in corpora:
        if corpus_dir is None:
            continue
        df = reader(corpus_dir, num_jobs=num_jobs)
        path = write_manifest(df, Path(manifest_dir) / f"{name}.parquet", root=corpus_dir)
        out[name] = (path, df)
    return out


def make_alm_standin(
    out_dir: str | os.PathLike,
    *,
    label: str = "moshi-standin",
    variant: str = "mimi_24k_8q",
    weights: str = "random:0",
    n: int = 4,
    seed: int = 1,
    min_duration_s: float = 1.0,
    max_duration_s: float = 1.8,
) -> Path:
    """A labelled folder standing in for an audio-language-model output set (Table 6).

    Real ALM outputs (Moshi, Mini-omni, SpeechGPT-Gen, VALL-E) cannot be made here, so the demo
    passes ``n`` new synthetic utterances through the ALM's codec back end (Moshi speaks through
    Mimi) and labels them ``label``, a name that says it is a stand-in. Written as
    ``out_dir/*.wav`` + ``labels.csv`` (file,label,speaker) for ``prepare_labelled_folder``.
    """
    import torch

    from codec_wrappers.registry import load_codec

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    codec = load_codec(variant, weights=weights)
    speaker = _speakers(rng, "alm", 0, 1)[0]
    lines = ["file,label,speaker"]
    for i in range(n):
        dur = float(rng.uniform(min_duration_s, max_duration_s))
        x = torch.from_numpy(synth_utterance(rng, codec.sample_rate, dur, speaker.f0, speaker.formant_scale))
        with torch.inference_mode():
            y = codec.resynthesize(x.view(1, 1, -1), torch.tensor([x.numel()]))[0, 0].numpy()
        name = f"{label}_{i:03d}.wav"
        write_audio(out / name, y, codec.sample_rate, "WAV")
        lines.append(f"{name},{label},{speaker.speaker}")
    (out / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
