"""Release readers on tiny replicas of each published layout (0.2 s files, published label formats)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from manifests import read_manifest, validate_manifest
from pipeline.releases import (
    ALM_BACKENDS,
    ReleaseError,
    counts,
    prepare_codecfake,
    prepare_codecfake_plus,
    prepare_st_codecfake,
    write_release_protocol,
)
from pipeline.releases.codecfake_plus import CFP_TAXONOMY, ST_OF_CODEC
from pipeline.releases.common import ST_CODECS

SR = 16000


def wav(path: Path, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(SR // 5)).astype("float32"), SR)


def lines(path: Path, text: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text) + "\n")


ST_PREFIX = {1: "mimi", 2: "speechtokenizer", 3: "funcodec", 4: "encodec", 5: "facodec", 6: "snac",
             7: "wavtokenizer", 8: "academicodec", 9: "dac", 10: "audiodec", 11: "soundstream"}


def make_st(root: Path, *, reals: dict[str, list[str]] | None = None, mini_omni_alt: bool = False) -> Path:
    """ST-Codecfake replica: every real of a set through labels 1..6 (or 7..11 for eval_ood)."""
    reals = reals or {"train": ["p225_001", "SSB00050001", "p226_002", "SSB00060002"],
                      "dev": ["p227_001", "SSB00070001"], "eval_id": ["p228_001", "SSB00080001", "p229_003"]}
    k = 0
    for s, utts in reals.items():
        text = []
        for u in utts:
            wav(root / s / f"{u}.wav", k); k += 1
            text.append(f"{u}.wav - 0")
            for lab in range(1, 7):
                name = f"{ST_PREFIX[lab]}_{u}.wav"
                wav(root / s / name, k); k += 1
                text.append(f"{name} - {lab}")
        lines(root / "label" / f"{s}.txt", text)
    ood = []
    for u in reals["eval_id"]:
        for lab in range(7, 12):
            name = f"{ST_PREFIX[lab]}_{u}.wav"
            wav(root / "eval_ood" / name, k); k += 1
            ood.append((lab, f"{name} - {lab}"))
    lines(root / "label" / "eval_ood7.txt", [t for lab, t in ood if lab == 7])
    lines(root / "label" / "eval_ood8-11.txt", [t for lab, t in ood if lab > 7])
    # Real names of the open-set part (from the result files the ST-Codecfake repo publishes).
    for cond in ("C3-1", "C4-2"):
        wav(root / "ID_diff_config" / cond / f"{cond}_{reals['eval_id'][0]}.wav", k); k += 1
    wav(root / "ID_diff_source" / "NCSSD-mimi" / "mimi_R-ZH_0_0_d2289.wav", k); k += 1
    wav(root / "ID_diff_source" / "NCSSD-snac" / "snac_R-EN_4_0_d161.wav", k); k += 1
    wav(root / "OOD_diff_source" / "NCSSD_wavtokenizer" / "wavtokenizer_R-EN_3_5_d644.wav", k); k += 1
    wav(root / "OOD_diff_config" / "wavtokenizer_small40" / f"wavtokenizer_{reals['eval_id'][0]}.wav", k); k += 1
    alm_names = {"moshi": ["moshi_R-ZH_3_14_d501", "moshi_R-EN_1_5_d644"], "speechgpt-gen": ["gen_2", "response"],
                 "valle": ["valle_p299_134", "valle_p292_403"]}
    for alm, names in alm_names.items():
        for name in names:
            wav(root / "ALM" / alm / f"{name}.wav", k); k += 1
    mo = root / "ALM" / "mini-omni" / ("A1-A2" if mini_omni_alt else "")
    for name in ("miniomni_R-EN_1_5_d644", "miniomni_R-ZH_0_0_d140"):
        wav(mo / f"{name}.wav", k); k += 1
    wav(root / "ID_unseen_real" / "19LA" / "LA_E_0001.wav", k); k += 1
    wav(root / "ID_unseen_real" / "NCSSD" / "R-EN_6_0_d195.wav", k)
    return root


def test_st_codecfake_replica(tmp_path):
    root = make_st(tmp_path / "st")
    # A missing file and an unknown label in the published format.
    with open(root / "label" / "dev.txt", "a") as f:
        f.write("mimi_gone.wav - 1\nsnac_p227_001x.wav - 42\n")
    wav(root / "dev" / "snac_p227_001x.wav", 99)
    df = prepare_st_codecfake(root)
    validate_manifest(df, kind="protocol")
    assert df["path"].map(lambda p: Path(p).is_absolute()).all()
    bad = df[df["status"] == "failed"].set_index("utt_id")["error"]
    assert "dev.txt line 15" in bad["st-dev-mimi_gone"] and "missing" in bad["st-dev-mimi_gone"]
    assert "dev.txt line 16" in bad["st-dev-snac_p227_001x"] and "unknown label '42'" in bad["st-dev-snac_p227_001x"]
    ok = df[df["status"] == "ok"]
    by = ok.groupby("subset").size().to_dict()
    assert by["train"] == 4 * 7 and by["dev"] == 2 * 7 and by["eval_id"] == 3 * 7 and by["eval_ood"] == 3 * 5
    assert by["diff_config"] == 2 and by["diff_source"] == 3 and by["ood_config"] == 1 and by["alm"] == 8
    assert by["unseen_real"] == 2
    row = ok.set_index("utt_id").loc["st-train-mimi_p225_001"]
    assert (row["label"], row["codec"], row["vq"], row["aux"], row["decoder"]) == (1, "Mimi", "MVQ", "semantic", "time")
    assert row["source_utt_id"] == "st-train-p225_001" and row["speaker"] == "p225" and row["language"] == "en"
    assert set(ok.loc[ok["subset"] == "eval_ood", "label"]) == set(range(7, 12))
    dc = ok[ok["subset"] == "diff_config"].set_index("condition")["label"].to_dict()
    assert dc == {"C3-1": 3, "C4-2": 4}
    ds = ok[ok["subset"] == "diff_source"].set_index("condition")["label"].to_dict()
    assert ds == {"NCSSD-mimi": 1, "NCSSD-snac": 6, "NCSSD-wavtokenizer": 7}
    assert ok.loc[ok["subset"] == "ood_config", "variant"].tolist() == ["wavtokenizer_24k_40tps"]
    alm = ok[ok["subset"] == "alm"]
    assert (alm["label"] == -1).all() and alm["is_fake"].all()
    backends = {c: json.loads(e)["backend_label"] for c, e in zip(alm["condition"], alm["extra"])}
    assert backends == ALM_BACKENDS
    warnings = "\n".join(df.attrs["warnings"])
    assert "eval_id: 3 real rows" in warnings and "differs from README" in warnings
    assert "alm mini-omni: read from ALM/mini-omni (README layout, flat)" in warnings
    table = counts(df)
    assert int(table.loc[(table["subset"] == "dev"), "failed"].sum()) == 2


def test_st_codecfake_alternatives_and_protocol_files(tmp_path):
    root = make_st(tmp_path / "st", mini_omni_alt=True)
    df = prepare_st_codecfake(root)
    assert "config.py layout ALM/mini-omni/A1-A2" in "\n".join(df.attrs["warnings"])
    assert (df.loc[df["condition"] == "mini-omni", "status"] == "ok").sum() == 2
    written = write_release_protocol(df, tmp_path / "out")
    pdir = tmp_path / "out" / "protocol"
    for name in ("train", "dev", "eval_id", "eval_ood", "diff_config", "diff_source", "ood_config", "alm", "unseen_real"):
        got = read_manifest(pdir / "subsets" / f"{name}.parquet", validate=True)
        assert got.attrs["kind"] == "protocol" and (got["subset"] == name).all()
    summary = pd.read_csv(pdir / "summary.csv")
    assert list(summary.columns) == ["subset", "label", "label_name", "condition", "rows"]
    assert summary.loc[summary["subset"] == "train", "rows"].sum() == 28
    assert "failed" not in written
    from train.study import load_protocol

    prot = load_protocol(pdir)
    assert set(prot.subsets) >= {"train", "eval_id", "eval_ood", "alm", "diff_config"}


def test_st_codecfake_unseen_real_manifest(tmp_path):
    from manifests import real_row, to_frame

    root = make_st(tmp_path / "st")
    wav(tmp_path / "itw" / "0.wav", 5)
    src = to_frame([dict(real_row(utt_id="in_the_wild-0", corpus="in_the_wild", path="0.wav"))], "source")
    src.attrs["root"] = str(tmp_path / "itw")
    df = prepare_st_codecfake(root, unseen_real=[src])
    ur = df[df["subset"] == "unseen_real"].set_index("condition")
    assert ur.loc["in_the_wild", "path"] == str(tmp_path / "itw" / "0.wav")


def test_st_codecfake_open_set_names(tmp_path):
    """Configuration sets carry their C3-x / C4-x catalog variants; NCSSD and ALM names give speaker and language."""
    df = prepare_st_codecfake(make_st(tmp_path / "st"))
    ok = df[df["status"] == "ok"]
    dc = ok[ok["subset"] == "diff_config"].set_index("condition")
    assert dc.loc["C3-1", "variant"] == "funcodec_16k_ds640_3kbps" and dc.loc["C3-1", "bitrate_kbps"] == 3.0
    assert dc.loc["C4-2", "variant"] == "encodec_24k_12kbps" and dc.loc["C4-2", "n_codebooks"] == 16
    assert (dc.loc["C3-1", "speaker"], dc.loc["C3-1", "language"]) == ("p228", "en")
    assert json.loads(dc.loc["C3-1", "extra"])["source"] == "p228_001"
    assert ok.loc[ok["subset"] == "ood_config", "variant"].tolist() == ["wavtokenizer_24k_40tps"]
    by_id = ok.set_index("utt_id")
    mimi = by_id.loc["st-diff_source-NCSSD-mimi-mimi_R-ZH_0_0_d2289"]
    assert (mimi["variant"], mimi["speaker"], mimi["language"]) == ("mimi_24k_8q", "R-ZH_d2289_0", "zh")
    snac = by_id.loc["st-diff_source-NCSSD-snac-snac_R-EN_4_0_d161"]
    assert (snac["speaker"], snac["language"]) == ("R-EN_d161_0", "en")
    wt = by_id.loc["st-diff_source-NCSSD-wavtokenizer-wavtokenizer_R-EN_3_5_d644"]
    assert (wt["speaker"], wt["language"], wt["label"]) == ("R-EN_d644_5", "en", 7)
    moshi = by_id.loc["st-alm-moshi-moshi_R-ZH_3_14_d501"]
    assert (moshi["speaker"], moshi["language"]) == ("R-ZH_d501_14", "zh")
    assert json.loads(moshi["extra"])["source"] == "R-ZH_3_14_d501"
    mo = by_id.loc["st-alm-mini-omni-miniomni_R-EN_1_5_d644"]
    assert (mo["speaker"], mo["language"]) == ("R-EN_d644_5", "en")
    assert (by_id.loc["st-alm-valle-valle_p299_134", "speaker"], by_id.loc["st-alm-valle-valle_p299_134", "language"]) == ("p299", "en")
    gen = by_id.loc["st-alm-speechgpt-gen-gen_2"]
    assert (gen["speaker"], gen["language"]) == ("", "") and "source" not in json.loads(gen["extra"])
    real = by_id.loc["st-unseen_real-NCSSD-R-EN_6_0_d195"]
    assert (real["speaker"], real["language"], real["label"]) == ("R-EN_d195_0", "en", 0)
    assert by_id.loc["st-unseen_real-19LA-LA_E_0001", "speaker"] == ""
    # Codec-prefixed main-set names never read the codec tag as a VCTK speaker (snac_, speechtokenizer_).
    assert by_id.loc["st-train-snac_SSB00050001", "speaker"] == "SSB0005"
    assert by_id.loc["st-train-speechtokenizer_p226_002", "speaker"] == "p226"


def test_config_variant_table_agrees_with_catalog():
    catalog = pytest.importorskip("codec_wrappers.catalog", reason="codec catalog not importable")
    from pipeline.releases.common import CONFIG_VARIANTS, config_variant

    cat = catalog.load_catalog()
    conditions = {v.condition: (v.id, v.st_label) for v in cat.values() if v.condition}
    assert conditions == CONFIG_VARIANTS
    assert config_variant("C3-4", 3) == "funcodec_16k_ds320_libritts"
    assert config_variant("C3-4", 4) is None and config_variant("C9-9") is None


def test_incomplete_or_packed_roots(tmp_path):
    root = tmp_path / "st"
    (root / "label").mkdir(parents=True)
    (root / "train.zip").write_bytes(b"PK")
    with pytest.raises(ReleaseError, match=r"missing train, dev, eval_id.*archives \(train.zip\)"):
        prepare_st_codecfake(root)
    cf = tmp_path / "cf"
    cf.mkdir()
    (cf / "train_split.zip").write_bytes(b"PK")
    (cf / "train_split.z01").write_bytes(b"PK")
    with pytest.raises(ReleaseError, match=r"train_split.z01.*7z x train_split.zip"):
        prepare_codecfake(cf)


def make_codecfake(root: Path) -> Path:
    k = 0
    tr = []
    for u in ("p225_001", "SSB00050001"):
        wav(root / "train" / f"{u}.wav", k); k += 1
        tr.append(f"{u}.wav real 0")
        for f in range(1, 7):
            wav(root / "train" / f"F0{f}_{u}.wav", k); k += 1
            tr.append(f"F0{f}_{u}.wav fake F0{f}")
    lines(root / "label" / "train.txt", tr)
    wav(root / "dev" / "p226_001.wav", k); k += 1
    wav(root / "dev" / "F02_p226_001.wav", k); k += 1
    lines(root / "label" / "dev.txt", ["p226_001.wav real 0", "F02_p226_001.wav fake F02", "F03_gone.wav fake F03",
                                       "F01_p226_001.wav maybe F01"])
    # Test sets with the published names: C1-C6 fakes keep their F0n_ prefix, configuration and ALM
    # fakes their C3-2_ / L1_ prefix.
    for c, tag in (("C1", "F01"), ("C7", "C7")):
        wav(root / "test" / c / "p227_001.wav", k); k += 1
        wav(root / "test" / c / f"{tag}_p227_001.wav", k); k += 1
        lines(root / "label" / f"{c}.txt", ["p227_001.wav real", f"{tag}_p227_001.wav fake"])
    wav(root / "test" / "C3-2" / "C3-2_SSB00050001.wav", k); k += 1
    lines(root / "label" / "C3-2.txt", ["C3-2_SSB00050001.wav fake"])
    # ALM sets under both of their names: label L1 (result files) with folder A1 (README); A2 as in the README.
    wav(root / "test" / "A1" / "p228_028.wav", k); k += 1
    wav(root / "test" / "A1" / "L1_p275_117.wav", k); k += 1
    wav(root / "test" / "A1" / "stray.wav", k); k += 1
    lines(root / "label" / "L1.txt", ["p228_028.wav real", "L1_p275_117.wav fake"])
    wav(root / "test" / "A2" / "L2_p351_400.wav", k); k += 1
    lines(root / "label" / "A2.txt", ["L2_p351_400.wav fake"])
    return root


def test_codecfake_replica(tmp_path):
    df = prepare_codecfake(make_codecfake(tmp_path / "cf"))
    validate_manifest(df, kind="protocol")
    ok = df[df["status"] == "ok"].set_index("utt_id")
    assert ok.loc["codecfake-train-F02_p225_001", "label"] == 2
    assert ok.loc["codecfake-train-F01_SSB00050001", "codec"] == "SoundStream"
    assert ok.loc["codecfake-train-F02_p225_001", "source_utt_id"] == "codecfake-train-p225_001"
    assert (ok.loc["codecfake-C1-F01_p227_001", ["subset", "condition", "label"]].tolist() == ["eval_id", "C1", 11])
    assert ok.loc["codecfake-C7-C7_p227_001", "subset"] == "eval_ood" and ok.loc["codecfake-C7-C7_p227_001", "label"] == 9
    bad = df[df["status"] == "failed"].set_index("utt_id")["error"]
    assert "dev.txt line 3" in bad["codecfake-dev-F03_gone"] and "missing" in bad["codecfake-dev-F03_gone"]
    assert "dev.txt line 4" in bad["codecfake-dev-F01_p226_001"] and "unknown label 'maybe'" in bad["codecfake-dev-F01_p226_001"]
    assert "not listed in" in bad["codecfake-A1-stray"]
    assert len(df) == 14 + 4 + 4 + 1 + 3 + 1 and len(bad) == 3


def test_codecfake_published_set_names_and_prefixes(tmp_path):
    """ALM sets named L1 (result files) or A1 (README); C3-2_ / L1_ prefixes give source, speaker, language."""
    df = prepare_codecfake(make_codecfake(tmp_path / "cf"))
    ok = df[df["status"] == "ok"].set_index("utt_id")
    cfg = ok.loc["codecfake-C3-2-C3-2_SSB00050001"]
    assert (cfg["subset"], cfg["condition"], cfg["label"], cfg["variant"]) == ("diff_config", "C3-2", 3, "funcodec_16k_ds640_6kbps")
    assert (cfg["speaker"], cfg["language"], cfg["source_utt_id"]) == ("SSB0005", "zh", "codecfake-C3-2-SSB00050001")
    l1 = ok.loc["codecfake-A1-L1_p275_117"]
    assert (l1["subset"], l1["condition"], l1["label"], bool(l1["is_fake"])) == ("alm", "A1", -1, True)
    assert (l1["speaker"], l1["language"], l1["source_utt_id"]) == ("p275", "en", "codecfake-A1-p275_117")
    assert json.loads(l1["extra"])["set"] == "L1"
    assert not ok.loc["codecfake-A1-p228_028", "is_fake"]
    a2 = ok.loc["codecfake-A2-L2_p351_400"]
    assert (a2["condition"], a2["speaker"], a2["label_name"]) == ("A2", "p351", "A2") and "set" not in json.loads(a2["extra"])
    warnings = "\n".join(df.attrs["warnings"])
    assert "L1.txt: audio read from test/A1/" in warnings
    assert "A3.txt or" in warnings and "L3.txt not found: set A3 has no rows" in warnings
    assert "A1.txt" not in warnings.replace("test/A1/", "")  # L1 stands for A1


def make_cfp(root: Path) -> Path:
    """CodecFake+ replica with the published names: dotted codec names, a .flac file, CoSG_SEEN."""
    meta = root / "metadata"
    audio = root / "all_data_16k"
    k = 0
    tr = []
    for u in ("p225_001", "p226_002"):
        wav(audio / f"{u}.wav", k); k += 1
        tr.append(f"{u.split('_')[0]} {u} - REAL REAL REAL bonafide")
    for u, codec, tax in (("p225_001", "mini", "SEM TIME MVQ"), ("p226_002", "bigcodec", "Trad TIME SVQ"),
                          ("p225_001", "audiodec_24k_320d", "Trad FREQ MVQ")):
        wav(audio / f"{u}_{codec}.wav", k); k += 1
        tr.append(f"{u.split('_')[0]} {u}_{codec} - {tax} spoof")
    tr.append("p225 p225_001_ticodec_1g1r - Disent TIME SVQ spoof")  # file missing
    tr.append("p225 p225_001_weird - Foo TIME MVQ spoof")  # unknown taxonomy label
    for u, codec in (("p225_001", "SemantiCodec_0.35kbps_16k"), ("p226_002", "SemantiCodec_0.70kbps_16k")):
        wav(audio / f"{u}_{codec}.flac", k); k += 1  # the authors' loader takes .flac first
        tr.append(f"{u.split('_')[0]} {u}_{codec} - SEM FREQ MVQ spoof")
    wav(audio / "p225_001_mini.flac", k); k += 1  # both: .flac wins
    tr.append("s5 s5_180_Encodec_24b24k - Trad TIME MVQ spoof")  # file missing: .flac or .wav
    lines(meta / "training" / "train_mult_learn.txt", tr)
    wav(audio / "p227_001.wav", k); k += 1
    cors = ["p227 p227_001 - - bonafide", "p227 p227_001_vocos_encodec_6 - - spoofs"]
    for codec in ("vocos_encodec_6", "SemantiCodec_0.35kbps_16k", "SemantiCodec_0.70kbps_16k", "SemantiCodec_1.40kbps_16k"):
        wav(audio / f"p227_001_{codec}.wav", k); k += 1
        if codec != "vocos_encodec_6":
            cors.append(f"p227 p227_001_{codec} - - spoof")
    lines(meta / "evaluation" / "CoRS_ALL.txt", cors)
    slm = root / "SLMdemos_16k"
    for system, name, ext in (("VALLE", "emov_db_amused_ours", "flac"), ("VALLE", "emov_db_amused_pt", "wav"),
                              ("VIOLA", "audios_entts_ref_14", "wav"), ("MASKGCT", "1995-1826-0000_maskgct", "wav"),
                              ("SIMPLESPEECH1", "compare_audiobox_ours_audiobox1", "wav"), ("TI1G1R", "0_7176_88083_000024_000007", "wav")):
        wav(slm / system / f"{name}.{ext}", k); k += 1
    lines(meta / "evaluation" / "CoSG_ALL.txt", [
        "VALLE emov_db_amused_ours - - spoof", "VIOLA audios_entts_ref_14 - bonafide", "VIOLA audios_entts_ref_2 - real",
        "MASKGCT 1995-1826-0000_maskgct - - spoof", "SIMPLESPEECH1 compare_audiobox_ours_audiobox1 - - spoof",
        "VALLE emov_db_amused_pt - - bonafide", "TI1G1R 0_7176_88083_000024_000007 - - spoof"])
    lines(meta / "evaluation" / "CoSG_SEEN.txt", [
        "VALLE emov_db_amused_ours - MVQ spoof", "VALLE emov_db_amused_pt - REAL bonafide",
        "SIMPLESPEECH1 compare_audiobox_ours_audiobox1 - SQ spoof", "TI1G1R 0_7176_88083_000024_000007 - SVQ spoof",
        "NS3 Ravdess_TTS_our_1 - MVQ spoof"])
    return root


def test_codecfake_plus_replica(tmp_path):
    df = prepare_codecfake_plus(make_cfp(tmp_path / "cfp"))
    validate_manifest(df, kind="protocol")
    ok = df[df["status"] == "ok"].set_index("utt_id")
    mimi = ok.loc["cfp-p225_001_mini"]
    assert (mimi["label"], mimi["variant"], mimi["aux"], mimi["decoder"], mimi["vq"]) == (1, "mimi_24k_8q", "semantic", "time", "MVQ")
    big = ok.loc["cfp-p226_002_bigcodec"]
    assert (big["label"], big["vq"], big["aux"], big["decoder"], big["condition"]) == (-1, "SVQ", "none", "time", "bigcodec")
    assert ok.loc["cfp-p225_001_audiodec_24k_320d", "decoder"] == "frequency"
    assert ok.loc["cfp-p225_001", "subset"] == "train" and ok.loc["cfp-p225_001", "label"] == 0
    voc = ok.loc["cfp-cors-p227_001_vocos_encodec_6"]
    assert voc["subset"] == "cors" and bool(voc["is_fake"]) and voc["source_utt_id"] == "cfp-cors-p227_001"
    assert (voc["aux"], voc["decoder"], voc["vq"]) == ("none", "frequency", "MVQ")  # published taxonomy without a training line
    assert ok.loc["cfp-cors-p227_001", "label"] == 0
    assert any("'spoofs' read as 'spoof'" in w for w in df.attrs["warnings"])
    bad = df[df["status"] == "failed"].set_index("utt_id")["error"]
    assert "train_mult_learn.txt line 6" in bad["cfp-p225_001_ticodec_1g1r"]
    assert "line 7: unknown taxonomy labels Foo" in bad["cfp-p225_001_weird"]
    assert "CoSG_ALL.txt line 3: unknown label 'real'" in bad["cfp-VIOLA-audios_entts_ref_2"]
    assert "s5_180_Encodec_24b24k.flac or .wav: audio file missing" in bad["cfp-s5_180_Encodec_24b24k"]
    assert len(bad) == 4


def test_codecfake_plus_dotted_codec_names_and_flac(tmp_path):
    """``SemantiCodec_0.35kbps_16k`` stays whole: right codec, no duplicate ids, taxonomy known; .flac first."""
    df = prepare_codecfake_plus(make_cfp(tmp_path / "cfp"))
    ok = df[df["status"] == "ok"].set_index("utt_id")
    assert not df["utt_id"].str.contains("#dup").any()
    sem = ok.loc["cfp-p225_001_SemantiCodec_0.35kbps_16k"]
    assert (sem["condition"], json.loads(sem["extra"])["codec"]) == ("SemantiCodec_0.35kbps_16k", "SemantiCodec_0.35kbps_16k")
    assert (sem["aux"], sem["decoder"], sem["vq"], sem["source_utt_id"]) == ("semantic", "frequency", "MVQ", "cfp-p225_001")
    assert (sem["speaker"], sem["language"]) == ("p225", "en")
    assert sem["path"].endswith("p225_001_SemantiCodec_0.35kbps_16k.flac")
    assert ok.loc["cfp-p225_001_mini", "path"].endswith("p225_001_mini.flac")
    cors = ok[ok["subset"] == "cors"]
    sem_cors = cors[cors["condition"].str.startswith("SemantiCodec")].set_index("condition")
    assert sorted(sem_cors.index) == ["SemantiCodec_0.35kbps_16k", "SemantiCodec_0.70kbps_16k", "SemantiCodec_1.40kbps_16k"]
    assert (sem_cors[["aux", "decoder", "vq"]] == ["semantic", "frequency", "MVQ"]).all().all()
    assert not (cors["aux"] == "unknown").any()


def test_codecfake_plus_cosg_seen_and_taxonomy(tmp_path):
    df = prepare_codecfake_plus(make_cfp(tmp_path / "cfp"))
    ok = df[df["status"] == "ok"].set_index("utt_id")
    cosg = ok[ok["subset"] == "alm"]
    extra = {u: json.loads(e) for u, e in zip(cosg.index, cosg["extra"])}
    valle = ok.loc["cfp-VALLE-emov_db_amused_ours"]
    assert (valle["condition"], valle["aux"], valle["decoder"], valle["vq"]) == ("VALLE", "none", "time", "MVQ")
    assert valle["path"].endswith("emov_db_amused_ours.flac")
    assert extra["cfp-VALLE-emov_db_amused_ours"]["cosg_seen"] is True
    assert extra["cfp-VALLE-emov_db_amused_ours"]["published_vq"] == "MVQ"
    assert extra["cfp-VALLE-emov_db_amused_pt"] == {**extra["cfp-VALLE-emov_db_amused_pt"], "cosg_seen": True, "published_vq": "REAL"}
    assert not ok.loc["cfp-VALLE-emov_db_amused_pt", "is_fake"] and not ok.loc["cfp-VIOLA-audios_entts_ref_14", "is_fake"]
    mask = ok.loc["cfp-MASKGCT-1995-1826-0000_maskgct"]
    assert (mask["aux"], mask["decoder"], mask["vq"]) == ("none", "frequency", "MVQ")
    assert extra["cfp-MASKGCT-1995-1826-0000_maskgct"]["cosg_seen"] is False
    assert "published_vq" not in extra["cfp-MASKGCT-1995-1826-0000_maskgct"]
    assert ok.loc["cfp-SIMPLESPEECH1-compare_audiobox_ours_audiobox1", "vq"] == "SQ"
    ti = ok.loc["cfp-TI1G1R-0_7176_88083_000024_000007"]
    assert (ti["aux"], ti["decoder"], ti["vq"]) == ("disentangle", "time", "SVQ")
    assert any("NS3 Ravdess_TTS_our_1 is not in CoSG_ALL" in w for w in df.attrs["warnings"])


def test_codecfake_plus_cosg_taxonomy_table():
    """The authors' CoSG system labels: 17 systems, and CoSG_SEEN's VQ agrees for the replica's ones."""
    from pipeline.releases.codecfake_plus import COSG_TAXONOMY

    assert len(COSG_TAXONOMY) == 17
    assert COSG_TAXONOMY["SINGLECODEC"] == ("disentangle", "frequency", "SVQ")
    assert COSG_TAXONOMY["USLM"] == ("semantic", "time", "MVQ") and COSG_TAXONOMY["CLAMTTS"] == ("none", "frequency", "MVQ")


