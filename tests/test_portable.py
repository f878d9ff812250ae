"""A small end-to-end dataset (demo corpus -> ingest -> generate -> protocol), MOVED to another
folder: protocol, train and study still work there; standard readers (pandas, pyarrow, Ray Data,
Hugging Face datasets, lhotse) open it with no glue; exports; files respect the umask."""
from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pandas as pd
import pyarrow.dataset as pads
import pytest
import soundfile as sf
import yaml
from typer.testing import CliRunner

from gen_helpers import RAY_IP, ray_temp_dir
from manifests import read_manifest, write_manifest, write_text_atomic
from manifests.atomic import write_bytes_atomic
from manifests.schema import ST_LABELS

VARIANT = "funcodec_16k_ds320_time"  # an ID codec (ST label 3), quick on CPU with random weights


def _run(*args):
    from pipeline.cli import app

    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    return res


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """Build a tiny project under ``a/``, then move it to ``b/moved``; returns the new folder."""
    from pipeline.demo_corpus import ingest_demo_corpus, make_demo_corpus

    base = tmp_path_factory.mktemp("portable")
    proj = base / "a" / "proj"
    demo = make_demo_corpus(proj / "corpus", seed=0, vctk_speakers=2, aishell3_speakers=2, utterances_per_speaker=3,
                            min_duration_s=0.5, max_duration_s=0.8)
    ingest_demo_corpus(demo, proj / "sources")
    recipe = {
        "name": "portable", "output_dir": ".",
        "generate": {"sources": ["sources/vctk.parquet", "sources/aishell3.parquet"], "variants": [VARIANT],
                     "weights": "random:0", "executor": "local", "batch_size": 4},
        "protocol": {"real": ["sources/vctk.parquet", "sources/aishell3.parquet"],
                     "sizes": {"train": 0.5, "dev": 0.25, "eval": 0.25}, "seed": 1, "id_variants": [VARIANT]},
        "train": {"model": "mel_lcnn", "epochs": 1, "batch_size": 4, "num_samples": 8000, "progress": False},
        "study": {"models": ["mel_lcnn"], "device": "cpu", "plots": False, "detectors": ["msp"]},
    }
    (proj / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    _run("generate", proj / "recipe.yaml")
    _run("protocol", proj / "recipe.yaml")
    _run("train", "--recipe", proj / "recipe.yaml", "--model", "mel_lcnn")
    new = base / "b" / "moved"
    new.parent.mkdir()
    shutil.move(str(proj), str(new))
    shutil.rmtree(base / "a")  # nothing of the old place is left to read by accident
    return new


def test_moved_project_reads_its_own_files(moved):
    fake = read_manifest(moved / "dataset" / "manifests" / "fake.parquet", validate=True)
    assert Path(fake.attrs["root"]) == (moved / "dataset").resolve()
    meta = json.loads(pads.dataset(moved / "dataset" / "manifests" / "fake.parquet").schema.metadata[b"ncst"])
    assert not os.path.isabs(meta["root"])  # stored relative to the manifest's folder
    train = read_manifest(moved / "protocol" / "subsets" / "train.parquet")
    assert train["path"].map(lambda p: Path(p).is_file() and str(moved.resolve()) in p).all()
    cfg = json.loads((moved / "runs" / "mel_lcnn" / "config.json").read_text())
    assert cfg["protocol_dir"] == "../../protocol"


def test_moved_project_protocol_train_and_study(moved):
    _run("protocol", moved / "recipe.yaml")
    _run("train", "--recipe", moved / "recipe.yaml", "--model", "mel_lcnn", "--epochs", "2", "--resume")
    _run("study", moved / "recipe.yaml")
    results = json.loads((moved / "study" / "results.json").read_text())
    assert results["models"]["mel_lcnn"]["status"] == "ok"
    assert results["models"]["mel_lcnn"]["table3"]["n"] > 0
    from train.predict import load_trained

    _, config, _ = load_trained(moved / "runs" / "mel_lcnn")
    assert Path(config.protocol_dir) == (moved / "protocol").resolve()


def test_pandas_and_pyarrow_read_each_row_once(moved):
    subsets = {p.stem: pd.read_parquet(p) for p in (moved / "protocol" / "subsets").glob("*.parquet")}
    whole = pd.read_parquet(moved / "protocol" / "subsets")
    assert len(whole) == sum(len(d) for d in subsets.values()) > 0
    assert whole.groupby("subset").size().to_dict() == {k: len(v) for k, v in subsets.items()}
    assert pads.dataset(moved / "protocol" / "subsets", format="parquet").count_rows() == len(whole)
    fake = read_manifest(moved / "dataset" / "manifests" / "fake.parquet")
    assert not (moved / "dataset" / "manifests" / "shards").exists()  # work state lives in dataset/.ncst/
    got = pd.read_parquet(moved / "dataset" / "manifests")
    assert sorted(got["utt_id"]) == sorted(fake["utt_id"])


def test_ray_data_reads_each_row_once(moved):
    import ray

    ray.init(_node_ip_address=RAY_IP, num_cpus=1, include_dashboard=False, _temp_dir=ray_temp_dir(),
             log_to_driver=False)
    try:
        rows = ray.data.read_parquet(str(moved / "protocol" / "subsets")).take_all()
        expected = sum(len(pd.read_parquet(p)) for p in (moved / "protocol" / "subsets").glob("*.parquet"))
        assert len(rows) == expected and len({(r["subset"], r["utt_id"]) for r in rows}) == expected
        fake = ray.data.read_parquet(str(moved / "dataset" / "manifests")).take_all()
        assert len(fake) == len(read_manifest(moved / "dataset" / "manifests" / "fake.parquet"))
    finally:
        ray.shutdown()


def test_hf_datasets_open_dataset_and_protocol_folders(moved, tmp_path):
    # cache_dir: a fresh HF cache per test (its cache is keyed by paths and times, not content)
    import datasets

    ds = datasets.load_dataset(str(moved / "dataset"), cache_dir=str(tmp_path / "c"))
    fake = read_manifest(moved / "dataset" / "manifests" / "fake.parquet")
    assert list(ds) == ["fake"] and ds["fake"].num_rows == len(fake)
    proto = datasets.load_dataset(str(moved / "protocol"), cache_dir=str(tmp_path / "c"))
    files = {p.stem: len(pd.read_parquet(p)) for p in (moved / "protocol" / "subsets").glob("*.parquet")}
    assert {k: v.num_rows for k, v in proto.items()} == files
    assert set(proto["train"]["subset"]) == {"train"}
    card = (moved / "dataset" / "README.md").read_text()
    assert card.startswith("---\n") and "license: other" in card and "task_categories" in card
    assert "`source_utt_id`" in card and "vctk" in card and "random:0" in card


def test_export_hf_embedded_and_referenced(moved, tmp_path):
    import datasets

    _run("export", "hf", moved / "protocol", "-o", tmp_path / "hf")
    shutil.move(str(tmp_path / "hf"), str(tmp_path / "hf_moved"))  # embedded audio: self-contained
    ds = datasets.load_dataset(str(tmp_path / "hf_moved"), cache_dir=str(tmp_path / "c"))
    train = ds["train"]
    assert isinstance(train.features["audio"], datasets.Audio)
    assert train.features["label"].names == [ST_LABELS[i] for i in sorted(ST_LABELS)]
    want = read_manifest(moved / "protocol" / "subsets" / "train.parquet")
    assert sorted(train["utt_id"]) == sorted(want["utt_id"])
    # torchcodec cannot decode on this machine: read the embedded bytes with soundfile
    raw = train.cast_column("audio", datasets.Audio(decode=False))[0]
    import io

    x, sr = sf.read(io.BytesIO(raw["audio"]["bytes"]))
    row = want.set_index("utt_id").loc[raw["utt_id"]]
    assert sr == row["sample_rate"] and len(x) == row["num_samples"]
    assert train.features["label"].int2str(raw["label"]) == row["label_name"] or row["label"] == 0
    _run("export", "hf", moved / "dataset", "-o", tmp_path / "ref", "--reference")
    ref = datasets.load_dataset(str(tmp_path / "ref"), cache_dir=str(tmp_path / "c"))["fake"].cast_column("audio", datasets.Audio(decode=False))
    assert ref[0]["audio"]["bytes"] is None and Path(ref[0]["audio"]["path"]).is_file()


def test_export_lhotse_validates_with_audio(moved, tmp_path):
    import lhotse

    _run("export", "lhotse", moved / "protocol", "-o", tmp_path / "lh")
    cuts = lhotse.load_manifest(tmp_path / "lh" / "ncst_cuts_eval_id.jsonl.gz")
    lhotse.validate(cuts, read_data=True)
    recs = lhotse.load_manifest(tmp_path / "lh" / "ncst_recordings_eval_id.jsonl.gz")
    sups = lhotse.load_manifest(tmp_path / "lh" / "ncst_supervisions_eval_id.jsonl.gz")
    lhotse.validate_recordings_and_supervisions(recs, sups, read_data=True)
    want = read_manifest(moved / "protocol" / "subsets" / "eval_id.parquet").set_index("utt_id")
    assert sorted(c.id for c in cuts) == sorted(want.index)
    for cut in cuts:
        sup = cut.supervisions[0]
        assert sup.custom["label"] == int(want.at[cut.id, "label"])
        assert sup.custom["subset"] == "eval_id" and sup.custom["corpus_split"] == want.at[cut.id, "split"]
        assert sup.speaker == want.at[cut.id, "speaker"]


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_atomic_writes_respect_umask(tmp_path, mask):
    from manifests.card import write_card
    from manifests.rows import real_row

    old = os.umask(mask)
    try:
        write_text_atomic(tmp_path / "report.html", "x")
        write_bytes_atomic(tmp_path / "a.flac", b"x")
        row = real_row(utt_id="u", corpus="c", path="u.wav", speaker="s", language="en", split="", sample_rate=16000,
                       num_samples=1, duration_s=1 / 16000)
        write_manifest([row], tmp_path / "m.parquet")
        write_card(read_manifest(tmp_path / "m.parquet"), tmp_path)
        import torch

        from train.trainer import _atomic_torch_save

        _atomic_torch_save({"a": torch.zeros(1)}, tmp_path / "last.pt")
        import numpy as np

        from pipeline.audio_io import write_audio

        write_audio(tmp_path / "b.flac", np.zeros(160, dtype=np.float32), 16000)
    finally:
        os.umask(old)
    for name in ("report.html", "a.flac", "b.flac", "m.parquet", "README.md", "last.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name


def test_portable_path_rule(tmp_path):
    from manifests.paths import portable_path, resolve_path

    folder = tmp_path / "run" / "dataset" / "manifests"
    inside = tmp_path / "run" / "corpus" / "vctk"
    assert portable_path(inside, folder) == os.path.join("..", "..", "corpus", "vctk")
    assert resolve_path(portable_path(inside, folder), folder) == str(inside)
    assert portable_path("/elsewhere/VCTK", folder) == "/elsewhere/VCTK"  # outside the tree: absolute
    assert portable_path("/x", "/a") == "/x"  # no tree above a top-level folder
