"""The report as a page: contents list, hidden empty sections, click-to-enlarge figures at their
drawn size, the dataset card as HTML, DET curves; and (slow) a headless-browser screenshot."""
from __future__ import annotations

import struct
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from train import plots, report
from train.tables import NA


class Page(HTMLParser):
    """Collects element ids, the contents list's links, and every <img> with its enclosing <a>."""

    def __init__(self, text: str):
        super().__init__()
        self.ids: list[str] = []
        self.toc: list[str] = []
        self.imgs: list[dict] = []
        self.pres: list[str] = []
        self._in_nav = self._in_pre = False
        self._a: dict | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "nav":
            self._in_nav = True
        elif tag == "a":
            self._a = a
            if self._in_nav:
                self.toc.append(a["href"])
        elif tag == "img":
            self.imgs.append({**a, "link": self._a})
        elif tag == "pre":
            self._in_pre = True
            self.pres.append("")

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_nav = False
        elif tag == "a":
            self._a = None
        elif tag == "pre":
            self._in_pre = False

    def handle_data(self, data):
        if self._in_pre:
            self.pres[-1] += data


def _png_px(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    return struct.unpack(">II", data[16:24])


def _page(tmp_path: Path, tables=None, cards=(), images=None, extra=()) -> str:
    png = plots.confusion(np.array([0, 1, 1, 2]), np.array([0, 1, 0, 2]), [0, 1, 2], tmp_path / "plots" / "m" / "c.png")
    tables = tables if tables is not None else {
        "table3_id_f1": pd.DataFrame([{"model": "m", "n": 4, "macro_f1": 0.75}]),
        # a study without CodecFake+: the CoRS table holds only n/a cells and zero counts
        "cors_detection": pd.DataFrame([{"model": "m", "condition": NA, "n_real": 0, "n_fake": 0, "eer": NA, "fake_rate": NA}]),
    }
    return report.render_html(
        title="t", random_ids=["random:1"], tables=tables, images=images if images is not None else {"m one": [("confusion", png)]},
        weights=pd.DataFrame([{"codec": "Mimi", "variant": "mimi", "weights_id": "random:1", "rows": 3}]),
        protocol=None, cards=list(cards), results={"protocol": {"eval_id": 4}, "models": {"m": {"status": "ok", "path": "/r"}}},
        extra_sections=list(extra), base_dir=tmp_path)


def test_contents_links_resolve_to_section_ids(tmp_path):
    extra = [report.Section("frechet", "Fréchet distances", "<p>x</p>")]
    page = _page(tmp_path, cards=[(Path("/d/README.md"), "# card\n")], extra=extra)
    p = Page(page)
    assert p.toc, "no contents list"
    targets = [h.removeprefix("#") for h in p.toc]
    assert all(h.startswith("#") for h in p.toc)
    assert set(targets) <= set(p.ids), set(targets) - set(p.ids)
    assert len(set(p.ids)) == len(p.ids)  # every id once
    # the sections in order, the extra one (another helper's) among them
    assert targets == ["protocol", "table3_id_f1", "frechet", "plots-m-one", "codec-weights", "models", "dataset-card"]
    assert page.splitlines()[0].startswith("<!-- WARNING: RANDOM WEIGHTS")  # still the first line


def test_empty_sections_are_hidden_and_named(tmp_path):
    page = _page(tmp_path)
    p = Page(page)
    assert "cors_detection" not in p.ids and "#cors_detection" not in p.toc
    assert "CodecFake+ CoRS" not in page.split('id="left-out"')[0]  # no table of n/a anywhere above the note
    note = page.split('id="left-out"')[1].split("</p>")[0]
    assert "CodecFake+ CoRS" in note and "n/a (no data)" in note
    assert "Dataset card" in note and "dataset-card" not in p.ids  # no card found
    # a table with one number is shown
    assert report.table_has_data(pd.DataFrame([{"model": "m", "n": 0, "eer": NA, "auc": 0.5}]))
    assert not report.table_has_data(pd.DataFrame([{"model": "m", "n": 3, "n_fake": 2, "eer": "n/a (x)"}]))
    assert not report.table_has_data(pd.DataFrame())


def test_duplicate_section_ids_are_refused():
    s = report.Section("a", "A", "")
    with pytest.raises(ValueError, match="same id"):
        report.render_page("t", None, "", [s, s])


def test_images_enlarge_on_click_and_show_at_drawn_size(tmp_path):
    page = _page(tmp_path)
    p = Page(page)
    assert len(p.imgs) == 1
    img = p.imgs[0]
    assert img["src"].startswith("data:image/png;base64,")  # still self-contained
    assert img["link"] is not None and "zoom" in img["link"]["class"]
    target = tmp_path / img["link"]["href"]
    assert target.is_file() and target == tmp_path / "plots" / "m" / "c.png"  # the full-resolution file, relative
    w, h = _png_px(target)
    assert int(img["width"]) == round(w * plots.DISPLAY_DPI / plots.SAVE_DPI)
    assert int(img["height"]) == round(h * plots.DISPLAY_DPI / plots.SAVE_DPI)
    assert 'id="zoom"' in page and "addEventListener('click'" in page


def test_figure_dpi_and_size_as_configured(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    scores = {d: {"eval_id": rng.normal(1, 1, 40), "eval_ood/X": rng.normal(0, 1, 30), "ood_other/Y": rng.normal(-1, 1, 30)}
              for d in ("msp", "energy")}
    paths = [plots.roc_curves(scores, tmp_path / "roc.png"), plots.det_curves(scores, tmp_path / "det.png"),
             plots.embedding_map(rng.normal(size=(60, 8)), np.arange(60) % 12, tmp_path / "e.png"),
             plots.confusion(np.arange(12) % 7, np.arange(12) % 7, list(range(7)), tmp_path / "c.png")]
    for path in paths:
        im = Image.open(path)
        assert im.info["dpi"][0] == pytest.approx(plots.SAVE_DPI, abs=0.1), path
        shown_px = im.size[0] * plots.DISPLAY_DPI / plots.SAVE_DPI
        # shown 1:1 in a 1400 px page (no shrinking), and big enough to read
        assert 300 < shown_px <= 1400 - 2 * 32, (path, shown_px)
    # two panels side by side on a 4.2 in grid, drawn at SAVE_DPI (bbox "tight" trims a little)
    w, _ = Image.open(paths[0]).size
    assert 0.8 * 2 * 4.2 * plots.SAVE_DPI < w < 1.05 * 2 * 4.2 * plots.SAVE_DPI
    assert plots.FONT_SIZE >= 10


def test_det_plot_for_scores_and_model_plots(tmp_path):
    rng = np.random.default_rng(1)
    scores = {"msp": {"eval_id": rng.normal(1, 1, 20), "eval_ood/X": rng.normal(0, 1, 20)}}
    det = plots.det_curves(scores, tmp_path / "d.png")
    assert det is not None and det.read_bytes()[:4] == b"\x89PNG"
    assert plots.det_curves({"msp": {"eval_id": np.ones(3)}}, tmp_path / "none.png") is None  # no OOD condition
    from types import SimpleNamespace

    out = plots.model_plots("m", {"scores": scores, "preds": {}}, tmp_path / "mp", SimpleNamespace(embedding_map="pca", seed=0))
    names = {p.name for _, p in out}
    assert {"roc.png", "det.png", "scores.png"} <= names and (tmp_path / "mp" / "det.png").is_file()


def test_embedding_map_gives_every_label_its_own_colour_and_marker():
    styles = [plots.label_style(i) for i in range(14)]
    assert len({(tuple(c), m) for c, m in styles}) == 14
    # neighbours (i, i+1) differ in both colour and marker
    assert all(styles[i][0] != styles[i + 1][0] and styles[i][1] != styles[i + 1][1] for i in range(13))


def test_dataset_card_rendered_as_html(tmp_path):
    card = ("---\nlicense: cc-by-4.0\nconfigs:\n- config_name: default\n---\n# My dataset\n\n"
            "> **Made with seeded random codec weights**\n\n- rows: 54\n\n| corpus | rows |\n|---|---|\n| vctk | 28 |\n\n"
            "<script>alert(1)</script> and <b>bold</b>\n")
    page = _page(tmp_path, cards=[(Path("/d/README.md"), card)])
    body = page.split('id="dataset-card"')[1]
    assert "<h1>My dataset</h1>" in body and "<table>" in body and "<td>vctk</td>" in body
    assert "<blockquote>" in body and "<li>rows: 54</li>" in body
    assert "<script>alert" not in body and "&lt;script&gt;" in body and "&lt;b&gt;bold" in body
    assert "# My dataset" not in body and "|---|" not in body  # no raw Markdown left
    p = Page(page)
    assert p.pres == ["license: cc-by-4.0\nconfigs:\n- config_name: default"]  # only the YAML header, folded


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_report_screenshot_is_not_blank(tmp_path):
    """Draw a study's report in headless Chromium and check the picture holds the page."""
    from train import screenshot

    if screenshot.find_browser() is None:
        pytest.fail("no headless Chromium: apt-get install chromium-headless-shell (or set NCST_CHROMIUM)")
    from test_study import KnownPredictor, _setup

    from train import study as S

    res = S.run_study_from_recipe(_setup(tmp_path), predict_fn=KnownPredictor())
    png = screenshot.screenshot(res.report, tmp_path / "shot.png", width=1400, height=3000)
    from PIL import Image

    im = Image.open(png).convert("RGB")
    assert im.size == (1400, 3000)
    assert screenshot.blank_share(png) < 0.5  # most rows of the first screen hold text, tables or plots
    a = np.asarray(im).astype(int)
    # the red random-weights banner is drawn at the top
    top = a[:200]
    assert ((top[..., 0] > 150) & (top[..., 1] < 60) & (top[..., 2] < 60)).mean() > 0.05
    # a blank page is measured as blank
    empty = tmp_path / "empty.html"
    empty.write_text("<html><body></body></html>")
    assert screenshot.blank_share(screenshot.screenshot(empty, tmp_path / "e.png", height=400)) == 1.0
    # further down, the plots: many colours (curves, colour maps), not just text
    full = screenshot.screenshot(res.report, tmp_path / "full.png", width=1400, height=14000)
    colours = np.unique(np.asarray(Image.open(full).convert("RGB")).reshape(-1, 3)[::7], axis=0)
    assert len(colours) > 200
