"""The default node image: the Hetzner system image whose own Python is the client's.

Why: Dask needs the client's Python major.minor on every node. A node whose system Python is
that version makes its environment from it (a venv); any other node first installs a
uv-managed interpreter, which costs a download and is one more thing that can fail. So
`image: auto` (the default) picks the image by the client's Python, and says which and why.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO = "auto"

# The system Python of the Hetzner images that have one (hetzner-reality.md, "Node images").
SYSTEM_PYTHONS = {
    "debian-12": "3.11",
    "debian-13": "3.13",
    "ubuntu-22.04": "3.10",
    "ubuntu-24.04": "3.12",
}
# Where no image has the client's Python: the newest Debian, with a uv-managed interpreter.
FALLBACK = "debian-13"


@dataclass(frozen=True)
class ImageChoice:
    name: str
    reason: str  # for the user: why this image


def choose(python: str) -> ImageChoice:
    """The image for a client on `python` ("3.12"); Debian first where both have it."""
    for name, system_python in SYSTEM_PYTHONS.items():
        if system_python == python:
            return ImageChoice(name, f"its Python {python} is the client's")
    return ImageChoice(
        FALLBACK,
        f"no Hetzner image has Python {python}: the nodes install a uv-managed {python}",
    )
