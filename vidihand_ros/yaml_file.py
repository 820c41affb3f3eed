"""Read a user's YAML file (calibration, label or retargeting configuration) as one-line errors.

Every configuration file the tools take fails the same ways (not there, unreadable, not YAML, not
a mapping), and each says so in one line naming the file; what the mapping must hold is the
caller's to check. The raw bytes come back too, for the sha256 a dataset records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

from vidihand_ros.errors import InputError

__all__ = ["read_yaml_mapping"]


def read_yaml_mapping(path: Path, what: str, expected: str) -> tuple[bytes, dict[str, Any]]:
    """(raw bytes, the document) of a YAML mapping; `what` names the file ("calibration file")
    when it is not found, `expected` says what the mapping holds when the document is not one."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} not found", source=path) from None
    except IsADirectoryError:
        raise InputError(f"{what} not found (a directory)", source=path) from None
    except OSError as err:
        raise InputError(f"cannot read: {err.strerror}", source=path) from err
    try:
        doc = YAML(typ="safe").load(raw.decode("utf-8"))
    except (YAMLError, UnicodeDecodeError) as err:
        raise InputError(f"not valid YAML: {err}".splitlines()[0], source=path) from err
    if not isinstance(doc, dict):
        raise InputError(f"expected {expected}", source=path)
    return raw, doc
