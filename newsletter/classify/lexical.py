"""The lexical similarity model: TF-IDF cosine between a paper and each topic's description. Pure Python.

The fallback for semantic similarity when the embeddings extra is not installed. Each topic is a small
document (name, description, keywords); words and adjacent word pairs are the features, weighted by
how few topics share them (IDF over the topics), so "video" counts less than "splatting". The model
depends only on the topics, never on the papers being classified: a paper's scores do not change with
the company it is classified in.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

from .text import tokens

STOPWORDS = frozenset(
    "a an and are as at be by can do for from has have in into is it its of on or our such that the their "
    "these this those to via we what when which while with without within both each more most other than "
    "then there they thus using use used based new novel propose proposed approach method methods paper "
    "work show shows results result also however existing prior recent recently however further model".split()
)


def features(text: str) -> Counter[str]:
    words = [t for t in tokens(text) if t not in STOPWORDS and len(t) > 1]
    feats: Counter[str] = Counter(words)
    feats.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return feats


@dataclass(frozen=True)
class LexicalModel:
    idf: Mapping[str, float]
    topics: Mapping[str, Mapping[str, float]]  # slug -> L2-normalised weights

    def similarity(self, text: str) -> dict[str, float]:
        """Cosine similarity of ``text`` with each topic, in [0, 1]."""
        weights = {f: (1.0 + math.log(n)) * self.idf[f] for f, n in features(text).items() if f in self.idf}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {
            slug: sum(w * vec.get(f, 0.0) for f, w in weights.items()) / norm
            for slug, vec in self.topics.items()
        }


@lru_cache(maxsize=32)
def build(topic_texts: tuple[tuple[str, str], ...]) -> LexicalModel:
    """The model for ``(slug, text)`` pairs; cached, as the topics rarely change within a process."""
    docs = {slug: features(text) for slug, text in topic_texts}
    df: Counter[str] = Counter()
    for feats in docs.values():
        df.update(feats.keys())
    n = len(docs)
    idf = {f: math.log(1.0 + n / d) for f, d in df.items()}
    vectors: dict[str, dict[str, float]] = {}
    for slug, feats in docs.items():
        vec = {f: (1.0 + math.log(c)) * idf[f] for f, c in feats.items()}
        norm = math.sqrt(sum(v * v for v in vec.values())) or 1.0
        vectors[slug] = {f: v / norm for f, v in vec.items()}
    return LexicalModel(idf, vectors)


def topic_document(name: str, description: str, keywords: Sequence[str]) -> str:
    return ". ".join([name, description, ", ".join(keywords)])
