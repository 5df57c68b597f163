"""Errors a user can cause. The CLI prints their message as one sentence and exits non-zero."""


class PropensityError(Exception):
    """A mistake in the input, the configuration or the request (not a bug in Propensity)."""


def validated(model, data, what: str):
    """``model.model_validate(data)``; a pydantic error becomes one sentence (``what``: "training config is")."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top)"
        message = first["msg"].removeprefix("Value error, ")
        raise PropensityError(f"The {what} invalid at {where!r}: {message}.") from None
