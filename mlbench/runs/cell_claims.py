"""Claims on benchmark cells, so that every cell runs once however many workers, commands and machines share
a store.

A cell (a task fingerprint, a method, a seed and a configuration digest) is claimed before it runs by
inserting its row into the table ``mlbench_cell_claims`` of a SQL database every worker can reach: the
primary key makes the insert succeed for one claimer only (SQLite on one machine, PostgreSQL across
machines). The claimer keeps the row's ``heartbeat`` fresh while the cell runs and marks it ``done`` or
``failed`` (with the error) at the end. A row whose owner is gone (a process of this host that no longer
exists, or no heartbeat for :data:`GRACE_PERIOD_S`) is taken over by the next claimer with a conditional
update on the owner and heartbeat it read, so two claimers never both take it: the cell runs again, once.
A failed cell is taken again only when a claimer asks to retry failures. Ctrl-C releases (deletes) the
claims of the cells the command was running.

The MLflow store stays the record of results: a cell whose run is FINISHED is complete whatever this table
says; the table only decides who runs what. It lives beside a local SQLite store (``<store>.claims.db``), in
the store's own database when the store is one (``postgresql://``...), and wherever ``--claims URL`` says for
a tracking server.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

#: Seconds without a heartbeat after which a running claim is taken to be lost (its worker died elsewhere).
GRACE_PERIOD_S = 120.0
#: How often a running claim's heartbeat is written.
HEARTBEAT_INTERVAL_S = 20.0
TABLE = "mlbench_cell_claims"


def claims_url(tracking_uri: str, explicit: str | None = None) -> str | None:
    """Where the claims of a store live: ``explicit``, else beside a local SQLite store or in a database
    store itself; None for a tracking server without ``--claims`` (each command then coordinates only its
    own workers)."""
    if explicit:
        return explicit
    if tracking_uri.startswith("sqlite:///"):
        path, _, _ = tracking_uri[len("sqlite:///"):].partition("?")
        return f"sqlite:///{path}.claims.db"
    if tracking_uri.startswith(("postgresql", "mysql", "mssql")):
        return tracking_uri
    return None


def this_owner() -> str:
    """A claimer's name: host, process id and a random token (a reused pid is another owner)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _alive_here(host: str, pid: int | None) -> bool | None:
    """Whether process ``pid`` of ``host`` exists: True/False on this host, None (cannot tell) elsewhere."""
    if host != socket.gethostname() or pid is None:
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Claim:
    cell: str
    owner: str
    attempt: int
    previous_owner: str = ""  # whose lost claim this one took over (its run is left to end as KILLED)


