-- A small shop schema for the Postgres group, created by the application role as the app would:
-- foreign keys (with cascades), unique and composite indexes, an identity column, serial and
-- bigserial sequences, a standalone sequence advanced past its start, a CHECK constraint, jsonb,
-- bytea, NULLs and a view. Deterministic: two runs write identical rows.
\set ON_ERROR_STOP on
BEGIN;
CREATE TABLE customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text NOT NULL UNIQUE,
  name text NOT NULL,
  country char(2),
  created_at timestamptz NOT NULL
);
CREATE TABLE products (
  id serial PRIMARY KEY,
  sku text NOT NULL UNIQUE,
  title text NOT NULL,
  price_cents integer NOT NULL CHECK (price_cents > 0),
  attributes jsonb NOT NULL DEFAULT '{}'
);
CREATE TABLE orders (
  id bigserial PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  status text NOT NULL,
  placed_at timestamptz NOT NULL,
  note text
);
CREATE INDEX orders_customer_placed_idx ON orders (customer_id, placed_at DESC);
CREATE INDEX orders_open_idx ON orders (placed_at) WHERE status <> 'delivered';
CREATE TABLE order_items (
  order_id bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  product_id integer NOT NULL REFERENCES products (id),
  quantity integer NOT NULL,
  PRIMARY KEY (order_id, product_id)
);
CREATE INDEX order_items_product_idx ON order_items (product_id);
CREATE TABLE attachments (
  id serial PRIMARY KEY,
  order_id bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
  content bytea NOT NULL
);
CREATE SEQUENCE invoice_number_seq START 100000;
CREATE VIEW customer_totals AS
  SELECT c.id, c.email, count(DISTINCT o.id) AS orders, coalesce(sum(i.quantity * p.price_cents), 0) AS spent_cents
  FROM customers c
  LEFT JOIN orders o ON o.customer_id = c.id
  LEFT JOIN order_items i ON i.order_id = o.id
  LEFT JOIN products p ON p.id = i.product_id
  GROUP BY c.id, c.email;

INSERT INTO customers (email, name, country, created_at)
  SELECT 'user' || i || '@example.com', 'Customer ' || md5(i::text), CASE WHEN i % 7 = 0 THEN NULL ELSE (ARRAY['DE', 'FR', 'US', 'JP'])[i % 4 + 1] END,
         timestamptz '2026-01-01 00:00:00+00' + i * interval '37 minutes'
  FROM generate_series(1, 1000) AS i;
INSERT INTO products (sku, title, price_cents, attributes)
  SELECT 'SKU-' || lpad(i::text, 5, '0'), 'Product ' || i, 100 + (i * 37) % 9900, jsonb_build_object('color', (ARRAY['red', 'green', 'blue'])[i % 3 + 1], 'weight', i * 0.25)
  FROM generate_series(1, 200) AS i;
INSERT INTO orders (customer_id, status, placed_at, note)
  SELECT (i * 13) % 1000 + 1, (ARRAY['new', 'paid', 'shipped', 'delivered'])[i % 4 + 1], timestamptz '2026-02-01 00:00:00+00' + i * interval '11 minutes',
         CASE WHEN i % 5 = 0 THEN 'gift wrap ' || i END
  FROM generate_series(1, 3000) AS i;
-- Three distinct products per order (offsets 0, 67 and 134 never collide modulo 200).
INSERT INTO order_items (order_id, product_id, quantity)
  SELECT o, (o + k * 67) % 200 + 1, 1 + (o + k) % 4
  FROM generate_series(1, 3000) AS o, generate_series(0, 2) AS k;
INSERT INTO attachments (order_id, content)
  SELECT i * 3, decode(md5(i::text) || md5((i + 1)::text), 'hex')
  FROM generate_series(1, 500) AS i;
-- Cascades and deletes leave gaps in the sequences, as a real table has.
DELETE FROM customers WHERE id % 97 = 0;
SELECT count(*) FROM (SELECT nextval('invoice_number_seq') FROM generate_series(1, 42)) AS s \g /dev/null
COMMIT;
ANALYZE;
