-- The change feed: every server sharing this database LISTENs for what other servers
-- committed, so that waiting claims, event streams and key caches react at once
-- instead of on their next poll. Notifications are hints without data: the servers
-- read the rows again.
--
-- A transaction that notifies holds a database-wide lock through its commit, so
-- notifying transactions commit one at a time: nothing on the hot path (claims,
-- completions, new runs, appended events) notifies here. Servers announce those
-- themselves, at most once per few milliseconds, in a transaction of their own
-- (`Backend::announce`). The triggers below cover what is rare or already one at a
-- time: retries that become claimable later, events being numbered (one sequencer
-- at a time), and changes of keys, users and sessions.

-- A task will become claimable later (a retry's backoff): the payload is that
-- instant in epoch milliseconds, so that listeners wake then.
CREATE FUNCTION flowstore_notify_later() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('flowstore_work',
        floor(extract(epoch FROM NEW.run_after) * 1000)::bigint::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_tasks_notify_later_new AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.status = 'ready' AND NEW.run_after > now())
    EXECUTE FUNCTION flowstore_notify_later();
CREATE TRIGGER trg_tasks_notify_later AFTER UPDATE OF status, run_after ON tasks
    FOR EACH ROW WHEN (NEW.status = 'ready' AND NEW.run_after > now()
                       AND OLD.run_after IS DISTINCT FROM NEW.run_after)
    EXECUTE FUNCTION flowstore_notify_later();

-- Events were numbered: streams read only numbered events, so this tells every
-- server's streams that there is something to read, whichever server numbered it.
-- Only rows that got their number count (a numbering pass that found nothing
-- notifies nothing).
CREATE FUNCTION flowstore_notify_events() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('flowstore_events', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER trg_events_notify AFTER UPDATE OF seq ON events
    FOR EACH ROW WHEN (OLD.seq IS NULL AND NEW.seq IS NOT NULL)
    EXECUTE FUNCTION flowstore_notify_events();

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
