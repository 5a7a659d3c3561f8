"""The errors a user may see: shown as one line by the CLI, a 4xx or 503 with the reason over HTTP. Every
layer takes them from here; this module imports nothing, so a command that fails on its arguments fails
before the model, Chroma or llama-index are loaded."""


class InputError(ValueError):
    """Bad user input: the message is meant to be shown as is."""


class IndexBusy(RuntimeError):
    """Another process is writing to this index."""


class StoreUnavailable(RuntimeError):
    """The vector store cannot be reached (e.g. the Chroma server is down)."""


class StoreInUse(RuntimeError):
    """Another process has this home's embedded Chroma open."""
