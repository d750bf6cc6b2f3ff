"""One lock shared by every worker of a study, wherever they run: what makes "count the trials,
then claim one" atomic, so k workers never overshoot the study's budget."""
from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
from pathlib import Path


class ClaimLock:
    """Mutual exclusion between every worker of one study, wherever they run. A dead worker's lock
    goes with it: PostgreSQL ends its session, the kernel closes its file."""

    def __init__(self, storage_url: str, study_name: str):
        import sqlalchemy
        self.url, self.study_name = storage_url, study_name
        self.backend = sqlalchemy.engine.make_url(storage_url).get_backend_name()
        self._release = None

    def acquire(self) -> ClaimLock:
        if self.backend == "postgresql":
            self._release = self._advisory_lock()
        else:   # SQLite (one machine by nature); other databases get a local lock only
            self._release = self._file_lock(self._lock_path())
        return self

    @staticmethod
    def _file_lock(path: Path):
        """flock on a file in TMPDIR that the holder deletes when it lets go, so no sweep leaves one
        behind. A waiter may then hold a deleted file's lock: it checks that its file is still the
        one at `path`, else tries again (a killed holder's file stays, and its next holder deletes it)."""
        while True:
            handle = open(path, "a+")
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                if os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                    return lambda: (path.unlink(missing_ok=True), handle.close())
            except FileNotFoundError:
                pass
            handle.close()

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    __enter__ = acquire

    def __exit__(self, *exc) -> None:
        self.release()

    def _key(self) -> int:
        return int.from_bytes(hashlib.blake2b(f"gz-sweep:{self.study_name}".encode(), digest_size=8).digest(),
                              "big", signed=True)

    def _advisory_lock(self):
        import sqlalchemy
        engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        connection = engine.connect()
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": self._key()})
        connection.commit()
        return lambda: (connection.close(), engine.dispose())   # session ends: lock released

    def _lock_path(self) -> Path:
        import sqlalchemy
        database = sqlalchemy.engine.make_url(self.url).database or ""
        where = str(Path(database).resolve()) if database and database != ":memory:" else self.url
        digest = hashlib.blake2b(f"{where}:{self.study_name}".encode(), digest_size=8).hexdigest()
        return Path(tempfile.gettempdir()) / f"gz-sweep-{digest}.lock"
