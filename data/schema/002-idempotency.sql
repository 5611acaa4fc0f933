-- 002-idempotency.sql: schema version 2
--
-- SPDX-License-Identifier: LGPL-2.1-or-later
--
-- Adds the key sent as Idempotency-Key on upload retries, and the count of times a transfer
-- started over from byte 0.  Rows written by version 1 get NULL and 0.

ALTER TABLE tasks ADD COLUMN idempotency_key TEXT;
ALTER TABLE tasks ADD COLUMN restarts INTEGER NOT NULL DEFAULT 0;
