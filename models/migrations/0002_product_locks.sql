-- Write-backs and reverts of one product take turns, across replicas: two
-- workers reordering one gallery at once would misplace images.
CREATE TABLE product_locks (
  shop_id BIGINT NOT NULL,
  product_id VARCHAR(64) NOT NULL,
  owner VARCHAR(64) NOT NULL,
  until_ms BIGINT NOT NULL,
  PRIMARY KEY (shop_id, product_id)
){{ENGINE}};
