-- One line per table of the public schema (name, row count, md5 over every row in a fixed order)
-- and per sequence (name, last value, is_called): two databases print the same lines only when
-- they hold the same data. Tables are found from the catalog, so a table the dataset adds later
-- is covered without editing this file. Run with psql -X -qAt.
\set ON_ERROR_STOP on
SELECT format('SELECT %L, count(*), md5(coalesce(string_agg(t::text, E''\n'' ORDER BY t::text), '''')) FROM public.%I AS t', 'table ' || c.relname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')
ORDER BY c.relname \gexec
SELECT format('SELECT %L, last_value, is_called FROM public.%I', 'sequence ' || c.relname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'S'
ORDER BY c.relname \gexec
