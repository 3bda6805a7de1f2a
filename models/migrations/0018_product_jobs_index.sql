-- A write-back takes along its product's other images that are ready to
-- be written back (one gallery read, one attach, one reorder for all):
-- they are found by product and state.
CREATE INDEX ix_image_jobs_shop_product ON image_jobs (shop_id, product_id, state, id);
-- The jobs taken along share their worker's lease token and its place in
-- the shop's concurrency: live leases are counted by owner, read from the
-- index alone.
CREATE INDEX ix_image_jobs_lease_owner ON image_jobs (lease_until, shop_id, lease_owner);
-- Replaced by the one above (SQLite keeps it; it cannot be dropped with the
-- same statement there).
{{MYSQL}} DROP INDEX ix_image_jobs_lease ON image_jobs;
