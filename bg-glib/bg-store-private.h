/* bg-store-private.h: the task database
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <gio/gio.h>

#include "bg-task.h"

G_BEGIN_DECLS

/* The schema version this code writes.  Older databases are upgraded in place by the ordered
 * migrations in data/schema/; newer ones are refused with BG_ERROR_STORE. */
#define BG_STORE_SCHEMA_VERSION 7

/* A record holds everything a later run needs to carry a task on.  Strings are owned; NULL means
 * "none".  Times are microseconds since the Unix epoch (wall clock), 0 when unset. */
typedef struct _BgStoreRecord
{
  char        *identifier;
  BgTaskKind   kind;
  BgTaskState  state;
  char        *method;
  char        *uri;
  char        *request_headers;   /* encoded with bg_http_encode_headers() */
  char        *file_path;         /* download destination, or upload source */
  char        *partial_path;      /* downloads: the partial file beside the destination */
  gint64       checkpoint;        /* bytes known to be on disk (fdatasync'ed) */
  gint64       total;             /* -1 when unknown */
  char        *etag;
  char        *last_modified;
  gint64       source_size;       /* uploads: -1 when unset */
  gint64       source_mtime;      /* uploads: microseconds, 0 when unset */
  guint        attempts;
  guint        restarts;          /* times the transfer started over from byte 0 */
  gint64       next_attempt_at;
  gint64       created_at;
  gint64       updated_at;
  char        *idempotency_key;   /* schema 2 */

  /* The app's options for the task (schema 3). */
  gboolean     allow_metered;
  gboolean     discretionary;
  int          priority;
  gint64       earliest_start;
  char        *expected_sha256;
  gboolean     keep_credentials;   /* schema 4 */

  /* What the record leaves out of the request (schema 4): unless keep_credentials is set, uri
   * has no password and request_headers no Authorization, Proxy-Authorization or Cookie.  These
   * say what was left out, so that a later run knows the task lost it. */
  char        *withheld_headers;   /* header names, comma-separated; NULL for none */
  gboolean     withheld_password;

  gboolean     paused;             /* schema 5: the app paused the task */
  gint64       max_bandwidth;      /* schema 6: bytes per second, 0 for no cap */

  /* Resumable uploads (schema 6). */
  int          upload_protocol;    /* BgUploadProtocol the options asked for */
  gboolean     allow_tus;
  gint64       chunk_size;         /* 0: no limit */
  char        *upload_url;         /* the server's upload resource; never shown */
  int          upload_url_protocol; /* BgUploadProtocol that upload_url speaks */
  gint64       upload_expires;     /* when upload_url expires, 0 when unknown */

  /* The final response, set once the task has finished (has_response). */
  gboolean     has_response;
  int          response_kind;     /* BgResponseKind */
  guint        response_status;
  char        *response_reason;
  char        *response_headers;  /* encoded with bg_http_encode_headers() */
  GBytes      *response_body;     /* capped */
  char        *error_domain;      /* g_quark_to_string() of the GError domain */
  int          error_code;
  char        *error_message;
} BgStoreRecord;

BgStoreRecord *bg_store_record_new   (void);
BgStoreRecord *bg_store_record_copy  (const BgStoreRecord *record);
void           bg_store_record_free  (BgStoreRecord       *record);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BgStoreRecord, bg_store_record_free)

#define BG_TYPE_STORE (bg_store_get_type ())

G_DECLARE_FINAL_TYPE (BgStore, bg_store, BG, STORE, GObject)

/* Opens (creating with mode 0600 if needed, never through a symbolic link) the database at
 * @path.  Within one process the same file, by any of its names, gives the same BgStore (a new
 * reference); a second process gets BG_ERROR_BUSY.  A database this process cannot write gives
 * BG_ERROR_STORE; so does a corrupt one or one from a newer schema, which is left byte-identical
 * with its -wal and -shm. */
BgStore        *bg_store_open          (const char           *path,
                                        GError              **error);
const char     *bg_store_get_path      (BgStore              *self);
/* Inserts or replaces the record keyed by (kind, identifier), in one committed transaction. */
gboolean        bg_store_save          (BgStore              *self,
                                        const BgStoreRecord  *record,
                                        GError              **error);
/* Inserts the record unless one of its kind and identifier exists; then *inserted is FALSE. */
gboolean        bg_store_insert_new    (BgStore              *self,
                                        const BgStoreRecord  *record,
                                        gboolean             *inserted,
                                        GError              **error);
