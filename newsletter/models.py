"""Plain data passed between the pipeline's stages, and the rules of paper identity. No I/O here.

sources → store → diff → topics → render → deliver: each stage takes and returns these types.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from urllib.parse import urlencode

# --- status constants -------------------------------------------------------------------------------

CADENCES = ("daily", "weekly")

SUBSCRIBER_PENDING = "pending"  # signed up, not yet confirmed (double opt-in)
SUBSCRIBER_ACTIVE = "active"
SUBSCRIBER_UNSUBSCRIBED = "unsubscribed"
SUBSCRIBER_BOUNCED = "bounced"
SUBSCRIBER_STATUSES = (SUBSCRIBER_PENDING, SUBSCRIBER_ACTIVE, SUBSCRIBER_UNSUBSCRIBED, SUBSCRIBER_BOUNCED)

DELIVERY_PENDING = "pending"
DELIVERY_CLAIMED = "claimed"
DELIVERY_SENT = "sent"
DELIVERY_RETRY = "retry"
DELIVERY_FAILED = "failed"
DELIVERY_SUPPRESSED = "suppressed"
DELIVERY_CANCELLED = "cancelled"  # its edition was cancelled before it went out
DELIVERY_STATES = (
    DELIVERY_PENDING,
    DELIVERY_CLAIMED,
    DELIVERY_SENT,
    DELIVERY_RETRY,
    DELIVERY_FAILED,
    DELIVERY_SUPPRESSED,
    DELIVERY_CANCELLED,
)
# An edition's state: its deliveries go out only while it is active; a paused one waits for `edition resume`
# (the scheduler does not resume it), a cancelled one is over and its unsent papers stay eligible.
EDITION_ACTIVE, EDITION_PAUSED, EDITION_CANCELLED = "active", "paused", "cancelled"
EDITION_STATES = (EDITION_ACTIVE, EDITION_PAUSED, EDITION_CANCELLED)
# A paper in a delivery in one of these states is taken: it was sent, or is on its way, so no later
# digest may carry it. A failed, suppressed or cancelled delivery gives its papers back (they carry over), and so
# does any delivery not sent of a cancelled edition.
TAKEN_DELIVERY_STATES = (DELIVERY_PENDING, DELIVERY_CLAIMED, DELIVERY_SENT, DELIVERY_RETRY)


# --- identity --------------------------------------------------------------------------------------

# New-style arXiv ids (0704.0001 onwards: YYMM.NNNN or YYMM.NNNNN) and old-style (hep-th/9901001),
# optionally with a version suffix and an "arXiv:" prefix.
_ARXIV_NEW = re.compile(r"(?<![\w.])(?:arxiv:)?(\d{4}\.\d{4,5})(?:v\d+)?(?![\w])", re.I)
_ARXIV_OLD = re.compile(r"(?<![\w.])(?:arxiv:)?([a-z][a-z.-]+/\d{7})(?:v\d+)?(?![\w])", re.I)


def normalize_arxiv_id(value: str | None) -> str | None:
    """The bare arXiv id without version, or None when ``value`` holds none.

    Accepts ``2401.01234v2``, ``arXiv:2401.01234``, ``https://arxiv.org/abs/2401.01234v3`` and
    ``https://huggingface.co/papers/2401.01234``.

    >>> normalize_arxiv_id("https://arxiv.org/pdf/2401.01234v2")
    '2401.01234'
    """
    if not value:
        return None
    for pattern in (_ARXIV_NEW, _ARXIV_OLD):
        match = pattern.search(value.strip())
        if match:
            return match.group(1).lower() if "/" in match.group(1) else match.group(1)
    return None


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def normalize_title(title: str) -> str:
    """A title reduced to what identifies it: case, accents' composition, punctuation and spacing ignored.

    Symbols are kept, so distinct papers with similar titles stay distinct:

    >>> normalize_title("VBench++: Comprehensive  Benchmark") == normalize_title("VBench: Comprehensive Benchmark")
    False
    >>> normalize_title("Dr.LLM:  Dynamic Layer Routing") == normalize_title("Dr. LLM - dynamic layer routing.")
    True
    """
    text = unicodedata.normalize("NFKC", title).translate(_QUOTES).casefold()
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if category.startswith("P") or category.startswith("Z") or ch.isspace():
            out.append(" ")
        elif category.startswith("C"):  # control and format characters (zero-width etc.) vanish
            continue
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def title_search_url(title: str) -> str:
    """arXiv's search for a paper by its title (for a paper known only by its title).

    >>> title_search_url("Dr.LLM: Dynamic Layer Routing")
    'https://arxiv.org/search/?query=Dr.LLM%3A+Dynamic+Layer+Routing&searchtype=title'
    """
    return "https://arxiv.org/search/?" + urlencode({"query": " ".join(title.split()), "searchtype": "title"})


def paper_key(arxiv_id: str | None, title: str) -> str:
    """The stable key of a paper: ``arxiv:<id>`` when the arXiv id is known, else ``title:<normalised>``."""
    bare = normalize_arxiv_id(arxiv_id)
    return f"arxiv:{bare}" if bare else f"title:{normalize_title(title)}"


# --- what sources produce ----------------------------------------------------------------------------


@dataclass
class FetchedPaper:
    """One entry as a source saw it. Only ``title`` is required; everything else is enrichment."""

    title: str
    abstract: str = ""
    arxiv_id: str | None = None
    authors: list[str] = field(default_factory=list)
    author_count: int | None = None  # when the source gives only "N authors"
    organization: str | None = None
    published: date | None = None
    upvotes: int | None = None
    num_comments: int | None = None
    ai_summary: str | None = None
    ai_keywords: list[str] = field(default_factory=list)
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    thumbnail: str | None = None
    url: str | None = None  # the paper's page at the source
    rank: int | None = None  # 1-based position in the source's listing that day

    def __post_init__(self) -> None:
        self.arxiv_id = normalize_arxiv_id(self.arxiv_id)
        self.title = " ".join(self.title.split())

    @property
    def key(self) -> str:
        return paper_key(self.arxiv_id, self.title)


@dataclass
class SourceBatch:
    """Everything one source returned for one trending day, parsed and validated before any write."""

    source: str  # the configured source name, e.g. "huggingface"
    trending_date: date
    papers: list[FetchedPaper]
    skipped: list[str] = field(default_factory=list)  # one line per entry left out, saying why
    withdrawn: list[str] = field(default_factory=list)  # arXiv ids the source reports withdrawn


# --- what the store hands to the pure stages ---------------------------------------------------------


@dataclass(frozen=True)
class Paper:
    """A stored paper, enriched across sources and days."""

    id: int
    key: str
    title: str
    abstract: str
    arxiv_id: str | None = None
    authors: tuple[str, ...] = ()
    author_count: int | None = None
    organization: str | None = None
    published: date | None = None
    upvotes: int | None = None
    num_comments: int | None = None
    ai_summary: str | None = None
    ai_keywords: tuple[str, ...] = ()
    github_repo: str | None = None
    github_stars: int | None = None
    project_page: str | None = None
    thumbnail: str | None = None
    url: str | None = None
    topic: str | None = None
    topics: tuple[str, ...] = ()
    first_trending: date | None = None  # first day any source saw it trending
    last_trending: date | None = None
    best_rank: int | None = None

    @property
    def page_url(self) -> str:
        """The Hugging Face paper page when known, else the arXiv abstract, else what the source linked, else
        a search for the title on arXiv: a card is never dead text (papers from a saved page carry no link)."""
        if self.arxiv_id:
            if self.url and "huggingface.co/papers/" in self.url:
                return self.url
            return f"https://arxiv.org/abs/{self.arxiv_id}"
        return self.url or title_search_url(self.title)

    @property
    def pdf_url(self) -> str | None:
        return f"https://arxiv.org/pdf/{self.arxiv_id}" if self.arxiv_id else None


@dataclass(frozen=True)
class Subscriber:
    id: int
    email: str
    status: str
    cadence: str
    topics: tuple[str, ...] | None = None  # None: every topic
    excluded_keywords: tuple[str, ...] = ()
    name: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class EditionSummary:
    id: int
    cadence: str
    period: str
    subject: str
    created_at: datetime
    paper_count: int
    deliveries: dict[str, int]  # state -> count


# --- what the topics stage hands to rendering ----------------------------------------------------------


@dataclass(frozen=True)
class ForYou:
    """A paper of a reader's "For you" block and why it is there ("Because you liked …", or empty)."""

    paper: Paper
    reason: str = ""


