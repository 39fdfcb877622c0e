"""How the app's cache object reaches Flask-Caching: chain.build() makes it, and extension.Cache's
_set_cache stores it where Flask-Caching's Cache.cache reads it. No class is imported from a
CACHE_TYPE string, so no package name can turn our classes into what Flask-Caching takes for one
of cachelib's."""

import flask_caching
import pytest
from cachelib import SimpleCache
from flask import Flask

from {{ cookiecutter.package_name }}.cache import BACKENDS, cache, status
from {{ cookiecutter.package_name }}.cache.breaker import Breaker

from .conftest import SERVERS, cache_behind, make_app


def test_flask_caching_calls_set_cache_and_serves_what_it_stored():
    """Pins the private extension point extension.Cache overrides, in Flask-Caching 2.4 and
    2.5: init_app calls _set_cache(app, config) with the merged config, and every call goes to
    the object stored in app.extensions["cache"][cache]."""
    stored, seen = SimpleCache(), []

    class Probe(flask_caching.Cache):
        def _set_cache(self, app, config):
            seen.append(config["CACHE_TYPE"])
            app.extensions.setdefault("cache", {})[self] = stored
            self.app = app

    app, probe = Flask(__name__), Probe()
    probe.init_app(app, config={"CACHE_TYPE": "no.such.Backend"})
    assert seen == ["no.such.Backend"], "init_app calls _set_cache, and imports nothing itself"
    with app.app_context():
        assert probe.cache is stored
        assert probe.set("key", "value") and probe.get("key") == "value"
    assert stored.get("key") == "value"


@pytest.mark.parametrize(
    "backend",
    [pytest.param(name, marks=SERVERS[name][2:] if name in SERVERS else ()) for name in BACKENDS],
)
def test_no_class_is_imported_from_cache_type(backend, server_settings, tmp_path, monkeypatch):
    def refuse(name, *args, **kwargs):
        raise AssertionError(f"Flask-Caching imported {name!r}")

    monkeypatch.setattr(flask_caching, "import_string", refuse)
    app = make_app(tmp_path, **server_settings(backend))
    served = cache_behind(app)
    assert isinstance(served, Breaker) == BACKENDS[backend].shared
    with app.app_context():
        assert cache.set("key", "value")
        assert cache.get("key") == ("value" if backend != "null" else None)
        assert status()["backend"] == backend
