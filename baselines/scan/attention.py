"""Stacked cross attention (SCAN, Lee et al., ECCV 2018) on blocks of pairs
(docs/methods/scan.md).

One direction of SCAN attends from a *query* set to a *context* set: t-i uses the words of a
caption as queries over the regions of an image, i-t the regions as queries over the words. For
one pair, with raw cosines s_cq = c_cᵀ q_q (both sets unit-norm per vector):

1. ā_cq = LeakyReLU₀.₁(s_cq) / ‖LeakyReLU₀.₁(s_c·)‖₂, each context element normalised across
   the queries (``--raw_feature_norm clipped_l2norm``; the paper writes [·]_+, the code leaks 0.1);
2. α_cq = softmax over c of λ1 · ā_cq;
3. attended vector a_q = Σ_c α_cq c_c, relevance R_q = cos(q_q, a_q);
4. score = mean_q R_q (AVG) or (1/λ2) log Σ_q exp(λ2 R_q) (LSE).

The reference code repeats each caption over an image shard and runs this per caption
(``shard_xattn_t2i`` / ``shard_xattn_i2t``). Here a whole block of O context sets × P query sets is
one tensor program: every intermediate is [O, C, P, Q], and the attended vectors are never built,
because only their dot product with the query and their norm are needed, and both follow from
quantities that already exist:

    q_qᵀ a_q = Σ_c α_cq s_cq,        ‖a_q‖² = Σ_c Σ_c' α_cq (c_cᵀ c_c') α_c'q,

with the [C, C] Gram matrix of each context set. `aligned_cross_attention` scores an explicit
list of pairs (re-rank) with the same steps. That is exact up to rounding (the tests check
it against the explicit per-pair computation) and keeps a pair at C·Q floats where the
reference's attended vectors take Q·D (36·12 vs 12·1024).

Padding: rows past a set's length take no part anywhere. A padded query adds nothing to any
context element's norm in step 1 and is left out of step 4; a padded context element gets no
attention in step 2. So a pair's score is what the reference computes on the unpadded sets.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from baselines.vse.encoders import l2_normalize

LEAKY_SLOPE = 0.1
"""Negative slope of the "clipped" affinities (SCAN model.py: ``nn.LeakyReLU(0.1)``)."""

EPS = 1e-8
"""The reference code's eps, in its l2norm and in the clamp of its cosine denominator."""

Aggregation = Literal["avg", "lse"]


def clipped_l2norm(affinities: torch.Tensor) -> torch.Tensor:
    """SCAN's first norm: LeakyReLU(0.1), then l2-normalise each context element across queries.

    Args:
        affinities: [..., Q] raw cosines of one context element with every query.

    Returns:
        [..., Q], unit l2 norm over the queries. A padded (all-zero) query has affinity 0,
        stays 0, and so adds nothing to any norm.
    """
    return l2_normalize(F.leaky_relu(affinities, LEAKY_SLOPE), dim=-1, eps=EPS)


def aggregate(
    relevance: torch.Tensor, query_mask: torch.Tensor, aggregation: Aggregation, lambda_lse: float
) -> torch.Tensor:
    """Pool the per-query relevances R_q of every pair into one score (SCAN ``--agg_func``).

    Args:
        relevance: [..., Q].
        query_mask: bool, broadcastable to `relevance`, True for real queries.
        aggregation: ``avg`` = mean over real queries (``Mean``); ``lse`` =
            (1/λ2) · log Σ_q exp(λ2 · R_q) over real queries (``LogSumExp``), computed with a
            stable logsumexp (the reference exponentiates directly; same value).
        lambda_lse: λ2, only read for ``lse``.

    Returns:
        [...], one score per pair.
    """
    if aggregation == "avg":
        mask = query_mask.to(relevance.dtype)
        return (relevance * mask).sum(-1) / mask.sum(-1)
    logits = (lambda_lse * relevance).masked_fill(~query_mask, float("-inf"))
    return torch.logsumexp(logits, dim=-1) / lambda_lse