def test_fallback_table_agrees_with_catalog():
    catalog = pytest.importorskip("codec_wrappers.catalog", reason="codec catalog not importable")
    for label, (codec, vid, vq, aux, dec) in ST_CODECS.items():
        v = catalog.st_variant(label)
        assert (v.codec, v.id, v.taxonomy.vq, v.taxonomy.aux, v.taxonomy.decoder) == (codec, vid, vq, aux, dec), label


def test_codecfake_plus_taxonomy_is_ours():
    """CodecFake+'s published VQ/AUX/DEC labels are the reference: every shared codec agrees."""
    catalog = pytest.importorskip("codec_wrappers.catalog", reason="codec catalog not importable")
    cat = catalog.load_catalog()
    assert set(ST_OF_CODEC) <= set(CFP_TAXONOMY) and len(CFP_TAXONOMY) == 31
    shared = [c for c in ST_OF_CODEC if ST_OF_CODEC[c][0] in cat]
    assert len(shared) >= 10
    for codec in shared:
        v = cat[ST_OF_CODEC[codec][0]]
        aux, dec, vq = CFP_TAXONOMY[codec]
        assert (v.taxonomy.aux, v.taxonomy.decoder, v.taxonomy.vq) == (aux, dec, vq), codec
        assert v.st_label == ST_OF_CODEC[codec][1], codec


