"""MLAAD source-tracing protocol reader on a tiny replica (published CSV format, 0.2 s files)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from manifests import read_manifest, validate_manifest
from pipeline.releases import ReleaseError, write_release_protocol
from pipeline.releases.mlaad import prepare_mlaad

SR = 16000
XTTS = "tts_models/multilingual/multi-dataset/xtts_v2"
BARK = "suno/bark"
GRIFFIN = "griffin_lim"
UNSEEN = "tts_models/de/thorsten/vits"


def wav(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.1 * np.random.default_rng(seed).standard_normal(SR // 5)).astype("float32"), SR)


def audio(root: Path, lang: str, system: str, utt: str, seed: int) -> str:
    rel = f"fake/{lang}/{system.replace('/', '_')}/{utt}.wav"
    wav(root / rel, seed)
    return rel


def extras(frame) -> list[dict]:
    return [json.loads(e) for e in frame["extra"]]


def make_mlaad(root: Path) -> Path:
    k = iter(range(100))
    train = [(audio(root, "ar", XTTS, f"northandsouth_01_f00013{i}", next(k)), XTTS) for i in range(2)]
    train += [(audio(root, "en", BARK, f"jane_eyre_10_f00006{i}", next(k)), BARK) for i in range(2)]
    train += [(audio(root, "de", GRIFFIN, "poisoned_pen_04_f000210", next(k)), GRIFFIN)]
    dev = [(audio(root, "en", BARK, "midnight_passenger_03_f000176", next(k)), BARK),
           (audio(root, "de", UNSEEN, "wives_and_daughters_60_f000359", next(k)), UNSEEN)]
    ev = [(audio(root, "ar", XTTS, "silent_bullet_11_f000115", next(k)), XTTS),
          (audio(root, "de", UNSEEN, "ozma_of_oz_03_f000029", next(k)), UNSEEN),
          ("fake/en/suno_bark/not_there.wav", BARK)]
    for name, entries in (("train", train), ("dev", dev), ("eval", ev)):
        (root / f"{name}.csv").write_text("path,model_name\n" + "".join(f"{p},{m}\n" for p, m in entries))
    return root


def test_reads_published_lists(tmp_path):
    df = prepare_mlaad(make_mlaad(tmp_path / "MLAADv5"))
    ok = df[df["status"] == "ok"]
    assert sorted(ok["subset"].value_counts().items()) == [("dev", 1), ("dev_ood", 1), ("eval_id", 1), ("eval_ood", 1), ("train", 5)]
    train = ok[ok["subset"] == "train"].sort_values("utt_id")
    # class ids: sorted training systems, as the special session's baseline encodes them
    ids = {r["model_name"]: r["class_id"] for r in extras(train)}
    assert ids == {GRIFFIN: 0, BARK: 1, XTTS: 2}
    assert set(ok["label"]) == {-1} and ok["is_fake"].all()
    assert set(ok["condition"]) == {XTTS, BARK, GRIFFIN, UNSEEN}
    assert (ok["condition"] == ok["label_name"]).all()
    assert sorted(set(train["language"])) == ["ar", "de", "en"]
    ood = ok[ok["subset"].isin(["dev_ood", "eval_ood"])]
    assert set(ood["condition"]) == {UNSEEN} and not any(e["known"] for e in extras(ood))
    assert all("class_id" not in e for e in extras(ood))
    assert extras(ok[ok["subset"] == "eval_id"])[0]["class_id"] == 2
    failed = df[df["status"] != "ok"]
    assert len(failed) == 1 and "not_there.wav: audio file missing" in failed["error"].iloc[0]
    assert "eval.csv line 4" in failed["error"].iloc[0]
    assert any("1 systems only in dev/eval (OOD): " + UNSEEN in w for w in df.attrs["warnings"])


def test_written_protocol_validates(tmp_path):
    df = prepare_mlaad(make_mlaad(tmp_path / "MLAADv5"))
    written = write_release_protocol(df, tmp_path / "out")
    assert {"train", "dev", "dev_ood", "eval_id", "eval_ood", "failed"} <= set(written)
    train = read_manifest(written["train"])
    validate_manifest(train, kind="protocol")
    validate_manifest(df, kind="protocol")
    assert len(train) == 5


def test_lists_dir_pipe_separated_extra_columns_and_reals(tmp_path):
    root = tmp_path / "MLAADv5"
    rel = audio(root, "it", BARK, "a_01_f000001", 1)
    rel2 = audio(root, "it", XTTS, "a_01_f000002", 2)
    wav(root / "mailabs/it/b_01_f000003.wav", 3)
    proto = tmp_path / "protocols"
    proto.mkdir()
    (proto / "train.csv").write_text(f"path|model_name|architecture\n{rel}|{BARK}|bark\n{rel2}|{XTTS}|xtts\n"
                                     "mailabs/it/b_01_f000003.wav|bonafide|\n")
    (proto / "dev.csv").write_text("path,model_name\n")
    (proto / "eval.csv").write_text("path,model_name\n")
    df = prepare_mlaad(root, lists_dir=proto)
    ok = df[df["status"] == "ok"].sort_values("utt_id")
    assert len(ok) == 3 and (ok["subset"] == "train").all()
    real = ok[~ok["is_fake"].astype(bool)]
    assert len(real) == 1 and real["label"].iloc[0] == 0
    fake_extra = extras(ok[ok["is_fake"].astype(bool)])
    assert sorted(e["architecture"] for e in fake_extra) == ["bark", "xtts"]
    assert any("dev.csv lists no files" in w for w in df.attrs["warnings"])


def test_bad_lists_fail_clearly(tmp_path):
    root = make_mlaad(tmp_path / "MLAADv5")
    (root / "dev.csv").write_text("file,system\nx.wav,y\n")
    with pytest.raises(ReleaseError, match=r"dev\.csv.*lacks column\(s\) path, model_name"):
        prepare_mlaad(root)
    (root / "dev.csv").write_text("path,model_name\n../escape.wav,suno/bark\n,suno/bark\n"
                                  f"fake/en/suno_bark/jane_eyre_10_f000060.wav,{BARK},extra\n")
    df = prepare_mlaad(root)
    errors = sorted(df[(df["status"] != "ok") & (df["split"] == "dev")]["error"])
    assert len(errors) == 3
    assert any("line 2: path '../escape.wav' points outside the MLAAD root" in e for e in errors)
    assert any("line 3: empty path" in e for e in errors)
    assert any("line 4: 1 field(s) more than the header has" in e for e in errors)
    (root / "eval.csv").unlink()
    with pytest.raises(ReleaseError, match="eval.csv"):
        prepare_mlaad(root)


def test_ncst_ingest_mlaad(tmp_path):
    from typer.testing import CliRunner

    from pipeline.cli import app

    root = make_mlaad(tmp_path / "MLAADv5")
    lists = tmp_path / "lists"
    lists.mkdir()
    for name in ("train", "dev", "eval"):
        (root / f"{name}.csv").rename(lists / f"{name}.csv")
    out = tmp_path / "mlaad.parquet"
    runner = CliRunner()
    r = runner.invoke(app, ["ingest", "mlaad", str(root), "-o", str(out), "--lists-dir", str(lists),
                            "--protocol-dir", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    assert len(read_manifest(out)) == 10
    assert (tmp_path / "p" / "protocol" / "subsets" / "eval_ood.parquet").is_file()
    r = runner.invoke(app, ["ingest", "mlaad", str(root), "-o", str(out), "--metadata-dir", str(lists)])
    assert r.exit_code != 0 and "--metadata-dir does not apply to mlaad" in r.output
