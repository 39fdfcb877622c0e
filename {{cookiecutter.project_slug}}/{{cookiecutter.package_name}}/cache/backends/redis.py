"""CACHE_TYPE=redis: a Redis server (Upstash, Redis Cloud) through redis-py."""

import logging
import math
import re
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

import cachelib
from flask import Flask
from flask_caching.backends.rediscache import RedisCache

from ..config import ConfigError, Env, redact_url
from ..errors import says
from ..near import Tracking
from ..signing import SignedRedisSerializer, signer
from .base import Backend, Config, Errors, added, attempts, lock_seconds, readable_file

CLEAR_BATCH = 500  # keys per SCAN page and per UNLINK
# What Upstash answers to every command once a database has used its quota: the monthly one (the
# free tier's 500K commands; upstash.com/docs/redis/troubleshooting/max_requests_limit, in full
# "ERR max requests limit exceeded. Limit: 500000, Usage: 500000. See <that page> for details")
# and the older daily one (.../max_daily_request_limit). Both over REST and over the Redis
# protocol: until the quota resets, no command is served.
UPSTASH_QUOTA = ("max requests limit exceeded", "max daily request limit exceeded")


# What REDIS_URL's query may set. redis-py passes any other option to its connection, which
# fails at the first connection (an unknown name) or overrides a bounded setting (socket_timeout
# overrides CACHE_SOCKET_TIMEOUT).
REDIS_URL_FILES = ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile")
REDIS_URL_OPTIONS = (
    *("db", "username", "password", "ssl_cert_reqs", "ssl_check_hostname"),
    *REDIS_URL_FILES,
)
REDIS_DATABASES = 16  # a Redis server's default; hosted ones serve database 0 only
HOSTED_REDIS = (".upstash.io", ".redis-cloud.com", ".redislabs.com")


# What Redis answers a login it refuses: none given ("Authentication required."; HELLO's "must be
# called with the client already authenticated" on RESP3), or a wrong one (WRONGPASS).
LOGIN_REFUSED = ("Authentication required", "HELLO must be called", "invalid username-password")
LOGIN_ADVICE = (
    "check the password in REDIS_URL: redis://default:PASSWORD@HOST:PORT as your Redis provider "
    "shows it, with any / ? # in the password percent-encoded (%2F %3F %23)"
)


def _redis_url(env: Env, needed_by: str) -> str:
    accepted = (
        "use redis://[:password@]host:port/db, or rediss://... for TLS (Upstash; Redis Cloud "
        "when TLS is on)"
    )
    url = env.url("REDIS_URL", needed_by, schemes=("redis", "rediss"), accepted=accepted)
    parts = urlsplit(url)

    def refuse(problem: str) -> ConfigError:
        return ConfigError(f"REDIS_URL={redact_url(url)!r} is not valid: {problem}")

    database = parts.path.strip("/")
    if database and not (database.isascii() and database.isdigit()):
        raise refuse(accepted)  # redis-py would silently use database 0
    try:
        from redis.connection import ConnectionPool, parse_url
        from redis.exceptions import RedisError
    except ImportError:  # init_app says so and serves the simple cache; deploy.py refuses
        return url
    # redis-py's own reading of the URL, so what is checked is what it will use.
    try:
        options: dict[str, Any] = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as error:  # "Invalid value for 'db' in connection URL."
        raise refuse(str(error).rstrip(".")) from None
    unknown = sorted(set(options) - {"host", "port", "connection_class", *REDIS_URL_OPTIONS})
    if unknown:
        raise refuse(
            f"this app does not take the option {unknown[0]!r}: use only "
            f"{', '.join(REDIS_URL_OPTIONS)} (CACHE_SOCKET_TIMEOUT sets the timeouts)"
        )
    hosted = (parts.hostname or "").endswith(HOSTED_REDIS)
    last = 0 if hosted else REDIS_DATABASES - 1
    if not 0 <= options.get("db", 0) <= last:
        where = "a hosted Redis serves database 0 only" if hosted else "a Redis server has 16"
        raise refuse(f"use a database number from 0 to {last} ({where})")
    if options.get("username") and not options.get("password"):
        raise refuse("it names a user but no password: use redis://[user]:password@host")
    tls_only = sorted(name for name in options if name.startswith("ssl_"))
    if tls_only and parts.scheme != "rediss":
        raise refuse(f"{tls_only[0]} is for rediss:// (TLS) URLs only")
    if options.get("ssl_cert_reqs", "none") not in ("none", "optional", "required"):
        raise refuse("use ssl_cert_reqs=none, optional or required")
    missing = [n for n in REDIS_URL_FILES if n in options and not readable_file(options[n])]
    if missing:  # read at the first connection, and at each one after
        raise refuse(f"{missing[0]} names no file this app can read: use an absolute path")
    try:  # the connection as the factory will make it, without connecting
        pool = ConnectionPool.from_url(url)
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError, RedisError) as error:
        raise refuse(f"redis-py refuses it ({type(error).__name__})") from None
    return url


