"""An OpenAI-compatible chat endpoint (llama.cpp's server, Ollama, vLLM, LM Studio), off by default.

Only the transport lives here: llama-index's ``OpenAILike`` speaks the chat-completions API, and every
failure (refused connection, timeout, an HTTP error, a reply that is not a chat completion) becomes
``LLMUnavailable`` with a one-line reason, so the caller falls back to the extractive answer. What the
model is asked and how its reply is checked is rag/generation/check.py.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from index.errors import InputError

DEFAULT_TIMEOUT = 60.0
DEFAULT_MODEL = "local"  # llama.cpp's server answers whatever model name it is given
MAX_ANSWER_TOKENS = 200


T = TypeVar("T")


class LLMUnavailable(RuntimeError):
    """The endpoint could not give an answer; the message says why (for the answer's note)."""


def before_deadline(produce: Callable[[], Iterator[T]], deadline: float, late: str) -> Iterator[T]:
    """The items of ``produce()`` as they come, until ``time.monotonic()`` reaches ``deadline``; then
    ``LLMUnavailable(late)``. httpx's timeouts bound each read, not the whole reply, so a server that sends
    a byte or a token every few seconds would hold an answer for ever: the reply is read in a worker thread
    and waited for here. The worker stops at its next item (or its own read timeout)."""
    items: queue.Queue[tuple[bool, object]] = queue.Queue()
    abandoned = threading.Event()

    def work() -> None:
        try:
            for item in produce():
                if abandoned.is_set():
                    return
                items.put((True, item))
            items.put((False, None))
        except Exception as exc:  # handed to the reader below, raised there
            items.put((False, exc))

    threading.Thread(target=work, name="llm-reply", daemon=True).start()
    while True:
        try:
            more, item = items.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            abandoned.set()
            raise LLMUnavailable(late) from None
        if not more:
            if isinstance(item, Exception):
                raise item
            return
        yield item  # type: ignore[misc]


@dataclass(frozen=True)
class LLMSettings:
    url: str
    model: str = DEFAULT_MODEL
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def resolve(cls, url: str | None = None, model: str | None = None,
                timeout: float | None = None) -> LLMSettings | None:
        """From the arguments, else ``TANYA_LLM_URL`` / ``TANYA_LLM_MODEL`` / ``TANYA_LLM_TIMEOUT``;
        None (generation off) when no URL is set."""
        url = url or os.environ.get("TANYA_LLM_URL") or None
        if url is None:
            return None
        if not url.startswith(("http://", "https://")):
            raise InputError(f"the LLM URL must start with http:// or https:// (got {url!r})")
        model = model or os.environ.get("TANYA_LLM_MODEL") or DEFAULT_MODEL
        if timeout is None:
            raw = os.environ.get("TANYA_LLM_TIMEOUT")
            try:
                timeout = float(raw) if raw else DEFAULT_TIMEOUT
            except ValueError:
                raise InputError(f"TANYA_LLM_TIMEOUT must be a number of seconds (got {raw!r})") from None
        if not 0 < timeout <= 600:
            raise InputError(f"the LLM timeout must be between 0 and 600 seconds (got {timeout})")
        # The OpenAI client appends /chat/completions to the base, which by convention ends in /v1.
        base = url.rstrip("/")
        return cls(base if base.endswith("/v1") else base + "/v1", model, timeout)


class LLMClient:
    def __init__(self, settings: LLMSettings) -> None:
        self.settings = settings
        self._llm = None  # made at the first question: the openai SDK takes ~0.5 s to import
        self._model_name: str | None = None

    def model_name(self, deadline: float | None = None) -> str:
        """The model answering: the one asked for, else the first the server lists (``/v1/models``), asked
        within ``deadline`` (``time.monotonic()``) and 5 s at most."""
        if self._model_name is None:
            self._model_name = self.settings.model
            if self.settings.model == DEFAULT_MODEL:
                limit = min(5.0, self.settings.timeout)
                deadline = min(deadline or float("inf"), time.monotonic() + limit)
                with contextlib.suppress(LLMUnavailable):  # the question itself will tell whether the server is there
                    self._model_name = next(before_deadline(lambda: self._listed_model(limit), deadline,
                                                            "no model list in time"))
        return self._model_name

    def _listed_model(self, limit: float) -> Iterator[str]:
        import httpx

        try:
            listed = httpx.get(f"{self.settings.url}/models", timeout=limit)  # redirects are not followed
            yield str(listed.json()["data"][0]["id"])
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
            raise LLMUnavailable("no model list") from None

    def prepare(self) -> None:
        """Import and build the client (~1 s the first time), so that a deadline counts the server only."""
        self._client()

    def _client(self):
        import httpx
        from llama_index.llms.openai_like import OpenAILike

        if self._llm is None:
            s = self.settings
            # The OpenAI SDK follows redirects by default: a 307 would send the prompt to another server.
            self._llm = OpenAILike(model=s.model, api_base=s.url, api_key="not-needed", is_chat_model=True,
                                   temperature=0.0, max_tokens=MAX_ANSWER_TOKENS, timeout=s.timeout,
                                   max_retries=0, context_window=8192,
                                   http_client=httpx.Client(follow_redirects=False, timeout=s.timeout))
        return self._llm

    def stream(self, messages: Sequence[tuple[str, str]], deadline: float | None = None) -> Iterator[str]:
        """The reply to ``messages`` ((role, content) pairs) as it arrives, whole before ``deadline``
        (``time.monotonic()``; default: the timeout from now). Raises LLMUnavailable, also midway."""
        deadline = deadline if deadline is not None else time.monotonic() + self.settings.timeout
        return before_deadline(lambda: self._deltas(messages), deadline, self._late)

    @property
    def _late(self) -> str:
        return f"the LLM at {self.settings.url} did not answer within {self.settings.timeout:g} s"

    def _deltas(self, messages: Sequence[tuple[str, str]]) -> Iterator[str]:
        import openai
        from llama_index.core.llms import ChatMessage

        chat = [ChatMessage(role=role, content=content) for role, content in messages]  # type: ignore[arg-type]
        try:
            for chunk in self._client().stream_chat(chat):
                if chunk.delta:
                    yield chunk.delta
        except openai.APITimeoutError:
            raise LLMUnavailable(self._late) from None
        except openai.APIConnectionError:
            raise LLMUnavailable(f"the LLM at {self.settings.url} cannot be reached") from None
        except openai.APIStatusError as e:
            raise LLMUnavailable(f"the LLM at {self.settings.url} answered HTTP {e.status_code}") from None
        except (openai.OpenAIError, ValueError, KeyError, TypeError, AttributeError) as e:
            # A reply that is not a chat completion (garbage, a cut stream) surfaces as one of these.
            raise LLMUnavailable(f"the LLM at {self.settings.url} gave an unreadable reply "
                                 f"({type(e).__name__})") from None
