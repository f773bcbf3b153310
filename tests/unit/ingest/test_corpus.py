"""Loading and cleaning: each clutter family on synthetic snippets, metadata, ids, bad files, HTML, Markdown."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from rag.core.errors import BadInputError, TooLargeError, UnsupportedFileError
from rag.ingest.corpus import (
    SUPPORTED_SUFFIXES,
    article_from_bytes,
    clean_text,
    iter_article_paths,
    load_article,
    parse_date,
    validate_doc_id,
)
from rag.text.normalise import normalise_text

BODY_1 = "The alliance agreed on Thursday to upgrade its relations with Ukraine, officials said."
BODY_2 = "Ministers will meet again in Vilnius next month to discuss the timetable for membership talks."
BODY_3 = "Several diplomats said the new council would give Kyiv an equal seat at the table."


def _page(*clutter_before: str, middle: tuple[str, ...] = (), after: tuple[str, ...] = ()) -> str:
    return "\n\n".join([*clutter_before, BODY_1, *middle, BODY_2, BODY_3, *after])


def _assert_clean(raw: str, dropped: list[str]) -> None:
    result = clean_text(raw)
    for line in dropped:
        assert line not in result.text, f"kept clutter {line!r}"
        assert line in result.removed_lines, f"{line!r} not recorded"
    for body in (BODY_1, BODY_2, BODY_3):
        assert body in result.text, f"lost body {body!r}"


# ---------------------------------------------------------------- clutter families


def test_link_list_after_heading_is_dropped() -> None:
    heads = [
        "Taiwan rattled by quake, no reports of damage",
        "Pope decries leaders who invoke religion",
        "EU leaders face crunch decision on frozen assets",
    ]
    _assert_clean(
        _page(after=("Next In Europe", *heads, "Others Also Read")), ["Next In Europe", *heads, "Others Also Read"]
    )
    _assert_clean(_page(after=("Related Articles", *heads)), ["Related Articles", *heads])
    _assert_clean(_page(after=("Most popular", *heads)), ["Most popular", *heads])


def test_single_newline_headline_list_after_heading() -> None:
    raw = _page(after=("Read more\nFirst headline about a thing\nSecond headline about another thing",))
    _assert_clean(raw, ["Read more", "First headline about a thing", "Second headline about another thing"])


def test_timestamped_news_feed_is_dropped() -> None:
    feed = [
        "RECENT NEWS",
        "22:25",
        "Russians fire at a village, killing woman",
        "21:41",
        "Leader to address parliament, some MPs promise boycott",
        "All News",
    ]
    _assert_clean(_page(after=("\n".join(feed),)), feed)


def test_headline_run_without_heading_is_dropped_in_the_middle() -> None:
    heads = [
        "Pilots have not yet gone abroad for training",
        "Army advances on eastern front – deputy minister",
        "VIDEOSubstation ablaze in Siberia, media reports of explosion",
    ]
    _assert_clean(_page(middle=tuple(heads)), heads)


def test_lone_subheading_in_the_middle_is_kept() -> None:
    result = clean_text(_page(middle=("What happens next",)))
    assert "What happens next" in result.text


def test_ads_share_buttons_and_nav() -> None:
    clutter = [
        "Advertisement:",
        "ADVERTISEMENT",
        "Share",
        "Tweet",
        "Share on Facebook",
        "All Sections",
        "Укр Рус Eng",
        "EN UA RU",
        "Skip to content",
    ]
    _assert_clean(_page(clutter[5], clutter[6], middle=tuple(clutter[:5]), after=(clutter[7], clutter[8])), clutter)


def test_appeals_and_account_prompts() -> None:
    appeal = [
        "Your support helps us to tell the story",
        "We are on the ground when the story is developing, and we know how much you rely on our reporting.",
        "Your donation allows us to keep sending journalists to both sides of the story.",
        "Your support makes all the difference.",
    ]
    tail = [
        "Follow us on our official WhatsApp channel for breaking news alerts!",
        "We have launched English Twitter! Follow us!",
        "Journalists fight on their own frontline. Support Example Pravda or become our patron!",
        "Sign up for our daily newsletter",
        "Thank you for registering",
        "Please refresh the page or navigate to another page on the site to be automatically logged in",
    ]
    head = [
        "Stay up to date with notifications from The Example",
        "Notifications can be managed in browser preferences.",
        "Support Us",
    ]
    raw = _page(*head, middle=tuple(appeal), after=tuple(tail))
    _assert_clean(raw, head + appeal + tail)
    assert clean_text(raw).meta.source == "The Example"


def test_news_words_in_body_are_not_promo() -> None:
    body = [
        "Germany donated tanks and air defence systems to Ukraine.",
        "The company said it lost a million subscribers in the quarter.",
        "“We will support Ukraine for as long as it takes,” she said.",
        "Zelensky said on his Telegram channel that two drones were shot down.",
        "Meta changed its privacy policy after the ruling.",
        "The ministry launched a hotline for families of missing soldiers.",
    ]
    result = clean_text(_page(middle=tuple(body)))
    for line in body:
        assert normalise_text(line) in result.text  # kept, in the one typographic form (curly quotes straight)


def test_sentences_that_start_like_bylines_are_body() -> None:
    body = [
        "By Friday the talks had collapsed.",
        "By Friday the talks had collapsed",
        "Reporting by the BBC found that the convoy had been hit twice near the border crossing on Monday night.",
    ]
    result = clean_text(_page(middle=(body[0],), after=(body[2],)))
    assert body[0] in result.text and body[2] in result.text
    assert "By Friday the talks" in clean_text(_page(middle=(body[1],))).text  # a lone subheading


def test_captions_bylines_and_datelines() -> None:
    clutter = [
        "A flag rises in front of the NATO emblem in Kyiv, July 11, 2023. REUTERS/Jane Photographer/File Photo",
        "by | May 8, 2023",
        "By Jane Doe",
        "Via AP news wire",
        "KYIV, Ukraine",
        "(Reporting by Jane Doe; editing by John Roe)",
        "Photo: Getty Images",
    ]
    raw = _page(clutter[1], clutter[2], clutter[3], clutter[4], clutter[0], middle=(clutter[6],), after=(clutter[5],))
    _assert_clean(raw, clutter)
    assert clean_text(raw).meta.author == "Jane Doe"


def test_author_bio_at_the_end() -> None:
    bio = [
        "About Kyle Example and Will Sample",
        "Kyle Example is the news editor of the Example Institute. Will Sample is a staff writer.",
    ]
    raw = _page(after=(*bio, "Our Books", "latest book lineup.", "Related Articles"))
    _assert_clean(raw, [*bio, "Our Books", "latest book lineup.", "Related Articles"])
    meta = clean_text(raw).meta
    assert meta.author == "Kyle Example and Will Sample"
    assert meta.source == "Example Institute"


def test_repeated_title_and_date_header() -> None:
    raw = "\n\n".join(
        [
            "Allies weigh options for Ukraine",
            "by | May 8, 2023",
            "Allies weigh options for Ukraine",
            "by | May 8, 2023",
            BODY_1,
            BODY_2,
        ]
    )
    result = clean_text(raw)
    assert result.meta.title == "Allies weigh options for Ukraine"
    assert result.meta.date == "2023-05-08"
    assert "Allies weigh options" not in result.text
    assert result.text == f"{BODY_1}\n\n{BODY_2}"


def test_short_body_paragraphs_are_kept() -> None:
    short = ['"Never," he said.', "The vote failed.", "“It is over.”", "Why now?"]
    result = clean_text(_page(middle=tuple(short)))
    for line in short:
        assert normalise_text(line) in result.text


def test_paragraphs_are_joined_with_blank_lines_and_wrapped_lines_rejoined() -> None:
    raw = (
        "Allies weigh options\n\n"
        "The defence ministers of the alliance met in Brussels on Thursday and\n"
        "agreed that more air defence systems would be sent to Ukraine before\n"
        "winter. Officials said the decision was unanimous and quick to reach.\n\n\n\n"
        "Second paragraph is here."
    )
    result = clean_text(raw)
    assert result.text == (
        "The defence ministers of the alliance met in Brussels on Thursday and agreed that more air defence "
        "systems would be sent to Ukraine before winter. Officials said the decision was unanimous and quick to reach."
        "\n\nSecond paragraph is here."
    )


def test_text_without_prose_is_kept_rather_than_emptied() -> None:
    assert clean_text("Ukraine NATO summit notes").text == "Ukraine NATO summit notes"


# ---------------------------------------------------------------- metadata


@pytest.mark.parametrize(
    ("line", "iso"),
    [
        ("Thursday 15 June 2023 08:15 BST", "2023-06-15"),
        ("Tuesday, 19 Mar 2024", "2024-03-19"),
        ("Thursday, 1 June 2023, 11:50", "2023-06-01"),
        ("May 8, 2023", "2023-05-08"),
        (" date 2023-06-16 14:12", "2023-06-16"),
        ("2023-06-16", "2023-06-16"),
        ("Sept. 30, 2022", "2022-09-30"),
        ("2023-02-30", None),
        ("no date here 2023", None),
    ],
)
def test_parse_date(line: str, iso: str | None) -> None:
    assert parse_date(line) == iso


@pytest.mark.parametrize(
    ("header", "iso"),
    [
        ("Thursday 15 June 2023 08:15 BST", "2023-06-15"),
        ("  • Tuesday, 19 Mar 2024", "2024-03-19"),
        ("European PravdaThursday, 1 June 2023, 11:50", "2023-06-01"),
        ("by | May 8, 2023", "2023-05-08"),
        (" date 2023-06-16 14:12 26 May Kyiv, Ukraine", "2023-06-16"),
    ],
)
def test_header_date_wins_over_body_dates(header: str, iso: str) -> None:
    raw = f"Headline about the summit\n\n{header}\n\n{BODY_1} It cited a deal from January 5, 2020.\n\n{BODY_2}"
    result = clean_text(raw)
    assert result.meta.date == iso
    assert header.strip() not in result.text


def test_author_in_a_date_line() -> None:
    meta = clean_text(f"Posted on June 3, 2023 by Maria Example\n\n{BODY_1}").meta
    assert (meta.date, meta.author) == ("2023-06-03", "Maria Example")


def test_source_patterns() -> None:
    assert clean_text(f"KYIV (Reuters) - {BODY_1}\n\n{BODY_2}").meta.source == "Reuters"
    assert clean_text(f"European PravdaThursday, 1 June 2023, 11:50\n\n{BODY_1}").meta.source == "European Pravda"
    assert clean_text(f"{BODY_1}\n\nEuractiv writes about this, citing sources.").meta.source == "Euractiv"
    assert clean_text(f"https://example.com/story\n\n{BODY_1}").meta.url == "https://example.com/story"


def test_missing_metadata_stays_none() -> None:
    meta = clean_text(f"{BODY_1}\n\n{BODY_2}").meta
    assert meta.model_dump() == {"title": None, "source": None, "date": None, "url": None, "author": None}


# ---------------------------------------------------------------- ids and files


@pytest.mark.parametrize("doc_id", ["abc", "001_d33884d0ecc97606", "a.b-c_d", "A" * 128])
def test_valid_doc_ids(doc_id: str) -> None:
    assert validate_doc_id(doc_id) == doc_id


@pytest.mark.parametrize(
    "doc_id", ["../../etc/passwd", "a/b", "a\\b", "..", "a..b", ".hidden", "", "a b", "A" * 129, "x\n", "-x"]
)
def test_invalid_doc_ids(doc_id: str) -> None:
    with pytest.raises(BadInputError):
        validate_doc_id(doc_id)


def test_load_article_txt(tmp_path: Path) -> None:
    data = f"Headline about the summit\n\n{BODY_1}\n\n{BODY_2}\n".encode()
    path = tmp_path / "story-1.txt"
    path.write_bytes(data)
    article = load_article(path)
    assert article.doc_id == "story-1"
    assert article.path == str(path)
    assert article.content_hash == hashlib.sha256(data).hexdigest()
    assert article.text == f"{BODY_1}\n\n{BODY_2}"
    assert article.meta.title == "Headline about the summit"


def test_bom_and_crlf_are_accepted() -> None:
    article = article_from_bytes("x", "x.txt", ("\ufeff" + f"{BODY_1}\r\n\r\n{BODY_2}").encode())
    assert article.text == f"{BODY_1}\n\n{BODY_2}"


@pytest.mark.parametrize(
    ("name", "data", "error", "message"),
    [
        ("x.pdf", b"%PDF-1.4", UnsupportedFileError, "unsupported"),
        ("x", b"text", UnsupportedFileError, "unsupported"),
        ("x.txt", b"abc\x00def", UnsupportedFileError, "binary"),
        ("x.txt", "Ce texte est en latin-1: été.".encode("latin-1"), UnsupportedFileError, "UTF-8"),
        ("x.txt", b"", BadInputError, "is empty"),
        ("x.txt", b"  \n\n \t\n", BadInputError, "is empty"),
        ("x.html", b"<html><body><nav>Home</nav></body></html>", BadInputError, "is empty"),
    ],
)
def test_bad_files(name: str, data: bytes, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as info:
        article_from_bytes("x", name, data)
    assert name in str(info.value)


def test_too_large(tmp_path: Path) -> None:
    with pytest.raises(TooLargeError):
        article_from_bytes("x", "x.txt", BODY_1.encode(), max_bytes=10)
    path = tmp_path / "big.txt"
    path.write_text(BODY_1)
    with pytest.raises(TooLargeError):
        load_article(path, max_bytes=10)
    assert load_article(path, max_bytes=10_000).text == BODY_1


def test_load_article_rejects_unsupported_and_bad_names(tmp_path: Path) -> None:
    bad = tmp_path / "notes.docx"
    bad.write_bytes(b"PK\x03\x04")
    with pytest.raises(UnsupportedFileError):
        load_article(bad)
    spaced = tmp_path / "my story.txt"
    spaced.write_text(BODY_1)
    with pytest.raises(BadInputError, match="invalid document id"):
        load_article(spaced)
    with pytest.raises(BadInputError):
        load_article(tmp_path / "missing.txt")


def test_upload_doc_id_is_validated() -> None:
    with pytest.raises(BadInputError):
        article_from_bytes("../../etc/passwd", "passwd.txt", BODY_1.encode())


def test_iter_article_paths(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / ".git").mkdir()
    for rel in ["a.txt", "b/c.md", "b/d.HTML", "e.pdf", ".hidden.txt", ".git/f.txt"]:
        (tmp_path / rel).write_text(BODY_1)
    explicit = tmp_path / "e.pdf"
    found = list(iter_article_paths([tmp_path, explicit, tmp_path / "a.txt"]))
    assert found == [tmp_path / "a.txt", tmp_path / "b/c.md", tmp_path / "b/d.HTML", explicit]
    assert SUPPORTED_SUFFIXES == {".txt", ".md", ".html", ".htm"}


# ---------------------------------------------------------------- HTML and Markdown

HTML = b"""<!doctype html><html><head><title>NATO ministers meet in Oslo | Example News</title>
<meta property="og:site_name" content="Example News"><meta name="author" content="Jane Doe">
<meta property="article:published_time" content="2023-06-01T10:00:00Z">
<link rel="canonical" href="https://example.com/nato-oslo"></head>
<body><nav><ul><li><a href="/">Home</a></li><li><a href="/world">World</a></li><li><a href="/s">Subscribe</a></li></ul></nav>
<article><h1>NATO ministers meet in Oslo</h1>
<p>NATO foreign ministers met in Oslo on Thursday to discuss Ukraine's path to membership of the alliance.</p>
<p>Jens Stoltenberg said there were good informal discussions among the allies on the next steps.</p>
<p>Follow us on Twitter for breaking news alerts!</p></article>
<footer>Copyright 2023 Example News. All rights reserved. <a href="/privacy">Privacy policy</a></footer>
</body></html>"""


def test_html_via_trafilatura() -> None:
    article = article_from_bytes("oslo", "oslo.html", HTML)
    assert article.text == (
        "NATO foreign ministers met in Oslo on Thursday to discuss Ukraine's path to membership of the alliance."
        "\n\nJens Stoltenberg said there were good informal discussions among the allies on the next steps."
    )
    assert article.meta.title == "NATO ministers meet in Oslo"
    assert article.meta.source == "Example News"
    assert article.meta.author == "Jane Doe"
    assert article.meta.date == "2023-06-01"
    assert article.meta.url == "https://example.com/nato-oslo"
    for clutter in ("Home", "Subscribe", "All rights reserved", "Privacy policy", "Follow us"):
        assert clutter not in article.text


def test_markdown() -> None:
    md = """---
