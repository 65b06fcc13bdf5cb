-- The answers dropped going up are not brought back.
SELECT 1;
