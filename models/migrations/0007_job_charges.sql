-- A submission whose answer was lost may have been billed. When the
-- merchant resubmits it, its charge moves here, so the month's budget keeps
-- counting it beside the new submission's.
CREATE TABLE job_charges (
  id {{ID}},
  shop_id BIGINT NOT NULL,
  job_id BIGINT NOT NULL,
  month CHAR(7) NOT NULL,
  price VARCHAR(32) NOT NULL,
  created_at DATETIME(6) NOT NULL
){{ENGINE}};
CREATE INDEX ix_job_charges_shop_month ON job_charges (shop_id, month);
