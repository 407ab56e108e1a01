"""Protocols whose positives go beyond COCO's five captions per image: ECCV Caption and CxC.

COCO pairs each image with its own five captions and counts every other caption as a negative,
though many describe the image just as well. Two extended evaluations fix the ground truth on
the COCO 5K test split and keep the candidates:

- ``eccv-caption`` (Chun et al., ECCV 2022): positives verified by machines and humans for a
  subset of queries (1,261 images, 1,332 captions); mAP@R and R-Precision (R = the query's
  number of positives) as the main metrics, R@K beside them.
- ``cxc`` (Crisscrossed Captions, Parekh et al., EACL 2021): positives from human similarity
  ratings, for nearly every query; R@K.

Both read their ground truth from the ``eccv-caption`` package (the ``eccv`` extra), keyed by
COCO image ids and caption annotation ids, so they need the split's dataset ids
(`harness.interfaces.ReadsSplitIds`): ``check`` refuses a split whose ids are missing or are
not the package's 5K test set, and ``for_split`` maps the package's ids to the split's rows.

Metrics are counted from the score matrix, not from sorted lists: a positive's 1-based position
is ``j + (negatives scored above it)`` for the j-th best positive, which is what a ranked list
gives, with ties between a positive and a negative broken for the query (``optimistic``) or
against it (``pessimistic``). Then, per query with R positives:
R@K = [first position ≤ K]; R-Precision = #{positions ≤ R} / R; mAP@R = (1/R) Σ_{j: pos_j ≤ R}
j / pos_j. All in percent, like the recalls. Only positions within the top R matter beyond the
first, so each row's top 2·R + 1 scores are searched for them, not the whole row. R counts every positive the package lists, also the
two ECCV caption positives that lie outside the 5K test captions (no ranking can retrieve them);
the package counts them too, so the numbers are its own.
"""

from __future__ import annotations

import functools
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np

from harness.errors import UserError
from harness.interfaces import RetrievalSplit
from harness.metrics import RECALLS, RSUM, metrics_from_ranks

INSTALL_HINT = "pip install 'itr-harness[eccv]'"
QUERY_CHUNK = 256
"""Queries ranked at once: a few [chunk, n_candidates] blocks (25 MB each for COCO's i2t)."""


@dataclass(frozen=True)
class PackageGroundTruth:
    """One ground truth of the ``eccv-caption`` package, by COCO ids.

    Attributes:
        i2t: image id -> its positive caption ids (the package's ``*_image_to_caption.json``).
        t2i: caption id -> its positive image ids (``*_caption_to_image.json``).
        test_captions: the 25,000 caption ids of the COCO 5K test split (``coco_test_ids.npy``).
        test_images: the 5,000 image ids of those captions.
    """

    i2t: Mapping[int, list[int]]
    t2i: Mapping[int, list[int]]
    test_captions: frozenset[int]
    test_images: frozenset[int]


@functools.cache
def package_ground_truth(name: str) -> PackageGroundTruth:
    """The package's ``eccv`` or ``cxc`` ground truth (read once per process)."""
    try:
        with warnings.catch_warnings():  # it warns when its optional ujson / tqdm are absent
            warnings.simplefilter("ignore")
            from eccv_caption import Metrics
    except ImportError:
        raise UserError(f"the {name} ground truth needs the eccv-caption package: {INSTALL_HINT}") from None
    package = Metrics()
    gts = getattr(package, f"{name}_gts")
    captions = frozenset(int(caption) for caption in package.coco_ids)
    images = frozenset(package.coco_gts["t2i"][caption][0] for caption in captions)
    return PackageGroundTruth(gts["i2t"], gts["t2i"], captions, images)


