-- 004-credentials.sql: schema version 4
--
-- SPDX-License-Identifier: LGPL-2.1-or-later
--
-- Credentials are not stored unless the task keeps them (keep_credentials, a task option).  A
-- task that was given some lists the names of the request headers left out of request_headers
-- (withheld_headers, comma-separated, NULL for none) and whether the password of its URL was
-- left out of uri (withheld_password), so that a later run knows what it lost.  Rows from
-- earlier versions get the defaults: they keep nothing back.

ALTER TABLE tasks ADD COLUMN keep_credentials INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN withheld_headers TEXT;
ALTER TABLE tasks ADD COLUMN withheld_password INTEGER NOT NULL DEFAULT 0;
