-- Seed 000's platform_proxy_routes. JSON columns hold serde_json text;
-- timestamps are fixed-width RFC 3339 UTC text with nanoseconds
-- (`2025-01-02T03:04:05.000000006Z`), so text order is time order.
CREATE TABLE platform_proxy_routes (
    id                TEXT NOT NULL PRIMARY KEY,
    owner_type        TEXT NOT NULL,
    owner_id          TEXT NOT NULL,
    endpoint_name     TEXT NOT NULL,
    org_id            TEXT,
    project_id        TEXT,
    proxy_pool_id     TEXT NOT NULL,
    route_mode        TEXT NOT NULL,
    route_host        TEXT,
    public_path       TEXT NOT NULL,
    upstream          TEXT NOT NULL,
    adapter           TEXT NOT NULL,
    adapter_overrides TEXT NOT NULL,
    limits            TEXT NOT NULL,
    policy            TEXT NOT NULL,
    status            TEXT NOT NULL,
    failure_reason    TEXT,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    deleted_at        TEXT,
    -- A subdomain route without a host would slip past the unique index
    -- below (NULLs never collide) and be unreachable.
    CHECK (route_mode <> 'subdomain' OR route_host IS NOT NULL)
) STRICT;

-- One live owner per public address. Deleted routes keep their row (audit,
-- `GET` by id) but free the address. Subdomain routes all have public_path
-- '/', so each index only covers its own mode.
CREATE UNIQUE INDEX platform_proxy_routes_live_route_host
    ON platform_proxy_routes (route_host)
    WHERE deleted_at IS NULL AND route_mode = 'subdomain';
CREATE UNIQUE INDEX platform_proxy_routes_live_public_path
    ON platform_proxy_routes (public_path)
    WHERE deleted_at IS NULL AND route_mode = 'path_prefix';

-- Listing is keyset-paged in (created_at, id) order, optionally by owner or
-- status.
CREATE INDEX platform_proxy_routes_created
    ON platform_proxy_routes (created_at, id);
CREATE INDEX platform_proxy_routes_owner
    ON platform_proxy_routes (owner_type, owner_id, created_at, id);
CREATE INDEX platform_proxy_routes_status
    ON platform_proxy_routes (status, created_at, id);
