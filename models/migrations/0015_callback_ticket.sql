-- A callback that arrives while its submission is still in flight (the
-- worker holds the job) names the ticket before the worker has it. The
-- ticket is noted here, beside the job's own, so that whoever resolves the
-- submission adopts it instead of leaving a paid image unconfirmed.
ALTER TABLE image_jobs ADD COLUMN callback_ticket VARCHAR(128) NULL;
