"""Optional generated answers from an OpenAI-compatible LLM, grounded in the cited sentences.

- client.py  the endpoint client (llama-index OpenAILike), with its timeouts and errors
- check.py   the prompt, and the check of each generated sentence against the citations
- model.py   the local model: provisioning its GGUF from installed packages, `tanya llm-server`
"""
