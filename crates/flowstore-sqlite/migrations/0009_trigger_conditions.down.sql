-- Nothing to revert on SQLite: its updated_at triggers already test, in their WHEN
-- clause, that the statement left updated_at as it was. The version exists so that
-- both backends number their migrations alike.
SELECT 1;
