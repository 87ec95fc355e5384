"""``ossframe serve`` and ``ossframe tasks``: arguments and entry points.

``serve`` needs the ``server`` extra (Starlette, uvicorn); ``tasks`` reads the task database
with the standard library only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping

from ossframe_native.errors import InvalidArgument


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ossframe serve``."""
    parser.add_argument(
        "--root", required=True, metavar="DIR", help="store root: one directory per bucket"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--region", default="cn-hangzhou", help="the region V4 signatures name")
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes running asynchronous tasks (default: cores // 2, at least 1)",
    )
    parser.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="NAME=URL",
        help="deliver notify messages of topic NAME by POST to URL (repeatable); "
        "other topics go to <root>/.notify/<topic>.jsonl",
    )
    parser.add_argument(
        "--credentials",
        metavar="FILE",
        help="access keys, one 'ACCESS_KEY_ID SECRET' pair per line (also read: "
        "OSS_ACCESS_KEY_ID / OSS_ACCESS_KEY_SECRET)",
    )
    parser.add_argument("--max-object-size", type=int, default=5 << 30, metavar="BYTES")
    parser.add_argument(
        "--max-processing",
        type=int,
        default=None,
        metavar="N",
        help="processing requests admitted at once (running or waiting) before 503 SlowDown "
        "(default: 16 per core, at least 32)",
    )
    parser.add_argument("--max-queued-tasks", type=int, default=1000, metavar="N")
    parser.add_argument("--task-time-limit", type=float, default=600.0, metavar="SECONDS")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="drop a request whose body stops arriving for this long (or, past it, arrives "
        "slower than 1 KiB/s on average)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="drop a connection whose request head is not complete this long after it began",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=1000,
        metavar="N",
        help="open connections at most; beyond, the one waiting longest for its head is closed",
    )


def add_tasks_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ossframe tasks``."""
    parser.add_argument("--root", required=True, metavar="DIR")
    parser.add_argument("task_id", nargs="?", help="one task (default: the 100 most recent)")


def read_credentials(path: str | None, environ: Mapping[str, str]) -> dict[str, str]:
    """Access keys from ``--credentials FILE`` and the ``OSS_ACCESS_KEY_*`` variables."""
    found: dict[str, str] = {}
    key_id, secret = environ.get("OSS_ACCESS_KEY_ID"), environ.get("OSS_ACCESS_KEY_SECRET")
    if key_id and secret:
        found[key_id] = secret
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except OSError as exc:
            raise InvalidArgument("--credentials", f"cannot read {path}: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            parts = line.split()
            if not parts or parts[0].startswith("#"):
                continue
            if len(parts) != 2:
                raise InvalidArgument(
                    "--credentials", f"{path}:{number}: write 'ACCESS_KEY_ID SECRET'"
                )
            found[parts[0]] = parts[1]
    if not found:
        raise InvalidArgument(
            "--credentials",
            "no credentials: set OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET or give "
            "--credentials FILE; the service never runs without authentication",
        )
    return found


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def serve_main(args: argparse.Namespace) -> int:
    """Runs the service until Ctrl-C or SIGTERM; returns the exit status."""
    from ossframe_native.notify import parse_topic_args

    credentials = read_credentials(args.credentials, os.environ)
    topics = parse_topic_args(args.topic)
    root = os.path.abspath(args.root)
    if not os.path.isdir(root):
        raise InvalidArgument("--root", f"{args.root} is not a directory")
    for name, value in (
        ("--workers", args.workers),
        ("--max-processing", args.max_processing),
        ("--max-connections", args.max_connections),
    ):
        if value is not None and value < 1:
            raise InvalidArgument(name, f"give an integer >= 1, not {value}")
    for name, seconds in (
        ("--idle-timeout", args.idle_timeout),
        ("--header-timeout", args.header_timeout),
        ("--task-time-limit", args.task_time_limit),
    ):
        if not 0 < seconds < 1e6:
            raise InvalidArgument(name, f"give a number of seconds > 0, not {seconds}")
    try:
        import uvicorn

        from ossframe_native.server.app import Service, Settings
        from ossframe_native.server.protocol import protocol
    except ImportError as exc:
        raise InvalidArgument(
            "serve",
            f"the service needs the server extra: pip install 'ossframe_native[server]' ({exc})",
        ) from None
    cores = _cores()
    settings = Settings(
        root=root,
        credentials=credentials,
        region=args.region,
        workers=args.workers or max(1, cores // 2),
        topics=topics,
        max_object_size=args.max_object_size,
        max_processing=args.max_processing or max(32, 16 * cores),
        processing_threads=cores,
        max_queued_tasks=args.max_queued_tasks,
        task_time_limit_s=args.task_time_limit,
        idle_timeout_s=args.idle_timeout,
        header_timeout_s=args.header_timeout,
        max_connections=args.max_connections,
    )
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    service = Service(settings)
    config = uvicorn.Config(
        service,
        http=protocol(settings.header_timeout_s, settings.max_connections),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_keep_alive=30,
        server_header=False,
        date_header=False,
    )
    import asyncio  # here: the other commands' start-up does not pay for it

    server = uvicorn.Server(config)
    service.host_id = f"{args.host}:{args.port}"

    async def run() -> None:
        async def announce() -> None:
            while not server.started:
                if server.should_exit:
                    return
                await asyncio.sleep(0.02)
            port = server.servers[0].sockets[0].getsockname()[1]
            service.host_id = f"{args.host}:{port}"
            print(f"ossframe: serving http://{args.host}:{port} (root {root})", flush=True)

        waiter = asyncio.ensure_future(announce())
        await server.serve()
        waiter.cancel()

    # uvicorn re-raises the signal that stopped it once it has shut down; SIGTERM then ends
    # the process with status 0 instead of being killed by it.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    asyncio.run(run())
    return 0 if server.started else 1


def tasks_main(args: argparse.Namespace) -> int:
    """Prints one task, or the most recent ones, as JSON."""
    from ossframe_native.server.tasks import TaskQueue

    path = os.path.join(os.path.abspath(args.root), ".server", "tasks.db")
    if not os.path.exists(path):
        raise InvalidArgument("--root", f"no task database in {args.root} (no {path})")
    queue = TaskQueue(path)
    try:
        if args.task_id:
            task = queue.get(args.task_id)
            if task is None:
                raise InvalidArgument("task_id", f"no task {args.task_id!r} in {args.root}")
            print(json.dumps(task.to_dict(), indent=2, ensure_ascii=False))
        else:
            for task in queue.recent():
                print(json.dumps(task.to_dict(), ensure_ascii=False))
    finally:
        queue.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run 'ossframe serve' or 'ossframe tasks'")
