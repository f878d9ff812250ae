"""The protocol builder: source and fake manifests -> the study's subsets (ST-Codecfake layout).

Real utterances of the main sources (e.g. VCTK + AISHELL-3) are split, seeded and without
overlap, into train / dev / eval; every fake row inherits the split of its source utterance
(``source_utt_id``), and a fake whose source is in no split is left out. The subsets::

    train, dev, eval_id   reals of the split + fakes of the ID variants (ST labels 0..6)
    eval_unseen           fakes of the ID variants named by ``holdout`` (variant ids or codec
                          names), made from the robustness split's reals, no reals: "unseen
                          codecs" for the taxonomy model. Their rows leave train, dev and eval_id
                          (rows made from other splits are left out, and counted so)
    eval_ood              fakes of the OOD variants (7..11) made from the eval reals, no reals:
                          as in ST-Codecfake (13228 x 5 = 66140 rows); OOD detection compares
                          eval_id (ID, positive) against these rows, so reals are not repeated here
    diff_config           other configurations of ID codecs (C3-x: FunCodec, label 3; C4-x:
                          EnCodec, label 4), made from the eval reals
    ood_config            other configurations of OOD codecs (WavTokenizer 40 tokens/s, label 7)
    diff_source           fakes made from another corpus (NCSSD through Mimi, SNAC, WavTokenizer)
    unseen_real           bona fide rows of other corpora (ASVspoof 2019 LA eval, In-the-Wild, NCSSD);
                          spoofed rows of those corpora are not taken here
    ood_other             "OOD other fake type" (paper Table 5): the spoofed rows of other corpora
                          (ASVspoof 2019 LA eval 63882, In-the-Wild 11816), bona fide rows not
                          taken; every row is_fake True, label -1, label_name the attack (A07..A19,
                          In-the-Wild "unknown"), condition = the entry's condition, else the
                          rows' corpus (asvspoof2019_la, in_the_wild). The study scores these
                          against eval_id as OOD, like eval_ood. A spoofed row with an ST label
                          (a codec fake) is an error: those belong to eval_ood / diff_config.
    alm                   externally labelled sets (audio language model outputs), all ok rows

One source manifest may feed both unseen_real and ood_other (bona fide rows go to one, spoofs to
the other). ``unseen_real``, ``ood_other`` and ``alm`` entries take ``max_rows`` (a seeded sample;
when the same rows must also feed generation, as NCSSD's do, cap at ingest instead:
``ncst ingest ... --max-rows``). An entry without a single usable row of its kind is an error.

Each subset is written as ``<output_dir>/protocol/subsets/<subset>.parquet`` (manifest kind
``protocol``: the manifest columns plus ``subset`` and ``condition``; ``path`` absolute once read,
stored relative to the file's folder when in the same tree), with ``protocol/README.md`` (card with
the Hugging Face header: one split per subset; layout in :mod:`manifests.layout`),
``protocol/summary.csv`` (rows per subset x label x condition) and ``protocol/protocol.json``
(the configuration and what was left out). Only ``status == ok`` rows are used; ``left_out``
counts the ok rows of each input that no subset took, each row once (a row another subset uses
is not counted; a row cut by an entry's ``max_rows`` is counted there, not as another entry's
wrong kind).

Which variant goes to which subset: the lists of the recipe's ``protocol:`` section when given,
else the codec catalog's ``st_role`` (``id``, ``ood``, ``diff_config``, ``ood_config``) for the
variants found in the fake manifests. Condition names come from the recipe, else the catalog's
``condition``, else the recipe's ``conditions:`` mapping (variants the catalog does not know).

Python entry points: :func:`build_protocol` (what ``ncst protocol recipe.yaml`` calls),
:func:`split_reals`, :class:`ProtocolConfig` and :func:`load_protocol_config`.
"""
from __future__ import annotations

import json
import logging
import os
import re
import zlib
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np
import pandas as pd

from manifests import SUBSETS_DIR, absolute_paths, clear_stale_subsets, read_manifest, write_manifest, write_protocol_card
from manifests.recipe_schema import check_keys
from manifests.schema import arrow_schema

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "eval")
MAIN_SUBSETS = {"train": "train", "dev": "dev", "eval": "eval_id"}
SUBSETS = ("train", "dev", "eval_id", "eval_unseen", "eval_ood", "unseen_real", "diff_config", "diff_source", "ood_config",
           "ood_other", "alm")
ROLES = ("id", "ood", "diff_config", "ood_config")
BALANCE_MODES = ("equal", "proportional")
SHORTFALL_MODES = ("error", "scale")
DEFAULT_FAKE_MANIFEST = Path("dataset") / "manifests" / "fake.parquet"
# The anchor's C3-x / C4-x conditions are FunCodec (3) and EnCodec (4) configurations.
CONDITION_LABELS = ((re.compile(r"^C3-\d+$"), 3), (re.compile(r"^C4-\d+$"), 4))

ManifestRef = Union[str, os.PathLike, pd.DataFrame]


class ProtocolError(ValueError):
    """A protocol that cannot be built; the message names the file, variant or key at fault."""


@dataclass(frozen=True)
class SourceSet:
    """Rows of source manifests used as they are (unseen real, OOD other fake type, ALM).

    ``condition`` "" = the rows' ``corpus``; ``max_rows`` keeps a seeded sample of that many.
    """

    manifests: tuple[ManifestRef, ...]
    condition: str = ""
    max_rows: int | None = None


