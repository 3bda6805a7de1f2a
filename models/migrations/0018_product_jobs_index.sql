-- A write-back takes along its product's other images that are ready to
-- be written back (one gallery read, one attach, one reorder for all):
-- they are found by product and state.
CREATE INDEX ix_image_jobs_shop_product ON image_jobs (shop_id, product_id, state);
