"""Writing a file so that nobody ever reads half of it: atomic_write. Imports nothing heavy, so the
settings and the web processes may use it too."""

import os
import secrets
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_write(path, exclusive=False, permissions=0o666):
    """Yield a temporary path beside `path` to write the new file at. When the block ends without
    an error, the file is flushed to disk and takes `path`'s name in one step, so readers and a
    crash find the old file or the whole new one. If the block raises, the temporary file goes and
    `path` is untouched.

    exclusive: an existing `path` is kept and FileExistsError raised (the first of several writers
    wins). permissions: of the new file, less the umask."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, permissions))
    try:
        yield temporary
        with open(temporary, "rb+") as file:
            os.fsync(file.fileno())  # on disk before the rename: a power cut leaves the old file or the new one
        if exclusive:
            os.link(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
