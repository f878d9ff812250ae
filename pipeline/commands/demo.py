"""``ncst demo OUT``: the whole flow on the embedded demo corpus, stage by stage.

ingest -> split sources -> generate -> protocol -> train (three baselines, the codec-taxonomy
model M1 and REFD (RE + FD), briefly, on a tiny random wav2vec 2.0) -> study. Each stage
is the library call its own command makes, driven by ``OUT/recipe.yaml`` (a copy of
``recipes/demo.yaml``), so any stage can be re-run by hand afterwards.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Optional

import typer

DEMO_RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
# Short clips, and NCSSD, ASVspoof 2019 LA and In-the-Wild trees for the robustness sets (unseen
# real, different source, OOD other fake type), so that every column of Tables 4 and 5 has rows.
DEMO_CORPUS_OPTIONS = dict(min_duration_s=1.0, max_duration_s=1.8, ncssd_dialogues=2, asvspoof2019_la_utterances=3,
                           in_the_wild_utterances=3)
MODELS = ("mel_lcnn", "aasist", "w2v2_aasist", "taxonomy", "refd")  # taxonomy: the variant of recipes/demo.yaml (M1)
# Stand-ins for the paper's ALM sets (Table 6): (condition, the ALM's codec back end). Moshi speaks
# through Mimi, Mini-omni through SNAC, SpeechGPT-Gen through SpeechTokenizer, VALL-E through EnCodec.
ALM_STANDINS = (("moshi-standin", "mimi_24k_8q"), ("mini-omni-standin", "snac_24k"),
                ("speechgpt-gen-standin", "speechtokenizer_16k"), ("valle-standin", "encodec_24k_6kbps"))


class DemoExists(FileExistsError):
    """``OUT`` holds work a demo run would overwrite (an edited recipe, trained runs)."""


def check_out_dir(out: Path, recipe_template: Path = DEMO_RECIPE) -> None:
    """Raise :class:`DemoExists` when ``out`` holds an edited ``recipe.yaml`` or a non-empty ``runs/``."""
    out = Path(out)
    recipe = out / "recipe.yaml"
    if recipe.is_file() and recipe.read_bytes() != Path(recipe_template).read_bytes():
        raise DemoExists(f"{recipe} differs from {recipe_template} (edited?); the demo would overwrite it: "
                         "pass --force or choose another folder")
    runs = out / "runs"
    if runs.is_dir() and any(runs.iterdir()):
        raise DemoExists(f"{runs} holds trained runs; the demo would delete them: pass --force or choose another folder")


def run_demo(out: Path, *, executor: str = "local", models: tuple[str, ...] = MODELS, utterances: int = 6,
             recipe_template: Path = DEMO_RECIPE, console=None, force: bool = False) -> Path:
    """Run every stage on the demo corpus under ``out``; returns the study report's path.

    Without ``force``, refuses (:class:`DemoExists`) before touching anything when ``out`` holds an
    edited ``recipe.yaml`` or trained ``runs/``."""
    if not force:
        check_out_dir(out, recipe_template)
    import warnings

    from rich.console import Console

    from manifests import write_manifest
    from pipeline.corpora import prepare_labelled_folder
    from pipeline.demo_corpus import ingest_demo_corpus, make_alm_standin, make_demo_corpus
    from pipeline.generate import generate_from_recipe, print_summary
    from pipeline.protocol import build_protocol, summarize_protocol, write_split_sources
    from train.config import TrainConfig
    from train.features import make_random_wav2vec2
    from train.study import run_study_from_recipe
    from train.trainer import train

    console = console or Console(soft_wrap=True)
    # The packaged codecs still call torch's deprecated weight_norm: one warning per model load.
    warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    def stage(title: str) -> None:
        console.rule(f"[bold]{title}[/bold]  ({time.perf_counter() - t_start:.0f} s)")

    stage("1/6 demo corpus and ingest")
    demo = make_demo_corpus(out / "corpus", utterances_per_speaker=utterances, **DEMO_CORPUS_OPTIONS)
    manifests = ingest_demo_corpus(demo, out / "sources")
    for corpus, (path, df) in manifests.items():
        ok = df["status"] == "ok"
        spoofs = int((ok & df["is_fake"].astype(bool)).sum())
        console.print(f"{corpus}: {int(ok.sum())} ok rows{f' ({spoofs} spoofed)' if spoofs else ''}, "
                      f"{df['speaker'].nunique()} speakers -> {path}", highlight=False)
    # Table 6 needs ALM outputs, which cannot be made here: flagged stand-ins, demo speech through
    # each ALM's codec back end, named "<alm>-standin".
    for seed, (label, variant) in enumerate(ALM_STANDINS, start=1):
        alm_dir = make_alm_standin(out / "corpus" / label, label=label, variant=variant, n=3, seed=seed)
        alm_path = write_manifest(prepare_labelled_folder(alm_dir, corpus=label.replace("-", "_")),
                                  out / "sources" / f"{label}.parquet", root=alm_dir)
        console.print(f"alm stand-in ({label}: demo speech through {variant}) -> {alm_path}", highlight=False)
    recipe = out / "recipe.yaml"
    shutil.copyfile(recipe_template, recipe)

    stage("2/6 split the reals (OOD codecs run on the eval split only)")
    for split, path in write_split_sources(recipe).items():
        console.print(f"{split}: {path}", highlight=False)

    stage("3/6 generate (seeded random codec weights)")
    summary = generate_from_recipe(recipe, executor=executor, console=console, quiet=True)
    print_summary(summary, console)

    stage("4/6 protocol")
    subsets = build_protocol(recipe)
    console.print(summarize_protocol(subsets).groupby("subset")["rows"].sum().to_string())

    stage("5/6 train " + ", ".join(models))
    if {"w2v2_aasist", "taxonomy", "refd"} & set(models):
        make_random_wav2vec2(out / "models" / "random-wav2vec2-tiny", seed=0)
    runs = []
    for model in models:
        config = TrainConfig.from_recipe(recipe, model=model)
        if Path(config.out_dir).exists():
            shutil.rmtree(config.out_dir)  # a demo re-run starts its runs afresh
        t0 = time.perf_counter()
        run_dir = train(config)
        runs.append(Path(run_dir).name)  # taxonomy runs are named taxonomy_<variant>
        console.print(f"{config.run_name}: {run_dir} ({time.perf_counter() - t0:.0f} s)", highlight=False)

    stage("6/6 study")
    result = run_study_from_recipe(recipe, models=runs)
    console.rule(f"done in {time.perf_counter() - t_start:.0f} s")
    console.print(f"report: [bold]{result.report}[/bold]")
    return result.report


def demo(
    out: Path = typer.Argument(Path("demo_out"), help="output folder (corpus, dataset, protocol, runs, study)"),
    executor: str = typer.Option("local", "--executor", help="local (in-process) or ray"),
    utterances: int = typer.Option(6, "--utterances", help="utterances per demo speaker"),
    model: Optional[list[str]] = typer.Option(None, "--model", help="train only these models (repeatable): mel_lcnn, aasist, w2v2_aasist, taxonomy, refd"),
    force: bool = typer.Option(False, "--force", help="overwrite an edited OUT/recipe.yaml and delete OUT/runs/"),
) -> None:
    """Run the whole flow on the embedded demo corpus and print where the report is."""
    unknown = sorted(set(model or ()) - set(MODELS))
    if unknown:
        typer.secho(f"error: --model {', '.join(unknown)}: not one of {', '.join(MODELS)}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    try:
        if not force:
            check_out_dir(out)
    except DemoExists as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2)
    run_demo(out, executor=executor, models=tuple(model) if model else MODELS, utterances=utterances, force=True)


COMMANDS = [("demo", demo)]
