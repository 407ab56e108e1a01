"""Checks of text sources (`harness.interfaces.TextSource`): extra training texts, one per image.

A text source reads a split and returns one string per image, in image order, the same every
time. Checked on a synthetic split of 6 images with 2 captions each and no text files; a source
that needs a file to exist says so in a one-line `UserError`, which the check reports.
"""

from __future__ import annotations

from harness.conformance.report import CheckFailed
from harness.conformance.subject import ComponentChecks

N_IMAGES = 6


class TextSourceChecks(ComponentChecks):
    """interface, determinism."""

    CHECKS = (
        ("interface", "interface"),
        ("determinism", "determinism"),
    )

    def texts(self, source: object) -> list[str]:
        return source.image_texts(self.subject.data.retrieval_split(N_IMAGES, salt=70))

    def interface(self) -> str:
        if not callable(getattr(self.primary, "image_texts", None)):
            raise CheckFailed("a text source needs image_texts(split) -> one string per image")
        texts = self.texts(self.primary)
        if not isinstance(texts, (list, tuple)) or len(texts) != N_IMAGES or not all(isinstance(t, str) for t in texts):
            raise CheckFailed(f"image_texts must return one string per image ({N_IMAGES}), got {texts!r:.80}")
        return f"{N_IMAGES} images -> {N_IMAGES} texts of {min(map(len, texts))} to {max(map(len, texts))} characters"

    def determinism(self) -> str:
        if self.texts(self.subject.build()) != self.texts(self.subject.build()):
            raise CheckFailed("two builds gave different texts for the same split")
        return "the same split gives the same texts"
