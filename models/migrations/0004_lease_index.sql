-- Claiming passes over shops that already hold their share of leases; this
-- finds the leased jobs without scanning the table.
CREATE INDEX ix_image_jobs_lease ON image_jobs (lease_until, shop_id);
