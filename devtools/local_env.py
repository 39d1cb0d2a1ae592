"""`make run`'s local `.env`: written with a random SECRET_KEY and DEBUG=true when there is none, and an empty
SECRET_KEY filled in (as in a fresh copy of .env.example), so that the quick start needs no editing.

Run as `python -m devtools.local_env [PATH]`."""

from __future__ import annotations

import re
import secrets
import sys
from pathlib import Path

_EMPTY_SECRET_KEY = re.compile(r"^SECRET_KEY=[ \t]*$", re.MULTILINE)


def local_env_prepare(path: Path) -> str | None:
    """Writes or completes the file at `path`; says what it did, or None when there was nothing to do."""
    secret_key = f"SECRET_KEY={secrets.token_urlsafe(48)}"
    if not path.exists():
        path.write_text(f"# Local development settings (never commit this file).\n{secret_key}\nDEBUG=true\n")
        return f"Wrote {path} with a random SECRET_KEY and DEBUG=true."
    text = path.read_text()
    if not _EMPTY_SECRET_KEY.search(text):
        return None
    path.write_text(_EMPTY_SECRET_KEY.sub(secret_key, text, count=1))
    return f"Filled in the empty SECRET_KEY of {path} with a random one."


if __name__ == "__main__":
    done = local_env_prepare(Path(sys.argv[1] if len(sys.argv) > 1 else ".env"))
    if done:
        print(done)
