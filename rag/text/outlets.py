"""An article's outlet from its address, when the page names none.

Scraped text files and many feeds carry a URL line but no publisher: 868 of RealTime QA's 900 articles left
`source` empty, and its citations showed no outlet. The host names the outlet. A short table gives the usual
names of large news sites; any other host is shown as its registered domain ("kyivindependent.com"), which
readers recognise and which is never wrong.
"""

from __future__ import annotations

from urllib.parse import urlsplit

# The domain a site is registered under -> the name it prints on its own pages. Large outlets only: any other
# site shows its domain.
KNOWN_OUTLETS = {
    "abcnews.go.com": "ABC News",
    "aljazeera.com": "Al Jazeera",
    "apnews.com": "AP",
    "bbc.co.uk": "BBC",
    "bbc.com": "BBC",
    "bloomberg.com": "Bloomberg",
    "cbsnews.com": "CBS News",
    "cnbc.com": "CNBC",
    "cnn.com": "CNN",
    "euractiv.com": "Euractiv",
    "foxnews.com": "Fox News",
    "ft.com": "Financial Times",
    "independent.co.uk": "The Independent",
    "latimes.com": "Los Angeles Times",
    "nbcnews.com": "NBC News",
    "npr.org": "NPR",
    "nytimes.com": "The New York Times",
    "politico.com": "Politico",
    "politico.eu": "Politico Europe",
    "pravda.com.ua": "Ukrainska Pravda",
    "eurointegration.com.ua": "European Pravda",
    "reuters.com": "Reuters",
    "theguardian.com": "The Guardian",
    "theweek.co.uk": "The Week",
    "theweek.com": "The Week",
    "usatoday.com": "USA Today",
    "washingtonpost.com": "The Washington Post",
    "wsj.com": "The Wall Street Journal",
}
# Second-level labels under which a country registers names ("bbc.co.uk", "pravda.com.ua").
_SHARED_SECOND_LEVEL = frozenset("co com org net gov ac edu".split())


def registered_domain(host: str) -> str:
    """ "edition.cnn.com" -> "cnn.com", "www.bbc.co.uk" -> "bbc.co.uk"."""
    labels = [x for x in host.lower().strip(".").split(".") if x]
    keep = 3 if len(labels) >= 3 and labels[-2] in _SHARED_SECOND_LEVEL and len(labels[-1]) == 2 else 2
    return ".".join(labels[-keep:])


def _host(url: str | None) -> str | None:
    parts = urlsplit((url or "").strip())
    return parts.hostname if parts.scheme in ("http", "https") and parts.hostname else None


def _domain(url: str | None) -> str | None:
    host = _host(url)
    if host is None or "." not in host or host.replace(".", "").isdigit():
        return None  # no web address, or an IP address or a local name, which have no registered domain
    return registered_domain(host)


def known_outlet(url: str | None) -> str | None:
    """The name of a large news site the address belongs to: surer than the cleaner's weaker guesses from the
    text (a promo line's "coverage from Beijing" made Beijing a RealTime QA outlet)."""
    domain = _domain(url)
    return KNOWN_OUTLETS.get(domain) if domain else None


def outlet_from_url(url: str | None) -> str | None:
    """The outlet a page's address names: its usual name, else its domain, else the host as written (an IP
    address or a local name, as `rag index URL` has always shown it); None for no web address."""
    domain = _domain(url)
    return KNOWN_OUTLETS.get(domain, domain) if domain else _host(url)
