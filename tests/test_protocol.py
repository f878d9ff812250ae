"""Protocol builder: splits, inheritance of splits by fakes, robustness sets, counts of Table 1.

No audio is read: manifests are built in memory (or written as parquet) with made-up paths.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from codec_wrappers.catalog import get_variant
from manifests import external_spoof_row, read_manifest, real_row, to_frame, write_manifest
from pipeline.plan import codec_fields, item_id
from pipeline.protocol import (
    DiffSource,
    ProtocolConfig,
    ProtocolError,
    SourceSet,
    build_protocol,
    load_protocol_config,
    split_reals,
)

ID_VARIANTS = ("mimi_24k_8q", "speechtokenizer_16k", "funcodec_16k_ds320_time", "encodec_24k_6kbps", "facodec_16k", "snac_24k")
OOD_VARIANTS = ("wavtokenizer_24k_75tps", "hificodec_24k_320d", "dac_44k", "audiodec_24k_320d", "soundstream_16k_4kbps")
RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def reals(corpus: str, speakers: int, per_speaker: int, root: str | None = "/data") -> pd.DataFrame:
    """A source manifest of ``speakers x per_speaker`` bona fide rows (paths under ``root``)."""
    rows = []
    for s in range(speakers):
        spk = f"{corpus[:2]}{s:03d}"
        for u in range(per_speaker):
            uid = f"{corpus}-{spk}-{u:04d}"
            rows.append(real_row(utt_id=uid, corpus=corpus, speaker=spk, language="en" if corpus == "vctk" else "zh",
                                 path=f"{corpus}/{spk}/{uid}.flac" if root is None else f"{root}/{corpus}/{spk}/{uid}.flac",
                                 sample_rate=16000, num_samples=32000, duration_s=2.0))
    df = to_frame(rows)
    df.attrs["path"] = f"<{corpus} frame>"
    return df


def fakes_of(src: pd.DataFrame, variants, *, label: int | None = None, status: str = "ok") -> pd.DataFrame:
    """Fake rows (one per source row x variant) with the fields the generation engine writes."""
    parts = []
    for vid in variants:
        v = get_variant(vid)
        part = src.copy()
        part["source_utt_id"] = src["utt_id"]
        part["utt_id"] = [item_id(vid, u) for u in src["utt_id"]]
        part["path"] = [f"/gen/audio/{vid}/{u}.flac" for u in src["utt_id"]]
        for k, val in codec_fields(v).items():
            part[k] = val
        if label is not None:
            part["label"] = label
        part["weights_id"] = "random:0"
        part["status"] = status
        part["error"] = "" if status == "ok" else "boom"
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out.attrs["path"] = "<fake frame>"
    return out


def small_config(**kw) -> ProtocolConfig:
    src = [reals("vctk", 4, 10), reals("aishell3", 4, 10)]
    fakes = fakes_of(pd.concat(src, ignore_index=True), ID_VARIANTS[:2] + OOD_VARIANTS[:1])
    base = dict(real=tuple(src), fakes=(fakes,), sizes={"train": 20, "dev": 6, "eval": 10}, seed=3,
                id_variants=ID_VARIANTS[:2], ood_variants=OOD_VARIANTS[:1])
    base.update(kw)
    return ProtocolConfig(**base)


# ----------------------------------------------------------------------------- Table 1 counts


def test_counts_scale_to_table1():
    """24228 reals split 10000/1000/13228 with 6 ID + 5 OOD codecs give the paper's Table 1."""
    vctk, aishell = reals("vctk", 12, 1010), reals("aishell3", 12, 1009)  # 12120 + 12108 = 24228
    src = pd.concat([vctk, aishell], ignore_index=True)
    assert len(src) == 24228
    fakes = fakes_of(src, ID_VARIANTS + OOD_VARIANTS)  # every codec over every real (OOD ones over train too)
    cfg = ProtocolConfig(real=(vctk, aishell), fakes=(fakes,), sizes={"train": 10000, "dev": 1000, "eval": 13228},
                         seed=688, balance="proportional")
    out = build_protocol(cfg, "/nonexistent-not-written", write=False)
    assert {k: len(v) for k, v in out.items()} == {"train": 70000, "dev": 7000, "eval_id": 92596, "eval_ood": 66140}
    tr = out["train"]
    assert (tr["label"] == 0).sum() == 10000 and tr["label"].value_counts().to_dict() == {i: 10000 for i in range(7)}
    assert set(out["eval_ood"]["label"]) == {7, 8, 9, 10, 11} and not (out["eval_ood"]["label"] == 0).any()
    assert out["eval_ood"]["source_utt_id"].isin(out["eval_id"]["utt_id"]).all()
    # proportional balance: each corpus's share of each split follows its size
    assert tr[tr["label"] == 0]["corpus"].value_counts().to_dict() == {"vctk": 5002, "aishell3": 4998}


