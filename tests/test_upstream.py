"""Upstream suites as the contract: cachelib's and Flask-Caching's own tests, taken from their
source distributions on PyPI (the versions installed here), run against the baked cache package.

- cachelib's behaviour mixins (CommonTests, ClearTests, HasTests, DeleteManyWithPrefixTests, as
  its own test modules combine them) run on every backend class, as the app builds it: behind
  the breaker, signing its entries, against real servers; redis with its near cache tracking
  (the default), memcached and filesystem once more with a near cache in its TTL mode.
- Flask-Caching's own tests run twice, with its Cache and with the baked one (cache/extension.py
  puts a cheaper key on the usual view): every test must end the same way. Tests that need what
  this machine lacks (Flask's async extra, pylibmc, their own Redis on port 6360) fail or error
  the same way in both runs, so the comparison still holds.
"""

import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ElementTree
from importlib.metadata import version
from pathlib import Path

import pytest

from . import servers
from .conftest import CHOICES

BACKEND_MIXINS = """
import os
import uuid

import pytest
from clear import ClearTests
from common import CommonTests
from delete_many_with_prefix import DeleteManyWithPrefixTests
from has import HasTests

from my_flask_app import create_app
from my_flask_app.cache import cache

SERVERS = {
    "REDIS_URL": os.environ["TEST_REDIS_URL"],
    "MEMCACHED_SERVERS": os.environ["TEST_MEMCACHED_SERVERS"],
    "UPSTASH_REDIS_REST_URL": os.environ["TEST_UPSTASH_URL"],
    "UPSTASH_REDIS_REST_TOKEN": os.environ["TEST_UPSTASH_TOKEN"],
}


@pytest.fixture(params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(autouse=True)
def cache_factory(request, backend, tmp_path, key_prefix):
    # A prefix of each test's own: the tests run in parallel against one server.
    own = f"{uuid.uuid4().hex[:8]}-"

    def factory(self, key_prefix=key_prefix, ignore_delete_many_errors=True):
        name, _, near_ttl = backend.partition(" near-ttl=")  # "memcached near-ttl=30"
        settings = {"TESTING": True, "SECRET_KEY": "upstream", "CACHE_TYPE": name, **SERVERS}
        settings["CACHE_NEAR_TTL"] = near_ttl  # empty: the default (redis tracks, others off)
        settings |= {"CACHE_DIR": str(tmp_path), "CACHE_KEY_PREFIX": own + (key_prefix or "")}
        settings["CACHE_IGNORE_ERRORS"] = ignore_delete_many_errors
        app = create_app(settings, environ={})
        with app.app_context():
            store = cache.cache
        store.clear()
        return store

    request.cls.cache_factory = factory


class TestBakedBackends(CommonTests, ClearTests, HasTests, DeleteManyWithPrefixTests):
    pass
"""

PLUGIN = """
import os
import sys
import types

import pytest

try:
    import xprocess  # noqa: F401 - their conftest imports it, for fixtures that start servers
except ImportError:
    sys.modules["xprocess"] = types.SimpleNamespace(ProcessStarter=object)

if os.environ.get("BAKED_CACHE"):
    import flask_caching

    from my_flask_app.cache.extension import Cache

    flask_caching.Cache = Cache

if os.environ.get("BAKED_CHAIN"):  # their simple cache made as init_app makes ours: our decorators
    from my_flask_app.cache import regenerate
    from my_flask_app.cache.backends.simple import Simple

    flask_cachings_set_cache = Cache._set_cache

    def _set_cache(self, app, config):
        if config.get("CACHE_TYPE") in ("simple", "SimpleCache") and "CACHE_BACKEND" not in config:
            app.config.setdefault("CACHE_STALE_GRACE", 30)
            config = {**config, "CACHE_BACKEND": Simple, "CACHE_THRESHOLD": 500}
        return flask_cachings_set_cache(self, app, config)

    Cache._set_cache = _set_cache

    @pytest.fixture(autouse=True)
    def entries_on_their_clock(request, monkeypatch):
        # Their clock fixture moves cachelib's time: the entries' freshness moves with it.
        if "clock" in request.fixturenames:
            monkeypatch.setattr(regenerate, "clock", request.getfixturevalue("clock"))
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> dict[str, Path]:
    """The test folders of the installed cachelib's and Flask-Caching's source distributions."""
    where = tmp_path_factory.mktemp("upstream")
    found = {}
    for name in ("cachelib", "flask-caching"):
        pinned = f"{name}=={version(name)}"
        download = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
             "-d", str(where), pinned],
            capture_output=True, text=True,
        )  # fmt: skip
        assert download.returncode == 0, download.stderr[-2000:]
        (archive,) = where.glob(f"{name.replace('-', '_')}-*.tar.gz")
        with tarfile.open(archive) as sdist:
            if hasattr(tarfile, "data_filter"):  # Python 3.11.4 and later
                sdist.extractall(where, filter="data")
            else:  # Debian 12's python3 (3.11.2): the same refusals, by hand
                sdist.extractall(where, members=[m for m in sdist.getmembers() if plain(m)])
        found[name] = where / archive.name.removesuffix(".tar.gz") / "tests"
    return found


def plain(member: tarfile.TarInfo) -> bool:
    """A file or folder inside the archive's folder: no link, device or path out of it."""
    parts = Path(member.name).parts
    return (member.isfile() or member.isdir()) and not member.name.startswith("/") and ".." not in parts


