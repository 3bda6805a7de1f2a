-- Shopify reorders a product's media in an asynchronous job, and until it
-- is done the gallery reads as before. The worker holding the product's
-- lock notes the job here while it waits for it: a worker that takes the
-- lock over (its holder's lease looked run out) waits for that job before
-- it reads the gallery, so it never plans moves from an order about to
-- change.
ALTER TABLE product_locks ADD COLUMN pending_job VARCHAR(128) NOT NULL DEFAULT '';
