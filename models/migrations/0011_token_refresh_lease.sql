-- A token refresh no longer holds the shop row across the call to Shopify.
-- refresh_owner/refresh_until (unix ms) are a short lease: the replica that
-- takes it calls Shopify outside any transaction and then writes the new
-- tokens in one statement; others wait for that write. access_token_issued_at
-- gives the token's lifetime, of which the refresh margin is a fraction.
ALTER TABLE shops ADD COLUMN access_token_issued_at DATETIME(6) NULL;
ALTER TABLE shops ADD COLUMN refresh_owner VARCHAR(64) NULL;
ALTER TABLE shops ADD COLUMN refresh_until BIGINT NULL;
