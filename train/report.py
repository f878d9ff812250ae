"""Study outputs: tables as CSV + Markdown, and one self-contained HTML report.

The report embeds every plot as a base64 PNG and every table inline (with its notes: EER
convention, how AVG treated missing cells), so the single file can be mailed or archived. A study
whose protocol holds rows made with seeded random codec weights says so on the FIRST line of the
HTML file (an HTML comment) and in a red banner at the top of the page; the Markdown tables carry
the same warning as their first line.

The page is a list of :class:`Section` (id, title, HTML body, or a reason it is empty) put
together by :func:`render_page`: a contents list links to every section with data, empty ones
(a table of only ``n/a`` cells, a model without plots) are named in one "left out" line instead.
Figures show at their drawn size (see :mod:`train.plots`) and enlarge on a click.
"""
from __future__ import annotations

import base64
import html
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["Section", "card_html", "figure_html", "find_dataset_cards", "markdown_table", "random_banner", "render_html",
           "render_page", "table_has_data", "table_html", "write_table"]

TABLE_TITLES = {
    "table3_id_f1": "Table 3 - ID source tracing (eval_id): F1 per class",
    "table4_robustness": "Table 4 - robustness: F1 on unseen real, different config, different source, and AVG",
    "table4_robustness_detail": "Table 4 detail - micro F1 (= accuracy) per robustness set and condition",
    "table5_ood": "Table 5 - OOD detection (ID labels 0-6 positive): AUC / FPR95 / EER per condition, AVG",
    "table5_ood_detail": "Table 5 detail - OOD detection per OOD codec / condition and aggregates",
    "table6_alm": "Table 6 - ALM sets: F1 of tracing to the codec back end, AVG",
    "table6_alm_detail": "Table 6 detail - ALM sets: fake detection from P(real) and back-end tracing",
    "cors_detection": "CodecFake+ CoRS - real vs fake per codec: EER and share called fake, from P(real)",
    "taxonomy_f1": "Codec taxonomy - weighted F1 per task (REAL + classes) and bona fide vs spoof EER, per eval subset",
    "taxonomy_f1_detail": "Codec taxonomy detail - F1 per class of each head, per eval subset",
    "taxonomy_cors": "Codec taxonomy on CodecFake+ CoRS - per codec: true and predicted class, accuracy, EER",
    "taxonomy_cosg": "Codec taxonomy on CoSG (subset alm) - per system, seen / unseen: true and predicted class, accuracy, EER",
    "refd_frechet": "REFD - Fréchet distance per class: train vs each eval set (FD embeddings)",
    "refd_fusion_sweep": "REFD fusion - in-domain F1 vs OOD detection over the fusion weight w",
    "refd_decision": "REFD fusion - open-set decision (real / unknown / known system) per eval subset",
}
EER_SENTENCES = {
    "interpolated": "FPR95 and EER are read off the ROC with linear interpolation (EER convention: interpolated).",
    "anchor": ("FPR95 is read off the ROC with linear interpolation; EER follows the anchor's compute_eer "
               "(EER convention: anchor: nearest grid point, pessimistic for tied scores; MSP in float32)."),
}
MAX_CARD_CHARS = 20000


def random_banner(random_ids: Sequence[str]) -> str | None:
    """One-line warning for results made with seeded random weights (None when there are none)."""
    if not random_ids:
        return None
    return ("WARNING: RANDOM WEIGHTS - this study used audio or models made with seeded random weights ("
            + ", ".join(sorted(set(random_ids))) + "); its numbers say nothing about the real codecs.")


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.4f}"
    if v is None:
        return ""
    return str(v)


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-style Markdown table (floats to 4 decimals; '|' in cells escaped), via pandas' ``to_markdown``."""
    if df.empty:
        return "_(empty)_"
    cells = df.map(lambda v: _cell(v).replace("|", "\\|"))
    cells.columns = [str(c) for c in df.columns]
    # Cells are already text: no number re-parsing, so "0.1000" stays as written.
    return cells.to_markdown(index=False, tablefmt="pipe", disable_numparse=True)


