"""Damaged precomp splits, fuzzed: every one is a one-line `UserError` naming the file and the
position (the header, the image row, the line), never a traceback or a loaded split.

Each strategy draws a small valid split and one damage of its kind (see `damage`); the loader
is called as the driver's preflight calls it.
"""

from __future__ import annotations

import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from baselines.datasets.precomp import precomp
from tests.baselines.datasets.damage import (
    FUZZ,
    INVALID_UTF8,
    Expected,
    append_to_features,
    as_dtype,
    as_ragged,
    assert_refused,
    at,
    blanks,
    blank_line,
    npy_bytes,
    precomp_specs,
    recount_captions,
    redeclare_rows,
    reshaped,
    resave_features,
    truncate_features,
    undecodable_line,
    with_non_finite,
    write_precomp,
)

WRONG_DTYPES = ["int8", "int16", "int32", "int64", "uint8", "float64", "bool", "complex64", ">f4", ">f2"]


def assert_precomp_refused(spec, damage) -> str:
    with tempfile.TemporaryDirectory() as folder:
        root = write_precomp(Path(folder), spec)
        expected: Expected = damage(root)
        return assert_refused(lambda: precomp(path=str(root)).load("test"), root, expected)


@st.composite
def truncated(draw):
    spec = draw(precomp_specs())
    size = len(npy_bytes(spec.features()))
    return spec, partial(truncate_features, keep=draw(st.integers(0, size - 1)))


@st.composite
def appended(draw):
    return draw(precomp_specs()), partial(append_to_features, extra=draw(st.binary(min_size=1, max_size=64)))


@st.composite
def misdeclared(draw):
    """A header declaring more rows than the data holds, fewer, none, or a negative count."""
    spec = draw(precomp_specs())
    rows = draw(st.integers(-3, spec.n_images + 3).filter(lambda rows: rows != spec.n_images))
    return spec, partial(redeclare_rows, rows=rows)


@st.composite
def wrong_dtype(draw):
    spec = draw(precomp_specs())
    if draw(st.booleans()):
        return spec, partial(resave_features, change=as_ragged, position="dtype object")
    dtype = draw(st.sampled_from(WRONG_DTYPES))
    return spec, partial(resave_features, change=partial(as_dtype, dtype), position=at(f"dtype {np.dtype(dtype)}"))


@st.composite
def wrong_shape(draw):
    """A rank other than 2 or 3, or image rows that hold no values."""
    spec = draw(precomp_specs())
    if draw(st.booleans()):
        shape = tuple(draw(st.lists(st.integers(1, 3), max_size=5).filter(lambda dims: len(dims) not in (2, 3))))
        position = at(f"rank {len(shape)}")
    else:
        shape = (spec.n_images, *draw(st.sampled_from([(0,), (0, 4), (3, 0)])))
        position = f"shape {shape}".replace("(", r"\(").replace(")", r"\)")
    return spec, partial(resave_features, change=partial(reshaped, shape), position=position)


@st.composite
def non_finite(draw):
    spec = draw(precomp_specs())
    rows = tuple(draw(st.sets(st.integers(0, spec.n_images - 1), min_size=1)))
    value = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    return spec, partial(resave_features, change=partial(with_non_finite, rows, value), position=at(f"image row {min(rows)}"))


@st.composite
def caption_count(draw):
    """A caption count that is not a multiple of the image count (at least 2 images)."""
    spec = draw(precomp_specs(min_images=2))
    count = draw(st.integers(1, len(spec.captions) + 2 * spec.n_images).filter(lambda count: count % spec.n_images))
    return spec, partial(recount_captions, count=count)


def text_lines(draw, spec) -> tuple[str, int]:
    """A text file of `spec` and one of its line numbers."""
    name = draw(st.sampled_from(["test_caps.txt", "test_ids.txt"] if spec.ids else ["test_caps.txt"]))
    lines = len(spec.captions) if name == "test_caps.txt" else spec.n_images
    return name, draw(st.integers(1, lines))


@st.composite
def undecodable(draw):
    spec = draw(precomp_specs())
    name, number = text_lines(draw, spec)
    column, data = draw(st.integers(0, 12)), draw(st.sampled_from(INVALID_UTF8))
    return spec, partial(undecodable_line, name=name, number=number, column=column, data=data)


@st.composite
def blank(draw):
    spec = draw(precomp_specs())
    name, number = text_lines(draw, spec)
    return spec, partial(blank_line, name=name, number=number, blank=draw(blanks))


@FUZZ
@given(precomp_specs())
def test_an_undamaged_split_loads(spec):
    """The control: without the damage, every drawn split loads as written."""
    with tempfile.TemporaryDirectory() as folder:
        split = precomp(path=str(write_precomp(Path(folder), spec))).load("test")
        assert split.captions == spec.captions and split.n_images == spec.n_images
        np.testing.assert_array_equal(next(iter(split.image_features.values())), spec.features())


@FUZZ
@given(truncated())
def test_a_truncated_feature_file_names_the_header_or_the_row_it_stops_in(case):
    assert_precomp_refused(*case)


@FUZZ
@given(appended())
def test_bytes_after_the_last_row_are_refused_naming_that_row(case):
    assert_precomp_refused(*case)


@FUZZ
@given(misdeclared())
def test_a_header_declaring_other_rows_than_the_data_names_the_row(case):
    assert_precomp_refused(*case)


@FUZZ
@given(wrong_dtype())
def test_a_wrong_or_ragged_dtype_is_named(case):
    assert_precomp_refused(*case)


@FUZZ
@given(wrong_shape())
def test_a_wrong_rank_or_empty_image_rows_are_named(case):
    assert_precomp_refused(*case)


@FUZZ
@given(non_finite())
def test_nan_or_inf_names_the_first_image_row_holding_one(case):
    assert_precomp_refused(*case)


@FUZZ
@given(caption_count())
def test_a_caption_count_that_does_not_divide_names_the_count(case):
    assert_precomp_refused(*case)


@FUZZ
@given(undecodable())
def test_a_line_that_is_not_utf8_is_named(case):
    assert_precomp_refused(*case)


@FUZZ
@given(blank())
def test_an_empty_caption_or_id_line_is_named(case):
    assert_precomp_refused(*case)
