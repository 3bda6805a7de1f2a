-- Review before publish: a shop may hold processed images for the
-- merchant's decision. A held image waits in Files (review_file_id) with
-- when it was held and decided, the merchant's reason for a rejection,
-- and when the dashboard reminded the merchant of it (once).
ALTER TABLE shop_settings ADD COLUMN publish VARCHAR(16) NOT NULL DEFAULT 'auto';
ALTER TABLE shop_settings ADD COLUMN review_reminder_days INT NOT NULL DEFAULT 7;
ALTER TABLE image_jobs ADD COLUMN review_held_at DATETIME(6) NULL;
ALTER TABLE image_jobs ADD COLUMN review_decided_at DATETIME(6) NULL;
ALTER TABLE image_jobs ADD COLUMN review_reason VARCHAR(1000) NOT NULL DEFAULT '';
ALTER TABLE image_jobs ADD COLUMN review_file_id VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE image_jobs ADD COLUMN review_notified_at DATETIME(6) NULL;
CREATE INDEX ix_image_jobs_review ON image_jobs (shop_id, state, review_held_at);