/* Updates only the progress columns (partial_path, checkpoint, total, etag, last_modified,
 * updated_at, and the upload resource: upload_url, upload_url_protocol, upload_expires). */
gboolean        bg_store_save_progress (BgStore              *self,
                                        const BgStoreRecord  *record,
                                        GError              **error);
/* Returns NULL without setting @error when no record matches. */
BgStoreRecord  *bg_store_lookup        (BgStore              *self,
                                        BgTaskKind            kind,
                                        const char           *identifier,
                                        GError              **error);
/* The record as this process has written it, grouped writes included, read without a commit;
 * a record that is not there is an error (BG_ERROR_STORE). */
BgStoreRecord  *bg_store_read_record   (BgStore              *self,
                                        BgTaskKind            kind,
                                        const char           *identifier,
                                        GError              **error);
/* Every record of @kind, oldest first: a GPtrArray of BgStoreRecord, owning them. */
GPtrArray      *bg_store_load_all      (BgStore              *self,
                                        BgTaskKind            kind,
                                        GError              **error);
/* Takes a batch of records of bg_store_load_all_async(), which it may steal from the array;
 * returns FALSE to stop the load. */
typedef gboolean (*BgStoreBatchFunc) (GPtrArray *records,
                                      gpointer   user_data);
/* The same, read on a worker thread through a connection of its own, so that the main loop's
 * writes go on meanwhile, and handed to @func in batches, a main-loop turn each, before
 * @callback. */
void            bg_store_load_all_async  (BgStore              *self,
                                          BgTaskKind            kind,
                                          BgStoreBatchFunc      func,
                                          gpointer              func_data,
                                          GCancellable         *cancellable,
                                          GAsyncReadyCallback   callback,
                                          gpointer              user_data);
gboolean        bg_store_load_all_finish (BgStore              *self,
                                          GAsyncResult         *result,
                                          GError              **error);
/* Deleting a missing record is not an error. */
gboolean        bg_store_delete        (BgStore              *self,
                                        BgTaskKind            kind,
                                        const char           *identifier,
                                        GError              **error);
int             bg_store_get_schema_version (BgStore         *self);

/* Group commit: writes that need not be committed when the call returns.  They join one
 * transaction, committed by a source on the thread-default main context once the current
 * dispatch is over (a plain write, or bg_store_commit_group(), commits it earlier).  What
 * depends on them waits with bg_store_when_committed(). */
typedef void (*BgStoreCommittedFunc) (gpointer data);

gboolean        bg_store_save_progress_grouped (BgStore              *self,
                                                const BgStoreRecord  *record,
                                                GError              **error);
/* Update only what the start of an attempt and the attempt change (state, attempts, restarts,
 * next_attempt_at, updated_at, the files, the progress and upload resource columns), and for
 * the result also the response and error columns.  A record that is gone is written whole. */
gboolean        bg_store_save_attempt_grouped  (BgStore              *self,
                                                const BgStoreRecord  *record,
                                                GError              **error);
gboolean        bg_store_save_result_grouped   (BgStore              *self,
                                                const BgStoreRecord  *record,
                                                GError              **error);
gboolean        bg_store_delete_grouped        (BgStore              *self,
                                                BgTaskKind            kind,
                                                const char           *identifier,
                                                GError              **error);
/* Commits the grouped writes now; TRUE when there were none. */
gboolean        bg_store_commit_group          (BgStore              *self,
                                                GError              **error);
/* Runs @func (then @destroy) from the commit's source, once every write grouped so far is
 * committed (a failed commit is logged), and never from within this call.  A store closed
 * first only calls @destroy. */
void            bg_store_when_committed        (BgStore              *self,
                                                BgStoreCommittedFunc  func,
                                                gpointer              data,
                                                GDestroyNotify        destroy);

/* What an OPTIONS probe found out about an upload target (its origin and path): a
 * BgUploadProtocol, the tus extensions when it is tus, and when it was asked.  lookup returns
 * FALSE without setting @error when there is no entry. */
gboolean        bg_store_lookup_probe  (BgStore              *self,
                                        const char           *target,
                                        int                  *protocol,
                                        char                **extensions,
                                        gint64               *checked_at,
                                        GError              **error);
gboolean        bg_store_save_probe    (BgStore              *self,
                                        const char           *target,
                                        int                   protocol,
                                        const char           *extensions,
                                        gint64                checked_at,
                                        GError              **error);

G_END_DECLS
