CREATE TABLE customers (
  entity_id TEXT PRIMARY KEY,
  org_id BIGINT NOT NULL REFERENCES organizations(id),
  client_id TEXT NOT NULL,
  name TEXT NOT NULL DEFAULT '',
  email TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL
);
CREATE INDEX customers_org ON customers(org_id);
CREATE INDEX conversations_customer ON conversations(customer_id);
