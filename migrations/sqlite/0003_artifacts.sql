-- Uploaded flows, content-addressed per workspace: the same bytes uploaded by two workspaces
-- are two rows, so a digest never tells one tenant what another has.
CREATE TABLE artifacts (
    workspace_id BLOB NOT NULL REFERENCES workspaces (id),
    digest TEXT NOT NULL,
    kind TEXT NOT NULL,
    size INTEGER NOT NULL,
    bytes BLOB NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, digest)
) STRICT;

-- The claim query's fair-share order counts each workspace's runs in flight.
CREATE INDEX runs_workspace_state_idx ON runs (workspace_id, state);
