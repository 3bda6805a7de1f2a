-- The first schema: shops and their settings, image jobs with their audit
-- trail, webhook deliveries and cron runs.
-- {{ID}} and {{ENGINE}} are filled in per dialect; every other line is
-- plain SQL that MySQL 8, MariaDB 10.6+ and SQLite all accept.

CREATE TABLE shops (
  id {{ID}},
  domain VARCHAR(255) NOT NULL,
  state VARCHAR(16) NOT NULL,
  access_token TEXT NULL,
  access_token_expires_at DATETIME(6) NULL,
  refresh_token TEXT NULL,
  refresh_token_expires_at DATETIME(6) NULL,
  scopes VARCHAR(512) NOT NULL DEFAULT '',
  fair_clock BIGINT NOT NULL DEFAULT 0,
  reconciled_at DATETIME(6) NULL,
  installed_at DATETIME(6) NULL,
  uninstalled_at DATETIME(6) NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL
){{ENGINE}};
CREATE UNIQUE INDEX ux_shops_domain ON shops (domain);
CREATE INDEX ix_shops_state_token_expiry ON shops (state, access_token_expires_at);

CREATE TABLE shop_settings (
  shop_id BIGINT NOT NULL PRIMARY KEY,
  enabled BOOLEAN NOT NULL DEFAULT FALSE,
  rtb_contact_email VARCHAR(255) NOT NULL DEFAULT '',
  rtb_contact_api_key TEXT NULL,
  rtb_developer_api_key TEXT NULL,
  template_id VARCHAR(32) NOT NULL DEFAULT '',
  template_name VARCHAR(255) NOT NULL DEFAULT '',
  template_price VARCHAR(32) NOT NULL DEFAULT '',
  template_currency VARCHAR(16) NOT NULL DEFAULT '',
  image_scope VARCHAR(16) NOT NULL DEFAULT 'all',
  write_mode VARCHAR(16) NOT NULL DEFAULT 'replace',
  delivery_hours INT NOT NULL DEFAULT 24,
  monthly_budget VARCHAR(32) NOT NULL DEFAULT '',
  filters TEXT NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL
){{ENGINE}};

CREATE TABLE image_jobs (
  id {{ID}},
  shop_id BIGINT NOT NULL,
  product_id VARCHAR(64) NOT NULL,
  product_title VARCHAR(512) NOT NULL DEFAULT '',
  media_id VARCHAR(64) NOT NULL,
  original_url TEXT NULL,
  original_alt TEXT NULL,
  original_position INT NOT NULL DEFAULT 0,
  original_filename VARCHAR(255) NOT NULL DEFAULT '',
  variant_ids TEXT NULL,
  original_file_id VARCHAR(64) NOT NULL DEFAULT '',
  write_mode VARCHAR(16) NOT NULL DEFAULT '',
  template_id VARCHAR(32) NOT NULL DEFAULT '',
  price VARCHAR(32) NOT NULL DEFAULT '',
  state VARCHAR(16) NOT NULL,
  attempts INT NOT NULL DEFAULT 0,
  run_at BIGINT NULL,
  fair_key BIGINT NOT NULL DEFAULT 0,
  lease_owner VARCHAR(64) NULL,
  lease_until BIGINT NULL,
  ticket VARCHAR(64) NULL,
  submit_started_at DATETIME(6) NULL,
  submitted_at DATETIME(6) NULL,
  submit_month CHAR(7) NULL,
  callback_at DATETIME(6) NULL,
  delivered_at DATETIME(6) NULL,
  final_image_url TEXT NULL,
  processed_url TEXT NULL,
  result_media_id VARCHAR(64) NOT NULL DEFAULT '',
  step VARCHAR(32) NOT NULL DEFAULT '',
  error TEXT NULL,
  due_by DATETIME(6) NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at DATETIME(6) NOT NULL
){{ENGINE}};
CREATE UNIQUE INDEX ux_image_jobs_shop_media ON image_jobs (shop_id, media_id);
CREATE INDEX ix_image_jobs_claim ON image_jobs (run_at, fair_key, id);
CREATE INDEX ix_image_jobs_shop_state ON image_jobs (shop_id, state, id);
CREATE INDEX ix_image_jobs_shop_id ON image_jobs (shop_id, id);
CREATE INDEX ix_image_jobs_state_updated ON image_jobs (state, updated_at);
CREATE INDEX ix_image_jobs_shop_month ON image_jobs (shop_id, submit_month);
CREATE INDEX ix_image_jobs_shop_result ON image_jobs (shop_id, result_media_id);

CREATE TABLE job_events (
  id {{ID}},
  job_id BIGINT NOT NULL,
  shop_id BIGINT NOT NULL,
  from_state VARCHAR(16) NOT NULL DEFAULT '',
  to_state VARCHAR(16) NOT NULL,
  message TEXT NULL,
  created_at DATETIME(6) NOT NULL
){{ENGINE}};
CREATE INDEX ix_job_events_job ON job_events (job_id, id);
CREATE INDEX ix_job_events_shop ON job_events (shop_id);

CREATE TABLE webhook_deliveries (
  id {{ID}},
  webhook_id VARCHAR(128) NOT NULL,
  topic VARCHAR(64) NOT NULL,
  shop_domain VARCHAR(255) NOT NULL,
  received_at DATETIME(6) NOT NULL
){{ENGINE}};
CREATE UNIQUE INDEX ux_webhook_deliveries_webhook_id ON webhook_deliveries (webhook_id);
CREATE INDEX ix_webhook_deliveries_received ON webhook_deliveries (received_at);
CREATE INDEX ix_webhook_deliveries_shop ON webhook_deliveries (shop_domain);

CREATE TABLE cron_runs (
  id {{ID}},
  name VARCHAR(64) NOT NULL,
  period VARCHAR(32) NOT NULL,
  owner VARCHAR(64) NOT NULL,
  started_at DATETIME(6) NOT NULL,
  finished_at DATETIME(6) NULL,
  error TEXT NULL
){{ENGINE}};
CREATE UNIQUE INDEX ux_cron_runs_name_period ON cron_runs (name, period);

CREATE TABLE backfills (
  shop_id BIGINT NOT NULL PRIMARY KEY,
  state VARCHAR(16) NOT NULL,
  cursor_after TEXT NULL,
  products_seen INT NOT NULL DEFAULT 0,
  images_queued INT NOT NULL DEFAULT 0,
  images_skipped INT NOT NULL DEFAULT 0,
  error TEXT NULL,
  lease_until BIGINT NULL,
  started_at DATETIME(6) NOT NULL,
  finished_at DATETIME(6) NULL,
  updated_at DATETIME(6) NOT NULL
){{ENGINE}};
