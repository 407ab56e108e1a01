"""The on-disk feature cache: reuse by content, atomic entries, recovery from corruption."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from harness.features import CachedTextBackbone, FeatureCache, ShardedArray, file_digest, split_image_features
from harness.interfaces import RetrievalSplit


def compute_counter():
    calls = []

    def compute():
        calls.append(1)
        return {"pooled": np.arange(6, dtype=np.float32).reshape(2, 3)}

    return calls, compute


def test_second_request_reuses_the_stored_arrays(tmp_path):
    cache = FeatureCache(tmp_path)
    calls, compute = compute_counter()
    first = cache.get_or_compute({"backbone": "b", "images": "h"}, compute)
    second = FeatureCache(tmp_path).get_or_compute({"backbone": "b", "images": "h"}, compute)
    assert len(calls) == 1
    np.testing.assert_array_equal(first["pooled"], second["pooled"])


def test_different_content_is_a_different_entry(tmp_path):
    cache = FeatureCache(tmp_path)
    calls, compute = compute_counter()
    cache.get_or_compute({"backbone": "b", "images": "h1"}, compute)
    cache.get_or_compute({"backbone": "b", "images": "h2"}, compute)
    assert (cache.hits, cache.misses, len(calls)) == (0, 2, 2)


def test_no_entry_is_left_when_the_computation_fails(tmp_path):
    cache = FeatureCache(tmp_path)

    def failing():
        raise RuntimeError("backbone crashed")

    try:
        cache.get_or_compute({"k": 1}, failing)
    except RuntimeError:
        pass
    assert list(tmp_path.iterdir()) == []


def test_corrupt_entry_is_rebuilt(tmp_path, capsys):
    cache = FeatureCache(tmp_path)
    calls, compute = compute_counter()
    cache.get_or_compute({"k": 1}, compute)
    entry = tmp_path / cache.key({"k": 1})
    (entry / "pooled.npy").write_bytes(b"truncated")
    again = FeatureCache(tmp_path).get_or_compute({"k": 1}, compute)
    assert len(calls) == 2
    assert again["pooled"].shape == (2, 3)
    assert "unreadable" in capsys.readouterr().err


def test_file_digest_follows_content_not_name(tmp_path):
    a, b, c = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"
    a.write_bytes(b"pixels")
    b.write_bytes(b"pixels")
    c.write_bytes(b"other")
    assert file_digest([a]) == file_digest([b]) != file_digest([c])


def test_precomputed_split_features_bypass_the_backbone(tmp_path):
    regions = np.ones((2, 3, 4), dtype=np.float32)
    split = RetrievalSplit("d", "test", ("0", "1"), ("a", "b"), np.array([0, 1]), image_features={"regions": regions})
    assert split_image_features(split, backbone=None, cache=FeatureCache(tmp_path))["regions"] is regions


def test_text_features_are_reused_across_backbone_instances(tmp_path):
    encoded = []

    class Backbone:
        fingerprint = "fake-text/v1"

        def encode_texts(self, texts):
            encoded.append(list(texts))
            return {"sentence": np.ones((len(texts), 2), dtype=np.float32)}

    first = CachedTextBackbone(Backbone, FeatureCache(tmp_path))
    first.encode_texts(["a cat", "a dog"])
    second = CachedTextBackbone(Backbone, FeatureCache(tmp_path))
    features = second.encode_texts(["a cat", "a dog"])
    assert encoded == [["a cat", "a dog"]]
    assert (second.cache.hits, features["sentence"].shape) == (1, (2, 2))


class WordTokens:
    """Frozen text stand-in: one token per word, each token the word's length, padded per call
    to the call's longest text (as MiniLM pads to its batch's longest caption)."""

    fingerprint = "word-tokens/v1"

    def __init__(self) -> None:
        self.calls: list[int] = []

    def encode_texts(self, texts):
        self.calls.append(len(texts))
        words = [text.split() for text in texts]
        tokens = np.zeros((len(texts), max(map(len, words)), 1), dtype=np.float32)
        for row, text_words in enumerate(words):
            tokens[row, : len(text_words), 0] = [len(word) for word in text_words]
        return {"tokens": tokens, "lengths": np.array([len(w) for w in words], dtype=np.int64)}


def test_text_features_are_cached_in_shards_that_read_as_one_array(tmp_path):
    """A split's texts are encoded one shard at a time (COCO train: 566k captions, tens of GB of
    tokens), each shard padded to its own longest text; read back, the shards are one array as
    wide as the widest, zero beyond each text, the same as encoding all texts at once."""
    texts = ["a cat", "one dog runs", "sky", "a b c d e", "tree", "two red birds", "x"]
    sharded = CachedTextBackbone(WordTokens, FeatureCache(tmp_path / "sharded"), shard_size=3).encode_texts(texts)
    whole = WordTokens().encode_texts(texts)
    assert isinstance(sharded["tokens"], ShardedArray) and sharded["tokens"].shape == whole["tokens"].shape
    rows = np.array([6, 3, 0, 4])
    np.testing.assert_array_equal(sharded["tokens"][rows], whole["tokens"][rows])
    np.testing.assert_array_equal(sharded["lengths"][np.arange(7)], whole["lengths"])


def test_an_interrupted_text_extraction_resumes_from_its_last_shard(tmp_path):
    texts = [f"caption number {i}" for i in range(7)]
    first = CachedTextBackbone(WordTokens, FeatureCache(tmp_path), shard_size=3)
    first.encode_texts(texts[:6])  # the first two shards of the split, as if stopped there
    again = CachedTextBackbone(WordTokens, FeatureCache(tmp_path), shard_size=3)
    again.encode_texts(texts)
    assert again.backbone.calls == [1]  # only the last shard's one caption was encoded


class CountingBackbone:
    fingerprint = "counting/v1"

    def __init__(self, fail_after: int | None = None) -> None:
        self.encoded: list[int] = []
        self.fail_after = fail_after

    def encode_images(self, paths):
        if self.fail_after is not None and len(self.encoded) >= self.fail_after:
            raise KeyboardInterrupt("stopped by the user")
        self.encoded.append(len(paths))
        return {"pooled": np.array([[float(p.read_bytes()[0])] for p in paths], dtype=np.float32)}


def image_split(tmp_path, n: int) -> RetrievalSplit:
    paths = []
    for i in range(n):
        path = tmp_path / f"{i}.jpg"
        path.write_bytes(bytes([i]))
        paths.append(path)
    return RetrievalSplit("d", "train", tuple(map(str, range(n))), ("c",) * n, np.arange(n), image_paths=tuple(paths))


def test_interrupted_extraction_resumes_from_the_last_finished_shard(tmp_path):
    split, cache = image_split(tmp_path, 7), FeatureCache(tmp_path / "cache")
    try:
        split_image_features(split, CountingBackbone(fail_after=2), cache, shard_size=3)
    except KeyboardInterrupt:
        pass
    resumed = CountingBackbone()
    features = split_image_features(split, resumed, FeatureCache(tmp_path / "cache"), shard_size=3)
    assert resumed.encoded == [1]  # only the last shard (images 6) was computed again
    np.testing.assert_array_equal(features["pooled"][np.arange(7)][:, 0], np.arange(7))


def test_features_are_memory_mapped_from_their_first_computation_on(tmp_path):
    """A split's shards are read back from disk once written: memory does not hold the whole
    split's features on the first run either (COCO train: tens of GB)."""
    split = image_split(tmp_path, 7)
    features = split_image_features(split, CountingBackbone(), FeatureCache(tmp_path / "cache"), shard_size=3)
    assert isinstance(features["pooled"], ShardedArray)
    assert all(isinstance(shard, np.memmap) for shard in features["pooled"].shards)
    calls, compute = compute_counter()
    assert isinstance(FeatureCache(tmp_path / "texts").get_or_compute({"texts": "t"}, compute)["pooled"], np.memmap)


