"""Request and answer bodies. ``ScoredCustomer`` is derived from the one scored-row definition."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator

from serving.schema import SERVED_COLUMNS

MAX_LINES = 20_000
MAX_FEATURE_ROWS = 1_000


def _id_text(value):
    """An id sent as a JSON number (a client serialising a numeric id column: 17850, or 17850.0 from pandas, whose
    integer columns with a gap become floats) is taken as the integer's text, "17850"; other numbers as their
    text; true and false are not ids."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


IdText = Annotated[str, BeforeValidator(_id_text)]


class Transaction(BaseModel):
    """One transaction line, in the canonical columns (give amount, or quantity and unit_price). Ids may be sent as
    text or as JSON numbers."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # NaN, Infinity and 1e309 are not numbers: 422
    customer_id: IdText = Field(min_length=1, max_length=200)
    invoice_id: IdText | None = Field(None, max_length=200)
    ts: datetime
    quantity: float | None = None
    unit_price: float | None = None
    amount: float | None = None
    product_id: IdText | None = Field(None, max_length=200)
    country: str | None = Field(None, max_length=200)
    channel: str | None = Field(None, max_length=200)


AsOfFrom = Literal["request", "latest batch", "today"]


class ScoreRequest(BaseModel):
    """Either ``transactions`` (features are computed as of ``as_of``) or ready ``features`` rows.

    The schema says so (one of the two, non-empty), so that a body the schema allows is one the service takes."""

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={"oneOf": [{"required": ["transactions"]}, {"required": ["features"]}]},
    )
    as_of: date | None = Field(
        None,
        description="Score as of this date (features use everything before it). Default: the as_of of the latest "
        "batch scores, so that the answer compares with the risk list; today when there is no batch. The answer says "
        "which (`as_of_from`).",
    )
    # Typed without None (the schema shows no null); absent is the default.
    transactions: list[Transaction] = Field(None, min_length=1, max_length=MAX_LINES)
    features: list[dict[str, float | int | str | None]] = Field(None, min_length=1, max_length=MAX_FEATURE_ROWS)

    @model_validator(mode="after")
    def _one_payload(self):
        if bool(self.transactions) == bool(self.features):
            raise ValueError("give either a non-empty `transactions` list or a non-empty `features` list, not both")
        return self


ScoredCustomer = create_model(
    "ScoredCustomer",
    **{
        c.name: (c.type, Field(description=c.description))
        if c.required
        else (c.type | None, Field(None, description=c.description))
        for c in SERVED_COLUMNS
    },
    reasons=(list[str], Field([], description="The top drivers of the churn score, in words.")),
)


class Problem(BaseModel):
    """Every 4xx answer: one sentence saying what is wrong and, where there is one, the fix."""

    detail: str


class ScoreResponse(BaseModel):
    customers: list[ScoredCustomer]
    quarantined: dict[str, int] = Field(default_factory=dict, description="Lines rejected by validation, by reason.")
    segments_reference: date | None = Field(
        None, description="The batch run whose population the segments are placed against."
    )
    as_of_from: AsOfFrom = Field(
        "request", description="Where the as_of scored comes from: the request, or the default when it gave none."
    )
    lines_on_or_after_as_of: int = Field(
        0, description="Valid lines dated on or after as_of: the future at that date, so not in the features."
    )


class CampaignDecision(BaseModel):
    """Whether to contact a customer in a campaign: its members are treated (contact) or control (do not)."""

    campaign: str
    as_of: date
    customer_id: str
    group: Literal["treated", "control", "not selected"] = Field(
        description="treated: on the contact list; control: held out at random, do not contact; not selected: not "
        "eligible for this campaign"
    )
    contact: bool