def test_equal_balance_and_shortfall():
    src = [reals("vctk", 5, 20), reals("aishell3", 2, 10)]  # 100 + 20
    cfg = ProtocolConfig(real=tuple(src), sizes={"train": 20, "dev": 4, "eval": 8})
    split = split_reals(pd.concat(src, ignore_index=True), cfg)
    per = pd.DataFrame({"split": split, "corpus": [u.split("-")[0] for u in split.index]})
    assert per.groupby(["corpus", "split"]).size().to_dict() == {
        ("aishell3", "dev"): 2, ("aishell3", "eval"): 4, ("aishell3", "train"): 10,
        ("vctk", "dev"): 2, ("vctk", "eval"): 4, ("vctk", "train"): 10}
    too_big = ProtocolConfig(real=tuple(src), sizes={"train": 40, "dev": 4, "eval": 8})
    with pytest.raises(ProtocolError, match="aishell3.*20 usable.*shortfall"):
        split_reals(pd.concat(src, ignore_index=True), too_big)
    scaled = ProtocolConfig(real=tuple(src), sizes={"train": 40, "dev": 4, "eval": 8}, shortfall="scale")
    got = split_reals(pd.concat(src, ignore_index=True), scaled)
    assert (got.index.str.startswith("aishell3")).sum() <= 20


# ----------------------------------------------------------------------------- splits


def test_splits_disjoint_deterministic_and_inherited():
    cfg = small_config()
    a = build_protocol(cfg, "/x", write=False)
    real_ids = {s: set(a[s].loc[a[s]["label"] == 0, "utt_id"]) for s in ("train", "dev", "eval_id")}
    assert [len(real_ids[s]) for s in ("train", "dev", "eval_id")] == [20, 6, 10]
    assert not (real_ids["train"] & real_ids["dev"]) and not (real_ids["train"] & real_ids["eval_id"])
    assert not (real_ids["dev"] & real_ids["eval_id"])
    for s in ("train", "dev", "eval_id"):  # every fake sits in the split of its source
        fk = a[s][a[s]["label"] != 0]
        assert fk["source_utt_id"].isin(real_ids[s]).all() and len(fk) == 2 * len(real_ids[s])
    assert set(a["eval_ood"]["source_utt_id"]) == real_ids["eval_id"]
    # fakes of reals left out of every split (80 reals, 36 used) are excluded
    assert sum(len(df) for df in a.values()) == 36 * 3 + 10
    # same seed, shuffled input order -> same protocol; another seed -> another split
    shuffled = tuple(df.sample(frac=1, random_state=1) for df in cfg.real)
    b = build_protocol(small_config(real=shuffled), "/x", write=False)
    for s in a:
        # created_at is the wall clock of each build (it may tick between the two): not part of the split
        pd.testing.assert_frame_equal(a[s].drop(columns="created_at"), b[s].drop(columns="created_at"))
    c = build_protocol(small_config(seed=4), "/x", write=False)
    assert set(c["eval_id"]["utt_id"]) != set(a["eval_id"]["utt_id"])


def test_speaker_disjoint():
    src = (reals("vctk", 10, 6), reals("aishell3", 10, 6))
    cfg = small_config(real=src, speaker_disjoint=True, sizes={"train": 40, "dev": 10, "eval": 20})
    out = build_protocol(cfg, "/x", write=False)
    spk = {s: set(zip(out[s]["corpus"], out[s]["speaker"])) for s in ("train", "dev", "eval_id")}
    assert not (spk["train"] & spk["dev"]) and not (spk["train"] & spk["eval_id"]) and not (spk["dev"] & spk["eval_id"])
    assert [int((out[s]["label"] == 0).sum()) for s in ("train", "dev", "eval_id")] == [40, 10, 20]
    blank = reals("vctk", 2, 5)
    blank["speaker"] = ""
    with pytest.raises(ProtocolError, match="no speaker"):
        build_protocol(small_config(real=(blank,), speaker_disjoint=True, sizes={"train": 0.5, "dev": 0.2, "eval": 0.3}), "/x", write=False)


