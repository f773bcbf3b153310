"""Typed errors raised by the core. The CLI turns each into one line; the API into one status code."""

from __future__ import annotations


class RagError(Exception):
    """Base of every error the product reports to a user."""


class BadInputError(RagError):
    """The request itself is wrong: empty question, bad date, top_k out of range, bad file."""


class TooLargeError(BadInputError):
    """An input exceeds a configured limit (question length, upload size)."""


class UnsupportedFileError(BadInputError):
    """A file type we do not ingest, or bytes that are not text."""


class DocumentNotFoundError(RagError):
    """A document id that the index does not hold."""


class IndexMissingError(RagError):
    """No index at the configured directory yet."""


class IndexCorruptError(RagError):
    """An index directory whose files do not load or do not agree with each other."""


class IndexMismatchError(RagError):
    """The index was built with a different embedding model or chunking than configured."""


class IndexLockedError(RagError):
    """Another writer holds the index lock."""


class ModelMissingError(RagError):
    """A model file (embedding folder or GGUF) is not where settings say, or is not a model."""


class GeneratorError(RagError):
    """The generator backend failed (server down, bad response)."""


class VectorStoreError(RagError):
    """The vector engine is unreachable or refused an operation."""


class StorageError(RagError):
    """The filesystem refused a write to the index or the stored documents (permissions, I/O error)."""


class StorageFullError(StorageError):
    """The disk or quota is full: nothing more can be written until space is freed."""


class BusyError(RagError):
    """Too many requests are waiting for the model; try again later."""

    def __init__(self, message: str = "", *, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after_s  # seconds until a retry is likely let in (the HTTP Retry-After), if known


class FetchError(RagError):
    """A page or feed could not be fetched: unreachable, an error status (404, 500), or too many redirects."""


class FetchTimeoutError(FetchError):
    """The server did not answer within RAG_FETCH_TIMEOUT_S."""


class NotHtmlError(UnsupportedFileError):
    """A fetched page is not HTML (a PDF, an image, JSON): nothing to extract an article from."""


class FetchTooLargeError(TooLargeError):
    """A fetched page or feed is larger than RAG_FETCH_MAX_BYTES."""


class FeedError(RagError):
    """A feed URL answered, but with something that is not an RSS or Atom feed."""


class FeedNotFoundError(RagError):
    """A feed URL that is not subscribed."""


class AddressRefusedError(FetchError):
    """A page or feed (or a redirect on the way) points at an address the fetch policy refuses: loopback, private,
    link-local and the like (rag/ingest/addresses.py). Refused before any byte is sent to it."""
