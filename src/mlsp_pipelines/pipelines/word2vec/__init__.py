"""Word embeddings: text corpus → skip-gram / CBOW with negative sampling → intrinsic evaluation,
compared with gensim's ``Word2Vec`` on the same corpus and hyper-parameters."""

from .pipeline import create_pipelines

__all__ = ["create_pipelines"]
