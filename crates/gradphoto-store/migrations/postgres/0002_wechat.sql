-- WeChat: the openid binding, OAuth states, the shared server token, typed outbox messages with a dead letter,
-- and WeChat Pay orders with their notifications. PostgreSQL dialect (see ../sqlite); one column per ALTER,
-- statement for statement as in the SQLite file.

-- The openid itself, sealed by the caller: template messages need it, and subject_hash only finds it.
ALTER TABLE bindings ADD COLUMN subject_cipher BYTEA;
-- One openid binds one student at most; the index, not a read-then-insert, decides two binds at once.
CREATE UNIQUE INDEX bindings_wechat_subject ON bindings (channel, subject_hash) WHERE channel = 'wechat';

-- OAuth `state` values, stored hashed and taken once; pre_hash ties one to the browser that started it.
CREATE TABLE oauth_states (
    state_hash BYTEA PRIMARY KEY,
    pre_hash BYTEA NOT NULL,
    school_code TEXT,
    attempt BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

-- The official account's access token, one per appid, shared by every node; forced refreshes are rationed
-- because WeChat caps them per day.
CREATE TABLE wechat_tokens (
    appid TEXT PRIMARY KEY,
    access_token TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    fetched_at BIGINT NOT NULL,
    force_day BIGINT NOT NULL DEFAULT 0,
    force_count BIGINT NOT NULL DEFAULT 0,
    last_force_at BIGINT NOT NULL DEFAULT 0
);

-- kind and payload let a channel other than the site's render its own message; dead_at marks a message given up.
ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'notice';
ALTER TABLE outbox ADD COLUMN payload TEXT NOT NULL DEFAULT '{}';
ALTER TABLE outbox ADD COLUMN dead_at BIGINT;

-- WeChat Pay orders: amounts in fen; status created → paid → refunding → refunded, or created → closed.
ALTER TABLE payments ADD COLUMN out_trade_no TEXT;
ALTER TABLE payments ADD COLUMN prepay_id TEXT;
ALTER TABLE payments ADD COLUMN prepay_expires_at BIGINT;
ALTER TABLE payments ADD COLUMN transaction_id TEXT;
ALTER TABLE payments ADD COLUMN refund_no TEXT;
ALTER TABLE payments ADD COLUMN refunded_at BIGINT;
ALTER TABLE payments ADD COLUMN updated_at BIGINT;
-- NULLs (offline payments) do not collide.
CREATE UNIQUE INDEX payments_out_trade_no ON payments (out_trade_no);
CREATE UNIQUE INDEX payments_refund_no ON payments (refund_no);
CREATE INDEX payments_student ON payments (student_id);

-- Each WeChat Pay notification is acted on once, however often it is resent.
CREATE TABLE payment_events (
    event_id TEXT PRIMARY KEY,
    out_trade_no TEXT,
    event_type TEXT NOT NULL,
    outcome TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
