"""Generated readers for the scale benchmarks: mixed topics, cadences and excluded keywords, streamed.

``reader_specs(n, topic_slugs)`` yields ``n`` reader specs (dicts for ``Store.import_subscribers``) without
holding them: about 80% daily and 20% weekly; 40% follow every topic, the others pick 1-3 topics; 5% exclude a
keyword. The chosen topics come from a palette of 40 combinations picked with Zipf-like weights (a few
are popular, most are rare), as readers of a real list choose. Deterministic (seeded), so two runs plan
the same editions.

Example::

    from _readers import reader_specs
    store.import_subscribers(reader_specs(100_000, nl.settings.topic_slugs()))
"""

from __future__ import annotations

import random
from typing import Any, Iterator, Sequence

KEYWORDS = ("benchmark", "survey", "robotics", "medical", "diffusion")


def reader_specs(n: int, topic_slugs: Sequence[str], seed: int = 12, domain: str = "example.org",
                 start: int = 0) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    slugs = list(topic_slugs)
    palette = [rng.sample(slugs, k=min(len(slugs), 1 + j % 3)) for j in range(40)]
    weights = [1 / (j + 1) for j in range(len(palette))]
    for i in range(start, start + n):
        topics = None if rng.random() < 0.4 else rng.choices(palette, weights)[0]
        yield {"email": f"reader{i:07d}@{domain}", "cadence": "weekly" if rng.random() < 0.2 else "daily",
               "topics": topics, "excluded_keywords": [rng.choice(KEYWORDS)] if rng.random() < 0.05 else [],
               "name": f"Reader {i}" if i % 3 else None}