def stacked_cross_attention(
    contexts: torch.Tensor,
    context_mask: torch.Tensor,
    queries: torch.Tensor,
    query_mask: torch.Tensor,
    *,
    lambda_softmax: float,
    aggregation: Aggregation,
    lambda_lse: float,
) -> torch.Tensor:
    """Scores of every (context set, query set) pair of a block, all pairs at once.

    Args:
        contexts: [O, C, D], exactly zero beyond each set's length (regions for t-i, words for i-t).
        context_mask: bool [O, C], True for real context elements (at least one per set).
        queries: [P, Q, D], exactly zero beyond each set's length (words for t-i, regions for i-t).
        query_mask: bool [P, Q], True for real queries (at least one per set).
        lambda_softmax: λ1, inverse temperature of the attention softmax.
        aggregation, lambda_lse: how the per-query relevances are pooled (`aggregate`).

    Returns:
        [O, P], score of context set o with query set p.

    Every intermediate is [O, C, P, Q], the layout the affinity product comes out in, so no
    block-sized tensor is ever transposed; nothing of size D is built per pair. The zero padding
    makes padded affinities 0, which keeps padded queries out of the first norm; padded context
    elements are kept out of the softmax by a -inf bias, padded queries out of `aggregate`.
    """
    n_sets, n_contexts, dim = contexts.shape
    n_query_sets, n_queries, _ = queries.shape
    # s_cq of every pair: one [O·C, D] × [D, P·Q] product.
    affinity = contexts.reshape(-1, dim) @ queries.reshape(-1, dim).T
    affinity = affinity.view(n_sets, n_contexts, n_query_sets, n_queries)
    gram = contexts @ contexts.transpose(1, 2)  # [O, C, C]
    query_sq_norm = queries.square().sum(-1)  # [P, Q], broadcast over the context sets
    return _attend_and_score(
        affinity, gram, context_mask, query_sq_norm, query_mask, lambda_softmax, aggregation, lambda_lse
    )


def aligned_cross_attention(
    contexts: torch.Tensor,
    context_mask: torch.Tensor,
    queries: torch.Tensor,
    query_mask: torch.Tensor,
    *,
    context_gram: torch.Tensor | None = None,
    query_sq_norm: torch.Tensor | None = None,
    lambda_softmax: float,
    aggregation: Aggregation,
    lambda_lse: float,
) -> torch.Tensor:
    """Scores of aligned pairs, context set p with query set p (re-rank's explicit pair lists).

    Args:
        contexts: [P, C, D], queries: [P, Q, D], masks bool [P, C] and [P, Q]: as in
            `stacked_cross_attention`, but row p of each belongs to pair p.
        context_gram: [P, C, C], contexts @ contextsᵀ, if the caller has it per set: pairs
            repeat sets, and per pair it costs C·C·D, more than the affinities (C·Q·D) for t-i.
        query_sq_norm: [P, Q], ‖q_q‖², likewise.
        lambda_softmax, aggregation, lambda_lse: as in `stacked_cross_attention`.

    Returns:
        [P], the entries `stacked_cross_attention` gives these pairs (equal up to rounding: the
        affinities come from a batched product, one [C, D] × [D, Q] per pair).

    The pairs take the block layout [O, C, P, Q] with O = P pairs and a query axis of one, so
    every step after the affinities is `stacked_cross_attention`'s own.
    """
    if context_gram is None:
        context_gram = contexts @ contexts.transpose(1, 2)
    if query_sq_norm is None:
        query_sq_norm = queries.square().sum(-1)
    affinity = torch.bmm(contexts, queries.transpose(1, 2))[:, :, None]  # [P, C, 1, Q]
    scores = _attend_and_score(
        affinity, context_gram, context_mask, query_sq_norm[:, None], query_mask[:, None],
        lambda_softmax, aggregation, lambda_lse,
    )
    return scores[:, 0]


def context_grouped_cross_attention(
    contexts: torch.Tensor,
    context_mask: torch.Tensor,
    queries: torch.Tensor,
    query_mask: torch.Tensor,
    *,
    context_gram: torch.Tensor,
    query_sq_norm: torch.Tensor,
    lambda_softmax: float,
    aggregation: Aggregation,
    lambda_lse: float,
) -> torch.Tensor:
    """Scores of context set o with each of its own P query sets (re-rank lists grouped by a
    context set): [O, P], the entries `stacked_cross_attention` gives these pairs.

    Args:
        contexts: [O, C, D], context_mask bool [O, C], context_gram [O, C, C]: one set per group.
        queries: [O, P, Q, D], query_mask bool [O, P, Q], query_sq_norm [O, P, Q]: group o's P
            candidates. Zero padded, as in `stacked_cross_attention`.

    The block layout [O, C, P, Q] is `_attend_and_score`'s own; the affinities are one
    [C, D] × [D, P·Q] product per group, and no context set is copied per pair.
    """
    n_sets, n_contexts, dim = contexts.shape
    _, n_query_sets, n_queries, _ = queries.shape
    affinity = torch.bmm(contexts, queries.reshape(n_sets, n_query_sets * n_queries, dim).transpose(1, 2))
    return _attend_and_score(
        affinity.view(n_sets, n_contexts, n_query_sets, n_queries), context_gram, context_mask,
        query_sq_norm, query_mask, lambda_softmax, aggregation, lambda_lse,
    )


