"""Versioned schema migrations for the billing database (SQLite and PostgreSQL).

Money columns hold integer nano-USD; timestamps are unix seconds as 64-bit
floats; booleans are 0/1 integers, so both databases store and sum identically.
"""

from __future__ import annotations

from collections.abc import Sequence

_TYPES = {
    "sqlite": {"bigint": "INTEGER", "double": "REAL"},
    "postgresql": {"bigint": "BIGINT", "double": "DOUBLE PRECISION"},
}

_V1_TABLES = """
CREATE TABLE usage_records (
    request_id TEXT PRIMARY KEY,
    key_id TEXT,
    tenant TEXT NOT NULL,
    model TEXT NOT NULL,
    replica TEXT,
    chip TEXT,
    kind TEXT NOT NULL,
    stream INTEGER NOT NULL,
    prompt_tokens {bigint} NOT NULL,
    cached_tokens {bigint} NOT NULL,
    completion_tokens {bigint} NOT NULL,
    price_nano_usd {bigint} NOT NULL,
    compute_cost_nano_usd {bigint} NOT NULL,
    status TEXT NOT NULL,
    error_code TEXT,
    estimated INTEGER NOT NULL,
    started_at {double} NOT NULL,
    finished_at {double} NOT NULL,
    ttft_ms {double},
    latency_ms {double} NOT NULL,
    day TEXT NOT NULL
);
CREATE INDEX usage_records_tenant_started ON usage_records (tenant, started_at);
CREATE INDEX usage_records_key_started ON usage_records (key_id, started_at);
CREATE INDEX usage_records_started ON usage_records (started_at);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    name TEXT,
    prefix TEXT NOT NULL,
    models TEXT,
    created_at {double} NOT NULL,
    revoked_at {double},
    rpm {bigint},
    tpm {bigint},
    concurrent {bigint},
    budget_nano_usd {bigint},
    budget_period TEXT NOT NULL
);
CREATE INDEX api_keys_tenant ON api_keys (tenant);
CREATE TABLE tenants (
    tenant TEXT PRIMARY KEY,
    rpm {bigint},
    tpm {bigint},
    concurrent {bigint},
    budget_nano_usd {bigint},
    budget_period TEXT NOT NULL,
    updated_at {double} NOT NULL
)
"""

# The ledger is append-only: the database itself refuses to change or delete a row.
_V1_APPEND_ONLY = {
    "sqlite": [
        (
            "CREATE TRIGGER usage_records_no_update BEFORE UPDATE ON usage_records "
            "BEGIN SELECT RAISE(ABORT, 'usage_records is append-only'); END"
        ),
        (
            "CREATE TRIGGER usage_records_no_delete BEFORE DELETE ON usage_records "
            "BEGIN SELECT RAISE(ABORT, 'usage_records is append-only'); END"
        ),
    ],
    "postgresql": [
        (
            "CREATE FUNCTION usage_records_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'usage_records is append-only'; END $$"
        ),
        (
            "CREATE TRIGGER usage_records_no_change BEFORE UPDATE OR DELETE ON usage_records "
            "FOR EACH ROW EXECUTE FUNCTION usage_records_append_only()"
        ),
    ],
}


# Replica-hours: what the operator pays for every replica in every state but stopped, by clock
# hour. Each gateway writes the paid seconds it has seen for a (replica, hour); the larger
# value wins, so several gateways watching the same replica never count it twice.
_V2_TABLES = """
CREATE TABLE replica_hours (
    replica_id TEXT NOT NULL,
    hour {bigint} NOT NULL,
    model TEXT NOT NULL,
    pool TEXT,
    chip TEXT NOT NULL,
    seconds {double} NOT NULL,
    cost_nano_usd {bigint} NOT NULL,
    PRIMARY KEY (replica_id, hour)
);
CREATE INDEX replica_hours_hour ON replica_hours (hour)
"""

# Stored Responses (``store: true``), per tenant: the response object, this request's input
# items, and the conversation before it (so a continuation is one read). JSON as text.
_V3_RESPONSES = """
CREATE TABLE stored_responses (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    key_id TEXT,
    model TEXT NOT NULL,
    created_at {double} NOT NULL,
    response TEXT NOT NULL,
    input_items TEXT NOT NULL,
    context_items TEXT NOT NULL
);
CREATE INDEX stored_responses_tenant_created ON stored_responses (tenant, created_at)
"""


# Streams in flight, checkpointed about every second by the gateway serving them (its
# ``owner`` id), so that a crash still bills what they delivered: a gateway that stops
# beating is dead, and any gateway turns its checkpoints into ``partial`` usage records.
_V4_TABLES = """
CREATE TABLE stream_checkpoints (
    request_id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    record TEXT NOT NULL,
    updated_at {double} NOT NULL
);
CREATE INDEX stream_checkpoints_owner ON stream_checkpoints (owner);
CREATE TABLE gateway_heartbeats (
    owner TEXT PRIMARY KEY,
    seen_at {double} NOT NULL
)
"""


def _split(script: str, dialect: str) -> list[str]:
    text = script.format(**_TYPES[dialect])
    return [s.strip() for s in text.split(";") if s.strip()]


def migrations(dialect: str) -> Sequence[tuple[int, list[str]]]:
    """(version, statements) in order; a database at version v runs those above v."""
    return [
        (1, _split(_V1_TABLES, dialect) + _V1_APPEND_ONLY[dialect]),
        (2, _split(_V2_TABLES, dialect)),
        (3, _split(_V3_RESPONSES, dialect)),
        (4, _split(_V4_TABLES, dialect)),
    ]


LATEST_VERSION = 4
