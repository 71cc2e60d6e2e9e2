"""One Redis connection pool per process for Django's cache.

Django keeps a cache object per thread, and each RedisCache object builds its own
connection pool. Under ASGI every request runs its synchronous part on a new
thread, so the per-device throttle opened a new Redis connection (TCP connect and
handshake) for every upload: 10 % of a Daphne process's samples in a profile at
40 uploads/s. redis-py pools are thread-safe (and reset themselves in a forked
child), so one pool per URL and options serves every thread.
"""

from __future__ import annotations

import threading
from typing import Any

import redis


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