def test_fractions():
    out = build_protocol(small_config(sizes={"train": 0.5, "dev": 0.2, "eval": 0.3}), "/x", write=False)
    assert [int((out[s]["label"] == 0).sum()) for s in ("train", "dev", "eval_id")] == [40, 16, 24]


# ----------------------------------------------------------------------------- columns and robustness sets


def test_columns_carried_and_paths_absolute(tmp_path):
    """From parquet files with relative paths: paths come out absolute, labels/taxonomy unchanged."""
    src = reals("vctk", 3, 6, root=None)
    write_manifest(src, tmp_path / "vctk.parquet", root=tmp_path / "corpus")
    fk = fakes_of(src, ("mimi_24k_8q", "wavtokenizer_24k_75tps"))
    fk["path"] = [p.replace("/gen/", "") for p in fk["path"]]
    write_manifest(fk, tmp_path / "run" / "dataset" / "manifests" / "fake.parquet", root=tmp_path / "run" / "dataset")
    cfg = ProtocolConfig(real=(tmp_path / "vctk.parquet",), sizes={"train": 8, "dev": 4, "eval": 6})
    out = build_protocol(cfg, tmp_path / "run")  # default fake manifest under the run folder
    tr = out["train"]
    assert tr["path"].map(lambda p: Path(p).is_absolute()).all()
    real_paths = tr.loc[tr["label"] == 0, "path"]
    assert real_paths.str.startswith(str((tmp_path / "corpus").resolve())).all()
    mimi = tr[tr["variant"] == "mimi_24k_8q"]
    assert mimi["path"].str.startswith(str((tmp_path / "run" / "dataset" / "audio").resolve())).all()
    assert (mimi[["label", "label_name", "vq", "aux", "decoder", "domain", "codec"]].drop_duplicates().values.tolist()
            == [[1, "Mimi", "MVQ", "semantic", "time", "id", "Mimi"]])
    ood = out["eval_ood"]
    assert set(ood["condition"]) == {"WavTokenizer"} and set(ood[["vq", "decoder"]].itertuples(index=False)) == {("SVQ", "frequency")}
    # written files: kind protocol, subset/condition columns, summary counts
    back = read_manifest(tmp_path / "run" / "protocol" / "subsets" / "train.parquet", validate=True)
    assert back.attrs["kind"] == "protocol" and set(back["subset"]) == {"train"}
    summary = pd.read_csv(tmp_path / "run" / "protocol" / "summary.csv")
    assert summary.loc[(summary["subset"] == "eval_ood") & (summary["label"] == 7), "rows"].tolist() == [6]
    assert summary.groupby("subset")["rows"].sum().to_dict() == {k: len(v) for k, v in out.items()}
    info = json.loads((tmp_path / "run" / "protocol" / "protocol.json").read_text())
    assert info["rows"]["eval_ood"] == 6 and info["left_out"]["wavtokenizer_24k_75tps rows outside eval"] == 12
    # the study reads what was written (every subset, conditions as written)
    from train.study import load_protocol

    loaded = load_protocol(tmp_path / "run" / "protocol")
    assert sorted(loaded.subsets) == sorted(out) and not loaded.errors
    assert set(loaded.subsets["eval_ood"]["condition"]) == {"WavTokenizer"}


