"""``ossframe``: the command line (docs/BEHAVIOUR.md, "Command line" and "Errors and exit codes").

Every argument is parsed here, and the process string once. Exit status: 0 success,
2 InvalidArgument, 3 MediaError, 1 anything else; errors are one line on stderr,
``ossframe: <ErrorName>: <message>``. Heavy modules are imported inside the commands so that
start-up stays short.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

from .errors import EXIT_STATUS, FrameError, InvalidArgument, error_code

STDOUT = "-"  # -o - writes the image to standard output


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse exits 2 itself; keep our one-line format
        raise InvalidArgument("", f"{message} (see 'ossframe --help')")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``ossframe``."""
    from . import __version__

    parser = _Parser(prog="ossframe", description="Exact, fast video frame capture (OSS style).")
    parser.add_argument("--version", action="version", version=f"ossframe {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    process = commands.add_parser("process", help="run a process string on one source")
    process.add_argument(
        "source", help="video or audio file: a path or a URL (s3://, oss://, gs://, http(s)://)"
    )
    process.add_argument("spec", help="e.g. 'video/snapshot,t_7000,f_jpg'")
    process.add_argument(
        "-o",
        "--output",
        help="output file ('-': standard output); with several outputs _1, _2, ... go before "
        "the extension. A regular file is replaced atomically, a symlink's target is replaced, "
        "a device or FIFO is written into",
    )
    shown = process.add_mutually_exclusive_group()
    shown.add_argument(
        "--json", action="store_true", help="list the files written as JSON (path, size, frame)"
    )
    shown.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    add_store_arguments(process)
    add_storage_options_argument(process)

    probe = commands.add_parser("probe", help="print what a source holds, as JSON")
    probe.add_argument("source", help="a path or a URL (s3://, oss://, gs://, http(s)://)")
    add_storage_options_argument(probe)

    _add_batch_arguments(
        commands.add_parser(
            "batch", help="run a process string with sys/saveas on many sources (resumable)"
        )
    )
    from .server import cli as server_cli  # argparse only: Starlette is imported by serve

    server_cli.add_serve_arguments(
        commands.add_parser("serve", help="run the OSS-compatible service")
    )
    server_cli.add_tasks_arguments(commands.add_parser("tasks", help="show the service's tasks"))
    return parser


def add_store_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds ``--root`` and ``--topic NAME=URL`` (for ``ossframe process`` and ``batch``)."""
    parser.add_argument(
        "--root",
        metavar="DIR|URL",
        help="store for sys/saveas: a directory (each bucket is a sub-directory) or an fsspec "
        "URL such as s3://bucket/prefix",
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="deliver notify messages of topic NAME by POST to an http(s) URL (repeatable); "
        "other topics go to <root>/.notify/<topic>.jsonl",
    )


def add_storage_options_argument(parser: argparse.ArgumentParser) -> None:
    """Adds ``--storage-options JSON|@FILE`` (how URL sources are opened)."""
    parser.add_argument(
        "--storage-options",
        metavar="JSON|@FILE",
        help="options for URL sources as a JSON object (or @file holding one), passed to the "
        'URL\'s storage library, e.g. \'{"endpoint_url": "http://127.0.0.1:9000"}\' for s3:// '
        'or \'{"endpoint": "https://oss-cn-hangzhou.aliyuncs.com"}\' for oss://; credentials '
        "are better left to the environment",
    )


def storage_options(args: argparse.Namespace) -> dict[str, Any] | None:
    """The parsed ``--storage-options`` (None when not given)."""
    text = getattr(args, "storage_options", None)
    if text is None:
        return None
    where = "--storage-options"
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise InvalidArgument(where, f"cannot read {text[1:]}: {exc.strerror}") from exc
    try:
        options = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(where, f"is not valid JSON ({exc.msg})") from None
    if not isinstance(options, dict):
        raise InvalidArgument(where, "must be a JSON object of option names to values")
    return options


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "batch":
            return _batch(args)
        if args.command == "serve":
            from .server.cli import serve_main

            return serve_main(args)
        if args.command == "tasks":
            from .server.cli import tasks_main

            return tasks_main(args)
        if args.command == "probe":
            from .pipeline import probe

            print(json.dumps(probe(args.source, storage_options(args))))
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


# -- ossframe process ----------------------------------------------------------------------------


def _process(args: argparse.Namespace) -> int:
    from .params import SpriteRequest, parse_process

    request = parse_process(args.spec)  # the one parse of the process string
    if request.saveas is not None:
        return _saveas(args, request)
    if not args.output:
        raise InvalidArgument("-o", "give an output file with -o OUT (or -o - for stdout)")
    if isinstance(request.action, SpriteRequest):
        return _sprite(args, request.action)
    from .api import capture

    images = capture(args.source, request.action, storage_options=storage_options(args))
    written = _write_numbered(
        args.output, images, lambda image: {"time_ms": image.time_ms, "index": image.index}
    )
    _print_written(args, written)
    return 0


def _sprite(args: argparse.Namespace, action: Any) -> int:
    """``video/sprite`` with ``-o OUT``: the sheets as OUT (several: OUT_1, OUT_2, ...) and,
    with ``vtt_1``, the storyboard beside them as OUT with the extension ``.vtt``."""
    from .sprites import open_sprite, sheet_url, storyboard_name

    vtt_path = storyboard_name(args.output) if action.vtt else None
    if vtt_path is not None and (args.output == STDOUT or vtt_path == args.output):
        raise InvalidArgument(
            "-o", "vtt_1 writes OUT.vtt beside the sheets: give an image file name with -o"
        )
    with open_sprite(args.source, action, bgr=True, storage_options=storage_options(args)) as run:
        written = _write_numbered(
            args.output, run.encoded(), lambda s: {"time_ms": s.time_ms, "tiles": len(s.tiles)}
        )
    if vtt_path is not None and run.tiles:
        text = run.storyboard([sheet_url(entry["path"], vtt_path) for entry in written]).encode()
        write_output(vtt_path, text)
        written.append({"path": vtt_path, "bytes": len(text), "cues": len(run.tiles)})
    _print_written(args, written)
    return 0


def _write_numbered(
    output: str, items: Iterator[Any], describe: Callable[[Any], dict[str, Any]]
) -> list[dict[str, Any]]:
    """Writes each item's ``data`` as it comes, to ``output`` when there is one item, else to
    ``output`` with ``_1``, ``_2``, ... (a peek at two items tells which); returns what was
    written (path, bytes and ``describe(item)``)."""
    head = list(itertools.islice(items, 2))
    several = len(head) > 1
    if several and output == STDOUT:
        raise InvalidArgument("-o", "-o - takes one output; this process string gives several")
    written: list[dict[str, Any]] = []
    for path, item in zip(
        output_paths(output, several), itertools.chain(head, items), strict=False
    ):
        write_output(path, item.data)
        written.append({"path": path, "bytes": len(item.data), **describe(item)})
    return written


def _print_written(args: argparse.Namespace, written: list[dict[str, Any]]) -> None:
    if args.output != STDOUT and not args.quiet:
        if args.json:
            print(json.dumps(written))
        else:
            print("\n".join(entry["path"] for entry in written))


def _saveas(args: argparse.Namespace, request: Any) -> int:
    """A process string with sys/saveas: prints the task result as JSON (on failure also one
    line on stderr)."""
    from .notify import parse_topic_args
    from .sources import bind
    from .task import exit_status, run_request

    if args.output:
        raise InvalidArgument(
            "-o", "-o is for process strings without sys/saveas; the saveas object name is used"
        )
    if not args.root:
        raise InvalidArgument(
            "--root", "sys/saveas needs a store: give --root DIR (or an fsspec URL)"
        )
    topics = parse_topic_args(args.topic)
    source = bind(args.source, storage_options(args))
    result = run_request(source, args.spec, request, store=args.root, topics=topics)
    if not args.quiet:
        print(result.to_json(indent=None if args.json else 2))
    if not result.ok:
        print(f"ossframe: {result.error_code}: {result.error_message}", file=sys.stderr)
    return exit_status(result)


# -- ossframe batch -------------------------------------------------------------------------------


def _add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``ossframe batch SOURCE... SPEC --root DIR [--executor ray] ...``."""
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="paths or URLs, quoted globs such as 'videos/**/*.mp4' or "
        "'s3://bucket/videos/**/*.mp4', @manifest or a .txt manifest with one path or URL per "
        "line",
    )
    parser.add_argument("spec", metavar="SPEC", help="the process string; it needs sys/saveas")
    add_store_arguments(parser)  # --root DIR|URL, --topic NAME=URL
    add_storage_options_argument(parser)
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
        "--device",
        default="cpu",
        metavar="DEV",
        help="cpu (default), or cuda / cuda:N: decode on that GPU (NVDEC) in this process, "
        "several sources at once (needs torch)",
    )
    parser.add_argument(
        "--decoders",
        type=int,
        default=None,
        metavar="N",
        help="with --device: sources decoded at once (default: one per NVDEC engine)",
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
        storage_options=storage_options(args),
        device=args.device,
        decoders=args.decoders,
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


def write_output(path: str, data: bytes) -> None:
    """Writes one output as other command-line tools do.

    ``-``: standard output. A regular file (or a new name) is replaced atomically (temporary
    file + rename), never half written; a symlink is followed and its target replaced so; a
    device or FIFO is written into directly. Write errors (e.g. ENOSPC from ``/dev/full``) are
    a ``FrameError`` with the OS message.
    """
    try:
        if path == STDOUT:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return
        target = os.path.realpath(path)  # a symlink's target (chains and relative links too)
        try:
            mode = os.stat(target).st_mode
        except FileNotFoundError:
            mode = None
        if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
            with open(target, "wb") as stream:  # a device, FIFO or socket: write into it
                stream.write(data)
            return
        from .store import atomic_write

        directory, name = os.path.split(target)
        atomic_write(directory, name, data, durable=False)  # no fsync, as cp or ffmpeg
    except OSError as exc:
        raise FrameError(f"cannot write {path}: {exc.strerror or exc}") from exc


if __name__ == "__main__":
    sys.exit(main())
