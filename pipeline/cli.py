"""The ``ncst`` command line: one sub-command per library entry point, nothing more.

Each command module under ``pipeline/commands/`` parses arguments and calls the library; heavy
imports (torch, ray) happen inside the command functions so that ``ncst --help`` stays fast.
This is the one place that ties pipeline/ and train/ together.
"""
from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="ncst",
    help="Build CodecFake-style corpora and run the codec source-tracing study.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# (module under pipeline.commands, attribute holding a list of (name, function)).
_COMMAND_MODULES = ("ingest", "codecs", "generate", "protocol", "train", "study", "demo")


def _register() -> None:
    for mod_name in _COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"pipeline.commands.{mod_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"pipeline.commands.{mod_name}":
                continue  # command group not built yet
            raise
        for name, fn in mod.COMMANDS:
            app.command(name)(fn)


_register()

# Command groups (``ncst export lhotse|hf``): modules holding a Typer ``APP``.
for _name in ("export",):
    app.add_typer(importlib.import_module(f"pipeline.commands.{_name}").APP, name=_name)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"ncst {version('ncst')}")
        except PackageNotFoundError:  # running from a checkout that was never installed
            typer.echo("ncst (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="print the ncst version and exit"),
) -> None:
    """Build CodecFake-style corpora and run the codec source-tracing study."""


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
