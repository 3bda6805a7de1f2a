-- The inbox is fanned out in a fair order across shops: inbox_key is a
-- delivery's place (a shop's burst continues after its previous delivery,
-- a shop without one starts at the front), so one shop's import of
-- thousands of products does not hold back another shop's single webhook.
-- A delivery waiting to be tried again after a failure has no place; it is
-- found through pending_at when it comes due.
ALTER TABLE webhook_deliveries ADD COLUMN inbox_key BIGINT NULL;
CREATE INDEX ix_webhook_deliveries_inbox ON webhook_deliveries (inbox_key, id);
CREATE INDEX ix_webhook_deliveries_retry ON webhook_deliveries (inbox_key, pending_at);
-- Replaced by the two above: one index fewer to write per delivery (SQLite
-- keeps it; it cannot be dropped with the same statement there).
{{MYSQL}} DROP INDEX ix_webhook_deliveries_pending ON webhook_deliveries;
