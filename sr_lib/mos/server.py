"""The study's HTTP server: the rater page, each rater's next trial, its picture, and the ratings.

Dependencies: the standard library only (``http.server.ThreadingHTTPServer``: one thread per connection, which a
handful of raters never strains; ``sqlite3`` through :mod:`sr_lib.mos.store`).

Routes (anything else is 404, so a path-like id never reaches a file system; there is none to reach: the pictures are
in the database)::

    GET  /r/<token>               the page          GET /static/mos.js, /static/mos.css, /favicon.ico (none)
    GET  /r/<token>/next          the next trial    GET /r/<token>/img/<trial id>   its PNG (current trial only)
    POST /r/<token>/rate          {"trial": "<trial id>", "score": 1..5}

Defences: binds 127.0.0.1 unless told otherwise; refuses a ``Host`` header that is not the server's own (DNS
rebinding: a web page whose name resolves to 127.0.0.1 cannot talk to it); unguessable 128-bit rater tokens; a body
over :data:`MAX_BODY` bytes is refused from its Content-Length, unread; request lines (which hold tokens) are not
logged; responses are ``no-store`` with a strict Content-Security-Policy and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sr_lib.mos import page
from sr_lib.mos.store import Conflict, NotFound, StudyDB

MAX_BODY = 4096
_ID = r"[A-Za-z0-9_-]{8,64}"  # token_urlsafe alphabet: no dot, slash or percent sign can get through.
_ROUTE = re.compile(rf"/r/({_ID})(?:/(next|rate|img/({_ID})))?")
_STATIC = {"/static/mos.js": ("text/javascript; charset=utf-8", page.JS.encode()),
           "/static/mos.css": ("text/css; charset=utf-8", page.CSS.encode())}
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # The token is in the URL.
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}
WILDCARDS = ("", "0.0.0.0", "::")


class _Refused(Exception):
    def __init__(self, status, text):
        super().__init__(text)
        self.status = status


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # Keep-alive: a rater's requests share one connection.
    disable_nagle_algorithm = True  # Small responses otherwise wait ~40 ms for the client's delayed ACK.
    timeout = 60  # Seconds an idle or slow connection may hold its thread.

    def version_string(self):
        return "sr_lib-mos"

    def log_message(self, format, *args):  # Request lines hold the raters' tokens: not printed.
        pass

    def _send(self, status, body: bytes, content_type: str):
        self.send_response(status)
        for key, value in _SECURITY_HEADERS.items():
            self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status, payload):
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _check_host(self):
        if (self.headers.get("Host") or "").strip().lower() not in self.server.allowed_hosts:
            raise _Refused(403, "unexpected Host header (use the URL the server printed)")

    def _handle(self, method):
        try:
            self._check_host()
            path = self.path.split("?", 1)[0]
            if method == "GET" and path in _STATIC:
                self._send(200, _STATIC[path][1], _STATIC[path][0])
                return
            if method == "GET" and path == "/favicon.ico":  # Browsers ask for it; no icon, and no error either.
                self._send(204, b"", "image/x-icon")
                return
            route = _ROUTE.fullmatch(path)
            if route is None:
                raise _Refused(404, "not found")
            token, action, trial = route.groups()
            db = self.server.db
            if method == "GET" and action is None:
                db.state(token)  # An unknown token gets a 404, not the page.
                self._send(200, page.HTML.encode(), "text/html; charset=utf-8")
            elif method == "GET" and action == "next":
                self._json(200, db.state(token))
            elif method == "GET" and trial is not None:
                self._send(200, db.image(token, trial), "image/png")
            elif method == "POST" and action == "rate":
                trial, score = self._rating()
                self._json(200, db.rate(token, trial, score))
            else:
                raise _Refused(404 if method == "GET" else 405, "not found" if method == "GET" else "not allowed")
        except _Refused as error:
            self._refuse(method, error.status, str(error))
        except NotFound as error:
            self._refuse(method, 404, str(error))
        except Conflict as error:
            self._json(409, {"error": str(error)})
        except sqlite3.OperationalError as error:  # E.g. a long lock by another process: try again.
            print(f"mos server: database busy: {error}", file=sys.stderr)
            self._refuse(method, 503, "the database is busy: try again")
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception as error:  # Never a traceback with request details; the rater sees a JSON error.
            print(f"mos server: internal error: {type(error).__name__}: {error}", file=sys.stderr)
            self._refuse(method, 500, "internal error")

    def _refuse(self, method, status, text):
        if method == "POST" and not getattr(self, "_body_read", False):
            self.close_connection = True  # The unread body would be parsed as the next request.
        self._json(status, {"error": text})

    def _rating(self) -> tuple:
        """(trial id, score) of the request body, validated; _Refused for anything else."""
        if self.headers.get("Transfer-Encoding"):
            raise _Refused(411, "send the rating with a Content-Length, not chunked")
        if not (self.headers.get("Content-Type") or "").lower().startswith("application/json"):
            raise _Refused(415, "the rating must be application/json")
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise _Refused(411, "a Content-Length is required")
        if int(length) > MAX_BODY:
            raise _Refused(413, f"a rating is at most {MAX_BODY} bytes")
        body = self.rfile.read(int(length))
        self._body_read = True
        try:
            rating = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
        except (UnicodeDecodeError, ValueError):
            raise _Refused(400, "the body is not JSON") from None
        if not isinstance(rating, dict) or set(rating) != {"trial", "score"}:
            raise _Refused(400, 'a rating is {"trial": "<id>", "score": <1..5>}')
        trial, score = rating["trial"], rating["score"]
        if type(score) is not int or not 1 <= score <= 5:  # type(): neither true, 3.0 nor "3".
            raise _Refused(400, "score must be a JSON integer from 1 to 5")
        if not isinstance(trial, str) or not re.fullmatch(_ID, trial):
            raise _Refused(400, "trial must be a trial id string")
        return trial, score

    def do_GET(self):
        self._body_read = True
        if (self.headers.get("Content-Length") or "0").strip() != "0" or self.headers.get("Transfer-Encoding"):
            self.close_connection = True  # A GET with a body (never read): the connection cannot be reused.
        self._handle("GET")

    def do_POST(self):
        self._body_read = False
        self._handle("POST")


def _no_constant(name):
    raise ValueError(f"{name} is not allowed")


class StudyServer(ThreadingHTTPServer):
    """A running study on ``host:port`` (port 0: any free port) over the study database ``db_path``."""

    daemon_threads = True  # Open keep-alive connections must not keep the process alive after shutdown.

    def __init__(self, db_path, host="127.0.0.1", port=0):
        if host in WILDCARDS:
            raise ValueError(f"--host {host or '(empty)'} would listen on every address, and the Host header could "
                             "not be checked against one: give the address the raters will use, e.g. 192.168.1.20")
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.db = StudyDB(db_path)
        try:
            super().__init__((host, port), Handler)
        except OSError as error:
            self.db.close()
            raise OSError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
        self.port = self.server_address[1]
        self.host_label = f"[{host}]" if ":" in host else host
        names = {"127.0.0.1", "localhost", self.host_label.lower()}
        self.allowed_hosts = {f"{name}:{self.port}" for name in names}
        if self.port == 80:  # Browsers leave the default port out of the Host header.
            self.allowed_hosts |= names

    def url(self, token) -> str:
        """The address to give a rater."""
        return f"http://{self.host_label}:{self.port}/r/{token}"

    def server_close(self):
        super().server_close()
        self.db.close()
