-- 006-resumable.sql: schema version 6
--
-- SPDX-License-Identifier: LGPL-2.1-or-later
--
-- Resumable uploads.  A task keeps the protocol its options asked for (BgUploadProtocol: 0 AUTO,
-- 1 PLAIN, 2 TUS, 3 IETF), whether AUTO may pick tus, the most bytes one request may carry, and
-- once a server made an upload resource for it, that resource's URL (a capability: the database
-- is 0600 and the URL is never shown), the protocol it speaks and when it expires (microseconds
-- since the epoch, 0 when the server did not say).  Rows from earlier versions are plain uploads
-- as they were: AUTO would send an OPTIONS that those tasks never asked for.
--
-- upload_probes keeps what an OPTIONS probe found out about an upload target (origin and path),
-- for a day, negative answers too.

ALTER TABLE tasks ADD COLUMN upload_protocol INTEGER NOT NULL DEFAULT 1;
ALTER TABLE tasks ADD COLUMN allow_tus INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN chunk_size INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN upload_url TEXT;
ALTER TABLE tasks ADD COLUMN upload_url_protocol INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN upload_expires INTEGER NOT NULL DEFAULT 0;

CREATE TABLE upload_probes (
  target     TEXT PRIMARY KEY NOT NULL,
  protocol   INTEGER NOT NULL,
  extensions TEXT,
  checked_at INTEGER NOT NULL
);
