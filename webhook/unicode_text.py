"""Is a decoded JSON/YAML document Unicode text? Shared by the review decoder and ``check``'s loader.

JSON may escape a lone UTF-16 surrogate (``"\\ud800"``); Python decodes it to a string that is
not valid Unicode: it cannot be encoded, so it breaks logging, metrics and anything sent to the
API server later. Both inputs refuse such documents up front.
"""

from __future__ import annotations


def has_lone_surrogate(document: object) -> bool:
    """Whether any key or string in the document holds a surrogate code point (never valid Unicode)."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
