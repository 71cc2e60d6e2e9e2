"""Offset paging with bounds the database can hold.

DRF's LimitOffsetPagination takes any positive integer: ``?limit=10**30`` reached
SQLite as an integer it cannot store (a 500, found by ``make fuzz``) and
PostgreSQL as a bigint overflow. The limit is capped, as the cursor pages are, and
an offset past any table is clamped: the page is empty either way.
"""

from __future__ import annotations

from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

MAX_OFFSET = 2**31 - 1


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = 1000

    def get_offset(self, request: Request) -> int:
        return min(super().get_offset(request), MAX_OFFSET)
