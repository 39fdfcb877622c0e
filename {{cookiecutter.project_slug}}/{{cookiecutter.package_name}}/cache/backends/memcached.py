"""CACHE_TYPE=memcached: memcached servers through pymemcache, MemCachier's included."""

import math
import re
import ssl
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import cachelib
from flask import Flask, g, has_request_context
from flask_caching.backends.memcache import MemcachedCache

from ..config import ConfigError, Env, is_host, is_port, split_address
from ..signing import SignedSerde, Signer, signer
from .base import (
    COUNTER_ATTEMPTS,
    Backend,
    Config,
    Errors,
    added,
    attempts,
    lock_seconds,
    readable_file,
)


def _memcached_servers(env: Env, needed_by: str) -> list[tuple[str, int]]:
    accepted = "use comma-separated host:port pairs, e.g. 127.0.0.1:11211 or [::1]:11211"
    raw = env.required("MEMCACHED_SERVERS", needed_by, accepted)
    servers = []
    for item in raw.split(","):
        try:
            host, port = split_address(item.strip())
        except ValueError:
            host, port = "", None
        if not (is_host(host) and port is not None and is_port(port)):
            raise ConfigError(f"MEMCACHED_SERVERS={raw!r} is not valid: {accepted}")
        servers.append((host, int(port)))
    return servers


# memcached keys are at most 250 bytes, without spaces or control characters (the protocol), and
# cachelib silently misses any key with a '!'. A key is this prefix, the generation (14
# characters) and Flask-Caching's key (about 40 for a memoized function; a view's path).
_MEMCACHED_PREFIX = re.compile(r"[\x22-\x7e]{1,100}\Z")
# MemCachier's login (memcachier.py) sends the username as a key, so it is one: up to 250
# bytes, no spaces or control characters. The password is the value of that command, a line of
# its own: printable ASCII keeps it one line, and matches the hex of MemCachier's.
_MEMCACHED_USERNAME = re.compile(r"[\x21-\x7e]{1,250}\Z")
_MEMCACHED_PASSWORD = re.compile(r"[\x20-\x7e]+\Z")
_MEMCACHED_TLS_CA = (
    "use the absolute path of a PEM file of CA certificates this app can read, e.g. MemCachier's "
    "root CA saved as /home/<you>/<project>/MemCachierRootCA.pem (docs/caching.md)"
)


def _memcached_tls(env: Env) -> tuple[bool, str | None]:
    """MEMCACHED_TLS and MEMCACHED_TLS_CA, checked: a CA file must load."""
    tls = env.choice("MEMCACHED_TLS", "off", ("on", "off")) == "on"
    ca = env.text("MEMCACHED_TLS_CA") or None
    if ca and not tls:
        raise ConfigError(
            "MEMCACHED_TLS_CA is set but MEMCACHED_TLS is off: set MEMCACHED_TLS=on, or leave "
            "MEMCACHED_TLS_CA empty"
        )
    if ca:
        if not readable_file(ca):
            raise ConfigError(f"MEMCACHED_TLS_CA={ca!r} is not valid: {_MEMCACHED_TLS_CA}")
        try:
            ssl.create_default_context(cafile=ca)
        except (ssl.SSLError, ValueError):
            raise ConfigError(
                f"MEMCACHED_TLS_CA={ca!r} is not valid: it holds no PEM certificate; "
                f"{_MEMCACHED_TLS_CA}"
            ) from None
    return tls, ca


def _memcached_login(env: Env, tls: bool) -> dict[str, object]:
    """MEMCACHED_USERNAME and MEMCACHED_PASSWORD, checked; never shown in a message."""
    username, password = env.text("MEMCACHED_USERNAME"), env.text("MEMCACHED_PASSWORD")
    if username and not _MEMCACHED_USERNAME.match(username):
        raise ConfigError(
            "MEMCACHED_USERNAME is not valid: use the username MemCachier shows, up to 250 ASCII "
            "letters, digits and punctuation, without spaces (it is sent as a memcached key)"
        )
    if password and not _MEMCACHED_PASSWORD.match(password):
        raise ConfigError(
            "MEMCACHED_PASSWORD is not valid: it may only have ASCII letters, digits, punctuation "
            "and spaces, and has another character (a curly quote or an invisible one pasted "
            "with it?): copy it again from MemCachier's dashboard"
        )
    if bool(username) != bool(password):
        names = ("MEMCACHED_USERNAME", "MEMCACHED_PASSWORD")
        given, missing = names if username else names[::-1]
        raise ConfigError(
            f"{given} is set but {missing} is not: a login needs both (MemCachier's dashboard "
            "shows them); for a memcached server without a login, leave both empty"
        )
    if password and not tls:
        raise ConfigError(
            "MEMCACHED_PASSWORD is set but MEMCACHED_TLS is off: no password is sent over a "
            "connection whose certificate and host name are not checked, and a plain one checks "
            "neither. MemCachier over the internet needs TLS: set MEMCACHED_TLS=on, with the TLS "
            "port in MEMCACHED_SERVERS (docs/caching.md)"
        )
    return {"MEMCACHED_USERNAME": username, "MEMCACHED_PASSWORD": password}


