"""The engine: models, sampling, branches and analysis, with no UI imports.

Everything the CLI and the TUI show is computed here and handed over as the plain
dataclasses of :mod:`tokentui.engine.results`.
"""

from tokentui.engine.errors import (
    ConstraintError,
    ContextOverflowError,
    ModelLoadError,
    ParameterError,
    PromptError,
    SessionError,
    TokentuiError,
)
from tokentui.engine.params import PRESETS, SamplingParams
from tokentui.engine.results import Candidate, StepResult, Token

__all__ = [
    "PRESETS",
    "Candidate",
    "ConstraintError",
    "ContextOverflowError",
    "ModelLoadError",
    "ParameterError",
    "PromptError",
    "SamplingParams",
    "SessionError",
    "StepResult",
    "Token",
    "TokentuiError",
]
