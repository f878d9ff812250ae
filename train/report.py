"""Study outputs: tables as CSV + Markdown, and one self-contained HTML report.

The report embeds every plot as a base64 PNG and every table inline (with its notes: EER
convention, how AVG treated missing cells), so the single file can be mailed or archived. A study whose protocol holds rows made with seeded random codec weights says so
on the FIRST line of the HTML file (an HTML comment) and in a red banner at the top of the page;
the Markdown tables carry the same warning as their first line.
"""
from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

__all__ = ["find_dataset_cards", "markdown_table", "random_banner", "render_html", "write_table"]

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


def _html_table(df: pd.DataFrame) -> str:
    if df.empty:
        return "<p><em>(empty)</em></p>"
    return df.to_html(index=False, escape=True, na_rep="", float_format=lambda v: f"{v:.4f}", border=0, classes="tbl")


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
.random{background:#b00020;color:#fff;padding:1em;font-size:1.3em;font-weight:bold;border-radius:4px}
table.tbl{border-collapse:collapse;font-size:.85em;margin:.5em 0 1.5em}
table.tbl th,table.tbl td{border:1px solid #ccc;padding:3px 6px;text-align:right}
table.tbl th{background:#eee}
figure{display:inline-block;margin:.5em;vertical-align:top}
figure img{max-width:620px;border:1px solid #ddd}
pre{background:#f6f6f6;padding:1em;overflow:auto;max-height:40em}
.failed{color:#b00020}
.note{font-size:.85em;color:#444;margin:.2em 0}
"""


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
) -> str:
    """The whole report as one HTML string (first line: the random-weights warning, if any)."""
    banner = random_banner(random_ids)
    esc = html.escape
    head = [f"<!-- {esc(banner)} -->" if banner else "<!-- ncst study report -->", "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(title)}</title>",
            f"<style>{_CSS}</style></head><body>"]
    body = []
    if banner:
        body.append(f'<div class="random" id="random-weights">{esc(banner)}</div>')
    body.append(f"<h1>{esc(title)}</h1>")
    body.append(f"<p>Made {esc(str(results.get('created_at', '')))} from protocol <code>{esc(str(results.get('protocol_dir', '')))}</code>. "
                "Scores: higher = more in-distribution; OOD metrics take ID (labels 0-6) as positive. "
                + esc(EER_SENTENCES.get(str(results.get("eer_convention", "interpolated")), ""))
                + " (See train/metrics.py.)</p>")
    subset_rows = pd.DataFrame(
        [{"subset": s, "rows": n, "failed rows dropped": results.get("protocol_failed_rows_dropped", {}).get(s, 0)}
         for s, n in results.get("protocol", {}).items()])
    body += ["<h2>Protocol</h2>", _html_table(subset_rows)]
    for subset, err in (results.get("protocol_errors") or {}).items():
        body.append(f'<p class="failed">Subset <b>{esc(subset)}</b> could not be read and is left out: {esc(str(err))}</p>')
    models = results.get("models", {})
    failed = {m: v.get("error") for m, v in models.items() if v.get("status") == "failed"}
    for m, err in failed.items():
        body.append(f'<p class="failed">Model <b>{esc(m)}</b> failed: {esc(str(err))}</p>')
    for stem, df in tables.items():
        body.append(f'<h2 id="{esc(stem)}">{esc(TABLE_TITLES.get(stem, stem))}</h2>')
        body += [f'<p class="note">{esc(n)}</p>' for n in (notes or {}).get(stem, ())]
        body.append(_html_table(df))
    if images:
        body.append("<h2>Plots</h2>")
        for model, imgs in images.items():
            body.append(f"<h3>{esc(model)}</h3>")
            body += [_img(p, cap) for cap, p in imgs]
    body += ["<h2>Codec weights in the protocol</h2>",
             "<p>weights_id of every codec variant found in the protocol rows.</p>", _html_table(weights)]
    body.append("<h2>Models</h2>")
    for m, v in models.items():
        cfg = v.get("train_config")
        what = (f"codec-taxonomy {v.get('variant', '')}, heads {', '.join(v.get('tasks') or [])}, "
                f"{v.get('frontend', '')} front end") if v.get("kind") == "taxonomy" else f"classes {v.get('classes', '')}"
        body.append(f"<h3>{esc(m)}</h3><p><code>{esc(str(v.get('path', '')))}</code> - {esc(what)}</p>")
        if cfg:
            body.append("<details><summary>training config</summary><pre>"
                        + esc("\n".join(f"{k}: {val}" for k, val in cfg.items())) + "</pre></details>")
    body.append("<h2>Dataset card</h2>")
    if cards:
        for path, text in cards:
            body.append(f"<p><code>{esc(str(path))}</code></p><pre>{esc(text)}</pre>")
    else:
        body.append("<p>No dataset card (README.md) was found next to the protocol or its audio.</p>")
    return "\n".join(head + body + ["</body></html>", ""])