def test_diff_config_labels_c3_c4():
    src = [reals("vctk", 4, 10)]
    confs = ("funcodec_16k_ds640_3kbps", "funcodec_16k_ds320_libritts", "encodec_24k_3kbps", "encodec_24k_24kbps")
    fk = fakes_of(src[0], ID_VARIANTS[:1] + confs + ("wavtokenizer_24k_40tps",))
    cfg = ProtocolConfig(real=tuple(src), fakes=(fk,), sizes={"train": 20, "dev": 5, "eval": 10}, id_variants=ID_VARIANTS[:1])
    out = build_protocol(cfg, "/x", write=False)  # diff_config / ood_config from the catalog roles
    dc = out["diff_config"]
    assert dc.groupby("condition")["label"].unique().map(list).to_dict() == {"C3-1": [3], "C3-4": [3], "C4-1": [4], "C4-3": [4]}
    assert dc["source_utt_id"].isin(out["eval_id"]["utt_id"]).all() and len(dc) == 40
    assert set(out["ood_config"]["condition"]) == {"wavtokenizer_small40"} and set(out["ood_config"]["label"]) == {7}
    # The anchor's slip (C3-x labelled 4) is caught, naming the variant.
    bad = fakes_of(src[0], ("funcodec_16k_ds640_6kbps",), label=4)
    cfg_bad = ProtocolConfig(real=tuple(src), fakes=(fk, bad), sizes={"train": 20, "dev": 5, "eval": 10},
                             id_variants=ID_VARIANTS[:1], diff_config={"funcodec_16k_ds640_6kbps": ""})
    with pytest.raises(ProtocolError, match="funcodec_16k_ds640_6kbps.*label 4"):
        build_protocol(cfg_bad, "/x", write=False)
    # A variant the catalog does not know gets its condition from `conditions:` and is still C3-checked.
    odd = fakes_of(src[0], ("funcodec_16k_ds640_8kbps",), label=4)
    odd["variant"] = "my_funcodec"
    odd["utt_id"] = "my_" + odd["utt_id"]
    cfg_odd = ProtocolConfig(real=tuple(src), fakes=(fk, odd), sizes={"train": 20, "dev": 5, "eval": 10},
                             id_variants=ID_VARIANTS[:1], diff_config={"my_funcodec": ""}, conditions={"my_funcodec": "C3-9"})
    with pytest.raises(ProtocolError, match="my_funcodec.*C3-9.*class 3"):
        build_protocol(cfg_odd, "/x", write=False)


def test_missing_variant_and_duplicates_are_errors():
    with pytest.raises(ProtocolError, match="'dac_44k'.*no ok rows in <fake frame>"):
        build_protocol(small_config(ood_variants=("dac_44k",)), "/x", write=False)
    src = reals("vctk", 2, 5)
    failed = fakes_of(src, ("dac_44k",), status="failed")
    with pytest.raises(ProtocolError, match="all its rows failed"):
        build_protocol(small_config(fakes=(fakes_of(src, ID_VARIANTS[:2] + OOD_VARIANTS[:1]), failed),
                                    real=(src,), sizes={"train": 4, "dev": 2, "eval": 4},
                                    ood_variants=("dac_44k",)), "/x", write=False)
    dup = small_config()
    with pytest.raises(ProtocolError, match="appears more than once"):
        build_protocol(small_config(fakes=dup.fakes + dup.fakes), "/x", write=False)
    with pytest.raises(ProtocolError, match="appears more than once"):
        build_protocol(small_config(real=dup.real + dup.real[:1]), "/x", write=False)


def test_unseen_real_diff_source_alm():
    asv = to_frame([real_row(utt_id=f"LA_{i}", corpus="asvspoof2019_la", speaker="LA_0079", path=f"/asv/{i}.flac")
                    for i in range(5)]
                   + [external_spoof_row(attack="A07", utt_id=f"LA_s{i}", corpus="asvspoof2019_la", speaker="LA_0079",
                                         path=f"/asv/s{i}.flac") for i in range(7)])
    ncssd = reals("ncssd", 2, 4, root="/ncssd")
    ds_fakes = fakes_of(ncssd, ("mimi_24k_8q", "snac_24k", "wavtokenizer_24k_75tps"))
    alm = to_frame([external_spoof_row(attack="moshi", utt_id=f"moshi-{i}", corpus="alm_moshi", path=f"/alm/{i}.wav")
                    for i in range(3)] + [real_row(utt_id="moshi-real", corpus="alm_moshi", path="/alm/r.wav")])
    base = small_config()
    cfg = small_config(
        fakes=base.fakes + (ds_fakes,),
        unseen_real=(SourceSet((asv,), "asvspoof2019_la"), SourceSet((ncssd,))),
        diff_source=DiffSource((ncssd,), {"mimi_24k_8q": "", "snac_24k": "NCSSD-snac", "wavtokenizer_24k_75tps": ""}),
        alm=(SourceSet((alm,), "moshi"),),
    )
    out = build_protocol(cfg, "/x", write=False)
    ur = out["unseen_real"]
    assert ur.groupby("condition").size().to_dict() == {"asvspoof2019_la": 5, "ncssd": 8}
    assert (ur["label"] == 0).all() and not ur["utt_id"].str.startswith("LA_s").any()
    ds = out["diff_source"]
    assert ds.groupby("condition")["label"].first().to_dict() == {"NCSSD-snac": 6, "ncssd-mimi": 1, "ncssd-wavtokenizer": 7}
    assert len(ds) == 24 and not ds["utt_id"].isin(out["train"]["utt_id"]).any()
    assert not out["eval_id"]["source_utt_id"].str.startswith("ncssd").any()  # NCSSD fakes stay out of the main splits
    assert out["alm"]["condition"].unique().tolist() == ["moshi"] and out["alm"]["is_fake"].sum() == 3
    with pytest.raises(ProtocolError, match="unseen_real.*also in protocol.real"):
        build_protocol(small_config(unseen_real=(SourceSet(base.real[:1]),)), "/x", write=False)


