-- gradphoto's metadata, SQLite dialect. Times are Unix milliseconds; flags are 0/1 integers, so that the same
-- queries run on PostgreSQL (see ../postgres).

CREATE TABLE regions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    province TEXT NOT NULL,
    city TEXT NOT NULL,
    UNIQUE (province, city)
);

CREATE TABLE schools (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    region_id BIGINT NOT NULL REFERENCES regions (id),
    code TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    fee_cents BIGINT NOT NULL DEFAULT 0,
    opens_at BIGINT,
    closes_at BIGINT,
    backgrounds TEXT NOT NULL DEFAULT 'light_blue',
    created_at BIGINT NOT NULL
);

CREATE TABLE photo_types (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id BIGINT NOT NULL REFERENCES schools (id),
    code TEXT NOT NULL,
    name_zh TEXT NOT NULL,
    name_en TEXT NOT NULL,
    position BIGINT NOT NULL DEFAULT 0,
    UNIQUE (school_id, code)
);

CREATE TABLE students (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    school_id BIGINT NOT NULL REFERENCES schools (id),
    student_no TEXT NOT NULL,
    name TEXT NOT NULL,
    id_kind TEXT NOT NULL,
    id_cipher BLOB NOT NULL,
    id_hash BLOB NOT NULL,
    college TEXT,
    degree_level TEXT,
    password_hash TEXT NOT NULL,
    password_changed BIGINT NOT NULL DEFAULT 0,
    paid BIGINT NOT NULL DEFAULT 0,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (school_id, student_no)
);
CREATE INDEX students_id_hash ON students (school_id, id_hash);

CREATE TABLE staff (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('super_admin', 'school_admin', 'reviewer')),
    school_id BIGINT REFERENCES schools (id),
    password_hash TEXT NOT NULL,
    failed_logins BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

-- A student's account is bound to one device per channel: 'browser' now, 'wechat' (an openid) later.
CREATE TABLE bindings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    student_id BIGINT NOT NULL REFERENCES students (id),
    channel TEXT NOT NULL,
    subject_hash BLOB NOT NULL,
    bound_at BIGINT NOT NULL,
    UNIQUE (student_id, channel)
);

CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    subject_kind TEXT NOT NULL CHECK (subject_kind IN ('student', 'staff')),
    subject_id BIGINT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Every file of the byte store has a row here; the file is made visible only after this row is committed.
CREATE TABLE blobs (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE photos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    student_id BIGINT NOT NULL REFERENCES students (id),
    photo_type_id BIGINT NOT NULL REFERENCES photo_types (id),
    original_key TEXT NOT NULL REFERENCES blobs (key),
    annotated_key TEXT REFERENCES blobs (key),
    verdict TEXT NOT NULL,
    -- ids of the rules that rejected or asked for a fix, comma-separated, for the progress charts
    failing TEXT NOT NULL DEFAULT '',
    report TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL
);
CREATE INDEX photos_student ON photos (student_id, photo_type_id);

CREATE TABLE submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    student_id BIGINT NOT NULL REFERENCES students (id),
    photo_type_id BIGINT NOT NULL REFERENCES photo_types (id),
    photo_id BIGINT NOT NULL REFERENCES photos (id),
    status TEXT NOT NULL,
    submitted_at BIGINT NOT NULL,
    decided_at BIGINT,
    reviewer_id BIGINT REFERENCES staff (id),
    reasons TEXT NOT NULL DEFAULT '',
    note TEXT NOT NULL DEFAULT '',
    registered_key TEXT REFERENCES blobs (key),
    exported_at BIGINT,
    UNIQUE (student_id, photo_type_id)
);
CREATE INDEX submissions_status ON submissions (status, submitted_at);

CREATE TABLE payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    student_id BIGINT NOT NULL REFERENCES students (id),
    amount_cents BIGINT NOT NULL,
    provider TEXT NOT NULL,
    status TEXT NOT NULL,
    reference TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    paid_at BIGINT
);

-- Messages to students, delivered by a worker with retries through a channel.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    student_id BIGINT NOT NULL REFERENCES students (id),
    channel TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    delivered_at BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (delivered_at, next_attempt_at);

-- The in-site channel's inbox.
CREATE TABLE notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    student_id BIGINT NOT NULL REFERENCES students (id),
    outbox_id BIGINT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    school_id BIGINT,
    detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_school ON audit (school_id, at);
