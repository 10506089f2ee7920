"""The store: sessions, notifications, tokens, exchanges, findings, runs and the web UI's accounts (SQLAlchemy Core).

SQLite file by default; any SQLAlchemy URL works (PostgreSQL by `postgresql+psycopg://...`).
Times are epoch seconds (float) so they compare the same on every backend.
Tokens are stored only as SHA-256 hashes: a leaked database leaks no usable token. Case managers' passwords
are stored only as argon2id hashes.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    create_engine,
    delete,
    event,
    exists,
    func,
    insert,
    select,
    text,
    union,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.schema import CreateIndex

from speeltuin.records import (
    Exchange,
    FlowDirection,
    Notification,
    NotificationOrigin,
    PullStatus,
    Role,
    Session,
    SessionConfig,
    Tag,
)
from validators.findings import Finding

metadata = MetaData()

instance_keys = Table(
    "instance_keys", metadata,
    Column("kid", String(64), primary_key=True),
    Column("private_pem", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

sessions = Table(
    "sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("vendor_role", String(16), nullable=False),  # the role the vendor plays: sender|receiver
    Column("config", Text, nullable=False),  # JSON: URAs, client ids, vendor URLs and keys
    Column("created_at", Float, nullable=False),
)

notifications = Table(
    "notifications", metadata,
    Column("id", String(64), primary_key=True),
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("direction", String(8), nullable=False),  # the origin: sent (we notified) | received (we were notified)
    # Values from the vendor's Task, opaque: any length (WIDENED: stores made with VARCHAR(200) get TEXT)
    Column("identifier", Text, nullable=False),  # Task.identifier value
    Column("group_identifier", Text, nullable=False),
    Column("authorization_base", Text, nullable=False, index=True),
    Column("patient_bsn", String(16), nullable=False),
    Column("owner_ura", String(16), nullable=False),
    Column("period_end", Float, nullable=False),
    Column("status", String(16), nullable=False),  # requested | cancelled
    Column("task", Text, nullable=False),
    Column("workflow_task", Text, nullable=True),  # JSON: the Workflow Task the notification is based on
    Column("delivery", Text, nullable=True),  # JSON: what the counterpart answered to our POST
    Column("pull_status", String(16), nullable=True),  # received only: pending|pulling|done|failed
    Column("pull_summary", Text, nullable=True),  # JSON
    Column("created_at", Float, nullable=False),
)

session_keys = Table(
    "session_keys", metadata,  # a session's own access key (X-Session-Key): only its SHA-256 hash is kept
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("key_hash", String(64), nullable=False, index=True),
    Column("created_at", Float, nullable=False),
)

# Facts of this installation that every process sharing the store should know, e.g. the public address the
# service announces (so `speeltuin session create` names it without being told).
instance_settings = Table(
    "instance_settings", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)
PUBLIC_URL_SETTING = "public-url"
# A random value replaced in the same transaction as every change of imported patients or loaded FHIR data: a
# process that keeps that data parsed compares it (one row by key) instead of reading the data again.
PATIENT_DATA_SETTING = "patient-data-generation"

# Secrets of this installation that must survive a restart, by name (e.g. the web UI's cookie signing key).
instance_secrets = Table(
    "instance_secrets", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

# Case managers' accounts for the web UI: only an argon2id hash of the password is kept.
users = Table(
    "users", metadata,
    Column("username", String(64), primary_key=True),
    Column("password_hash", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
MIN_PASSWORD_LENGTH = 12

tokens = Table(
    "tokens", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # notification | pull
    Column("notification_id", String(64), nullable=True),
    Column("subject_ura", String(16), nullable=False),
    Column("expires_at", Float, nullable=False),
)

# The jtis each session's authorization server has seen (a replay is refused in that session only). Only a hash of
# issuer and jti is kept: both are the caller's, of any length.
jti_uses = Table(
    "jti_uses", metadata,
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("jti_hash", String(64), nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    UniqueConstraint("session_id", "jti_hash", name="uq_session_jti"),
)
# Things that happen once per key across every process sharing the store (e.g. a provocation's one 503).
once_marks = Table(
    "once_marks", metadata,
    Column("key", String(200), primary_key=True),
    Column("created_at", Float, nullable=False),
)
WIDENED = (("notifications", "identifier"), ("notifications", "group_identifier"),
           ("notifications", "authorization_base"))

exchanges = Table(
    "exchanges", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), nullable=True, index=True),  # NULL: matched no session
    Column("source", String(16), nullable=False),  # proxy | simulator
    Column("tag", String(32), nullable=False),
    Column("direction", String(16), nullable=False),  # to-simulator | to-vendor | unknown
    Column("method", String(16), nullable=False),
    Column("url", Text, nullable=False),
    Column("status", Integer, nullable=True),
    Column("request_headers", Text, nullable=False),
    Column("request_body", Text, nullable=False),
    Column("response_headers", Text, nullable=False),
    Column("response_body", Text, nullable=False),
    Column("error", Text, nullable=True),
    Column("started_at", Float, nullable=False),
    Column("duration_ms", Float, nullable=True),
)
# A session's exchanges in the order they were recorded (its page in the UI, its report's pages); with started_at in
# it, counting them and finding the newest (the dashboard, the session page) read this index alone, not the bodies.
ix_exchanges_session_recorded = Index("ix_exchanges_session_recorded", exchanges.c.session_id, exchanges.c.id,
                                      exchanges.c.started_at)
LATER_INDEXES = (ix_exchanges_session_recorded,)  # added to tables that stores made by earlier versions have already

findings = Table(
    "findings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exchange_id", Integer, ForeignKey("exchanges.id", ondelete="CASCADE"), nullable=True, index=True),
    Column("session_id", String(64), nullable=True, index=True),
    Column("rule", String(32), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("message", Text, nullable=False),
    Column("location", Text, nullable=False),
)

# Which notification the simulator sent a recorded pull's token belongs to (Exchange.notification_id): what the
# receiver pulled of each notification, without keeping tokens.
notification_pulls = Table(
    "notification_pulls", metadata,
    Column("exchange_id", Integer, ForeignKey("exchanges.id", ondelete="CASCADE"), primary_key=True),
    Column("notification_id", String(64), nullable=False, index=True),
    Column("session_id", String(64), nullable=False, index=True),
)

suppressions = Table(
    "suppressions", metadata,
    Column("session_id", String(64), ForeignKey("sessions.id", ondelete="CASCADE"), primary_key=True),
    Column("rule", String(32), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)

patients = Table(
    "patients", metadata,  # imported test patients; the built-in ones live in testdata.patients
    Column("bsn", String(16), primary_key=True),
    Column("data", Text, nullable=False),  # JSON in the import format
    Column("created_at", Float, nullable=False),
)

loaded_resources = Table(
    "loaded_resources", metadata,  # FHIR test data loaded with `patients import-fhir`
    Column("resource_type", String(64), primary_key=True),
    Column("id", String(64), primary_key=True),
    Column("bsn", String(16), nullable=True, index=True),  # NULL: shared (Practitioner, Organization, ...)
    Column("data", Text, nullable=False),
    Column("loaded_at", Float, nullable=False),
)

runs = Table(
    "runs", metadata,
    Column("id", String(64), primary_key=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("result", Text, nullable=False),  # JSON of the run result model
)

# Waiting is a stored state: each step of a run, as it goes (pending, running, waiting, passed, failed,
# skipped), with what it waits for and until when; the terminal, the API and the web UI read the same rows.
run_steps = Table(
    "run_steps", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("scenario_id", String(100), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("title", String(300), nullable=False),
    Column("session_id", String(64), nullable=True, index=True),
    Column("status", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Column("waiting_for", Text, nullable=True),
    Column("wait_until", Float, nullable=True),
    Column("instruction", Text, nullable=True),  # what a person was asked to do in the vendor's system
    Column("updated_at", Float, nullable=False),
)
STEP_STATUSES = ("pending", "running", "waiting", "passed", "failed", "skipped")

# The scenario catalogue as the test manager published it when it started (the simulator cannot import it):
# what the web UI offers to run.
published_scenarios = Table(
    "published_scenarios", metadata,
    Column("id", String(16), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("vendor_role", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("outcome", Text, nullable=False),
)

# Runs asked for over the API (POST /api/sessions/<id>/runs), until the test manager takes them.
run_queue = Table(
    "run_queue", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("session_id", String(64), nullable=False, index=True),
    Column("scenario_ids", Text, nullable=False),  # JSON list; empty: every scenario of the session's role
    Column("queued_at", Float, nullable=False),
    Column("taken_at", Float, nullable=True),
)

# What lists of runs show (a session's runs, each session's latest on the dashboard), kept beside the run's
# result so a list never parses whole results (a finished run's holds every exchange it recorded).
run_summaries = Table(
    "run_summaries", metadata,
    Column("run_id", String(64), primary_key=True),
    Column("title", Text, nullable=False),
    Column("status", String(16), nullable=False),  # queued | running | passed | failed
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("scenarios", Integer, nullable=False),
    Column("passed", Integer, nullable=False),  # scenarios that passed
    Column("errors", Integer, nullable=False),  # error findings counted (neither suppressed nor provoked)
    Column("warnings", Integer, nullable=False),
)


class PullAccess(NamedTuple):
    """A bearer token as stored, the notification it is bound to (None: gone), its session, and the store's
    patient-data generation (Store.patient_data_generation), all as they were at one moment."""

    token: dict[str, Any]
    notification: Notification | None
    session: Session
    patient_data_generation: str


class PullMade(NamedTuple):
    """A recorded pull (search, read, Binary) without its bodies."""

    tag: str
    method: str
    url: str
    status: int | None
    started_at: float


# The request path's statements, built once (building one costs about as much as running it on SQLite)
_SESSION_BY_ID = select(sessions).where(sessions.c.id == bindparam("session_id"))
_PATIENT_DATA_GENERATION = (select(instance_settings.c.value)
                            .where(instance_settings.c.name == PATIENT_DATA_SETTING).scalar_subquery())
_PULL_ACCESS = (
    select(*[c.label(f"t_{c.name}") for c in tokens.c], *[c.label(f"n_{c.name}") for c in notifications.c],
           *[c.label(f"s_{c.name}") for c in sessions.c], _PATIENT_DATA_GENERATION.label("generation"))
    .select_from(tokens.join(sessions, tokens.c.session_id == sessions.c.id)
                 .outerjoin(notifications, tokens.c.notification_id == notifications.c.id))
    .where(tokens.c.token_hash == bindparam("token_hash")))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccountError(ValueError):
    """An account that cannot be added or removed as asked; the message says why."""


def check_new_user(username: str, password: str) -> None:
    """Refuse a username that is not 1-64 of A-Z, a-z, 0-9, '.', '_', '@', '-' (starting with a letter or digit),
    and a password shorter than MIN_PASSWORD_LENGTH characters."""
    if not USERNAME_PATTERN.match(username):
        raise AccountError(f"the username must be 1-64 characters of letters, digits, '.', '_', '@' and '-', starting "
                        f"with a letter or digit, got {username!r}")
    if not password:
        raise AccountError("the password is empty")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"the password must be at least {MIN_PASSWORD_LENGTH} characters long")


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the proxy and the simulator write the same file from two processes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _widen(c: Connection) -> None:
    """Columns that older stores made VARCHAR(200) and that now take values of any length become TEXT (PostgreSQL
    only: SQLite never enforced the length)."""
    if c.dialect.name != "postgresql":
        return
    for table, column in WIDENED:
        length = c.execute(text("SELECT character_maximum_length FROM information_schema.columns WHERE "
                                "table_schema = current_schema() AND table_name = :t AND column_name = :c"),
                           {"t": table, "c": column}).scalar()
        if length is not None:
            c.execute(text(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" TYPE TEXT'))


class Store:
    """All persistence goes through here; callers never see SQL."""

    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, future=True)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _set_sqlite_pragmas)
        self._create_tables()
        with self.engine.begin() as c:  # create_all makes a table's indexes only with the table: older stores get
            for index in LATER_INDEXES:  # those added since here (IF NOT EXISTS: a no-op once they have them)
                c.execute(CreateIndex(index, if_not_exists=True))
            _widen(c)
        # Single-statement reads on the request path: on PostgreSQL without BEGIN/ROLLBACK around them (two round
        # trips fewer; one statement sees one consistent state anyway). SQLite's driver begins no transaction for a
        # SELECT, and switching its isolation level would cost two PRAGMAs.
        self._reads: Engine = self.engine if self.engine.dialect.name == "sqlite" else \
            self.engine.execution_options(isolation_level="AUTOCOMMIT")
        # A session's row parsed once: the key is the whole row, so a changed config is a new key (read every time)
        self._parse_session = functools.lru_cache(maxsize=256)(_session_from)
        self._hasher = PasswordHasher()  # argon2id with argon2-cffi's current recommended parameters
        self._dummy_hash: str | None = None  # verified against for unknown users, so they take as long

    def _create_tables(self) -> None:
        """Make what is missing. Processes sharing a new store (the simulator, the proxy, the test manager) may start
        at the same moment: a table another one made between the check and the CREATE is no error."""
        for attempt in range(5):
            try:
                metadata.create_all(self.engine)
                return
            except (OperationalError, ProgrammingError, IntegrityError) as exc:
                if "already exists" not in str(exc) and "duplicate" not in str(exc).lower() or attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))

    def close(self) -> None:
        self.engine.dispose()

    # --- secrets of the installation ------------------------------------------------------------
    def instance_secret(self, name: str) -> str:
        """The named secret of this installation, made (random, 48 bytes) the first time it is asked for and kept,
        so that what it signs stays valid across restarts and between processes sharing the store."""
        with self.engine.connect() as c:
            value = c.execute(select(instance_secrets.c.value).where(instance_secrets.c.name == name)).scalar()
        if value is not None:
            return value
        try:
            with self.engine.begin() as c:
                c.execute(insert(instance_secrets).values(name=name, value=secrets.token_urlsafe(48),
                                                          created_at=time.time()))
        except IntegrityError:
            pass  # another process made it first: use theirs
        with self.engine.connect() as c:
            return c.execute(select(instance_secrets.c.value).where(instance_secrets.c.name == name)).scalar_one()

    def set_setting(self, name: str, value: str) -> None:
        with self.engine.begin() as c:
            _put_setting(c, name, value)

    def setting(self, name: str) -> str | None:
        with self.engine.connect() as c:
            return c.execute(select(instance_settings.c.value).where(instance_settings.c.name == name)).scalar()

    # --- case managers' accounts (web UI) -------------------------------------------------------
    def add_user(self, username: str, password: str) -> None:
        """Add a case manager; AccountError for a bad username, a short password or a username taken already."""
        check_new_user(username, password)
        try:
            with self.engine.begin() as c:
                c.execute(insert(users).values(username=username, password_hash=self._hasher.hash(password),
                                               created_at=time.time()))
        except IntegrityError as exc:
            raise AccountError(f"a user {username!r} exists already") from exc

    def verify_user(self, username: str, password: str) -> bool:
        """Whether the password is this user's. argon2 compares in constant time; an unknown user is checked
        against a dummy hash, so the answer takes as long either way. A hash made with older parameters is
        renewed on a successful check."""
        if self._dummy_hash is None:  # made before the lookup, so the first answer is not slower for one case
            self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))
        with self.engine.connect() as c:
            stored = c.execute(select(users.c.password_hash).where(users.c.username == username)).scalar()
        known = stored is not None
        if stored is None:
            stored = self._dummy_hash
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False
        if known and self._hasher.check_needs_rehash(stored):
            with self.engine.begin() as c:
                c.execute(update(users).where(users.c.username == username)
                          .values(password_hash=self._hasher.hash(password)))
        return known

    def get_user(self, username: str) -> dict[str, Any] | None:
        """The account's `username` and `created_at` (never the hash); None when there is no such user."""
        with self.engine.connect() as c:
            row = c.execute(select(users.c.username, users.c.created_at).where(users.c.username == username)).first()
        return {"username": row.username, "created_at": row.created_at} if row else None

    def list_users(self) -> list[dict[str, Any]]:
        """The accounts by username: `username` and `created_at` (never the hash)."""
        with self.engine.connect() as c:
            rows = c.execute(select(users.c.username, users.c.created_at).order_by(users.c.username)).all()
        return [{"username": r.username, "created_at": r.created_at} for r in rows]

    def remove_user(self, username: str) -> bool:
        with self.engine.begin() as c:
            return c.execute(delete(users).where(users.c.username == username)).rowcount > 0

    # --- instance key ---------------------------------------------------------------------------
    def load_instance_key(self) -> tuple[str, str] | None:
        with self.engine.connect() as c:
            row = c.execute(select(instance_keys).order_by(instance_keys.c.created_at).limit(1)).first()
        return (row.kid, row.private_pem) if row else None

    def save_instance_key(self, kid: str, private_pem: str) -> None:
        with self.engine.begin() as c:
            c.execute(insert(instance_keys).values(kid=kid, private_pem=private_pem, created_at=time.time()))

    # --- sessions -------------------------------------------------------------------------------
    def create_session(self, session: Session) -> Session:
        with self.engine.begin() as c:
            c.execute(insert(sessions).values(
                id=session.id, name=session.name, vendor_role=session.vendor_role,
                config=json.dumps(session.config.to_dict()), created_at=session.created_at))
        return session

    def update_session_config(self, session_id: str, config: SessionConfig) -> bool:
        with self.engine.begin() as c:
            return c.execute(update(sessions).where(sessions.c.id == session_id)
                             .values(config=json.dumps(config.to_dict()))).rowcount > 0

    def get_session(self, session_id: str) -> Session | None:
        with self._reads.connect() as c:
            row = c.execute(_SESSION_BY_ID, {"session_id": session_id}).first()
        return self._session(row) if row else None

    def list_sessions(self) -> list[Session]:
        with self.engine.connect() as c:
            rows = c.execute(select(sessions).order_by(sessions.c.created_at)).all()
        return [self._session(r) for r in rows]

    def _session(self, row: Any) -> Session:
        return self._parse_session(row.id, row.name, row.vendor_role, row.config, row.created_at)

    def delete_session(self, session_id: str) -> bool:
        with self.engine.begin() as c:
            for table in (findings, notification_pulls, exchanges):
                c.execute(delete(table).where(table.c.session_id == session_id))
            c.execute(delete(tokens).where(tokens.c.session_id == session_id))
            c.execute(delete(session_keys).where(session_keys.c.session_id == session_id))
            c.execute(delete(suppressions).where(suppressions.c.session_id == session_id))
            c.execute(delete(notifications).where(notifications.c.session_id == session_id))
            return c.execute(delete(sessions).where(sessions.c.id == session_id)).rowcount > 0

    # --- session access keys: they open one session's evidence; shown once, kept as a hash ---------
    def new_session_key(self, session_id: str) -> str:
        """Make the session's access key (replacing any earlier one) and return it: the only time it is seen."""
        key = secrets.token_urlsafe(32)
        with self.engine.begin() as c:
            c.execute(delete(session_keys).where(session_keys.c.session_id == session_id))
            c.execute(insert(session_keys).values(session_id=session_id, key_hash=hash_token(key),
                                                  created_at=time.time()))
        return key

    def session_key_opens(self, session_id: str, key: str) -> bool:
        """Whether `key` is this session's access key (hashes compared in constant time)."""
        with self.engine.connect() as c:
            stored = c.execute(select(session_keys.c.key_hash)
                               .where(session_keys.c.session_id == session_id)).scalar()
        return stored is not None and hmac.compare_digest(hash_token(key).encode(), stored.encode())

    def session_key_hash(self, session_id: str) -> str | None:
        """The SHA-256 hash of the session's current access key (None when it has none): changes when the key is
        replaced, so what was opened with the old key can be closed."""
        with self.engine.connect() as c:
            return c.execute(select(session_keys.c.key_hash).where(session_keys.c.session_id == session_id)).scalar()

    def session_of_key(self, key: str) -> str | None:
        """The session whose access key this is, if any (looked up by hash, never by the key itself)."""
        with self.engine.connect() as c:
            return c.execute(select(session_keys.c.session_id)
                             .where(session_keys.c.key_hash == hash_token(key))).scalar()

    # --- notifications --------------------------------------------------------------------------
    def add_notification(self, n: Notification) -> Notification:
        with self.engine.begin() as c:
            c.execute(insert(notifications).values(
                id=n.id, session_id=n.session_id, direction=n.origin, identifier=n.identifier,
                group_identifier=n.group_identifier, authorization_base=n.authorization_base,
                patient_bsn=n.patient_bsn, owner_ura=n.owner_ura, period_end=n.period_end, status=n.status,
                task=json.dumps(n.task), workflow_task=_dump(n.workflow_task), delivery=_dump(n.delivery), pull_status=n.pull_status,
                pull_summary=_dump(n.pull_summary), created_at=n.created_at))
        return n

    def get_notification(self, notification_id: str) -> Notification | None:
        return self._one_notification(notifications.c.id == notification_id)

    def find_notification(self, session_id: str, origin: NotificationOrigin, *,
                          authorization_base: str | None = None, identifier: str | None = None) -> Notification | None:
        cond = (notifications.c.session_id == session_id) & (notifications.c.direction == origin)
        if authorization_base is not None:
            cond &= notifications.c.authorization_base == authorization_base
        if identifier is not None:
            cond &= notifications.c.identifier == identifier
        return self._one_notification(cond)

    def _one_notification(self, cond: Any) -> Notification | None:
        with self.engine.connect() as c:
            row = c.execute(select(notifications).where(cond).order_by(notifications.c.created_at.desc())).first()
        return _notification(row) if row else None

    def list_notifications(self, session_id: str) -> list[Notification]:
        with self.engine.connect() as c:
            rows = c.execute(select(notifications).where(notifications.c.session_id == session_id)
                             .order_by(notifications.c.created_at)).all()
        return [_notification(r) for r in rows]

    def mark_once(self, key: str) -> bool:
        """Mark `key` (at most 200 characters); True only for the first mark, in whatever process it came."""
        try:
            with self.engine.begin() as c:
                c.execute(insert(once_marks).values(key=key, created_at=time.time()))
        except IntegrityError:
            return False
        return True

    def marked(self, key: str) -> bool:
        with self.engine.connect() as c:
            return c.execute(select(once_marks.c.key).where(once_marks.c.key == key)).first() is not None

    def unfinished_pulls(self) -> list[Notification]:
        """Received notifications whose pull has not ended (pending or pulling), in every session."""
        with self.engine.connect() as c:
            rows = c.execute(select(notifications).where(
                (notifications.c.direction == NotificationOrigin.RECEIVED)
                & notifications.c.pull_status.in_([PullStatus.PENDING, PullStatus.PULLING]))
                .order_by(notifications.c.created_at)).all()
        return [_notification(r) for r in rows]

    def update_notification(self, notification_id: str, **values: Any) -> None:
        for key in ("task", "workflow_task", "delivery", "pull_summary"):
            if key in values:
                values[key] = _dump(values[key])
        with self.engine.begin() as c:
            c.execute(update(notifications).where(notifications.c.id == notification_id).values(**values))

    # --- tokens and jti -------------------------------------------------------------------------
    def add_token(self, token: str, *, session_id: str, kind: str, subject_ura: str, expires_at: float,
                  notification_id: str | None = None) -> None:
        with self.engine.begin() as c:
            c.execute(insert(tokens).values(
                token_hash=hash_token(token), session_id=session_id, kind=kind,
                notification_id=notification_id, subject_ura=subject_ura, expires_at=expires_at))

    def get_token(self, token: str) -> dict[str, Any] | None:
        # The lookup is by hash, so comparing the secret itself never happens in Python.
        with self.engine.connect() as c:
            row = c.execute(select(tokens).where(tokens.c.token_hash == hash_token(token))).first()
        return dict(row._mapping) if row else None

    def pull_access(self, token: str) -> PullAccess | None:
        """What a request with this bearer token may see, read in one statement (the resource server's every request
        needs it, as it is now: an expiry, a cancellation or a changed session counts at once). None: no such token."""
        with self._reads.connect() as c:
            row = c.execute(_PULL_ACCESS, {"token_hash": hash_token(token)}).first()
        if row is None:
            return None
        m = row._mapping
        notification = None if m["n_id"] is None else \
            _notification_from({col.name: m[f"n_{col.name}"] for col in notifications.c})
        return PullAccess({col.name: m[f"t_{col.name}"] for col in tokens.c}, notification,
                          self._parse_session(m["s_id"], m["s_name"], m["s_vendor_role"], m["s_config"],
                                              m["s_created_at"]),
                          m["generation"] or "")

    def use_jti(self, session_id: str, issuer: str, jti: str, expires_at: float) -> bool:
        """Record a jti in a session; False when this issuer used it before in that session (a replay)."""
        digest = hashlib.sha256(f"{len(issuer)}:{issuer}{jti}".encode("utf-8", "surrogatepass")).hexdigest()
        try:
            with self.engine.begin() as c:
                c.execute(delete(jti_uses).where(jti_uses.c.expires_at < time.time() - 3600))
                c.execute(insert(jti_uses).values(session_id=session_id, jti_hash=digest, expires_at=expires_at))
        except IntegrityError:
            return False
        return True

    # --- exchanges and findings -----------------------------------------------------------------
    def add_exchange(self, ex: Exchange) -> int:
        return self.add_exchanges([ex])[0]

    def add_exchanges(self, batch: Sequence[Exchange]) -> list[int]:
        """Record exchanges with their findings in one transaction (a burst, or a benchmark's fill); sets and
        returns their ids, in the order given."""
        if not batch:
            return []
        with self.engine.begin() as c:
            ids = list(c.execute(insert(exchanges).returning(exchanges.c.id, sort_by_parameter_order=True), [dict(
                session_id=ex.session_id, source=ex.source, tag=ex.tag, direction=ex.direction,
                method=ex.method, url=ex.url, status=ex.status,
                request_headers=json.dumps(ex.request_headers), request_body=ex.request_body,
                response_headers=json.dumps(ex.response_headers), response_body=ex.response_body,
                error=ex.error, started_at=ex.started_at, duration_ms=ex.duration_ms) for ex in batch]).scalars())
            found = [dict(exchange_id=ex_id, session_id=ex.session_id, rule=f.rule, severity=f.severity,
                          message=f.message, location=f.location) for ex, ex_id in zip(batch, ids) for f in ex.findings]
            if found:
                c.execute(insert(findings), found)
            pulls = [dict(exchange_id=ex_id, notification_id=ex.notification_id, session_id=ex.session_id)
                     for ex, ex_id in zip(batch, ids) if ex.notification_id is not None and ex.session_id is not None]
            if pulls:
                c.execute(insert(notification_pulls), pulls)
        for ex, ex_id in zip(batch, ids):
            ex.id = ex_id
        return ids

    def list_exchanges(self, session_ids: Iterable[str | None], *, since: float | None = None) -> list[Exchange]:
        """The sessions' exchanges (None: unmatched ones), oldest first; `since`: started at or after it."""
        wanted = list(session_ids)
        named = [s for s in wanted if s is not None]
        cond = exchanges.c.session_id.in_(named)
        if None in wanted:
            cond = cond | exchanges.c.session_id.is_(None)
        if since is not None:
            cond = cond & (exchanges.c.started_at >= since)
        return self._exchanges(select(exchanges).where(cond).order_by(exchanges.c.started_at, exchanges.c.id))

    def query_exchanges(self, session_id: str | None, *, tag: str | None = None, severity: str | None = None,
                        since: float | None = None, after: int | None = None, limit: int = 100,
                        newest_first: bool = False) -> tuple[list[Exchange], int | None]:
        """One page of a session's exchanges (None: the unmatched ones, recorded for no session) in the order
        they were recorded (by id; `newest_first`: the reverse), filtered in SQL.

        `tag`: exchanges of that kind; `severity`: exchanges with at least one finding of it; `since`: started
        after that epoch time; `after`: recorded after the exchange with that id (`newest_first`: before it), the
        cursor. Returns the page and the cursor of the next page (None on the last page).
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        cond = exchanges.c.session_id.is_(None) if session_id is None else exchanges.c.session_id == session_id
        if tag is not None:
            cond &= exchanges.c.tag == tag
        if severity is not None:
            cond &= exists().where((findings.c.exchange_id == exchanges.c.id) & (findings.c.severity == severity))
        if since is not None:
            cond &= exchanges.c.started_at > since
        if after is not None:
            cond &= exchanges.c.id < after if newest_first else exchanges.c.id > after
        order = exchanges.c.id.desc() if newest_first else exchanges.c.id
        page = self._exchanges(select(exchanges).where(cond).order_by(order).limit(limit + 1))
        if len(page) > limit:
            page = page[:limit]
            return page, page[-1].id
        return page, None

    def get_exchange(self, exchange_id: int) -> Exchange | None:
        """One exchange with its findings."""
        found = self._exchanges(select(exchanges).where(exchanges.c.id == exchange_id))
        return found[0] if found else None

    def session_activity(self, session_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Per session with recorded exchanges (all, or those named): `exchanges` (how many), `errors` (error
        findings, rules suppressed for the session not counted) and `last` (the newest exchange's start, epoch
        seconds); counted in SQL."""
        not_suppressed = ~exists().where((suppressions.c.session_id == findings.c.session_id)
                                         & (suppressions.c.rule == findings.c.rule))
        of_exchanges, of_findings = exchanges.c.session_id.isnot(None), findings.c.session_id.isnot(None)
        if session_ids is not None:
            wanted = list(session_ids)
            of_exchanges, of_findings = exchanges.c.session_id.in_(wanted), findings.c.session_id.in_(wanted)
        with self.engine.connect() as c:
            counted = c.execute(select(exchanges.c.session_id, func.count(), func.max(exchanges.c.started_at))
                                .where(of_exchanges).group_by(exchanges.c.session_id)).all()
            errors = dict(c.execute(select(findings.c.session_id, func.count())
                                    .where(of_findings & (findings.c.severity == "error") & not_suppressed)
                                    .group_by(findings.c.session_id)).all())
        return {session_id: {"exchanges": count, "errors": errors.get(session_id, 0), "last": last}
                for session_id, count, last in counted}

    def exchange_page(self, session_id: str, offset: int, limit: int) -> list[Exchange]:
        """At most `limit` of the session's exchanges in the order they were recorded (by id), from the one at
        `offset` (0: the first) on: a numbered page of them. The page's first is found by skipping through the
        session's index, not its rows, so a page deep in a big session is as quick as the first."""
        mine = exchanges.c.session_id == session_id
        first = select(exchanges.c.id).where(mine).order_by(exchanges.c.id).offset(offset).limit(1).scalar_subquery()
        return self._exchanges(select(exchanges).where(mine & (exchanges.c.id >= first)).order_by(exchanges.c.id)
                               .limit(limit))

    def finding_counts(self, session_id: str) -> dict[tuple[str, str], int]:
        """How many findings the session's exchanges have, by (rule, severity); counted in SQL."""
        with self.engine.connect() as c:
            rows = c.execute(select(findings.c.rule, findings.c.severity, func.count())
                             .where(findings.c.session_id == session_id)
                             .group_by(findings.c.rule, findings.c.severity)).all()
        return {(rule, severity): count for rule, severity, count in rows}

    def first_findings(self, session_id: str, severity: str, *, leave_out: Iterable[str],
                       limit: int) -> list[tuple[str, str, str, str]]:
        """The session's first `limit` findings of a severity (in the order they were recorded), leaving out those
        of the rules named: (method, url, rule, message) of each."""
        query = (select(exchanges.c.method, exchanges.c.url, findings.c.rule, findings.c.message)
                 .join(exchanges, exchanges.c.id == findings.c.exchange_id)
                 .where((findings.c.session_id == session_id) & (findings.c.severity == severity)
                        & findings.c.rule.not_in(list(leave_out)))
                 .order_by(findings.c.id).limit(limit))
        with self.engine.connect() as c:
            return [(r.method, r.url, r.rule, r.message) for r in c.execute(query)]

    def _exchanges(self, query: Any) -> list[Exchange]:
        """The exchanges a query selects, each with its findings (one more query for all of them)."""
        with self.engine.connect() as c:
            rows = c.execute(query).all()
            ids = [r.id for r in rows]
            found: dict[int, list[Finding]] = {}
            pulled: dict[int, str] = {}
            if ids:
                for f in c.execute(select(findings).where(findings.c.exchange_id.in_(ids)).order_by(findings.c.id)):
                    found.setdefault(f.exchange_id, []).append(Finding(f.rule, f.severity, f.message, f.location))
                pulled = dict(c.execute(select(notification_pulls.c.exchange_id, notification_pulls.c.notification_id)
                                        .where(notification_pulls.c.exchange_id.in_(ids))).all())
        return [_exchange(r, found.get(r.id, []), pulled.get(r.id)) for r in rows]

    def pulls_by_notification(self, session_id: str) -> dict[str, list[PullMade]]:
        """The pulls recorded in a session with a token of a notification the simulator sent, by notification id,
        oldest first (no bodies)."""
        query = (select(notification_pulls.c.notification_id, exchanges.c.tag, exchanges.c.method, exchanges.c.url,
                        exchanges.c.status, exchanges.c.started_at)
                 .join(exchanges, exchanges.c.id == notification_pulls.c.exchange_id)
                 .where(notification_pulls.c.session_id == session_id).order_by(exchanges.c.id))
        made: dict[str, list[PullMade]] = {}
        with self.engine.connect() as c:
            for r in c.execute(query):
                made.setdefault(r.notification_id, []).append(PullMade(r.tag, r.method, r.url, r.status, r.started_at))
        return made

    # --- suppressions: rules a case manager switched off for one session, with the reason why ---------
    def set_suppression(self, session_id: str, rule: str, reason: str) -> None:
        with self.engine.begin() as c:
            c.execute(delete(suppressions).where((suppressions.c.session_id == session_id)
                                                 & (suppressions.c.rule == rule)))
            c.execute(insert(suppressions).values(session_id=session_id, rule=rule, reason=reason,
                                                  created_at=time.time()))

    def remove_suppression(self, session_id: str, rule: str) -> bool:
        with self.engine.begin() as c:
            return c.execute(delete(suppressions).where((suppressions.c.session_id == session_id)
                                                        & (suppressions.c.rule == rule))).rowcount > 0

    def list_suppressions(self, session_id: str) -> dict[str, str]:
        with self.engine.connect() as c:
            rows = c.execute(select(suppressions).where(suppressions.c.session_id == session_id)
                             .order_by(suppressions.c.rule)).all()
        return {r.rule: r.reason for r in rows}

    # --- imported patients ---------------------------------------------------------------------
    def save_patients(self, rows: list[dict[str, Any]]) -> None:
        """Add or replace patients (by BSN) in one transaction: a file imports whole or not at all."""
        with self.engine.begin() as c:
            c.execute(delete(patients).where(patients.c.bsn.in_([r["bsn"] for r in rows])))
            c.execute(insert(patients), [dict(bsn=r["bsn"], data=json.dumps(r), created_at=time.time())
                                         for r in rows])
            _new_patient_data_generation(c)

    def list_patients(self) -> list[dict[str, Any]]:
        with self.engine.connect() as c:
            return [json.loads(r.data) for r in c.execute(select(patients).order_by(patients.c.bsn))]

    # --- loaded FHIR test data -------------------------------------------------------------------
    def load_resources(self, rows: list[tuple[str | None, dict[str, Any]]], *, replace: bool) -> None:
        """Store (bsn or None, resource) pairs: see load_resource_texts."""
        self.load_resource_texts([(bsn, r["resourceType"], r["id"], json.dumps(r)) for bsn, r in rows],
                                 replace=replace)

    def load_resource_texts(self, rows: list[tuple[str | None, str, str, str]], *, replace: bool) -> None:
        """Store (bsn or None, resource type, id, the resource as JSON) rows in one transaction; an existing
        resource is refused unless `replace`, so one bad file or clash leaves the store as it was."""
        keys = [(resource_type, resource_id) for _bsn, resource_type, resource_id, _data in rows]
        with self.engine.begin() as c:
            existing = {(row.resource_type, row.id) for row in c.execute(
                select(loaded_resources.c.resource_type, loaded_resources.c.id))}
            clashes = [k for k in keys if k in existing]
            if clashes and not replace:
                shown = ", ".join(f"{t}/{i}" for t, i in clashes[:5])
                raise ValueError(f"{len(clashes)} resource(s) are loaded already ({shown}); use --replace")
            for resource_type, resource_id in clashes:
                c.execute(delete(loaded_resources).where((loaded_resources.c.resource_type == resource_type)
                                                         & (loaded_resources.c.id == resource_id)))
            if rows:
                now = time.time()
                c.execute(insert(loaded_resources), [
                    dict(resource_type=resource_type, id=resource_id, bsn=bsn, data=data, loaded_at=now)
                    for bsn, resource_type, resource_id, data in rows])
                _new_patient_data_generation(c)

    def list_loaded(self, bsn: str | None) -> list[dict[str, Any]]:
        """The loaded resources of one patient, or the shared ones (bsn None)."""
        cond = loaded_resources.c.bsn.is_(None) if bsn is None else loaded_resources.c.bsn == bsn
        with self.engine.connect() as c:
            return [json.loads(r.data) for r in c.execute(select(loaded_resources.c.data).where(cond)
                                                          .order_by(loaded_resources.c.resource_type,
                                                                    loaded_resources.c.id))]

    def patient_data_generation(self) -> str:
        """Changes (in every process) with each import of patients or load of FHIR data; "" before the first."""
        with self._reads.connect() as c:
            return c.execute(select(_PATIENT_DATA_GENERATION)).scalar() or ""

    def loaded_patient_bsns(self) -> list[str]:
        with self.engine.connect() as c:
            return [r.bsn for r in c.execute(select(loaded_resources.c.bsn).where(
                (loaded_resources.c.resource_type == "Patient") & loaded_resources.c.bsn.isnot(None))
                .distinct().order_by(loaded_resources.c.bsn))]

    # --- runs -----------------------------------------------------------------------------------
    def save_run(self, run_id: str, started_at: float, finished_at: float | None, result: dict[str, Any]) -> None:
        with self.engine.begin() as c:
            c.execute(delete(runs).where(runs.c.id == run_id))
            c.execute(insert(runs).values(id=run_id, started_at=started_at, finished_at=finished_at,
                                          result=json.dumps(result)))
            _save_summary(c, run_id, started_at, finished_at, result)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as c:
            row = c.execute(select(runs).where(runs.c.id == run_id)).first()
        return json.loads(row.result) if row else None

    def publish_scenarios(self, scenarios: list[dict[str, str]]) -> None:
        """Replace the published catalogue (each: id, vendor_role, kind, title, outcome), in this order."""
        with self.engine.begin() as c:
            c.execute(delete(published_scenarios))
            if scenarios:
                c.execute(insert(published_scenarios), [{**s, "position": n} for n, s in enumerate(scenarios)])

    def published_scenarios(self, vendor_role: str | None = None) -> list[dict[str, Any]]:
        query = select(published_scenarios).order_by(published_scenarios.c.position)
        if vendor_role is not None:
            query = query.where(published_scenarios.c.vendor_role == vendor_role)
        with self.engine.connect() as c:
            return [dict(row._mapping) for row in c.execute(query).all()]

    def queue_run(self, run_id: str, session_id: str, scenario_ids: list[str], title: str) -> None:
        """A run asked for over the API: queued for the test manager, and shown as queued until it starts."""
        now = time.time()
        with self.engine.begin() as c:
            c.execute(insert(run_queue).values(run_id=run_id, session_id=session_id,
                                               scenario_ids=json.dumps(scenario_ids), queued_at=now))
            result = {"id": run_id, "title": title, "status": "queued", "sessions": [session_id],
                      "scenarios": scenario_ids}
            c.execute(insert(runs).values(id=run_id, started_at=now, finished_at=None, result=json.dumps(result)))
            _save_summary(c, run_id, now, None, result)

    def queued_session(self, run_id: str) -> str | None:
        """The session a run was asked for in (over the API), if it was."""
        with self.engine.connect() as c:
            return c.execute(select(run_queue.c.session_id).where(run_queue.c.run_id == run_id)).scalar()

    def take_queued_run(self) -> dict[str, Any] | None:
        """The oldest queued run, taken (so no other test manager takes it too); None when none waits."""
        with self.engine.begin() as c:
            for row in c.execute(select(run_queue).where(run_queue.c.taken_at.is_(None))
                                 .order_by(run_queue.c.queued_at).limit(5)).all():
                taken = c.execute(update(run_queue).where((run_queue.c.run_id == row.run_id)
                                                          & run_queue.c.taken_at.is_(None))
                                  .values(taken_at=time.time())).rowcount
                if taken:
                    return {"run_id": row.run_id, "session_id": row.session_id,
                            "scenario_ids": json.loads(row.scenario_ids)}
        return None

    def session_runs(self, session_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The runs that worked in a session (asked for in it, or with a step in it), newest first, summarised:
        run_id, title, status, started_at, finished_at, scenarios, passed, errors, warnings."""
        ids = _session_run_ids().subquery()
        query = (select(runs.c.id).join(ids, ids.c.run_id == runs.c.id).where(ids.c.session_id == session_id)
                 .order_by(runs.c.started_at.desc()).limit(limit))
        with self.engine.connect() as c:
            run_ids = list(c.execute(query).scalars())
        summaries = self._summaries(run_ids)
        return [summaries[run_id] for run_id in run_ids if run_id in summaries]

    def latest_runs(self) -> dict[str, dict[str, Any]]:
        """Each session's latest run (by start), summarised as in session_runs."""
        pairs = _session_run_ids().subquery()
        ranked = (select(pairs.c.session_id, pairs.c.run_id, func.row_number().over(
            partition_by=pairs.c.session_id, order_by=runs.c.started_at.desc()).label("n"))
            .join(runs, runs.c.id == pairs.c.run_id)).subquery()
        with self.engine.connect() as c:
            latest = {row.session_id: row.run_id for row in c.execute(
                select(ranked.c.session_id, ranked.c.run_id).where(ranked.c.n == 1)).all()}
        summaries = self._summaries(list(set(latest.values())))
        return {session_id: summaries[run_id] for session_id, run_id in latest.items() if run_id in summaries}

    def _summaries(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The runs' summaries; made from the stored result, once, for a run saved before summaries were kept."""
        found: dict[str, dict[str, Any]] = {}
        with self.engine.begin() as c:
            for chunk in _chunks(run_ids):
                found.update({row.run_id: dict(row._mapping) for row in c.execute(
                    select(run_summaries).where(run_summaries.c.run_id.in_(chunk))).all()})
            for chunk in _chunks([run_id for run_id in run_ids if run_id not in found]):
                for row in c.execute(select(runs).where(runs.c.id.in_(chunk))).all():
                    found[row.id] = _save_summary(c, row.id, row.started_at, row.finished_at, json.loads(row.result))
        return found

    def record_step(self, run_id: str, scenario_id: str, name: str, *, status: str, title: str | None = None,
                    position: int | None = None, session_id: str | None = None, detail: str = "",
                    waiting_for: str | None = None, wait_until: float | None = None,
                    instruction: str | None = None) -> None:
        """Store how a step of a run stands now; a step first recorded needs its title and position. An
        instruction, once given, stays with the step."""
        if status not in STEP_STATUSES:
            raise ValueError(f"unknown step status {status!r}")
        key = (run_steps.c.run_id == run_id) & (run_steps.c.scenario_id == scenario_id) & (run_steps.c.name == name)
        values: dict[str, Any] = {"status": status, "detail": detail, "waiting_for": waiting_for,
                                  "wait_until": wait_until, "updated_at": time.time()}
        values.update({k: v for k, v in (("title", title), ("position", position), ("session_id", session_id),
                                         ("instruction", instruction)) if v is not None})
        with self.engine.begin() as c:
            if c.execute(update(run_steps).where(key).values(**values)).rowcount == 0:
                c.execute(insert(run_steps).values(run_id=run_id, scenario_id=scenario_id, name=name, **values))

    def run_steps(self, run_id: str) -> list[dict[str, Any]]:
        """The run's steps as they stand, by scenario id, each scenario's in their order."""
        with self.engine.connect() as c:
            rows = c.execute(select(run_steps).where(run_steps.c.run_id == run_id)
                             .order_by(run_steps.c.scenario_id, run_steps.c.position)).all()
        return [dict(row._mapping) for row in rows]


def _session_run_ids() -> Any:
    """(session_id, run_id) of every run that worked in a session: asked for in it, or with a step in it."""
    asked = select(run_queue.c.session_id.label("session_id"), run_queue.c.run_id.label("run_id"))
    stepped = select(run_steps.c.session_id.label("session_id"), run_steps.c.run_id.label("run_id")) \
        .where(run_steps.c.session_id.isnot(None))
    return union(asked, stepped)


def _save_summary(c: Any, run_id: str, started_at: float, finished_at: float | None,
                  result: dict[str, Any]) -> dict[str, Any]:
    scenarios = [s for s in result.get("scenarios", []) if isinstance(s, dict)]
    counts = result.get("counts") if isinstance(result.get("counts"), dict) else {}
    summary = {"run_id": run_id, "title": str(result.get("title", "")), "started_at": started_at,
               "finished_at": finished_at,
               "status": "failed" if result.get("error") else str(result.get("status", "running")),
               "scenarios": len(result.get("scenarios", [])),  # results, or the ids of a run not yet started
               "passed": sum(1 for s in scenarios if s.get("status") == "passed"),
               "errors": int(counts.get("error", 0)), "warnings": int(counts.get("warning", 0))}
    c.execute(delete(run_summaries).where(run_summaries.c.run_id == run_id))
    c.execute(insert(run_summaries).values(**summary))
    return summary


def _chunks(values: list[str], size: int = 500) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _dump(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _load(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _new_patient_data_generation(c: Connection) -> None:
    """Replace the generation inside the transaction that changes patient data (see PATIENT_DATA_SETTING)."""
    _put_setting(c, PATIENT_DATA_SETTING, secrets.token_hex(8))


def _put_setting(c: Connection, name: str, value: str) -> None:
    """Set an instance setting inside the caller's transaction, whichever process makes its row first."""
    values = dict(value=value, updated_at=time.time())
    where = instance_settings.c.name == name
    if c.execute(update(instance_settings).where(where).values(**values)).rowcount:
        return
    try:
        with c.begin_nested():
            c.execute(insert(instance_settings).values(name=name, **values))
    except IntegrityError:  # another process made the row first
        c.execute(update(instance_settings).where(where).values(**values))


def _session_from(session_id: str, name: str, vendor_role: str, config: str, created_at: float) -> Session:
    return Session(session_id, name, Role(vendor_role), SessionConfig.from_dict(json.loads(config)), created_at)


def _notification(row: Any) -> Notification:
    return _notification_from(dict(row._mapping))


def _notification_from(m: dict[str, Any]) -> Notification:
    m["origin"] = NotificationOrigin(m.pop("direction"))
    m["task"] = json.loads(m["task"])
    for key in ("workflow_task", "delivery", "pull_summary"):
        m[key] = _load(m[key])
    m["pull_status"] = PullStatus(m["pull_status"]) if m["pull_status"] else None
    return Notification(**m)


def _exchange(row: Any, found: list[Finding], notification_id: str | None = None) -> Exchange:
    m = dict(row._mapping)
    for key in ("request_headers", "response_headers"):
        m[key] = json.loads(m[key])
    m["tag"], m["direction"] = Tag(m["tag"]), FlowDirection(m["direction"])
    return Exchange(**m, findings=found, notification_id=notification_id)
