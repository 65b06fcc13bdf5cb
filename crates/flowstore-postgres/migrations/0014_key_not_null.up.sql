-- PostgreSQL's primary keys are NOT NULL already; SQLite's are made so by this
-- version. Kept so that both backends number their schema alike.
SELECT 1;
