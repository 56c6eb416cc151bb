-- A workspace's IP allow-list (SQLite): the networks its API keys may be used from, as a JSON
-- array of canonical CIDR strings (ferry_core::Cidrs). Empty allows every address.
-- migrations/postgres/0005_ip_allowlist.sql is the same in PostgreSQL's types.
ALTER TABLE workspaces ADD COLUMN ip_allowlist TEXT NOT NULL DEFAULT '[]';