def test_holdout_moves_chosen_codecs_to_eval_unseen(tmp_path):
    """protocol.holdout (variant ids or codec names): the held-out codec's fakes leave train, dev
    and eval_id; those made from the eval reals form eval_unseen (no reals), the rest are left
    out and counted; other subsets are as without holdout."""
    plain = build_protocol(small_config(), "/x", write=False)
    out = build_protocol(small_config(holdout=("speechtokenizer_16k",)), tmp_path, write=True)
    unseen = out["eval_unseen"]
    assert set(unseen["variant"]) == {"speechtokenizer_16k"} and unseen["is_fake"].all() and len(unseen) == 10
    assert set(unseen["condition"]) == {"speechtokenizer_16k"} and set(unseen["subset"]) == {"eval_unseen"}
    eval_reals = out["eval_id"].loc[out["eval_id"]["label"] == 0, "utt_id"]
    assert set(unseen["source_utt_id"]) == set(eval_reals)
    for s in ("train", "dev", "eval_id"):
        assert "speechtokenizer_16k" not in set(out[s]["variant"]), s
        kept = plain[s][plain[s]["variant"] != "speechtokenizer_16k"]
        assert sorted(out[s]["utt_id"]) == sorted(kept["utt_id"]), s
    assert out["eval_ood"]["utt_id"].tolist() == plain["eval_ood"]["utt_id"].tolist()
    info = json.loads((tmp_path / "protocol" / "protocol.json").read_text())
    assert info["left_out"]["speechtokenizer_16k rows (held out) outside eval"] == 26  # train 20 + dev 6
    assert read_manifest(tmp_path / "protocol" / "subsets" / "eval_unseen.parquet")["utt_id"].tolist() == unseen["utt_id"].tolist()
    # a codec name (any case) holds out every ID variant of that codec
    by_codec = build_protocol(small_config(holdout=(get_variant("mimi_24k_8q").codec.upper(),)), "/x", write=False)
    assert set(by_codec["eval_unseen"]["variant"]) == {"mimi_24k_8q"}
    with pytest.raises(ProtocolError, match=r"protocol.holdout: \['nope'\] name no ID variant or codec"):
        build_protocol(small_config(holdout=("speechtokenizer_16k", "nope")), "/x", write=False)
    # the recipe key
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"output_dir": "o", "protocol": {"real": ["a.parquet"], "holdout": ["snac_24k"]}}))
    assert load_protocol_config(recipe)[0].holdout == ("snac_24k",)
    recipe.write_text(yaml.safe_dump({"output_dir": "o", "protocol": {"real": ["a.parquet"], "holdout": [3]}}))
    with pytest.raises(ProtocolError, match="protocol.holdout: a list of variant ids"):
        load_protocol_config(recipe)


