"""`coevo watch`: the app over a run going on in another process, or a finished or interrupted one
to browse; with `--web PORT`, the same app served to a browser (textual-serve), for runs on a
remote GPU node (forward the port, e.g. `ssh -L PORT:localhost:PORT node`)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from coevo.society.secrets import mask_url
from coevo.tui.source import TargetError, open_target

EXIT_INVALID = 2
ATTACHED_NICE = 5


def _on_terminal() -> bool:
    # textual-serve runs the app on pipes with its web driver named in the environment.
    return (sys.stdin.isatty() and sys.stdout.isatty()) or "TEXTUAL_DRIVER" in os.environ


def watch_command(args: argparse.Namespace) -> int:
    try:
        target = open_target(args.target, args.run_id)
    except TargetError as exc:
        print(f"coevo watch: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.web is not None:
        target.close()
        return _serve(args)
    if not _on_terminal():
        target.close()
        print(
            "coevo watch: needs a terminal (coevo show prints a run as text; --web PORT serves it)",
            file=sys.stderr,
        )
        return EXIT_INVALID
    from coevo.tui.app import CoevoApp

    if args.attached is not None:
        # `coevo run`'s UI yields the CPU to the run it shows when both want it.
        os.nice(ATTACHED_NICE)
    try:
        CoevoApp(target, attached_to=args.attached).run()
    finally:
        target.close()
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Serve `coevo watch TARGET` to browsers: each page load runs the app in its own process."""
    if not 0 < args.web < 65536:
        print(f"coevo watch: --web needs a port between 1 and 65535, not {args.web}", file=sys.stderr)
        return EXIT_INVALID
    from textual_serve.server import Server

    command = [sys.executable, "-m", "coevo.cli", "watch", args.target]
    if args.run_id is not None:
        command += ["--run-id", args.run_id]
    title = f"coevo watch {mask_url(args.target)}"  # the page shows it; a database URL may hold a password
    server = Server(shlex.join(command), host=args.host, port=args.web, title=title)
    try:
        server.serve()
    except OSError as exc:  # the port is taken, or the host is not this machine's
        print(f"coevo watch: cannot serve on {args.host}:{args.web}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
    return 0
