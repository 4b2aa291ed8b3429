"""The ``html`` collector: HTML pages (local files or http(s) URLs).

The main text of a page, with navigation, headers, footers and other
boilerplate removed by trafilatura (BeautifulSoup text extraction when trafilatura
finds nothing). Fetching is deliberately narrow: http and https only (a redirect to
any other scheme is refused), a timeout for the whole fetch, a size cap that stops
reading, and local files in the URL list only when the config allows them.

A page that yields no text, or a URL that cannot be fetched, goes to the
quarantine with the reason; it never stops the run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Optional
from urllib.parse import urljoin, urlsplit

from tunelab import __version__
from tunelab.api import TEXT, StageContext
from tunelab_builtin.collectors._files import FileCollector
from tunelab_builtin.collectors._records import TITLE, RawRecord, RecordOptions, require_module

URL = "url"
WEB_SCHEMES = ("http", "https")
HTML_TYPES = ("text/html", "application/xhtml+xml", "text/plain", "text/xml", "application/xml")
EXTRACTORS = ("auto", "trafilatura", "beautifulsoup")
# elements that hold page furniture, not content (used by the BeautifulSoup fallback)
BOILERPLATE_TAGS = (
    "script",
    "style",
    "noscript",
    "template",
    "nav",
    "header",
    "footer",
    "aside",
    "form",
    "iframe",
    "svg",
    "button",
    "select",
)
BOILERPLATE_ROLES = ("navigation", "banner", "contentinfo", "search", "complementary")


def redact_url(url: str) -> str:
    """The URL with any password in it replaced by ``***``."""
    from tunelab.redaction import redact_secrets

    return redact_secrets(url)


@dataclass
class HtmlSourceConfig(RecordOptions):
    #: local .html/.htm/.xhtml files: a file, a folder (recursively) or a glob; None for URLs only
    path: Optional[str] = None
    #: http(s) URLs to fetch, one row per page
    urls: list[str] = field(default_factory=list)
    #: seconds allowed for each fetch (connecting, waiting and reading)
    timeout: float = 10.0
    #: largest page read, in bytes; a bigger response is abandoned and quarantined
    max_bytes: int = 5_000_000
    #: allow file:// URLs and local paths in urls (off: only http and https are fetched)
    allow_local_files: bool = False
    #: auto (trafilatura, BeautifulSoup when it finds nothing), trafilatura, or beautifulsoup
    extractor: str = "auto"
    #: User-Agent header sent with every request
    user_agent: str = f"tunelab/{__version__}"


class FetchError(Exception):
    """A URL could not be turned into a page (the message is the quarantine reason)."""


class Page(NamedTuple):
    url: str
    body: bytes
    charset: str | None


def _is_local(url: str) -> bool:
    scheme = urlsplit(url).scheme.lower()
    # a one-letter "scheme" is a Windows drive letter (C:\pages\a.html)
    return scheme in ("", "file") or len(scheme) == 1


class _Deadline:
    """The time limit of one whole fetch (redirects included). A socket timeout only bounds
    each read, so a server that trickles its headers or body a byte at a time could hold a
    fetch forever; at the deadline a timer shuts down every socket the fetch opened, and the
    blocked read returns."""

    def __init__(self, seconds: float):
        import threading

        self.at = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def passed(self) -> bool:
        return self.expired or time.monotonic() > self.at

    def track(self, sock: Any) -> None:
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            self._shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            self._shut(sock)

    @staticmethod
    def _shut(sock: Any) -> None:
        import socket

        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()


def _opener(deadline: _Deadline | None = None) -> Any:
    """A urllib opener with only the handlers web fetching needs (no file:, ftp: or data:
    handlers at all) that follows redirects to http(s) URLs only; with a ``deadline``,
    every connection it opens is shut down when the deadline passes."""
    import http.client
    import urllib.request  # imported here: it pulls in the email package, slow for CLI start

    def tracked(base: Any) -> Any:
        class Tracked(base):  # type: ignore[misc, valid-type]
            def connect(self) -> None:
                super().connect()
                if deadline is not None:
                    deadline.track(self.sock)

        return Tracked

    class Http(urllib.request.HTTPHandler):
        def http_open(self, req: Any) -> Any:
            return self.do_open(tracked(http.client.HTTPConnection), req)

    class Https(urllib.request.HTTPSHandler):
        def https_open(self, req: Any) -> Any:
            options = {"context": self._context}
            if hasattr(self, "_check_hostname"):  # Python < 3.12
                options["check_hostname"] = self._check_hostname
            return self.do_open(tracked(http.client.HTTPSConnection), req, **options)

    class WebOnlyRedirects(urllib.request.HTTPRedirectHandler):
        def http_error_302(self, req, fp, code, msg, headers):
            target = headers.get("location") or headers.get("uri")
            if target:
                scheme = urlsplit(urljoin(req.full_url, target)).scheme.lower()
                if scheme not in WEB_SCHEMES:
                    fp.close()
                    raise FetchError(
                        f"redirect (HTTP {code}) to a {scheme}: URL refused; only http and https are followed"
                    )
            return super().http_error_302(req, fp, code, msg, headers)

        http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        Http(),
        Https(),
        WebOnlyRedirects(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def fetch(url: str, *, timeout: float, max_bytes: int, user_agent: str) -> Page:
    """GET an http(s) URL within the time and size limits; raise FetchError with a reason."""
    import http.client
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, headers={"User-Agent": user_agent, "Accept": "text/html,application/xhtml+xml,text/plain;q=0.8"}
    )
    deadline = _Deadline(timeout)
    timed_out = f"timed out after {timeout:g} s (data.timeout)"
    try:
        with _opener(deadline).open(request, timeout=timeout) as response:
            content_type = response.headers.get_content_type()
            if response.headers.get("Content-Type") and content_type not in HTML_TYPES:
                raise FetchError(f"not an HTML page (Content-Type {content_type})")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"page is {int(declared)} bytes, over data.max_bytes={max_bytes}; not downloaded")
            chunks, size = [], 0
            while True:
                if deadline.passed():
                    raise FetchError(timed_out)
                # read1 returns after one network read; at the deadline the socket is shut down
                chunk = response.read1(65536)
                if not chunk:
                    if deadline.expired:  # the end of a cut-off connection, not of the page
                        raise FetchError(timed_out)
                    break
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"response exceeds data.max_bytes={max_bytes}; stopped reading")
                chunks.append(chunk)
            return Page(response.geturl(), b"".join(chunks), response.headers.get_content_charset())
    except FetchError:
        raise
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError) or deadline.expired:
            raise FetchError(timed_out) from None
        raise FetchError(f"cannot connect: {exc.reason}") from None
    except TimeoutError:
        raise FetchError(timed_out) from None
    except (http.client.HTTPException, OSError, ValueError) as exc:
        if deadline.expired:  # the deadline shut the connection down mid-read
            raise FetchError(timed_out) from None
        raise FetchError(f"connection failed: {type(exc).__name__}: {exc}") from None
    finally:
        deadline.cancel()


def decode_html(body: bytes, charset: str | None) -> str | None:
    """Text of an HTML document: the declared charset if it works, else the page's own
    <meta> declaration or a guess (bs4's UnicodeDammit)."""
    from bs4 import UnicodeDammit

    return UnicodeDammit(body, known_definite_encodings=[charset] if charset else [], is_html=True).unicode_markup


def _soup_text(html: str) -> tuple[str | None, str]:
    """Title and visible text with page furniture removed (the fallback extractor)."""
    import importlib.util

    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml" if importlib.util.find_spec("lxml") else "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(BOILERPLATE_TAGS):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": list(BOILERPLATE_ROLES)}):
        tag.decompose()
    body = soup.find("main") or soup.find("article") or soup.body or soup
    lines = (" ".join(line.split()) for line in body.get_text("\n").splitlines())
    return title or None, "\n".join(line for line in lines if line)


def extract(html: str, extractor: str) -> tuple[str | None, str, str]:
    """(title, text, extractor used) of an HTML document; text is "" when there is none."""
    title, text = None, ""
    if extractor in ("auto", "trafilatura"):
        import trafilatura

        document = trafilatura.bare_extraction(html, with_metadata=True, include_comments=False, include_tables=True)
        if document is not None:
            data = document if isinstance(document, dict) else document.as_dict()
            title, text = data.get("title") or None, (data.get("text") or "").strip()
        if text or extractor == "trafilatura":
            return title, text, "trafilatura"
    soup_title, soup_text = _soup_text(html)
    return title or soup_title, soup_text, "beautifulsoup"


class HtmlCollector(FileCollector):
    """HTML pages from local files or http(s) URLs, boilerplate removed: text, title, url."""

    suffixes = (".html", ".htm", ".xhtml", ".html.gz", ".htm.gz")

    def __init__(self, config: HtmlSourceConfig):
        super().__init__(config)
        c = config
        if not c.path and not c.urls:
            raise ValueError(
                "set data.path (local .html files: a file, folder or glob) or data.urls (a list of http(s) URLs)"
            )
        if c.timeout <= 0:
            raise ValueError(f"data.timeout must be a positive number of seconds, got {c.timeout}")
        if c.max_bytes <= 0:
            raise ValueError(f"data.max_bytes must be a positive number of bytes, got {c.max_bytes}")
        if c.extractor not in EXTRACTORS:
            raise ValueError(f"data.extractor must be one of {', '.join(EXTRACTORS)}, got {c.extractor!r}")
        seen: set[str] = set()
        for number, url in enumerate(c.urls):
            if not isinstance(url, str) or not url.strip():
                raise ValueError(f"data.urls[{number}] is empty; give an http(s) URL")
            if url in seen:
                raise ValueError(f"data.urls lists {redact_url(url)!r} twice")
            seen.add(url)
            if _is_local(url):
                if not c.allow_local_files:
                    raise ValueError(
                        f"data.urls[{number}] {redact_url(url)!r} is a local file; "
                        "only http and https URLs are fetched. "
                        "Set data.allow_local_files=true to read local files from the URL list, or use data.path"
                    )
            elif urlsplit(url).scheme.lower() not in WEB_SCHEMES:
                raise ValueError(f"data.urls[{number}] {redact_url(url)!r} is not an http or https URL")

    def input_files(self) -> list[Path]:
        files = super().input_files() if self.config.path else []
        return files + [self._local_path(url) for url in self.config.urls if _is_local(url)]

    @staticmethod
    def _local_path(url: str) -> Path:
        if urlsplit(url).scheme.lower() == "file":
            from urllib.request import url2pathname

            return Path(url2pathname(urlsplit(url).path))
        return Path(url).expanduser()

    def _page_row(
        self, html_bytes: bytes, charset: str | None, where: str, url: str | None, ctx: StageContext
    ) -> dict[str, Any] | None:
        html = decode_html(html_bytes, charset)
        if html is None:
            ctx.quarantine(where, None if url else 1, "cannot decode the page text (unknown character encoding)")
            return None
        title, text, used = extract(html, self.config.extractor)
        if not text:
            ctx.quarantine(
                where, None if url else 1, f"no extractable text in the page ({used} found none)", html[:500]
            )
            return None
        ctx.count(f"pages extracted with {used}")
        return {TEXT: text, TITLE: title, URL: url}

    def read(self, file, label, ctx):
        size = file.stat().st_size
        if size > self.config.max_bytes and not file.name.lower().endswith(".gz"):
            ctx.quarantine(label, 1, f"file is {size} bytes, over data.max_bytes={self.config.max_bytes}")
            return
        with self.open_binary(file) as fh:  # a .gz file: at most max_bytes are decompressed (no gzip bomb)
            body = fh.read(self.config.max_bytes + 1)
        if len(body) > self.config.max_bytes:
            ctx.quarantine(label, 1, f"decompressed page is over data.max_bytes={self.config.max_bytes}")
            return
        row = self._page_row(body, None, label, None, ctx)
        if row is not None:
            yield 1, row

    def raw_records(self, ctx: StageContext) -> Iterator[RawRecord]:
        if self.config.path:
            require_module("bs4", "html", "beautifulsoup4")
            yield from super().raw_records(ctx)
        for url in self.config.urls:
            shown = redact_url(url)
            row = self._url_row(url, shown, ctx)
            if row is not None:
                yield RawRecord(shown, None, shown, row)

    def _url_row(self, url: str, shown: str, ctx: StageContext) -> dict[str, Any] | None:
        c = self.config
        require_module("bs4", "html", "beautifulsoup4")
        if c.extractor != "beautifulsoup":
            require_module("trafilatura", "html", "trafilatura")
        if _is_local(url):
            path = self._local_path(url)
            try:
                with path.open("rb") as fh:
                    body = fh.read(c.max_bytes + 1)
            except OSError as exc:
                ctx.quarantine(shown, None, f"cannot read local file: {exc.strerror or exc}")
                return None
            if len(body) > c.max_bytes:
                ctx.quarantine(shown, None, f"file exceeds data.max_bytes={c.max_bytes}")
                return None
            return self._page_row(body, None, shown, shown, ctx)
        try:
            page = fetch(url, timeout=c.timeout, max_bytes=c.max_bytes, user_agent=c.user_agent)
        except FetchError as exc:
            ctx.quarantine(shown, None, str(exc))
            ctx.count("URLs that failed")
            return None
        ctx.count("URLs fetched")
        return self._page_row(page.body, page.charset, shown, redact_url(page.url), ctx)
