"""Sorting text as a reader of a language expects: ICU's collation (PyICU, from the pyicu-wheels
build), not code-point order. In English "Åland" sorts among the A's and "Côte d'Ivoire" before
"Croatia"; in Swedish å, ä and ö are letters of their own after z."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache

_LOCK = threading.Lock()


@cache
def collation_key(locale: str) -> Callable[[str], bytes]:
    """A sort key function for `locale` (e.g. "en", "sv"); one collator per locale, used under a
    lock because an ICU collator is not safe to share between threads."""
    import icu

    collator = icu.Collator.createInstance(icu.Locale(locale))

    def key(text: str) -> bytes:
        with _LOCK:
            return bytes(collator.getSortKey(text))

    return key
