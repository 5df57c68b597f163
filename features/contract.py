"""The transaction contract: canonical columns and the mapping from a source's own names onto them."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, field_validator

from features.errors import PropensityError, validated

REQUIRED = ("customer_id", "ts")
OPTIONAL = ("invoice_id", "quantity", "unit_price", "amount", "product_id", "country", "channel")
CANONICAL = REQUIRED + OPTIONAL
CATEGORICALS = ("country", "channel")


class ColumnMapping(BaseModel):
    """Which source column feeds each canonical column.

    Each entry is a name or a list of alternative spellings (the first present wins). ``ts_format``
    is a strptime format for text timestamps (e.g. ``%Y%m%d``); without it common ISO-like forms
    are parsed. Invoices whose id starts with ``cancellation_prefix`` are returns. ``decimal`` is the
    decimal separator of text numbers (``","``: ``2,55`` and ``1.234,50``). Identical lines are
    duplicates when the log has invoice ids; without them two identical purchases on one day are
    plausible, so they are kept (and counted) unless ``duplicates_without_invoice`` is ``quarantine``.
    """

    model_config = ConfigDict(extra="forbid")

    customer_id: list[str] | None = None
    invoice_id: list[str] | None = None
    ts: list[str] | None = None
    quantity: list[str] | None = None
    unit_price: list[str] | None = None
    amount: list[str] | None = None
    product_id: list[str] | None = None
    country: list[str] | None = None
    channel: list[str] | None = None
    ts_format: str | None = None
    cancellation_prefix: str | None = None
    decimal: Literal[".", ","] = "."
    duplicates_without_invoice: Literal["keep", "quarantine"] = "keep"

    @field_validator(*CANONICAL, mode="before")
    @classmethod
    def _as_list(cls, value):
        return [value] if isinstance(value, str) else value

    def resolve(self, source_columns: list[str]) -> dict[str, str]:
        """Canonical name -> source column, for the columns the source has.

        Raises PropensityError when a required column is missing. A source without an amount (nor
        quantity and unit price) is an event log: one line per purchase, of unknown value.
        """
        present = set(source_columns)
        resolved = {}
        for canonical in CANONICAL:
            for candidate in getattr(self, canonical) or []:
                if candidate in present:
                    resolved[canonical] = candidate
                    break
        missing = [c for c in REQUIRED if c not in resolved]
        if missing:
            wanted = {c: getattr(self, c) for c in REQUIRED}
            raise PropensityError(
                f"The source has no column for {', '.join(missing)}; its columns are "
                f"{sorted(present)} and the mapping looks for {wanted}."
            )
        return resolved


@cache
def _presets() -> dict:
    text = resources.files("features").joinpath("config/presets.yaml").read_text()
    return yaml.safe_load(text)


def preset_names() -> list[str]:
    return sorted(_presets())


def load_mapping(preset: str | None = "canonical", path: Path | None = None) -> ColumnMapping:
    """A mapping from a named preset, or from a YAML file (which wins when both are given)."""
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise PropensityError(f"Cannot read the column mapping {path}: {exc.strerror}.") from None
    else:
        if preset not in _presets():
            raise PropensityError(f"Unknown column preset {preset!r}; known presets: {preset_names()}.")
        data = _presets()[preset]
    return validated(ColumnMapping, data or {}, "column mapping is")
