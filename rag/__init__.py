"""newsrag core: articles -> passages -> embeddings -> index -> retrieval -> generation -> verified citations."""

__version__ = "0.1.0"
