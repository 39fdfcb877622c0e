"""Put back the serializers the backends ship with (unsigned pickles), to measure what signing
costs. For the benchmarks only: the baked app always signs."""

from cachelib.serializers import FileSystemSerializer, RedisSerializer
from pymemcache import serde


class UnsignedRedis(RedisSerializer):
    """cachelib's, taking (and ignoring) the name the baked backends sign with."""

    def dumps(self, value, protocol=None, *, name=""):
        return super().dumps(value) if protocol is None else super().dumps(value, protocol)

    def loads(self, value, *, name=""):
        return super().loads(value)


class UnsignedFiles(FileSystemSerializer):
    def dump(self, value, f, protocol=None, *, name=""):
        return super().dump(value, f) if protocol is None else super().dump(value, f, protocol)

    def load(self, f, *, name=""):
        return super().load(f)


def unsign(app, cache, backend: str) -> None:
    with app.app_context():
        store = cache.cache.server  # the backend behind the breaker (and the near cache)
    if backend == "memcached":
        for client in store.client.clients.values():
            client.serde = serde.pickle_serde
    else:
        store.serializer = UnsignedFiles() if backend == "filesystem" else UnsignedRedis()
