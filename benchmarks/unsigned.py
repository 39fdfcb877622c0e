"""Put back the serializers the backends ship with (unsigned pickles), to measure what signing
costs. For the benchmarks only: the baked app always signs."""

from cachelib.serializers import FileSystemSerializer, RedisSerializer
from pymemcache import serde


def unsign(app, cache, backend: str) -> None:
    with app.app_context():
        store = cache.cache.backend  # the backend behind the breaker
    if backend == "memcached":
        for client in store.client.clients.values():
            client.serde = serde.pickle_serde
    else:
        store.serializer = FileSystemSerializer() if backend == "filesystem" else RedisSerializer()