def outcomes(junit_xml: Path) -> dict[str, str]:
    results = {}
    for case in ElementTree.parse(junit_xml).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        results[f"{case.get('classname')}.{case.get('name')}"] = kinds[0] if kinds else "passed"
    return results


def failures(junit_xml: Path) -> str:
    """Each failed test's own traceback (the run's output ends with the warnings' summary)."""
    if not junit_xml.exists():
        return ""
    said = []
    for case in ElementTree.parse(junit_xml).iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                said.append(f"{case.get('name')}: {(child.text or '')[-3000:]}")
    return "\n".join(said)


def plugin(where: Path) -> str:
    """A pytest plugin for the upstream suites: no need of pytest-xprocess; with BAKED_CACHE set,
    the baked project's Cache in place of Flask-Caching's."""
    (where / "upstream_plugin.py").write_text(PLUGIN)
    return "upstream_plugin"


# The near cache's TTL mode, on the backends that cannot report changes (redis runs its tracking
# mode above: it is on by default).
NEAR_TTL = ["memcached near-ttl=30", "filesystem near-ttl=30"]


def test_cachelibs_behaviour_tests_pass_on_every_backend(bake, upstream, server_env, tmp_path):
    project = bake()
    module = upstream["cachelib"] / "test_baked_backends.py"
    module.write_text(f"BACKENDS = {CHOICES['cache_backend'] + NEAR_TTL!r}\n" + BACKEND_MIXINS)
    upstash = servers.upstash_settings(project, server_env["TEST_REDIS_URL"])
    env = {
        **server_env,
        "PYTHONPATH": f"{tmp_path}:{project}",
        "TEST_UPSTASH_URL": upstash["UPSTASH_REDIS_REST_URL"],
        "TEST_UPSTASH_TOKEN": upstash["UPSTASH_REDIS_REST_TOKEN"],
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark",
         "-p", plugin(tmp_path), "-n", "5", "--junit-xml", str(tmp_path / "junit.xml"), module.name],
        cwd=module.parent, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, failures(tmp_path / "junit.xml") or result.stdout[-4000:]
    ran = outcomes(tmp_path / "junit.xml")
    assert set(ran.values()) == {"passed"}, {test: end for test, end in ran.items() if end != "passed"}
    # Each mixin's tests, on each backend (and near cache mode), with and without a key prefix.
    assert len(ran) >= 15 * (len(CHOICES["cache_backend"]) + len(NEAR_TTL)) * 2, len(ran)
    assert sum("near-ttl" in test for test in ran) >= 15 * len(NEAR_TTL) * 2


def test_flask_cachings_own_tests_end_the_same_with_the_baked_cache(bake, upstream, tmp_path):
    env = {**servers.app_env(None), "PYTHONPATH": f"{tmp_path}:{bake()}"}
    name = plugin(tmp_path)
    ends = {}
    runs = {"theirs": {}, "ours": {"BAKED_CACHE": "1"}, "chain": {"BAKED_CACHE": "1", "BAKED_CHAIN": "1"}}
    for run, settings in runs.items():
        report = tmp_path / f"{run}.xml"
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark", "-p", name,
             "-n", "2", "--junit-xml", str(report)],
            cwd=upstream["flask-caching"], env={**env, "BAKED_CACHE": "", "BAKED_CHAIN": "", **settings},
            capture_output=True, text=True,
        )  # fmt: skip
        assert report.exists(), result.stdout[-3000:] + result.stderr[-3000:]
        ends[run] = outcomes(report)
    assert ends["ours"] == ends["theirs"]
    assert list(ends["ours"].values()).count("passed") >= 150
    # Through this package's decorators (regenerate.py, conditional.py) too, but for these:
    differ = {test.rpartition(".")[2] for test, end in ends["chain"].items() if end != ends["theirs"][test]}
    assert differ == THROUGH_OUR_DECORATORS_ONLY_THESE_DIFFER, failures(tmp_path / "chain.xml")[-6000:]


# Flask-Caching's own tests that end otherwise when its simple cache is built as init_app builds
# ours, so that its decorators are this package's (each with why):
THROUGH_OUR_DECORATORS_ONLY_THESE_DIFFER = {
    # Our backends sign their entries: a serializer set in Flask-Caching's config is not theirs.
    "test_instance_is_used_as_is",
    "test_class_is_instantiated",
    "test_serializer_read_from_extension_config",
    "test_configured_serializer_is_used_for_get_and_set",
    "test_values_are_stored_in_the_configured_format",
    # A decorator reads and writes the chain itself (a hit's path: one lookup, not Cache.get's
    # two); a subclass's own get() and set() are not called by them.
    "test_cached_uses_public_methods",
    "test_memoize_uses_public_methods",
    # After a write, Flask-Caching extends the function's version key to the entry's timeout with
    # a private method (_memoize_version); our decorator does not call it, so the version key
    # keeps the timeout it was made with, and may expire first (the entry is then a miss).
    "test_memoize_version_key_expires_once_its_entries_have",
}
