"""``ossframe``: the command line (SPEC §6).

Exit status: 0 success, 2 InvalidArgument, 3 MediaError, 1 anything else; errors are one line
on stderr, ``ossframe: <ErrorName>: <message>``. Heavy modules are imported inside the commands
so that start-up stays short.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Iterator, Sequence

from .errors import EXIT_STATUS, FrameError, InvalidArgument, error_code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 itself; keep our one-line format
        raise InvalidArgument("", f"{message} (see 'ossframe --help')")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ossframe``."""
    parser = _Parser(prog="ossframe", description="Exact, fast video frame capture (OSS style).")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    process = commands.add_parser("process", help="run a process string on one source")
    process.add_argument("source", help="video or audio file")
    process.add_argument("spec", help="e.g. 'video/snapshot,t_7000,f_jpg'")
    process.add_argument(
        "-o",
        "--output",
        help="output file; with several outputs _1, _2, ... go before the extension",
    )

    from . import batch, task  # light modules: they import the engine lazily

    task.add_cli_arguments(process)  # --root DIR|URL, --topic NAME=URL

    probe = commands.add_parser("probe", help="print what a source holds, as JSON")
    probe.add_argument("source")

    batch_command = commands.add_parser(
        "batch", help="run a process string with sys/saveas on many sources (resumable)"
    )
    batch.add_cli_arguments(batch_command)

    from .server import cli as server_cli  # argparse only: Starlette is imported by serve

    server_cli.add_serve_arguments(
        commands.add_parser("serve", help="run the OSS-compatible service")
    )
    server_cli.add_tasks_arguments(commands.add_parser("tasks", help="show the service's tasks"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "batch":
            from .batch import cli_main

            return cli_main(args)
        if args.command == "serve":
            from .server.cli import serve_main

            return serve_main(args)
        if args.command == "tasks":
            from .server.cli import tasks_main

            return tasks_main(args)
        if args.command == "probe":
            from .api import probe

            print(json.dumps(probe(args.source)))
            return 0
        return _process(args)
    except FrameError as exc:
        print(f"ossframe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_STATUS.get(error_code(exc), 1)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI promises one line, never a traceback
        print(f"ossframe: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _process(args: argparse.Namespace) -> int:
    from .api import capture
    from .params import parse_process

    request = parse_process(args.spec)
    if request.saveas is not None:
        from .task import cli_main

        return cli_main(args)  # prints the task result as JSON
    if not args.output:
        raise InvalidArgument("-o", "give an output file with -o OUT")
    images = capture(args.source, request.action)
    # Peek at two outputs to know how to name them; then write each as it comes.
    head = list(itertools.islice(images, 2))
    paths = output_paths(args.output, several=len(head) > 1)
    for path, image in zip(paths, itertools.chain(head, images), strict=False):
        _write(path, image.data)
    return 0


def output_paths(output: str, several: bool) -> Iterator[str]:
    """``out.jpg`` for one output; ``out_1.jpg``, ``out_2.jpg``, ... for several."""
    if not several:
        yield output
        return
    stem, ext = os.path.splitext(output)
    for i in itertools.count(1):
        yield f"{stem}_{i}{ext}"


def _write(path: str, data: bytes) -> None:
    """Writes one output atomically (temporary file + rename), never half written."""
    from .store import atomic_write

    directory, name = os.path.split(os.path.abspath(path))
    try:
        atomic_write(directory, name, data)
    except OSError as exc:
        raise FrameError(f"cannot write {path}: {exc.strerror or exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
