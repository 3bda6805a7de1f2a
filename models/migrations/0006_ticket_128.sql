-- Remove The Background's callbacks are accepted with tickets of up to 128
-- characters, so the job's ticket column holds as many. SQLite does not
-- enforce VARCHAR lengths, so only MySQL needs the change.
{{MYSQL}} ALTER TABLE image_jobs MODIFY ticket VARCHAR(128) NULL;