class Redis(Backend, RedisCache):
    """A Redis server (Upstash, Redis Cloud) through redis-py: short timeouts, no retries."""

    name = "redis"
    requires = "redis"
    shared = needs_paid_account = tracks = True
    variables: ClassVar[tuple[str, ...]] = ("REDIS_URL",)
    serializer: SignedRedisSerializer  # set by _signed()

    def __init__(self, client: Any, **kwargs: Any):
        super().__init__(host=client, **kwargs)  # type: ignore[no-untyped-call, unused-ignore]
        self.client = client  # ours, for clear(): cachelib keeps its own copy private

    @classmethod
    def settings(cls, env: Env) -> dict[str, object]:
        return {"REDIS_URL": _redis_url(env, f"CACHE_TYPE={cls.name}")}

    @classmethod
    def factory(
        cls, app: Flask, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]
    ) -> "Redis":
        import redis
        from redis.backoff import NoBackoff
        from redis.maint_notifications import MaintNotificationsConfig
        from redis.retry import Retry

        timeout = config["CACHE_SOCKET_TIMEOUT"]
        # redis-py retries failed calls by default, multiplying the time a request waits; the
        # breaker decides when to try again. A new connection (a worker's first request makes
        # one) costs only what it must: RESP2, so no HELLO (AUTH when there is a password); no
        # CLIENT SETINFO (a round trip, two with redis-py 8.0, for a name in CLIENT LIST); no
        # maintenance notifications (a round trip, and during a hosted Redis's maintenance they
        # relax every timeout to 10 s, past CACHE_SOCKET_TIMEOUT).
        client = redis.Redis.from_url(
            config["REDIS_URL"],
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
            driver_info=None,
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        return cls._signed(client, config, kwargs)

    @classmethod
    def _signed(cls, client: Any, config: Config, kwargs: dict[str, Any]) -> "Redis":
        cache = cls(client, key_prefix=config["CACHE_KEY_PREFIX"], **kwargs)
        cache.serializer = SignedRedisSerializer(signer(config))
        return cache

    @classmethod
    def errors(cls) -> Errors:
        from redis.exceptions import ConnectionError, ResponseError, TimeoutError

        return Errors(
            unreachable=(ConnectionError, TimeoutError, OSError),
            # redis-py replaces a pooled connection the server closed (it reads the EOF first),
            # not one a NAT reset: "Connection reset by peer" comes with the next command.
            closed=(ConnectionError,),
            refusals={ResponseError: UPSTASH_QUOTA},  # Upstash's Redis protocol (rediss://)
        )

    @classmethod
    def advice(cls, error: BaseException) -> str:
        from redis.exceptions import AuthenticationError, ResponseError

        login = isinstance(error, AuthenticationError) or (
            isinstance(error, ResponseError) and says(str(error), LOGIN_REFUSED)
        )
        return LOGIN_ADVICE if login else ""

    # Compare-and-set, run by the server as one step: KEYS[1] is the key; ARGV: what the caller
    # found ("present", with the exact bytes it read; "missing"; or "foreign", a value this app
    # did not write), the new value, and the timeout in seconds (0: none) for a new entry. A
    # present entry keeps its TTL, as INCR keeps it (KEEPTTL: Redis 6.0 or later; Upstash has
    # it). Returns 1 if written, 0 if someone wrote first. A script, not WATCH/MULTI: Upstash's
    # REST API has no connection to WATCH on, and this takes two round trips (GET, EVAL) where
    # WATCH takes three.
    SWAP = """
local current = redis.call('GET', KEYS[1])
if ARGV[1] == 'present' then
  if current ~= ARGV[2] then return 0 end
  redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
  return 1
end
if ARGV[1] == 'missing' and current then return 0 end
if tonumber(ARGV[4]) > 0 then
  redis.call('SET', KEYS[1], ARGV[3], 'EX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1
"""

    # cachelib's reads and writes, each value signed with the name it is stored under.
    def get(self, key: str) -> Any:
        name = f"{self._get_prefix()}{key}"
        return self.serializer.loads(self._read_client.get(name), name=name)

    def get_with_ttl(self, key: str) -> tuple[Any, float]:
        """The value and the seconds it has left (inf: no expiry), in one round trip: the near
        cache must not outlive an entry that expires (Redis may report its expiry late)."""
        name = f"{self._get_prefix()}{key}"
        pipe = self._read_client.pipeline(transaction=False)
        stored, left = pipe.get(name).pttl(name).execute()
        return self.serializer.loads(stored, name=name), math.inf if left == -1 else left / 1000

    def tracking(self, log: logging.Logger) -> Tracking:
        """A connection of its own, made as the client's are (URL, TLS, password, timeouts),
        speaking RESP3, to which the server sends the keys written under CACHE_KEY_PREFIX.
        Connecting sends HELLO alone (no name, no SETINFO, no SELECT: tracking goes by key
        name in every database): Tracking names it with CLIENT TRACKING, in one round trip."""
        pool = self.client.connection_pool
        options = {
            **pool.connection_kwargs,
            **{"protocol": 3, "client_name": None, "driver_info": None, "db": 0},
        }
        return Tracking(lambda: pool.connection_class(**options), str(self.key_prefix), log)

    def get_many(self, *keys: str) -> list[Any]:
        names = [f"{self._get_prefix()}{key}" for key in keys]
        stored = self._read_client.mget(names) if names else []
        pairs = zip(names, stored, strict=True)
        return [self.serializer.loads(data, name=name) for name, data in pairs]

    def set(self, key: str, value: Any, timeout: Any = None) -> Any:
        return self._write_client.set(*self._entry(key, value), ex=self._expiry(timeout))

    def add(self, key: str, value: Any, timeout: Any = None) -> Any:
        # One command (cachelib's SETNX then EXPIRE can write a key that never expires, then
        # fail): an add that fails wrote nothing, which the breaker relies on (it undoes none).
        entry, ex = self._entry(key, value), self._expiry(timeout)
        return bool(self._write_client.set(*entry, ex=ex, nx=True))

    def set_many(self, mapping: dict[str, Any], timeout: Any = None) -> list[Any]:
        ex, pipe = self._expiry(timeout), self._write_client.pipeline(transaction=False)
        for key, value in mapping.items():
            pipe.set(*self._entry(key, value), ex=ex)
        return [key for key, done in zip(mapping, pipe.execute(), strict=True) if done]

    def lock(self, key: str, seconds: float) -> bool:
        """One command, SET NX PX: the server takes the lock if nobody holds it, and lets it
        expire by itself. Its value is a signed None: a get of its name is a miss, unlogged."""
        milliseconds = max(math.ceil(lock_seconds(seconds) * 1000), 1)
        name, held = self._entry(key, None)
        return bool(self._write_client.set(name, held, px=milliseconds, nx=True))

    def unlock(self, key: str) -> None:
        self._write_client.delete(f"{self._get_prefix()}{key}")

    def _entry(self, key: str, value: Any) -> tuple[str, bytes]:
        """The name ``key`` is stored under, and ``value`` signed for it."""
        name = f"{self._get_prefix()}{key}"
        return name, self.serializer.dumps(value, name=name)

    def _expiry(self, timeout: Any) -> int | None:
        expires = self._normalize_timeout(timeout)  # cachelib's: -1 for no expiry
        return expires if expires != -1 else None

    def delete_many(self, *keys: str) -> list[Any]:
        return cachelib.RedisCache.delete_many(self, *keys)  # the comment in Backend says why

    def inc(self, key: str, delta: int = 1) -> int | None:
        """Atomic: a signed read, then a compare-and-set, retried when another writer won. A
        value this app did not write counts as 0 and is replaced without a compare (Upstash's
        JSON cannot always send its bytes back), so increments racing with that can be lost."""
        name = f"{self._get_prefix()}{key}"
        timeout = max(self._normalize_timeout(None), 0)
        for _ in attempts():
            stored = self._read_client.get(name)
            current = self.serializer.loads(stored, name=name)
            new = added(current, delta, key)
            found = "missing" if stored is None else "foreign" if current is None else "present"
            dump = self.serializer.dumps(new, name=name)
            if self._write_client.eval(self.SWAP, 1, name, found, stored or b"", dump, timeout):
                return new
        return None

    def dec(self, key: str, delta: int = 1) -> int | None:
        return self.inc(key, -delta)

    @classmethod
    def describe(cls, config: Config) -> str:
        return redact_url(config[cls.variables[0]])  # Upstash's: the token is never in its URL

    @classmethod
    def hosts(cls, config: Config) -> list[str]:
        return [urlsplit(config[cls.variables[0]]).hostname or ""]

    @classmethod
    def secrets(cls, config: Config) -> list[str]:
        parts = urlsplit(config[cls.variables[0]])
        # As written in the URL and as redis-py reads it (a lone userinfo is a password too).
        found = [parts.password or parts.username or ""]
        found += [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
        return [s for raw in found for s in {raw, unquote(raw)} if s]

    def clear(self) -> bool:
        """Remove the keys under this app's prefix: SCAN + UNLINK in batches, never KEYS/FLUSHDB."""
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", str(self.key_prefix)) + "*"
        batch = []
        for key in self.client.scan_iter(match=pattern, count=CLEAR_BATCH):
            batch.append(key)
            if len(batch) >= CLEAR_BATCH:
                self.client.unlink(*batch)
                batch.clear()
        if batch:
            self.client.unlink(*batch)
        return True
