-- The signed head of the audit log: the seq and hash of the newest entry with an
-- HMAC-SHA256 made with a key derived from the encryption key (which is never stored
-- here) and the ID of that key. Every append rewrites it in the same transaction, so
-- removing the newest entries, which leaves a valid chain, no longer goes unseen.
-- One row, required as soon as the log has entries. The runner signs the newest
-- entry of an existing log as the head in this migration's transaction.
CREATE TABLE audit_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL CHECK (seq >= 1),
    hash TEXT NOT NULL CHECK (length(hash) = 64),
    key_id TEXT NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    mac TEXT NOT NULL CHECK (length(mac) = 64),
    signed_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f000Z', 'now'))
);
