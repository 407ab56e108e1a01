"""VectorSets: padded local embeddings that batch, slice and concatenate without mixing sets."""

from __future__ import annotations

import torch

from harness.embeddings import VectorSets, concat


def sets(lengths: list[int], width: int, dim: int = 2) -> VectorSets:
    vectors = torch.zeros(len(lengths), width, dim)
    for row, length in enumerate(lengths):
        vectors[row, :length] = row + 1
    return VectorSets(vectors, torch.tensor(lengths))


def test_mask_marks_the_real_vectors():
    assert sets([1, 3], 3).mask().tolist() == [[True, False, False], [True, True, True]]


def test_slicing_trims_padding_to_the_longest_selected_set():
    part = sets([1, 2, 4], 4)[0:2]
    assert part.vectors.shape == (2, 2, 2) and part.lengths.tolist() == [1, 2]


def test_concat_repads_to_the_widest_part():
    whole = concat([sets([1], 1), sets([3, 2], 3)])
    assert whole.vectors.shape == (3, 3, 2)
    assert whole.lengths.tolist() == [1, 3, 2]
    assert whole.vectors[0, 1:].abs().sum() == 0


def test_concat_of_global_embeddings_is_torch_cat():
    a, b = torch.randn(2, 4), torch.randn(3, 4)
    torch.testing.assert_close(concat([a, b]), torch.cat([a, b]))


def test_a_summary_vector_travels_with_its_set():
    a = VectorSets(torch.ones(2, 1, 3), torch.tensor([1, 1]), summary=torch.tensor([[1.0], [2.0]]))
    b = VectorSets(torch.ones(1, 2, 3), torch.tensor([2]), summary=torch.tensor([[3.0]]))
    whole = concat([a, b])
    assert whole.summary[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert whole[torch.tensor([2, 0])].summary[:, 0].tolist() == [3.0, 1.0]
