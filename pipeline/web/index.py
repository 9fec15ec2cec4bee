"""The workbench's call index: a disposable SQLite file, rebuilt from the store and kept up to date with it.

    calls     one row per call: when, who, how long, score, grade, reviewed, warnings
    verdicts  (call, criterion, verdict): "which calls failed criterion X"
    hits      (call, lexicon, term): "which calls had a hit of lexicon Y"
    turns     FTS5 over each turn's lemmas, so that "цену" finds "цена", "цены", "ценой"
    runs      the nightly runs already looked at

The store stays the truth: deleting the file only costs a rebuild. `refresh()` looks at the store cheaply, once a
minute or so: calls it has not indexed yet (one listing), and the calls of nightly runs that finished since the
last look (one read per new run), which is where re-analysed and re-scored calls come from. The workbench's own
changes (a review) update their call at once (`put`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from pipeline.schema import CallResult
from pipeline.stores import ArtifactStore, result_key, run_key

__all__ = ["CallFilter", "CallIndex", "CallPage", "CallRow", "SORTS"]

logger = logging.getLogger(__name__)

_SCHEMA_VERSION = "2"
_TURN_BITS = 20  # a turn's rowid is (the call's key << 20) | its index: a call's turns are one rowid range
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (
    key INTEGER PRIMARY KEY, call_id TEXT UNIQUE NOT NULL, started_at TEXT NOT NULL, manager_id TEXT,
    manager_name TEXT, duration_s REAL NOT NULL, score REAL, grade INTEGER, passed INTEGER, reviewed INTEGER NOT NULL,
    warnings INTEGER NOT NULL, layout TEXT NOT NULL, deal_id TEXT);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_manager ON calls (manager_id, started_at);
CREATE TABLE IF NOT EXISTS verdicts (call_id TEXT NOT NULL, criterion TEXT NOT NULL, title TEXT NOT NULL,
    verdict TEXT NOT NULL, reviewed INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS verdicts_criterion ON verdicts (criterion, verdict, call_id);
CREATE INDEX IF NOT EXISTS verdicts_call ON verdicts (call_id);
CREATE TABLE IF NOT EXISTS hits (call_id TEXT NOT NULL, lexicon TEXT NOT NULL, term TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS hits_term ON hits (lexicon, term, call_id);
CREATE INDEX IF NOT EXISTS hits_call ON hits (call_id);
CREATE VIRTUAL TABLE IF NOT EXISTS turns USING fts5(
    lemmas, start UNINDEXED, text UNINDEXED, tokenize = 'unicode61 remove_diacritics 0');
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY);
"""

SORTS = {"started": "c.started_at", "score": "c.score", "duration": "c.duration_s", "manager": "c.manager_name"}


@dataclass(frozen=True)
class CallFilter:
    """What the call list shows. `manager_only` restricts a manager to their own calls (access, not a filter
    they choose); `query` is searched in the transcripts by lemma; `hit` is "lexicon" or "lexicon:term"."""

    since: date | None = None
    until: date | None = None
    manager: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    failed: str | None = None
    hit: str | None = None
    query: str = ""
    reviewed: bool | None = None
    sort: str = "started"
    descending: bool = True
    page: int = 1
    page_size: int = 50
    manager_only: str | None = None


@dataclass(frozen=True)
class CallRow:
    call_id: str
    started_at: str
    manager_id: str | None
    manager_name: str | None
    duration_s: float
    score: float | None
    grade: int | None
    passed: bool | None
    reviewed: bool
    warnings: int
    layout: str
    deal_id: str | None
    failed: tuple[str, ...] = ()
    snippet: str | None = None  # the first turn the search found, for the list
    snippet_start: float | None = None


@dataclass(frozen=True)
class CallPage:
    rows: list[CallRow]
    total: int
    page: int
    pages: int
    filter: CallFilter = field(default_factory=CallFilter)


