-- The signing keys of Ferry's OIDC issuer (SQLite). migrations/postgres/0004_issuer_keys.sql is
-- the same in PostgreSQL's types; the parity test keeps them equal in effect.
--
-- Ferry's own keys, not a tenant's: the tokens they sign name a workspace and pool in their
-- subject, and customers' clouds trust them through the public JWKS. The private key is
-- never stored in the clear: `sealed_private_key` is ferry-crypto's envelope format under a key
-- of its own (`wrapped_key`), which the root key `root_key_id` wraps, as with workspace keys;
-- root-key rotation re-wraps these rows too.
--
-- Lifecycle: a key signs from `not_before` until `retire_after`, and is published in the JWKS
-- from `created_at` until `not_after` (after its last token has expired). Each key has the
-- next `generation`: two processes creating the same generation at once insert one row.
CREATE TABLE issuer_keys (
    -- The key's id: its RFC 7638 JWK thumbprint.
    kid TEXT NOT NULL PRIMARY KEY,
    generation INTEGER NOT NULL,
    alg TEXT NOT NULL,
    -- The public key as a JWK (JSON text).
    public_jwk TEXT NOT NULL,
    root_key_id TEXT NOT NULL,
    -- nonce || AES-256-GCM(root key, this key's wrapping key) + tag
    wrapped_key BLOB NOT NULL,
    sealed_private_key BLOB NOT NULL,
    created_at TEXT NOT NULL,
    not_before TEXT NOT NULL,
    retire_after TEXT NOT NULL,
    not_after TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX issuer_keys_generation_key ON issuer_keys (generation);
CREATE INDEX issuer_keys_root_key_idx ON issuer_keys (root_key_id);
