-- Uploaded flows, content-addressed per workspace: the same bytes uploaded by two workspaces
-- are two rows, so a digest never tells one tenant what another has.
CREATE TABLE artifacts (
    workspace_id UUID NOT NULL REFERENCES workspaces (id),
    digest TEXT NOT NULL,
    kind TEXT NOT NULL,
    size BIGINT NOT NULL,
    bytes BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, digest)
);

-- The claim query's fair-share order counts each workspace's runs in flight.
CREATE INDEX runs_workspace_state_idx ON runs (workspace_id, state);