def query_grouped_cross_attention(
    contexts: torch.Tensor,
    context_mask: torch.Tensor,
    queries: torch.Tensor,
    query_mask: torch.Tensor,
    *,
    context_gram: torch.Tensor,
    query_sq_norm: torch.Tensor,
    lambda_softmax: float,
    aggregation: Aggregation,
    lambda_lse: float,
) -> torch.Tensor:
    """Scores of query set o with each of its own P context sets (re-rank lists grouped by a
    query set): [O, P], the entries `stacked_cross_attention` gives these pairs.

    Args:
        contexts: [O, P, C, D], context_mask bool [O, P, C], context_gram [O, P, C, C]: group
            o's P candidates.
        queries: [O, Q, D], query_mask bool [O, Q], query_sq_norm [O, Q]: one set per group.

    The affinities are one [P·C, D] × [D, Q] product per group; the pairs then take the
    aligned layout [O·P, C, 1, Q] (`aligned_cross_attention`), with the query's norms and mask
    broadcast, not copied per pair.
    """
    n_sets, n_context_sets, n_contexts, dim = contexts.shape
    n_queries = queries.shape[1]
    affinity = torch.bmm(contexts.reshape(n_sets, n_context_sets * n_contexts, dim), queries.transpose(1, 2))
    n_pairs = n_sets * n_context_sets
    scores = _attend_and_score(
        affinity.view(n_pairs, n_contexts, 1, n_queries),
        context_gram.reshape(n_pairs, n_contexts, n_contexts),
        context_mask.reshape(n_pairs, n_contexts),
        query_sq_norm[:, None].expand(n_sets, n_context_sets, n_queries).reshape(n_pairs, 1, n_queries),
        query_mask[:, None].expand(n_sets, n_context_sets, n_queries).reshape(n_pairs, 1, n_queries),
        lambda_softmax, aggregation, lambda_lse,
    )
    return scores.view(n_sets, n_context_sets)


def _attend_and_score(
    affinity: torch.Tensor,
    gram: torch.Tensor,
    context_mask: torch.Tensor,
    query_sq_norm: torch.Tensor,
    query_mask: torch.Tensor,
    lambda_softmax: float,
    aggregation: Aggregation,
    lambda_lse: float,
) -> torch.Tensor:
    """Steps 1-4 from the affinities s_cq of a block.

    Args:
        affinity: [O, C, P, Q], context set o's elements against the queries of its P query sets.
        gram: [O, C, C], each context set's Gram matrix; context_mask: bool [O, C].
        query_sq_norm: ‖q_q‖², broadcastable to [O, P, Q]; query_mask: bool, likewise.

    Returns:
        [O, P].
    """
    n_sets, n_contexts = context_mask.shape
    context_bias = affinity.new_zeros(context_mask.shape).masked_fill(~context_mask, float("-inf"))
    logits = torch.add(context_bias[:, :, None, None], clipped_l2norm(affinity), alpha=lambda_softmax)
    attention = logits.softmax(dim=1)  # α_cq over the context elements
    query_dot_attended = (attention * affinity).sum(dim=1)  # q_qᵀ a_q, [O, P, Q]
    gram_attention = torch.bmm(gram, attention.view(n_sets, n_contexts, -1)).view_as(attention)
    attended_sq_norm = (attention * gram_attention).sum(dim=1)  # ‖a_q‖², [O, P, Q]
    # cos = x·y / max(‖x‖‖y‖, eps), as the reference's cosine_similarity; clamping the squared
    # product keeps the sqrt's gradient finite for the all-zero padded queries.
    denominator = (query_sq_norm * attended_sq_norm).clamp(min=EPS**2).sqrt()
    relevance = query_dot_attended / denominator
    return aggregate(relevance, query_mask, aggregation, lambda_lse)
