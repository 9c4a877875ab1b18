"""``newsletter preview --serve``: the rendered digest on 127.0.0.1, with a page that switches between desktop
width, phone width, dark mode and the text part, and reloads when a template changes.

Standard library only. One thread serves every request, so renders never run side by side. The page polls
``/version`` once a second; that request compares the template files' modification times with the last
render's and renders again when one changed (a broken template shows its error on the page and keeps the
last good render).

Routes: ``/`` the page, ``/email.html`` (``?dark=1``: the dark-mode styles applied whatever the system
setting), ``/email.txt``, ``/message.eml``, ``/version``.
"""

from __future__ import annotations

import html as html_mod
import json
import re
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Callable, Sequence
from urllib.parse import parse_qs, urlsplit

from .errors import NewsletterError

_DARK_QUERY = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)")


@dataclass(frozen=True)
class Rendering:
    subject: str
    html: str
    text: str
    message: bytes = b""


def force_dark(html: str) -> str:
    """The HTML with its dark-mode rules applied unconditionally: what a client in dark mode shows."""
    forced = _DARK_QUERY.sub("@media all", html)
    return forced.replace('content="light dark"', 'content="dark"', 1)


def files_signature(files: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in files:
        try:
            st = path.stat()
        except OSError:
            continue
        out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(out)


class PreviewServer:
    """Serves ``render()`` and renders again when the files ``watch()`` lists change.

    Example::

        server = PreviewServer(lambda: Rendering(subject, html, text), watch=lambda: template_files(path))
        server.start()            # in a background thread; or server.serve_forever()
        print(server.url)
        server.close()
    """

    def __init__(self, render: Callable[[], Rendering], watch: Callable[[], Sequence[Path]] = lambda: (),
                 host: str = "127.0.0.1", port: int = 0, on_render: Callable[[Rendering], None] | None = None) -> None:
        self._render = render
        self._watch = watch
        self._on_render = on_render
        self.version = 0
        self.error: str | None = None
        self.current = render()
        self._signature = files_signature(watch())
        if on_render:
            on_render(self.current)
        try:
            self.httpd = HTTPServer((host, port), _handler_for(self))
        except OSError as exc:
            raise NewsletterError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.",
                                  hint="pick another port with --port") from None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def refresh(self) -> None:
        """Render again if a watched file changed since the last render."""
        signature = files_signature(self._watch())
        if signature == self._signature:
            return
        self._signature = signature
        try:
            self.current = self._render()
        except NewsletterError as exc:  # a template being edited: keep the last good render
            self.error = str(exc)
        else:
            self.error = None
            if self._on_render:
                self._on_render(self.current)
        self.version += 1

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, name="preview-server", daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
        self.httpd.server_close()


def _handler_for(server: PreviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "newsletter-preview"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            current = server.current
            if parts.path == "/":
                self._send(200, "text/html; charset=utf-8", page(current.subject).encode("utf-8"))
            elif parts.path == "/email.html":
                body = force_dark(current.html) if query.get("dark") == ["1"] else current.html
                self._send(200, "text/html; charset=utf-8", body.encode("utf-8"))
            elif parts.path == "/email.txt":
                self._send(200, "text/plain; charset=utf-8", current.text.encode("utf-8"))
            elif parts.path == "/message.eml":
                self._send(200, "message/rfc822", current.message)
            elif parts.path == "/version":
                server.refresh()
                body = json.dumps({"version": server.version, "error": server.error, "subject": server.current.subject})
                self._send(200, "application/json", body.encode("utf-8"))
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found")

        def _send(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def page(subject: str) -> str:
    """The preview page: a toolbar and the email in a frame of the chosen width."""
    return _PAGE.replace("{{subject}}", html_mod.escape(subject))


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Preview: {{subject}}</title>
<style>
  :root { color-scheme: light; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.4 -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
         background: #e4e4e7; color: #18181b; }
  body.dark { background: #27272a; color: #f4f4f5; }
  header { position: sticky; top: 0; z-index: 1; display: flex; flex-wrap: wrap; gap: 8px; align-items: center;
           padding: 10px 16px; background: #18181b; color: #f4f4f5; }
  header h1 { font-size: 14px; margin: 0 12px 0 0; font-weight: 600; white-space: nowrap; overflow: hidden;
              text-overflow: ellipsis; max-width: 46ch; }
  button { font: inherit; padding: 6px 12px; border-radius: 6px; border: 1px solid #52525b; background: #27272a;
           color: #f4f4f5; cursor: pointer; }
  button[aria-pressed="true"] { background: #f4f4f5; color: #18181b; border-color: #f4f4f5; }
  #status { margin-left: auto; font-size: 12px; color: #a1a1aa; }
  #error { display: none; margin: 12px auto; max-width: 800px; padding: 10px 14px; border-radius: 6px;
           background: #fee2e2; color: #7f1d1d; white-space: pre-wrap; font-family: ui-monospace, monospace; }
  main { display: flex; justify-content: center; padding: 16px; }
  iframe { border: 0; background: #fff; box-shadow: 0 1px 4px rgba(0,0,0,.25); height: calc(100vh - 90px); }
</style>
</head>
<body>
<header>
  <h1 id="subject">{{subject}}</h1>
  <button type="button" data-view="desktop" aria-pressed="true">Desktop</button>
  <button type="button" data-view="phone" aria-pressed="false">Phone</button>
  <button type="button" data-view="text" aria-pressed="false">Text</button>
  <button type="button" id="dark" aria-pressed="false">Dark mode</button>
  <span id="status">live</span>
</header>
<div id="error" role="alert"></div>
<main><iframe id="frame" title="The email" src="/email.html" width="800"></iframe></main>
<script>
(function () {
  var frame = document.getElementById("frame"), view = "desktop", dark = false, version = null;
  var widths = { desktop: 800, phone: 375, text: 800 };
  function source() {
    if (view === "text") return "/email.txt";
    return dark ? "/email.html?dark=1" : "/email.html";
  }
  function show() {
    frame.width = widths[view];
    frame.style.width = widths[view] + "px";
    var src = source();
    if (frame.getAttribute("src") !== src) frame.setAttribute("src", src);
    document.querySelectorAll("button[data-view]").forEach(function (b) {
      b.setAttribute("aria-pressed", String(b.dataset.view === view));
    });
    document.getElementById("dark").setAttribute("aria-pressed", String(dark));
    document.body.classList.toggle("dark", dark);
    document.body.dataset.view = view;
  }
  document.querySelectorAll("button[data-view]").forEach(function (b) {
    b.addEventListener("click", function () { view = b.dataset.view; show(); });
  });
  document.getElementById("dark").addEventListener("click", function () { dark = !dark; show(); });
  function poll() {
    fetch("/version", { cache: "no-store" }).then(function (r) { return r.json(); }).then(function (v) {
      var box = document.getElementById("error");
      box.style.display = v.error ? "block" : "none";
      box.textContent = v.error || "";
      document.getElementById("subject").textContent = v.subject;
      if (version !== null && v.version !== version) {
        frame.contentWindow.location.reload();
        document.getElementById("status").textContent = "reloaded " + new Date().toLocaleTimeString();
      }
      version = v.version;
    }).catch(function () {
      document.getElementById("status").textContent = "server stopped";
    });
  }
  show();
  poll();
  setInterval(poll, 1000);
})();
</script>
</body>
</html>
"""
