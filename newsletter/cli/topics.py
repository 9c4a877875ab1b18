"""``newsletter topics``: the topic sections, why a paper got its topic, reclassification and evaluation."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import NewsletterError, NotFound
from ..models import CADENCES, Paper
from . import Context, config_option, console, err_console, json_option, main, parse_day, print_json

BAR_THRESHOLD = 20  # fewer papers than this: no progress bar


def _bar(as_json: bool, total: int, label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err_console, transient=True, disable=as_json or total < BAR_THRESHOLD)


def _semantic_line(nl: Any) -> str:
    from .. import embeddings

    from ..classify import learned

    embedder = embeddings.default_embedder()
    trained = learned.shipped()
    model = f"learned model {trained.version}" if trained else "no learned model (rules only)"
    if embedder:
        return escape(f"{model}; semantic similarity: sentence embeddings ({embedder.name})")
    if trained and set(nl.settings.topic_slugs()) <= set(trained.topics):
        return escape(f"{model}; no similarity term: the learned model knows every topic "
                      f"(embeddings: {embeddings.unavailable_reason()})")
    return escape(f"{model}; semantic similarity: lexical TF-IDF model ({embeddings.unavailable_reason()})")


def _classify_stale(nl: Any, as_json: bool) -> int:
    """Reclassify papers classified with other topic settings (or never), with a bar when there are many."""
    stale = len(nl.store.unclassified_ids(nl.topic_fingerprint()))
    if not stale:
        return 0
    with _bar(as_json, stale, "classifying") as bar:
        task = bar.add_task("classify", total=stale)
        return int(nl.classify_new(progress=lambda n: bar.advance(task, n)))


@main.group("topics", cls=type(main), invoke_without_command=True)
@config_option
@click.option("--date", "day", metavar="YYYY-MM-DD", help="Last day of the window (default: today).")
@click.option("--cadence", type=click.Choice(CADENCES), default="daily", show_default=True,
              help="Whose window to count: daily or weekly.")
@json_option
@click.pass_context
def topics_group(ctx: click.Context, day: str | None, cadence: str, as_json: bool) -> None:
    """List the topics with how many papers of the current window each holds.

    "papers" counts the papers whose primary topic (their digest section) it is; "tagged" counts every
    paper carrying it, primary or secondary. Papers are reclassified first if the topic settings changed.

    Example: newsletter topics --date 2026-03-14 --json
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..diff import window_start

    obj: Context = ctx.obj
    nl = obj.nl
    reclassified = _classify_stale(nl, as_json)
    last = parse_day(day) or date.today()
    first = window_start(last, nl.settings.window_days(cadence))
    papers = nl.store.papers(since=first, until=last)
    primary = Counter(p.topic for p in papers)
    tagged = Counter(t for p in papers for t in set(p.topics or (p.topic,)))
    rows = [{"slug": t.slug, "name": t.name, "description": t.description,
             "papers": primary.get(t.slug, 0), "tagged": tagged.get(t.slug, 0)} for t in nl.settings.topics]
    unknown = sum(n for slug, n in primary.items() if slug not in {t.slug for t in nl.settings.topics})
    if as_json:
        print_json({"cadence": cadence, "window": [first, last], "papers": len(papers),
                    "reclassified": reclassified, "unassigned": unknown, "topics": rows})
        return
    table = Table("topic", "name", "papers", "tagged", "description", box=None, header_style="bold")
    for r in rows:
        table.add_row(r["slug"], r["name"], str(r["papers"]), str(r["tagged"]), r["description"])
    console.print(table)
    console.print(f"[dim]{len(papers)} papers trending {first} … {last} ({cadence} window); "
                  f"{_semantic_line(nl)}[/dim]")
    if reclassified:
        console.print(f"[dim]reclassified {reclassified} papers: the topic settings changed[/dim]")
    if not papers:
        console.print("[dim]no papers in this window: pass --date, or run `newsletter fetch`[/dim]")