def test_cli_ingest_releases(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    runner = CliRunner()
    root = make_st(tmp_path / "st")
    out = tmp_path / "st.parquet"
    res = runner.invoke(app, ["ingest", "st-codecfake", str(root), "-o", str(out), "--protocol-dir", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "eval_ood" in res.output and "mini-omni" in res.output
    assert read_manifest(out).attrs["kind"] == "protocol"
    assert (tmp_path / "run" / "protocol" / "subsets" / "alm.parquet").is_file()
    res = runner.invoke(app, ["ingest", "codecfake", str(make_codecfake(tmp_path / "cf")), "-o", str(tmp_path / "cf.parquet")])
    assert res.exit_code == 0, res.output
    assert "unknown label 'maybe'" in res.output
    res = runner.invoke(app, ["ingest", "codecfake-plus", str(make_cfp(tmp_path / "cfp")), "-o", str(tmp_path / "p.parquet"),
                              "--balance", "bal_vq"])
    assert res.exit_code == 0, res.output  # no bal_vq lists in the replica: noted, CoRS/CoSG still read
    assert "train_mult_learn_bal_vq.txt not found" in res.output
    res = runner.invoke(app, ["ingest", "codecfake", str(tmp_path / "nowhere_cf"), "-o", str(tmp_path / "x.parquet")])
    assert res.exit_code == 2
    res = runner.invoke(app, ["ingest", "st-codecfake", str(root), "-o", str(tmp_path / "y.parquet"), "--balance", "bal_vq"])
    assert res.exit_code != 0 and "does not apply" in res.output


@pytest.mark.skipif(importlib.util.find_spec("train.trainer") is None or importlib.util.find_spec("train.study") is None,
                    reason="train.trainer / train.study not in the tree yet")
def test_study_end_to_end_on_st_replica(tmp_path):
    """ST-Codecfake replica -> release protocol -> tiny mel_lcnn (1 epoch) -> ncst study: all four tables."""
    import yaml
    from typer.testing import CliRunner

    from pipeline.cli import app
    from train.config import TrainConfig
    from train.trainer import train

    out = tmp_path / "out"
    df = prepare_st_codecfake(make_st(tmp_path / "st"))
    write_release_protocol(df, out)
    cfg = TrainConfig(model="mel_lcnn", protocol_dir=str(out / "protocol"), out_dir=str(out / "runs" / "tiny"), epochs=1,
                      batch_size=8, num_samples=4000, progress=False, seed=1)
    assert (Path(train(cfg)) / "best.pt").exists()
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "st release", "output_dir": "out",
                                      "study": {"models": ["tiny"], "batch_size": 8, "plots": False}}))
    res = CliRunner().invoke(app, ["study", str(recipe)])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "study" / "results.json").read_text())["models"]["tiny"]
    assert r["status"] == "ok" and r["classes"] == list(range(7))
    assert r["table3"]["n"] == 21
    assert {x["condition"] for x in r["table4"]} >= {"19LA", "C3-1", "C4-2", "NCSSD-mimi", "NCSSD-snac"}
    t5 = {x["condition"] for x in r["table5"]}
    assert {"ood_config/wavtokenizer_small40", "diff_source/NCSSD-wavtokenizer", "eval_ood/DAC"} <= t5, t5
    t6 = {x["condition"]: x for x in r["table6"]}
    assert set(t6) == set(ALM_BACKENDS)
    for cond, label in ALM_BACKENDS.items():
        assert t6[cond]["n"] == 2 and t6[cond]["backend"].startswith(f"{label} ")
        assert 0.0 <= float(t6[cond]["backend_f1"]) <= 1.0


def test_alm_backends_agree_with_study():
    tables = pytest.importorskip("train.tables", reason="train.tables not in the tree yet")
    assert ALM_BACKENDS == tables.DEFAULT_ALM_BACKENDS
