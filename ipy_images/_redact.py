"""Masking secrets in text that may reach the user: messages, headers, widget state.

A server may echo an API key back altered (upper-cased, cut short, without its
``sk-`` prefix), so masking the exact key is not enough: every run of at least
``PIECE`` characters that also occurs in the key, compared case-insensitively, is
replaced by ``MASK``.
"""

from __future__ import annotations

MASK = "***"
PIECE = 8
"""Shortest run of a key's characters that is masked (shorter keys: the whole key)."""


def redact(text: str, secret: str | None) -> str:
    """``text`` with every recognisable piece of ``secret`` replaced by ``MASK``."""
    if not secret or not text:
        return text
    width = min(PIECE, len(secret))
    lowered_secret = secret.lower()
    pieces = {lowered_secret[i : i + width] for i in range(len(secret) - width + 1)}
    lowered = text.lower()
    hidden = [False] * len(text)
    for start in range(len(text) - width + 1):
        if lowered[start : start + width] in pieces:
            hidden[start : start + width] = [True] * width
    if not any(hidden):
        return text
    out: list[str] = []
    for index, char in enumerate(text):
        if not hidden[index]:
            out.append(char)
        elif index == 0 or not hidden[index - 1]:
            out.append(MASK)
    return "".join(out)