@topics_group.command("explain")
@config_option
@click.argument("paper")
@json_option
@click.pass_obj
def explain(obj: Context, paper: str, as_json: bool) -> None:
    """Show why a paper got its topic: every topic's score and the evidence behind it.

    PAPER is an id, a key (arxiv:2401.01234), a bare arXiv id or an exact title.

    Example: newsletter topics explain 2401.01234
    """
    from .. import topics

    nl = obj.nl
    found = nl.store.paper(paper)
    vectors = nl.paper_vectors([found])
    result = topics.classify([found], nl.settings.topics, vectors, explain=True)[found.id]
    ranked = sorted(result.details.items(), key=lambda kv: -kv[1].total)
    if as_json:
        print_json({"id": found.id, "title": found.title,
                    "stored": {"topic": found.topic, "topics": found.topics},
                    "topic": result.primary, "topics": result.topics, "semantic_model": result.semantic_model,
                    "fallback_threshold": topics.MIN_TOTAL,
                    "scores": [{"topic": slug, **_detail(d)} for slug, d in ranked]})
        return
    console.print(found.title, markup=False, style="bold")
    console.print(f"topic: [bold]{result.primary}[/bold]   tags: {', '.join(result.topics[1:]) or '—'}")
    if found.topic and (found.topic, found.topics) != (result.primary, result.topics):
        console.print(f"[yellow]stored: {found.topic} ({', '.join(found.topics)}); "
                      "run `newsletter topics reclassify` to update[/yellow]")
    if result.primary == topics.FALLBACK:
        console.print(f"no topic reached {topics.MIN_TOTAL:g} points, so it goes to '{topics.FALLBACK}'")
    console.print(f"[dim]{_semantic_line(nl)}[/dim]")
    table = Table("topic", "total", "rules", "similarity", "evidence", box=None, header_style="bold")
    for slug, d in ranked:
        evidence = f"excluded by {d.excluded_by!r}" if d.excluded_by else ", ".join(d.matched[:8]) + (
            f", … {len(d.matched) - 8} more" if len(d.matched) > 8 else "")
        table.add_row(slug, f"{d.total:.1f}", f"{d.rules:.1f}", f"{d.similarity:.3f} (+{d.semantic:.1f})",
                      evidence)
    console.print(table)


def _detail(d: Any) -> dict[str, Any]:
    return {"total": d.total, "rules": d.rules, "similarity": d.similarity, "semantic_points": d.semantic,
            "matched": list(d.matched), "excluded_by": d.excluded_by}


@topics_group.command("reclassify")
@config_option
@json_option
@click.pass_obj
def reclassify(obj: Context, as_json: bool) -> None:
    """Classify every stored paper again with the current topic settings.

    Runs by itself when the topic settings change (at the next fetch, import, digest or `newsletter
    topics`); run it by hand after editing the classifier.

    Example: newsletter topics reclassify --json
    """
    nl = obj.nl
    before = {p.id: p.topic for p in nl.store.papers()}
    with _bar(as_json, len(before), "classifying") as bar:
        task = bar.add_task("classify", total=len(before))
        count = nl.reclassify(progress=lambda n: bar.advance(task, n))
    after = nl.store.papers()
    changed = sum(1 for p in after if before.get(p.id) != p.topic)
    by_topic = Counter(p.topic for p in after)
    out = {"papers": count, "changed": changed,
           "topics": dict(sorted(by_topic.items(), key=lambda kv: -kv[1]))}
    if as_json:
        print_json(out)
        return
    console.print(f"[green]✓[/green] classified {count} papers; {changed} changed topic")
    console.print("  " + ", ".join(f"{slug} {n}" for slug, n in out["topics"].items()))


@topics_group.command("eval")
@config_option
@click.argument("labels", type=click.Path(exists=True, dir_okay=False))
@click.option("--papers", "papers", multiple=True, type=click.Path(exists=True),
              help="A saved Daily Papers API response (or a folder of them) holding the labelled papers' texts.")
