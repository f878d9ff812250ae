"""Report pieces: Markdown/CSV tables, the random-weights warning, dataset cards, the HTML page."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from train import plots, report


def test_markdown_table_formats_and_escapes():
    df = pd.DataFrame([{"model": "a|b", "auc": 0.123456, "n": 3, "note": None, "x": float("nan")}])
    md = report.markdown_table(df)
    squeeze = [" ".join(line.split()) for line in md.splitlines()]  # alignment padding aside
    assert squeeze[0] == "| model | auc | n | note | x |" and set(squeeze[1]) <= set("|:- ")
    assert "| a\\|b | 0.1235 | 3 | | |" in squeeze
    assert report.markdown_table(pd.DataFrame()) == "_(empty)_"


def test_write_table_banner_first_line(tmp_path):
    df = pd.DataFrame([{"model": "m", "f1": 0.5}])
    csv, md = report.write_table(df, tmp_path, "table4_robustness", banner=report.random_banner(["random:3"]))
    assert md.read_text().splitlines()[0].startswith("> **WARNING: RANDOM WEIGHTS") and "random:3" in md.read_text()
    assert pd.read_csv(csv).to_dict("records") == [{"model": "m", "f1": 0.5}]
    _, md2 = report.write_table(df, tmp_path, "t", banner=report.random_banner([]))
    assert md2.read_text().startswith("# t")


def test_find_dataset_cards(tmp_path):
    ds = tmp_path / "dataset"
    (ds / "manifests").mkdir(parents=True)
    (ds / "audio" / "mimi").mkdir(parents=True)
    (ds / "README.md").write_text("# my card\n")
    (tmp_path / "noise" / "audio").mkdir(parents=True)
    (tmp_path / "noise" / "README.md").write_text("not a dataset: no manifests/ beside it")
    pdir = tmp_path / "protocol"
    pdir.mkdir()
    rows = pd.DataFrame({"path": [str(ds / "audio" / "mimi" / "a.wav"), str(tmp_path / "noise" / "audio" / "b.wav")]})
    proto = SimpleNamespace(directory=pdir, subsets={"eval_id": rows})
    cards = report.find_dataset_cards(proto)
    assert [(p.name, t) for p, t in cards] == [("README.md", "# my card\n")] and cards[0][0].parent == ds.resolve()
    # explicit card first; missing files are skipped, not fatal
    (pdir / "README.md").write_text("protocol card")
    cards = report.find_dataset_cards(proto, explicit=tmp_path / "missing.md")
    assert [t for _, t in cards] == ["protocol card", "# my card\n"]


def test_render_html_self_contained(tmp_path):
    png = plots.confusion(np.array([0, 1, 1]), np.array([0, 1, 0]), [0, 1], tmp_path / "c.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    tables = {"table3_id_f1": pd.DataFrame([{"model": "m", "macro_f1": 0.75}]),
              "table6_alm": pd.DataFrame([{"model": "m", "condition": "n/a (no data)"}])}
    weights = pd.DataFrame([{"codec": "Mimi", "variant": "mimi", "weights_id": "random:1", "rows": 3}])
    kw = dict(title="t <x>", tables=tables, images={"m": [("confusion", png)]}, weights=weights,
              protocol=None, cards=[(Path("/d/README.md"), "# card <b>")],
              results={"protocol": {"eval_id": 3}, "models": {"m": {"status": "ok", "path": "/r"}}})
    page = report.render_html(random_ids=["random:1"], **kw)
    lines = page.splitlines()
    assert "RANDOM WEIGHTS" in lines[0] and "random:1" in lines[0]
    assert 'class="random"' in page and page.index('class="random"') < page.index("<h1>")
    assert "data:image/png;base64," in page and "<img" in page and 'src="c.png"' not in page
    assert "Table 3" in page and "Table 6" in page and "n/a (no data)" in page
    assert "&lt;b&gt;" in page and "t &lt;x&gt;" in page  # escaped
    clean = report.render_html(random_ids=[], **kw)
    assert "RANDOM" not in clean.splitlines()[0] and 'class="random"' not in clean


def test_plots_skip_empty_inputs(tmp_path):
    assert plots.roc_curves({"msp": {"eval_id": np.ones(3)}}, tmp_path / "r.png") is None
    assert plots.confusion(np.array([]), np.array([]), [0], tmp_path / "c.png") is None
    assert plots.embedding_map(np.ones((2, 4)), np.array([0, 1]), tmp_path / "e.png") is None
    p = plots.embedding_map(np.random.default_rng(0).normal(size=(30, 5)), np.arange(30) % 3, tmp_path / "t.png", method="tsne")
    assert p.exists()


def test_write_table_notes_under_the_title(tmp_path):
    df = pd.DataFrame([{"model": "m", "AVG": 0.5}])
    _, md = report.write_table(df, tmp_path, "table5_ood", notes=["EER convention: anchor (x).", "AVG note"])
    lines = [" ".join(line.split()) for line in md.read_text().splitlines()]  # alignment padding aside
    assert lines[0].startswith("# Table 5")
    assert lines.index("_EER convention: anchor (x)._") < lines.index("_AVG note_") < lines.index("| model | AVG |")


def test_render_html_shows_tables_3_to_6_with_notes_and_eer_convention():
    stems = ["table3_id_f1", "table4_robustness", "table4_robustness_detail", "table5_ood", "table5_ood_detail",
             "table6_alm", "table6_alm_detail", "cors_detection"]
    tables = {s: pd.DataFrame([{"model": "m", "x": 1.0}]) for s in stems}
    notes = {"table5_ood": ["EER convention: anchor <pessimistic>."]}
    kw = dict(title="t", random_ids=[], tables=tables, images={}, weights=pd.DataFrame(), protocol=None, cards=[])
    page = report.render_html(notes=notes, results={"eer_convention": "anchor", "models": {}}, **kw)
    for n in (3, 4, 5, 6):
        assert f"<section id=\"table{n}_" in page and f"Table {n} - " in page
    assert "Table 4 detail" in page and "Table 5 detail" in page and "Table 6 detail" in page
    # the note sits between Table 5's title and its table, escaped
    t5 = page.index('id="table5_ood"')
    assert t5 < page.index("EER convention: anchor &lt;pessimistic&gt;.") < page.index('id="table5_ood_detail"')
    assert "EER convention: anchor" in page.split("<h2")[0]  # said in the intro too
    plain = report.render_html(results={"models": {}}, **kw)
    assert "EER convention: interpolated" in plain and "EER convention: anchor" not in plain
