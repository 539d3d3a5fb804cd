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
    "--disable-dev-shm-usage",  # /dev/shm is small in many containers: use /tmp
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "e2e"
PASSWORD = "e2e password 123"  # the e2e tests' users only


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
    from waitress import create_server, wasyncore

    settings = {k: v for k, v in database.items() if k != "backend"}
    app = make_test_app(settings, TESTING=False, WTF_CSRF_ENABLED=True)
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{port}", "app": app, "backend": database["backend"]}
    finally:
        # Stopped from its own loop thread: in-flight requests finish, then every socket is
        # closed there and the loop ends with its map empty. (Closing them from this thread
        # races the loop's select(): EBADF in the server thread, and a second's wait.)
        server.task_dispatcher.shutdown()
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(timeout=5)
        assert not thread.is_alive(), "the test server did not stop within 5 s"
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


class Login:
    """Log in through the login form, as a user does: ``login("rad")`` opens a new browser
    context (``viewport``, and any other context option such as ``java_script_enabled``)
    and returns its page, logged in; ``login("adj", page=page)`` logs in on a page
    already open (as another user). ``start``: the page first opened, which must ask for
    a login (``"/"`` sends a visitor there). ``errors``: the page's console errors are
    added to it, from before the login on."""

    def __init__(self, browser: Any, base: str) -> None:
        self.browser, self.base = browser, base

    def __call__(
        self,
        username: str,
        password: str = PASSWORD,
        *,
        page: Any = None,
        start: str = "/login",
        viewport: tuple[int, int] = (1280, 900),
        errors: list[str] | None = None,
        **context: Any,
    ) -> Any:
        if page is None:
            width, height = viewport
            page = self.browser.new_context(
                viewport={"width": width, "height": height}, **context
            ).new_page()
        if errors is not None:
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(self.base + start)
        assert "/login" in page.url, f"{start} did not ask for a login: {page.url}"
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        with page.expect_navigation():
            page.click("main button[type=submit]")
        assert "/login" not in page.url, page.locator("main").inner_text()
        return page


@pytest.fixture
def login(browser: Any, live_server: dict[str, Any]) -> Login:
    """:class:`Login` against the live server."""
    return Login(browser, live_server["url"])


@pytest.fixture
def screenshots(live_server: dict[str, Any]) -> Path:
    folder = OUTPUT / live_server["backend"]
    folder.mkdir(parents=True, exist_ok=True)
    return folder
