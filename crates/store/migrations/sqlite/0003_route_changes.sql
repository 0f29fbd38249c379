-- Every write to a route takes the next change number, so a follower can
-- read only the routes changed since the snapshot it serves instead of
-- every route. The numbers come from a one-row counter that only grows
-- (a row removed outright or restored from elsewhere cannot make a number
-- come round again), and writers are serialized by SQLite's write lock,
-- so numbers are handed out in commit order. Triggers rather than the
-- store's own statements: rows written by any path (an operator's repair,
-- an import) are numbered too.
CREATE TABLE platform_proxy_route_change_counter (
    n INTEGER NOT NULL
) STRICT;
ALTER TABLE platform_proxy_routes ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
UPDATE platform_proxy_routes SET change_seq = rowid;
INSERT INTO platform_proxy_route_change_counter (n)
    SELECT coalesce(max(change_seq), 0) FROM platform_proxy_routes;
CREATE INDEX platform_proxy_routes_change ON platform_proxy_routes (change_seq);

CREATE TRIGGER platform_proxy_routes_change_on_insert
AFTER INSERT ON platform_proxy_routes
BEGIN
    UPDATE platform_proxy_route_change_counter SET n = n + 1;
    UPDATE platform_proxy_routes
       SET change_seq = (SELECT n FROM platform_proxy_route_change_counter)
     WHERE rowid = NEW.rowid;
END;

-- Any update not made by these triggers is numbered, also one that writes
-- an older change_seq itself (a row restored from a backup). The
-- triggers' own updates leave change_seq at the counter, so they do not
-- fire this again.
CREATE TRIGGER platform_proxy_routes_change_on_update
AFTER UPDATE ON platform_proxy_routes
WHEN NEW.change_seq IS OLD.change_seq
  OR NEW.change_seq < (SELECT n FROM platform_proxy_route_change_counter)
BEGIN
    UPDATE platform_proxy_route_change_counter SET n = n + 1;
    UPDATE platform_proxy_routes
       SET change_seq = (SELECT n FROM platform_proxy_route_change_counter)
     WHERE rowid = NEW.rowid;
END;
