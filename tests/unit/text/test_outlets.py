"""An article's outlet from its address, and the cleaner's weaker textual guesses kept in their place."""

from __future__ import annotations

import pytest

from rag.ingest.corpus import article_from_bytes
from rag.text.cleaning import clean_text
from rag.text.outlets import known_outlet, outlet_from_url, registered_domain


@pytest.mark.parametrize(
    ("host", "domain"),
    [
        ("edition.cnn.com", "cnn.com"),
        ("www.bbc.co.uk", "bbc.co.uk"),
        ("www.eurointegration.com.ua", "eurointegration.com.ua"),
        ("cnn.com", "cnn.com"),
    ],
)
def test_registered_domain(host, domain):
    assert registered_domain(host) == domain


def test_outlet_from_url_names_large_sites_and_shows_other_domains():
    assert outlet_from_url("https://www.usatoday.com/story/news/2022/06/24/x/") == "USA Today"
    assert outlet_from_url("https://edition.cnn.com/2022/06/24/politics/x") == "CNN"
    assert outlet_from_url("https://kyivindependent.com/some-story") == "kyivindependent.com"
    assert known_outlet("https://kyivindependent.com/some-story") is None
    for bad in (None, "", "ftp://cnn.com/x", "not a url"):
        assert outlet_from_url(bad) is None
    # No registered domain: the host as written, as fetched pages have always been named; never a known outlet.
    assert (
        outlet_from_url("https://10.0.0.1/x") == "10.0.0.1"
        and outlet_from_url("http://localhost:8000/a") == "localhost"
    )
    assert known_outlet("https://10.0.0.1/x") is None


PAGE = """Olympics recap: a medal on ice
Published 2022-02-06
https://www.usatoday.com/story/sports/olympics/2022/02/06/recap/

Team USA earned its first figure skating medal of the Games thanks to a clutch performance from its ice dancers.

EXCLUSIVE OLYMPIC UPDATES: Sign up for texts to get the latest news and behind-the-scenes coverage from Beijing.

The skaters finished second behind the Russian team, and the judges took an hour to confirm the result.
"""


def test_a_known_sites_address_beats_a_promo_lines_guess():
    assert clean_text(PAGE).meta.source == "USA Today"


def test_an_unknown_address_fills_an_empty_outlet_only():
    text = PAGE.replace("www.usatoday.com", "www.example-news.org").replace(
        "EXCLUSIVE OLYMPIC UPDATES: Sign up for texts to get the latest news and behind-the-scenes coverage from "
        "Beijing.\n\n",
        "",
    )
    assert article_from_bytes("recap", "recap.txt", text.encode()).meta.source == "example-news.org"


@pytest.mark.parametrize(
    ("line", "source"),
    [
        ("Euractiv writes about this, citing sources.", "Euractiv"),
        ("Arkansas reports first coronavirus case in a man treated at a hospital in Pine Bluff.", None),
        ("Charles Finch writes the Charles Lenox mystery series and reviews crime fiction for us.", None),
    ],
)
def test_only_an_aggregators_credit_line_names_the_outlet(line, source):
    body = (
        f"A headline of the day\n\n{line}\n\nThe ministers met on Thursday and agreed to meet again in July to settle "
        f"the open questions.\n"
    )
    assert clean_text(body).meta.source == source
