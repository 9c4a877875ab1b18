"""Evaluation of the classifier against hand labels (``newsletter topics eval LABELS``). Pure.

A labels file is CSV with the columns ``title``, ``topic`` (the primary topic an expert picks) and
``acceptable`` (other topics an expert would also accept as primary, ``;``-separated, may be empty),
and optionally ``abstract``. A prediction is right when the predicted primary topic is the labelled
topic or one of the acceptable ones.
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
    papers: int = 0
    correct: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.papers if self.papers else 0.0


@dataclass
class EvalReport:
    papers: int = 0
    correct: int = 0
    per_topic: dict[str, TopicAccuracy] = field(default_factory=dict)
    predicted: Counter[str] = field(default_factory=Counter)
    misses: list[Miss] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # labelled titles with no text to classify

    @property
    def accuracy(self) -> float:
        return self.correct / self.papers if self.papers else 0.0


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
        labels.append(Label(row["title"], row["topic"], acceptable, row.get("abstract", "")))
    return labels


def unknown_topics(labels: Sequence[Label], slugs: Sequence[str]) -> list[str]:
    known = set(slugs)
    return sorted({t for label in labels for t in label.accepted if t not in known})


def score(labels: Sequence[Label], predictions: Mapping[int, str]) -> EvalReport:
    """``predictions`` maps a label's index to the predicted primary topic (absent: no text was found)."""
    report = EvalReport()
    for i, label in enumerate(labels):
        if i not in predictions:
            report.missing.append(label.title)
            continue
        predicted = predictions[i]
        stats = report.per_topic.setdefault(label.topic, TopicAccuracy(label.topic))
        stats.papers += 1
        report.papers += 1
        report.predicted[predicted] += 1
        if predicted in label.accepted:
            stats.correct += 1
            report.correct += 1
        else:
            report.misses.append(Miss(label.title, label.topic, predicted, label.acceptable))
    return report