@dataclass(frozen=True)
class Direction:
    """The queries of one direction and their positives, as rows of the split.

    Attributes:
        queries: int64 [n_queries], each query's index (i2t: image; t2i: caption), increasing.
        positives: int64 [n_queries, max_positives], each query's positive candidates that the
            split holds, -1 past them.
        counts: int64 [n_queries], R: the package's number of positives of each query.
    """

    queries: np.ndarray
    positives: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class ExtendedPositives:
    """A protocol ranking the whole split against a ground truth of the ``eccv-caption`` package.

    Attributes:
        name: the key in experiment files and metric names (``eccv-caption/i2t_map_at_r``).
        ground_truth: the package's name for it, ``eccv`` or ``cxc``.
        precision: also report mAP@R and R-Precision (ECCV Caption's main metrics).
        i2t, t2i: the queries of the split it is bound to (`for_split`); None before.
        folds: 1: the whole 5K split is ranked, as the package does.
    """

    name: str
    ground_truth: str
    precision: bool = False
    i2t: Direction | None = None
    t2i: Direction | None = None
    folds: int = 1

    def check(self, split: RetrievalSplit) -> None:
        """Refuse a split without COCO ids, or whose ids are not the package's 5K test set."""
        where = f"protocol '{self.name}' on {split.dataset}:{split.split}"
        truth = package_ground_truth(self.ground_truth)
        if split.caption_ids is None:
            raise UserError(f"{where}: needs COCO caption ids; give the dataset option captions_json (a COCO captions_*.json file)")
        images = _integer_ids(split.image_ids, "image", where)
        captions = _integer_ids(split.caption_ids, "caption", where)
        _check_cover(images, truth.test_images, "image", where)
        _check_cover(captions, truth.test_captions, "caption", where)

    def for_split(self, split: RetrievalSplit) -> "ExtendedPositives":
        """This protocol with the package's queries and positives mapped onto `split`'s rows."""
        self.check(split)
        truth = package_ground_truth(self.ground_truth)
        image_row = {int(image): row for row, image in enumerate(split.image_ids)}
        caption_row = {int(caption): row for row, caption in enumerate(split.caption_ids or ())}
        return replace(self, i2t=_direction(truth.i2t, image_row, caption_row), t2i=_direction(truth.t2i, caption_row, image_row))

    def metrics(self, scores: np.ndarray, image_of_caption: np.ndarray, ties: str = "optimistic") -> dict[str, float]:
        """R@K, rSum, medr and meanr over the package's queries (of the first extended positive),
        and with `precision` mAP@R and R-Precision per direction, in percent."""
        positions = dict(zip(("i2t", "t2i"), self._positions(scores, ties, all_positives=self.precision)))
        metrics = metrics_from_ranks(_first_ranks(positions["i2t"]), _first_ranks(positions["t2i"]))
        if self.precision:
            for direction, queries in zip(("i2t", "t2i"), self._bound()):
                figures = precision_metrics(positions[direction], queries.counts)
                metrics.update({f"{direction}_{key}": value for key, value in figures.items()})
        metrics[RSUM] = sum(metrics[key] for key in RECALLS)
        return metrics

    def query_ranks(self, scores: np.ndarray, image_of_caption: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """0-based rank of the first extended positive of each query: the package's image queries,
        and every caption (-1 for a caption that is no query of the package's)."""
        i2t_positions, t2i_positions = self._positions(scores, "optimistic", all_positives=False)
        i2t, t2i = self._bound()
        t2i_rank = np.full(len(image_of_caption), -1, dtype=np.int64)
        t2i_rank[t2i.queries] = _first_ranks(t2i_positions)
        return _first_ranks(i2t_positions), i2t.queries, t2i_rank

    def _bound(self) -> tuple[Direction, Direction]:
        if self.i2t is None or self.t2i is None:
            raise RuntimeError(f"protocol '{self.name}' ranks by dataset ids: bind it to the split first (for_split)")
        return self.i2t, self.t2i

    def _positions(self, scores: np.ndarray, ties: str, all_positives: bool) -> tuple[np.ndarray, np.ndarray]:
        """Positive positions (`positive_positions`) of the i2t and the t2i queries."""
        import torch

        i2t, t2i = self._bound()
        matrix = torch.as_tensor(scores).float()
        return positive_positions(matrix, i2t, ties, all_positives), positive_positions(matrix.T, t2i, ties, all_positives)


def positive_positions(matrix, direction: Direction, ties: str = "optimistic", all_positives: bool = True) -> np.ndarray:
    """1-based positions of each query's positives in its ranked list, best first.

    Args:
        matrix: float Tensor [n_rows, n_candidates], row q what query q ranks (i2t: the score
            matrix; t2i: its transpose).
        direction: the queries (rows of `matrix`) and their positives (columns).
        ties: ``optimistic``: a negative scored equal to a positive ranks below it;
            ``pessimistic``: above it.
        all_positives: every positive's position; else only the first (enough for R@K).

    Returns:
        float64 [n_queries, max_positives] (or [n_queries, 1]), ascending, inf past the query's
        positives in the split (and for a query with none). The first is exact; a later one
        beyond the query's R (``direction.counts``) may read inf, as mAP@R and R-Precision
        ignore it: only each row's top 2·R + 1 scores are searched, not the whole row.
    """
    import torch

    beats = torch.gt if ties == "optimistic" else torch.ge
    queries = torch.from_numpy(direction.queries)
    positives = torch.from_numpy(direction.positives)
    valid = positives >= 0
    scores = matrix[queries[:, None], positives.clamp(min=0)]  # [n_queries, P]
    best = scores.masked_fill(~valid, float("-inf")).amax(dim=1, keepdim=True)  # the positive that decides R@K
    first = _positions(best, valid.any(dim=1, keepdim=True), _count_beating(matrix, queries, best[:, 0], beats)[:, None], scores, valid, beats)
    if not all_positives:
        return first
    depth = min(matrix.shape[1], 2 * int(direction.counts.max(initial=0)) + 1)
    above = torch.cat(
        [_candidates_above(matrix[queries[start : start + QUERY_CHUNK]], scores[start : start + QUERY_CHUNK], depth, ties)
         for start in range(0, len(queries), QUERY_CHUNK)]
    )
    beyond = above >= depth if depth < matrix.shape[1] else torch.zeros_like(valid)
    positions = _positions(scores, valid & ~beyond, above, scores, valid, beats)
    positions[:, 0] = first[:, 0]
    return positions


def _positions(ranked, known, above, scores, valid, beats) -> np.ndarray:
    """1-based positions, ascending, of the positives `ranked` [n, P'] whose `above` [n, P']
    (candidates beating each) is `known`; inf for the others. A positive's position is one more
    than the positives ranked before it plus the negatives beating it: counted in `scores` [n, P]
    (`valid` marks real positives)."""
    positives_above = (beats(scores[:, None, :], ranked[:, :, None]) & valid[:, None, :]).sum(dim=2)  # [n, P']
    negatives = (above - positives_above).double().masked_fill(~known, float("inf")).sort(dim=1).values.numpy()
    return negatives + np.arange(1, negatives.shape[1] + 1)


def _candidates_above(rows, ranked, depth: int, ties: str):
    """int64 [b, P]: how many of each row's candidates [b, n] beat each of its scores [b, P],
    counted among the row's top `depth` scores: exact below `depth`, and `depth` means at least
    that many. One partial selection and a search per row, far cheaper than a full sort or than
    comparing every score with every candidate (ECCV's i2t: up to 48 positives, 25,000 captions).

    Why 2·R + 1 suffices: a positive beaten by at least that many candidates, at most R of them
    positives, has more than R negatives above it, so it lies beyond the top R either way ties go."""
    import torch

    ascending = rows.topk(depth, dim=1, sorted=False).values.sort(dim=1).values
    return depth - torch.searchsorted(ascending, ranked.contiguous(), right=ties == "optimistic")


def _count_beating(matrix, queries, thresholds, beats):
    """int64 [n_queries]: candidates of each query's row of `matrix` that beat its threshold,
    read in the order the matrix is stored: row blocks of the score matrix for i2t, and for t2i
    (a transposed view) blocks of image rows, never a strided gather of 25,000 columns."""
    import torch

    if matrix.is_contiguous() or not matrix.T.is_contiguous():
        return torch.cat(
            [beats(matrix[queries[start : start + QUERY_CHUNK]], thresholds[start : start + QUERY_CHUNK, None]).sum(dim=1)
             for start in range(0, len(queries), QUERY_CHUNK)]
        )
    stored = matrix.T  # [n_candidates, n_rows]
    counts = torch.zeros(len(queries), dtype=torch.int64)
    for start in range(0, stored.shape[0], QUERY_CHUNK):
        counts += beats(stored[start : start + QUERY_CHUNK][:, queries], thresholds[None, :]).sum(dim=0)
    return counts


def precision_metrics(positions: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """mAP@R and R-Precision in percent from positive positions [n_queries, P] and R [n_queries].

    R-Precision = #{positives in the top R} / R; mAP@R = (1/R) Σ_{j: pos_j ≤ R} j / pos_j, the
    precision at each of the top R positions that holds a positive (Musgrave et al., 2020)."""
    counts = counts.astype(np.float64)
    within = positions <= counts[:, None]
    order = np.arange(1, positions.shape[1] + 1)
    return {
        "map_at_r": float(100 * np.mean(np.where(within, order / positions, 0).sum(axis=1) / counts)),
        "rprecision": float(100 * np.mean(within.sum(axis=1) / counts)),
    }


def _first_ranks(positions: np.ndarray) -> np.ndarray:
    """0-based rank of each query's first positive (a query without one ranks last)."""
    first = positions[:, 0]
    last = np.max(first[np.isfinite(first)], initial=0)
    return np.where(np.isfinite(first), first, last + 1).astype(np.int64) - 1


def _direction(truth: Mapping[int, list[int]], query_row: Mapping[int, int], candidate_row: Mapping[int, int]) -> Direction:
    """The package's queries of one direction as split rows, sorted; positives the split lacks
    are left out of `positives` but counted in R."""
    entries = sorted((query_row[query], sorted({candidate_row[c] for c in matches if c in candidate_row}), len(set(matches))) for query, matches in truth.items())
    width = max((len(rows) for _, rows, _ in entries), default=1)
    positives = np.full((len(entries), width), -1, dtype=np.int64)
    for index, (_, rows, _) in enumerate(entries):
        positives[index, : len(rows)] = rows
    queries = np.array([query for query, _, _ in entries], dtype=np.int64)
    return Direction(queries, positives, np.array([count for _, _, count in entries], dtype=np.int64))


def _integer_ids(ids: tuple[str, ...], kind: str, where: str) -> list[int]:
    """The split's ids as COCO ids (integers), or a one-line refusal naming the first that is not."""
    values = []
    for index, value in enumerate(ids):
        try:
            values.append(int(value))
        except ValueError:
            hint = "karpathy: a cocoid per image; precomp: {split}_ids.txt" if kind == "image" else "the captions_json option"
            raise UserError(f"{where}: needs COCO {kind} ids ({hint}); {kind} {index} has id {value!r}") from None
    return values


def _check_cover(ids: list[int], expected: frozenset[int], kind: str, where: str) -> None:
    """Refuse unless `ids` are exactly the package's test ids of `kind`, each once."""
    present = set(ids)
    if len(present) != len(ids):
        twice = Counter(ids).most_common(1)[0][0]
        raise UserError(f"{where}: {kind} id {twice} appears twice in the split")
    missing = sorted(expected - present)
    if missing:
        raise UserError(
            f"{where}: {len(missing)} of the {len(expected)} COCO 5K test {kind} ids of the eccv-caption package "
            f"are not in the split (e.g. {missing[0]})"
        )
    extra = sorted(present - expected)
    if extra:
        raise UserError(
            f"{where}: {len(extra)} {kind} ids of the split are not in the COCO 5K test set (e.g. {extra[0]}); "
            "extra candidates would change the protocol's numbers"
        )


def eccv_caption() -> ExtendedPositives:
    """ECCV Caption: mAP@R, R-Precision and R@K over its verified positives, on COCO 5K."""
    return ExtendedPositives("eccv-caption", "eccv", precision=True)


def cxc() -> ExtendedPositives:
    """CxC: R@K over the positives of human similarity ratings, on COCO 5K."""
    return ExtendedPositives("cxc", "cxc")
