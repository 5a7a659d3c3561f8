"""Tanya's indexing layer: corpus files -> sentences -> chunks -> Chroma + BM25 + document store.

Importing any Tanya package first switches off every network reach we know of (see NOTES in the
README): the model is provisioned locally and nothing may download or phone home at run time.
"""

import os

_OFFLINE_SWITCHES = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",  # an empty value crashes `import chromadb`
    "ORT_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
for _name, _value in _OFFLINE_SWITCHES.items():
    if not os.environ.get(_name):
        os.environ[_name] = _value
