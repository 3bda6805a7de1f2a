-- The queue's virtual time is now read from the jobs being worked on,
-- which costs no write per claim; the clock row is no longer used.
DROP TABLE queue_clock;
