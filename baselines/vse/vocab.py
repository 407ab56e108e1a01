"""Word vocabulary for the GRU text encoders of VSE++ / SCAN / VSE∞-BiGRU
(vsepp's ``vocab.py``; docs/methods/vse-pp.md).

The reference code tokenises with NLTK ``word_tokenize(caption.lower())``, keeps words seen at
least 4 times, and wraps every caption as ``<start> … <end>``. NLTK is not a dependency here, so
`tokenize` approximates it with one regular expression. The vocabulary is built from the
*training* captions only: the released vsepp vocabulary also saw the test captions (vsepp issue
#29), which leaks test words into training.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Sequence

import torch

# Alternatives, tried in order at each position:
#   "do" of "don't" | "n't" | clitics "'s" "'re" | words, keeping "well-known" and "3.5" whole
#   | an ellipsis | any other single non-space character (punctuation).
_TOKEN = re.compile(r"\w+(?=n't\b)|n't\b|'\w+|\w+(?:[-.]\w+)*|\.\.\.|[^\w\s]")


def tokenize(caption: str) -> list[str]:
    """Lower-case `caption` and split it into words and punctuation.

    An approximation of NLTK's ``word_tokenize`` (Treebank rules) good for captions: punctuation
    is split off words, clitics are split as NLTK does ("don't" -> "do", "n't"; "dog's" -> "dog",
    "'s"), hyphenated words and decimals stay whole. Known differences: NLTK rewrites double
    quotes as `` and '' and splits some abbreviations ("u.s." -> "u.s" "." here) differently.
    """
    return _TOKEN.findall(caption.lower())


class Vocabulary:
    """Word <-> id map with the four special tokens of the reference vocab.py.

    Ids: ``<pad>`` = 0 (so zero-padding is padding), ``<start>`` = 1, ``<end>`` = 2,
    ``<unk>`` = 3, then the words. Word order is by count descending, ties alphabetical, so the
    ids depend only on the multiset of training tokens, not on caption order (the reference
    keeps first-appearance order, which changes with any shuffle of the training file).
    """

    PAD = "<pad>"
    START = "<start>"
    END = "<end>"
    UNK = "<unk>"
    SPECIALS = (PAD, START, END, UNK)

    def __init__(self, words: Iterable[str]) -> None:
        """Specials first, then `words` in the given order (duplicates and specials ignored)."""
        self.words: tuple[str, ...] = tuple(dict.fromkeys((*self.SPECIALS, *words)))
        self._ids = {word: i for i, word in enumerate(self.words)}

    @classmethod
    def from_captions(cls, captions: Iterable[str], min_count: int = 4) -> Vocabulary:
        """Build from training captions, keeping words seen ≥ `min_count` times (paper: 4)."""
        counts = Counter(token for caption in captions for token in tokenize(caption))
        kept = [word for word, n in counts.items() if n >= min_count]
        return cls(sorted(kept, key=lambda word: (-counts[word], word)))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._ids

    def id_of(self, word: str) -> int:
        """The id of `word`, or of ``<unk>`` for a word outside the vocabulary."""
        return self._ids.get(word, self._ids[self.UNK])

    def caption_ids(self, caption: str) -> list[int]:
        """Ids of ``<start>``, the caption's tokens, ``<end>``."""
        return [
            self._ids[self.START],
            *(self.id_of(token) for token in tokenize(caption)),
            self._ids[self.END],
        ]

    def encode(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a list of captions as a zero-padded id matrix.

        Returns:
            ids: int64 [M, L], L = the longest wrapped caption, padded with ``<pad>`` = 0.
            lengths: int64 [M], ids per caption incl. ``<start>`` and ``<end>`` (so ≥ 2).
        """
        encoded = [self.caption_ids(caption) for caption in captions]
        lengths = torch.tensor([len(ids) for ids in encoded], dtype=torch.int64)
        padded = torch.zeros(len(encoded), max(lengths.tolist(), default=0), dtype=torch.int64)
        for row, ids in zip(padded, encoded):
            row[: len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return padded, lengths