def test_ood_other_takes_spoofs_and_left_out_is_honest(tmp_path):
    """One LA eval manifest and one ITW manifest feed unseen_real (bona fide) and ood_other
    (spoofs); rows one subset takes are not reported as left out by the other."""
    la = to_frame([real_row(utt_id=f"LA_E_{i}", corpus="asvspoof2019_la", speaker="LA_0039", split="eval",
                            path=f"/la/{i}.flac") for i in range(4)]
                  + [external_spoof_row(attack=f"A{7 + i % 3:02d}", utt_id=f"LA_E_s{i}", corpus="asvspoof2019_la",
                                        speaker="LA_0039", split="eval", path=f"/la/s{i}.flac") for i in range(9)])
    la.loc[la["utt_id"] == "LA_E_s8", ["status", "error"]] = ["failed", "boom"]
    itw = to_frame([real_row(utt_id=f"itw-{i}", corpus="in_the_wild", path=f"/itw/{i}.wav") for i in range(3)]
                   + [external_spoof_row(attack="unknown", utt_id=f"itw-s{i}", corpus="in_the_wild", path=f"/itw/s{i}.wav")
                      for i in range(5)])
    la.attrs["path"], itw.attrs["path"] = "<la>", "<itw>"
    both = (SourceSet((la,)), SourceSet((itw,)))
    cfg = small_config(unseen_real=both, ood_other=(SourceSet((la,)), SourceSet((itw,), "itw", max_rows=2)))
    out = build_protocol(cfg, tmp_path, write=True)
    assert list(out) == ["train", "dev", "eval_id", "eval_ood", "unseen_real", "ood_other"]
    oo = out["ood_other"]
    assert oo.groupby("condition").size().to_dict() == {"asvspoof2019_la": 8, "itw": 2}
    assert oo["is_fake"].all() and (oo["label"] == -1).all() and set(oo["subset"]) == {"ood_other"}
    assert set(oo.loc[oo["condition"] == "asvspoof2019_la", "label_name"]) == {"A07", "A08", "A09"}
    assert "LA_E_s8" not in set(oo["utt_id"])  # failed rows are never used
    assert out["unseen_real"].groupby("condition").size().to_dict() == {"asvspoof2019_la": 4, "in_the_wild": 3}
    # the seeded ITW sample is reproducible
    again = build_protocol(cfg, tmp_path / "again", write=False)["ood_other"]
    assert list(again["utt_id"]) == list(oo["utt_id"])
    info = json.loads((tmp_path / "protocol" / "protocol.json").read_text())
    left = info["left_out"]
    assert not any(k.startswith("unseen_real") or k.endswith("bona fide rows") for k in left), left
    assert left["ood_other[1] rows over max_rows"] == 3
    assert info["failed_rows_dropped"]["<la>"] == 1 and info["rows"]["ood_other"] == 10
    assert [c["manifests"] for c in info["config"]["ood_other"]] == [["<la>"], ["<itw>"]]
    written = read_manifest(tmp_path / "protocol" / "subsets" / "ood_other.parquet")
    assert len(written) == 10 and set(written["condition"]) == {"asvspoof2019_la", "itw"}
    summary = pd.read_csv(tmp_path / "protocol" / "summary.csv")
    assert summary.loc[summary["subset"] == "ood_other", "rows"].sum() == 10
    # without ood_other the LA/ITW spoofs are left out, and said so
    solo = small_config(unseen_real=both)
    build_protocol(solo, tmp_path / "solo")
    left = json.loads((tmp_path / "solo" / "protocol" / "protocol.json").read_text())["left_out"]
    assert left["unseen_real[0] spoofed rows"] == 8 and left["unseen_real[1] spoofed rows"] == 5


def test_ood_other_errors():
    ncssd = reals("ncssd", 1, 3, root="/ncssd")
    with pytest.raises(ProtocolError, match=r"ood_other\[0\]: no ok spoofed rows"):
        build_protocol(small_config(ood_other=(SourceSet((ncssd,)),)), "/x", write=False)
    codec_fakes = fakes_of(ncssd, ("mimi_24k_8q",))
    with pytest.raises(ProtocolError, match=r"ood_other\[0\]: 3 spoofed rows carry an ST label.*label 1"):
        build_protocol(small_config(ood_other=(SourceSet((codec_fakes,)),)), "/x", write=False)


# ----------------------------------------------------------------------------- recipes and CLI


