"""AsCL's caption cleaning: the public code's ``data.pre_caption``.

The code runs every training caption through it before BERT and before truncating it into a
positive, so the text encoder (`ascl-text`) and the text generators share this one function.
"""

from __future__ import annotations

import re

MAX_WORDS = 60
"""The code's cap on a cleaned caption (``pre_caption(caption, 60)``)."""

_STRIPPED = re.compile(r"[,.'!?\"()*#:;~]")
_SPACED = re.compile(r"[-/]")
_WHITESPACE = re.compile(r"\s+")


def pre_caption(caption: str, max_words: int = MAX_WORDS) -> str:
    """Lowercase; delete ``, . ' ! ? " ( ) * # : ; ~``; turn ``-`` and ``/`` into spaces; collapse
    whitespace; keep the first `max_words` words.

    >>> pre_caption("A man's bike-rack, (blue)!")
    'a mans bike rack blue'
    """
    caption = _SPACED.sub(" ", _STRIPPED.sub("", caption.lower()))
    return " ".join(_WHITESPACE.sub(" ", caption).strip().split(" ")[:max_words])
