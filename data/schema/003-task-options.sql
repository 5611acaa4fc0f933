-- 003-task-options.sql: schema version 3
--
-- SPDX-License-Identifier: LGPL-2.1-or-later
--
-- The options an app can set on a task (BgTask's writable properties): whether it may use a
-- metered network, whether it may wait out power-saver mode, its priority in the queue, the
-- earliest time it may start (microseconds since the Unix epoch, 0 for none) and the SHA-256
-- a download must have before it is published.  Rows from earlier versions get the defaults.

ALTER TABLE tasks ADD COLUMN allow_metered INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN discretionary INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN earliest_start INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN expected_sha256 TEXT;
