"""Retrieval and answers over a Tanya index. ``from rag import Tanya`` is the Python API."""

import index  # noqa: F401  (sets the offline switches before anything heavy is imported)
from rag.answer import Answer, Citation
from rag.tanya import QuestionError, Tanya

__all__ = ["Answer", "Citation", "QuestionError", "Tanya"]
