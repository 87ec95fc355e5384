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

    from . import task  # a light module: it imports the engine lazily

    task.add_cli_arguments(process)  # --root DIR|URL, --topic NAME=URL

    probe = commands.add_parser("probe", help="print what a source holds, as JSON")
    probe.add_argument("source")

    _add_batch_arguments(
        commands.add_parser(
            "batch", help="run a process string with sys/saveas on many sources (resumable)"
        )
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "batch":
            return _batch(args)
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


# -- ossframe batch -------------------------------------------------------------------------------


def _add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ossframe batch SOURCE... SPEC --root DIR [--executor ray] ...``."""
    from .task import add_cli_arguments

    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="paths, quoted globs such as 'videos/**/*.mp4', @manifest or a .txt manifest with "
        "one path per line",
    )
    parser.add_argument("spec", metavar="SPEC", help="the process string; it needs sys/saveas")
    add_cli_arguments(parser)  # --root DIR|URL, --topic NAME=URL
    parser.add_argument(
        "--executor",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool on this machine (default); ray: Ray tasks on a cluster "
        "(pip install 'ossframe_native[ray]')",
    )
    parser.add_argument(
        "--address",
        metavar="ADDR",
        help="the Ray cluster to use (default: RAY_ADDRESS, else a local Ray started for the "
        "batch)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes of the local executor (default: one per core)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="decoder threads per source (local; default: cores / workers) or CPUs per Ray task "
        "(default 1)",
    )
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="write the JSON-lines report (one line per source) here instead of stdout",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument(
        "--no-resume",
        action="store_true",
        help="run every source again, even those recorded as done in the store",
    )


def _batch(args: argparse.Namespace) -> int:
    """Runs ``ossframe batch``; returns 0 when every source succeeded (or was done), else 1."""
    from .batch import process_many
    from .notify import parse_topic_args

    if not args.root:
        raise InvalidArgument(
            "--root", "a batch writes to a store: give --root DIR (or an fsspec URL)"
        )
    if args.address is not None and args.executor != "ray":
        raise InvalidArgument("--address", "--address is for --executor ray")
    summary = process_many(
        args.sources,
        args.spec,
        store=args.root,
        workers=args.workers,
        threads=args.threads,
        topics=parse_topic_args(args.topic),
        report=args.report or sys.stdout,
        progress=not args.no_progress,
        resume=not args.no_resume,
        executor=args.executor,
        address=args.address,
    )
    print(
        f"ossframe: batch: {summary.total} sources, {summary.succeeded} succeeded, "
        f"{summary.failed} failed, {summary.skipped} skipped (done before), "
        f"{summary.frames} frames in {summary.elapsed_s:.1f} s",
        file=sys.stderr,
    )
    return 0 if summary.ok else 1


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
