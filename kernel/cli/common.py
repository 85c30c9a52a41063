"""What every `ic` command handler gets: the context (global options, the connection) and how to emit.

The parser, the argument types and the error -> exit code mapping are shared with `bigend` and
`orchestrator` and live in `kernel.clikit`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from kernel import db as kdb
from kernel.cli import output

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

GLOBAL_OPTIONS_EPILOG = (
    "global options (before or after the command): --db=PATH, --json, --timeout=DUR, --verbose; "
    "see `ic --help`"
)


class Ctx:
    """Global options plus a lazily opened connection, handed to every command handler.

    A plain slotted class, not a dataclass: every `ic` call builds one, and start-up is benchmarked.
    """

    __slots__ = ("_conn", "db", "json", "timeout", "verbose")

    def __init__(
        self,
        db: str | None = None,
        json: bool = False,
        timeout: float = kdb.DEFAULT_TIMEOUT,
        verbose: bool = False,
    ) -> None:
        self.db = db
        self.json = json
        self.timeout = timeout
        self.verbose = verbose
        self._conn: sqlite3.Connection | None = None

    def db_path(self) -> str:
        return kdb.resolve_db_path(self.db)

    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = kdb.open_db(self.db_path(), timeout=self.timeout)
        return self._conn

    def run_conn(self, run_id: str) -> sqlite3.Connection:
        """The connection to the database that holds `run_id`: its project's, or the workspace's
        portfolio database for a portfolio parent (`kernel.runlocator` decides; `--db` always wins).

        Called by every command that takes a run id, before anything else opened a database.
        """
        from kernel.runlocator import locate_run

        assert self._conn is None, "run_conn() chooses the database; call it before conn()"
        self.db = locate_run(run_id, self.db, timeout=self.timeout).path
        return self.conn()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def emit(self, json_obj: Any, text: Callable[[], None] | str | None = None) -> None:
        """Write the JSON form under --json, else the text form (a string or a printer).

        A list is written as JSON lines, one document per row (an empty list prints nothing), so
        `grep '"status":"running"'` picks rows, as DESIGN 3.2 promises.
        """
        if self.json:
            if isinstance(json_obj, list):
                for item in json_obj:
                    output.emit_json(item)
            else:
                output.emit_json(json_obj)
        elif callable(text):
            text()
        elif text is not None:
            output.emit_line(text)
        elif isinstance(json_obj, dict):
            output.emit_fields(json_obj)
        else:
            output.emit_line(str(json_obj))

    def log(self, message: str) -> None:
        if self.verbose:
            from kernel.clikit import say

            say("ic", message)
