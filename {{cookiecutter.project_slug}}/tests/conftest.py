import os
import uuid

import pytest

from {{ cookiecutter.package_name }} import create_app

from . import upstash_server

# Backends that need a server, and the variable that tells the tests where it runs. Upstash is
# a local server that follows its REST contract (upstash_server.py), storing into that Redis.
SERVERS = {
    "redis": "TEST_REDIS_URL",
    "memcached": "TEST_MEMCACHED_SERVERS",
    "upstash": "TEST_REDIS_URL",
}
BACKENDS = ["simple", "filesystem", "redis", "memcached", "upstash"]


def server_settings(backend: str) -> dict[str, str]:
    """Settings that point ``backend`` at its test server; skip (or fail under CI) without one."""
    if backend not in SERVERS:
        return {}
    variable = SERVERS[backend]
    address = os.environ.get(variable)
    if not address:
        message = f"{variable} is not set: no {backend} server to test against"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: a missing server is a failure)")
        pytest.skip(message)
    if backend == "upstash":
        return {
            "UPSTASH_REDIS_REST_URL": upstash_server.upstash_url(address),
            "UPSTASH_REDIS_REST_TOKEN": upstash_server.TOKEN,
        }
    return {"redis": {"REDIS_URL": address}, "memcached": {"MEMCACHED_SERVERS": address}}[backend]


def make_app(tmp_path, **settings):
    return create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "test",
            "CACHE_DIR": str(tmp_path / "cache"),
            # A fresh prefix per test: runs never see each other's keys on a shared server.
            "CACHE_KEY_PREFIX": f"test-{uuid.uuid4().hex[:12]}:",
            **settings,
        }
    )


@pytest.fixture
def app(tmp_path):
    return make_app(tmp_path, CACHE_TYPE="simple")


@pytest.fixture(params=BACKENDS)
def backend_app(request, tmp_path):
    """The app on each backend in turn, against a real server where one is needed."""
    return make_app(tmp_path, CACHE_TYPE=request.param, **server_settings(request.param))


@pytest.fixture
def client(app):
    return app.test_client()
