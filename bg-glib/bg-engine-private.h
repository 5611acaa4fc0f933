/* bg-engine-private.h: the queue and state machine behind both front ends
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <libsoup/soup.h>

#include "bg-response.h"
#include "bg-store-private.h"
#include "bg-task.h"
#include "bg-task-options.h"
#include "bg-throttle-private.h"

G_BEGIN_DECLS

#define BG_TYPE_ENGINE (bg_engine_get_type ())

G_DECLARE_FINAL_TYPE (BgEngine, bg_engine, BG, ENGINE, GObject)

typedef struct _BgJob BgJob;

/* What differs between a download and an upload.  An attempt is started with start(); it ends
 * exactly once with bg_job_attempt_finished(), also when the job's cancellable fires. */
typedef struct _BgTransferClass
{
  /* Checks the file given to _async for a new task; fills the record's kind-specific fields. */
  gboolean     (*prepare_new)  (BgEngine       *engine,
                                BgStoreRecord  *record,
                                GFile          *file,
                                GError        **error);
  /* Builds the request for the next attempt, or returns NULL with @error set when the attempt
   * cannot start; that error becomes the attempt's outcome. */
  SoupMessage *(*build)        (BgJob          *job,
                                GError        **error);
  void         (*start)        (BgJob          *job,
                                SoupMessage    *msg);
  /* Called once on a task loaded from the database whose attempt was cut off in an earlier run.
   * Returns a response when the task turns out to have finished already. */
  BgResponse  *(*recover)      (BgJob          *job);
  /* Removes whatever the task left on disk (a partial file); used by cancel and final failure. */
  void         (*discard)      (BgJob          *job);
} BgTransferClass;

extern const BgTransferClass bg_download_transfer;

/* Test hook, NULL outside the test suites: called on the worker thread before each disk step of
 * a download ("write" of @length bytes at @offset, "flush" and "rename" of the finished file),
 * so that a test can play a slow disk. */
typedef void (*BgDownloadTestDiskHook) (const char *step,
                                        gint64      offset,
                                        gsize       length);
extern BgDownloadTestDiskHook bg_download_test_disk_hook;
extern const BgTransferClass bg_upload_transfer;

BgEngine       *bg_engine_acquire_store    (BgTaskKind            kind,
                                            BgStore              *store,
                                            SoupSession          *soup_session,
                                            GNetworkMonitor      *network_monitor,
                                            GError              **error);
void            bg_engine_release          (BgEngine             *self);
GNetworkMonitor *bg_engine_get_network_monitor (BgEngine         *self);
BgEngine       *bg_engine_new              (BgTaskKind            kind,
                                            BgStore              *store,
                                            SoupSession          *session);
void            bg_engine_shutdown         (BgEngine             *self);
BgTaskKind      bg_engine_get_kind         (BgEngine             *self);
SoupSession    *bg_engine_get_session      (BgEngine             *self);
BgStore        *bg_engine_get_store        (BgEngine             *self);
void            bg_engine_set_max_concurrent (BgEngine           *self,
                                              guint               max_concurrent);
guint           bg_engine_get_max_concurrent (BgEngine           *self);
void            bg_engine_set_stall_timeout  (BgEngine           *self,
                                              guint               seconds);
guint           bg_engine_get_stall_timeout  (BgEngine           *self);
void            bg_engine_set_max_attempts   (BgEngine           *self,
                                              guint               max_attempts);
guint           bg_engine_get_max_attempts   (BgEngine           *self);
void            bg_engine_set_max_response_size (BgEngine        *self,
                                                 gsize            size);
gsize           bg_engine_get_max_response_size (BgEngine        *self);
/* The first retry waits @base_ms, doubling up to @max_ms (before jitter). */
void            bg_engine_set_backoff        (BgEngine           *self,
                                              guint               base_ms,
                                              guint               max_ms);
void            bg_engine_set_retry_deadline (BgEngine           *self,
                                              guint               seconds);
void            bg_engine_set_monitors       (BgEngine             *self,
                                              GNetworkMonitor      *network_monitor,
                                              GPowerProfileMonitor *power_monitor);
void            bg_engine_set_allow_metered  (BgEngine           *self,
                                              gboolean            allow_metered);
/* Holds every task with BG_WAIT_REASON_PAUSED while set; not stored. */
void            bg_engine_set_paused         (BgEngine           *self,
                                              gboolean            paused);
gboolean        bg_engine_get_paused         (BgEngine           *self);
/* The queue's bandwidth cap in bytes per second, across its running tasks; 0 for none. */
void            bg_engine_set_max_bandwidth  (BgEngine           *self,
                                              guint64             bytes_per_second);
guint64         bg_engine_get_max_bandwidth  (BgEngine           *self);
BgThrottle     *bg_engine_get_throttle       (BgEngine           *self);
/* Whether a collected task stays in the list model until it is forgotten. */
void            bg_engine_set_keep_finished  (BgEngine           *self,
                                              gboolean            keep_finished);

/* A GTask for a call that may stay pending for long: it has no source object, so that it does
 * not keep @source_object alive, and hands @source_object to @callback if it still exists. */
GTask          *bg_reply_task_new          (gpointer              source_object,
                                            gpointer              source_tag,
                                            GCancellable         *cancellable,
                                            GAsyncReadyCallback   callback,
                                            gpointer              user_data);