def test_sharded_array_reads_rows_across_shards_in_any_order():
    sharded = ShardedArray([np.arange(3)[:, None], np.arange(3, 5)[:, None], np.arange(5, 9)[:, None]])
    assert sharded.shape == (9, 1) and len(sharded) == 9
    np.testing.assert_array_equal(sharded[np.array([8, 0, 4, 3])][:, 0], [8, 0, 4, 3])
    np.testing.assert_array_equal(sharded[2:6][:, 0], [2, 3, 4, 5])


def test_staging_left_by_a_killed_process_of_this_host_is_swept(tmp_path):
    from harness.features import _HOST

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    orphan = tmp_path / f".{'a' * 32}.{_HOST}.{dead_pid}.x1"
    live = tmp_path / f".{'b' * 32}.{_HOST}.{os.getpid()}.x2"
    other_host = tmp_path / f".{'c' * 32}.elsewhere.{dead_pid}.x3"
    for staging in (orphan, live, other_host):
        staging.mkdir()
        (staging / "pooled.npy").write_bytes(b"half")
    FeatureCache(tmp_path).get_or_compute({"k": 1}, lambda: {"x": np.zeros(2)})
    assert not orphan.exists() and live.exists() and other_host.exists()


def test_in_a_log_each_finished_shard_is_a_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ITR_QUIET", raising=False)
    split_image_features(image_split(tmp_path, 7), CountingBackbone(), FeatureCache(tmp_path / "cache"), shard_size=3)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(", elapsed")[0] for line in lines] == [f"d:train image features: shard {k}/3" for k in (1, 2, 3)]
