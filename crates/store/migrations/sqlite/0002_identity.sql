-- Identity and access beside routes: the app auth bridge, grants, service
-- tokens, browser sessions, revocations, the audit log and named secrets.
-- Same conventions as 0001: STRICT tables, JSON as serde_json text,
-- timestamps as fixed-width RFC 3339 UTC text with nanoseconds, so text
-- order is time order and `<`, `>`, `max()` and ORDER BY compare instants.
-- Names of model enums (role, outcome, revocation kind) are not CHECKed:
-- SQLite cannot alter a CHECK without rebuilding the table, so a newer
-- build's new name would need one; the reader reports unknown names as
-- corrupt instead.

-- The route's auth bridge (mode, header, scheme, sealed secret) as JSON;
-- NULL: none. Nullable so the routes 0001 stored read as having none.
ALTER TABLE platform_proxy_routes ADD COLUMN auth_bridge TEXT;

-- Roles pushed through /api/v1/grants. Deleting a grant removes its row:
-- the audit log, not this table, keeps history.
CREATE TABLE platform_proxy_grants (
    id         TEXT NOT NULL PRIMARY KEY,
    subject    TEXT NOT NULL,
    org_id     TEXT NOT NULL,
    -- NULL: an org role.
    project_id TEXT,
    role       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- The unique index below stands '' in for NULL; a real '' project
    -- would collide with the org grant.
    CHECK (project_id IS NULL OR project_id <> '')
) STRICT;

-- One grant per subject and scope. NULLs never collide in a unique index,
-- so the org scope (project_id NULL) is indexed as ''.
CREATE UNIQUE INDEX platform_proxy_grants_scope
    ON platform_proxy_grants (subject, org_id, COALESCE(project_id, ''));
-- Listing is keyset-paged in (created_at, id) order, usually by org.
CREATE INDEX platform_proxy_grants_created
    ON platform_proxy_grants (created_at, id);
CREATE INDEX platform_proxy_grants_org
    ON platform_proxy_grants (org_id, project_id, created_at, id);

-- Service tokens: only the token's SHA-256 (hex) is kept, never the token.
-- Revoked tokens keep their row so listings show what was revoked when.
CREATE TABLE platform_proxy_service_tokens (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    org_id     TEXT NOT NULL,
    project_id TEXT,
    role       TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked_at TEXT
) STRICT;

CREATE INDEX platform_proxy_service_tokens_org
    ON platform_proxy_service_tokens (org_id, project_id, created_at);

-- Browser sessions minted per user and route, with their one-time launch
-- code (its SHA-256, hex). route_id has no foreign key: sessions are
-- short-lived records of what was minted, like audit rows, and must not
-- stand in the way of a route's row changing.
CREATE TABLE platform_proxy_sessions (
    id                TEXT NOT NULL PRIMARY KEY,
    route_id          TEXT NOT NULL,
    user_id           TEXT NOT NULL,
    -- The principal as authorized at mint time, JSON.
    principal         TEXT NOT NULL,
    platform_session  TEXT,
    launch_code_hash  TEXT NOT NULL,
    launch_expires_at TEXT NOT NULL,
    redeemed_at       TEXT,
    created_at        TEXT NOT NULL,
    expires_at        TEXT NOT NULL,
    revoked_at        TEXT,
    correlation_id    TEXT NOT NULL
) STRICT;

-- Redemption finds the session by its code alone; two sessions sharing a
-- code would make "redeemed once" ambiguous.
CREATE UNIQUE INDEX platform_proxy_sessions_launch_code
    ON platform_proxy_sessions (launch_code_hash);
-- Revocation by user, route or platform session marks the sessions created
-- up to the revocation; listings page in (created_at, id) order.
CREATE INDEX platform_proxy_sessions_user
    ON platform_proxy_sessions (user_id, created_at, id);
CREATE INDEX platform_proxy_sessions_route
    ON platform_proxy_sessions (route_id, created_at, id);
CREATE INDEX platform_proxy_sessions_platform_session
    ON platform_proxy_sessions (platform_session, created_at)
    WHERE platform_session IS NOT NULL;
CREATE INDEX platform_proxy_sessions_created
    ON platform_proxy_sessions (created_at, id);

-- Revocations, kept until every session they can name has expired
-- (expires_at), so a replica rebuilding its in-memory set misses none.
-- Storing the same revocation twice (a retried logout) is one row.
CREATE TABLE platform_proxy_revocations (
    -- session, user, route or platform_session (RevocationTarget::kind).
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    -- The latest revocation of this target: sessions minted at or before
    -- it are dead. One row per target, however often it is revoked, so a
    -- caller revoking itself in a loop grows nothing.
    revoked_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    reason     TEXT NOT NULL,
    PRIMARY KEY (kind, value)
) STRICT;

CREATE INDEX platform_proxy_revocations_expires
    ON platform_proxy_revocations (expires_at);

-- The audit log (seed 001 "Audit Expectations"); append only. Listed newest
-- first in (at, id) order, filtered by org, route, user or action.
CREATE TABLE platform_proxy_audit (
    id             TEXT NOT NULL PRIMARY KEY,
    at             TEXT NOT NULL,
    action         TEXT NOT NULL,
    outcome        TEXT NOT NULL,
    actor          TEXT,
    org_id         TEXT,
    project_id     TEXT,
    route_id       TEXT,
    user_id        TEXT,
    reason         TEXT,
    correlation_id TEXT NOT NULL,
    -- JSON, never a secret.
    details        TEXT NOT NULL
) STRICT;

CREATE INDEX platform_proxy_audit_at
    ON platform_proxy_audit (at, id);
CREATE INDEX platform_proxy_audit_org
    ON platform_proxy_audit (org_id, project_id, at, id);
CREATE INDEX platform_proxy_audit_route
    ON platform_proxy_audit (route_id, at, id);
CREATE INDEX platform_proxy_audit_user
    ON platform_proxy_audit (user_id, at, id);
CREATE INDEX platform_proxy_audit_action
    ON platform_proxy_audit (action, at, id);

-- Named secrets the proxy generates on first start (cookie and sealing
-- keys of the embedded default), so every replica on this database uses
-- the same ones. This makes the database file as sensitive as the keys.
CREATE TABLE platform_proxy_secrets (
    name       TEXT NOT NULL PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
