"""Signed cache entries (signing.py): a pickle planted in a shared cache is never run.

Each test writes to the real server (or cache folder) as another writer would, under the real
key of the cached /example page, then requests the page.
"""

import base64
import os
import pickle
import struct
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.cache import cache

from .conftest import make_app, server_settings

VIEW_KEY = "view//example"  # Flask-Caching's key for the cached /example page
SIGNED_BACKENDS = ["redis", "memcached", "filesystem", "upstash"]


class Planted:
    """Unpickling this creates a folder: the proof that planted code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


class RawEntry:
    """The stored bytes of one cache key, read and written past the app, as another writer would."""

    def __init__(self, app, backend: str, key: str):
        guard = app.extensions["cache"][cache]
        store = getattr(guard, "backend", guard)
        prefix = app.config["CACHE_KEY_PREFIX"]
        self.frame = b"!" if backend in ("redis", "upstash") else b""  # cachelib's pickle mark
        if backend in ("redis", "upstash"):
            import redis

            server = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
            if backend == "redis":
                self.get = lambda: server.get(prefix + key)
                self.set = lambda data: server.set(prefix + key, data)
            else:  # upstash.py stores what is not digits as "b64:" + base64
                self.get = lambda: base64.b64decode(server.get(prefix + key)[4:])
                self.set = lambda data: server.set(prefix + key, b"b64:" + base64.b64encode(data))
        elif backend == "memcached":
            from pymemcache.client.base import Client

            client = Client(app.config["MEMCACHED_SERVERS"][0])
            with app.test_request_context():
                full_key = store.key_prefix + key  # with the current generation
            self.get = lambda: client.get(full_key)
            # flags=1: pymemcache's mark for a pickle; noreply=False: stored before we go on.
            self.set = lambda data: client.set(full_key, data, flags=1, noreply=False)
        else:
            path = store._get_filename(key)
            self.get = lambda: Path(path).read_bytes()[4:]  # after the expiry time
            self.set = lambda data: Path(path).write_bytes(struct.pack("I", 0) + data)


def computed_at(response) -> str:
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    return page.split('class="computed-at">', 1)[1].split("<", 1)[0]


def signed_app(tmp_path, backend, **settings):
    return make_app(tmp_path, CACHE_TYPE=backend, **server_settings(backend), **settings)


@pytest.mark.parametrize("backend", SIGNED_BACKENDS)
def test_a_planted_pickle_is_never_run(tmp_path, backend):
    app = signed_app(tmp_path, backend)
    client = app.test_client()
    first = computed_at(client.get("/example"))
    marker = tmp_path / "planted-code-ran"
    planted = pickle.dumps(Planted(marker))
    RawEntry(app, backend, VIEW_KEY).set(RawEntry(app, backend, VIEW_KEY).frame + planted)

    second = computed_at(client.get("/example"))

    assert not marker.exists(), "the planted pickle was unpickled"
    assert second != first, "the planted entry must be a miss: the page is computed again"
    assert computed_at(client.get("/example")) == second, "and the new page is cached"
    pickle.loads(planted)  # noqa: S301 - the control: this payload does run when unpickled
    assert marker.exists()


@pytest.mark.parametrize("backend", SIGNED_BACKENDS)
def test_one_flipped_byte_is_a_miss(tmp_path, backend):
    app = signed_app(tmp_path, backend)
    client = app.test_client()
    first = computed_at(client.get("/example"))
    entry = RawEntry(app, backend, VIEW_KEY)
    stored = bytearray(entry.get())
    stored[len(stored) // 2] ^= 0x01
    entry.set(bytes(stored))

    assert computed_at(client.get("/example")) != first


def test_a_new_signing_key_turns_old_entries_into_misses_logged_once(tmp_path, caplog):
    shared = {"CACHE_KEY_PREFIX": "rotation:", "CACHE_DIR": str(tmp_path / "shared")}
    old = make_app(tmp_path, CACHE_TYPE="filesystem", CACHE_SIGNING_KEY="old key", **shared)
    first = computed_at(old.test_client().get("/example"))
    old.test_client().get("/example/square/7")

    new = make_app(tmp_path, CACHE_TYPE="filesystem", CACHE_SIGNING_KEY="new key", **shared)
    client = new.test_client()
    assert computed_at(client.get("/example")) != first
    assert client.get("/example/square/7").get_json() == {"n": 7, "square": 49}
    warnings = [r for r in caplog.records if "failed its signature check" in r.getMessage()]
    assert len(warnings) == 1


def test_secret_key_signs_when_no_signing_key_is_set(tmp_path):
    shared = {"CACHE_KEY_PREFIX": "secret:", "CACHE_DIR": str(tmp_path / "shared")}
    old = make_app(tmp_path, CACHE_TYPE="filesystem", **shared)
    first = computed_at(old.test_client().get("/example"))
    same = make_app(tmp_path, CACHE_TYPE="filesystem", **shared)
    assert computed_at(same.test_client().get("/example")) == first
    other = make_app(tmp_path, CACHE_TYPE="filesystem", SECRET_KEY="another secret", **shared)
    assert computed_at(other.test_client().get("/example")) != first
