"""``recist serve``: migrate the database and run the application under waitress."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads")
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


def prepare_app(host: str, *, migrate: bool = True) -> object:
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


def serve(app: object, host: str, port: int, threads: int) -> None:
    from waitress import serve as waitress_serve

    print(
        f"recist: serving on http://{host}:{port} (waitress, {threads} threads)",
        file=sys.stderr,
        flush=True,
    )
    waitress_serve(app, host=host, port=port, threads=threads, ident="recist")


def run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    try:
        app = prepare_app(args.host, migrate=not args.no_migrate)
    except SQLAlchemyError as error:
        print(f"recist serve: database: {str(error).splitlines()[0]}", file=sys.stderr)
        return 2
    try:
        serve(app, args.host, args.port, args.threads)
    except OSError as error:
        print(
            f"recist serve: cannot listen on {args.host}:{args.port}: {error.strerror}",
            file=sys.stderr,
        )
        return 2
    return 0
