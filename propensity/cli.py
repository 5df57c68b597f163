"""The one CLI: each command (in ``propensity.*_commands``) parses its options and calls one library
function. User mistakes print one sentence and exit 2."""

from __future__ import annotations

import sys

from features.errors import PropensityError
from propensity import (  # noqa: F401 - they register the commands
    campaign_commands,
    data_commands,
    model_commands,
    serving_commands,
)
from propensity.app import app
from propensity.printers import console


def main() -> None:
    try:
        app()
    except PropensityError as exc:
        from rich.markup import escape

        console.print("[bold red]Error:[/] " + escape(str(exc)), highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