def test_recipe_and_cli(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    src = reals("vctk", 4, 6, root=None)
    write_manifest(src, tmp_path / "data" / "vctk.parquet", root=tmp_path / "corpus")
    write_manifest(fakes_of(src, ("mimi_24k_8q", "dac_44k")), tmp_path / "fake.parquet", root=tmp_path)
    recipe = {"name": "t", "output_dir": "run", "protocol": {
        "real": ["data/vctk.parquet"], "fakes": "fake.parquet", "sizes": {"train": 12, "dev": 4, "eval": 8},
        "seed": 1, "id_variants": ["mimi_24k_8q"], "ood_variants": ["dac_44k"]}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    res = CliRunner().invoke(app, ["protocol", str(tmp_path / "r.yaml")])
    assert res.exit_code == 0, res.output
    assert "eval_ood" in res.output and "DAC" in res.output
    assert sorted(p.name for p in (tmp_path / "run" / "protocol").iterdir()) == [
        "README.md", "protocol.json", "subsets", "summary.csv"]
    assert sorted(p.name for p in (tmp_path / "run" / "protocol" / "subsets").iterdir()) == [
        "dev.parquet", "eval_id.parquet", "eval_ood.parquet", "train.parquet"]
    assert len(read_manifest(tmp_path / "run" / "protocol" / "subsets" / "eval_ood.parquet")) == 8
    res = CliRunner().invoke(app, ["protocol", str(tmp_path / "r.yaml"), "--splits-only", "-o", str(tmp_path / "o2")])
    assert res.exit_code == 0, res.output
    ev = read_manifest(tmp_path / "o2" / "protocol" / "sources" / "eval.parquet")
    assert set(ev["utt_id"]) == set(read_manifest(tmp_path / "run" / "protocol" / "subsets" / "eval_id.parquet").query("label == 0")["utt_id"])
    recipe["protocol"]["ood_variants"] = ["dac_24k"]
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    res = CliRunner().invoke(app, ["protocol", str(tmp_path / "r.yaml")])
    assert res.exit_code == 2 and "dac_24k" in res.output
    recipe["protocol"]["sizez"] = {}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    with pytest.raises(ProtocolError, match="unknown key.*sizez"):
        load_protocol_config(tmp_path / "r.yaml")


@pytest.mark.parametrize("name", ["st_codecfake.yaml", "codecfake_plus.yaml"])
def test_shipped_recipes_parse(name):
    from pipeline.recipe import load_recipe
    from train.config import TrainConfig
    from train.study import load_study_config

    cfg, out = load_protocol_config(RECIPES / name)
    # the other stages read their sections of the same file
    recipe = load_recipe(RECIPES / name)
    assert recipe.output_dir == out
    assert {get_variant(v.id).id for v in recipe.generate.variants} >= set(cfg.id_variants) | set(cfg.ood_variants)
    TrainConfig.from_recipe(RECIPES / name)
    assert load_study_config(RECIPES / name).protocol_dir == out / "protocol"
    assert out.is_absolute() and all(Path(p).is_absolute() for p in cfg.real)
    if name == "st_codecfake.yaml":
        assert dict(cfg.sizes) == {"train": 10000, "dev": 1000, "eval": 13228} and not cfg.uses_fractions
        assert len(cfg.id_variants) == 6 and len(cfg.ood_variants) == 5
        for vid in (*cfg.id_variants, *cfg.ood_variants, *cfg.diff_config, *cfg.ood_config, *cfg.diff_source.variants):
            get_variant(vid)  # every variant is in the catalog
        assert sorted(get_variant(v).condition for v in cfg.diff_config) == ["C3-1", "C3-2", "C3-3", "C3-4", "C4-1", "C4-2", "C4-3"]
        assert {s.condition for s in cfg.alm} == {"moshi", "mini-omni", "speechgpt-gen", "valle"}
        # Table 4 unseen real and Table 5 other fake type: the LA eval partition and ITW manifests
        # feed both subsets; NCSSD is capped at ingest, so the protocol takes every row of the same
        # manifest that generation resynthesises (a second sample would hold other turns)
        ur = {s.condition: s for s in cfg.unseen_real}
        oo = {s.condition: s for s in cfg.ood_other}
        assert set(ur) == {"asvspoof2019_la", "in_the_wild", "ncssd"} and set(oo) == {"asvspoof2019_la", "in_the_wild"}
        for c in oo:
            assert oo[c].manifests == ur[c].manifests
        assert "eval" in ur["asvspoof2019_la"].manifests[0].name
        assert ur["ncssd"].max_rows is None and ur["ncssd"].manifests == cfg.diff_source.sources
        assert cfg.diff_source.sources[0] in {Path(p) for p in recipe.generate.sources}
        text = (RECIPES / name).read_text()
        for cmd in ("ncst ingest asvspoof2019_la <LA> --partition eval", "--max-rows 10000 --seed 688"):
            assert cmd in text
        # Mel-LCNN gets the anchor's linear-power mel (80 x 505 at 64600 samples); other models do not
        import torch

        from train.models import build_model

        mel = TrainConfig.from_recipe(RECIPES / name, model="mel_lcnn")
        assert mel.model_kwargs == {"log_mel": False} and TrainConfig.from_recipe(RECIPES / name).model_kwargs == {}
        model = build_model("mel_lcnn", 12, num_samples=mel.num_samples, sample_rate=mel.sample_rate, **mel.model_kwargs)
        assert model.log_mel is False and model.mel(torch.zeros(1, mel.num_samples)).shape == (1, 80, 505)
        assert load_study_config(RECIPES / name).eer == "anchor"


def test_demo_corpus_through_plan_and_protocol(tmp_path):
    """Reader manifests (demo corpus) + a fake manifest shaped by the generation plan -> protocol;
    real paths point at the files the readers found, fakes sit in their source's split."""
    from typer.testing import CliRunner

    from manifests.rows import now_utc
    from pipeline.cli import app
    from pipeline.demo_corpus import ingest_demo_corpus, make_demo_corpus
    from pipeline.plan import WORK_COLUMNS, make_plan

    demo = make_demo_corpus(tmp_path / "demo", seed=0, vctk_speakers=4, aishell3_speakers=4, utterances_per_speaker=4)
    sources = [p for p, _ in ingest_demo_corpus(demo, tmp_path / "data").values()]
    dataset = tmp_path / "run" / "dataset"
    plan = make_plan(sources, ["mimi_24k_8q", "wavtokenizer_24k_75tps", "encodec_24k_12kbps"], dataset)
    plan = plan.drop(columns=list(WORK_COLUMNS)).assign(status="ok", error="", weights_id="random:0", created_at=now_utc())
    write_manifest(plan, dataset / "manifests" / "fake.parquet", kind="fake", root=dataset)
    recipe = {"name": "demo", "output_dir": "run", "protocol": {
        "real": ["data/vctk.parquet", "data/aishell3.parquet"], "sizes": {"train": 0.5, "dev": 0.25, "eval": 0.25},
        "speaker_disjoint": True, "seed": 7}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(recipe))
    res = CliRunner().invoke(app, ["protocol", str(tmp_path / "r.yaml")])
    assert res.exit_code == 0, res.output
    out = {s: read_manifest(tmp_path / "run" / "protocol" / "subsets" / f"{s}.parquet") for s in
           ("train", "dev", "eval_id", "eval_ood", "diff_config")}
    for s in ("train", "dev", "eval_id"):
        real = out[s][out[s]["label"] == 0]
        assert len(real) and real["path"].map(lambda p: Path(p).is_file()).all()
        assert set(out[s].loc[out[s]["label"] == 1, "source_utt_id"]) == set(real["utt_id"])
    spk = {s: set(out[s]["speaker"]) for s in ("train", "dev", "eval_id")}
    assert not (spk["train"] & spk["dev"]) and not (spk["train"] & spk["eval_id"]) and not (spk["dev"] & spk["eval_id"])
    assert set(out["diff_config"]["condition"]) == {"C4-2"} and set(out["diff_config"]["label"]) == {4}
    assert set(out["eval_ood"]["source_utt_id"]) == set(out["eval_id"].query("label == 0")["utt_id"])


def test_split_sources_feed_generation_without_outside_root_refusals(tmp_path):
    """The split manifests point back into the corpora: their root holds every path, so plans accept them."""
    from pipeline.plan import make_plan
    from pipeline.protocol import write_split_sources

    parts = []
    for corpus in ("vctk", "aishell3"):
        df = reals(corpus, 4, 10, root=None)
        path = write_manifest(df, tmp_path / "corpus" / f"{corpus}.parquet", root=tmp_path / "corpus" / corpus)
        parts.append(path)
    cfg = ProtocolConfig(real=tuple(parts), fakes=(), sizes={"train": 20, "dev": 6, "eval": 10}, seed=3,
                         id_variants=ID_VARIANTS[:2], ood_variants=OOD_VARIANTS[:1])
    written = write_split_sources(cfg, tmp_path / "out")
    ev = read_manifest(written["eval"])
    assert Path(ev.attrs["root"]) == (tmp_path / "corpus").resolve()
    assert not any(Path(p).is_absolute() or p.startswith("..") for p in ev["path"])
    plan = make_plan([written["eval"]], ["soundstream_16k_4kbps"], tmp_path / "dataset")
    assert len(plan) == 10 and (plan["plan_error"].fillna("") == "").all(), plan["plan_error"].tolist()
    assert plan["src_path"].str.startswith(str((tmp_path / "corpus").resolve())).all()
