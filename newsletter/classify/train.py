"""Train the learned topic model from hand labels and write ``topic_model.json.gz``. Needs numpy.

    pip install numpy
    python -m newsletter.classify.train tests/data/topic_labels_real_dev.csv tests/data/topic_labels.csv \\
        tests/data/topic_labels_heldout.csv --papers ../shared/data/real/hf-api-days

Trains on the labels given (keep the test labels out), then prints a cross-validated accuracy by day group
so the figure is not the training fit. The written file holds feature weights only, never texts. A paper's
target is its labelled topic, with a smaller share for each other acceptable topic (``--acceptable-share``),
so the model learns second choices too; those drive the secondary topics.

This is a development tool: it reads files (labels, saved responses), unlike the rest of ``classify``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from . import learned

DEFAULT_L2 = 3e-4
DEFAULT_SHARE = 0.3
DEFAULT_ITERATIONS = 400
MIN_DF = 2


@dataclass(frozen=True)
class Example:
    features: frozenset[str]
    topic: str
    acceptable: tuple[str, ...]
    group: str  # the listing day (or the labels file), for cross-validation by group
    values: Mapping[str, float] = field(default_factory=dict)  # real-valued features (none shipped yet)
    paper: Any = field(default=None, compare=False)  # the labelled Paper, for cross-validating the classifier
    by_day: bool = False  # group is a listing day (folded in cross-validation), not a whole labels file


def paper_features(paper) -> frozenset[str]:  # type: ignore[no-untyped-def]
    return frozenset(learned.features(paper.title, paper.abstract or "", paper.ai_keywords,
                                      paper.ai_summary or "", paper.organization, bool(paper.github_repo)))


def load_examples(label_files: Sequence[str], papers: Sequence[str]) -> list[Example]:
    from .. import labelled
    from .evaluate import read_labels

    indexes = [labelled.daily_papers(p) for p in papers]
    sample = [labelled.sample_index()]
    out: list[Example] = []
    for path in label_files:
        rows = read_labels(Path(path).read_text(encoding="utf-8"), origin=path)
        found = labelled.resolve(rows, indexes, None, sample)
        missing = len(rows) - len(found)
        if missing:
            print(f"{path}: {missing} labelled papers have no text; left out", file=sys.stderr)
        for i, paper in found.items():
            row = rows[i]
            paper = replace(paper, id=-(len(out) + 1))  # unique across the files (resolve numbers per file)
            out.append(Example(paper_features(paper), row.topic, row.acceptable, row.day or Path(path).name,
                               paper=paper, by_day=bool(row.day)))
    return out


def fit(examples: Sequence[Example], topics: Sequence[str], l2: float = DEFAULT_L2,
        share: float = DEFAULT_SHARE, iterations: int = DEFAULT_ITERATIONS,
        min_df: int = MIN_DF, norm: bool = False) -> tuple[list[float], dict[str, list[float]]]:
    """Softmax regression with an L2 penalty, full-batch Adam. Returns (bias, {feature: weights}).

    The design matrix is sparse (a paper has a few hundred of the tens of thousands of features): kept as
    (row, column, value) arrays, multiplied by gathers and ``np.add.reduceat``, so a fit takes seconds."""
    import numpy as np

    df = Counter(f for ex in examples for f in ex.features)
    df.update(f for ex in examples for f in ex.values)
    vocab = sorted(f for f, n in df.items() if n >= min_df)
    col = {f: j for j, f in enumerate(vocab)}
    index = {t: k for k, t in enumerate(topics)}
    rows_, cols_, vals_ = [], [], []
    y = np.zeros((len(examples), len(topics)), dtype=np.float64)
    for i, ex in enumerate(examples):
        value = learned.feature_scale(len(ex.features)) if norm else 1.0
        for f in sorted(ex.features):  # sorted: the sums (and the rounded weights) do not depend on hash order
            j = col.get(f)
            if j is not None:
                rows_.append(i), cols_.append(j), vals_.append(value)
        for f, v in ex.values.items():
            j = col.get(f)
            if j is not None and v:
                rows_.append(i), cols_.append(j), vals_.append(v)
        y[i, index[ex.topic]] = 1.0
        for t in ex.acceptable:
            if t in index and t != ex.topic:
                y[i, index[t]] = share
        y[i] /= y[i].sum()
    r = np.asarray(rows_, dtype=np.int64)  # entries in row order (appended paper by paper)
    c = np.asarray(cols_, dtype=np.int64)
    v = np.asarray(vals_, dtype=np.float64)[:, None]
    order = np.argsort(c, kind="stable")  # for the transposed product: entries grouped by column
    rc, vc = r[order], v[order]

    def reduce(contrib, keys, size):  # sums of the rows of contrib that share a key (keys sorted)
        starts = np.searchsorted(keys, np.arange(size + 1))
        out = np.zeros((size, contrib.shape[1]))
        filled = starts[:-1] < starts[1:]
        if len(contrib):
            out[filled] = np.add.reduceat(contrib, starts[:-1][filled], axis=0)
        return out

    def times(w):  # x @ w
        return reduce(v * w[c], r, len(examples))

    def transposed(g):  # x.T @ g
        return reduce(vc * g[rc], c[order], len(vocab))

    w = np.zeros((len(vocab), len(topics)))
    b = np.zeros(len(topics))
    state = [np.zeros_like(w), np.zeros_like(w), np.zeros_like(b), np.zeros_like(b)]
    rate, beta1, beta2, eps = 0.05, 0.9, 0.999, 1e-8
    n = float(len(examples))
    for step in range(1, iterations + 1):
        z = times(w) + b
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - y) / n
        gw = transposed(g) + l2 * w
        gb = g.sum(axis=0)
        for grad, m, v2, param in ((gw, state[0], state[1], w), (gb, state[2], state[3], b)):
            m *= beta1
            m += (1 - beta1) * grad
            v2 *= beta2
            v2 += (1 - beta2) * grad * grad
            param -= rate * (m / (1 - beta1 ** step)) / (np.sqrt(v2 / (1 - beta2 ** step)) + eps)
    # Softmax is unchanged by a constant added to every topic's weight of a feature: centre each row, so
    # small weights can be dropped without shifting the others.
    w -= w.mean(axis=1, keepdims=True)
    b -= b.mean()
    return [float(x) for x in b], {f: [float(x) for x in w[j]] for f, j in col.items()}


def model_from(topics: Sequence[str], bias: Sequence[float], weights: dict[str, list[float]],
               version: str) -> learned.LearnedModel:
    return learned.decode(learned.encode(topics, bias, weights, version))


@dataclass(frozen=True)
class CrossValidation:
    papers: int
    learned_alone: float  # accuracy of the learned model's top topic
    classifier: float | None  # accuracy of the whole classifier (model + rules), when topics were given
    other_share: float | None = None
    secondary_tags: int = 0
    secondary_precision: float | None = None


def cross_validate(examples: Sequence[Example], topics: Sequence[str], folds: int = 4,
                   settings_topics: Sequence[Any] | None = None, **options: Any) -> CrossValidation:
    """Accuracy (prediction among the acceptable topics) with listing days held out, ``folds`` times.

    Only examples whose group is a day (``by_day``) are folded and scored; the others (labels files without
    days, e.g. the sample pages) always stay in training. With ``settings_topics`` (the configured Topic
    objects) the whole classifier is scored too, as it ships: the fold's model plus the phrase rules."""
    from .. import topics as classifier

    dated = [ex for ex in examples if ex.by_day] or list(examples)
    groups = sorted({ex.group for ex in dated})
    learned_ok = full_ok = others = tags = tags_ok = total = 0
    for k in range(folds):
        held = set(groups[k::folds])
        train = [ex for ex in examples if ex.group not in held]
        test = [ex for ex in dated if ex.group in held]
        bias, weights = fit(train, topics, **options)
        model = model_from(topics, bias, weights, "cv")
        for ex in test:
            logits = model.logits(ex.features)
            learned_ok += max(logits, key=logits.__getitem__) in (ex.topic, *ex.acceptable)
            total += 1
        if settings_topics is not None and all(ex.paper is not None for ex in test):
            result = classifier.classify([ex.paper for ex in test], settings_topics, trained=model)
            for ex in test:
                got = result[ex.paper.id]
                full_ok += got.primary in (ex.topic, *ex.acceptable)
                others += got.primary == classifier.FALLBACK
                tags += len(got.topics) - 1
                tags_ok += sum(t in (ex.topic, *ex.acceptable) for t in got.topics[1:])
    if not total:
        return CrossValidation(0, 0.0, None)
    if settings_topics is None:
        return CrossValidation(total, learned_ok / total, None)
    return CrossValidation(total, learned_ok / total, full_ok / total, others / total, tags,
                           tags_ok / tags if tags else None)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labels", nargs="+", help="Labels CSV files to train on (never the test split).")
    parser.add_argument("--papers", action="append", default=[],
                        help="A Daily Papers JSON file or folder holding the labelled papers' texts.")
    parser.add_argument("--config", default="config.yaml", help="Whose topics to train for (default: config.yaml).")
    parser.add_argument("--out", default=str(Path(__file__).with_name(learned.MODEL_FILE)))
    parser.add_argument("--l2", type=float, default=DEFAULT_L2)
    parser.add_argument("--acceptable-share", type=float, default=DEFAULT_SHARE)
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS)
    parser.add_argument("--cv", type=int, default=4, help="Cross-validation folds by day group (0: none).")
    args = parser.parse_args(argv)
    from .. import config

    settings_topics = config.load(args.config).topics
    topics = [t.slug for t in settings_topics]
    examples = load_examples(args.labels, args.papers)
    unknown = sorted({t for ex in examples for t in (ex.topic, *ex.acceptable)} - set(topics))
    if unknown:
        parser.error(f"labels name topics not in {args.config}: {', '.join(unknown)}")
    options = {"l2": args.l2, "share": args.acceptable_share, "iterations": args.iterations}
    print(f"{len(examples)} labelled papers, {len({ex.group for ex in examples})} groups, {len(topics)} topics")
    if args.cv:
        cv = cross_validate(examples, topics, args.cv, settings_topics, **options)
        print(f"cross-validation, {args.cv} folds by day, {cv.papers} papers of dated labels held out in turn:")
        print(f"  learned model alone: {cv.learned_alone:.1%} acceptable")
        if cv.classifier is not None:
            print(f"  classifier (model + rules): {cv.classifier:.1%} acceptable, {cv.other_share:.1%} in other, "
                  f"{cv.secondary_tags} secondary tags"
                  + (f", {cv.secondary_precision:.1%} acceptable" if cv.secondary_precision is not None else ""))
    bias, weights = fit(examples, topics, **options)
    digest = hashlib.sha256(learned.encode(topics, bias, weights, "")).hexdigest()[:12]  # of the weights
    blob = learned.encode(topics, bias, weights, digest)
    Path(args.out).write_bytes(blob)
    kept = len(learned.decode(blob).weights)
    print(f"wrote {args.out}: {kept} features, {len(blob) / 1024:.0f} KiB, version {digest}")


if __name__ == "__main__":
    main()
