-- The claim order's virtual time: the fair key of the latest claimed job.
-- A shop's new job is placed no earlier than it, so a shop that was idle
-- goes next instead of behind another shop's backlog, whatever the wall clock.
CREATE TABLE queue_clock (
  id INT NOT NULL PRIMARY KEY,
  virtual_ms BIGINT NOT NULL
){{ENGINE}};
INSERT INTO queue_clock (id, virtual_ms) VALUES (1, 0);