class ClaimBoard:
    """The claims table of one database (created on first use)."""

    def __init__(self, url: str) -> None:
        import sqlalchemy as sa

        from mlbench.runs.store import with_postgres_driver

        self.url = url
        self.engine = sa.create_engine(with_postgres_driver(url), pool_pre_ping=True, **_engine_options(url))
        meta = sa.MetaData()
        self.table = sa.Table(
            TABLE, meta,
            sa.Column("cell", sa.String(64), primary_key=True),
            sa.Column("description", sa.String(500), nullable=False),
            sa.Column("status", sa.String(16), nullable=False),  # running, done, failed
            sa.Column("owner", sa.String(200), nullable=False),
            sa.Column("host", sa.String(200), nullable=False),
            sa.Column("pid", sa.Integer),
            sa.Column("heartbeat", sa.Float, nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("run_id", sa.String(64)),
            sa.Column("error", sa.Text),
        )
        for attempt in range(5):  # several workers may create the table at once
            try:
                meta.create_all(self.engine, checkfirst=True)
                break
            except sa.exc.SQLAlchemyError:
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def row(self, cell: str) -> dict[str, Any] | None:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            found = conn.execute(sa.select(self.table).where(self.table.c.cell == cell)).mappings().first()
        return dict(found) if found is not None else None

    def claim(self, cell: str, description: str, owner: str, retry_failed: bool = False,
              obsolete_done: Callable[[], bool] | None = None) -> Claim | None:
        """Take ``cell`` for ``owner``, or None when it is running elsewhere, done, or failed (and no retry).

        A done cell is taken again when ``obsolete_done()`` says its run is no longer current in the store (its
        run was marked failed, or went stale); of several claimers that find so at once, one takes it."""
        import sqlalchemy as sa

        host, pid, now = owner.split(":")[0], int(owner.split(":")[1]), time.time()
        values = dict(cell=cell, description=description[:500], status="running", owner=owner, host=host, pid=pid,
                      heartbeat=now, attempts=1, run_id=None, error=None)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(self.table).values(**values))
            return Claim(cell, owner, 1)
        except sa.exc.IntegrityError:
            pass
        old = self.row(cell)
        if old is None:  # released between our insert and our read: try once more
            return self.claim(cell, description, owner, retry_failed, obsolete_done)
        lost = old["status"] == "running" and (
            _alive_here(old["host"], old["pid"]) is False or now - old["heartbeat"] > GRACE_PERIOD_S)
        again = old["status"] == "done" and obsolete_done is not None and obsolete_done()
        if not (lost or again or (retry_failed and old["status"] == "failed")):
            return None
        values.update(attempts=old["attempts"] + 1)
        with self.engine.begin() as conn:  # only if nobody took it since we read it
            taken = conn.execute(sa.update(self.table).where(
                (self.table.c.cell == cell) & (self.table.c.owner == old["owner"])
                & (self.table.c.heartbeat == old["heartbeat"])).values(**values)).rowcount
        return Claim(cell, owner, values["attempts"], previous_owner=old["owner"]) if taken == 1 else None

    def _update(self, claim: Claim, **values: Any) -> bool:
        import sqlalchemy as sa

        with self.engine.begin() as conn:
            return conn.execute(sa.update(self.table).where(
                (self.table.c.cell == claim.cell) & (self.table.c.owner == claim.owner)).values(**values)).rowcount == 1

    def beat(self, claim: Claim) -> bool:
        """Refresh the heartbeat; False when the claim was taken over (its owner was thought lost)."""
        return self._update(claim, heartbeat=time.time())

    def started(self, claim: Claim, run_id: str) -> None:
        self._update(claim, run_id=run_id)

    def finish(self, claim: Claim, ok: bool, error: str = "") -> None:
        self._update(claim, status="done" if ok else "failed", heartbeat=time.time(), error=error[:5000] or None)

    def release(self, claim: Claim) -> None:
        """Give a cell back (the command was interrupted): the next claimer takes it at once."""
        import sqlalchemy as sa

        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(
                (self.table.c.cell == claim.cell) & (self.table.c.owner == claim.owner)))

    def release_running(self, host: str, pids: set[int]) -> list[dict[str, Any]]:
        """Delete the running claims of processes ``pids`` of ``host`` (workers stopped by Ctrl-C); returns them."""
        import sqlalchemy as sa

        gone = [r for r in self.rows() if r["status"] == "running" and r["host"] == host and r["pid"] in pids]
        with self.engine.begin() as conn:
            for r in gone:
                conn.execute(sa.delete(self.table).where(
                    (self.table.c.cell == r["cell"]) & (self.table.c.owner == r["owner"])))
        return gone

    def rows(self) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(self.table)).mappings()]


class Heartbeat:
    """Keeps a claim's heartbeat fresh from a daemon thread while a cell runs (a context manager)."""

    def __init__(self, board: ClaimBoard, claim: Claim, interval: float = HEARTBEAT_INTERVAL_S) -> None:
        self.board, self.claim, self.interval = board, claim, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="mlbench-cell-heartbeat")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.board.beat(self.claim)
            except Exception:  # a store hiccup: the next beat tries again
                pass

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _engine_options(url: str) -> dict[str, Any]:
    """SQLite: wait for a busy file instead of failing at once (several worker processes write it)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    return {}
