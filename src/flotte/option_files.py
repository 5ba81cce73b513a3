"""Reading an owner's secret options file (``secrets/SCOPE/NAME/options.json``, 0600).

Below the service so the read-only listings (``flotte/listing.py``) read it without
loading the use cases; ``service/options.OptionStore`` writes these files.
"""

from __future__ import annotations

import json
from typing import Any

from flotte import logs
from flotte.errors import ConfigError


def load(path: str, what: str) -> dict[str, Any]:
    """The options in ``path`` ({} when there is none), each value masked in every log
    line from now on; ``what`` names the owner in the error ("machine 'm1'")."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"cannot read the secret options of {what} ({path}): {err}",
            hint="fix or delete that file and give the secrets again",
        ) from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object", hint="delete it and retry")
    for value in data.values():
        logs.add_secret(str(value))
    return data
