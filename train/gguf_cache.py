"""A GGUF base converted once: its de-quantised weights cached as a plain model folder.

transformers de-quantises a GGUF file on every load (SmolLM2-135M: about 15 s on 2 cores), so
the first load writes the fp32 model to ``$CURATE_CACHE_DIR/gguf/<sha256 of the file>/`` (default
``~/.cache/curate``), without the GGUF quantization entry in its config, atomically (a temporary
name renamed into place); the file is hashed once per process, path, size and mtime.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from train.errors import ConfigError


def cache_root() -> Path:
    folder = os.environ.get("CURATE_CACHE_DIR")
    return (Path(folder).expanduser() if folder else Path.home() / ".cache" / "curate") / "gguf"


@functools.lru_cache(maxsize=None)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | Path) -> str:
    stat = os.stat(path)
    return _sha256(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def converted_folder(model_dir: str | Path, gguf_file: str) -> Path:
    """The cached model folder of ``model_dir/gguf_file``, converting the file first if needed."""
    source = Path(model_dir) / gguf_file
    if not source.is_file():
        raise ConfigError(f"gguf_file {gguf_file!r}: no such file in {model_dir}; set gguf_file: null "
                          f"for a folder of safetensors weights")
    folder = cache_root() / file_sha256(source)
    if not folder.is_dir():
        convert(model_dir, gguf_file, folder)
    return folder


def convert(model_dir: str | Path, gguf_file: str, folder: Path):
    """De-quantise the GGUF file into ``folder`` (atomically); returns the model it loaded."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=gguf_file, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(model_dir, gguf_file=gguf_file)
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config  # the tensors are plain fp32 now
    model.hf_quantizer = None
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary folder
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "source.json").write_text(json.dumps(
            {"gguf_file": gguf_file, "model_dir": str(model_dir), "sha256": folder.name}, indent=2))
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.is_dir():  # not another process's finished conversion: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model
