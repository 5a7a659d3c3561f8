"""Where Tanya keeps its state: one data home holding the model, the document store, BM25 and
(unless a Chroma server is configured) the Chroma database. Moving Tanya means moving this folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def default_home() -> Path:
    """``TANYA_HOME``, else ``$XDG_DATA_HOME/tanya`` (``~/.local/share/tanya``)."""
    if os.environ.get("TANYA_HOME"):
        return Path(os.environ["TANYA_HOME"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "tanya"


@dataclass(frozen=True)
class DataHome:
    root: Path
    chroma_url: str | None = None  # e.g. http://127.0.0.1:8000; None = embedded Chroma in ``root``
    model: Path | None = None  # another home's model folder (the eval indexes share the user's model)

    @classmethod
    def resolve(cls, root: Path | str | None = None, chroma_url: str | None = None) -> DataHome:
        return cls(Path(root) if root else default_home(),
                   chroma_url or os.environ.get("TANYA_CHROMA_URL") or None)

    @property
    def model_dir(self) -> Path:
        """``TANYA_MODEL_DIR`` lets several homes (tests, benchmarks) share one provisioned model."""
        override = os.environ.get("TANYA_MODEL_DIR")
        if override:
            return Path(override)
        return self.model or self.root / "models" / "multilingual-e5-small"

    @property
    def store_path(self) -> Path:
        return self.root / "documents.sqlite3"

    @property
    def bm25_dir(self) -> Path:
        return self.root / "bm25"

    @property
    def chroma_dir(self) -> Path:
        return self.root / "chroma"

    @property
    def lock_path(self) -> Path:
        """Held by the one process writing (index/index.py ``Index.writing``)."""
        return self.root / "index.lock"

    @property
    def chroma_lock_path(self) -> Path:
        """Held by the one process that has the embedded Chroma open (index/vectors.py ``connect``)."""
        return self.root / "chroma.lock"
