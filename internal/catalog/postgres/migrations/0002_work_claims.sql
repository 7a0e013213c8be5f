-- Work claims (catalog.WorkClaims): per (kind, stream incarnation) the node that may run that
-- background work and move its cursor, with an epoch that fences the cursor writes and an
-- expiry on the database's clock.
CREATE TABLE work_claims (
    kind       text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    holder     text NOT NULL,
    epoch      bigint NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (kind, key)
);
