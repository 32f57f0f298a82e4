"""Where numba keeps the scanner's compiled code, chosen before numba is imported.

numba looks for a cache folder in this order: ``NUMBA_CACHE_DIR`` if set; ``__pycache__``
beside the source, if writable; the user-wide cache folder (``~/.cache/numba``); and with
none writable it refuses to compile a ``cache=True`` function at all. So, unless
``NUMBA_CACHE_DIR`` is set, a read-only install (a system package, a container image) is
pointed at ``$XDG_CACHE_HOME/keytrail/numba`` (``~/.cache/keytrail/numba``) and, if that is not
writable either, at a folder under the system's temporary directory.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

CACHE_ENV = "NUMBA_CACHE_DIR"
_PACKAGE = Path(__file__).resolve().parent


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/keytrail/numba``, by default ``~/.cache/keytrail/numba``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "keytrail" / "numba"


def configure_cache_dir(package: Path = _PACKAGE) -> str | None:
    """Set ``NUMBA_CACHE_DIR`` if it is unset and ``package``'s ``__pycache__`` is not
    writable; returns the folder compiled code goes to (None: numba's own, beside the source)."""
    given = os.environ.get(CACHE_ENV)
    if given:
        return given
    if _writable(package / "__pycache__"):
        return None
    for folder in (user_cache_dir(), Path(tempfile.gettempdir()) / f"keytrail-numba-{os.getuid()}"):
        if _writable(folder):
            os.environ[CACHE_ENV] = str(folder)
            numba = sys.modules.get("numba")
            if numba is not None:  # imported already: its configuration was read at import
                numba.config.CACHE_DIR = str(folder)
            return str(folder)
    return None
