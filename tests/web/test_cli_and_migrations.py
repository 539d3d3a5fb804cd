"""`recist users`, `recist demo-run --seed-only`, and migrations matching the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select

from recist.cli import main
from web.db import make_engine, make_session_factory
from web.demo import DEMO_CASE_FILE
from web.models import Base, Subject, Trial, User


@pytest.fixture
def instance(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("RECIST_INSTANCE", str(tmp_path / "instance"))
    return tmp_path / "instance"


def _session(instance: Path) -> Any:
    return make_session_factory(make_engine(f"sqlite:///{instance / 'recist.sqlite3'}"))()


def test_users_add_prints_a_generated_password_once_and_stores_a_hash(
    instance: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["users", "add", "carol", "--role", "adjudicator"]) == 0
    out = capsys.readouterr().out
    name, role, password = out.strip().split("\t")
    assert (name, role) == ("carol", "adjudicator")
    password = password.removeprefix("password: ")
    assert len(password) >= 12
    session = _session(instance)
    user = session.scalar(select(User).where(User.username == "carol"))
    assert user.role == "adjudicator" and password not in user.password_hash
    session.close()
    assert main(["users", "token", "carol"]) == 0
    assert len(capsys.readouterr().out.strip()) >= 40


def test_adding_an_existing_user_exits_2_with_one_line(
    instance: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["users", "add", "dave", "--role", "reader"])
    capsys.readouterr()
    assert main(["users", "add", "dave", "--role", "reader"]) == 2
    err = capsys.readouterr().err
    assert err == "recist users: user 'dave' already exists\n"


def test_unknown_role_is_refused_naming_the_roles(
    instance: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["users", "add", "eve", "--role", "superuser"]) == 2
    err = capsys.readouterr().err
    assert "role 'superuser' is not one of reader, adjudicator" in err
    # An administrator may hold one clinical role besides (segregation of duties).
    assert main(["users", "add", "eve", "--role", "reader+admin"]) == 2
    assert "admin+<one of reader, adjudicator, trial_manager, reviewer>" in (
        capsys.readouterr().err
    )
    assert main(["users", "add", "eve", "--role", "admin+reader"]) == 0


def test_demo_run_seeds_the_trial_and_users_once(
    instance: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo-run", "--seed-only", "--subjects", "6"]) == 0
    out = capsys.readouterr().out
    # sample_dicom/demo_case.json (the imaging demo subject) is seeded too when present.
    expected = 6 + (1 if DEMO_CASE_FILE.exists() else 0)
    assert f"seeded trial STEREO-SEIN-DEMO with {expected} subjects" in out
    assert "seeded trial STEREO-SEIN-ICR-DEMO with 3 subjects" in out
    for name in ("reader1", "adjudicator1", "manager1", "reviewer1", "admin"):
        assert f"  {name} " in out
    session = _session(instance)
    subjects = session.scalars(
        select(Subject).join(Trial).where(Trial.code == "STEREO-SEIN-DEMO")
    ).all()
    assert len(subjects) == expected and all(s.result_json for s in subjects)
    responses = {s.result_json["best_overall_response"] for s in subjects}
    assert {"PR", "SD", "CR"} <= responses
    session.close()
    assert main(["demo-run", "--seed-only"]) == 0
    again = capsys.readouterr().out
    assert "seeded" not in again and "demo users already exist" in again


def test_migrations_create_exactly_the_schema_of_the_models(database: dict[str, Any]) -> None:
    engine = make_engine(database["DATABASE_URL"], schema=database["DATABASE_SCHEMA"])
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_make_engine_turns_sqlite_foreign_keys_on(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()
    plain = create_engine(f"sqlite:///{tmp_path / 'y.sqlite3'}")
    with plain.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 0
    plain.dispose()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_with_two_workers_answers_on_loopback_and_a_busy_port_exits_2(
    tmp_path: Path,
) -> None:
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    port = _free_port()
    env = {**os.environ, "RECIST_INSTANCE": str(tmp_path / "inst")}
    env.pop("DATABASE_URL", None)
    env.pop("RECIST_COOKIE_SECURE", None)
    command = [sys.executable, "-m", "recist", "serve", "--port", str(port)]
    server = subprocess.Popen([*command, "--workers", "2"], env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as response:
                    assert response.status == 200
                    cookie = response.headers["Set-Cookie"]
                    break
            except OSError:
                assert time.time() < deadline and server.poll() is None
                time.sleep(0.2)
        # Plain HTTP on loopback: a Secure cookie would never come back, so it is not set.
        assert "HttpOnly" in cookie and "Secure" not in cookie
        assert (tmp_path / "inst" / "recist.sqlite3").exists()
        busy = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert busy.returncode == 2
        assert busy.stderr.splitlines()[-1].startswith(
            f"recist serve: cannot listen on 127.0.0.1:{port}:"
        )
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            pass  # the first server is still serving
        children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
        assert len(children) == 2  # two worker processes share the port
        for _ in range(6):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as response:
                assert response.status == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
    # Stopping the parent stops its workers: nobody answers on the port any more.
    time.sleep(0.5)
    for child in children:
        assert (
            not Path(f"/proc/{child}").exists()
            or "zombie" in Path(f"/proc/{child}/status").read_text()
        )
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_upgrading_a_0001_database_keeps_its_users_and_adds_the_lockout_columns(
    database: dict[str, Any], tmp_path: Path
) -> None:
    import uuid

    from sqlalchemy import text

    from web.db import upgrade

    if database["DATABASE_SCHEMA"] is None:
        engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
        admin = None
    else:
        schema = f"up_{uuid.uuid4().hex[:10]}"
        admin = make_engine(database["OWNER_DATABASE_URL"])
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(database["OWNER_DATABASE_URL"], schema=schema)
    try:
        upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO app_user (username, password_hash, role, active, created_at) "
                    "VALUES ('old', 'scrypt:x', 'reader', true, CURRENT_TIMESTAMP)"
                )
            )
        upgrade(engine)
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT username, failed_logins, locked_until FROM app_user")
            ).one()
        assert tuple(row) == ("old", 0, None)
    finally:
        engine.dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()


def test_migration_0008_keeps_every_stored_size_at_the_engines_precision(
    database: dict[str, Any], tmp_path: Path
) -> None:
    """Sizes stored in tenths (0007) become engine lengths (×1000, R-EXACT) unchanged in
    meaning; a downgrade rounds back to tenths."""
    import json
    import uuid

    from sqlalchemy import text

    from web.db import upgrade

    if database["DATABASE_SCHEMA"] is None:
        engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
        admin = None
    else:
        schema = f"up_{uuid.uuid4().hex[:10]}"
        admin = make_engine(database["OWNER_DATABASE_URL"])
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        engine = make_engine(database["OWNER_DATABASE_URL"], schema=schema)
    now = "CURRENT_TIMESTAMP"
    try:
        upgrade(engine, "0007")
        with engine.begin() as conn:
            for sql in (
                f"INSERT INTO trial (id, code, title, settings, created_at) "
                f"VALUES (1, 'T', 'T', '{{}}', {now})",
                f"INSERT INTO subject (id, trial_id, code, version, updated_at) "
                f"VALUES (1, 1, 'S', 1, {now})",
                "INSERT INTO lesion (id, subject_id, code, position, kind, site, nodal, "
                "slice_thickness_tenths) VALUES (1, 1, 'T01', 0, 'target', 'liver', false, 50)",
                f"INSERT INTO timepoint (id, subject_id, code, date, version, updated_at) "
                f"VALUES (1, 1, 'BL', '2021-01-04', 1, {now})",
                f"INSERT INTO timepoint (id, subject_id, code, date, version, updated_at) "
                f"VALUES (2, 1, 'W8', '2021-03-01', 1, {now})",
                "INSERT INTO lesion_record (id, timepoint_id, lesion_id, state, size_tenths) "
                "VALUES (1, 1, 1, 'measured', 350)",
                "INSERT INTO lesion_record (id, timepoint_id, lesion_id, state, fragments_tenths) "
                "VALUES (2, 2, 1, 'fragments', '[120, 85]')",
                "INSERT INTO new_lesion (id, timepoint_id, code, site, equivocal, nodal, "
                "short_axis_tenths) VALUES (1, 1, 'NL01', 'lymph node', false, true, 110)",
            ):
                conn.execute(text(sql))
        upgrade(engine)
        with engine.connect() as conn:
            sizes = conn.execute(text("SELECT size_units FROM lesion_record WHERE id = 1")).one()
            parts = conn.execute(text("SELECT fragments_units FROM lesion_record WHERE id = 2"))
            fragments = parts.scalar_one()
            axis = conn.execute(text("SELECT short_axis_units FROM new_lesion")).scalar_one()
            thick = conn.execute(text("SELECT slice_thickness_units FROM lesion")).scalar_one()
        fragments = json.loads(fragments) if isinstance(fragments, str) else fragments
        assert (sizes[0], fragments, axis, thick) == (350_000, [120_000, 85_000], 110_000, 50_000)
        from alembic import command

        from web.db import alembic_config

        with engine.begin() as conn:
            conn.execute(text("UPDATE lesion_record SET size_units = 350400 WHERE id = 1"))
        command.downgrade(alembic_config(engine), "0007")
        with engine.connect() as conn:
            back = conn.execute(text("SELECT size_tenths FROM lesion_record WHERE id = 1"))
            assert back.scalar_one() == 350  # 35.04 mm rounds to 35.0 mm in tenths
    finally:
        engine.dispose()
        if admin is not None:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