@dataclass(frozen=True)
class TopicSection:
    """One section of a digest: a topic and its papers, best first."""

    slug: str
    name: str
    papers: tuple[Paper, ...]
    total: int  # the reader's papers of this topic before the caps (total > len(papers): "N more" in the web copy;
    # papers may be empty when the caps cut them all: the section is still named, with its link)


@dataclass(frozen=True)
class DigestContent:
    """The grouped, ranked content of one digest: what every reader who gets these papers sees."""

    cadence: str
    period: str
    day: date
    top: tuple[Paper, ...]  # the "Top papers" highlight (also present in their sections)
    sections: tuple[TopicSection, ...]
    omitted: int = 0  # papers left out by the per-digest cap (linked on the web instead)
    # The reader's "For you" block (issue 15: their own model ranked these first), each with its one-line
    # reason; their sections show them as a one-line reference, like the top papers. Empty for shared digests.
    for_you: tuple["ForYou", ...] = ()

    @property
    def papers(self) -> tuple[Paper, ...]:
        """Every paper of the digest once, in section order."""
        return tuple(p for s in self.sections for p in s.papers)

    @property
    def paper_count(self) -> int:
        return sum(len(s.papers) for s in self.sections)

    @property
    def topic_count(self) -> int:
        """Sections with at least one paper shown (``render.email_counts`` is what the email says)."""
        return sum(1 for s in self.sections if s.papers)
