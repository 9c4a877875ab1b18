"""Evaluation of the classifier against hand labels (``newsletter topics eval LABELS``). Pure.

A labels file is CSV with the columns ``title``, ``topic`` (the primary topic an expert picks) and
``acceptable`` (other topics an expert would also accept as primary, ``;``-separated, may be empty),
and optionally ``abstract``, ``arxiv_id`` (to find the paper's text in a folder of Daily Papers
responses) and ``day`` (the listing day, for splits by day). A prediction is right when the predicted
primary topic is the labelled topic or one of the acceptable ones.

Per topic the report gives recall (of the papers labelled with it as primary, the share placed acceptably)
and precision (of the papers placed in it, the share for which it is acceptable), and the confusion pairs:
(labelled, predicted) pairs of the misses, most frequent first. Secondary topics (when given) are scored
by precision: of the secondary tags given, the share an expert accepts (the labelled or an acceptable
topic), overall and per tag, so "a reader of agents gets agent papers only" is a number.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..errors import NewsletterError

REQUIRED = ("title", "topic")


@dataclass(frozen=True)
class Label:
    title: str
    topic: str
    acceptable: tuple[str, ...] = ()
    abstract: str = ""
    arxiv_id: str = ""
    day: str = ""

    @property
    def accepted(self) -> frozenset[str]:
        return frozenset((self.topic, *self.acceptable))


@dataclass(frozen=True)
class Miss:
    title: str
    topic: str
    predicted: str
    acceptable: tuple[str, ...]


@dataclass
class TopicAccuracy:
    topic: str
    papers: int = 0  # labelled with this primary topic
    correct: int = 0  # ... and placed in an acceptable topic
    predicted: int = 0  # placed in this topic
    predicted_correct: int = 0  # ... where it is acceptable

    @property
    def accuracy(self) -> float:
        """Recall: the share of this topic's papers placed acceptably."""
        return self.correct / self.papers if self.papers else 0.0

    recall = accuracy

    @property
    def precision(self) -> float:
        return self.predicted_correct / self.predicted if self.predicted else 0.0


@dataclass
class EvalReport:
    papers: int = 0
    correct: int = 0
    per_topic: dict[str, TopicAccuracy] = field(default_factory=dict)
    predicted: Counter[str] = field(default_factory=Counter)
    misses: list[Miss] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # labelled titles with no text to classify
    secondary: Counter[str] = field(default_factory=Counter)  # secondary tags given, per topic
    secondary_correct: Counter[str] = field(default_factory=Counter)  # ... of them acceptable
    secondary_misses: list[tuple[str, str]] = field(default_factory=list)  # (title, wrong secondary tag)

    @property
    def accuracy(self) -> float:
        return self.correct / self.papers if self.papers else 0.0

    @property
    def secondary_tags(self) -> int:
        return sum(self.secondary.values())

    @property
    def secondary_precision(self) -> float:
        """Of the secondary tags given, the share an expert accepts (0.0 when none were given)."""
        total = self.secondary_tags
        return sum(self.secondary_correct.values()) / total if total else 0.0

    def secondary_precision_of(self, topic: str) -> float:
        return self.secondary_correct[topic] / self.secondary[topic] if self.secondary[topic] else 0.0

    def other_share(self, fallback: str = "other") -> float:
        return self.predicted.get(fallback, 0) / self.papers if self.papers else 0.0

    def confusions(self) -> list[tuple[str, str, int]]:
        """(labelled, predicted, count) of the misses, most frequent first."""
        pairs = Counter((m.topic, m.predicted) for m in self.misses)
        return [(a, b, n) for (a, b), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))]


def read_labels(text: str, origin: str = "labels") -> list[Label]:
    """Parse a labels CSV; raises NewsletterError naming the line of a malformed row."""
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise NewsletterError(f"{origin}: no {', '.join(missing)} column.",
                              hint="the header must name title, topic and optionally acceptable and abstract")
    labels = []
    for number, row in enumerate(reader, start=2):
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        if not row.get("title") or not row.get("topic"):
            raise NewsletterError(f"{origin}, line {number}: a title and a topic are required.")
        acceptable = tuple(t.strip() for t in row.get("acceptable", "").split(";") if t.strip())
        labels.append(Label(row["title"], row["topic"], acceptable, row.get("abstract", ""),
                            row.get("arxiv_id", ""), row.get("day", "")))
    return labels


def unknown_topics(labels: Sequence[Label], slugs: Sequence[str]) -> list[str]:
    known = set(slugs)
    return sorted({t for label in labels for t in label.accepted if t not in known})


def score(labels: Sequence[Label], predictions: Mapping[int, str],
          secondary: Mapping[int, Sequence[str]] | None = None) -> EvalReport:
    """``predictions`` maps a label's index to the predicted primary topic (absent: no text was found);
    ``secondary`` (optional) to its secondary topics."""
    report = EvalReport()
    for i, label in enumerate(labels):
        if i not in predictions:
            report.missing.append(label.title)
            continue
        predicted = predictions[i]
        stats = report.per_topic.setdefault(label.topic, TopicAccuracy(label.topic))
        placed = report.per_topic.setdefault(predicted, TopicAccuracy(predicted))
        stats.papers += 1
        placed.predicted += 1
        report.papers += 1
        report.predicted[predicted] += 1
        if predicted in label.accepted:
            stats.correct += 1
            placed.predicted_correct += 1
            report.correct += 1
        else:
            report.misses.append(Miss(label.title, label.topic, predicted, label.acceptable))
        for tag in (secondary or {}).get(i, ()):
            report.secondary[tag] += 1
            if tag in label.accepted:
                report.secondary_correct[tag] += 1
            else:
                report.secondary_misses.append((label.title, tag))
    return report
