-- kvsd catalog schema 1: streams, fragment index, component state, stream leases.
-- docs/format/catalog-postgres.md describes every table. Names are compared bytewise
-- (COLLATE "C") so that listings come in the same order as from the embedded catalog.

-- Stream records: the JSON record of internal/catalog/streamrec, as in the bbolt file.
CREATE TABLE streams (
    name   text COLLATE "C" PRIMARY KEY,
    record json NOT NULL
);

-- The latest creation time ever stored under a name, kept after the stream is deleted, so
-- creation times (and fragment numbers) strictly increase per name.
CREATE TABLE stream_names (
    name            text COLLATE "C" PRIMARY KEY,
    last_created_ms bigint NOT NULL
);

-- One row per stream incarnation the fragment index holds anything for. id keeps the
-- fragment rows small; last_* is the highest seq ever put and its location, kept when the
-- fragments expire so that sequences never go back.
CREATE TABLE fragment_streams (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text COLLATE "C" NOT NULL,
    created_ms   bigint NOT NULL,
    last_seq     bigint NOT NULL,
    last_segment bigint NOT NULL,
    last_offset  bigint NOT NULL,
    last_length  bigint NOT NULL,
    UNIQUE (name, created_ms)
);

-- The fragment index: one row per stored fragment. The two timeline indexes serve
-- ListFragments and SeqAt as index range scans in (start, seq) order.
CREATE TABLE fragments (
    stream_id   bigint NOT NULL REFERENCES fragment_streams (id) ON DELETE CASCADE,
    seq         bigint NOT NULL,
    producer_ms bigint NOT NULL,
    server_ms   bigint NOT NULL,
    duration_ms bigint NOT NULL,
    timecode    bigint NOT NULL, -- the uint64 cluster timecode's bits
    segment     bigint NOT NULL,
    "offset"    bigint NOT NULL,
    length      bigint NOT NULL,
    header_id   text NOT NULL,
    tags        bytea,           -- NULL: none; else uvarint-length-prefixed name, value pairs
    PRIMARY KEY (stream_id, seq)
);
CREATE INDEX fragments_producer ON fragments (stream_id, producer_ms, seq);
CREATE INDEX fragments_server ON fragments (stream_id, server_ms, seq);

-- MKV headers, kept while refs (the entries naming them) is above zero.
CREATE TABLE fragment_headers (
    stream_id bigint NOT NULL REFERENCES fragment_streams (id) ON DELETE CASCADE,
    id        text COLLATE "C" NOT NULL,
    header    bytea NOT NULL,
    refs      bigint NOT NULL,
    PRIMARY KEY (stream_id, id)
);

-- Live media segments: refs counts the entries whose location names the segment.
CREATE TABLE fragment_segments (
    stream_id bigint NOT NULL REFERENCES fragment_streams (id) ON DELETE CASCADE,
    segment   bigint NOT NULL,
    refs      bigint NOT NULL,
    PRIMARY KEY (stream_id, segment)
);

-- Small durable records of background components (catalog.State).
CREATE TABLE state (
    component text COLLATE "C" NOT NULL,
    key       text COLLATE "C" NOT NULL,
    value     bytea NOT NULL,
    PRIMARY KEY (component, key)
);

-- Stream write leases (catalog.Leases): epoch is the fencing token every fenced index commit
-- checks; expires_at is on the database's clock. holder is '' once released.
CREATE TABLE stream_leases (
    stream     text COLLATE "C" PRIMARY KEY,
    holder     text NOT NULL,
    epoch      bigint NOT NULL,
    expires_at timestamptz NOT NULL
);

-- kvsd_fence fails the transaction it runs in unless stream's lease epoch is epoch: index
-- commits call it first, in the same implicit transaction as their writes, so a stale owner's
-- commit fails as a whole. FOR SHARE makes a concurrent grant wait for this commit. The error
-- is SQLSTATE KV001 with the current epoch (0: no lease) as its detail.
CREATE FUNCTION kvsd_fence(p_stream text, p_epoch bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    cur bigint;
BEGIN
    SELECT epoch INTO cur FROM stream_leases WHERE stream = p_stream FOR SHARE;
    IF cur IS DISTINCT FROM p_epoch THEN
        RAISE EXCEPTION 'stream % lease epoch % is fenced off', p_stream, p_epoch
            USING ERRCODE = 'KV001', DETAIL = coalesce(cur, 0)::text;
    END IF;
END
$$;
