-- The change feed: at commit, every server sharing this database hears (LISTEN)
-- that tasks became ready, that events were appended, or that API keys, users or
-- sessions changed, so that waiting claims, event streams and key caches react at
-- once instead of on their next poll. Notifications are hints without data: the
-- servers read the rows again. Notifying is left to the rows that matter (a claim
-- or a completion of a task makes none), and PostgreSQL sends one notification per
-- channel and payload per transaction however many rows triggered it.

-- A task became claimable: the payload is empty when it is claimable now, else the
-- instant it becomes so (a retry's backoff) in epoch milliseconds.
CREATE FUNCTION flowstore_notify_work() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('flowstore_work',
        CASE WHEN NEW.run_after > now()
             THEN floor(extract(epoch FROM NEW.run_after) * 1000)::bigint::text
             ELSE '' END);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_tasks_notify_new AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.status = 'ready') EXECUTE FUNCTION flowstore_notify_work();
CREATE TRIGGER trg_tasks_notify_ready AFTER UPDATE OF status, run_after ON tasks
    FOR EACH ROW
    WHEN (NEW.status = 'ready'
          AND (OLD.status <> 'ready' OR OLD.run_after IS DISTINCT FROM NEW.run_after))
    EXECUTE FUNCTION flowstore_notify_work();

-- Events were appended, or numbered (once per statement, not per event). Streams
-- read only numbered events: the first notification makes some server number them
-- at once, the second tells every server's streams that they can be read, whichever
-- server numbered them.
CREATE FUNCTION flowstore_notify_events() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('flowstore_events', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_events_notify AFTER INSERT OR UPDATE OF seq ON events
    FOR EACH STATEMENT EXECUTE FUNCTION flowstore_notify_events();

-- What an API key may do changed: a key revoked, re-roled, expiring or deleted, its
-- user deactivated, demoted or deleted, a session ended. Uses of a key or a session
-- (last_used_at, last_seen_at) and sign-in bookkeeping notify nothing.
CREATE FUNCTION flowstore_notify_access() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('flowstore_access', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_api_keys_notify AFTER UPDATE OF revoked_at, role, scopes, expires_at, user_id
    OR DELETE ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION flowstore_notify_access();
CREATE TRIGGER trg_users_notify AFTER UPDATE OF role, status OR DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION flowstore_notify_access();
CREATE TRIGGER trg_user_sessions_notify AFTER UPDATE OF revoked_at, expires_at OR DELETE
    ON user_sessions FOR EACH STATEMENT EXECUTE FUNCTION flowstore_notify_access();
