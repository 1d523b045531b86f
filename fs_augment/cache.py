"""A bounded in-process cache with expiry, for online lookups only."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

__all__ = ["TTLCache"]


class TTLCache:
    """Least-recently-used cache whose entries expire ``ttl`` seconds after they were set.

    Thread safe. ``get`` returns ``default`` for an absent or expired entry.

    Examples
    --------
    >>> c = TTLCache(ttl=60, max_entries=2)
    >>> c.set("a", 1); c.set("b", 2); c.set("c", 3)
    >>> c.get("a", "gone"), c.get("c")
    ('gone', 3)
    """

    def __init__(self, ttl: float, max_entries: int = 100_000) -> None:
        if ttl <= 0 or max_entries < 1:
            raise ValueError("TTLCache needs ttl > 0 and max_entries >= 1")
        self.ttl = ttl
        self.max_entries = max_entries
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, default: Any = None) -> Any:
        now = time.monotonic()
        with self._lock:
            entry = self._data.get(key)
            if entry is None or entry[0] <= now:
                if entry is not None:
                    del self._data[key]
                self.misses += 1
                return default
            self._data.move_to_end(key)
            self.hits += 1
            return entry[1]

    def set(self, key: Hashable, value: Any) -> None:
        expires = time.monotonic() + self.ttl
        with self._lock:
            self._data[key] = (expires, value)
            self._data.move_to_end(key)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