@dataclass(frozen=True)
class DiffSource:
    """Different-source set: fakes of ``variants`` (id -> condition, "" = ``<corpus>-<codec>``)
    whose source utterance is in ``sources``; taken from ``fakes`` (empty: the protocol's fakes)."""

    sources: tuple[ManifestRef, ...]
    variants: Mapping[str, str]
    fakes: tuple[ManifestRef, ...] = ()
    max_rows: int | None = None  # per condition, seeded sample


@dataclass(frozen=True)
class ProtocolConfig:
    """Everything the protocol builder needs (the recipe's ``protocol:`` section, paths resolved).

    Attributes:
        real: main real source manifests, split into train / dev / eval.
        sizes: ``{"train": n, "dev": n, "eval": n}``: counts (ints, over all corpora) or
            fractions (floats in (0, 1], of each corpus's usable rows).
        fakes: fake manifests; empty = ``<output_dir>/dataset/manifests/fake.parquet``.
        seed: the split seed (same seed and inputs, same split).
        speaker_disjoint: no speaker (per corpus) in two splits.
        balance: how counts are shared by corpora: ``equal``, ``proportional`` (to usable
            rows) or ``{corpus: share}``.
        shortfall: counts larger than a corpus holds: ``error`` or ``scale`` (take fewer).
        id_variants / ood_variants: variant ids; None = catalog ``st_role`` id / ood.
        diff_config / ood_config: ``{variant: condition}`` ("" = the catalog's condition);
            None = catalog ``st_role``.
        robustness_split: split whose reals' fakes make eval_ood, diff_config and ood_config.
        conditions: condition names of variants the catalog does not know.
        unseen_real / ood_other / alm: :class:`SourceSet` entries (bona fide rows, spoofed
            rows, all rows); diff_source: a :class:`DiffSource`.
        holdout: ID variant ids or codec names (case-insensitive) held out of train / dev /
            eval_id; their fakes of the robustness split form ``eval_unseen``.
    """

    real: tuple[ManifestRef, ...]
    sizes: Mapping[str, float] = field(default_factory=lambda: {"train": 0.8, "dev": 0.05, "eval": 0.15})
    fakes: tuple[ManifestRef, ...] = ()
    seed: int = 688
    speaker_disjoint: bool = False
    balance: str | Mapping[str, float] = "equal"
    shortfall: str = "error"
    id_variants: tuple[str, ...] | None = None
    ood_variants: tuple[str, ...] | None = None
    diff_config: Mapping[str, str] | None = None
    ood_config: Mapping[str, str] | None = None
    robustness_split: str = "eval"
    conditions: Mapping[str, str] = field(default_factory=dict)
    unseen_real: tuple[SourceSet, ...] = ()
    diff_source: DiffSource | None = None
    alm: tuple[SourceSet, ...] = ()
    ood_other: tuple[SourceSet, ...] = ()
    holdout: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.real:
            raise ValueError("real: at least one real source manifest is needed")
        if set(self.sizes) != set(SPLITS):
            raise ValueError(f"sizes: need exactly {list(SPLITS)}, got {sorted(self.sizes)}")
        values = list(self.sizes.values())
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 for v in values):
            raise ValueError(f"sizes: counts (integers) or fractions (0..1), got {dict(self.sizes)}")
        if self.uses_fractions:
            if sum(values) > 1 + 1e-9:
                raise ValueError(f"sizes: fractions add up to {sum(values):g} > 1")
        elif not all(float(v).is_integer() for v in values):
            raise ValueError(f"sizes: mix counts (integers) and fractions, got {dict(self.sizes)}")
        if isinstance(self.balance, str):
            if self.balance not in BALANCE_MODES:
                raise ValueError(f"balance must be one of {BALANCE_MODES} or a {{corpus: share}} mapping, got {self.balance!r}")
        elif not self.balance or any(float(v) < 0 for v in self.balance.values()) or sum(map(float, self.balance.values())) <= 0:
            raise ValueError(f"balance: shares must be >= 0 with a positive sum, got {dict(self.balance)}")
        if self.shortfall not in SHORTFALL_MODES:
            raise ValueError(f"shortfall must be one of {SHORTFALL_MODES}, got {self.shortfall!r}")
        if self.robustness_split not in SPLITS:
            raise ValueError(f"robustness_split must be one of {SPLITS}, got {self.robustness_split!r}")

    @property
    def uses_fractions(self) -> bool:
        """True when ``sizes`` are fractions: any float below 1, or all floats."""
        values = list(self.sizes.values())
        return any(isinstance(v, float) for v in values) and all(v <= 1 for v in values)


# ----------------------------------------------------------------------------- reading


def _label(ref: ManifestRef) -> str:
    if isinstance(ref, pd.DataFrame):
        return str(ref.attrs.get("path", "<frame>"))
    return str(ref)


def _read(ref: ManifestRef, what: str) -> pd.DataFrame:
    """One manifest with ``_file`` (its name for messages) and ``path`` made absolute."""
    where = _label(ref)
    if isinstance(ref, pd.DataFrame):
        df = ref.copy()
        df.attrs = dict(ref.attrs)
    else:
        try:
            df = read_manifest(ref)
        except FileNotFoundError:
            raise ProtocolError(f"{what}: manifest not found: {ref}") from None
        except Exception as exc:  # noqa: BLE001 - re-raised with the file named
            raise ProtocolError(f"{what}: cannot read manifest {ref} ({exc})") from None
    missing = [c for c in ("utt_id", "source_utt_id", "status", "path", "label", "is_fake", "corpus") if c not in df.columns]
    if missing:
        raise ProtocolError(f"{where}: not a manifest usable as {what} (missing columns {missing})")
    root = df.attrs.get("root")
    if len(df):
        df["path"] = [os.path.abspath(p) for p in absolute_paths(df, root)]
    df["_file"] = where
    return df


