"""The Hetzner OpenAPI spec shipped with the tests (tests/data/hetzner-openapi, MIT)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SPEC_PATH = Path(__file__).parent / "data" / "hetzner-openapi" / "hcloud.json"


def load_spec() -> dict[str, Any]:
    """The spec with its invalid `4xx`/`5xx` response keys renamed to `4XX`/`5XX`."""
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    for path_item in spec["paths"].values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "responses" in operation:
                responses = operation["responses"]
                for bad in ("4xx", "5xx"):
                    if bad in responses:
                        responses[bad.upper()] = responses.pop(bad)
    return spec
