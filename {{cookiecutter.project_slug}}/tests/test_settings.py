"""settings.py's tests: yours, like settings.py (tests/cache/ tests the cache's own settings)."""

import pytest

from {{ cookiecutter.package_name }} import create_app, settings
from {{ cookiecutter.package_name }}.cache import ConfigError


@pytest.fixture
def env_file(tmp_path, monkeypatch):
    """Where settings.py looks for .env, moved to an empty folder: none there yet."""
    monkeypatch.setattr(settings, "ENV_FILE", tmp_path / ".env")
    return tmp_path / ".env"


def test_without_env_the_missing_file_is_named_not_only_the_secret(env_file):
    with pytest.raises(ConfigError) as refused:
        create_app(environ={})
    assert str(refused.value) == (
        f"SECRET_KEY is not set, and there is no .env in {env_file.parent}: make one with "
        "`cp .env.example .env` there, and set SECRET_KEY to the output of "
        "python3 -c 'import secrets; print(secrets.token_hex(32))'"
    )
    env_file.write_text("CACHE_TYPE=simple\n")
    with pytest.raises(ConfigError, match=r"^SECRET_KEY is not set: put in \.env the output of "):
        create_app(environ={})


def test_in_debug_mode_a_missing_env_is_said_once_at_start(env_file, caplog, monkeypatch):
    """`flask run --debug` starts without SECRET_KEY, so nothing else would tell that every
    setting (CACHE_TYPE too) has its default. Its reloader's child, which builds the app again
    to serve it, says nothing more."""
    monkeypatch.setenv("WERKZEUG_RUN_MAIN", "true")
    create_app({"DEBUG": True}, environ={})
    assert "no .env" not in caplog.text
    monkeypatch.delenv("WERKZEUG_RUN_MAIN")
    create_app({"DEBUG": True}, environ={})
    said = [r.getMessage() for r in caplog.records if "no .env" in r.getMessage()]
    assert said == [
        f"There is no .env in {env_file.parent}: every setting has its default "
        "(CACHE_TYPE=simple). Make one with `cp .env.example .env` there, and restart."
    ]
    caplog.clear()
    env_file.write_text("CACHE_TYPE=simple\n")
    create_app({"DEBUG": True}, environ={})
    assert "no .env" not in caplog.text