def _read_all(refs: Sequence[ManifestRef], what: str) -> tuple[pd.DataFrame, dict[str, int]]:
    """The ``status == ok`` rows of ``refs`` concatenated; duplicate utt_ids are an error."""
    frames, failed = [], {}
    for ref in refs:
        df = _read(ref, what)
        ok = df["status"] == "ok"
        failed[_label(ref)] = int((~ok).sum())
        frames.append(df[ok])
    if not frames:
        return pd.DataFrame(columns=[*arrow_schema("source").names, "_file"]), failed
    out = pd.concat(frames, ignore_index=True)
    dup = out["utt_id"].duplicated(keep=False)
    if dup.any():
        first = out.loc[dup, "utt_id"].iloc[0]
        files = sorted(set(out.loc[out["utt_id"] == first, "_file"]))
        raise ProtocolError(f"{what}: utterance {first!r} appears more than once (in {', '.join(files)}); "
                            f"{int(dup.sum())} duplicate rows in all")
    return out, failed


# ----------------------------------------------------------------------------- splitting


def _rng(seed: int, corpus: str) -> np.random.Generator:
    """A generator per (seed, corpus), so adding a corpus does not move another corpus's split."""
    return np.random.default_rng([int(seed), zlib.crc32(corpus.encode())])


def _largest_remainder(total: int, weights: Mapping[str, float]) -> dict[str, int]:
    keys = sorted(weights)
    w = np.array([float(weights[k]) for k in keys])
    exact = total * w / w.sum()
    base = np.floor(exact).astype(int)
    order = np.argsort(-(exact - base), kind="stable")
    for i in order[: total - base.sum()]:
        base[i] += 1
    return dict(zip(keys, base.tolist()))


