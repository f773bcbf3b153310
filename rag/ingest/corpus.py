"""Read news files and uploads into clean Articles: decode safely, convert HTML and Markdown, then clean
(rag.text.cleaning) and keep the metadata found."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path, PurePath

from rag.core.errors import BadInputError, TooLargeError, UnsupportedFileError
from rag.core.types import Article, ArticleMeta
from rag.text.cleaning import CleanResult, clean_text, parse_date
from rag.text.outlets import outlet_from_url

__all__ = [
    "SUPPORTED_SUFFIXES",
    "CleanResult",
    "article_from_bytes",
    "clean_text",
    "iter_article_paths",
    "load_article",
    "parse_date",
    "validate_doc_id",
]

SUPPORTED_SUFFIXES = frozenset({".txt", ".md", ".html", ".htm"})
_DOC_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


# ---------------------------------------------------------------- loading


def validate_doc_id(doc_id: str) -> str:
    """Return `doc_id` if it is safe to use as a file name and an id, else raise BadInputError."""
    if not isinstance(doc_id, str) or not _DOC_ID.fullmatch(doc_id) or ".." in doc_id:
        raise BadInputError(
            f"invalid document id {doc_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (no path separators, no '..')"
        )
    return doc_id


def _check_suffix(name: str) -> str:
    suffix = PurePath(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFileError(
            f"{name}: unsupported file type {suffix or '(no extension)'}; "
            f"supported: {', '.join(sorted(SUPPORTED_SUFFIXES))}"
        )
    return suffix


# A charset an HTML page declares for itself (<meta charset=...> or http-equiv Content-Type), in its first bytes.
META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_.:-]+)""", re.I)


def decode_text(name: str, data: bytes, *, declared: str | None = None) -> str:
    """The one rule for every route's bytes (files, uploads, fetched pages): a UTF-8 BOM, else the charset the
    bytes are declared in (`declared`: an HTTP header; else an HTML <meta charset>), else UTF-8. Anything else is
    refused with the same message everywhere. Not guessed: detectors read short Latin-1 news text as cp1250
    ("après" becomes "aprčs"), and a silently garbled article is worse than a clear refusal."""
    if b"\x00" in data:
        raise UnsupportedFileError(f"{name}: looks binary (contains NUL bytes); only UTF-8 text is supported")
    meta = META_CHARSET.search(data[:4096])
    charsets = [declared, meta.group(1).decode("ascii") if meta else None]
    candidates = ["utf-8-sig"] if data.startswith(b"\xef\xbb\xbf") else [c for c in charsets if c] + ["utf-8"]
    text = None
    for encoding in dict.fromkeys(candidates):
        try:
            text = data.decode(encoding)
            break
        except (LookupError, UnicodeDecodeError):
            continue
    if text is None:
        offset = 0
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            offset = exc.start
        raise UnsupportedFileError(
            f"{name}: not valid UTF-8 text (bad byte at offset {offset}) and it declares no charset that reads it; "
            "save it as UTF-8 or declare its charset"
        )
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > max(2, len(text) // 100):
        raise UnsupportedFileError(f"{name}: looks binary (many control characters); only text is supported")
    return text


def article_from_bytes(
    doc_id: str,
    name: str,
    data: bytes,
    *,
    max_bytes: int | None = None,
    path: str | None = None,
    charset: str | None = None,
) -> Article:
    """Build an Article from raw bytes (an upload or a file); `name` only supplies the file type."""
    suffix = _check_suffix(name)
    validate_doc_id(doc_id)
    if max_bytes is not None and len(data) > max_bytes:
        raise TooLargeError(f"{name}: {len(data)} bytes exceeds the limit of {max_bytes} bytes")
    raw = decode_text(name, data, declared=charset)
    if suffix in (".html", ".htm"):
        result = _clean_html(raw)
    elif suffix == ".md":
        result = _clean_markdown(raw)
    else:
        result = clean_text(raw)
    if not result.text.strip():
        raise BadInputError(f"{name} is empty: no article text left after removing boilerplate")
    if result.meta.source is None:
        result.meta.source = outlet_from_url(result.meta.url)
    return Article(
        doc_id=doc_id,
        path=path,
        text=result.text,
        meta=result.meta,
        content_hash=hashlib.sha256(data).hexdigest(),
        removed_lines=result.removed_lines,
    )


def load_article(path: Path, *, max_bytes: int | None = None) -> Article:
    """Read one file into an Article whose doc_id is the file stem."""
    path = Path(path)
    _check_suffix(path.name)
    doc_id = validate_doc_id(path.stem)
    if not path.is_file():
        raise BadInputError(f"{path}: no such file")
    # Check the size before reading so a huge file is never pulled into memory.
    if max_bytes is not None and path.stat().st_size > max_bytes:
        raise TooLargeError(f"{path.name}: {path.stat().st_size} bytes exceeds the limit of {max_bytes} bytes")
    return article_from_bytes(doc_id, path.name, path.read_bytes(), max_bytes=max_bytes, path=str(path))


def iter_article_paths(paths: list[Path]) -> Iterator[Path]:
    """Expand directories into their supported, non-hidden files; pass explicit files through.

    Explicit files keep any suffix so that load_article can say why it rejects them.
    """
    seen: set[Path] = set()
    for p in map(Path, paths):
        found = [p]
        if p.is_dir():
            found = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
        for f in found:
            key = f.resolve()
            if key not in seen:
                seen.add(key)
                yield f


# ---------------------------------------------------------------- HTML and Markdown


def _clean_html(raw: str) -> CleanResult:
    if not re.search(r"<[A-Za-z!/]", raw):
        return clean_text(raw)  # a text file saved as .html: trafilatura would find no document
    import trafilatura  # imported late: it is slow to import and only HTML needs it

    body = trafilatura.extract(raw, output_format="txt", include_comments=False, include_images=False)
    if not body:  # short pages fall under trafilatura's precision thresholds
        body = trafilatura.extract(raw, output_format="txt", include_comments=False, favor_recall=True)
    doc = trafilatura.extract_metadata(raw)
    title = (doc.title or None) if doc else None
    result = clean_text(body or "", known_title=title, unwrap=False)
    if doc:
        _prefer(result, title=title, source=doc.sitename, date=doc.date, url=doc.url, author=doc.author)
    return result


def _prefer(result: CleanResult, **declared: str | None) -> None:
    """Metadata the page declares beats what the cleaner guessed from the text."""
    guessed = result.meta.model_dump()
    declared["date"] = parse_date(declared.get("date") or "")
    result.meta = ArticleMeta(**{k: declared.get(k) or guessed[k] for k in guessed})


_MD_FRONT = re.compile(r"\A---\n(.*?)\n(?:---|\.\.\.)\n", re.S)
_MD_SUBS = [
    (re.compile(r"!\[[^\]]*\]\([^)]*\)"), ""),  # images carry no article text
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),
    (re.compile(r"\[([^\]]+)\]\[[^\]]*\]"), r"\1"),
    (re.compile(r"<(https?://[^>]+)>"), r"\1"),
    (re.compile(r"</?[A-Za-z][^>]*>"), ""),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"(?<![\w*])\*(?=\S)(.+?)(?<=\S)\*(?![\w*])"), r"\1"),
    (re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)"), r"\1"),
    (re.compile(r"`+([^`]*)`+"), r"\1"),
]
_MD_ITEM = re.compile(r"^\s*(?:[-*+]|\d{1,3}[.)])\s+")


