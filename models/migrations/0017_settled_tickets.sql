-- A charge kept beside a job that is submitted again names the ticket it
-- paid for, when known: a late callback for that earlier submission must
-- not be taken for the new one's.
ALTER TABLE job_charges ADD COLUMN ticket VARCHAR(128) NULL;
CREATE INDEX ix_job_charges_job ON job_charges (job_id);
