-- Webhook deliveries become a transactional inbox: the answer to Shopify
-- waits only for the delivery's own row (headers the pipeline needs and the
-- raw body); the work it causes runs afterwards from that row. pending_at
-- (unix ms) is when the row is next due for fan-out; NULL once it is done,
-- when the body is dropped and the row stays only to recognise retries.
ALTER TABLE webhook_deliveries ADD COLUMN triggered_at DATETIME(6) NULL;
ALTER TABLE webhook_deliveries ADD COLUMN body MEDIUMBLOB NULL;
ALTER TABLE webhook_deliveries ADD COLUMN pending_at BIGINT NULL;
ALTER TABLE webhook_deliveries ADD COLUMN attempts INT NOT NULL DEFAULT 0;
CREATE INDEX ix_webhook_deliveries_pending ON webhook_deliveries (pending_at, id);