def _clean_markdown(raw: str) -> CleanResult:
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    front: dict[str, str] = {}
    if m := _MD_FRONT.match(text):
        for line in m.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep:
                front[key.strip().lower()] = value.strip().strip("'\"")
        text = text[m.end() :]
    title = front.get("title")
    blocks: list[str] = []
    para: list[str] = []

    def flush() -> None:
        if para:
            blocks.append(" ".join(para))  # Markdown paragraphs are hard-wrapped; rejoin them
            para.clear()

    lines = text.split("\n")
    for i, line in enumerate(lines):
        line = line.strip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if re.fullmatch(r"(?:=+|-+|\*{3,}|_{3,}|```.*|~~~.*)", line) or re.match(r"^\[[^\]]+\]:\s*\S", line):
            flush()  # rules, fences, setext underlines and link definitions are syntax only
            continue
        for rx, repl in _MD_SUBS:
            line = rx.sub(repl, line)
        line = re.sub(r"^(?:>\s?)+", "", line).strip()
        heading = re.match(r"^(#{1,6})\s+(.*?)\s*#*$", line)
        setext = bool(line) and re.fullmatch(r"=+|-+", nxt) is not None
        if heading or setext:
            flush()
            head_text = heading.group(2) if heading else line
            is_h1 = len(heading.group(1)) == 1 if heading else nxt.startswith("=")
            if is_h1 and not blocks and title is None:
                title = head_text  # a leading level-1 heading is the title
            elif head_text:
                blocks.append(head_text)
        elif not line:
            flush()
        elif _MD_ITEM.match(line):
            flush()
            blocks.append(_MD_ITEM.sub("", line))
        else:
            para.append(line)
    flush()
    result = clean_text("\n\n".join(blocks), known_title=title, unwrap=False)
    _prefer(
        result,
        title=title,
        source=front.get("source") or front.get("publisher"),
        date=front.get("date"),
        url=front.get("url"),
        author=front.get("author"),
    )
    return result
