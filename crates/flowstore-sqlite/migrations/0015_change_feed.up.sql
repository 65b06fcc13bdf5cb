-- PostgreSQL's change feed (LISTEN/NOTIFY triggers). SQLite's backends tell each
-- other of their commits within the process; kept so that both backends number
-- their schema alike.
SELECT 1;
