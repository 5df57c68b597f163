"""Errors a user can cause. The CLI prints their message as one sentence and exits non-zero."""


class PropensityError(Exception):
    """A mistake in the input, the configuration or the request (not a bug in Propensity)."""
