"""One Redis connection pool, and one client on it, per process for Django's cache.

Django keeps a cache object per thread, and each RedisCache object builds its own
connection pool. Under ASGI every request runs its synchronous part on a new
thread, so the per-device throttle opened a new Redis connection (TCP connect and
handshake) for every upload: 10 % of a Daphne process's samples in a profile at
40 uploads/s. redis-py pools are thread-safe (and reset themselves in a forked
child), so one pool per URL and options serves every thread.

Django's cache client also builds a new ``redis.Redis`` for every operation, and
the constructor fills a table of some 170 response callbacks (0.06-0.1 ms of CPU,
more than a GET round trip): three per upload for the throttle, the largest single
item in a CPU profile of a four-vital upload. A ``redis.Redis`` holds no
connection of its own (it borrows one from the pool per command), so one per pool
serves every thread too; the throttle's get and set went from 0.58 to 0.30 ms.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class SharedConnectionPool(redis.ConnectionPool):
    _pools: dict[str, redis.ConnectionPool] = {}
    _lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> redis.ConnectionPool:
        key = f"{url}|{sorted(kwargs.items())!r}"
        with cls._lock:
            pool = cls._pools.get(key)
            if pool is None:
                pool = cls._pools[key] = super().from_url(url, **kwargs)
            return pool


class SharedClientRedisCacheClient(RedisCacheClient):
    """Django's client, handing out one ``redis.Redis`` per connection pool."""

    # The pools are SharedConnectionPool's (SharedRedisCache sees to it): one per
    # URL and options for the life of the process, so this holds one client each.
    _clients: dict[redis.ConnectionPool, redis.Redis] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> redis.Redis:
        pool = self._get_connection_pool(write)
        client = self._clients.get(pool)
        if client is None:
            client = self._clients.setdefault(pool, self._client(connection_pool=pool))
        return client


class SharedRedisCache(RedisCache):
    """Django's RedisCache with one pool and one client per process: the backend
    sets its own pool class, so that settings cannot pair the shared clients with
    a pool per cache object (which would keep a client and pool per thread)."""

    def __init__(self, server: str, params: dict[str, Any]):
        options = {**params.get("OPTIONS", {}), "pool_class": SharedConnectionPool}
        super().__init__(server, {**params, "OPTIONS": options})
        self._class = SharedClientRedisCacheClient
