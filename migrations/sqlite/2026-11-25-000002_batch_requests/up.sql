-- Idempotent batch calls (AddMembers, RemoveMembers): a request_id answers with the first
-- call's response.
CREATE TABLE batch_requests (
    tenant_id BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    response TEXT NOT NULL,
    create_time BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);
