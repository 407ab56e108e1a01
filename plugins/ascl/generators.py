"""AsCL's generated samples (docs/methods/ascl.md), one component per strategy.

Text-level *positives* T⁺ (`harness.interfaces.TextSampleGenerator`) are new caption strings,
encoded like real captions: AsCL reads them as correct descriptions carrying less (truncation)
or more (concatenation) information than the image's caption, its asymmetry types II and III.
Feature-level *negatives* (`harness.interfaces.FeatureSampleGenerator`) perturb the projected
word features W [B, L, D] of a batch: near-copies of a caption that no longer match its image
(asymmetry type I). The trainer appends them as score columns B..2B−1 and decides which strategy
serves which caption (`harness.training.samples`); these classes only make samples.

Randomness comes only from the `rng` argument: a `random.Random` for text, a CPU
`torch.Generator` for features (drawn on the CPU, then moved to the features' device), so a job's
seed fixes every sample.
"""

from __future__ import annotations

import random
from typing import ClassVar, Sequence

import torch

from harness.embeddings import Embeddings, VectorSets
from harness.errors import UserError
from harness.interfaces import BuildContext
from harness.options import DropRate, Fraction, NonNegative
from plugins.ascl.captions import MAX_WORDS, pre_caption

# -- text-level positives -------------------------------------------------------------------