date: 2023-06-01
author: Jane Doe
---
# Allies weigh *options* for Ukraine

![A flag](flag.png)

The defence ministers of the **alliance** met in [Brussels](https://example.com/brussels) on Thursday and
agreed that more _air defence_ systems would be sent to Ukraine before winter.

## What happens next

- Ukraine will submit a list of needs.
- The list is due next week.

Follow us on Twitter for more updates!
"""
    article = article_from_bytes("md", "story.md", md.encode())
    assert article.meta.title == "Allies weigh options for Ukraine"
    assert article.meta.date == "2023-06-01" and article.meta.author == "Jane Doe"
    assert article.text == (
        "The defence ministers of the alliance met in Brussels on Thursday and agreed that more air defence "
        "systems would be sent to Ukraine before winter.\n\nWhat happens next\n\n"
        "Ukraine will submit a list of needs.\n\nThe list is due next week."
    )
    for syntax in ("#", "*", "](", "![", "_"):
        assert syntax not in article.text


def test_a_url_line_under_a_date_line_is_not_joined_to_it() -> None:
    # RealTime QA-style scrapes: the URL started lowercase, was read as the date line's continuation, and both
    # the article's date and its url were lost with the merged line.
    raw = (
        "Supreme Court rules on the case - CNNPolitics\nBy Jane Doe, John Roe\nPublished 2022-06-24\n"
        "https://www.cnn.com/2022/06/24/politics/case/index.html\n\n"
        "(CNN) The Supreme Court ruled on Friday in a case that will change how states regulate the matter.\n\n"
        "The opinion is the most consequential decision in decades, legal scholars said after it was published.\n"
    )
    meta = clean_text(raw).meta
    assert meta.date == "2022-06-24"
    assert meta.url == "https://www.cnn.com/2022/06/24/politics/case/index.html"


BODY = (
    "The park's northern entrances stayed closed on Wednesday after floodwater washed out roads and bridges, officials "
    "said.\n\n"
    "Rangers expect the southern loop to reopen within a week if the river keeps falling, the superintendent said.\n"
)


@pytest.mark.parametrize(
    "head, title",
    [
        # A headline the page cut short: not a sentence that ends, so not the body's first paragraph.
        (
            "Yellowstone still closed as flooding recedes and thousands ...\nPublished 2022-06-15\n",
            "Yellowstone still closed as flooding recedes and thousands ...",
        ),
        # A headline shaped like a sentence, followed by its byline and date, is still the headline.
        (
            "What is Diwali, and how is it celebrated?\nBy Jane Doe\nPublished 2022-06-15\n",
            "What is Diwali, and how is it celebrated?",
        ),
        # No headline line: neither a long byline of names nor a wire dateline is taken for one.
        (
            "By Jason Hanna Amir Vera Elizabeth Wolfe David Williams, Jason Hanna, Amir Vera, Elizabeth Wolfe, David "
            "Williams\nPublished 2022-06-15\n",
            None,
        ),
        ("By Jane Doe\nPublished 2022-06-15\n\nNew York CNN Business —\n", None),
        ("By Jane Doe\nPublished 2022-06-15\n\nJackson, Wyoming CNN —\n", None),
    ],
)
def test_headlines_are_found_and_bylines_and_datelines_are_not_headlines(head, title) -> None:
    result = clean_text(head + "https://www.example.com/2022/06/15/us/park-flooding/index.html\n\n" + BODY)
    assert result.meta.title == title
    assert result.meta.date == "2022-06-15"
    assert result.text.startswith("The park's northern entrances")  # nothing of the head is left in the body


def test_a_byline_of_names_names_an_author() -> None:
    meta = clean_text(
        "By Jason Hanna Amir Vera Elizabeth Wolfe, Jason Hanna, Amir Vera\nPublished 2022-06-15\n\n" + BODY
    ).meta
    assert meta.author == "Jason Hanna"


def test_a_sentence_starting_with_by_is_not_a_byline() -> None:
    text = "By Friday the talks had ended without a deal, the ministers said.\n\n" + BODY
    assert clean_text(text).text.startswith("By Friday the talks had ended")


def test_url_slugs() -> None:
    from rag.text.chunking import url_slug

    assert url_slug("https://www.cnn.com/2022/06/15/business/ford-recall/index.html") == "ford recall"
    assert (
        url_slug("https://www.usatoday.com/story/news/2022/06/15/yellowstone-park-flooding/7632874001/")
        == "yellowstone park flooding"
    )
    assert url_slug("https://example.com/a/b") is None and url_slug(None) is None
    assert url_slug("https://example.com/news/2022-06-15/") is None  # a date, not words
