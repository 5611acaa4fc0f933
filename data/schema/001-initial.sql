-- 001-initial.sql: schema version 1, the task table
--
-- SPDX-License-Identifier: LGPL-2.1-or-later
--
-- One row per task, keyed by (kind, identifier).  kind and state hold the BgTaskKind and
-- BgTaskState values; times are microseconds since the Unix epoch (0 when unset); byte counts
-- are -1 when unknown.  The response_* and error_* columns are filled once the task has finished
-- (has_response = 1).  The store runs this file and the user_version bump in one transaction.

CREATE TABLE tasks (
  kind             INTEGER NOT NULL,
  identifier       TEXT    NOT NULL,
  state            INTEGER NOT NULL DEFAULT 0,
  method           TEXT,
  uri              TEXT,
  request_headers  TEXT,
  file_path        TEXT,
  partial_path     TEXT,
  checkpoint       INTEGER NOT NULL DEFAULT 0,
  total            INTEGER NOT NULL DEFAULT -1,
  etag             TEXT,
  last_modified    TEXT,
  source_size      INTEGER NOT NULL DEFAULT -1,
  source_mtime     INTEGER NOT NULL DEFAULT 0,
  attempts         INTEGER NOT NULL DEFAULT 0,
  next_attempt_at  INTEGER NOT NULL DEFAULT 0,
  created_at       INTEGER NOT NULL DEFAULT 0,
  updated_at       INTEGER NOT NULL DEFAULT 0,
  has_response     INTEGER NOT NULL DEFAULT 0,
  response_kind    INTEGER NOT NULL DEFAULT 0,
  response_status  INTEGER NOT NULL DEFAULT 0,
  response_reason  TEXT,
  response_headers TEXT,
  response_body    BLOB,
  error_domain     TEXT,
  error_code       INTEGER NOT NULL DEFAULT 0,
  error_message    TEXT,
  PRIMARY KEY (kind, identifier)
);

-- bg_store_load_all() reads one kind, oldest first.
CREATE INDEX tasks_by_age ON tasks (kind, created_at);
