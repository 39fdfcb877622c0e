"""Signed cache entries: a pickle the app did not write is never unpickled.

The shared backends store pickles, and unpickling runs code: anyone who can write to a shared
cache could make the app run theirs (CVE-2021-33026). Every pickle stored is prefixed with an
HMAC-SHA256 of it, under a key derived from CACHE_SIGNING_KEY or else SECRET_KEY, and checked
before it is unpickled. An entry that fails the check is a miss: the view is computed again and
overwrites it. Changing the key turns old entries into misses, nothing worse.

Integers are signed too: plain digits (cachelib's format for Redis INCR) or memcached's integer
flag would let anyone who can write to the cache choose a counter's value or a memoized result,
or put an int where a page is expected (a 500 for every visitor). So inc()/dec() read, add and
write a signed value (backends/base.py says how each backend keeps that atomic).

The MAC also covers the name the entry is stored under: an entry copied under another key is a
miss there, so one function's result cannot be served as another's, nor a number as a page. A
backend that forgets to pass the name signs with an empty one, and reads it back as a miss.
"""

import hashlib
import hmac
import logging
import pickle
from collections.abc import Mapping
from typing import IO, Any

from cachelib.serializers import FileSystemSerializer, RedisSerializer

MAC_SIZE = hashlib.sha256().digest_size
PICKLED = b"!"  # cachelib's mark for a pickled value in Redis; kept so the format reads the same
log = logging.getLogger(__name__)


def signer(config: Mapping[str, Any]) -> "Signer":
    """The app's signer: keyed with CACHE_SIGNING_KEY, or else SECRET_KEY."""
    return Signer(config["CACHE_SIGNING_KEY"] or config["SECRET_KEY"])


class Signer:
    def __init__(self, secret: str):
        # A key for cache entries only (their MAC can sign nothing else), keyed once: each MAC
        # copies this state (about 30% faster than hmac.new per call).
        key = hmac.new(secret.encode(), b"cache-entry-signing-v1", hashlib.sha256).digest()
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)
        self.rejected = 0  # entries refused since start, in this process

    def mac(self, payload: bytes | memoryview, name: str = "") -> bytes:
        """The MAC of ``payload`` stored under ``name`` (length-prefixed: no two pairs collide)."""
        keyed = self._keyed.copy()
        encoded = name.encode("utf-8", "surrogatepass")
        keyed.update(len(encoded).to_bytes(4, "big") + encoded)
        keyed.update(payload)
        return keyed.digest()

    def dumps(self, value: Any, name: str = "") -> bytes:
        payload = pickle.dumps(value, pickle.HIGHEST_PROTOCOL)
        return self.mac(payload, name) + payload

    def loads(self, data: bytes, name: str = "") -> Any:
        """The value, or None (a miss) when ``data`` does not carry the MAC of this app's key
        for it stored under ``name``."""
        view = memoryview(data)
        mac, payload = view[:MAC_SIZE], view[MAC_SIZE:]
        if len(mac) == MAC_SIZE and hmac.compare_digest(mac, self.mac(payload, name)):
            return pickle.loads(payload)  # noqa: S301 - signed by this app, checked just above
        return self.reject()

    def reject(self) -> None:
        """Count an entry this app did not write, log the first, and answer a miss (None)."""
        self.rejected += 1
        if self.rejected == 1:  # once per process: a rotated key would otherwise flood the log
            log.warning(
                "cache: an entry failed its signature check and was treated as a miss (the "
                "signing key changed, or something other than this app wrote to the cache); "
                "later ones are not logged"
            )


class _Signed:
    def __init__(self, signer: Signer):
        self.signer = signer


class SignedRedisSerializer(_Signed, RedisSerializer):
    """cachelib's serializer for Redis (and Upstash), signed: cachelib's "!" mark, then the
    signed pickle of every value, integers included (cachelib's would store those as digits)."""

    def dumps(
        self, value: Any, protocol: int = pickle.HIGHEST_PROTOCOL, *, name: str = ""
    ) -> bytes:
        return PICKLED + self.signer.dumps(value, name)

    def loads(self, value: bytes | None, *, name: str = "") -> Any:
        if value is None:
            return None
        if value.startswith(PICKLED):
            return self.signer.loads(value[len(PICKLED) :], name)
        return self.signer.reject()  # digits, or anything else this app did not write


class SignedFileSerializer(_Signed, FileSystemSerializer):
    """cachelib's serializer for the filesystem cache, signed: the signed pickle after the
    entry's expiry."""

    def dump(
        self, value: Any, f: IO[bytes], protocol: int = pickle.HIGHEST_PROTOCOL, *, name: str = ""
    ) -> None:
        f.write(self.signer.dumps(value, name))

    def load(self, f: IO[bytes], *, name: str = "") -> Any:
        return self.signer.loads(f.read(), name)


class SignedSerde(_Signed):
    """pymemcache's serde, signed: every value a signed pickle, integers included; a value with
    any other flags (pymemcache's integer flag, 2, above all) is not this app's: a miss."""

    FLAG_PICKLE = 1 << 0  # pymemcache.serde's value

    def serialize(self, key: str | bytes, value: Any) -> tuple[bytes, int]:
        return self.signer.dumps(value, _text(key)), self.FLAG_PICKLE

    def deserialize(self, key: str | bytes, value: bytes, flags: int) -> Any:
        if flags == self.FLAG_PICKLE:
            return self.signer.loads(value, _text(key))
        return self.signer.reject()


def _text(key: str | bytes) -> str:
    """pymemcache passes the key as the caller gave it (cachelib: str with its prefix)."""
    return key if isinstance(key, str) else key.decode("utf-8", "surrogateescape")
