"""The answer matrix, one bake per case shared by every check, and the test servers."""

import json
import os
from pathlib import Path

import pytest

from . import servers

TEMPLATE = Path(__file__).resolve().parent.parent
COOKIECUTTER_JSON = json.loads((TEMPLATE / "cookiecutter.json").read_text())

# Every choice prompt (a list in cookiecutter.json) and its answers, read from the file itself.
CHOICES = {
    key: value
    for key, value in COOKIECUTTER_JSON.items()
    if isinstance(value, list) and not key.startswith("_")
}


def answers(**overrides: str) -> dict[str, str]:
    """Extra context for a bake; a key cookiecutter.json lacks would be silently ignored, so fail."""
    unknown = set(overrides) - set(COOKIECUTTER_JSON)
    if unknown:
        raise AssertionError(f"cookiecutter.json has no answer named {sorted(unknown)}")
    return overrides


def case_id(case: dict[str, str]) -> str:
    """What differs from the defaults, e.g. cache_backend:redis; "defaults" for none."""
    changed = [f"{key}:{value}" for key, value in case.items() if DEFAULTS.get(key) != value]
    return "-".join(changed) or "defaults"


def pytest_configure(config):
    config.option.template = str(TEMPLATE)  # pytest-cookies bakes this template from any cwd


# The answers chosen by axis, not cross-product (as cookiecutter-django does): every value of every
# choice is baked once, the others at their defaults. Region and Python version change constants in
# the rendered files only; the backend changes .env and requirements.txt, and gets the expensive
# proofs (BACKEND_CASES).
DEFAULTS = {key: values[0] for key, values in CHOICES.items()}
CASES: list[dict[str, str]] = []
for _key, _values in CHOICES.items():
    for _value in _values:
        if {**DEFAULTS, _key: _value} not in CASES:
            CASES.append({**DEFAULTS, _key: _value})
BACKEND_CASES = [{**DEFAULTS, "cache_backend": backend} for backend in CHOICES["cache_backend"]]


@pytest.fixture(scope="session")
def bake(cookies_session):
    """bake(**answers) -> path of the baked project; each set of answers is baked once."""
    baked: dict[str, Path] = {}

    def bake(**overrides: str) -> Path:
        key = json.dumps({**DEFAULTS, **overrides}, sort_keys=True)
        if key not in baked:
            result = cookies_session.bake(extra_context=answers(**overrides))
            assert result.exit_code == 0, result.exception
            baked[key] = Path(result.project_path)
        return baked[key]

    return bake


@pytest.fixture(scope="session")
def redis_url():
    with servers.redis_server() as url:
        yield url


@pytest.fixture(scope="session")
def redis_tls_url(tmp_path_factory):
    with servers.redis_tls_server(tmp_path_factory.mktemp("tls")) as url:
        yield url


@pytest.fixture(scope="session")
def memcached_servers():
    with servers.memcached_server() as address:
        yield address


@pytest.fixture(scope="session")
def https_proxy(tmp_path_factory):
    with servers.tinyproxy(tmp_path_factory.mktemp("proxy")) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def server_env(redis_url, memcached_servers):
    """Environment for a baked project's own tests: the real servers, CI passed through."""
    return {**os.environ, "TEST_REDIS_URL": redis_url, "TEST_MEMCACHED_SERVERS": memcached_servers}