void            bg_engine_submit_async     (BgEngine             *self,
                                            gpointer              source_object,
                                            gpointer              source_tag,
                                            SoupMessage          *request,
                                            GFile                *file,
                                            const char           *identifier,
                                            BgTaskOptions        *options,
                                            GCancellable         *cancellable,
                                            GAsyncReadyCallback   callback,
                                            gpointer              user_data);
BgResponse     *bg_engine_submit_finish    (BgEngine             *self,
                                            GAsyncResult         *result,
                                            GError              **error);
/* For the transfer service: the result stays uncollected, and its record kept, until the client
 * confirms with bg_engine_collect(). */
BgResponse     *bg_engine_submit_finish_uncollected (BgEngine      *self,
                                                     GAsyncResult  *result,
                                                     GError       **error);
/* Deletes the record of a finished task whose result the app has; nothing for other tasks. */
gboolean        bg_engine_collect          (BgEngine             *self,
                                            const char           *identifier,
                                            GError              **error);
/* Whether the task is listed only as history: its result was collected. */
gboolean        bg_engine_is_collected     (BgEngine             *self,
                                            const char           *identifier);
/* Tasks waiting for credentials look again now (a client with a handler arrived). */
void            bg_engine_wake_credentials (BgEngine             *self);

/* For the transfer service: a hook run after prepare-request, before each attempt, that may
 * take its time (a round trip to a client).  It must call bg_engine_prepare_done() exactly once,
 * on the engine's context, after changing the message as it likes. */
typedef struct _BgEnginePrepare BgEnginePrepare;
typedef void (*BgEnginePrepareFunc) (BgEngine        *engine,
                                     BgTask          *task,
                                     SoupMessage     *msg,
                                     BgEnginePrepare *prepare,
                                     gpointer         user_data);
void            bg_engine_set_prepare_func (BgEngine             *self,
                                            BgEnginePrepareFunc   func,
                                            gpointer              user_data);
SoupMessage    *bg_engine_prepare_get_message (BgEnginePrepare   *prepare);
void            bg_engine_prepare_done     (BgEnginePrepare      *prepare);
void            bg_engine_restore_async    (BgEngine             *self,
                                            gpointer              source_object,
                                            gpointer              source_tag,
                                            GCancellable         *cancellable,
                                            GAsyncReadyCallback   callback,
                                            gpointer              user_data);
gboolean        bg_engine_restore_finish   (BgEngine             *self,
                                            GAsyncResult         *result,
                                            GError              **error);
gboolean        bg_engine_cancel           (BgEngine             *self,
                                            const char           *identifier,
                                            GError              **error);
gboolean        bg_engine_forget           (BgEngine             *self,
                                            const char           *identifier,
                                            GError              **error);
GListModel     *bg_engine_get_tasks        (BgEngine             *self);
BgTask         *bg_engine_lookup_task      (BgEngine             *self,
                                            const char           *identifier);

/* Used by the transfers. */
BgJob          *bg_job_ref                 (BgJob                *job);
void            bg_job_unref               (BgJob                *job);
BgEngine       *bg_job_get_engine          (BgJob                *job);
BgTask         *bg_job_get_task            (BgJob                *job);
BgStoreRecord  *bg_job_get_record          (BgJob                *job);
GCancellable   *bg_job_get_cancellable     (BgJob                *job);
/* The task's bandwidth cap; its rate follows BgTask:max-bandwidth. */
BgThrottle     *bg_job_get_throttle        (BgJob                *job);
GFile          *bg_job_get_file            (BgJob                *job);
/* The newest request's URI and encoded headers, credentials included: unless the task keeps
 * them, they are in memory only, and the record's uri and request_headers leave them out. */
const char     *bg_job_get_request_uri     (BgJob                *job);
const char     *bg_job_get_request_headers (BgJob                *job);
gpointer        bg_job_get_attempt_data    (BgJob                *job);
void            bg_job_set_attempt_data    (BgJob                *job,
                                            gpointer              data,
                                            GDestroyNotify        destroy);
/* Bytes moved: resets the stall timer and updates the task's progress. */
void            bg_job_progress            (BgJob                *job,
                                            gint64                transferred,
                                            gint64                total);
/* While not watched, the stall watchdog leaves the attempt alone: it is working on the disk
 * (checking or publishing a finished file), not waiting for the network. */
void            bg_job_set_watched         (BgJob                *job,
                                            gboolean              watched);
/* Persists the progress columns of the record. */
void            bg_job_save_progress       (BgJob                *job);
/* The same in the store's group commit: @func runs on the engine's context once the write is
 * committed (also when the task was dropped meanwhile and nothing was written). */
void            bg_job_save_progress_then  (BgJob                *job,
                                            BgStoreCommittedFunc  func,
                                            gpointer              data,
                                            GDestroyNotify        destroy);
void            bg_job_note_restart        (BgJob                *job);
/* Builds a response for this job; @error may be NULL. */
BgResponse     *bg_job_make_response       (BgJob                *job,
                                            BgResponseKind        kind,
                                            SoupMessage          *msg,
                                            GBytes               *body,
                                            const GError         *error);
BgResponse     *bg_job_make_error_response (BgJob                *job,
                                            const GError         *error);
void            bg_job_attempt_finished    (BgJob                *job,
                                            BgResponse           *response);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BgJob, bg_job_unref)

G_END_DECLS