@click.option("--misses/--no-misses", default=False, help="List the papers classified wrongly.")
@json_option
@click.pass_obj
def eval_(obj: Context, labels: str, papers: tuple[str, ...], misses: bool, as_json: bool) -> None:
    """Measure the classifier against hand labels: precision and recall per topic, confusions, share of 'other'.

    LABELS is a CSV with columns title, topic, acceptable (';'-separated, may be empty) and optionally
    abstract, arxiv_id and day. A prediction counts as right when it is the topic or one of the acceptable
    ones. Recall of a topic: of its labelled papers, the share placed acceptably; precision: of the papers
    placed in it, the share where it is acceptable. A paper's text comes from its abstract column, else
    --papers (matched by arXiv id, then title), else the store, else the bundled sample pages.

    Example: newsletter topics eval tests/data/topic_labels_real_test.csv --papers ../shared/data/real/hf-api-days
    """
    from .. import labelled, topics
    from ..classify import evaluate

    nl = obj.nl
    rows = evaluate.read_labels(Path(labels).read_text(encoding="utf-8"), origin=labels)
    unknown = evaluate.unknown_topics(rows, nl.settings.topic_slugs())
    if unknown:
        raise NewsletterError(f"{labels} names topics not in the settings: {', '.join(unknown)}.",
                              hint="label with the slugs of config.yaml's topics (see `newsletter topics`)")
    indexes = [labelled.daily_papers(p) for p in papers]
    found = labelled.resolve(rows, indexes, nl.store, [labelled.sample_index()])
    predictions: dict[int, str] = {}
    secondary: dict[int, tuple[str, ...]] = {}
    with _bar(as_json, len(found), "classifying") as bar:
        task = bar.add_task("classify", total=len(found))
        for chunk in _chunks(list(found.items()), 32):
            chunk_papers = [p for _, p in chunk]
            result = topics.classify(chunk_papers, nl.settings.topics, _vectors(nl, chunk_papers))
            predictions.update({i: result[p.id].primary for i, p in chunk})
            secondary.update({i: result[p.id].topics[1:] for i, p in chunk})
            bar.advance(task, len(chunk))
    report = evaluate.score(rows, predictions, secondary)
    other = report.other_share(topics.FALLBACK)
    per_topic = sorted(report.per_topic.values(), key=lambda t: t.topic)
    if as_json:
        print_json({"labels": labels, "papers": report.papers, "correct": report.correct,
                    "accuracy": round(report.accuracy, 4), "other_share": round(other, 4),
                    "semantic_model": _model_name(),
                    "per_topic": {t.topic: {"papers": t.papers, "correct": t.correct,
                                            "recall": round(t.recall, 4), "accuracy": round(t.accuracy, 4),
                                            "predicted": t.predicted, "precision": round(t.precision, 4)}
                                  for t in per_topic},
                    "confusions": [{"labelled": a, "predicted": b, "papers": n} for a, b, n in report.confusions()],
                    "secondary": {"tags": report.secondary_tags,
                                  "correct": sum(report.secondary_correct.values()),
                                  "precision": round(report.secondary_precision, 4),
                                  "per_topic": {t: {"tags": n, "precision": round(report.secondary_precision_of(t), 4)}
                                                for t, n in sorted(report.secondary.items())}},
                    "predicted": dict(report.predicted), "missing": report.missing,
                    "misses": [m.__dict__ for m in report.misses]})
        return
    table = Table("topic", "labelled", "recall", "placed", "precision", "secondary", "its precision",
                  box=None, header_style="bold")
    for t in per_topic:
        tags = report.secondary[t.topic]
        table.add_row(t.topic, str(t.papers), f"{t.recall:.1%}" if t.papers else "—",
                      str(t.predicted), f"{t.precision:.1%}" if t.predicted else "—",
                      str(tags), f"{report.secondary_precision_of(t.topic):.1%}" if tags else "—")
    console.print(table)
    console.print(f"[bold]overall accuracy: {report.accuracy:.1%}[/bold] "
                  f"({report.correct} of {report.papers} papers); "
                  f"{report.predicted.get(topics.FALLBACK, 0)} put in '{topics.FALLBACK}' ({other:.1%})")
    console.print(f"secondary topics: {report.secondary_tags} tags on {report.papers} papers, "
                  f"{sum(report.secondary_correct.values())} acceptable ({report.secondary_precision:.1%} precision)")
    confusions = report.confusions()
    if confusions:
        console.print("confusions (labelled → predicted): " + ", ".join(
            f"{a} → {b} {n}" for a, b, n in confusions[:12]) + (
            f", … {len(confusions) - 12} more pairs" if len(confusions) > 12 else ""), markup=False)
    console.print(f"[dim]{_semantic_line(nl)}[/dim]")
    if report.missing:
        console.print(f"[yellow]{len(report.missing)} labelled papers not found (no abstract column, "
                      "not in --papers, the store nor the sample pages)[/yellow]")
    if misses:
        for m in report.misses:
            console.print(f"  ✗ {m.title} — labelled {m.topic}, got {m.predicted}", markup=False)
        for title, tag in report.secondary_misses:
            console.print(f"  ✗ {title} — secondary tag {tag} not acceptable", markup=False)


def _model_name() -> str:
    from .. import embeddings, topics

    embedder = embeddings.default_embedder()
    return embedder.name if embedder else topics.LEXICAL


def _vectors(nl: Any, papers: list[Paper]) -> Any:
    """Embeddings when the extra is installed: cached ones for stored papers, computed for the others."""
    from .. import embeddings, topics

    embedder = embeddings.default_embedder()
    if embedder is None:
        return None
    stored = [p for p in papers if p.id > 0]
    vectors = nl.paper_vectors(stored, embedder)
    others = [p for p in papers if p.id <= 0]
    if others:
        computed = embedder.embed([topics.paper_text(p) for p in others])
        extra = dict(zip((p.id for p in others), computed, strict=True))
        vectors = topics.Vectors(vectors.model, vectors.topics, {**vectors.papers, **extra})
    return vectors


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