def _targets(cfg: ProtocolConfig, available: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """Rows wanted per corpus and split: ``{corpus: {split: n}}``."""
    corpora = sorted(available)
    if cfg.uses_fractions:
        return {c: {s: int(np.floor(float(cfg.sizes[s]) * available[c])) for s in SPLITS} for c in corpora}
    if isinstance(cfg.balance, Mapping):
        unknown = sorted(set(cfg.balance) - set(corpora))
        missing = sorted(set(corpora) - set(cfg.balance))
        if unknown or missing:
            raise ProtocolError(f"protocol.balance: corpora {unknown} have no real rows; corpora {missing} "
                                f"have no share (real sources hold {corpora})")
        weights = {c: float(cfg.balance[c]) for c in corpora}
    elif cfg.balance == "equal":
        weights = {c: 1.0 for c in corpora}
    else:
        weights = {c: float(available[c]) for c in corpora}
    # Each corpus's total first, then its splits, the last split taking what is left: row and
    # column sums both come out exact (rounding each split alone can overshoot a full corpus).
    totals = _largest_remainder(sum(int(v) for v in cfg.sizes.values()), weights)
    per_split = {s: _largest_remainder(int(cfg.sizes[s]), weights) for s in SPLITS[:-1]}
    targets = {c: {s: per_split[s][c] for s in SPLITS[:-1]} for c in corpora}
    for c in corpora:
        targets[c][SPLITS[-1]] = max(0, totals[c] - sum(targets[c].values()))
    for c in corpora:
        want = sum(targets[c].values())
        if want > available[c]:
            if cfg.shortfall == "error":
                raise ProtocolError(
                    f"protocol.sizes: corpus {c!r} has {available[c]} usable real utterances but the split "
                    f"needs {want} ({targets[c]}); add data, lower sizes, or set shortfall: scale")
            factor = available[c] / want
            targets[c] = {s: int(np.floor(n * factor)) for s, n in targets[c].items()}
            log.warning("corpus %s: %d utterances for %d wanted; split scaled to %s", c, available[c], want, targets[c])
    return targets


def _split_corpus(rows: pd.DataFrame, want: Mapping[str, int], rng: np.random.Generator,
                  speaker_disjoint: bool, strict: bool) -> dict[str, list[str]]:
    """utt_ids of one corpus per split. Input order does not matter (ids are sorted first)."""
    rows = rows.sort_values("utt_id", kind="stable")
    if not speaker_disjoint:
        ids = rows["utt_id"].to_numpy()[rng.permutation(len(rows))]
        out, start = {}, 0
        for s in SPLITS:
            out[s] = ids[start : start + want[s]].tolist()
            start += want[s]
        return out
    # Whole speakers go to one split, in a seeded order; the last speaker of a split gives only
    # the utterances still needed (its others are not used anywhere).
    speakers = np.array(sorted(rows["speaker"].unique()))
    speakers = speakers[rng.permutation(len(speakers))]
    by_spk = {spk: ids.to_numpy()[rng.permutation(len(ids))] for spk, ids in rows.groupby("speaker")["utt_id"]}
    out = {s: [] for s in SPLITS}
    queue = list(speakers)
    for s in sorted(SPLITS, key=lambda s: want[s]):  # small splits first: less waste at the end
        while len(out[s]) < want[s] and queue:
            ids = by_spk[queue.pop(0)]
            out[s].extend(ids[: want[s] - len(out[s])].tolist())
        if len(out[s]) < want[s] and strict:
            corpus = rows["corpus"].iloc[0]
            raise ProtocolError(f"protocol.sizes: corpus {corpus!r} runs out of speakers for a speaker-disjoint "
                                f"{s} split of {want[s]} utterances (got {len(out[s])}); lower sizes or set shortfall: scale")
    return out


def split_reals(reals: pd.DataFrame, cfg: ProtocolConfig) -> pd.Series:
    """The split of each real utterance: Series ``utt_id -> train|dev|eval`` (unused ones absent).

    ``reals``: ok, real rows (columns utt_id, corpus, speaker). Deterministic for a seed.
    """
    available = reals.groupby("corpus").size().to_dict()
    if not available:
        raise ProtocolError("protocol.real: the real source manifests hold no usable (ok, bona fide) rows")
    if cfg.speaker_disjoint:
        blank = reals["speaker"].fillna("") == ""
        if blank.any():
            files = sorted(set(reals.loc[blank, "_file"])) if "_file" in reals else ["<frame>"]
            raise ProtocolError(f"protocol.speaker_disjoint: {int(blank.sum())} real rows have no speaker (in {', '.join(files)})")
    targets = _targets(cfg, available)
    strict = cfg.shortfall == "error" and not cfg.uses_fractions
    parts = {}
    for corpus in sorted(available):
        rows = reals[reals["corpus"] == corpus]
        got = _split_corpus(rows, targets[corpus], _rng(cfg.seed, corpus), cfg.speaker_disjoint, strict)
        for s, ids in got.items():
            parts.update(dict.fromkeys(ids, s))
    return pd.Series(parts, name="split", dtype=object)


# ----------------------------------------------------------------------------- variant roles


def _catalog() -> dict:
    try:
        from codec_wrappers.catalog import load_catalog

        return load_catalog()
    except Exception as exc:  # noqa: BLE001 - the recipe can still name every variant
        log.warning("codec catalog not available (%s); variant roles come from the recipe only", exc)
        return {}


@dataclass(frozen=True)
class _Role:
    subset_role: str  # id | ood | diff_config | ood_config
    condition: str
    requested: bool  # named in the recipe (so missing rows are an error)


def _roles(cfg: ProtocolConfig, present: Sequence[str], catalog: Mapping[str, Any]) -> dict[str, _Role]:
    """variant id -> its role; recipe lists first, then the catalog for variants in the fakes."""
    roles: dict[str, _Role] = {}

    def cond_of(vid: str, given: str = "") -> str:
        if given:
            return given
        v = catalog.get(vid)
        if v is not None and v.condition:
            return v.condition
        return str(cfg.conditions.get(vid, ""))

    explicit = {
        "id": {v: "" for v in cfg.id_variants} if cfg.id_variants is not None else None,
        "ood": {v: "" for v in cfg.ood_variants} if cfg.ood_variants is not None else None,
        "diff_config": dict(cfg.diff_config) if cfg.diff_config is not None else None,
        "ood_config": dict(cfg.ood_config) if cfg.ood_config is not None else None,
    }
    for role, listed in explicit.items():
        for vid, cond in (listed or {}).items():
            if vid in roles:
                raise ProtocolError(f"protocol: variant {vid!r} is listed for both {roles[vid].subset_role} and {role}")
            roles[vid] = _Role(role, cond_of(vid, cond or ""), True)
    for vid in present:
        if vid in roles:
            continue
        v = catalog.get(vid)
        if v is None or v.st_role not in explicit or explicit[v.st_role] is not None:
            continue  # unknown to the catalog, an extra, or its role's list is given explicitly
        roles[vid] = _Role(v.st_role, cond_of(vid), False)
    return roles


def _check_labels(rows: pd.DataFrame, vid: str, condition: str, catalog: Mapping[str, Any]) -> None:
    """Labels of a variant's rows must be one value, agree with the catalog and the C3/C4 rule."""
    labels = sorted(set(int(x) for x in rows["label"]))
    files = ", ".join(sorted(set(rows["_file"])))
    if len(labels) != 1:
        raise ProtocolError(f"variant {vid!r}: rows carry several labels {labels} (in {files})")
    label = labels[0]
    v = catalog.get(vid)
    if v is not None and v.st_label is not None and label != int(v.st_label):
        raise ProtocolError(f"variant {vid!r}: rows have label {label} but the catalog says {v.st_label} (in {files})")
    for pattern, want in CONDITION_LABELS:
        if pattern.match(condition) and label != want:
            raise ProtocolError(f"variant {vid!r} (condition {condition}): rows have label {label}, but {condition[:2]}-x "
                                f"conditions are configurations of ST class {want} (in {files})")


# ----------------------------------------------------------------------------- building


def _sample(df: pd.DataFrame, n: int | None, seed: int, key: str) -> pd.DataFrame:
    if n is None or len(df) <= n:
        return df
    df = df.sort_values("utt_id", kind="stable")
    idx = _rng(seed, key).choice(len(df), size=n, replace=False)
    return df.iloc[np.sort(idx)]


def _finish(df: pd.DataFrame, subset: str, condition: pd.Series | str) -> pd.DataFrame:
    out = df.copy()
    out["subset"] = subset
    out["condition"] = condition
    out["condition"] = out["condition"].fillna("").astype(str)
    return out


def _empty_protocol() -> pd.DataFrame:
    return pd.DataFrame({n: pd.Series([], dtype=object) for n in [*arrow_schema("protocol").names, "_file"]})


def _assemble(cfg: ProtocolConfig, output_dir: Path) -> tuple[dict[str, pd.DataFrame], dict]:
    """The subsets in memory (with a ``_file`` helper column) and a report of what was left out."""
    report: dict[str, Any] = {"failed_rows_dropped": {}, "left_out": {}}
    reals, failed = _read_all(cfg.real, "protocol.real")
    report["failed_rows_dropped"].update(failed)
    spoof = reals["is_fake"].astype(bool) | (reals["label"] != 0)
    if spoof.any():
        report["left_out"]["spoofed rows in protocol.real"] = int(spoof.sum())
        reals = reals[~spoof]
    split = split_reals(reals, cfg)
    reals = reals.assign(_split=reals["utt_id"].map(split))
    report["left_out"]["real rows in no split"] = int(reals["_split"].isna().sum())

    fake_refs = cfg.fakes or (output_dir / DEFAULT_FAKE_MANIFEST,)
    fakes, failed = _read_all(fake_refs, "protocol.fakes")
    report["failed_rows_dropped"].update(failed)
    fakes = fakes[fakes["is_fake"].astype(bool)]
    pair = fakes.duplicated(["source_utt_id", "variant"], keep=False)
    if pair.any():
        r = fakes[pair].iloc[0]
        raise ProtocolError(f"protocol.fakes: source {r['source_utt_id']!r} x variant {r['variant']!r} has more than "
                            f"one row (in {', '.join(sorted(set(fakes.loc[pair, '_file'])))})")
    fakes = fakes.assign(_split=fakes["source_utt_id"].map(split))
    fake_files = ", ".join(_label(r) for r in fake_refs)

    catalog = _catalog()
    roles = _roles(cfg, sorted(fakes["variant"].unique()), catalog)
    out: dict[str, pd.DataFrame] = {}
    unused = fakes[~fakes["variant"].isin(list(roles))]
    for vid, n in unused.groupby("variant").size().items():
        report["left_out"][f"{vid} rows (variant in no main/robustness subset)"] = int(n)
    wanted_split = {"id": None, "ood": cfg.robustness_split, "diff_config": cfg.robustness_split, "ood_config": cfg.robustness_split}
    by_variant = dict(tuple(fakes.groupby("variant", sort=True)))
    picked: dict[str, list[pd.DataFrame]] = {r: [] for r in ROLES}
    for vid, role in sorted(roles.items()):
        rows = by_variant.get(vid)
        if rows is None or not len(rows):
            if role.requested:
                raise ProtocolError(f"protocol: variant {vid!r} ({role.subset_role}) has no ok rows in {fake_files}"
                                    f"{' (all its rows failed)' if vid in set(_failed_variants(fake_refs)) else ''}")
            continue
        _check_labels(rows, vid, role.condition, catalog)
        if role.subset_role == "id" and int(rows["label"].iloc[0]) < 0:
            raise ProtocolError(f"variant {vid!r}: an ID variant needs an ST label, its rows have -1 (in {fake_files})")
        want = wanted_split[role.subset_role]
        keep = rows["_split"].notna() if want is None else rows["_split"] == want
        if not keep.any():
            raise ProtocolError(f"protocol: variant {vid!r} ({role.subset_role}) has {len(rows)} ok rows in {fake_files} "
                                f"but none made from a {'split' if want is None else want} real utterance of protocol.real")
        report["left_out"][f"{vid} rows outside {want or 'the splits'}"] = int((~keep).sum())
        picked[role.subset_role].append(rows[keep].assign(_condition=role.condition))

    def cat(frames: list[pd.DataFrame]) -> pd.DataFrame:
        frames = [f for f in frames if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else _empty_protocol().assign(_split=None, _condition="")

    id_fakes = cat(picked["id"])
    if cfg.holdout:
        names = {h.lower() for h in cfg.holdout}
        held = id_fakes["variant"].str.lower().isin(names) | id_fakes["codec"].fillna("").str.lower().isin(names)
        matched = set(id_fakes.loc[held, "variant"].str.lower()) | set(id_fakes.loc[held, "codec"].fillna("").str.lower())
        unmatched = sorted(h for h in cfg.holdout if h.lower() not in matched)
        if unmatched:
            raise ProtocolError(f"protocol.holdout: {unmatched} name no ID variant or codec of the fakes "
                                f"(ID variants: {sorted(set(id_fakes['variant']))}, in {fake_files})")
        unseen = id_fakes[held & (id_fakes["_split"] == cfg.robustness_split)]
        if not len(unseen):
            raise ProtocolError(f"protocol.holdout: the held-out variants have no rows made from a {cfg.robustness_split} "
                                f"real utterance in {fake_files}")
        for vid, n in id_fakes[held & (id_fakes["_split"] != cfg.robustness_split)].groupby("variant").size().items():
            report["left_out"][f"{vid} rows (held out) outside {cfg.robustness_split}"] = int(n)
        out["eval_unseen"] = _finish(unseen, "eval_unseen", unseen["variant"])
        id_fakes = id_fakes[~held]
    for s, name in MAIN_SUBSETS.items():
        part = pd.concat([reals[reals["_split"] == s], id_fakes[id_fakes["_split"] == s]], ignore_index=True)
        out[name] = _finish(part, name, part["label_name"])
    for role, name in (("ood", "eval_ood"), ("diff_config", "diff_config"), ("ood_config", "ood_config")):
        part = cat(picked[role])
        if len(part):
            cond = part["_condition"].where(part["_condition"] != "", part["label_name"]) if role == "ood" else \
                part["_condition"].where(part["_condition"] != "", part["variant"])
            out[name] = _finish(part, name, cond)

    main_ids = set(reals["utt_id"])
    # ok rows of an entry that it does not take: counted as left out only if no subset takes them
    # (one manifest may feed unseen_real with its bona fide rows and ood_other with its spoofs).
    not_taken: dict[str, set[str]] = {}

    def source_set(entry: SourceSet, i: int, subset: str, want_fake: bool | None) -> pd.DataFrame:
        where = f"protocol.{subset}[{i}]"
        rows, failed = _read_all(entry.manifests, where)
        report["failed_rows_dropped"].update(failed)
        files = ", ".join(_label(r) for r in entry.manifests)
        if want_fake is not None:
            fake = rows["is_fake"].astype(bool) | (rows["label"] != 0)
            keep = fake if want_fake else ~fake
            other = "bona fide" if want_fake else "spoofed"
            not_taken[f"{subset}[{i}] {other} rows"] = set(rows.loc[~keep, "utt_id"])
            rows = rows[keep]
        if not len(rows):
            kind = {True: "spoofed ", False: "bona fide ", None: ""}[want_fake]
            raise ProtocolError(f"{where}: no ok {kind}rows in {files}")
        clash = rows["utt_id"].isin(main_ids)
        if clash.any():
            raise ProtocolError(f"{where}: {int(clash.sum())} utterances (e.g. {rows.loc[clash, 'utt_id'].iloc[0]!r}) "
                                f"are also in protocol.real ({', '.join(sorted(set(rows['_file'])))}): {subset} must hold unseen audio")
        if subset == "ood_other":
            labelled = rows["label"].astype(int) >= 0
            if labelled.any():
                r = rows[labelled].iloc[0]
                raise ProtocolError(f"{where}: {int(labelled.sum())} spoofed rows carry an ST label (e.g. {r['utt_id']!r}, "
                                    f"label {int(r['label'])}, in {r['_file']}); ood_other is for fakes of other types "
                                    "(label -1): codec fakes belong in eval_ood or diff_config")
        sampled = _sample(rows, entry.max_rows, cfg.seed, f"{subset}[{i}]")
        not_taken[f"{subset}[{i}] rows over max_rows"] = set(rows["utt_id"]) - set(sampled["utt_id"])
        return _finish(sampled, subset, entry.condition or sampled["corpus"])

    for subset, entries, want_fake in (("unseen_real", cfg.unseen_real, False), ("ood_other", cfg.ood_other, True),
                                       ("alm", cfg.alm, None)):
        if entries:
            out[subset] = pd.concat([source_set(e, i, subset, want_fake) for i, e in enumerate(entries)],
                                    ignore_index=True)

    if cfg.diff_source is not None:
        ds = cfg.diff_source
        src, failed = _read_all(ds.sources, "protocol.diff_source.sources")
        report["failed_rows_dropped"].update(failed)
        clash = src["utt_id"].isin(main_ids)
        if clash.any():
            raise ProtocolError(f"protocol.diff_source.sources: {int(clash.sum())} utterances are also in protocol.real: "
                                "a different source must be a different corpus")
        ds_fakes = fakes if not ds.fakes else _read_all(ds.fakes, "protocol.diff_source.fakes")[0]
        ds_files = fake_files if not ds.fakes else ", ".join(_label(r) for r in ds.fakes)
        src_ids = set(src["utt_id"])
        frames = []
        for vid, cond in sorted(ds.variants.items()):
            rows = ds_fakes[(ds_fakes["variant"] == vid) & ds_fakes["source_utt_id"].isin(src_ids)]
            if not len(rows):
                raise ProtocolError(f"protocol.diff_source: variant {vid!r} has no ok rows made from "
                                    f"{', '.join(_label(r) for r in ds.sources)} in {ds_files}")
            name = cond or f"{rows['corpus'].iloc[0]}-{rows['codec'].iloc[0]}".lower()
            _check_labels(rows, vid, name, catalog)
            rows = _sample(rows, ds.max_rows, cfg.seed, f"diff_source/{name}")
            frames.append(_finish(rows, "diff_source", name))
        out["diff_source"] = pd.concat(frames, ignore_index=True)

    # No utterance may sit in two subsets of the main study (train/dev/eval_* are disjoint by
    # construction; this guards against a variant listed in two roles slipping through).
    seen: dict[str, str] = {}
    for name, df in out.items():
        for uid in df["utt_id"]:
            if uid in seen and seen[uid] != name:
                raise ProtocolError(f"utterance {uid!r} would be in both {seen[uid]} and {name}")
            seen[uid] = name
    # Each row left out is counted once, under its most telling reason: a row an entry could take
    # but its max_rows sample did not beats a row of the wrong kind for another entry.
    counted: set[str] = set()
    for key in sorted(not_taken, key=lambda k: not k.endswith("over max_rows")):
        ids = not_taken[key] - seen.keys()
        report["left_out"][key] = len(ids - counted)
        counted |= ids
    report["left_out"] = {k: v for k, v in report["left_out"].items() if v}
    return out, report


def _failed_variants(refs: Sequence[ManifestRef]) -> list[str]:
    names = []
    for ref in refs:
        try:
            df = _read(ref, "protocol.fakes")
        except ProtocolError:
            continue
        names += df.loc[df["status"] != "ok", "variant"].tolist()
    return names


def summarize_protocol(subsets: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Rows per subset x label x label_name x condition (subsets in study order)."""
    frames = [df[["subset", "label", "label_name", "condition"]] for df in subsets.values() if len(df)]
    if not frames:
        return pd.DataFrame(columns=["subset", "label", "label_name", "condition", "rows"])
    allrows = pd.concat(frames, ignore_index=True)
    allrows["label"] = allrows["label"].astype(int)
    table = allrows.groupby(["subset", "label", "label_name", "condition"], sort=False).size().reset_index(name="rows")
    order = {s: i for i, s in enumerate(SUBSETS)}
    table["_o"] = table["subset"].map(order).fillna(len(order))
    return table.sort_values(["_o", "label", "condition"], kind="stable").drop(columns="_o").reset_index(drop=True)


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, pd.DataFrame):
        return _label(value)
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def build_protocol(recipe_or_config: str | os.PathLike | ProtocolConfig, output_dir: str | os.PathLike | None = None,
                   *, write: bool = True) -> dict[str, pd.DataFrame]:
    """Build the protocol subsets and write them under ``<output_dir>/protocol/``.

    Args:
        recipe_or_config: a recipe YAML (its ``protocol:`` section is read; relative paths are
            taken from the recipe's folder) or a :class:`ProtocolConfig`.
        output_dir: where ``protocol/`` is written; default the recipe's ``output_dir`` (needed with
            a config). Inputs are still read where the recipe says (the default fake manifest under
            the recipe's ``output_dir``), so ``-o`` moves outputs only.
        write: False builds in memory only.
    Returns:
        ``{subset: frame}`` in study order, each frame with the protocol manifest columns.
        ``train``, ``dev`` and ``eval_id`` are always present; other subsets when configured.
    """
    cfg, output_dir = _config_and_output(recipe_or_config, output_dir, "build_protocol")
    # Inputs (the default fake manifest) stay where the recipe puts them; only outputs follow -o.
    inputs_dir = output_dir if isinstance(recipe_or_config, ProtocolConfig) else load_protocol_config(recipe_or_config)[1]
    built, report = _assemble(cfg, inputs_dir)
    names = arrow_schema("protocol").names
    subsets = {}
    for name in SUBSETS:
        if name not in built:
            continue
        df = built[name].sort_values(["condition", "label", "utt_id"], kind="stable")
        subsets[name] = df[names].reset_index(drop=True)
    if write:
        pdir = output_dir / "protocol"
        pdir.mkdir(parents=True, exist_ok=True)
        clear_stale_subsets(pdir, list(subsets))
        for name, df in subsets.items():
            write_manifest(df, pdir / SUBSETS_DIR / f"{name}.parquet", kind="protocol")
        write_protocol_card(subsets, pdir)
        summary = summarize_protocol(subsets)
        summary.to_csv(pdir / "summary.csv", index=False)
        info = {"config": _jsonable(cfg), "rows": {k: len(v) for k, v in subsets.items()}, **report}
        (pdir / "protocol.json").write_text(json.dumps(info, indent=2, default=str), encoding="utf-8")
    return subsets


def _config_and_output(recipe_or_config, output_dir, caller: str) -> tuple[ProtocolConfig, Path]:
    """A recipe path or a config, and the output folder (the recipe's ``output_dir`` by default)."""
    if isinstance(recipe_or_config, ProtocolConfig):
        if output_dir is None:
            raise ProtocolError(f"{caller}: output_dir is needed when a ProtocolConfig is given")
        return recipe_or_config, Path(output_dir).resolve()
    cfg, recipe_out = load_protocol_config(recipe_or_config)
    return cfg, Path(recipe_out if output_dir is None else output_dir).resolve()


def write_split_sources(recipe_or_config: str | os.PathLike | ProtocolConfig,
                        output_dir: str | os.PathLike | None = None) -> dict[str, Path]:
    """Write the real rows of each split as source manifests ``<output_dir>/protocol/sources/<split>.parquet``.

    Needs no fakes: run it before generation to resynthesise only the reals a subset uses (e.g.
    the OOD codecs only over ``eval.parquet``). Each written manifest's root is the deepest folder
    that holds all of its inputs' audio and its paths are relative to it, so generation's
    outside-the-root check still guards these derived manifests.
    """
    cfg, output_dir = _config_and_output(recipe_or_config, output_dir, "write_split_sources")
    reals, _ = _read_all(cfg.real, "protocol.real")
    reals = reals[~reals["is_fake"].astype(bool) & (reals["label"] == 0)]
    split = split_reals(reals, cfg)
    root = os.path.commonpath([os.path.dirname(p) for p in reals["path"]]) if len(reals) else None
    out = {}
    for s in SPLITS:
        rows = reals[reals["utt_id"].map(split) == s].sort_values("utt_id").copy()
        if root is not None:
            rows["path"] = [os.path.relpath(p, root) for p in rows["path"]]
        out[s] = write_manifest(rows[arrow_schema("source").names], Path(output_dir) / "protocol" / "sources" / f"{s}.parquet",
                                root=root)
    return out


# ----------------------------------------------------------------------------- recipe


# Allowed keys (checked with JSON Schema by manifests.recipe_schema): a new key is one more name here.
PROTOCOL_KEYS = {
    "real", "sizes", "fakes", "seed", "speaker_disjoint", "balance", "shortfall", "id_variants", "ood_variants",
    "diff_config", "ood_config", "robustness_split", "conditions", "unseen_real", "diff_source", "alm", "ood_other",
    "holdout",
}
SET_KEYS = {"manifest", "manifests", "condition", "max_rows"}
DIFF_SOURCE_KEYS = {"sources", "variants", "fakes", "max_rows"}


def _paths(base: Path, value: Any, where: str) -> tuple[Path, ...]:
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, os.PathLike)) for v in value):
        raise ProtocolError(f"{where}: a path or a list of paths is needed, got {value!r}")
    out = []
    for v in value:
        p = Path(os.path.expanduser(str(v)))
        out.append((p if p.is_absolute() else base / p).resolve())
    return tuple(out)


def _ids(value: Any, where: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ProtocolError(f"{where}: a list of variant ids is needed, got {value!r}")
    if len(set(value)) != len(value):
        raise ProtocolError(f"{where}: variants listed more than once: {value}")
    return tuple(value)


def _id_map(value: Any, where: str) -> dict[str, str] | None:
    """A list of ids (condition from the catalog) or ``{id: condition}``."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): "" if v is None else str(v) for k, v in value.items()}
    return {v: "" for v in _ids(value, where)}


def _int_or_none(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProtocolError(f"{where}: a positive integer is needed, got {value!r}")
    return value


def _source_sets(base: Path, value: Any, where: str) -> tuple[SourceSet, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ProtocolError(f"{where}: a list of {{manifest: path, condition: name}} entries is needed")
    out = []
    for i, entry in enumerate(value):
        w = f"{where}[{i}]"
        if isinstance(entry, (str, os.PathLike)):
            entry = {"manifest": entry}
        if not isinstance(entry, Mapping):
            raise ProtocolError(f"{w}: a path or a mapping with 'manifest' is needed, got {entry!r}")
        check_keys(entry, SET_KEYS, w, None, ProtocolError)
        paths = entry.get("manifests", entry.get("manifest"))
        if paths is None:
            raise ProtocolError(f"{w}: 'manifest' is missing")
        out.append(SourceSet(_paths(base, paths, w), str(entry.get("condition") or ""),
                             _int_or_none(entry.get("max_rows"), f"{w}.max_rows")))
    return tuple(out)


def parse_protocol(section: Any, base: Path, where: str = "<recipe>") -> ProtocolConfig:
    """Validate a ``protocol:`` mapping; relative paths are taken from ``base`` (the recipe's folder)."""
    w = f"{where}: protocol"
    if not isinstance(section, Mapping):
        raise ProtocolError(f"{w}: must be a mapping, got {type(section).__name__}")
    check_keys(section, PROTOCOL_KEYS, where, "protocol", ProtocolError)
    if not section.get("real"):
        raise ProtocolError(f"{w}.real: the real source manifests to split are missing")
    kw: dict[str, Any] = {"real": _paths(base, section["real"], f"{w}.real")}
    if section.get("fakes"):
        kw["fakes"] = _paths(base, section["fakes"], f"{w}.fakes")
    if "sizes" in section:
        sizes = section["sizes"]
        if not isinstance(sizes, Mapping):
            raise ProtocolError(f"{w}.sizes: a mapping {{train: n, dev: n, eval: n}} is needed, got {sizes!r}")
        kw["sizes"] = dict(sizes)
    if "seed" in section:
        if isinstance(section["seed"], bool) or not isinstance(section["seed"], int):
            raise ProtocolError(f"{w}.seed: an integer is needed, got {section['seed']!r}")
        kw["seed"] = section["seed"]
    if "speaker_disjoint" in section:
        if not isinstance(section["speaker_disjoint"], bool):
            raise ProtocolError(f"{w}.speaker_disjoint: true or false, got {section['speaker_disjoint']!r}")
        kw["speaker_disjoint"] = section["speaker_disjoint"]
    for key in ("balance", "shortfall", "robustness_split"):
        if key in section:
            kw[key] = dict(section[key]) if isinstance(section[key], Mapping) else section[key]
    kw["id_variants"] = _ids(section.get("id_variants"), f"{w}.id_variants")
    kw["ood_variants"] = _ids(section.get("ood_variants"), f"{w}.ood_variants")
    kw["diff_config"] = _id_map(section.get("diff_config"), f"{w}.diff_config")
    kw["ood_config"] = _id_map(section.get("ood_config"), f"{w}.ood_config")
    kw["holdout"] = _ids(section.get("holdout"), f"{w}.holdout") or ()
    if section.get("conditions") is not None:
        if not isinstance(section["conditions"], Mapping):
            raise ProtocolError(f"{w}.conditions: a mapping {{variant: condition}} is needed")
        kw["conditions"] = {str(k): str(v) for k, v in section["conditions"].items()}
    kw["unseen_real"] = _source_sets(base, section.get("unseen_real"), f"{w}.unseen_real")
    kw["alm"] = _source_sets(base, section.get("alm"), f"{w}.alm")
    kw["ood_other"] = _source_sets(base, section.get("ood_other"), f"{w}.ood_other")
    ds = section.get("diff_source")
    if ds is not None:
        wd = f"{w}.diff_source"
        if not isinstance(ds, Mapping):
            raise ProtocolError(f"{wd}: a mapping with sources and variants is needed")
        check_keys(ds, DIFF_SOURCE_KEYS, where, "protocol.diff_source", ProtocolError)
        if not ds.get("sources") or not ds.get("variants"):
            raise ProtocolError(f"{wd}: both 'sources' and 'variants' are needed")
        kw["diff_source"] = DiffSource(
            sources=_paths(base, ds["sources"], f"{wd}.sources"),
            variants=_id_map(ds["variants"], f"{wd}.variants"),
            fakes=_paths(base, ds["fakes"], f"{wd}.fakes") if ds.get("fakes") else (),
            max_rows=_int_or_none(ds.get("max_rows"), f"{wd}.max_rows"),
        )
    try:
        return ProtocolConfig(**kw)
    except ValueError as exc:
        raise ProtocolError(f"{w}: {exc}") from None


def load_protocol_config(recipe: str | os.PathLike) -> tuple[ProtocolConfig, Path]:
    """The ``protocol:`` section of a recipe YAML and the recipe's output_dir (absolute)."""
    from pipeline.recipe import read_recipe_yaml

    path = Path(recipe)
    data, base, out_path = read_recipe_yaml(path, error=ProtocolError)
    if data.get("protocol") is None:
        raise ProtocolError(f"{path}: no protocol: section")
    return parse_protocol(data["protocol"], base, where=str(path)), out_path
