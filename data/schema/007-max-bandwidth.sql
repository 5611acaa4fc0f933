-- 007-max-bandwidth.sql: schema version 7
--
-- SPDX-License-Identifier: LGPL-2.1-or-later
--
-- The task's bandwidth cap in bytes per second (BgTask:max-bandwidth), 0 for none.  Rows from
-- earlier versions get the default: no cap.

ALTER TABLE tasks ADD COLUMN max_bandwidth INTEGER NOT NULL DEFAULT 0;
