-- 005-pause.sql: schema version 5
--
-- SPDX-License-Identifier: LGPL-2.1-or-later
--
-- Whether the app paused the task (BgTask:paused).  A paused task keeps its partial file and its
-- checkpoint and does not start until the app unpauses it, in this run or a later one.  Rows
-- from earlier versions get the default: they are not paused.

ALTER TABLE tasks ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
