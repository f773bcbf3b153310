"""A news site on 127.0.0.1 for the feed and URL tests: stdlib http.server in a thread, serving routes a test
sets up (pages, an RSS and an Atom feed, errors, slow and huge answers) and logging every request it gets,
with the conditional headers it was sent and the status it answered."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# path -> (headline, body): five short local-news stories, distinct enough that none is a duplicate of another
STORIES = {
    "/news/pier-vote": (
        "Lowmere votes for a new ferry pier",
        "The harbour council of Lowmere voted on Tuesday to build a new ferry pier. The pier will cost four million "
        "pounds and open in spring. Fishermen welcomed the decision at the meeting.",
    ),
    "/news/library-barge": (
        "Floating library opens in Lowmere",
        "A floating library opened on a barge in Lowmere harbour on Saturday. The barge holds four thousand books. "
        "Volunteers from the rowing club built its shelves over the winter.",
    ),
    "/world/glacier": (
        "Glacier retreat measured in the Alps",
        "Scientists measured a record retreat of the Morteratsch glacier this summer. The ice front moved back by "
        "ninety metres. Warm weather in June was the main cause, the team said.",
    ),
    "/world/rail-link": (
        "Night train link to Vienna restored",
        "The night train between Zurich and Vienna runs again from December. The operator bought twelve new sleeping "
        "cars. Tickets go on sale in October.",
    ),
    "/news/new-school": (
        "Lowmere school gets a solar roof",
        "The primary school in Lowmere installed a solar roof during the holidays. The panels will cover half of its "
        "electricity. Pupils will follow the output on a screen in the hall.",
    ),
}


@dataclass
class Route:
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    delay_s: float = 0.0
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    location: str | None = None


@dataclass(frozen=True)
class Hit:
    path: str
    status: int
    if_none_match: str | None
    if_modified_since: str | None
    user_agent: str


@dataclass
class NewsServer:
    routes: dict[str, Route] = field(default_factory=dict)
    log: list[Hit] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> NewsServer:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                route = site.routes.get(urlsplit(self.path).path) or Route(b"not here", "text/plain", status=404)
                status = route.status
                if route.status == 200 and (
                    (route.etag and self.headers.get("If-None-Match") == route.etag)
                    or (route.last_modified and self.headers.get("If-Modified-Since") == route.last_modified)
                ):
                    status = 304
                with site._lock:
                    site.log.append(
                        Hit(
                            self.path,
                            status,
                            self.headers.get("If-None-Match"),
                            self.headers.get("If-Modified-Since"),
                            self.headers.get("User-Agent", ""),
                        )
                    )
                time.sleep(route.delay_s)
                body = b"" if status == 304 else route.body
                self.send_response(status)
                for name, value in (
                    ("ETag", route.etag),
                    ("Last-Modified", route.last_modified),
                    ("Location", route.location),
                ):
                    if value:
                        self.send_header(name, value)
                if status != 304:
                    self.send_header("Content-Type", route.content_type)
                if route.send_length or status == 304:
                    self.send_header("Content-Length", str(len(body)))
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass  # the request log above is the record

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass  # a client that gave up (the timeout tests) breaks the pipe; that is the point

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def hits(self, path: str | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.log if path is None or h.path == path]

    def clear_log(self) -> None:
        with self._lock:
            self.log.clear()


def http_date(offset_s: float = 0) -> str:
    return formatdate(time.time() + offset_s, usegmt=True)


def article_page(
    title: str, sentences: list[str], *, outlet: str | None = "Harbour Gazette", date: str | None = "2024-05-02"
) -> bytes:
    meta = (f'<meta property="og:site_name" content="{escape(outlet)}">' if outlet else "") + (
        f'<meta property="article:published_time" content="{date}">' if date else ""
    )
    paragraphs = "".join(f"<p>{escape(s)}</p>" for s in sentences)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>{meta}</head><body>"
        "<nav><a href='/'>Home</a> | <a "
        f"href='/sport'>Sport</a></nav><article><h1>{escape(title)}</h1>{paragraphs}</article>"
        "<footer>Copyright the Harbour Gazette</footer></body></html>"
    ).encode()


def rss(title: str, items: list[tuple[str, str, str]]) -> bytes:
    """items: (guid, link, RFC 822 date)."""
    entries = "".join(
        "<item><title>item "
        f"{escape(guid)}</title><link>{escape(link)}</link><guid>{escape(guid)}</guid><pubDate>{date}</pubDate></item>"
        for guid, link, date in items
    )
    return f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{escape(title)}</title><link>http://127.0.0.1/</link><description>news</description>{entries}</channel></rss>'.encode()


def atom(title: str, items: list[tuple[str, str, str]]) -> bytes:
    """items: (id, link, ISO 8601 date)."""
    entries = "".join(
        f"<entry><id>{escape(key)}</id><title>entry {escape(key)}</title><link "
        f'href="{escape(link)}"/><updated>{date}</updated></entry>'
        for key, link, date in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed '
        f'xmlns="http://www.w3.org/2005/Atom"><title>{escape(title)}</title>'
        f"<id>urn:test:{escape(title)}</id><updated>2024-05-03T00:00:00Z</updated>{entries}</feed>"
    ).encode()


@dataclass
class TrickleServer:
    """A server on 127.0.0.1 that sends its response headers one byte a second, slower than any deadline a
    test sets but never silent for long enough to trip a per-read timeout."""

    byte_interval_s: float = 1.0

    def start(self) -> TrickleServer:
        import socket

        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._trickle, args=(conn,), daemon=True).start()

    def _trickle(self, conn) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Padding: " + b"x" * 60 + b"\r\n\r\n"
        try:
            conn.recv(4096)
            for i in range(len(head)):
                if self._stop.is_set():
                    break
                conn.sendall(head[i : i + 1])
                time.sleep(self.byte_interval_s)
        except OSError:
            pass  # the client gave up: the point of the test
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._sock.getsockname()[1]}{path}"
