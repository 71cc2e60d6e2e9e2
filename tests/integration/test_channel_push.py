"""Pushes from synchronous code (the Celery worker) through a real Redis layer."""

from __future__ import annotations

import redis
from asgiref.sync import async_to_sync

from alerts import stream

from .stack import channel_layer, redis_test_url


def test_pushes_keep_their_order_on_one_loop_and_one_connection(monkeypatch):
    """async_to_sync built a loop per push, and channels-redis a connection per
    loop: one Redis connection for every alert event and patient update."""
    layer = channel_layer()
    monkeypatch.setattr(stream, "get_channel_layer", lambda: layer)
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("patient.77", channel)
    server = redis.Redis.from_url(redis_test_url())
    stream.send_to_patient_watchers(77, {"n": -1})  # the push loop's pool is warm
    before = server.info("stats")["total_connections_received"]
    for n in range(30):
        stream.send_to_patient_watchers(77, {"n": n})
    opened = server.info("stats")["total_connections_received"] - before

    async def drain() -> list[int]:
        return [(await layer.receive(channel))["payload"]["n"] for _ in range(31)]

    assert async_to_sync(drain)() == list(range(-1, 30))
    assert opened < 3, f"{opened} Redis connections for 30 pushes"


def test_a_push_to_a_full_channel_is_dropped_and_counted(monkeypatch):
    """channels-redis drops a group send to a channel holding ``capacity``
    messages and only logs it: the drop is counted for the operators, and the
    alert panel recovers it at its next heartbeat (test_alert_stream.py)."""
    from channels_redis.core import RedisChannelLayer

    from rpm import metrics

    layer = RedisChannelLayer(
        hosts=[redis_test_url()], prefix=f"{channel_layer().prefix}-full", capacity=2
    )
    monkeypatch.setattr(stream, "get_channel_layer", lambda: layer)
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)("staff.78", channel)
    dropped = metrics.PUSHES_DROPPED.labels("staff")
    before = dropped._value.get()
    for n in range(5):
        stream.send_to_staff([78], {"n": n})

    async def drain() -> list[int]:
        return [(await layer.receive(channel))["payload"]["n"] for _ in range(2)]

    assert async_to_sync(drain)() == [0, 1]
    assert dropped._value.get() - before == 3
