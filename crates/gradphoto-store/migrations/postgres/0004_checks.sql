-- The full check of an upload runs after the upload is answered: the upload's row is committed with the file
-- rules' verdict, queued (checked_at NULL), and claimed in arrival order by a check worker on any node, with a
-- lease that expires if that node dies. A photo claimed too many times (a file that kills its checker) is given up
-- with an error report instead of taking node after node down.
ALTER TABLE photos ADD COLUMN checked_at BIGINT;
ALTER TABLE photos ADD COLUMN check_lease_until BIGINT NOT NULL DEFAULT 0;
ALTER TABLE photos ADD COLUMN check_owner TEXT;
ALTER TABLE photos ADD COLUMN check_claims BIGINT NOT NULL DEFAULT 0;
UPDATE photos SET checked_at = uploaded_at;
CREATE INDEX photos_unchecked ON photos (id) WHERE checked_at IS NULL;