class TruncateHalf:
    """T⁺ = the first ⌊n/2⌋ of the n words of the cleaned caption (the code's Aug-2, asymmetry II).

    Words are counted after `pre_caption`, as in the code; at least one word is kept, so a
    one-word caption stays whole (the code would make it empty).

    Options:
        max_words: `pre_caption`'s cap before halving (the code: 60).
    """

    level: ClassVar[str] = "text"

    def __init__(self, ctx: BuildContext, *, max_words: int = MAX_WORDS) -> None:
        self.max_words = max_words

    def __call__(self, captions: Sequence[str], siblings: Sequence[Sequence[str]], rng: random.Random) -> list[str]:
        halves = []
        for caption in captions:
            words = pre_caption(caption, self.max_words).split()
            halves.append(" ".join(words[: max(1, len(words) // 2)]))
        return halves


class ConcatSiblings:
    """T⁺ = two captions of the caption's image, drawn uniformly with replacement from all of its
    captions (the caption itself included), joined by a space, uncleaned (the code's Aug-1, asymmetry III).
    """

    level: ClassVar[str] = "text"

    def __init__(self, ctx: BuildContext) -> None:
        pass

    def __call__(self, captions: Sequence[str], siblings: Sequence[Sequence[str]], rng: random.Random) -> list[str]:
        return [f"{rng.choice(group)} {rng.choice(group)}" for group in siblings]


class RandomDeletion:
    """EDA random deletion (Wei & Zou 2019) on the cleaned caption: each word goes with
    probability `alpha`; if none is left, one random word stays. The code's commented-out Aug-3.

    EDA's synonym replacement and random insertion are not offered: both look words up in
    WordNet, which is not available offline.

    Options:
        alpha: deletion probability (the code: 0.2).
    """

    level: ClassVar[str] = "text"

    def __init__(self, ctx: BuildContext, *, alpha: DropRate = 0.2) -> None:
        self.alpha = alpha

    def __call__(self, captions: Sequence[str], siblings: Sequence[Sequence[str]], rng: random.Random) -> list[str]:
        out = []
        for caption in captions:
            words = pre_caption(caption).split()
            kept = [word for word in words if rng.random() > self.alpha]
            if words and not kept:
                kept = [rng.choice(words)]
            out.append(" ".join(kept))
        return out


class RandomSwap:
    """EDA random swap on the cleaned caption: max(1, ⌊alpha·n⌋) times, swap two distinct word
    positions; captions under two words are unchanged. EDA retries a draw that hit the same
    position twice at most three times; drawing two distinct positions directly never gives up.
    Synonym replacement / insertion are omitted (WordNet, offline; see `RandomDeletion`).

    Options:
        alpha: fraction of the words swapped (the code: 0.2).
    """

    level: ClassVar[str] = "text"

    def __init__(self, ctx: BuildContext, *, alpha: NonNegative = 0.2) -> None:
        self.alpha = alpha

    def __call__(self, captions: Sequence[str], siblings: Sequence[Sequence[str]], rng: random.Random) -> list[str]:
        out = []
        for caption in captions:
            words = pre_caption(caption).split()
            if len(words) >= 2:
                for _ in range(max(1, int(self.alpha * len(words)))):
                    first, second = rng.sample(range(len(words)), 2)
                    words[first], words[second] = words[second], words[first]
            out.append(" ".join(words))
        return out


# -- feature-level negatives ----------------------------------------------------------------


def _vectors_and_mask(texts: Embeddings) -> tuple[torch.Tensor, torch.Tensor]:
    """The features [B, L, D] (a Tensor [B, D] is read as B one-word sets) and bool [B, L, 1]."""
    if isinstance(texts, VectorSets):
        return texts.vectors, texts.mask()[..., None]
    vectors = texts[:, None, :]
    return vectors, torch.ones(vectors.shape[:2] + (1,), dtype=torch.bool, device=vectors.device)


def _like(texts: Embeddings, vectors: torch.Tensor) -> Embeddings:
    """`vectors` [B, L, D] in the kind of `texts` (lengths and summary carried over)."""
    if isinstance(texts, VectorSets):
        return VectorSets(vectors, texts.lengths, texts.summary)
    return vectors[:, 0, :]


def _word_sets(texts: Embeddings, name: str) -> VectorSets:
    if not isinstance(texts, VectorSets):
        raise UserError(f"{name} perturbs word positions; it needs word features (VectorSets), not one vector per caption")
    return texts


class GaussianNoise:
    """W + σ·ε, ε ~ N(0, I) elementwise (the code's option 1). The code adds unit-variance noise to
    unnormalised projected features whatever their scale, so σ = 1 is unscaled. Padding
    stays zero; gradients flow through W.

    Options:
        sigma: noise standard deviation (the code: 1.0).
    """

    level: ClassVar[str] = "feature"

    def __init__(self, ctx: BuildContext, *, sigma: float = 1.0) -> None:
        self.sigma = sigma

    def __call__(self, texts: Embeddings, rng: torch.Generator) -> Embeddings:
        vectors, mask = _vectors_and_mask(texts)
        noise = torch.randn(vectors.shape, generator=rng).to(vectors.device, vectors.dtype)
        return _like(texts, (vectors + self.sigma * noise) * mask)


class FeatureDropout:
    """Dropout(p) on W, always active: each feature zeroed with probability p, the rest scaled by
    1/(1 − p) (the code's option 2). Padding stays zero; gradients flow through W.

    The code's dropout module is left in eval mode after the first validation, so from the
    second epoch on, this strategy returns W unchanged and about a quarter of the negative
    batches duplicate their positives. That is not reproduced: it depends on the epoch, which a
    generator does not see.

    Options:
        p: drop probability (the code: 0.5).
    """

    level: ClassVar[str] = "feature"

    def __init__(self, ctx: BuildContext, *, p: DropRate = 0.5) -> None:
        self.p = p

    def __call__(self, texts: Embeddings, rng: torch.Generator) -> Embeddings:
        vectors, mask = _vectors_and_mask(texts)
        keep = (torch.rand(vectors.shape, generator=rng) >= self.p).to(vectors.device, vectors.dtype)
        return _like(texts, vectors * keep * mask / (1 - self.p))


class TokenShuffle:
    """One random permutation of the L token positions, shared by the batch, detached (the code's option 3).

    Words [B, L, D] (L = the batch's longest caption) become W[:, π]; lengths are unchanged. As in
    the code, π covers every position, padding included, so a shorter caption's real slots can
    receive padding (zero vectors here; BERT's pad-position states in the code) and its real
    words can move past its length, where they are dropped. Rows past each length are re-zeroed
    to keep the `VectorSets` contract. The batch's longest caption is only reordered, so under
    `ascl-fusion` its "negative" scores exactly as its positive (the guard keeps it): the same
    happens in the code, whose BERT batches are padded to their longest caption too.

    Why padding must move: `ascl-fusion` is invariant to the order of a caption's words
    (attention over a set, means over queries) and the MiniLM features are computed before the
    shuffle, so reordering only the real words leaves every score unchanged: such a "negative"
    equals its positive. `within_length = True` does exactly that (a separate permutation of
    each caption's first n_j positions, padding in place); it is a no-op for this head and only
    meaningful with an order-sensitive one.

    Options:
        within_length: permute each caption's real positions only (see above).
    """

    level: ClassVar[str] = "feature"

    def __init__(self, ctx: BuildContext, *, within_length: bool = False) -> None:
        self.within_length = within_length

    def __call__(self, texts: Embeddings, rng: torch.Generator) -> VectorSets:
        sets = _word_sets(texts, "token-shuffle")
        vectors, mask = sets.vectors.detach(), sets.mask()
        batch, width, _ = vectors.shape
        if self.within_length:
            keys = torch.rand(batch, width, generator=rng).masked_fill(~mask.cpu(), 2.0)  # padding sorts last
            order = keys.argsort(dim=1, stable=True).to(vectors.device)
            shuffled = vectors.gather(1, order[..., None].expand_as(vectors))
        else:
            shuffled = vectors[:, torch.randperm(width, generator=rng).to(vectors.device)]
        return VectorSets(shuffled * mask[..., None], sets.lengths, sets.summary)


class ZeroDimOrToken:
    """Zero one feature dimension of every word of every caption (probability `p_dimension`),
    else one token position ℓ ∈ [0, L) of every caption (the code's option 4). A caption shorter than
    ℓ + 1 is unchanged, as in the code. Gradients flow through the rest of W.

    Options:
        p_dimension: probability of zeroing a dimension rather than a token (the code: ½).
    """

    level: ClassVar[str] = "feature"

    def __init__(self, ctx: BuildContext, *, p_dimension: Fraction = 0.5) -> None:
        self.p_dimension = p_dimension

    def __call__(self, texts: Embeddings, rng: torch.Generator) -> VectorSets:
        sets = _word_sets(texts, "zero-dim-or-token")
        _, width, dim = sets.vectors.shape
        if torch.rand((), generator=rng).item() < self.p_dimension:
            keep = torch.ones(1, 1, dim)
            keep[..., torch.randint(dim, (), generator=rng)] = 0
        else:
            keep = torch.ones(1, width, 1)
            keep[:, torch.randint(width, (), generator=rng)] = 0
        return VectorSets(sets.vectors * keep.to(sets.vectors.device, sets.vectors.dtype), sets.lengths, sets.summary)
