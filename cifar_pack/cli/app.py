"""The typer app and the console-script entry point; each command group registers itself on ``app``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from .common import printable, state

app = typer.Typer(
    name="cifar-pack",
    help="Train a Keras CIFAR-style CNN, export it to a self-describing ONNX file, predict with onnxruntime.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"cifar-pack {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks and verbose logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, callback=_version, help="Print the version and exit.")
    ] = False,
) -> None:
    state["debug"] = debug


def main() -> None:
    """Console-script entry point: usage errors as one ``error:`` line on stderr, exit 2.

    Click's own handler would print a usage block and a boxed message (typer with rich); the
    docs promise one line, like every other error.
    """
    from typer._click import exceptions as click_exc  # typer ships its own copy of click

    try:
        code = app(standalone_mode=False)
    except click_exc.NoArgsIsHelpError as exc:  # the help was printed: nothing more to say
        sys.exit(exc.exit_code)
    except click_exc.UsageError as exc:
        path = (exc.ctx.command_path if exc.ctx else "") or ""
        where = f" (see: cifar-pack {path.split(' ', 1)[1]} --help)" if " " in path else ""
        print(f"error: {printable(exc.format_message())}{where}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except click_exc.ClickException as exc:
        print(f"error: {printable(exc.format_message())}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