def write_table(df: pd.DataFrame, out_dir: str | os.PathLike, stem: str, banner: str | None = None,
                notes: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write ``<stem>.csv`` and ``<stem>.md`` under ``out_dir``; the Markdown holds the optional
    warning banner first, then the title, ``notes`` (one paragraph each) and the table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv, md = out_dir / f"{stem}.csv", out_dir / f"{stem}.md"
    df.to_csv(csv, index=False, float_format="%.6f")
    parts = ([f"> **{banner}**", ""] if banner else []) + [f"# {TABLE_TITLES.get(stem, stem)}", ""]
    for note in notes:
        parts += [f"_{note}_", ""]
    parts += [markdown_table(df), ""]
    md.write_text("\n".join(parts), encoding="utf-8")
    return csv, md


def find_dataset_cards(protocol: Any, explicit: str | os.PathLike | None = None, max_parents: int = 6) -> list[tuple[Path, str]]:
    """Dataset cards (README.md) that belong to the protocol: ``[(path, text)]``.

    Looked for in order: ``explicit``; the protocol dir and its parent; then, for a sample of
    audio paths of every subset, the nearest ancestor folder holding both ``README.md`` and a
    ``manifests/`` folder (the dataset layout). Unreadable files are skipped, never fatal.
    """
    cands: list[Path] = []
    if explicit:
        cands.append(Path(explicit))
    pdir = Path(getattr(protocol, "directory", "."))
    cands += [pdir / "README.md", pdir.parent / "README.md"]
    seen_dirs: set[Path] = set()
    for df in getattr(protocol, "subsets", {}).values():
        paths = df["path"].dropna().astype(str)
        for p in paths.iloc[:: max(1, len(paths) // 20)].head(25):
            d = Path(p).parent
            for _ in range(max_parents):
                if d in seen_dirs or d == d.parent:
                    break
                seen_dirs.add(d)
                if (d / "README.md").is_file() and (d / "manifests").is_dir():
                    cands.append(d / "README.md")
                    break
                d = d.parent
    out, done = [], set()
    for c in cands:
        try:
            key = c.resolve()
            if key in done or not c.is_file():
                continue
            done.add(key)
            text = c.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if len(text) > MAX_CARD_CHARS:
            text = text[:MAX_CARD_CHARS] + f"\n... (cut at {MAX_CARD_CHARS} characters)"
        out.append((key, text))
    return out


@dataclass(frozen=True)
class Section:
    """One part of the report: ``id`` (the anchor the contents list links to), ``title`` (its
    heading and contents entry), ``body`` (HTML), ``empty`` (a reason: the section is left out
    and named in the "left out" note instead). Helpers add a section by appending one of these."""

    id: str
    title: str
    body: str
    empty: str | None = None


def table_has_data(df: pd.DataFrame) -> bool:
    """True when some cell outside the count columns (``n``, ``n_*``) is a number: a table of
    only ``n/a (...)`` cells and zero counts says nothing and is left out of the page."""
    for col in df.columns:
        name = str(col)
        if name == "n" or name.startswith("n_"):
            continue
        for v in df[col]:
            if isinstance(v, (bool, np.bool_)):
                continue
            if isinstance(v, (int, float, np.integer, np.floating)) and v == v:
                return True
    return False


def _empty_reason(df: pd.DataFrame) -> str:
    reasons = sorted({str(v) for col in df.columns for v in df[col] if isinstance(v, str) and v.startswith("n/a")})
    return "; ".join(reasons) if reasons else "no rows"


def table_html(df: pd.DataFrame) -> str:
    """A table as HTML (cells escaped, floats to 4 decimals)."""
    if df.empty:
        return "<p><em>(empty)</em></p>"
    out = df.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.4f}", border=0, classes="tbl")
    # "n/a (reason)" cells: greyed and cut to one short line, the whole reason on hover
    return re.sub(r"<td>(n/a[^<]*)</td>", r'<td class="na" title="\1">\1</td>', out)


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


def figure_html(path: Path, caption: str, link: str | None = None, save_dpi: float | None = None,
                display_dpi: float | None = None) -> str:
    """A figure: the PNG embedded (base64) at ``display_dpi`` / ``save_dpi`` of its pixel size, so
    its text reads at the size it was drawn; a click enlarges it to full resolution (an overlay
    in the page, so it works in a mailed copy) and ``link`` (the PNG file, relative to the page)
    opens it on its own."""
    from . import plots

    data = Path(path).read_bytes()
    size = _png_size(data)
    scale = (display_dpi or plots.DISPLAY_DPI) / (save_dpi or plots.SAVE_DPI)
    dims = f' width="{round(size[0] * scale)}" height="{round(size[1] * scale)}"' if size else ""
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    cap = html.escape(caption)
    href = html.escape(link or "#", quote=True)
    full = f' <a class="full" href="{href}" target="_blank">full-size PNG</a>' if link else ""
    return (f'<figure><a class="zoom" href="{href}" title="click to enlarge"><img alt="{cap}" src="{src}"{dims}></a>'
            f"<figcaption>{cap} <span class=\"hint\">(click to enlarge)</span>{full}</figcaption></figure>")


def card_html(text: str) -> str:
    """A dataset card (Markdown, maybe with a YAML header) as HTML: the header in a folded
    block, the rest rendered with ``markdown`` (tables, fenced code). Raw HTML in the card is
    shown as text, not run."""
    import markdown

    header = ""
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end > 0:
            header = text[4:end]
            text = text[end + 4:].lstrip("\n")
    # tags become text; a '>' elsewhere (blockquotes) keeps its Markdown meaning
    text = re.sub(r"<([^<>\n]*)>", r"&lt;\1&gt;", text).replace("<", "&lt;")
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists"])
    folded = ("<details><summary>YAML header (dataset metadata)</summary><pre>" + html.escape(header) + "</pre></details>"
              if header else "")
    return f'<div class="card">{folded}{body}</div>'


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222;font-size:16px;line-height:1.4}
.random{background:#b00020;color:#fff;padding:1em;font-size:1.3em;font-weight:bold;border-radius:4px}
nav.toc{background:#f4f6f8;border:1px solid #dde;padding:.6em 1.2em;margin:1em 0;columns:2;font-size:.95em}
nav.toc ol{margin:.2em 0}
table.tbl{border-collapse:collapse;font-size:.9em;margin:.5em 0 1.5em}
table.tbl th,table.tbl td{border:1px solid #ccc;padding:3px 6px;text-align:right;white-space:nowrap}
table.tbl td.na{color:#999;font-size:.85em;max-width:9em;overflow:hidden;text-overflow:ellipsis}
table.tbl th{background:#eee;position:sticky;top:0}
table.tbl tbody tr:nth-child(even){background:#fafafa}
.scroll{overflow-x:auto;max-width:100%}
figure{display:block;margin:1em 0}
figure img{max-width:100%;height:auto;border:1px solid #ddd;cursor:zoom-in}
figcaption{font-size:.95em;color:#333}
.hint,.full{font-size:.85em;color:#666}
#zoom{display:none;position:fixed;inset:0;background:rgba(0,0,0,.85);overflow:auto;z-index:9;cursor:zoom-out}
#zoom img{display:block;margin:1em auto;background:#fff;max-width:none}
pre{background:#f6f6f6;padding:1em;overflow:auto;max-height:40em}
.card{border-left:4px solid #ccd;padding:0 1em}
.card table{border-collapse:collapse}.card td,.card th{border:1px solid #ccc;padding:2px 6px}
.failed{color:#b00020}
.note{font-size:.9em;color:#444;margin:.2em 0}
.leftout{font-size:.9em;color:#555;border-top:1px solid #ddd;padding-top:.4em}
"""
# Click-to-enlarge without copying the image data: the overlay shows the clicked <img>'s own
# source at its natural size. Without scripts the link opens the PNG file beside the report.
_JS = """
document.addEventListener('click',function(e){var z=document.getElementById('zoom');
if(e.target.closest('#zoom')){z.style.display='none';z.innerHTML='';return;}
var a=e.target.closest('a.zoom');if(!a)return;e.preventDefault();
var i=document.createElement('img');i.src=a.querySelector('img').src;z.innerHTML='';z.appendChild(i);z.style.display='block';});
document.addEventListener('keydown',function(e){if(e.key==='Escape'){var z=document.getElementById('zoom');z.style.display='none';z.innerHTML='';}});
"""


def _anchor(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-").lower() or "section"


def render_page(title: str, banner: str | None, intro: str, sections: Sequence[Section]) -> str:
    """The HTML page: warning (first line and banner), title, intro, a contents list linking to
    every section that has data, the sections, then one line naming those left out and why."""
    esc = html.escape
    shown = [s for s in sections if s.empty is None]
    left = [s for s in sections if s.empty is not None]
    ids = [s.id for s in shown]
    if len(set(ids)) != len(ids):
        raise ValueError(f"report sections with the same id: {sorted({i for i in ids if ids.count(i) > 1})}")
    head = [f"<!-- {esc(banner)} -->" if banner else "<!-- ncst study report -->", "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
            f"<style>{_CSS}</style></head><body>"]
    body = [f'<div class="random" id="random-weights">{esc(banner)}</div>'] if banner else []
    body += [f"<h1>{esc(title)}</h1>", intro]
    body.append('<nav class="toc" id="contents"><b>Contents</b><ol>'
                + "".join(f'<li><a href="#{esc(s.id)}">{esc(s.title)}</a></li>' for s in shown) + "</ol></nav>")
    for s in shown:
        body += [f'<section id="{esc(s.id)}"><h2>{esc(s.title)}</h2>', s.body, "</section>"]
    if left:
        body.append('<p class="leftout" id="left-out">Left out (no data): '
                    + "; ".join(f"{esc(s.title)} - {esc(s.empty)}" for s in left) + ".</p>")
    body += ['<div id="zoom" title="click or Esc to close"></div>', f"<script>{_JS}</script>"]
    return "\n".join(head + body + ["</body></html>", ""])


def render_html(
    *,
    title: str,
    random_ids: Sequence[str],
    tables: Mapping[str, pd.DataFrame],
    images: Mapping[str, Sequence[tuple[str, Path]]],
    notes: Mapping[str, Sequence[str]] | None = None,
    weights: pd.DataFrame,
    protocol: Any,
    cards: Sequence[tuple[Path, str]],
    results: Mapping[str, Any],
    extra_sections: Sequence[Section] = (),
    base_dir: str | os.PathLike | None = None,
) -> str:
    """The whole report as one HTML string (first line: the random-weights warning, if any).

    Sections in order: protocol, every table (``TABLE_TITLES`` names them), ``extra_sections``,
    plots (one section per model), codec weights, models, dataset card. Tables with no number
    and models with no plot are left out and listed in one line at the end. ``base_dir`` (the
    folder the page is written to) makes the full-size links of the plots relative.
    """
    esc = html.escape
    intro = (f"<p>Made {esc(str(results.get('created_at', '')))} from protocol <code>{esc(str(results.get('protocol_dir', '')))}</code>. "
             "Scores: higher = more in-distribution; OOD metrics take ID (labels 0-6) as positive. "
             + esc(EER_SENTENCES.get(str(results.get("eer_convention", "interpolated")), ""))
             + " (See train/metrics.py.)</p>")
    sections: list[Section] = []
    subset_rows = pd.DataFrame(
        [{"subset": s, "rows": n, "failed rows dropped": results.get("protocol_failed_rows_dropped", {}).get(s, 0)}
         for s, n in results.get("protocol", {}).items()])
    proto = [table_html(subset_rows)]
    for subset, err in (results.get("protocol_errors") or {}).items():
        proto.append(f'<p class="failed">Subset <b>{esc(subset)}</b> could not be read and is left out: {esc(str(err))}</p>')
    models = results.get("models", {})
    for m, v in models.items():
        if v.get("status") == "failed":
            proto.append(f'<p class="failed">Model <b>{esc(m)}</b> failed: {esc(str(v.get("error")))}</p>')
    sections.append(Section("protocol", "Protocol", "\n".join(proto)))
    for stem, df in tables.items():
        body = [f'<p class="note">{esc(n)}</p>' for n in (notes or {}).get(stem, ())]
        body.append(f'<div class="scroll">{table_html(df)}</div>')
        empty = None if table_has_data(df) else _empty_reason(df)
        sections.append(Section(stem, TABLE_TITLES.get(stem, stem), "\n".join(body), empty))
    sections += list(extra_sections)
    for model, imgs in images.items():
        figs = []
        for cap, p in imgs:
            link = None
            if base_dir is not None:
                try:
                    link = Path(os.path.relpath(Path(p).resolve(), Path(base_dir).resolve())).as_posix()
                except ValueError:  # another drive (Windows): no relative path
                    link = None
            figs.append(figure_html(Path(p), cap, link=link))
        sections.append(Section("plots-" + _anchor(model), f"Plots - {model}", "\n".join(figs),
                                None if figs else "no plottable predictions"))
    sections.append(Section("codec-weights", "Codec weights in the protocol",
                            "<p>weights_id of every codec variant found in the protocol rows.</p>" + table_html(weights),
                            None if not weights.empty else "no codec rows in the protocol"))
    mbody = []
    for m, v in models.items():
        cfg = v.get("train_config")
        what = (f"codec-taxonomy {v.get('variant', '')}, heads {', '.join(v.get('tasks') or [])}, "
                f"{v.get('frontend', '')} front end") if v.get("kind") == "taxonomy" else f"classes {v.get('classes', '')}"
        mbody.append(f"<h3>{esc(m)}</h3><p><code>{esc(str(v.get('path', '')))}</code> - {esc(what)}</p>")
        if cfg:
            mbody.append("<details><summary>training config</summary><pre>"
                         + esc("\n".join(f"{k}: {val}" for k, val in cfg.items())) + "</pre></details>")
    sections.append(Section("models", "Models", "\n".join(mbody), None if models else "no models"))
    cbody = [f"<p><code>{esc(str(path))}</code></p>{card_html(text)}" for path, text in cards]
    sections.append(Section("dataset-card", "Dataset card", "\n".join(cbody),
                            None if cards else "no README.md next to the protocol or its audio"))
    return render_page(title, random_banner(random_ids), intro, sections)