class Memcached(Backend, MemcachedCache):
    """memcached servers through pymemcache, MemCachier's included: with MEMCACHED_USERNAME and
    MEMCACHED_PASSWORD, each connection logs in (memcachier.py), over TLS only
    (MEMCACHED_TLS, checked against the system's CAs or MEMCACHED_TLS_CA). Every key carries a
    generation number kept in memcached; clear() moves to the next one, since memcached cannot
    list keys and flush_all empties the whole server. Entries of older generations are never
    read again and age out under memcached's LRU.

    A read costs one round trip: one multi-key get asks for the generation and for the entries
    under the generation this process saw last, and answers them if that is still the one (a
    clear() by another worker costs this one a second get, once). A write needs the generation
    itself: the one read in this request (flask.g), or a read of its own.
    """

    name = "memcached"
    requires = "pymemcache"
    shared = needs_paid_account = True
    variables = (
        "MEMCACHED_SERVERS",
        *("MEMCACHED_USERNAME", "MEMCACHED_PASSWORD", "MEMCACHED_TLS", "MEMCACHED_TLS_CA"),
    )
    optional = variables[1:]

    def __init__(self, client: Any, **kwargs: Any):
        super().__init__(servers=client, **kwargs)  # type: ignore[no-untyped-call, unused-ignore]
        self.client = client  # ours, for the generation: cachelib keeps its own copy private

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        prefix = env.text("CACHE_KEY_PREFIX")
        if prefix and not _MEMCACHED_PREFIX.match(prefix):
            raise ConfigError(
                f"CACHE_KEY_PREFIX={prefix!r} is not valid with CACHE_TYPE=memcached: use up to "
                "100 ASCII letters, digits and punctuation other than '!' (no spaces)"
            )
        servers = _memcached_servers(env, f"CACHE_TYPE={cls.name}")
        tls, ca = _memcached_tls(env)
        login = _memcached_login(env, tls)
        return {"MEMCACHED_SERVERS": servers, "MEMCACHED_TLS": tls, "MEMCACHED_TLS_CA": ca, **login}

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> "Memcached":
        from pymemcache.client.hash import HashClient

        timeout = config["CACHE_SOCKET_TIMEOUT"]
        # Flask-Caching only knows pymemcache through a ready client object. Without a pickling
        # serde values come back as bytes (ours signs them); with noreply, has() and add() always
        # answer True. The breaker decides when to retry a server, so the client neither retries
        # nor waits to. TLS: the certificate and host name are checked (the default context).
        tls = config.get("MEMCACHED_TLS")
        client = HashClient(
            [],
            hasher=_Servers,
            serde=_GenerationSerde(signer(config), _generation_key(config["CACHE_KEY_PREFIX"])),
            default_noreply=False,
            connect_timeout=timeout,
            timeout=timeout,
            retry_attempts=0,
            dead_timeout=0,
            tls_context=ssl.create_default_context(cafile=config.get("MEMCACHED_TLS_CA"))
            if tls
            else None,
        )
        if config.get("MEMCACHED_USERNAME"):
            from .memcachier import LoginClient

            # HashClient's public hook: the class it builds each server's client with.
            login = (config["MEMCACHED_USERNAME"], config["MEMCACHED_PASSWORD"])
            client.client_class = partial(LoginClient, login=login)
        for server in config["MEMCACHED_SERVERS"]:
            client.add_server(tuple(server))
        return cls(client, key_prefix=config["CACHE_KEY_PREFIX"], **kwargs)

    @classmethod
    def errors(cls) -> Errors:
        from pymemcache.exceptions import MemcacheUnexpectedCloseError as Closed

        return Errors(
            # Not MemcacheServerError: memcached answers SERVER_ERROR for one value (over 1 MiB,
            # or no memory to store it), a miss for that call. A refused login is an outage: a
            # MemcachedLoginError is an OSError, as is a TLS check that failed.
            unreachable=(OSError, Closed),
            # pymemcache reuses a socket the server closed while idle (-o idle_timeout,
            # MemCachier's): the next command finds it closed, or reset (over TLS: an EOF).
            closed=(Closed, ConnectionResetError, BrokenPipeError, ssl.SSLEOFError),
        )

    @classmethod
    def describe(cls, config: Config) -> str:
        user = f"{config['MEMCACHED_USERNAME']}@" if config.get("MEMCACHED_USERNAME") else ""
        where = ",".join(f"{user}{host}:{port}" for host, port in config["MEMCACHED_SERVERS"])
        return f"{where} (TLS)" if config.get("MEMCACHED_TLS") else where

    @classmethod
    def hosts(cls, config: Config) -> list[str]:
        return [host for host, _ in config["MEMCACHED_SERVERS"]]

    @classmethod
    def secrets(cls, config: Config) -> list[str]:
        return [config["MEMCACHED_PASSWORD"]] if config.get("MEMCACHED_PASSWORD") else []

    # cachelib reads the public key_prefix attribute on every call: each read names the current
    # generation (tests/cache/test_memcached.py pins this). Writes go through it; reads do not.
    @property
    def key_prefix(self) -> str:
        return f"{self._base_prefix}{self._generation()}:"

    @key_prefix.setter
    def key_prefix(self, value: str | None) -> None:
        self._base_prefix = value or ""
        self._generation_key = _generation_key(value)
        self._seen: int | None = None  # the generation this process read last: reads' guess

    def _generation(self) -> int:
        """The generation to write under: the one read in this request, or read now, so that a
        new request sees a clear() made by another worker at once."""
        if has_request_context() and "cache_generation" in g:
            return int(g.cache_generation)
        generation = self.client.get(self._generation_key)
        if type(generation) is not int:  # never set, evicted, or not this app's
            generation = self._swap(self._generation_key, _generation_or_fresh, 0)
        self._saw(generation)
        return int(generation)

    def _saw(self, generation: int) -> None:
        self._seen = generation
        if has_request_context():
            g.cache_generation = generation

    def get(self, key: str) -> Any:
        return self._read((key,))[0]

    def get_many(self, *keys: str) -> list[Any]:
        return self._read(keys)

    def get_dict(self, *keys: str) -> dict[str, Any]:
        return dict(zip(keys, self._read(keys), strict=True))

    def _read(self, keys: Sequence[str]) -> list[Any]:
        """The values of ``keys`` (None: a miss), with the generation, in one multi-key get (one
        round trip per server holding any of them: a single server's, usually). The entries
        are those of the generation this process saw last; if another has begun since, they are
        read again under it."""
        if not keys:
            return []
        guess = self._seen
        names = [] if guess is None else _names(guess, self._base_prefix, keys)
        found = self.client.get_many([self._generation_key, *names])
        generation = found.get(self._generation_key)
        if type(generation) is not int:  # never set, evicted, or not this app's: nothing cached
            self._saw(self._swap(self._generation_key, _generation_or_fresh, 0))
            return [None] * len(keys)
        self._saw(generation)
        if generation != guess:
            found = self.client.get_many(_names(generation, self._base_prefix, keys))
        prefix = f"{self._base_prefix}{generation}:"
        return [found.get(prefix + key) for key in keys]

    def delete_many(self, *keys: str) -> list[Any]:
        return cachelib.MemcachedCache.delete_many(self, *keys)  # the comment in Backend says why

    # A key memcached stores as it is (keys.py): no space, control character or '!', the whole
    # name within 250 bytes with the longest generation (20 digits and its ':').
    _KEY = re.compile(r"[\x22-\x7e]+\Z")
    _GENERATION_CHARS = 21

    def fits(self, key: str) -> bool:
        length = len(self._base_prefix) + self._GENERATION_CHARS + len(key)
        return length <= 250 and self._KEY.match(key) is not None

    def forked(self) -> None:
        self.client.close()  # pymemcache closes this process's copy of each socket, no more

    def has(self, key: str) -> bool:
        # cachelib's appends an empty value, which pymemcache passes through the serde: a signed
        # pickle of b"", appended to the entry, which then never reads back. A read answers.
        return self.get(key) is not None

    def unlink(self, *keys: str) -> None:
        """Delete without checking afterwards (cachelib's delete_many re-reads every key, and
        fails when another worker has written one meanwhile): one round trip per server, where
        HashClient's own delete_many makes one per key. HashClient._get_client (pymemcache 4)
        names the server of a key; tests/cache/test_memcached.py pins it."""
        by_server: dict[Any, list[str]] = {}
        prefix = self.key_prefix  # one read: it names the generation
        for key in keys:
            name = f"{prefix}{key}"
            by_server.setdefault(self.client._get_client(name), []).append(name)
        for server, names in by_server.items():
            server.delete_many(names, noreply=False)

    def clear(self) -> bool:
        """Start a new generation, orphaning this app's entries; never flush_all."""
        self._saw(self._swap(self._generation_key, lambda now: _generation_or_fresh(now) + 1, 0))
        return True

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Atomic: gets, then cas (add for a missing key), retried when another writer won. Each
        restarts the counter's expiry (the default timeout): memcached cannot keep it on a write."""
        try:
            return self._swap(
                self._normalize_key(key),
                partial(added, delta=delta, key=key),
                self._normalize_timeout(None),
            )
        except _LostRaces:
            return None

    def dec(self, key: str, delta: int = 1) -> int | None:
        return self.inc(key, -delta)

    def _swap(self, name: str, change: Callable[[Any], int], expire: int) -> int:
        """Write change(current value) under ``name`` unless another writer came first, then
        retry: memcached's compare-and-set. A value this app did not write reads as None."""
        for _ in attempts():
            current, token = self.client.gets(name) or (None, None)
            new = change(current)
            if token is None:
                done = self.client.add(name, new, expire)
            else:
                done = self.client.cas(name, new, token, expire)
            if done:
                return new
        raise _LostRaces(f"cache: {COUNTER_ATTEMPTS} writes to {name!r} lost to other writers")

    def lock(self, key: str, seconds: float) -> bool:
        """memcached's add: stored only if the key is not. Its value is a signed None (a get of
        its name is a miss). Expiry is in whole seconds, and memcached's clock ticks once a
        second: an item given N seconds lives between N-1 and N (measured), so a lock gets one
        second more than ``seconds`` rounded up, to last at least ``seconds``."""
        expire = math.ceil(lock_seconds(seconds)) + 1
        if expire > _RELATIVE_EXPIRY:  # memcached reads a larger number as a Unix time
            expire += int(time.time())
        return bool(self.client.add(self._normalize_key(key), None, expire, noreply=False))

    def unlock(self, key: str) -> None:
        self.client.delete(self._normalize_key(key), noreply=False)


