"""The pages of a card's links and the reader's signals (issue 15).

- ``GET /more/TOKEN`` and ``/fewer/TOKEN``: one button, nothing recorded (mail scanners fetch every link).
- ``POST`` to the same URL, no cookie or CSRF token needed (the signed card token is the authentication, as in
  the one-click unsubscribe): the signal is recorded and the page says what changes. Repeating it changes
  nothing.
- ``GET /r/TOKEN`` (``tracking.clicks``): the click is recorded as a weak positive and the reader is sent to
  the paper's own stored link; never to a URL taken from the request.
- ``POST /preferences/signals``: remove one signal or all (CSRF-checked, with the preferences token);
  ``POST /preferences/seeds``: arXiv ids pasted, or a BibTeX / CSL JSON file uploaded, become seeds.

Every bad token gets the app's one "this link is not valid" page (400).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ..relevance.seeds import MAX_SEED_BYTES, InvalidSeeds
from ..relevance.signals import ACTIONS, Feedback
from ..render.textfilters import safe_url
from ..subscriptions import InvalidLink
from .pages import checked_form, page, read_form, web_of
from .app import Web

router = APIRouter(include_in_schema=False)


def feedback_of(web: Web) -> Feedback:
    found = getattr(web, "_feedback", None)
    if found is None:
        found = Feedback(web.store, web.subscriptions.key, web.subscriptions.clock)
        object.__setattr__(web, "_feedback", found)
    return found


def _signal_page(web: Web, request: Request, state: str, action: str, token: str, reader: Any, paper: Any,
                 status: int = 200) -> Response:
    links = web.subscriptions.tokens_for(reader.id)
    return web.render(request, "signal.html", {"state": state, "action": action, "token": token, "reader": reader,
                                               "paper": paper, "links": links}, status=status, private=True)


def _action(action: str) -> str:
    if action not in ACTIONS:
        raise InvalidLink()
    return ACTIONS[action]


@page("/more/{token}")
@page("/fewer/{token}")
def signal_page(request: Request, token: str) -> Response:
    """One button; nothing is recorded on a GET."""
    web = web_of(request)
    action = _action(request.url.path.split("/")[1])
    reader, paper = feedback_of(web).card(token)
    return _signal_page(web, request, "ask", action, token, reader, paper)


@router.post("/more/{token}")
@router.post("/fewer/{token}")
async def signal(request: Request, token: str) -> Response:
    web = web_of(request)
    action = _action(request.url.path.split("/")[1])
    await read_form(request)  # the button's empty form; no cookie, no CSRF token: the signed token authenticates
    reader, paper, _changed = await run_in_threadpool(feedback_of(web).record, token, action)
    return _signal_page(web, request, "done", action, token, reader, paper)


@page("/r/{token}")
def click(request: Request, token: str) -> Response:
    """A tracked card link: a weak positive, then the paper's own stored page (from the store, not the request)."""
    web = web_of(request)
    feedback = feedback_of(web)
    reader, paper = feedback.card(token)
    target = safe_url(paper.page_url)
    if not target:
        raise InvalidLink()
    if web.settings.tracking.clicks and request.method == "GET":
        from ..store.signals import record_signal

        record_signal(web.store.engine, reader.id, paper.id, "click", feedback.clock())
    response = RedirectResponse(target, status_code=303)
    response.headers["cache-control"] = "no-store"
    response.headers["referrer-policy"] = "no-referrer"
    return response


@router.post("/preferences/signals")
async def remove_signals(request: Request) -> Response:
    web = web_of(request)
    form = await checked_form(web, request)
    token = str(form.get("token") or "")
    reader = web.subscriptions.reader(token, ("preferences",))
    if form.get("clear"):
        gone = await run_in_threadpool(feedback_of(web).remove, reader.id, None)
        note = f"Removed all {gone} of your signals: your digest is ordered as everyone's again." if gone else \
            "You had no signals."
    else:
        try:
            paper_id = int(str(form.get("paper_id") or ""))
        except ValueError:
            raise InvalidLink() from None
        gone = await run_in_threadpool(feedback_of(web).remove, reader.id, [paper_id])
        note = "Removed. Your next digest no longer counts it." if gone else "That signal was already gone."
    from .pages import _preferences

    return _preferences(web, request, reader, notice=note)


@router.post("/preferences/seeds")
async def add_seeds(request: Request) -> Response:
    web = web_of(request)
    form = await request.form(max_files=1, max_fields=10, max_part_size=MAX_SEED_BYTES)
    if not web.csrf.valid(request, str(form.get(web.csrf.field) or "")):
        from .security import FormExpired

        raise FormExpired()
    token = str(form.get("token") or "")
    reader = web.subscriptions.reader(token, ("preferences",))
    from .pages import _preferences

    upload = form.get("file")
    text: str | bytes = str(form.get("ids") or "")
    if upload is not None and not isinstance(upload, str) and getattr(upload, "filename", ""):
        data = await upload.read(MAX_SEED_BYTES + 1)
        text = data
    try:
        result = await run_in_threadpool(feedback_of(web).seed, reader.id, text)
    except InvalidSeeds as exc:
        return _preferences(web, request, reader, seed_error=exc.message + (f" ({exc.hint})" if exc.hint else ""),
                            status=400)
    if not result.read:
        return _preferences(web, request, reader, seed_error="Nothing to read: paste arXiv ids or choose a file.",
                            status=400)
    note = (f"Read {result.read} entries: {len(result.matched)} are papers this newsletter has, now seeds of your "
            f"ranking ({result.added} new); {result.unmatched} are not here (only papers that trended here count).")
    return _preferences(web, request, reader, notice=note, seeded=result.matched)
