"""Text normalisation and phrase matching shared by the rules and the lexical model. Pure.

Text and phrases go through the same ``tokens()``: case and accents folded, hyphens and punctuation
turned into spaces (so "text-to-video" matches "text to video"), plurals reduced ("caches" → "cache").
A phrase token ending in ``*`` matches any word starting with it ("quantiz*" → quantize, quantized,
quantization).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

# Words, with numbers like 1.58 or 2:4 kept whole ("1.58-bit", "2:4 sparsity").
_TOKEN = re.compile(r"[a-z0-9]+(?:[.:][0-9]+)*")
# Hyphenated prefixes written both ways ("auto-regressive", "autoregressive"): joined before tokenising.
_PREFIX_HYPHEN = re.compile(r"\b(auto|multi|sub|pre|post|co|non)-(?=[a-z])")
# The same substitution, written to start at the hyphen (a literal the regex engine searches for fast) and
# to look back at the prefix: the hyphen is deleted where _PREFIX_HYPHEN would join, 30 times faster.
_PREFIX_HYPHEN_FAST = re.compile(
    r"-(?=[a-z])(?:" + "|".join(rf"(?<=\b{p}-)" for p in ("auto", "multi", "sub", "pre", "post", "co", "non")) + ")")
_KEEP_S = ("ss", "us", "is", "ous", "sis")
_PLURAL_US = frozenset({"gpus", "cpus", "tpus", "npus", "dpus", "ipus", "xpus"})


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Plural to singular, nothing more: enough to match "kernels" with "kernel" without surprises."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word in _PLURAL_US or (
            len(word) > 3 and word.endswith("s") and not word.endswith(_KEEP_S) and not word[-2].isdigit()):
        return word[:-1]
    return word


class _Stems(dict[str, str]):
    """word -> ``stem(word)``, filled on first sight: a plain dict lookup per token (bounded, so memory stays
    flat on a long run; past the bound a new word is stemmed each time, with the same result)."""

    def __missing__(self, word: str) -> str:
        value = stem(word)
        if len(self) < _STEMS_MAX:
            self[word] = value
        return value


_STEMS_MAX = 200_000
_STEMMED = _Stems()


def tokens(text: str) -> list[str]:
    # NFKC leaves ASCII alone and casefold() is lower() there: the common case skips both.
    folded = text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).casefold()
    if "-" in folded:
        folded = _PREFIX_HYPHEN_FAST.sub("", folded)
    return list(map(_STEMMED.__getitem__, _TOKEN.findall(folded)))


def joined(text: str) -> str:
    """The token string of ``text`` padded with spaces, ready for phrase counting."""
    return " " + " ".join(tokens(text)) + " "


@dataclass(frozen=True)
class Phrase:
    """A compiled phrase: exact phrases are counted with str.count, wildcard ones with a regex."""

    text: str  # as written in the settings, shown by `topics explain`
    exact: str | None  # " kv cache " (padded) when there is no wildcard
    pattern: re.Pattern[str] | None
    probe: str = ""  # literal text every match of the pattern contains: a cheap test before the regex
    first: str = ""  # the first word (or, when it ends in *, its prefix): a cheaper test still
    first_prefix: bool = False
    single_prefix: bool = False  # the phrase is one word ending in *
    trailing: bool = False  # only the last word ends in *
    gram: str | None = None  # "kv cache": an exact phrase of one or two words, counted by ``Grams`` lookups

    def possible(self, words: "DocWords") -> bool:
        """False when the document cannot contain the phrase (its first word is absent)."""
        return words.has_prefix(self.first) if self.first_prefix else self.first in words.words

    def count(self, doc: str) -> int:
        """Occurrences in a ``joined()`` document."""
        if self.exact is not None:
            return doc.count(self.exact)
        if self.trailing:  # only the last word is a prefix: every occurrence of the probe is a match
            return doc.count(self.probe)
        assert self.pattern is not None
        if self.probe not in doc:
            return 0
        return len(self.pattern.findall(doc))


@lru_cache(maxsize=8192)
def compile_phrase(text: str) -> Phrase | None:
    """None for a phrase with no word in it (e.g. "--")."""
    parts = []
    wildcard = False
    for raw in text.split():
        star = raw.endswith("*")
        words = tokens(raw[:-1] if star else raw)
        if not words:
            continue
        if star:
            wildcard = True
            # the prefix is not stemmed: "gpus*" is unlikely, "process*" must keep its s
            folded = _PREFIX_HYPHEN.sub(r"\1", unicodedata.normalize("NFKC", raw[:-1]).casefold())
            prefix = _TOKEN.findall(folded)
            words = words[:-1] + [prefix[-1] + "*"] if prefix else words
        parts.extend(words)
    if not parts:
        return None
    first, first_prefix = (parts[0][:-1], True) if parts[0].endswith("*") else (parts[0], False)
    if not wildcard:
        gram = " ".join(parts) if len(parts) <= 2 else None
        return Phrase(text, " " + " ".join(parts) + " ", None, "", first, first_prefix, gram=gram)
    body = " ".join(re.escape(p[:-1]) + r"[a-z0-9.:]*" if p.endswith("*") else re.escape(p) for p in parts)
    first_wild = next(i for i, p in enumerate(parts) if p.endswith("*"))
    probe = " " + " ".join(parts[:first_wild] + [parts[first_wild][:-1]])
    trailing = first_wild == len(parts) - 1
    return Phrase(text, None, re.compile(r"(?<= )" + body + r"(?= )"), probe, first, first_prefix,
                  len(parts) == 1 and first_prefix and first.isalnum(), trailing)


class DocWords:
    """The words of a ``joined()`` document, for ``Phrase.possible`` and fast counts of one-word phrases."""

    __slots__ = ("doc", "words", "_sorted", "_counts")

    def __init__(self, doc: str, counts: dict[str, int] | None = None) -> None:
        """``counts``: the words' counts when already known (``Grams`` of the same tokens; pairs are ignored)."""
        self.doc = doc
        self.words = frozenset(doc.split())
        self._sorted: list[str] | None = None
        self._counts: dict[str, int] | None = counts

    @classmethod
    def of(cls, *token_lists: Sequence[str]) -> "DocWords":
        """The words of several token lists (``everything`` of a paper) without joining and splitting them."""
        self = cls.__new__(cls)
        self.doc = ""  # counts go through the per-field DocWords; this one only answers "is it there?"
        self.words = frozenset(w for tl in token_lists for w in tl)
        self._sorted = None
        self._counts = None
        return self

    def _order(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.words)
        return self._sorted

    def has_prefix(self, prefix: str) -> bool:
        order = self._order()
        i = bisect_left(order, prefix)
        return i < len(order) and order[i].startswith(prefix)

    def count(self, phrase: Phrase) -> int:
        """``phrase.count(doc)``, without a regex for a one-word wildcard phrase ("quantiz*")."""
        if phrase.single_prefix:
            if self._counts is None:
                counts: dict[str, int] = {}
                for w in self.doc.split():
                    counts[w] = counts.get(w, 0) + 1
                self._counts = counts
            order = self._order()
            i = bisect_left(order, phrase.first)
            total = 0
            while i < len(order) and order[i].startswith(phrase.first):
                total += self._counts[order[i]]
                i += 1
            return total
        return phrase.count(self.doc)


