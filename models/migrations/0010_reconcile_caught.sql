-- What each shop's reconciliation caught: images no webhook had announced,
-- in its last pass and in all, for the dashboard and /metrics.
ALTER TABLE shops ADD COLUMN reconcile_caught INT NOT NULL DEFAULT 0;
ALTER TABLE shops ADD COLUMN reconcile_caught_total BIGINT NOT NULL DEFAULT 0;
