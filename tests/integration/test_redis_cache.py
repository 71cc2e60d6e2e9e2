"""Django's cache on a real Redis, as the servers configure it (rpm/redis_pool.py)."""

from __future__ import annotations

import threading

from rpm.redis_pool import SharedRedisCache

from .stack import RUN_ID, redis_test_url


def test_every_thread_shares_one_pool_and_one_client():
    """Django keeps a cache object per thread (under ASGI, per request) and built
    a pool per object and a redis.Redis per operation."""
    params = {"KEY_PREFIX": RUN_ID}  # as the servers configure it, no OPTIONS
    seen = []

    def request(n: int) -> None:
        cache = SharedRedisCache(redis_test_url(), params)  # one per thread
        cache.set(f"throttle-{n}", [n], 30)
        assert cache.get(f"throttle-{n}") == [n]
        reader, writer = (cache._cache.get_client(write=w) for w in (False, True))
        seen.append((reader, writer, reader.connection_pool))

    threads = [threading.Thread(target=request, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 4
    clients = {id(client) for reader, writer, _ in seen for client in (reader, writer)}
    assert len(clients) == 1
    assert len({id(pool) for *_, pool in seen}) == 1
