"""The web app: subscribe, confirm, preferences, one-click unsubscribe, the archive and its feeds, a JSON API."""

from .app import create_app

__all__ = ["create_app"]
