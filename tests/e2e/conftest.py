"""End-to-end fixtures: the app served by waitress in a thread, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from web.testing import dispose, make_test_app, migrated_database, postgres_url

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "e2e"


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    if request.param == "postgresql" and postgres_url() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but TEST_DATABASE_URL is not set")
        pytest.skip("PostgreSQL tests need TEST_DATABASE_URL")
    with migrated_database(request.param, tmp_path_factory.mktemp(request.param)) as settings:
        yield {**settings, "backend": request.param}


@pytest.fixture
def live_server(database: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The application under waitress on a free loopback port, in a thread."""
    from waitress import create_server

    settings = {k: v for k, v in database.items() if k != "backend"}
    app = make_test_app(settings, TESTING=False, WTF_CSRF_ENABLED=True)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    port = server.socket.getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{port}", "app": app, "backend": database["backend"]}
    finally:
        server.close()
        thread.join(timeout=5)
        dispose(app)


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (never a downloaded browser)."""
    executable = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    if not Path(executable).exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but chromium is missing at {executable}")
        pytest.skip(f"chromium not installed at {executable} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def screenshots(live_server: dict[str, Any]) -> Path:
    folder = OUTPUT / live_server["backend"]
    folder.mkdir(parents=True, exist_ok=True)
    return folder
