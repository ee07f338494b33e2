"""Errors the faces show as one clear line (the CLI exits with code 2)."""


class TokentuiError(Exception):
    """Base of every error meant for the user: its message is one readable line."""


class ModelLoadError(TokentuiError):
    """The model or tokenizer could not be found or loaded."""


class ParameterError(TokentuiError):
    """A sampling or generation parameter is out of range."""


class PromptError(TokentuiError):
    """The prompt is empty or cannot be tokenized."""


class ContextOverflowError(TokentuiError):
    """The sequence would exceed the model's context window."""


class SessionError(TokentuiError):
    """A branch operation is impossible (nothing to delete, unknown branch ...)."""


class ConstraintError(TokentuiError):
    """A constraint is invalid or forbids what was asked."""


class Cancelled(TokentuiError):
    """The user stopped a long computation before it finished."""


class CapabilityError(TokentuiError):
    """The backend cannot give this view (a server has no attention weights, a recurrent
    model has none either): the message says why, in one line."""
