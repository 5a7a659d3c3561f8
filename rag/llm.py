"""An OpenAI-compatible chat endpoint (llama.cpp's server, Ollama, vLLM, LM Studio), off by default.

Only the transport lives here: llama-index's ``OpenAILike`` speaks the chat-completions API, and every
failure (refused connection, timeout, an HTTP error, a reply that is not a chat completion) becomes
``LLMUnavailable`` with a one-line reason, so the caller falls back to the extractive answer. What the
model is asked and how its reply is checked is rag/generated.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from index.documents import InputError

DEFAULT_TIMEOUT = 60.0
DEFAULT_MODEL = "local"  # llama.cpp's server answers whatever model name it is given
MAX_ANSWER_TOKENS = 200


class LLMUnavailable(RuntimeError):
    """The endpoint could not give an answer; the message says why (for the answer's note)."""


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

    @property
    def model_name(self) -> str:
        """The model answering: the one asked for, else the first the server lists (``/v1/models``)."""
        if self._model_name is None:
            self._model_name = self.settings.model
            if self.settings.model == DEFAULT_MODEL:
                import httpx

                try:
                    listed = httpx.get(f"{self.settings.url}/models", timeout=min(5.0, self.settings.timeout))
                    self._model_name = str(listed.json()["data"][0]["id"])
                except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
                    pass  # the question itself will tell whether the server is there
        return self._model_name

    def _client(self):
        from llama_index.llms.openai_like import OpenAILike

        if self._llm is None:
            s = self.settings
            self._llm = OpenAILike(model=s.model, api_base=s.url, api_key="not-needed", is_chat_model=True,
                                   temperature=0.0, max_tokens=MAX_ANSWER_TOKENS, timeout=s.timeout,
                                   max_retries=0, context_window=8192)
        return self._llm

    def stream(self, messages: Sequence[tuple[str, str]]) -> Iterator[str]:
        """The reply to ``messages`` ((role, content) pairs) as it arrives (raises LLMUnavailable, also
        midway)."""
        import openai
        from llama_index.core.llms import ChatMessage

        chat = [ChatMessage(role=role, content=content) for role, content in messages]  # type: ignore[arg-type]
        try:
            for chunk in self._client().stream_chat(chat):
                if chunk.delta:
                    yield chunk.delta
        except openai.APITimeoutError:
            raise LLMUnavailable(f"the LLM at {self.settings.url} did not answer within "
                                 f"{self.settings.timeout:g} s") from None
        except openai.APIConnectionError:
            raise LLMUnavailable(f"the LLM at {self.settings.url} cannot be reached") from None
        except openai.APIStatusError as e:
            raise LLMUnavailable(f"the LLM at {self.settings.url} answered HTTP {e.status_code}") from None
        except (openai.OpenAIError, ValueError, KeyError, TypeError, AttributeError) as e:
            # A reply that is not a chat completion (garbage, a cut stream) surfaces as one of these.
            raise LLMUnavailable(f"the LLM at {self.settings.url} gave an unreadable reply "
                                 f"({type(e).__name__})") from None

    def complete(self, messages: Sequence[tuple[str, str]]) -> str:
        return "".join(self.stream(messages))