class Grams:
    """Counts of the words and adjacent word pairs of a paper's title and abstract, and in how many of its feed
    keywords each occurs: a one- or two-word phrase is then counted by three dict lookups, not three scans."""

    __slots__ = ("title", "abstract", "keywords", "present")

    def __init__(self, title: Sequence[str], abstract: Sequence[str], keywords: Sequence[Sequence[str]]) -> None:
        self.title = _grams(title)
        self.abstract = _grams(abstract)
        counts: dict[str, int] = {}
        for kw in keywords:
            for g in _grams(kw):
                counts[g] = counts.get(g, 0) + 1
        self.keywords = counts
        self.present = self.title.keys() | self.abstract.keys() | counts.keys()


def _grams(words: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    get = counts.get
    for w in words:
        counts[w] = get(w, 0) + 1
    for pair in map(" ".join, zip(words, words[1:])):
        counts[pair] = get(pair, 0) + 1
    return counts


def compile_phrases(texts: Iterable[str]) -> list[Phrase]:
    out = []
    for t in texts:
        p = compile_phrase(t)
        if p is not None:
            out.append(p)
    return out


_WORD_CACHE: dict[str, re.Pattern[str]] = {}


def whole_word_pattern(keyword: str) -> re.Pattern[str]:
    """Case-insensitive whole-word match of a keyword or phrase; inner spaces match any whitespace."""
    pattern = _WORD_CACHE.get(keyword)
    if pattern is None:
        body = r"\s+".join(re.escape(part) for part in keyword.split())
        pattern = re.compile(r"(?<!\w)" + body + r"(?!\w)", re.IGNORECASE)
        _WORD_CACHE[keyword] = pattern
    return pattern