class CallIndex:
    """The index over one store.

    Args:
        path: the SQLite file (created, or rebuilt when its layout is from another version).
        store: where the calls are.
        lemmatise: text -> lemmas; the lexicon matcher's (pipeline.lexicon.text.lemmas) in the workbench, so a
            search finds what a lexicon phrase would.
    """

    def __init__(self, path: Path, store: ArtifactStore, lemmatise: Callable[[str], list[str]]) -> None:
        self.path = Path(path)
        self.store = store
        self.lemmatise = lemmatise
        self._lock = threading.RLock()
        self._generation = 0  # changes with every call (re-)indexed or forgotten: the lists below are cached
        self._lists: dict[tuple, tuple[int, list]] = {}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = self._open()

    def _open(self) -> sqlite3.Connection:
        # It holds every transcript's text: readable by this user alone, like the store's own files should be.
        self.path.touch(mode=0o600, exist_ok=True)
        self.path.chmod(0o600)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        version = db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if version is not None and version[0] != _SCHEMA_VERSION:
            db.close()
            logger.info("call index %s is from another version: rebuilding it", self.path)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            return self._open()
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (_SCHEMA_VERSION,))
        db.execute("CREATE TEMP TABLE IF NOT EXISTS matched (key INTEGER PRIMARY KEY, first INTEGER NOT NULL)")
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- keeping it up to date --------------------------------------------------------------------------------

    def refresh(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Index the calls the store has and the index has not, and the calls of runs finished since the last
        look; returns how many calls were (re-)indexed."""
        stored = {key.split("/")[1] for key in self.store.list("calls/") if key.endswith("/result.json")}
        with self._lock:
            known = {row[0] for row in self._db.execute("SELECT call_id FROM calls")}
            seen_runs = {row[0] for row in self._db.execute("SELECT run_id FROM runs")}
        todo = stored - known
        finished_runs = []
        for key in self.store.list("runs/"):
            run_id = key.removeprefix("runs/").removesuffix(".json")
            if run_id in seen_runs:
                continue
            calls, finished = self._calls_of_run(run_id)
            todo |= calls & stored
            if finished:
                finished_runs.append(run_id)
        gone = known - stored  # deleted from the store (retention, by hand)
        with self._lock:
            for call_id in gone:
                self._forget(call_id)
        for done, call_id in enumerate(sorted(todo), 1):
            data = self.store.read(result_key(call_id))
            try:
                result = CallResult.from_json(data) if data else None
            except ValueError:
                logger.warning("call %s: stored result unreadable, not indexed", call_id)
                result = None
            if result is not None:
                self.put(result)
            if progress:
                progress(done, len(todo))
        with self._lock:
            self._db.executemany("INSERT OR IGNORE INTO runs VALUES (?)", [(run_id,) for run_id in finished_runs])
        return len(todo)

    def _calls_of_run(self, run_id: str) -> tuple[set[str], bool]:
        """The calls a run stored a new result for, and whether the run has finished (its record written)."""
        from pipeline.batch.job import RunSummary

        data = self.store.read(run_key(run_id))
        if not data:
            return set(), False
        try:
            summary = RunSummary.model_validate_json(data)
        except ValueError:  # pydantic's ValidationError too
            return set(), True  # an unreadable run record tells nothing; not looked at again
        calls = {outcome.call_id for outcome in summary.calls if outcome.status in ("processed", "rescored")}
        return calls, bool(summary.finished_at)

    def put(self, result: CallResult) -> None:
        """(Re-)index one call."""
        score = result.score
        criteria = score.criteria if score else []
        turns = [(" ".join(self.lemmatise(turn.text)), turn.start, turn.text) for turn in result.turns]
        row = (result.call_id, result.metadata.started_at or result.analyzed_at, result.metadata.manager_id,
               result.metadata.manager_name, result.duration_s, score.total if score else None,
               score.grade if score else None, None if score is None else int(score.passed),
               int(any(c.review is not None for c in criteria)), len(result.warnings),
               result.layout, result.metadata.deal_id)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._forget(result.call_id)
                key = self._db.execute(
                    "INSERT INTO calls (call_id, started_at, manager_id, manager_name, duration_s, score, grade, "
                    "passed, reviewed, warnings, layout, deal_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row).lastrowid
                assert key is not None
                self._db.executemany("INSERT INTO verdicts VALUES (?, ?, ?, ?, ?)", [
                    (result.call_id, c.id, c.title, c.verdict or "", int(c.review is not None)) for c in criteria])
                self._db.executemany("INSERT INTO hits VALUES (?, ?, ?)", sorted(
                    {(result.call_id, hit.lexicon, hit.term) for hit in result.hits}))
                self._db.executemany("INSERT INTO turns (rowid, lemmas, start, text) VALUES (?, ?, ?, ?)",
                                     [((key << _TURN_BITS) | index, *turn) for index, turn in enumerate(turns)])
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._generation += 1

    def _forget(self, call_id: str) -> None:
        found = self._db.execute("SELECT key FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        if found is None:
            return
        # A rowid range, not a column: FTS5 finds its rows by rowid at once, by an unindexed column only by
        # reading every row (which made indexing 10 000 calls quadratic).
        self._db.execute("DELETE FROM turns WHERE rowid BETWEEN ? AND ?",
                         (found[0] << _TURN_BITS, ((found[0] + 1) << _TURN_BITS) - 1))
        for table in ("calls", "verdicts", "hits"):
            self._db.execute(f"DELETE FROM {table} WHERE call_id = ?", (call_id,))  # noqa: S608 (fixed names)
        self._generation += 1

    # -- reading -------------------------------------------------------------------------------------------------

    def _match(self, query: str) -> str | None:
        """The FTS5 query of a search: every word's lemma, all required; a quoted part is a phrase."""
        parts, quoted = [], query.split('"')
        for number, part in enumerate(quoted):
            lemmas = [lemma.replace('"', "") for lemma in self.lemmatise(part)]
            lemmas = [lemma for lemma in lemmas if lemma]
            if not lemmas:
                continue
            if number % 2:  # inside quotes
                parts.append('"' + " ".join(lemmas) + '"')
            else:
                parts.extend(f'"{lemma}"' for lemma in lemmas)
        return " AND ".join(parts) or None

    def search(self, wanted: CallFilter) -> CallPage:
        """One page of the calls `wanted` selects, sorted as it says."""
        where: list[str] = ["1 = 1"]
        args: list[object] = []
        if wanted.manager_only is not None:
            where.append("c.manager_id = ?")
            args.append(wanted.manager_only)
        if wanted.since:
            where.append("substr(c.started_at, 1, 10) >= ?")
            args.append(wanted.since.isoformat())
        if wanted.until:
            where.append("substr(c.started_at, 1, 10) <= ?")
            args.append(wanted.until.isoformat())
        if wanted.manager:
            where.append("c.manager_id = ?")
            args.append(wanted.manager)
        if wanted.score_min is not None:
            where.append("c.score >= ?")
            args.append(wanted.score_min)
        if wanted.score_max is not None:
            where.append("c.score <= ?")
            args.append(wanted.score_max)
        if wanted.reviewed is not None:
            where.append("c.reviewed = ?")
            args.append(int(wanted.reviewed))
        if wanted.failed:
            where.append("c.call_id IN (SELECT call_id FROM verdicts WHERE criterion = ? AND verdict = 'not_met')")
            args.append(wanted.failed)
        if wanted.hit:
            lexicon, _, term = wanted.hit.partition(":")
            if term:
                where.append("c.call_id IN (SELECT call_id FROM hits WHERE lexicon = ? AND term = ?)")
                args += [lexicon, term]
            else:
                where.append("c.call_id IN (SELECT call_id FROM hits WHERE lexicon = ?)")
                args.append(lexicon)
        match = self._match(wanted.query) if wanted.query.strip() else None
        if wanted.query.strip() and match is None:
            return CallPage(rows=[], total=0, page=1, pages=1, filter=wanted)
        if match:
            where.append("c.key IN (SELECT key FROM temp.matched)")
        order = SORTS.get(wanted.sort, SORTS["started"])
        direction = "DESC" if wanted.descending else "ASC"
        condition = " AND ".join(where)
        with self._lock:
            if match:  # the search runs once; the count, the page and the snippets read what it found
                self._db.execute("DELETE FROM temp.matched")
                self._db.execute(f"INSERT INTO temp.matched SELECT rowid >> {_TURN_BITS}, min(rowid) FROM turns "
                                 f"WHERE turns MATCH ? GROUP BY 1", (match,))
            total = self._db.execute(f"SELECT count(*) FROM calls c WHERE {condition}", args).fetchone()[0]  # noqa: S608
            pages = max(1, -(-total // wanted.page_size))
            page = min(max(1, wanted.page), pages)
            found = self._db.execute(
                f"SELECT c.* FROM calls c WHERE {condition} ORDER BY {order} IS NULL, {order} {direction}, "  # noqa: S608
                f"c.call_id LIMIT ? OFFSET ?", [*args, wanted.page_size, (page - 1) * wanted.page_size]).fetchall()
            rows = [self._row(found_row, bool(match)) for found_row in found]
        return CallPage(rows=rows, total=total, page=page, pages=pages, filter=wanted)

    def _row(self, row: tuple, searched: bool) -> CallRow:
        key, call_id = row[0], row[1]
        failed = tuple(title for (title,) in self._db.execute(
            "SELECT title FROM verdicts WHERE call_id = ? AND verdict = 'not_met'", (call_id,)))
        snippet = None
        if searched:
            snippet = self._db.execute("SELECT text, start FROM turns WHERE rowid = "
                                       "(SELECT first FROM temp.matched WHERE key = ?)", (key,)).fetchone()
        return CallRow(call_id=call_id, started_at=row[2], manager_id=row[3], manager_name=row[4],
                       duration_s=row[5], score=row[6], grade=row[7],
                       passed=None if row[8] is None else bool(row[8]), reviewed=bool(row[9]), warnings=row[10],
                       layout=row[11], deal_id=row[12], failed=failed,
                       snippet=snippet[0] if snippet else None, snippet_start=snippet[1] if snippet else None)

    def manager_of(self, call_id: str) -> tuple[bool, str | None]:
        """(indexed, the call's manager id)."""
        with self._lock:
            row = self._db.execute("SELECT manager_id FROM calls WHERE call_id = ?", (call_id,)).fetchone()
        return (row is not None, row[0] if row else None)

    def _cached(self, name: str, sql: str, args: tuple = ()) -> list[tuple[str, str]]:
        """A list for the filters' menus, read once per change of the index (they group every call's rows)."""
        with self._lock:
            generation, rows = self._lists.get((name, args), (-1, []))
            if generation != self._generation:
                rows = [(row[0], row[1]) for row in self._db.execute(sql, args)]
                self._lists[(name, args)] = (self._generation, rows)
            return rows

    def managers(self, only: str | None = None) -> list[tuple[str, str]]:
        """(id, name) of the managers with calls."""
        rows = self._cached("managers", "SELECT manager_id, max(coalesce(manager_name, manager_id)) FROM calls "
                                        "WHERE manager_id IS NOT NULL GROUP BY manager_id ORDER BY 2")
        return [row for row in rows if only is None or row[0] == only]

    def reviewed_calls(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute(
                "SELECT call_id FROM calls WHERE reviewed = 1 ORDER BY call_id")]

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM calls").fetchone()[0])

    def call_ids(self, *, manager_only: str | None = None, limit: int | None = None) -> list[str]:
        """The most recent calls first."""
        sql = "SELECT call_id FROM calls" + (" WHERE manager_id = ?" if manager_only else "")
        sql += " ORDER BY started_at DESC" + (f" LIMIT {int(limit)}" if limit else "")
        with self._lock:
            return [row[0] for row in self._db.execute(sql, (manager_only,) if manager_only else ())]

    def __len__(self) -> int:
        return self.count()


def index_results(index: CallIndex, results: Iterable[CallResult]) -> None:
    for result in results:
        index.put(result)
