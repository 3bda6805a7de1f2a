-- The claim order without a filesort or a range of locked rows.
-- queue_key is a job's place in the fair order across shops while it is
-- ready to be claimed, NULL otherwise; run_at stays when a worker should
-- next act on it. Claiming reads a few candidates in (queue_key, id) order
-- through ix_image_jobs_queue and then locks them by primary key; jobs
-- whose run_at comes due (retries, polls, expired leases, wake-ups) are
-- given a place through ix_image_jobs_due; a shop's last place is found
-- through ix_image_jobs_shop_queue.
ALTER TABLE image_jobs ADD COLUMN queue_key BIGINT NULL;
CREATE INDEX ix_image_jobs_queue ON image_jobs (queue_key, id);
CREATE INDEX ix_image_jobs_due ON image_jobs (queue_key, run_at);
CREATE INDEX ix_image_jobs_shop_queue ON image_jobs (shop_id, queue_key, run_at);
