"""``typing.Protocol`` where it exists (Python 3.8+), ``object`` on Python 3.7.

Moonraker still supports Python 3.7 (older Raspberry Pi images); there the
component must import.  The structural types exist for the type checker only,
so a plain base class loses nothing at run time.
"""

import sys

if sys.version_info >= (3, 8):
    from typing import Protocol
else:  # pragma: no cover - exercised by the Python 3.7 test
    Protocol = object

__all__ = ["Protocol"]
