"""One encoding rule for files, uploads and fetched pages (issue 25, item 10): a BOM, else the declared charset
(HTTP header, <meta charset>), else UTF-8; anything else is refused with the same message on every route."""

from __future__ import annotations

import pytest

from rag.core.errors import UnsupportedFileError
from rag.ingest.corpus import article_from_bytes
from rag.ingest.fetch import Fetched, article_from_page

BODY = (
    "<html><head>{meta}<title>Caf\xe9 reopens</title></head><body><article><p>The caf\xe9 on the quay reopened on "
    "Monday after a long winter closure, its owner said, and the fishermen were back for breakfast.</p>"
    "</article></body></html>"
)
URL = "http://example.com/cafe"


def _page(data: bytes, charset: str | None = None) -> Fetched:
    return Fetched(url=URL, status=200, content_type="text/html", charset=charset, data=data)


def test_undeclared_latin1_is_refused_alike_as_an_upload_and_as_a_page():
    data = BODY.format(meta="").encode("latin-1")
    with pytest.raises(UnsupportedFileError) as upload:
        article_from_bytes("cafe", "cafe.html", data)
    with pytest.raises(UnsupportedFileError) as page:
        article_from_page(_page(data), URL)
    assert str(upload.value).removeprefix("cafe.html: ") == str(page.value).removeprefix(f"{URL}: ")
    assert "not valid UTF-8" in str(upload.value) and "declare" in str(upload.value)
    with pytest.raises(UnsupportedFileError, match="not valid UTF-8"):
        article_from_bytes("cafe", "cafe.txt", "Caf\xe9 au lait was served at the summit.\n".encode("latin-1"))


@pytest.mark.parametrize(
    "meta, header",
    [
        ("<meta charset='iso-8859-1'>", None),
        ('<meta http-equiv="Content-Type" content="text/html; charset=latin-1">', None),
        ("", "iso-8859-1"),
    ],
    ids=["meta", "http-equiv", "header"],
)
def test_a_declared_charset_is_read_alike_as_an_upload_and_as_a_page(meta, header):
    data = BODY.format(meta=meta).encode("latin-1")
    fetched, _, stored = article_from_page(_page(data, header), URL)
    assert "café on the quay" in fetched.text
    if header is None:  # an upload cannot carry the HTTP header; the page's own declaration serves both
        uploaded = article_from_bytes("cafe", "cafe.html", data)
        assert uploaded.text == fetched.text
    # The stored copy is UTF-8 and says so: `rag reindex` reads the same article from it.
    assert article_from_bytes(fetched.doc_id, "again.html", stored).text == fetched.text


def test_utf8_with_and_without_bom_is_read():
    text = BODY.format(meta="")
    assert "café" in article_from_bytes("a", "a.html", text.encode()).text
    assert "café" in article_from_bytes("b", "b.html", b"\xef\xbb\xbf" + text.encode()).text
