"""Small readers the converters share: JSON annotations and required folders, with errors that name the file."""

from __future__ import annotations

import json

from teran_core.data.errors import DataError
from teran_core.storage import Location

__all__ = ["read_json", "field", "require_folder", "read_lines"]


def read_json(location: Location, label: str):
    """Parses a JSON file; a missing or malformed one stops the conversion naming it."""
    try:
        return json.loads(location.read_bytes())
    except FileNotFoundError:
        raise DataError(f"missing annotation file {label} ({location.uri}); see docs/formats.md, 'Source layouts', for the expected layout") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{label} ({location.uri}) is not valid JSON: {err}") from None


def field(data, key: str, label: str):
    """``data[key]``; a missing key stops the conversion naming the file and key."""
    if not isinstance(data, dict) or key not in data:
        raise DataError(f"{label} has no {key!r} key; expected the layout of docs/formats.md, 'Source layouts'")
    return data[key]


def read_lines(location: Location, label: str) -> list[str]:
    """The lines of a UTF-8 text file without their line ends."""
    try:
        return location.read_bytes().decode("utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"missing file {label} ({location.uri}); see docs/formats.md, 'Source layouts', for the expected layout") from None
    except UnicodeDecodeError as err:
        raise DataError(f"{label} ({location.uri}) is not UTF-8 text: {err}") from None


def require_folder(root: Location, folder: str, what: str) -> None:
    """Stops early when a whole source folder is missing, instead of rejecting every image one by one."""
    location = root.join(folder)
    if not location.fs.isdir(location.path):
        raise DataError(f"{location.uri} does not exist or is not a folder; expected the {what} there (see docs/formats.md, 'Source layouts')")
