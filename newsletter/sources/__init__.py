"""Sources: one module per upstream, each a ``Source`` registered here by type name.

Adding a source is one file plus one entry in ``REGISTRY``. A source only reads and parses: it returns a
fully validated ``SourceBatch`` (or raises ``SourceError``/``ParseError``) and never touches the store, so a
malformed response can never leave half a batch behind.
"""

from __future__ import annotations

import importlib
from datetime import date
from typing import Any, ClassVar, Iterable, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import ConfigError
from ..models import SourceBatch


class SourceOptions(BaseModel):
    """Base of every source's options; unknown keys are errors so typos are caught at load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@runtime_checkable
class Source(Protocol):
    """Reads one upstream. ``fetch(day)`` returns what trended that day (today when ``day`` is None)."""

    name: str
    options_model: ClassVar[type[SourceOptions]]

    def fetch(self, day: date | None = None) -> SourceBatch: ...


# type name -> "module:Class", imported on first use so an unused source costs nothing at start-up.
REGISTRY: dict[str, str] = {
    "huggingface": "newsletter.sources.huggingface:HuggingFaceSource",
    "hf-page": "newsletter.sources.hf_page:SavedPageSource",
    "hf-json": "newsletter.sources.hf_json:JsonFileSource",
    "arxiv": "newsletter.sources.arxiv:ArxivSource",
    "rss": "newsletter.sources.rss:FeedSource",
}


def source_class(type_name: str) -> type[Any]:
    try:
        target = REGISTRY[type_name]
    except KeyError:
        raise ConfigError(
            f"Unknown source type {type_name!r}.", hint=f"use one of: {', '.join(sorted(REGISTRY))}"
        ) from None
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def validate_source_specs(specs: Iterable[Any], origin: str = "config") -> None:
    """Check every configured source's type and options at config load, naming the bad key."""
    for index, spec in enumerate(specs):
        where = f"{origin}: sources[{index}]"
        if spec.type not in REGISTRY:
            raise ConfigError(
                f"{where}.type: unknown source type {spec.type!r}",
                hint=f"use one of: {', '.join(sorted(REGISTRY))}",
            )
        try:
            source_class(spec.type).options_model.model_validate(spec.options)
        except ValidationError as exc:
            # A typo gives two errors (unknown key, missing key): name the unknown one first.
            errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
            lines = []
            for err in errors[:3]:
                key = ".".join(str(p) for p in err["loc"])
                msg = "unknown option for this source type" if err["type"] == "extra_forbidden" else err["msg"]
                lines.append(f"{where}.{key}: {msg}")
            options = ", ".join(source_class(spec.type).options_model.model_fields)
            raise ConfigError("\n  ".join(lines), hint=f"options of {spec.type}: {options}") from None


def build_source(spec: Any) -> Source:
    """Instantiate the configured source (a ``config.SourceSpec``)."""
    cls = source_class(spec.type)
    return cls(spec.label, cls.options_model.model_validate(spec.options))


def open_file_source(path: str, name: str | None = None) -> Source:
    """The right source for a local file: a saved Daily Papers page (text) or a JSON file in the API shape."""
    from pathlib import Path

    p = Path(path)
    head = p.read_bytes()[:64].lstrip() if p.is_file() else b""
    type_name = "hf-json" if p.suffix.lower() == ".json" or head[:1] in (b"[", b"{") else "hf-page"
    cls = source_class(type_name)
    return cls(name or type_name, cls.options_model.model_validate({"path": str(p)}))
