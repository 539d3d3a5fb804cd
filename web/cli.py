"""``recist serve``: migrate the database and run the application under waitress."""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import os
import signal
import sys
from typing import Any

# The help line of this command in `recist --help` (read without importing this module).
HELP = "run the web application with a production WSGI server"


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--threads", type=int, default=8, help="waitress threads per process")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes sharing the port (pre-fork; default 1)",
    )
    parser.add_argument(
        "--no-migrate", action="store_true", help="do not apply database migrations before serving"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def prepare_app(host: str, *, migrate: bool = True) -> Any:
    """Configure cookies for ``host``, migrate the database and build the app."""
    # Plain HTTP on the loopback interface (``make run``) cannot carry Secure cookies in
    # every browser; anywhere else the app is expected behind TLS and keeps them Secure.
    if _is_loopback(host):
        os.environ.setdefault("RECIST_COOKIE_SECURE", "0")
    from web import create_app
    from web.db import upgrade

    app = create_app()
    if migrate:
        upgrade(app.extensions["recist_engine"])
    return app


def serve(app: Any, host: str, port: int, threads: int, workers: int = 1) -> None:
    """Serve ``app`` with waitress: ``workers`` processes × ``threads`` threads.

    The listening socket is opened once, before forking, and shared by the worker
    processes (the pre-fork model of gunicorn): the kernel hands each connection to one of
    them. Each worker builds its own application, because database connections must not
    cross a fork. The parent only forwards SIGTERM/SIGINT and stops all workers when one
    of them exits.

    Raises
    ------
    OSError
        The address cannot be bound (in use, no permission).
    """
    import socket

    from waitress import serve as waitress_serve

    sock = socket.create_server((host, port), backlog=1024)
    print(
        f"recist: serving on http://{host}:{port} (waitress, {workers} process(es) × "
        f"{threads} threads)",
        file=sys.stderr,
        flush=True,
    )
    if workers <= 1:
        waitress_serve(app, sockets=[sock], threads=threads, ident="recist")
        return
    app.extensions["recist_engine"].dispose()
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child process
            status = 0
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                from web import create_app

                waitress_serve(create_app(), sockets=[sock], threads=threads, ident="recist")
            except BaseException as error:  # noqa: BLE001 - a child must not return into the CLI
                print(f"recist serve: worker {os.getpid()} stopped: {error!r}", file=sys.stderr)
                status = 1
            finally:
                os._exit(status)
        children.append(pid)
    sock.close()

    def _stop(_signum: int, _frame: Any) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    while children:
        pid, _status = os.wait()
        children.remove(pid)
        _stop(signal.SIGTERM, None)


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        app = prepare_app(args.host, migrate=not args.no_migrate)
    except SQLAlchemyError as error:
        print(f"recist serve: database: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        serve(app, args.host, args.port, args.threads, args.workers)
    except OSError as error:
        print(
            f"recist serve: cannot listen on {args.host}:{args.port}: {error.strerror}",
            file=sys.stderr,
        )
        return 2
    return 0
