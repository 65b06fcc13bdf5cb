-- Deliveries used to keep the start of each receiver's answer, and showed it to the
-- webhook's owner: a way to read what any server the flowstore server could reach
-- answered. Only a summary (reason phrase, body type and length) is kept now; the
-- answers kept before are dropped.
UPDATE webhook_deliveries SET response_body = NULL WHERE response_body IS NOT NULL;
