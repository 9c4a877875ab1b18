"""Every topic's phrase rules at once: one pass over a paper gives each topic its ``Evidence``. Pure.

``rules.rule_evidence`` scores one topic; a paper has ~20 of them and many share phrases ("depth",
"mixture of expert*"). A ``PhraseBook`` is built once per set of topics and holds

- every one- and two-word exact phrase of every topic in one table, found by a single intersection of the
  table with the paper's words and adjacent word pairs (``Grams``),
- every other phrase (longer ones and wildcards) once, however many topics list it, indexed by its first word
  (or first-word prefix), so a paper tests only the phrases whose first word it contains; each is counted once.

Each topic's score is then summed over its matched phrases in the order ``rule_evidence`` sums them, with the
same arithmetic, so the scores are the same to the last bit (``tests/test_phrasebook.py`` compares them on the
real papers).
"""

from __future__ import annotations

from typing import Sequence

from .rules import FEED_KEYWORD_WEIGHT, TITLE_WEIGHT, CONTEXT_PENALTY, Evidence, TopicRules, _damped, _REPEATS
from .text import DocWords, Grams, Phrase

_LAST_REPEAT = len(_REPEATS) - 1
_STARTS_MAX = 200_000

# One topic's use of a phrase: (topic index, position in its ``phrases``, weight, the phrase as written).
_Use = tuple[int, int, float, str]


class PhraseBook:
    """The phrases of a sequence of topics (``TopicRules``), for ``evidence``."""

    def __init__(self, rules: Sequence[TopicRules]) -> None:
        self.rules = tuple(rules)
        self.grams: dict[str, list[_Use]] = {}
        uses: dict[Phrase, list[_Use]] = {}
        for ti, r in enumerate(self.rules):
            for position, (phrase, weight) in enumerate(r.phrases):
                use = (ti, position, weight, phrase.text)
                if phrase.gram is not None:
                    self.grams.setdefault(phrase.gram, []).append(use)
                else:
                    uses.setdefault(phrase, []).append(use)
        self.phrases: list[tuple[Phrase, list[_Use]]] = list(uses.items())
        self.by_word: dict[str, list[int]] = {}
        self.by_prefix: dict[str, list[int]] = {}
        for i, (phrase, _) in enumerate(self.phrases):
            (self.by_prefix if phrase.first_prefix else self.by_word).setdefault(phrase.first, []).append(i)
        self._longest_prefix = max(map(len, self.by_prefix), default=0)
        # word -> the phrases it can start (its own phrases and those of every prefix of it): words recur from
        # paper to paper, so each is looked up once (bounded: past the bound a new word is looked up each time)
        self._starts: dict[str, tuple[int, ...]] = {}

    def starts(self, word: str) -> tuple[int, ...]:
        """The phrases (indexes in ``phrases``) whose first word is ``word`` or a prefix of it."""
        found = self._starts.get(word)
        if found is None:
            hits = set(self.by_word.get(word, ()))
            for end in range(1, min(len(word), self._longest_prefix) + 1):
                hits.update(self.by_prefix.get(word[:end], ()))
            found = tuple(sorted(hits))
            if len(self._starts) < _STARTS_MAX:
                self._starts[word] = found
        return found

    def evidence(self, title: str, abstract: str, feed_keywords: Sequence[str], everything: str,
                 words: DocWords, grams: Grams, fields: tuple[DocWords, DocWords],
                 explain: bool = False) -> list[Evidence]:
        """Each topic's ``Evidence`` (in ``rules`` order), as ``rule_evidence`` gives it with the same arguments:
        ``joined()`` strings of the fields, their ``combined()`` form, the paper's words, its ``Grams`` and the
        ``DocWords`` of its title and abstract."""
        hits: dict[int, list[tuple[int, float, float, float, int, int, int, str]]] = {}
        title_get, abstract_get, keywords_get = grams.title.get, grams.abstract.get, grams.keywords.get
        for gram in self.grams.keys() & grams.present:
            in_title, in_abstract, in_keywords = title_get(gram, 0), abstract_get(gram, 0), keywords_get(gram, 0)
            direct = TITLE_WEIGHT * bool(in_title) + FEED_KEYWORD_WEIGHT * min(in_keywords, 2)
            repeats = _REPEATS[min(in_abstract, _LAST_REPEAT)]
            for ti, position, weight, text in self.grams[gram]:
                hits.setdefault(ti, []).append(
                    (position, weight, direct, repeats, in_title, in_abstract, in_keywords, text))
        title_words, abstract_words = fields
        for i in self._candidates(words):
            phrase, uses = self.phrases[i]
            if not phrase.single_prefix and not phrase.count(everything):
                continue
            in_title = title_words.count(phrase)
            in_abstract = abstract_words.count(phrase)
            in_keywords = sum(1 for k in feed_keywords if phrase.count(k)) if feed_keywords else 0
            direct = TITLE_WEIGHT * bool(in_title) + FEED_KEYWORD_WEIGHT * min(in_keywords, 2)
            repeats = _REPEATS[min(in_abstract, _LAST_REPEAT)]
            for ti, position, weight, text in uses:
                hits.setdefault(ti, []).append(
                    (position, weight, direct, repeats, in_title, in_abstract, in_keywords, text))
        return [self._score(r, hits.get(ti), everything, words, explain) for ti, r in enumerate(self.rules)]

    def _candidates(self, words: DocWords) -> set[int]:
        """The phrases (indexes in ``phrases``) whose first word, or first-word prefix, the paper contains."""
        found: set[int] = set()
        cached = self._starts
        for w in words.words:
            hits = cached.get(w)
            if hits is None:
                hits = self.starts(w)
            if hits:
                found.update(hits)
        return found

    @staticmethod
    def _score(rules: TopicRules, found: list[tuple[int, float, float, float, int, int, int, str]] | None,
               everything: str, words: DocWords, explain: bool) -> Evidence:
        ev = Evidence()
        for phrase in rules.excludes:
            if phrase.possible(words) and phrase.count(everything):
                ev.excluded_by = phrase.text
                return ev
        if not found:
            return ev
        found.sort()  # by position, as rule_evidence goes through a topic's phrases (a position is unique)
        score = from_abstract = 0.0
        listed: list[tuple[float, str]] = []
        for _, weight, direct_factor, repeats, in_title, in_abstract, in_keywords, text in found:
            direct = weight * direct_factor
            mentioned = weight * repeats
            score += direct
            from_abstract += mentioned
            if explain:
                where = "title" if in_title else "keywords" if in_keywords and not in_abstract else "abstract"
                listed.append((direct + mentioned, f"{text} ({where}, +{direct + mentioned:.1f})"))
        if explain:
            ev.matched = [text for _, text in sorted(listed, key=lambda f: (-f[0], f[1]))]
        score += _damped(from_abstract)
        if rules.requires and score and not any(p.possible(words) and p.count(everything) for p in rules.requires):
            score *= CONTEXT_PENALTY
            if explain:
                ev.matched.append(f"(no mention of {rules.requires[0].text} or the like: x{CONTEXT_PENALTY})")
        ev.score = score
        return ev
