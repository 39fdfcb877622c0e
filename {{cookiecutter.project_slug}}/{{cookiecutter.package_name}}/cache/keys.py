"""Cache keys as every shared backend can store them: the breaker maps each key before any call.

Flask-Caching makes a view's key from its URL path ("view//blog/café") and a memoized function's
from its arguments, and an app may pass any object. memcached takes up to 250 bytes of ASCII
without spaces or control characters (pymemcache refuses the others, and cachelib silently misses
a key with '!'); redis-py, Upstash's JSON and the filesystem's hash need text that encodes as
UTF-8. A key the backend cannot store would fail at every call and keep the breaker's replay
failing. And a non-str key is stored as its str(), so the near cache and the breaker must know it
by that name too, or an invalidation of "42" misses the 42 in memory.

So a key is its str(); text the backend stores as it is stays as it is; any other text is
replaced by a hash of it, marked by HASHED (a key that starts with HASHED is hashed too, so no
two keys share a name).
"""

import hashlib
from collections.abc import Callable
from typing import Any

HASHED = "#"
MAX_KEY_BYTES = 1024  # a longer key is hashed: a batch of REPLAY_BATCH keys stays a small request


def storable(key: Any, fits: Callable[[str], bool]) -> str:
    """``key`` as the backend whose ``fits`` says which text it stores as it is will store it."""
    text = key if isinstance(key, str) else str(key)
    if text.startswith(HASHED) or not fits(text):
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return HASHED + digest
    return text


def utf8(key: str) -> bool:
    """Whether ``key`` encodes as UTF-8 (no lone surrogate) in at most MAX_KEY_BYTES."""
    try:
        return len(key.encode("utf-8")) <= MAX_KEY_BYTES
    except UnicodeEncodeError:
        return False
