"""What the `python -m training <tool>` commands (cli.TOOLS) share: a bad request is a one-line
reason and exit 2 with nothing written, argparse's own errors included; a tool's output goes in a
fresh run directory `<logdir>/<name>/<UTC time>/` as training's does."""

import argparse
import datetime
import pathlib


class BadRequest(Exception):
    """A one-line reason; the tool exits 2 with nothing started or written."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises BadRequest instead of printing usage and exiting."""

    def error(self, message):
        raise BadRequest(message)


def new_run_dir(logdir, name) -> pathlib.Path:
    """Make and return `<logdir>/<name>/<UTC time>` (`-1`, `-2`, ... if that one exists)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = pathlib.Path(logdir, name, stamp)
    n = 1
    while run_dir.exists():
        run_dir = pathlib.Path(logdir, name, f"{stamp}-{n}")
        n += 1
    run_dir.mkdir(parents=True)
    return run_dir
