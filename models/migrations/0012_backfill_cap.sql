-- A backfill spends at most what the merchant confirmed: each start is a
-- new run with its confirmed amount, and the jobs a run queues carry the
-- run, so the submit path counts them against that amount.
ALTER TABLE backfills ADD COLUMN run BIGINT NOT NULL DEFAULT 0;
ALTER TABLE backfills ADD COLUMN confirm_amount VARCHAR(32) NOT NULL DEFAULT '';
ALTER TABLE image_jobs ADD COLUMN backfill_run BIGINT NULL;
