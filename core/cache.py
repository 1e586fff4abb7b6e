"""A short-lived in-process cache for reads that every request makes and that change
rarely (what is in force: criteria, guideline and policy versions, queue settings).

Writers clear it when their transaction commits; other processes see a change within
the cache's lifetime. Use it only where a few seconds' staleness is harmless."""

import time
from collections.abc import Callable
from functools import wraps
from typing import TypeVar

T = TypeVar("T")
S = TypeVar("S", dict, set)
_caches: list[dict] = []


def ttl_cache(seconds: float) -> Callable[[Callable[..., T]], Callable[..., T]]:
    def decorator(function: Callable[..., T]) -> Callable[..., T]:
        store: dict = {}
        _caches.append(store)

        @wraps(function)
        def cached(*args):
            now = time.monotonic()
            hit = store.get(args)
            if hit is not None and hit[0] > now:
                return hit[1]
            value = function(*args)
            store[args] = (now + seconds, value)
            return value

        cached.clear = store.clear
        return cached

    return decorator


def process_memory(store: S) -> S:
    """Register a process-wide container of facts that never stop being true (so it needs
    no lifetime), for ``clear_all`` to empty between tests."""
    _caches.append(store)
    return store


def clear_all() -> None:
    """Forget every cached value (writers call this on commit; tests before each test)."""
    for store in _caches:
        store.clear()
