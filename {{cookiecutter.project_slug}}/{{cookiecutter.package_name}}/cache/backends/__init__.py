"""The backends CACHE_TYPE can name: one module each, and the registry BACKENDS.

Adding a backend is a module here (a Backend subclass: base.py says what it answers) and its
line in BACKENDS; then its row in the template's hooks table, its settings in .env.example, and
its docs (the template's tests/test_backend_lists.py checks they agree).
"""

from .base import Backend
from .filesystem import Filesystem
from .memcached import Memcached
from .redis import Redis
from .simple import Null, Simple
from .upstash import Upstash

__all__ = ["BACKENDS", "Backend"]

# CACHE_TYPE names one of these. Order is the order the docs and prompts use.
BACKENDS: dict[str, type[Backend]] = {
    backend.name: backend for backend in (Simple, Filesystem, Redis, Memcached, Upstash, Null)
}
