"""Autosave and the recent-models list: an object the App holds (``app.autosave``).

The App calls it explicitly: :meth:`AutosaveController.start` from its ``on_mount``,
:meth:`AutosaveController.tick` before replacing a session, :meth:`AutosaveController.flush`
from its ``on_unmount`` (after the engine is told to stop). A write runs on a plain thread
that only reads the session under its lock, so an autosave never waits for a generation to end
and never touches the model.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokentui.engine import chat
from tokentui.engine.errors import TokentuiError
from tokentui.engine.persist import session_file as store
from tokentui.engine.session import Session

if TYPE_CHECKING:
    from tokentui.tui.app import TokenApp

AUTOSAVE_S = 1.0
"""Autosave at most this often (and only after a change)."""
RECENT_FILE = "recent-models.txt"
RECENT_MAX = 8


def fingerprint(session: Session) -> tuple[Any, ...]:
    """Cheap change detector read on the UI thread: counts and the newest step's identity."""
    branches = list(session.branches.values())
    current = session.branches.get(session.current_id)
    last = current.steps[-1] if current is not None and current.steps else None
    return (len(branches), session.next_branch_id, session.current_id, sum(len(b.steps) for b in branches),
            id(last), tuple(b.name for b in branches))


def write_session(session: Session, path: Path) -> Path:
    """Save with the conversation of the current branch (runs on a plain thread)."""
    with session.lock:
        messages = chat.conversation(session)
    return store.save(session, path, messages=messages)


def read_recent(folder: Path | None) -> list[str]:
    if folder is None:
        return []
    try:
        lines = (folder / RECENT_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    return [line for line in lines if line.strip()][:RECENT_MAX]


def remember_model(folder: Path | None, spec: str | None) -> None:
    """Put ``spec`` first in the recent-models list (best effort: a read-only disk is fine)."""
    if folder is None or not spec:
        return
    entries = [spec, *[r for r in read_recent(folder) if r != spec]][:RECENT_MAX]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        store.write_atomic(folder / RECENT_FILE, "\n".join(entries) + "\n")
    except OSError:
        pass


class AutosaveController:
    """Saves the app's session to ``app.data_dir`` once a second after a change, and on quit."""

    def __init__(self, app: TokenApp) -> None:
        self.app = app
        self.io_lock = threading.Lock()
        """Held while a session file is written (an autosave or ctrl+s)."""
        self.saver: store.Autosaver | None = None
        self._key: tuple[int, int] | None = None
        self._seen: tuple[Any, ...] | None = None

    def start(self) -> None:
        """From the App's ``on_mount``: tick once a second when there is a folder to save to."""
        if self.app.data_dir is not None:
            self.app.set_interval(AUTOSAVE_S, self.tick, name="autosave")

    def tick(self) -> None:
        """Save the session if it changed (a new session gets a new file)."""
        session, folder = self.app.session, self.app.data_dir
        if session is None or folder is None:
            return
        key = (id(session), id(session.prompt_ids))
        seen = fingerprint(session)
        if key != self._key:
            self._key = key
            self._seen = seen
            self.saver = store.Autosaver(folder / store.autosave_path(session.prompt).name,
                                         interval=AUTOSAVE_S)
            if not any(b.steps for b in session.branches.values()):
                return
        elif seen == self._seen:
            return
        if self.io_lock.locked():
            return  # the previous save is still writing: the next tick retries
        self._seen = seen
        saver = self.saver
        assert saver is not None
        self.app.run_worker(lambda: self._write(session, saver), thread=True, group="autosave",
                            name="autosaving the session", exit_on_error=False)

    def _write(self, session: Session, saver: store.Autosaver) -> None:
        with self.io_lock, session.lock:
            saver.pending = True
            saver.flush(session, messages=chat.conversation(session))

    def write(self, session: Session, path: Path) -> Path:
        """ctrl+s (on a plain thread): the file, never at the same time as an autosave."""
        with self.io_lock:
            return write_session(session, path)

    def flush(self) -> None:
        """From the App's ``on_unmount``: the last changes (waits briefly for the session lock)."""
        session, saver = self.app.session, self.saver
        if session is None or saver is None or fingerprint(session) == self._seen:
            return
        if session.lock.acquire(timeout=5):
            try:
                saver.pending = True
                saver.flush(session, messages=chat.conversation(session))
            except (OSError, TokentuiError):
                pass
            finally:
                session.lock.release()
