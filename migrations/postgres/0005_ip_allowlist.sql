-- A workspace's IP allow-list (PostgreSQL): the networks its API keys may be used from, as a JSON
-- array of canonical CIDR strings (ferry_core::Cidrs). Empty allows every address.
-- migrations/sqlite/0005_ip_allowlist.sql is the same in SQLite.
ALTER TABLE workspaces ADD COLUMN ip_allowlist TEXT NOT NULL DEFAULT '[]';
