-- The app knows its own images by the ids it recorded; a held image's
-- file is looked up by its id when a product shows it.
CREATE INDEX ix_image_jobs_shop_review_file ON image_jobs (shop_id, review_file_id);