# memcached reads an expiry of up to 30 days as seconds from now, a larger one as a Unix time.
_RELATIVE_EXPIRY = 30 * 24 * 3600


class _LostRaces(RuntimeError):
    """A compare-and-set lost every attempt to other writers of its key."""


def _generation_or_fresh(current: Any) -> int:
    # A fresh, never-used number when the counter is missing (evicted) or not this app's.
    return current if type(current) is int else int(time.time() * 1000)


def _generation_key(prefix: str | None) -> str:
    return f"{prefix or ''}generation"


# A name memcached takes as it is: any other would fail the whole multi-key get. keys.py maps
# every key the breaker passes to one that fits (fits() above); past the breaker, a miss, as
# cachelib's get() answers for a name it cannot ask for.
_NAME = re.compile(r"[\x22-\x7e]{1,250}\Z")


def _names(generation: int, prefix: str, keys: Sequence[str]) -> list[str]:
    """The names of ``keys`` under ``generation``: those memcached can be asked for."""
    names = (f"{prefix}{generation}:{key}" for key in keys)
    return [name for name in names if _NAME.match(name)]


class _GenerationSerde(SignedSerde):
    """SignedSerde, which also remembers the generation's stored bytes it last checked or wrote:
    every read asks for the generation, which changes only at a clear(), so its MAC is checked
    once per change, not once per hit (a bytes comparison instead: same bytes, same answer)."""

    def __init__(self, signer: Signer, generation_key: str):
        super().__init__(signer)
        self.generation_key = generation_key
        # pymemcache (4) gives serialize() the key encoded, deserialize() the key as given.
        self._generation_names = (generation_key, generation_key.encode())
        self._known: tuple[bytes, int] = (b"", 0)  # one tuple: threads read it whole

    def serialize(self, key: str | bytes, value: Any) -> tuple[bytes, int]:
        data, flags = super().serialize(key, value)
        if key in self._generation_names and type(value) is int:
            self._known = (data, value)
        return data, flags

    def deserialize(self, key: str | bytes, value: bytes, flags: int) -> Any:
        if key not in self._generation_names:
            return super().deserialize(key, value, flags)
        data, generation = self._known
        if value == data and flags == self.FLAG_PICKLE:
            return generation
        loaded = super().deserialize(key, value, flags)
        if type(loaded) is int:
            self._known = (value, loaded)
        return loaded


class _Servers:
    """HashClient's hasher: pymemcache's rendezvous hashing, except that a single server takes
    every key without hashing it (pymemcache's murmur3 is pure Python: about 6 us a key, a third
    of a get). Only the hasher's public methods, as HashClient's docstring lists them."""

    def __init__(self) -> None:
        from pymemcache.client.rendezvous import RendezvousHash

        self._hash = RendezvousHash()
        self._nodes: list[str] = []

    def add_node(self, node: str) -> None:
        self._hash.add_node(node)
        if node not in self._nodes:
            self._nodes.append(node)

    def remove_node(self, node: str) -> None:
        self._hash.remove_node(node)
        self._nodes.remove(node)

    def get_node(self, key: str) -> str | None:
        if len(self._nodes) == 1:
            return self._nodes[0]
        node: str | None = self._hash.get_node(key)
        return node
