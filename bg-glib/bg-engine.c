/* bg-engine.c: the queue and state machine behind both front ends
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "bg-engine-private.h"
#include "bg-error.h"
#include "bg-http-private.h"
#include "bg-response-private.h"
#include "bg-store-response-private.h"
#include "bg-task-list-private.h"
#include "bg-task-private.h"
#include "bg-throttle-private.h"

/* Identifiers are kept whole in the database and in memory; beyond this they are refused. */
#define MAX_IDENTIFIER_LENGTH 4096

/* Running attempts are checked for a stall when the first of them could have stalled (its
 * last activity plus the stall timeout), and no more than once a second: a stall is seen at most
 * a second late, and a transfer that keeps moving, however slowly, is not woken for it.  The
 * same timer sweeps the waits every SWEEP_INTERVAL. */
#define STALL_CHECK_MIN_USEC G_USEC_PER_SEC
#define SWEEP_INTERVAL_USEC (5 * G_USEC_PER_SEC)

/* The last job of one priority in the engine's queue. */
typedef struct
{
  int    priority;
  GList *link;
} QueueTail;

/* A weak reference to a call's source object (the task queue), shared by every pending call and
 * reply of that source.  GLib keeps an object's weak references in a list, and clearing one
 * walks that list: with a weak reference of its own per pending call, cancelling a hundred
 * thousand queued tasks took time that grew with the square of their number. */
typedef struct
{
  gatomicrefcount ref_count;
  GWeakRef        object;
} SharedSource;

static SharedSource *
shared_source_ref (SharedSource *shared)
{
  g_atomic_ref_count_inc (&shared->ref_count);
  return shared;
}

static void
shared_source_unref (SharedSource *shared)
{
  if (shared != NULL && g_atomic_ref_count_dec (&shared->ref_count))
    {
      g_weak_ref_clear (&shared->object);
      g_free (shared);
    }
}

/* A shared reference to @object (which may be NULL): the last one made, while it still points
 * at @object, or a new one, which is then the last. */
static SharedSource *
shared_source_for (gpointer object)
{
  G_LOCK_DEFINE_STATIC (last_source);
  static SharedSource *last;
  SharedSource *shared = NULL;

  G_LOCK (last_source);
  if (last != NULL && object != NULL)
    {
      g_autoptr(GObject) current = g_weak_ref_get (&last->object);

      if (current == object)
        shared = shared_source_ref (last);
    }
  if (shared == NULL)
    {
      shared = g_new0 (SharedSource, 1);
      g_atomic_ref_count_init (&shared->ref_count);
      g_weak_ref_init (&shared->object, object);
      if (object != NULL)
        {
          shared_source_unref (last);
          last = shared_source_ref (shared);
        }
    }
  G_UNLOCK (last_source);

  return shared;
}

static GTask *reply_task_new (SharedSource        *source,
                              gpointer             source_tag,
                              GCancellable        *cancellable,
                              GAsyncReadyCallback  callback,
                              gpointer             user_data);

/* A pending submit.  Its GTask (with its reply, some 250 bytes) is made only when the call is
 * answered (see waiter_task_new()), so that a call waiting on a queued task costs only this. */
typedef struct
{
  SharedSource        *source;
  gpointer             source_tag;
  GMainContext        *context;      /* the caller's thread-default context */
  GAsyncReadyCallback  callback;
  gpointer             user_data;
  GCancellable        *cancellable;
  gulong               cancelled_id;
  BgJob               *job;
} Waiter;

struct _BgJob
{
  /* The engine keeps one strong reference in its table; attempts and idles hold more. */
  grefcount       ref_count;
  BgEngine       *engine;
  BgTask         *task;
  /* NULL while the job is parked: see job_park(). */
  BgStoreRecord  *record;
  GFile          *file;
  GList          *waiters;
  GCancellable   *cancellable;
  gpointer        attempt_data;
  GDestroyNotify  attempt_data_destroy;
  gint64          last_activity;
  GSource        *retry_source;
  /* The task's bandwidth cap, shared with its attempts; made when the first attempt asks for
   * it, so that a task waiting in the queue has none. */
  BgThrottle     *throttle;
  /* The newest request's URI and headers (encoded) as the app gave them, credentials included,
   * while the record leaves the credentials out; in memory only, NULL when the record holds the
   * whole request. */
  char           *request_uri;
  char           *request_headers;
  /* Its place in the engine's queue, so that taking it out does not walk the queue (a hundred
   * thousand queued tasks cancelled one by one); NULL while it is not queued. */
  GList          *queue_link;
  int             queued_priority;    /* the priority it was queued with */
  guint           running : 1;
  guint           reachable : 1;      /* can_reach said yes while the monitor said offline */
  guint           reach_pending : 1;
  guint           stalled : 1;
  guint           unwatched : 1;      /* the attempt is busy with the disk, not the network */
  guint           pausing : 1;        /* the attempt was cancelled because the task paused */
  guint           dropped : 1;
  /* Finished, with its record saved in the store's group commit: the response is announced
   * once that commit is done (see job_finish_grouped()). */
  BgResponse     *announcing;
};

struct _BgEngine
{
  GObject                parent_instance;

  BgTaskKind             kind;
  const BgTransferClass *transfer;
  BgStore               *store;
  SoupSession           *session;
  GMainContext          *context;

  BgTaskList            *tasks;
  GHashTable            *jobs;      /* identifier → BgJob */
  GHashTable            *kept;      /* identifier → BgTask: collected, still listed */
  gboolean               keep_finished;
  GQueue                 queue;     /* BgJob, not owned */
  GArray                *queue_tails; /* QueueTail, one per priority in the queue, highest first */
  guint                  n_running;
  GSource               *pump_source;
  GSource               *stall_source;

  guint                  max_concurrent;
  guint                  stall_timeout;
  guint                  max_attempts;
  gsize                  max_response_size;
  guint                  backoff_base_ms;
  guint                  backoff_max_ms;
  guint                  retry_deadline;   /* seconds after creation; 0 for none */
  gint64                 next_sweep;

  guint                  users;     /* task queues using it; see bg_engine_acquire_store() */
  gboolean               allow_metered;
  gboolean               paused;           /* every task is held; not stored */
  GNetworkMonitor       *network_monitor;
  GPowerProfileMonitor  *power_monitor;

  BgThrottle            *throttle;         /* the queue's bandwidth cap, across its tasks */

  BgEnginePrepareFunc    prepare_func;     /* see bg_engine_set_prepare_func() */
  gpointer               prepare_data;

  /* See "Restoring": restores adopting their records, and the identifiers adopted from the
   * database meanwhile, which the restores must then leave alone. */
  guint                  n_restoring;
  GHashTable            *restore_taken;
};

G_DEFINE_FINAL_TYPE (BgEngine, bg_engine, G_TYPE_OBJECT)

enum {
  TASK_FINISHED,
  PREPARE_REQUEST,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* Sources live on the engine's context, which need not be the global default one, so they are
 * kept by pointer rather than by id. */
static void
clear_source (GSource **source)
{
  if (*source != NULL)
    {
      g_source_destroy (*source);
      g_clear_pointer (source, g_source_unref);
    }
}

static void engine_schedule_pump (BgEngine *self);
static void job_finish (BgJob *job, BgResponse *response);
static void job_finish_grouped (BgJob *job, BgResponse *response);
static void job_enqueue (BgJob *job);
static void job_options_changed_cb (BgTask *task, GParamSpec *pspec, gpointer data);
static void engine_sweep_waits (BgEngine *self);
static void engine_queue_unlink (BgEngine *self,
                                 BgJob    *job);
static void open_engines_remove (BgEngine *self);

BgJob *
bg_job_ref (BgJob *job)
{
  g_ref_count_inc (&job->ref_count);
  return job;
}

void
bg_job_unref (BgJob *job)
{
  if (!g_ref_count_dec (&job->ref_count))
    return;

  g_assert (job->waiters == NULL);
  g_assert (job->retry_source == NULL);

  bg_task_set_notify_func (job->task, NULL, NULL);
  g_clear_object (&job->announcing);
  g_clear_pointer (&job->throttle, bg_throttle_unref);
  if (job->attempt_data_destroy != NULL)
    g_clear_pointer (&job->attempt_data, job->attempt_data_destroy);
  g_clear_object (&job->cancellable);
  g_clear_object (&job->task);
  g_clear_object (&job->file);
  g_clear_pointer (&job->record, bg_store_record_free);
  g_clear_pointer (&job->request_uri, g_free);
  g_clear_pointer (&job->request_headers, g_free);
  g_free (job);
}


static BgJob *
bg_job_new (BgEngine      *engine,
            BgStoreRecord *record)
{
  BgJob *job = g_new0 (BgJob, 1);

  g_assert (BG_IS_ENGINE (engine));
  g_assert (record != NULL);

  g_ref_count_init (&job->ref_count);
  job->engine = engine;
  job->record = record;
  job->file = g_file_new_for_path (record->file_path);
  job->task = bg_task_new (record->kind, record->identifier, record->uri, job->file);
  bg_task_set_attempts (job->task, record->attempts);
  bg_task_set_restarts (job->task, record->restarts);
  bg_task_set_next_attempt_at (job->task, record->next_attempt_at);
  bg_task_set_progress (job->task, record->checkpoint, record->total, TRUE);
  bg_task_init_options (job->task, record->allow_metered, record->discretionary,
                        record->priority, record->earliest_start, record->expected_sha256,
                        record->keep_credentials);
  bg_task_init_paused (job->task, record->paused);
  if (record->kind == BG_TASK_KIND_UPLOAD)
    bg_task_set_upload_protocol (job->task, record->upload_url_protocol != BG_UPLOAD_PROTOCOL_AUTO
                                            ? record->upload_url_protocol
                                            : record->upload_protocol);
  bg_task_init_max_bandwidth (job->task, record->max_bandwidth);
  bg_task_set_notify_func (job->task, job_options_changed_cb, job);

  return job;
}

/* --- Parking -------------------------------------------------------------------------------

 * A job waiting in the queue keeps no record in memory: a hundred thousand queued tasks held
 * some 600 bytes each in their records and strings.  A job is parked only where its record in
 * memory is the one in the store, just inserted by a submit or just read by a restore, and only
 * while it is queued: the record's state is not written on queueing, so a parked job is QUEUED
 * whatever the stored state says.  Meanwhile what the engine needs of it (identifier, priority,
 * options, state) comes from its BgTask.  job_unpark() reads the record back before the job
 * starts, changes, is joined by a call, paused or cancelled; whatever takes a job out of the
 * queue to do more than drop it unparks it first. */

static void
job_park (BgJob *job)
{
  if (job->record == NULL || job->queue_link == NULL || job->running)
    return;

  g_clear_pointer (&job->record, bg_store_record_free);
}

static gboolean
job_unpark (BgJob   *job,
            GError **error)
{
  BgStoreRecord *record;

  if (job->record != NULL)
    return TRUE;

  record = bg_store_read_record (job->engine->store, job->engine->kind,
                                 bg_task_get_identifier (job->task), error);
  if (record == NULL)
    return FALSE;

  record->state = BG_TASK_STATE_QUEUED;
  job->record = record;

  return TRUE;
}

/* The record's state, without reading back the record of a parked job: that one is queued. */
static BgTaskState
job_state (BgJob *job)
{
  return job->record != NULL ? job->record->state : BG_TASK_STATE_QUEUED;
}

static Waiter *
waiter_new (gpointer             source_object,
            gpointer             source_tag,
            GCancellable        *cancellable,
            GAsyncReadyCallback  callback,
            gpointer             user_data)
{
  Waiter *waiter = g_new0 (Waiter, 1);

  waiter->source = shared_source_for (source_object);
  waiter->source_tag = source_tag;
  waiter->context = g_main_context_ref_thread_default ();
  waiter->callback = callback;
  waiter->user_data = user_data;
  waiter->cancellable = cancellable != NULL ? g_object_ref (cancellable) : NULL;

  return waiter;
}

static void
waiter_free (Waiter *waiter)
{
  if (waiter->cancelled_id != 0)
    g_cancellable_disconnect (waiter->cancellable, waiter->cancelled_id);
  g_clear_object (&waiter->cancellable);
  shared_source_unref (waiter->source);
  g_main_context_unref (waiter->context);
  g_free (waiter);
}

/* The call's GTask, made now as it would have been made by the call: on the caller's context,
 * which is the current one unless an answer comes from another thread. */
static GTask *
waiter_task_new (Waiter *waiter)
{
  g_autoptr(GMainContext) current = g_main_context_ref_thread_default ();
  gboolean push = current != waiter->context && g_main_context_acquire (waiter->context);
  GTask *task;

  if (push)
    g_main_context_push_thread_default (waiter->context);
  task = reply_task_new (waiter->source, waiter->source_tag, waiter->cancellable,
                         waiter->callback, waiter->user_data);
  g_task_set_check_cancellable (task, FALSE);
  if (push)
    {
      g_main_context_pop_thread_default (waiter->context);
      g_main_context_release (waiter->context);
    }

  return task;
}

/* Answers the call with @error and frees @waiter. */
static void
waiter_return_error (Waiter *waiter,
                     GError *error)
{
  g_autoptr(GTask) task = waiter_task_new (waiter);

  g_task_return_error (task, error);
  waiter_free (waiter);
}

static gint64
now_wall (void)
{
  return g_get_real_time ();
}

static void
engine_save (BgEngine      *self,
             BgStoreRecord *record)
{
  g_autoptr(GError) error = NULL;

  record->updated_at = now_wall ();
  if (!bg_store_save (self->store, record, &error))
    g_warning ("Could not save task “%s”: %s", record->identifier, error->message);
}

/* Saves what an attempt changes in @record (and its @result) in the store's group commit: see
 * bg_store_when_committed().  Every other column was saved with engine_save() when it changed. */
static void
engine_save_grouped (BgEngine      *self,
                     BgStoreRecord *record,
                     gboolean       result)
{
  g_autoptr(GError) error = NULL;
  gboolean ok;

  record->updated_at = now_wall ();
  ok = result ? bg_store_save_result_grouped (self->store, record, &error)
              : bg_store_save_attempt_grouped (self->store, record, &error);
  if (!ok)
    g_warning ("Could not save task “%s”: %s", record->identifier, error->message);
}

/* A collected task that is still listed gives way to a new task of the same identifier. */
static void
engine_unkeep (BgEngine   *self,
               const char *identifier)
{
  BgTask *task = g_hash_table_lookup (self->kept, identifier);

  if (task == NULL)
    return;

  bg_task_list_remove (self->tasks, task);
  g_hash_table_remove (self->kept, identifier);
}

/* Puts the job in the table and, unless @listed is NULL, in the list model; restoring collects
 * the new tasks in @listed to add them all at once. */
static void
engine_add_job (BgEngine  *self,
                BgJob     *job,
                GPtrArray *listed)
{
  g_assert (job != NULL);

  engine_unkeep (self, bg_task_get_identifier (job->task));
  g_hash_table_insert (self->jobs, (gpointer) bg_task_get_identifier (job->task), job);
  if (listed != NULL)
    g_ptr_array_add (listed, g_object_ref (job->task));
  else
    bg_task_list_append (self->tasks, job->task);
}

/* Takes the job out of the table, the model and the queue.  The record is left alone.  A
 * collected task stays listed (@keep_listed) while keep-finished says so, for a history. */
static void
engine_remove_job (BgEngine *self,
                   BgJob    *job,
                   gboolean  keep_listed)
{
  g_assert (job != NULL);

  job->dropped = TRUE;

  if (job->retry_source != NULL)
    clear_source (&job->retry_source);
  engine_queue_unlink (self, job);

  if (keep_listed && self->keep_finished)
    g_hash_table_insert (self->kept, g_strdup (bg_task_get_identifier (job->task)),
                         g_object_ref (job->task));
  else
    bg_task_list_remove (self->tasks, job->task);

  /* A restore under way may still read its record, committed before the delete: it must not
   * bring the task back. */
  if (self->n_restoring > 0)
    g_hash_table_add (self->restore_taken, g_strdup (bg_task_get_identifier (job->task)));

  /* Steal first: the key belongs to the task. */
  g_hash_table_steal (self->jobs, bg_task_get_identifier (job->task));
  bg_job_unref (job);
}

/* Answers the call with @response; @waiter is left to the caller to free. */
static void
waiter_return_response (Waiter     *waiter,
                        BgResponse *response)
{
  g_autoptr(GTask) task = waiter_task_new (waiter);

  g_task_return_pointer (task, g_object_ref (response), g_object_unref);
}

typedef struct
{
  BgJob  *job;
  Waiter *waiter;
} WaiterCancel;

static gboolean
waiter_cancel_idle (gpointer data)
{
  WaiterCancel *wc = data;
  BgJob *job = wc->job;

  /* The waiter may have been answered meanwhile; only compare the pointer. */
  if (g_list_find (job->waiters, wc->waiter) != NULL)
    {
      Waiter *waiter = wc->waiter;

      job->waiters = g_list_remove (job->waiters, waiter);
      waiter_return_error (waiter, g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                                                        _("The wait was cancelled; the "
                                                          "transfer goes on")));
    }

  bg_job_unref (job);
  g_free (wc);

  return G_SOURCE_REMOVE;
}

/* Runs inside g_cancellable_cancel(), possibly on another thread: defer the work to the
 * engine's context, where disconnecting the handler is safe. */
static void
waiter_cancelled_notify (GCancellable *cancellable,
                         gpointer      data)
{
  Waiter *waiter = data;
  WaiterCancel *wc = g_new0 (WaiterCancel, 1);
  GSource *source;

  wc->job = bg_job_ref (waiter->job);
  wc->waiter = waiter;

  source = g_idle_source_new ();
  g_source_set_callback (source, waiter_cancel_idle, wc, NULL);
  g_source_set_static_name (source, "[bg] waiter cancelled");
  g_source_attach (source, wc->job->engine->context);
  g_source_unref (source);
}

/* The job takes @waiter. */
static void
job_add_waiter (BgJob  *job,
                Waiter *waiter)
{
  g_assert (job != NULL);
  g_assert (waiter != NULL);

  waiter->job = job;
  job->waiters = g_list_append (job->waiters, waiter);

  if (waiter->cancellable != NULL)
    waiter->cancelled_id = g_cancellable_connect (waiter->cancellable,
                                                  G_CALLBACK (waiter_cancelled_notify),
                                                  waiter, NULL);
}

static void
job_fail_waiters (BgJob        *job,
                  const GError *error)
{
  g_assert (job != NULL);
  g_assert (error != NULL);

  while (job->waiters != NULL)
    {
      Waiter *waiter = job->waiters->data;

      job->waiters = g_list_delete_link (job->waiters, job->waiters);
      waiter_return_error (waiter, g_error_copy (error));
    }
}

/* Answers every pending call of @job with @response. */
static void
job_answer_waiters (BgJob      *job,
                    BgResponse *response)
{
  g_assert (job != NULL);
  g_assert (BG_IS_RESPONSE (response));

  while (job->waiters != NULL)
    {
      Waiter *waiter = job->waiters->data;

      job->waiters = g_list_delete_link (job->waiters, job->waiters);
      waiter_return_response (waiter, response);
      waiter_free (waiter);
    }
}

/* --- Replies ------------------------------------------------------------------------------- */

/* A pending call does not keep its task queue alive: its GTask has no source object, and the
 * queue is handed to the app's callback only if it still exists.  Otherwise a queue with a
 * pending call could never be dropped: the queue holds the engine, the engine its jobs, the jobs
 * their waiters, and a waiter's GTask would hold the queue. */
typedef struct
{
  SharedSource        *source;
  GAsyncReadyCallback  callback;
  gpointer             user_data;
} Reply;

static void
reply_cb (GObject      *no_source,
          GAsyncResult *result,
          gpointer      data)
{
  Reply *reply = data;
  g_autoptr(GObject) source = g_weak_ref_get (&reply->source->object);

  if (reply->callback != NULL)
    reply->callback (source, result, reply->user_data);

  shared_source_unref (reply->source);
  g_free (reply);
}

static GTask *
reply_task_new (SharedSource        *source,
                gpointer             source_tag,
                GCancellable        *cancellable,
                GAsyncReadyCallback  callback,
                gpointer             user_data)
{
  Reply *reply = g_new0 (Reply, 1);
  GTask *task;

  reply->source = shared_source_ref (source);
  reply->callback = callback;
  reply->user_data = user_data;

  task = g_task_new (NULL, cancellable, reply_cb, reply);
  g_task_set_source_tag (task, source_tag);

  return task;
}

GTask *
bg_reply_task_new (gpointer             source_object,
                   gpointer             source_tag,
                   GCancellable        *cancellable,
                   GAsyncReadyCallback  callback,
                   gpointer             user_data)
{
  SharedSource *source = shared_source_for (source_object);
  GTask *task = reply_task_new (source, source_tag, cancellable, callback, user_data);

  shared_source_unref (source);

  return task;
}

/* --- Attempts ------------------------------------------------------------------------------ */

BgEngine *
bg_job_get_engine (BgJob *job)
{
  return job->engine;
}

BgTask *
bg_job_get_task (BgJob *job)
{
  return job->task;
}

/* Only a job that is not parked has its record: attempts, recover() and discard() (cancel
 * reads it back first). */
BgStoreRecord *
bg_job_get_record (BgJob *job)
{
  g_assert (job->record != NULL);

  return job->record;
}

GCancellable *
bg_job_get_cancellable (BgJob *job)
{
  return job->cancellable;
}

BgThrottle *
bg_job_get_throttle (BgJob *job)
{
  if (job->throttle == NULL)
    job->throttle = bg_throttle_new (bg_task_get_max_bandwidth (job->task));

  return job->throttle;
}

GFile *
bg_job_get_file (BgJob *job)
{
  return job->file;
}

const char *
bg_job_get_request_uri (BgJob *job)
{
  return job->request_uri != NULL ? job->request_uri : job->record->uri;
}

const char *
bg_job_get_request_headers (BgJob *job)
{
  return job->request_headers != NULL ? job->request_headers : job->record->request_headers;
}

gpointer
bg_job_get_attempt_data (BgJob *job)
{
  return job->attempt_data;
}

void
bg_job_set_attempt_data (BgJob          *job,
                         gpointer        data,
                         GDestroyNotify  destroy)
{
  if (job->attempt_data_destroy != NULL)
    g_clear_pointer (&job->attempt_data, job->attempt_data_destroy);
  job->attempt_data = data;
  job->attempt_data_destroy = destroy;
}

void
bg_job_progress (BgJob  *job,
                 gint64  transferred,
                 gint64  total)
{
  job->last_activity = g_get_monotonic_time ();
  bg_task_set_progress (job->task, transferred, total, FALSE);
}

static void engine_stall_check_by (BgEngine *self,
                                   gint64    when);

void
bg_job_set_watched (BgJob    *job,
                    gboolean  watched)
{
  BgEngine *engine = job->engine;

  job->unwatched = !watched;
  job->last_activity = g_get_monotonic_time ();
  if (watched && job->running && engine->stall_timeout > 0)
    engine_stall_check_by (engine, job->last_activity +
                                   (gint64) engine->stall_timeout * G_USEC_PER_SEC + 1);
}

void
bg_job_save_progress (BgJob *job)
{
  g_autoptr(GError) error = NULL;

  if (job->dropped)
    return;

  job->record->updated_at = now_wall ();
  if (!bg_store_save_progress (job->engine->store, job->record, &error))
    g_warning ("Could not save progress of task “%s”: %s",
               job->record->identifier, error->message);
}

void
bg_job_save_progress_then (BgJob                *job,
                           BgStoreCommittedFunc  func,
                           gpointer              data,
                           GDestroyNotify        destroy)
{
  g_autoptr(GError) error = NULL;

  if (!job->dropped)
    {
      job->record->updated_at = now_wall ();
      if (!bg_store_save_progress_grouped (job->engine->store, job->record, &error))
        g_warning ("Could not save progress of task “%s”: %s",
                   job->record->identifier, error->message);
    }

  bg_store_when_committed (job->engine->store, func, data, destroy);
}

void
bg_job_note_restart (BgJob *job)
{
  job->record->restarts++;
  bg_task_set_restarts (job->task, job->record->restarts);
}

BgResponse *
bg_job_make_response (BgJob          *job,
                      BgResponseKind  kind,
                      SoupMessage    *msg,
                      GBytes         *body,
                      const GError   *error)
{
  guint status = 0;
  const char *reason = NULL;
  SoupMessageHeaders *headers = NULL;

  if (msg != NULL && soup_message_get_status (msg) != SOUP_STATUS_NONE)
    {
      status = soup_message_get_status (msg);
      reason = soup_message_get_reason_phrase (msg);
      /* Some servers (@tus/server among them) send a status line without a phrase. */
      if (reason == NULL || reason[0] == '\0')
        reason = soup_status_get_phrase (status);
      headers = soup_message_get_response_headers (msg);
    }

  return bg_response_new (kind, bg_task_get_identifier (job->task), status, reason, headers,
                          job->file, body, error);
}

BgResponse *
bg_job_make_error_response (BgJob        *job,
                            const GError *error)
{
  return bg_job_make_response (job, bg_http_classify_error (error), NULL, NULL, error);
}

static guint
engine_backoff_ms (BgEngine *self,
                   guint     attempts)
{
  guint64 delay = self->backoff_base_ms;
  guint i;

  for (i = 1; i < attempts && delay < self->backoff_max_ms; i++)
    delay *= 2;
  delay = MIN (delay, self->backoff_max_ms);

  /* Up to a quarter more, so that many tasks failing together do not come back together. */
  if (delay >= 4)
    delay += g_random_int_range (0, (gint32) MIN (delay / 4, G_MAXINT32));

  return (guint) MIN (delay, G_MAXUINT);
}

static gboolean
job_wait_over_cb (gpointer data)
{
  BgJob *job = data;

  g_clear_pointer (&job->retry_source, g_source_unref);

  /* Within a run the monotonic timer is the authority: a clock set back does not hold the task
   * past the delay it was given. */
  if (bg_task_get_wait_reason (job->task) == BG_WAIT_REASON_RETRY)
    job->record->next_attempt_at = 0;

  job_enqueue (job);

  return G_SOURCE_REMOVE;
}

static gboolean
engine_network_available (BgEngine *self)
{
  return self->network_monitor == NULL ||
         g_network_monitor_get_network_available (self->network_monitor);
}

/* What keeps @job from starting now, and until when (wall clock, 0 for "until the condition
 * changes"). */
static BgWaitReason
job_blocked_by (BgJob  *job,
                gint64 *until)
{
  BgEngine *self = job->engine;
  BgStoreRecord *record = job->record;
  gint64 now = now_wall ();

  g_assert (until != NULL);
  g_assert (record != NULL);

  *until = 0;

  if (self->paused || record->paused)
    return BG_WAIT_REASON_PAUSED;

  if (record->earliest_start > now)
    {
      *until = record->earliest_start;
      return BG_WAIT_REASON_SCHEDULED;
    }

  if (record->next_attempt_at > now)
    {
      *until = record->next_attempt_at;
      return BG_WAIT_REASON_RETRY;
    }

  if (!engine_network_available (self) && !job->reachable)
    return BG_WAIT_REASON_NETWORK;

  if (self->network_monitor != NULL &&
      g_network_monitor_get_network_metered (self->network_monitor) &&
      !self->allow_metered && !record->allow_metered)
    return BG_WAIT_REASON_METERED;

  if (self->power_monitor != NULL &&
      g_power_profile_monitor_get_power_saver_enabled (self->power_monitor) &&
      record->discretionary)
    return BG_WAIT_REASON_POWER_SAVER;

  return BG_WAIT_REASON_NONE;
}

static void
job_reach_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(BgJob) job = user_data;
  gboolean reachable;

  reachable = g_network_monitor_can_reach_finish (G_NETWORK_MONITOR (object), result, NULL);
  job->reach_pending = FALSE;

  if (job->dropped || job->engine->jobs == NULL)
    return;

  if (reachable)
    {
      job->reachable = TRUE;
      job_enqueue (job);
    }
}

/* The monitor says there is no network, but a server on this machine or on a local route may
 * still be reachable: ask before parking the task. */
static void
job_check_reach (BgJob *job)
{
  g_autoptr(GUri) uri = NULL;
  g_autoptr(GSocketConnectable) address = NULL;
  int port;

  if (job->reach_pending || job->engine->network_monitor == NULL)
    return;

  uri = g_uri_parse (job->record->uri, SOUP_HTTP_URI_FLAGS, NULL);
  if (uri == NULL || g_uri_get_host (uri) == NULL)
    return;

  port = g_uri_get_port (uri);
  if (port < 0)
    port = g_ascii_strcasecmp (g_uri_get_scheme (uri), "https") == 0 ? 443 : 80;

  address = g_network_address_new (g_uri_get_host (uri), port);
  job->reach_pending = TRUE;
  g_network_monitor_can_reach_async (job->engine->network_monitor, address, NULL,
                                     job_reach_cb, bg_job_ref (job));
}

/* Parks the job in WAITING.  A wait with a time is measured from now with the monotonic clock,
 * so a clock change during the wait neither fires it early nor holds it; the periodic sweep
 * catches a wait that a suspend stretched. */
static void
job_wait (BgJob        *job,
          BgWaitReason  reason,
          gint64        until)
{
  g_assert (job != NULL);
  g_assert (reason != BG_WAIT_REASON_NONE);

  job->record->state = BG_TASK_STATE_WAITING;
  /* A paused task has no attempt due; a retry time it had is kept for when it is unpaused. */
  bg_task_set_next_attempt_at (job->task,
                               reason == BG_WAIT_REASON_PAUSED ? 0 : job->record->next_attempt_at);
  bg_task_set_wait_reason (job->task, reason);
  bg_task_set_state (job->task, BG_TASK_STATE_WAITING);

  clear_source (&job->retry_source);

  if (until > 0)
    {
      gint64 delay_us = CLAMP (until - now_wall (), 0,
                               (gint64) BG_HTTP_RETRY_AFTER_MAX * G_USEC_PER_SEC);

      GSource *source = g_timeout_source_new ((guint) (delay_us / 1000));

      /* On the engine's own context, which need not be the global default one. */
      g_source_set_callback (source, job_wait_over_cb, job, NULL);
      g_source_set_static_name (source, "[bg] task wait");
      g_source_attach (source, job->engine->context);
      job->retry_source = source;
    }
  else if (reason == BG_WAIT_REASON_NETWORK)
    job_check_reach (job);
}

/* Higher priority first; among equals, first come first served.  The engine keeps the last
 * queued job of each priority, so that a job goes in after the last one of its priority or
 * above without walking the queue: a hundred thousand tasks of a few priorities queued in turn
 * took time that grew with the square of their number. */
static void
engine_queue_insert (BgEngine *self,
                     BgJob    *job)
{
  int priority = bg_task_get_priority (job->task);
  GList *link = g_list_alloc ();
  GList *after = NULL;
  QueueTail *same = NULL;
  guint i;

  g_assert (job->queue_link == NULL);

  for (i = 0; i < self->queue_tails->len; i++)
    {
      QueueTail *tail = &g_array_index (self->queue_tails, QueueTail, i);

      if (tail->priority < priority)
        break;
      after = tail->link;
      if (tail->priority == priority)
        same = tail;
    }

  link->data = job;
  if (after == NULL)
    g_queue_push_head_link (&self->queue, link);
  else
    g_queue_insert_after_link (&self->queue, after, link);
  job->queue_link = link;
  job->queued_priority = priority;

  if (same != NULL)
    {
      same->link = link;
    }
  else
    {
      QueueTail tail = { priority, link };

      g_array_insert_val (self->queue_tails, i, tail);
    }
}

/* Takes @job out of the queue, if it is there. */
static void
engine_queue_unlink (BgEngine *self,
                     BgJob    *job)
{
  GList *link = job->queue_link;

  if (link == NULL)
    return;

  for (guint i = 0; i < self->queue_tails->len; i++)
    {
      QueueTail *tail = &g_array_index (self->queue_tails, QueueTail, i);

      if (tail->priority != job->queued_priority)
        continue;

      if (tail->link == link)
        {
          if (link->prev != NULL &&
              ((BgJob *) link->prev->data)->queued_priority == job->queued_priority)
            tail->link = link->prev;
          else
            g_array_remove_index (self->queue_tails, i);
        }
      break;
    }

  g_queue_delete_link (&self->queue, link);
  job->queue_link = NULL;
}

/* The attempt that has just ended, or was about to start, does not count: the record and the
 * task take it back, and the record is saved in @state. */
static void
job_uncount_attempt (BgJob       *job,
                     BgTaskState  state)
{
  g_assert (job != NULL);
  g_assert (job->record->attempts > 0);

  job->record->attempts--;
  job->record->state = state;
  engine_save (job->engine, job->record);
  bg_task_set_attempts (job->task, job->record->attempts);
}

/* What the attempt ended with: @response, or a timeout when the stall watchdog cut it off. */
static BgResponse *
job_attempt_outcome (BgJob      *job,
                     BgResponse *response)
{
  g_autoptr(GError) error = NULL;
  BgResponse *outcome;

  g_assert (job != NULL);
  g_assert (BG_IS_RESPONSE (response));

  if (!job->stalled)
    return g_object_ref (response);

  error = g_error_new (BG_ERROR, BG_ERROR_TIMEOUT,
                       _("No data moved for %u seconds"), job->engine->stall_timeout);
  outcome = bg_job_make_response (job, BG_RESPONSE_RETRY, NULL, NULL, error);
  job->stalled = FALSE;

  return outcome;
}

/* Whether @outcome is a server never reached because the network went away under the attempt:
 * a failure to retry, with no HTTP status, while the monitor says there is no network. */
static gboolean
job_lost_network (BgJob      *job,
                  BgResponse *outcome)
{
  g_assert (job != NULL);
  g_assert (BG_IS_RESPONSE (outcome));

  return bg_response_get_kind (outcome) == BG_RESPONSE_RETRY &&
         bg_response_get_status (outcome) == 0 &&
         !engine_network_available (job->engine);
}

/* Parks the job until its next attempt, when @outcome calls for a retry and the task has
 * attempts (max-attempts) and time (retry-deadline) left for one: after the backoff, or after
 * the server's Retry-After when that is longer.  Returns FALSE when the task is to finish with
 * @outcome instead. */
static gboolean
job_schedule_retry (BgJob      *job,
                    BgResponse *outcome)
{
  BgEngine *self;
  gint64 delay_ms;
  gint64 retry_after;
  gint64 next;

  g_assert (job != NULL);
  g_assert (BG_IS_RESPONSE (outcome));

  self = job->engine;

  if (bg_response_get_kind (outcome) != BG_RESPONSE_RETRY ||
      job->record->attempts >= self->max_attempts)
    return FALSE;

  delay_ms = engine_backoff_ms (self, job->record->attempts);
  retry_after = bg_response_get_retry_after (outcome);
  if (retry_after >= 0 && retry_after * 1000 > delay_ms)
    delay_ms = retry_after * 1000;

  next = now_wall () + delay_ms * 1000;
  if (self->retry_deadline != 0 &&
      next > job->record->created_at + (gint64) self->retry_deadline * G_USEC_PER_SEC)
    return FALSE;

  /* Stored before anyone is told, so a kill right after still finds it. */
  job->record->next_attempt_at = next;
  job->record->state = BG_TASK_STATE_WAITING;
  engine_save (self, job->record);
  job_wait (job, BG_WAIT_REASON_RETRY, next);

  return TRUE;
}

void
bg_job_attempt_finished (BgJob      *job,
                         BgResponse *response)
{
  BgEngine *self = job->engine;
  g_autoptr(BgEngine) engine_hold = self;
  g_autoptr(BgResponse) outcome = NULL;
  g_autoptr(BgJob) hold = bg_job_ref (job);

  g_assert (job->running);

  /* Drops the reference the attempt held on the engine when it leaves this function. */
  job->running = FALSE;
  self->n_running--;
  bg_job_set_attempt_data (job, NULL, NULL);
  g_clear_object (&job->cancellable);

  if (job->dropped || self->jobs == NULL)
    return;

  engine_schedule_pump (self);

  if (job->pausing && bg_response_get_kind (response) != BG_RESPONSE_SUCCESS)
    {
      /* Cut off by a pause: the attempt does not count, whatever it ended with, and nothing
       * of it is thrown away.  The next one picks up from the last checkpoint. */
      job->pausing = FALSE;
      job->stalled = FALSE;
      job_uncount_attempt (job, BG_TASK_STATE_QUEUED);
      job_enqueue (job);
      return;
    }
  job->pausing = FALSE;

  outcome = job_attempt_outcome (job, response);

  if (job_lost_network (job, outcome))
    {
      /* That attempt does not count, and the task waits for the network instead of burning
       * the next ones. */
      job_uncount_attempt (job, BG_TASK_STATE_QUEUED);
      job->reachable = FALSE;
      job_enqueue (job);
      return;
    }

  if (!job_schedule_retry (job, outcome))
    job_finish_grouped (job, outcome);
}

/* The record takes the final state and @response; the caller saves it. */
static void
job_record_finish (BgJob      *job,
                   BgResponse *response)
{
  g_assert (BG_IS_RESPONSE (response));

  if (bg_response_get_kind (response) != BG_RESPONSE_SUCCESS)
    job->engine->transfer->discard (job);

  job->record->state = BG_TASK_STATE_FINISHED;
  job->record->next_attempt_at = 0;
  bg_store_record_set_response (job->record, response);
  clear_source (&job->retry_source);
}

/* Tells the task, the app's signal handlers and every waiter: only once the record that says
 * so is committed. */
static void
job_announce_finish (BgJob      *job,
                     BgResponse *response)
{
  g_assert (BG_IS_RESPONSE (response));

  bg_task_set_wait_reason (job->task, BG_WAIT_REASON_NONE);
  bg_task_set_next_attempt_at (job->task, 0);
  bg_task_set_progress (job->task,
                        bg_task_get_bytes_transferred (job->task),
                        bg_task_get_bytes_total (job->task),
                        TRUE);
  bg_task_set_response (job->task, response);
  bg_task_set_state (job->task, BG_TASK_STATE_FINISHED);

  g_signal_emit (job->engine, signals[TASK_FINISHED], 0, job->task, response);

  job_answer_waiters (job, response);
}

static void
job_finish (BgJob      *job,
            BgResponse *response)
{
  g_autoptr(BgJob) hold = bg_job_ref (job);

  job_record_finish (job, response);
  engine_save (job->engine, job->record);
  job_announce_finish (job, response);
}

static void
job_announce_committed (gpointer data)
{
  BgJob *job = data;
  g_autoptr(BgResponse) response = g_steal_pointer (&job->announcing);

  g_assert (BG_IS_RESPONSE (response));

  if (!job->dropped)
    {
      job_announce_finish (job, response);
      return;
    }

  /* Cancelled meanwhile, or its queue closed: the engine is not told, and may be gone.  Both
   * answered the waiters already; these lines are for safety. */
  job_answer_waiters (job, response);
}

/* job_finish() for an attempt's outcome: the record joins the store's group commit, so that the
 * transfers finishing in one main-loop turn cost one commit, and the announcements wait for it. */
static void
job_finish_grouped (BgJob      *job,
                    BgResponse *response)
{
  g_assert (job->announcing == NULL);

  job_record_finish (job, response);
  engine_save_grouped (job->engine, job->record, TRUE);
  job->announcing = g_object_ref (response);
  bg_store_when_committed (job->engine->store, job_announce_committed, bg_job_ref (job),
                           (GDestroyNotify) bg_job_unref);
}

/* The task's response: the one being announced, or the one it has. */
static BgResponse *
job_get_response (BgJob *job)
{
  return job->announcing != NULL ? job->announcing : bg_task_get_response (job->task);
}

/* --- Credentials --------------------------------------------------------------------------- */

/* Whether the encoded headers have a line for a credential header.  A quick look, so that the
 * records of a large restore are not all decoded. */
static gboolean
encoded_has_credentials (const char *encoded)
{
  const char *line = encoded;

  while (line != NULL && *line != '\0')
    {
      const char *colon = strchr (line, ':');
      const char *eol = strchr (line, '\n');

      if (colon != NULL && (eol == NULL || colon < eol))
        {
          g_autofree char *name = g_strndup (line, colon - line);

          if (bg_http_is_credential_header (name))
            return TRUE;
        }
      line = eol != NULL ? eol + 1 : NULL;
    }

  return FALSE;
}

/* @encoded headers without their credential headers, encoded again; NULL when they do not
 * decode.  *@names is then @withheld (a comma-separated list of header names, or NULL) with the
 * names of the headers left out added. */
static char *
encoded_without_credentials (const char  *encoded,
                             const char  *withheld,
                             char       **names)
{
  g_autoptr(SoupMessageHeaders) headers = NULL;
  g_autoptr(SoupMessageHeaders) kept = NULL;
  g_autoptr(GString) left_out = NULL;
  SoupMessageHeadersIter iter;
  const char *name;
  const char *value;

  g_assert (encoded != NULL);
  g_assert (names != NULL);

  headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  if (!bg_http_decode_headers (encoded, headers, NULL))
    return NULL;

  kept = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  left_out = g_string_new (withheld);
  soup_message_headers_iter_init (&iter, headers);
  while (soup_message_headers_iter_next (&iter, &name, &value))
    {
      if (!bg_http_is_credential_header (name))
        soup_message_headers_append (kept, name, value);
      else if (!soup_header_contains (left_out->str, name))
        g_string_append_printf (left_out, "%s%s", left_out->len > 0 ? ", " : "", name);
    }

  g_free (*names);
  *names = g_string_free (g_steal_pointer (&left_out), FALSE);

  return bg_http_encode_headers (kept);
}

/* Unless the task keeps its credentials, takes them out of @record's request: its uri loses
 * the password and its request_headers the Authorization, Proxy-Authorization and Cookie
 * headers, and the record notes what it lost.  The whole request, to be kept in memory, replaces
 * *@full_uri and *@full_headers.  Returns FALSE, changing nothing, when there is nothing to take
 * out. */
static gboolean
record_withhold_credentials (BgStoreRecord  *record,
                             char          **full_uri,
                             char          **full_headers)
{
  g_autofree char *stored_uri = NULL;
  g_autofree char *stored_headers = NULL;
  g_autofree char *names = NULL;
  gboolean hidden = FALSE;

  g_assert (record != NULL);
  g_assert (full_uri != NULL);
  g_assert (full_headers != NULL);

  if (record->keep_credentials)
    return FALSE;

  stored_uri = bg_http_uri_hide_password (record->uri, &hidden);
  if (!hidden)
    g_clear_pointer (&stored_uri, g_free);

  if (encoded_has_credentials (record->request_headers))
    stored_headers = encoded_without_credentials (record->request_headers,
                                                  record->withheld_headers, &names);

  if (stored_uri == NULL && stored_headers == NULL)
    return FALSE;

  g_free (*full_uri);
  *full_uri = g_strdup (record->uri);
  g_free (*full_headers);
  *full_headers = g_strdup (record->request_headers);

  if (stored_uri != NULL)
    {
      g_free (record->uri);
      record->uri = g_steal_pointer (&stored_uri);
      record->withheld_password = TRUE;
    }

  if (stored_headers != NULL)
    {
      g_free (record->request_headers);
      record->request_headers = g_steal_pointer (&stored_headers);
      g_free (record->withheld_headers);
      record->withheld_headers = g_steal_pointer (&names);
    }

  return TRUE;
}

/* Whether @msg, as the prepare-request handlers left it, carries none of the credentials that
 * the record left out and this run no longer holds (after a restart).  A URL password counts as
 * supplied by a password in the message's URI or by an Authorization header. */
static gboolean
job_lacks_credentials (BgJob       *job,
                       SoupMessage *msg)
{
  BgStoreRecord *record = job->record;
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);

  g_assert (SOUP_IS_MESSAGE (msg));

  if (job->request_uri != NULL || job->request_headers != NULL ||
      (record->withheld_headers == NULL && !record->withheld_password))
    return FALSE;

  if (record->withheld_headers != NULL)
    {
      GSList *names = soup_header_parse_list (record->withheld_headers);
      gboolean found = FALSE;

      for (GSList *l = names; l != NULL && !found; l = l->next)
        found = soup_message_headers_get_one (headers, l->data) != NULL;
      soup_header_free_list (names);
      if (found)
        return FALSE;
    }

  if (record->withheld_password &&
      (g_uri_get_password (soup_message_get_uri (msg)) != NULL ||
       soup_message_headers_get_one (headers, "Authorization") != NULL))
    return FALSE;

  return TRUE;
}

/* The attempt that was about to start does not: it is not counted, and the task waits with
 * BG_WAIT_REASON_CREDENTIALS.  It looks again when a prepare-request handler may have been
 * connected meanwhile, which GObject does not announce: at every sweep of the waits (every five
 * seconds, see engine_sweep_waits()), and at once when the app gives the task a new request. */
static void
job_wait_for_credentials (BgJob *job)
{
  BgEngine *self = job->engine;

  g_assert (job->running);

  bg_job_set_attempt_data (job, NULL, NULL);
  g_clear_object (&job->cancellable);
  job->running = FALSE;
  self->n_running--;

  job_uncount_attempt (job, BG_TASK_STATE_WAITING);
  job_wait (job, BG_WAIT_REASON_CREDENTIALS, 0);

  /* The reference the attempt held. */
  g_object_unref (self);
}

static void job_attempt_prepared (BgJob       *job,
                                  SoupMessage *msg);

/* An attempt waiting for the engine's prepare hook. */
struct _BgEnginePrepare
{
  BgJob       *job;
  SoupMessage *msg;
};

static void
job_start_attempt (BgJob *job)
{
  BgEngine *self = job->engine;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GError) error = NULL;

  g_assert (!job->running);

  job->running = TRUE;
  self->n_running++;
  g_object_ref (self);
  job->stalled = FALSE;
  job->pausing = FALSE;
  job->unwatched = FALSE;
  job->last_activity = g_get_monotonic_time ();
  job->cancellable = g_cancellable_new ();
  if (self->stall_timeout > 0)
    engine_stall_check_by (self, job->last_activity +
                                 (gint64) self->stall_timeout * G_USEC_PER_SEC + 1);

  job->record->attempts++;
  job->record->state = BG_TASK_STATE_RUNNING;
  job->record->next_attempt_at = 0;
  bg_task_set_attempts (job->task, job->record->attempts);
  bg_task_set_next_attempt_at (job->task, 0);
  bg_task_set_wait_reason (job->task, BG_WAIT_REASON_NONE);
  bg_task_set_state (job->task, BG_TASK_STATE_RUNNING);

  /* Nothing is told on the strength of this write: it may wait for the turn's commit. */
  msg = self->transfer->build (job, &error);
  engine_save_grouped (self, job->record, FALSE);

  if (msg == NULL)
    {
      g_autoptr(BgResponse) response = bg_job_make_error_response (job, error);

      bg_job_attempt_finished (job, response);
      return;
    }

  g_signal_emit (self, signals[PREPARE_REQUEST], 0, job->task, msg);

  if (self->prepare_func != NULL && !job->dropped)
    {
      BgEnginePrepare *prepare = g_new0 (BgEnginePrepare, 1);

      prepare->job = bg_job_ref (job);
      prepare->msg = g_steal_pointer (&msg);
      self->prepare_func (self, job->task, prepare->msg, prepare, self->prepare_data);
      return;
    }

  job_attempt_prepared (job, msg);
}

SoupMessage *
bg_engine_prepare_get_message (BgEnginePrepare *prepare)
{
  return prepare->msg;
}

void
bg_engine_prepare_done (BgEnginePrepare *prepare)
{
  g_autoptr(BgJob) job = g_steal_pointer (&prepare->job);
  g_autoptr(SoupMessage) msg = g_steal_pointer (&prepare->msg);

  g_free (prepare);
  /* A cancel, pause or close meanwhile fired the job's cancellable: the transfer's start() sees
   * it at once and ends the attempt the usual way. */
  job_attempt_prepared (job, msg);
}

void
bg_engine_set_prepare_func (BgEngine            *self,
                            BgEnginePrepareFunc  func,
                            gpointer             user_data)
{
  self->prepare_func = func;
  self->prepare_data = user_data;
}

/* The rest of job_start_attempt(), once the request was prepared. */
static void
job_attempt_prepared (BgJob       *job,
                      SoupMessage *msg)
{
  BgEngine *self = job->engine;

  if (job->dropped)
    {
      /* A prepare-request handler cancelled the task. */
      job->running = FALSE;
      self->n_running--;
      g_clear_object (&job->cancellable);
      g_object_unref (self);
      return;
    }

  if (job_lacks_credentials (job, msg))
    {
      job_wait_for_credentials (job);
      return;
    }

  self->transfer->start (job, msg);
}

static gboolean
engine_pump_cb (gpointer data)
{
  BgEngine *self = data;

  g_clear_pointer (&self->pump_source, g_source_unref);

  /* A restore starts nothing before all its tasks are queued, so that the first to start are
   * the first in the queue's order; it pumps when it is done. */
  if (self->n_restoring > 0)
    return G_SOURCE_REMOVE;

  while (self->n_running < self->max_concurrent && !g_queue_is_empty (&self->queue))
    {
      g_autoptr(BgJob) job = bg_job_ref (self->queue.head->data);
      g_autoptr(GError) error = NULL;
      BgWaitReason reason;
      gint64 until;

      engine_queue_unlink (self, job);

      /* A record that cannot be read back: the task cannot go on in this run.  Its calls hear
       * why, as on close, and the store keeps whatever it still has of it. */
      if (!job_unpark (job, &error))
        {
          g_warning ("Could not start task “%s”: %s", bg_task_get_identifier (job->task),
                     error->message);
          job_fail_waiters (job, error);
          engine_remove_job (self, job, FALSE);
          continue;
        }

      /* The conditions may have changed while it was queued. */
      reason = job_blocked_by (job, &until);
      if (reason != BG_WAIT_REASON_NONE)
        job_wait (job, reason, until);
      else
        job_start_attempt (job);
    }

  return G_SOURCE_REMOVE;
}

static void
engine_schedule_pump (BgEngine *self)
{
  GSource *source;

  if (self->pump_source != NULL || self->jobs == NULL)
    return;

  source = g_idle_source_new ();
  g_source_set_callback (source, engine_pump_cb, self, NULL);
  g_source_set_static_name (source, "[bg] engine pump");
  g_source_attach (source, self->context);
  self->pump_source = source;
}

static gboolean
engine_stall_check_cb (gpointer data)
{
  BgEngine *self = data;
  gint64 now = g_get_monotonic_time ();
  gint64 limit = (gint64) self->stall_timeout * G_USEC_PER_SEC;
  gint64 next;
  GHashTableIter iter;
  gpointer value;

  if (now >= self->next_sweep)
    {
      engine_sweep_waits (self);
      self->next_sweep = now + SWEEP_INTERVAL_USEC;
    }
  next = self->next_sweep;

  if (self->stall_timeout > 0)
    {
      g_hash_table_iter_init (&iter, self->jobs);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        {
          BgJob *job = value;

          if (!job->running || job->stalled || job->unwatched)
            continue;
          if (now - job->last_activity > limit)
            {
              job->stalled = TRUE;
              g_cancellable_cancel (job->cancellable);
            }
          else
            {
              /* Activity only moves this later: the check that comes then looks again. */
              next = MIN (next, job->last_activity + limit + 1);
            }
        }
    }

  g_source_set_ready_time (self->stall_source, MAX (next, now + STALL_CHECK_MIN_USEC));

  return G_SOURCE_CONTINUE;
}

/* A job's attempt has started, or the stall timeout changed: the check must not come later than
 * the first moment a stall could be seen. */
static void
engine_stall_check_by (BgEngine *self,
                       gint64    when)
{
  gint64 ready;

  /* Shut down: attempts that still run are not watched any more. */
  if (self->stall_source == NULL)
    return;

  ready = g_source_get_ready_time (self->stall_source);

  if (ready < 0 || ready > when)
    g_source_set_ready_time (self->stall_source, when);
}

static gboolean
engine_tick_dispatch (GSource     *source,
                      GSourceFunc  callback,
                      gpointer     user_data)
{
  return callback (user_data);
}

static GSourceFuncs engine_tick_funcs = { NULL, NULL, engine_tick_dispatch, NULL, NULL, NULL };

/* Queues the job, or parks it in WAITING while something keeps it from starting. */
static void
job_enqueue (BgJob *job)
{
  BgEngine *self = job->engine;
  BgWaitReason reason;
  gint64 until;

  if (job->queue_link != NULL || job->running || job->dropped ||
      job->record->state == BG_TASK_STATE_FINISHED)
    return;

  clear_source (&job->retry_source);

  reason = job_blocked_by (job, &until);
  if (reason != BG_WAIT_REASON_NONE)
    {
      job_wait (job, reason, until);
      return;
    }

  job->record->state = BG_TASK_STATE_QUEUED;
  bg_task_set_wait_reason (job->task, BG_WAIT_REASON_NONE);
  bg_task_set_state (job->task, BG_TASK_STATE_QUEUED);
  engine_queue_insert (self, job);
  engine_schedule_pump (self);
}

/* The task or the whole engine was paused: a running attempt is cut off at once, keeping its
 * partial file and record (see bg_job_attempt_finished()); a queued or waiting task waits with
 * BG_WAIT_REASON_PAUSED.  Also called on unpause, when it lets the task go on. */
static void
job_apply_pause (BgJob *job)
{
  g_autoptr(GError) error = NULL;

  g_assert (job != NULL);

  if (job->dropped)
    return;

  if (!job_unpark (job, &error))
    {
      g_warning ("Could not pause or resume task “%s”: %s",
                 bg_task_get_identifier (job->task), error->message);
      return;
    }

  if (job->record->state == BG_TASK_STATE_FINISHED)
    return;

  if (job->running)
    {
      gint64 until;

      if (!job->pausing && job_blocked_by (job, &until) == BG_WAIT_REASON_PAUSED)
        {
          job->pausing = TRUE;
          g_cancellable_cancel (job->cancellable);
        }
      return;
    }

  engine_queue_unlink (job->engine, job);
  job_enqueue (job);
}

/* An app changed an option on the task: store it, and look again at whether it may start. */
static void
job_options_changed_cb (BgTask     *task,
                        GParamSpec *pspec,
                        gpointer    data)
{
  BgJob *job = data;
  BgStoreRecord *record;
  g_autoptr(GError) error = NULL;

  g_assert (job->task == task);

  if (!g_str_equal (pspec->name, "allow-metered") &&
      !g_str_equal (pspec->name, "discretionary") &&
      !g_str_equal (pspec->name, "priority") &&
      !g_str_equal (pspec->name, "earliest-start") &&
      !g_str_equal (pspec->name, "expected-sha256") &&
      !g_str_equal (pspec->name, "keep-credentials") &&
      !g_str_equal (pspec->name, "paused") &&
      !g_str_equal (pspec->name, "max-bandwidth"))
    return;

  /* A cancelled task's options are not stored: its record is gone. */
  if (job->dropped)
    return;

  if (!job_unpark (job, &error))
    {
      g_warning ("Could not store the options of task “%s”: %s",
                 bg_task_get_identifier (task), error->message);
      return;
    }
  record = job->record;

  record->allow_metered = bg_task_get_allow_metered (task);
  record->discretionary = bg_task_get_discretionary (task);
  record->priority = bg_task_get_priority (task);
  record->earliest_start = bg_task_get_earliest_start_usec (task);
  g_free (record->expected_sha256);
  record->expected_sha256 = g_strdup (bg_task_get_expected_sha256 (task));

  record->paused = bg_task_get_paused (task);

  /* A running attempt reads through the job's bucket: it follows the new cap at its next
   * read, within a tick.  A task that has not run has no bucket yet. */
  record->max_bandwidth = (gint64) bg_task_get_max_bandwidth (task);
  if (job->throttle != NULL)
    bg_throttle_set_rate (job->throttle, bg_task_get_max_bandwidth (task));

  record->keep_credentials = bg_task_get_keep_credentials (task);
  if (!record->keep_credentials)
    {
      record_withhold_credentials (record, &job->request_uri, &job->request_headers);
    }
  else if (job->request_uri != NULL || job->request_headers != NULL)
    {
      /* Kept from now on: the credentials this run still holds are stored with the task. */
      g_free (record->uri);
      record->uri = g_steal_pointer (&job->request_uri);
      g_free (record->request_headers);
      record->request_headers = g_steal_pointer (&job->request_headers);
      g_clear_pointer (&record->withheld_headers, g_free);
      record->withheld_password = FALSE;
    }

  engine_save (job->engine, record);

  if (g_str_equal (pspec->name, "paused"))
    {
      job_apply_pause (job);
      return;
    }

  /* A cap does not decide whether the task may start. */
  if (g_str_equal (pspec->name, "max-bandwidth"))
    return;

  engine_queue_unlink (job->engine, job);
  if (!job->running && bg_task_get_wait_reason (task) != BG_WAIT_REASON_RETRY)
    job_enqueue (job);
}

/* The network or the power profile changed: every task waiting on a condition looks again. */
static void
engine_conditions_changed (BgEngine *self)
{
  GHashTableIter iter;
  gpointer value;
  g_autoptr(GPtrArray) waiting = g_ptr_array_new_with_free_func ((GDestroyNotify) bg_job_unref);

  if (self->jobs == NULL)
    return;

  g_hash_table_iter_init (&iter, self->jobs);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      BgJob *job = value;
      BgWaitReason reason = bg_task_get_wait_reason (job->task);

      job->reachable = FALSE;
      if (job_state (job) == BG_TASK_STATE_WAITING &&
          (reason == BG_WAIT_REASON_NETWORK || reason == BG_WAIT_REASON_METERED ||
           reason == BG_WAIT_REASON_POWER_SAVER))
        g_ptr_array_add (waiting, bg_job_ref (job));
    }

  for (guint i = 0; i < waiting->len; i++)
    job_enqueue (g_ptr_array_index (waiting, i));
}

static void
network_changed_cb (GNetworkMonitor *monitor,
                    gboolean         available,
                    BgEngine        *self)
{
  engine_conditions_changed (self);
}

static void
conditions_notify_cb (GObject    *object,
                      GParamSpec *pspec,
                      BgEngine   *self)
{
  engine_conditions_changed (self);
}

/* A suspend stops the monotonic clock, so a retry timer set before it runs late after it: once
 * in a while, compare the stored wall-clock times too. */
static void
engine_sweep_waits (BgEngine *self)
{
  GHashTableIter iter;
  gpointer value;
  gint64 now = now_wall ();
  g_autoptr(GPtrArray) due = g_ptr_array_new_with_free_func ((GDestroyNotify) bg_job_unref);
  g_autoptr(GPtrArray) again = g_ptr_array_new_with_free_func ((GDestroyNotify) bg_job_unref);

  g_hash_table_iter_init (&iter, self->jobs);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      BgJob *job = value;

      if (job->retry_source != NULL && job->record->next_attempt_at > 0 &&
          job->record->next_attempt_at <= now &&
          job->record->earliest_start <= now)
        g_ptr_array_add (due, bg_job_ref (job));
      else if (job_state (job) == BG_TASK_STATE_WAITING &&
               bg_task_get_wait_reason (job->task) == BG_WAIT_REASON_CREDENTIALS)
        g_ptr_array_add (again, bg_job_ref (job));
    }

  for (guint i = 0; i < due->len; i++)
    {
      BgJob *job = g_ptr_array_index (due, i);

      clear_source (&job->retry_source);
      job_wait_over_cb (job);
    }

  /* A task that lost its credentials tries again: a prepare-request handler that supplies them
   * may have been connected since it last looked. */
  for (guint i = 0; i < again->len; i++)
    job_enqueue (g_ptr_array_index (again, i));
}

/* --- GObject ------------------------------------------------------------------------------- */

/* Stops every attempt and answers every waiter with G_IO_ERROR_CANCELLED.  The tasks stay in the
 * database for a later run.  Attempts still running keep the engine alive until they end. */
void
bg_engine_shutdown (BgEngine *self)
{
  GHashTableIter iter;
  gpointer value;

  clear_source (&self->pump_source);
  clear_source (&self->stall_source);
  if (self->network_monitor != NULL)
    g_signal_handlers_disconnect_by_data (self->network_monitor, self);
  if (self->power_monitor != NULL)
    g_signal_handlers_disconnect_by_data (self->power_monitor, self);

  if (self->jobs != NULL)
    {
      g_autoptr(GError) error = g_error_new_literal (BG_ERROR, BG_ERROR_CLOSED,
                                                     _("The task queue was closed"));

      g_hash_table_iter_init (&iter, self->jobs);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        {
          BgJob *job = value;

          job->dropped = TRUE;
          job->queue_link = NULL;
          clear_source (&job->retry_source);
          job_fail_waiters (job, error);
          if (job->cancellable != NULL)
            g_cancellable_cancel (job->cancellable);
        }
      g_queue_clear (&self->queue);
      g_array_set_size (self->queue_tails, 0);
      g_clear_pointer (&self->jobs, g_hash_table_unref);
    }

  if (self->kept != NULL)
    g_hash_table_remove_all (self->kept);
  if (self->tasks != NULL)
    bg_task_list_remove_all (self->tasks);
}

static void
bg_engine_dispose (GObject *object)
{
  bg_engine_shutdown (BG_ENGINE (object));

  G_OBJECT_CLASS (bg_engine_parent_class)->dispose (object);
}

static void
bg_engine_finalize (GObject *object)
{
  BgEngine *self = (BgEngine *)object;

  open_engines_remove (self);
  g_clear_pointer (&self->kept, g_hash_table_unref);
  g_clear_pointer (&self->restore_taken, g_hash_table_unref);
  g_clear_object (&self->tasks);
  g_clear_object (&self->network_monitor);
  g_clear_object (&self->power_monitor);
  g_clear_object (&self->store);
  g_clear_object (&self->session);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_clear_pointer (&self->throttle, bg_throttle_unref);
  g_clear_pointer (&self->queue_tails, g_array_unref);

  G_OBJECT_CLASS (bg_engine_parent_class)->finalize (object);
}

static void
bg_engine_class_init (BgEngineClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = bg_engine_dispose;
  object_class->finalize = bg_engine_finalize;

  signals[TASK_FINISHED] =
    g_signal_new ("task-finished",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, BG_TYPE_TASK, BG_TYPE_RESPONSE);

  signals[PREPARE_REQUEST] =
    g_signal_new ("prepare-request",
                  G_TYPE_FROM_CLASS (klass),
                  G_SIGNAL_RUN_LAST,
                  0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, BG_TYPE_TASK, SOUP_TYPE_MESSAGE);
}

static void
job_table_unref (gpointer data)
{
  bg_job_unref (data);
}

static void
bg_engine_init (BgEngine *self)
{
  self->tasks = bg_task_list_new ();
  self->kept = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_object_unref);
  self->keep_finished = TRUE;
  self->jobs = g_hash_table_new_full (g_str_hash, g_str_equal, NULL, job_table_unref);
  g_queue_init (&self->queue);
  self->queue_tails = g_array_new (FALSE, FALSE, sizeof (QueueTail));
  self->restore_taken = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->context = g_main_context_ref_thread_default ();
  self->max_concurrent = 4;
  self->stall_timeout = 60;
  self->max_attempts = 5;
  self->max_response_size = 1024 * 1024;
  self->backoff_base_ms = 2000;
  self->backoff_max_ms = 3600 * 1000;
  self->retry_deadline = 7 * 24 * 3600;
  self->throttle = bg_throttle_new (0);
}

BgEngine *
bg_engine_new (BgTaskKind   kind,
               BgStore     *store,
               SoupSession *session)
{
  BgEngine *self;
  GSource *source;

  g_return_val_if_fail (BG_IS_STORE (store), NULL);
  g_return_val_if_fail (SOUP_IS_SESSION (session), NULL);

  self = g_object_new (BG_TYPE_ENGINE, NULL);
  self->kind = kind;
  self->transfer = kind == BG_TASK_KIND_DOWNLOAD ? &bg_download_transfer : &bg_upload_transfer;
  self->store = g_object_ref (store);
  self->session = g_object_ref (session);

  source = g_source_new (&engine_tick_funcs, sizeof (GSource));
  self->next_sweep = g_get_monotonic_time () + SWEEP_INTERVAL_USEC;
  g_source_set_ready_time (source, self->next_sweep);
  g_source_set_callback (source, engine_stall_check_cb, self, NULL);
  g_source_set_static_name (source, "[bg] stall check");
  g_source_attach (source, self->context);
  self->stall_source = source;

  return self;
}

BgTaskKind
bg_engine_get_kind (BgEngine *self)
{
  return self->kind;
}

SoupSession *
bg_engine_get_session (BgEngine *self)
{
  return self->session;
}

BgStore *
bg_engine_get_store (BgEngine *self)
{
  return self->store;
}

void
bg_engine_set_max_concurrent (BgEngine *self,
                              guint     max_concurrent)
{
  self->max_concurrent = MAX (1, max_concurrent);
  engine_schedule_pump (self);
}

guint
bg_engine_get_max_concurrent (BgEngine *self)
{
  return self->max_concurrent;
}

void
bg_engine_set_stall_timeout (BgEngine *self,
                             guint     seconds)
{
  self->stall_timeout = seconds;
  /* Running attempts are measured against the new timeout at the next check. */
  if (self->stall_source != NULL)
    engine_stall_check_by (self, g_get_monotonic_time () + STALL_CHECK_MIN_USEC);
}

guint
bg_engine_get_stall_timeout (BgEngine *self)
{
  return self->stall_timeout;
}

void
bg_engine_set_max_attempts (BgEngine *self,
                            guint     max_attempts)
{
  self->max_attempts = MAX (1, max_attempts);
}

guint
bg_engine_get_max_attempts (BgEngine *self)
{
  return self->max_attempts;
}

void
bg_engine_set_max_response_size (BgEngine *self,
                                 gsize     size)
{
  self->max_response_size = size;
}

gsize
bg_engine_get_max_response_size (BgEngine *self)
{
  return self->max_response_size;
}

/* Watches @network_monitor (NULL: never wait for the network) and @power_monitor (NULL: never
 * wait for power-saver mode), in place of any watched before. */
void
bg_engine_set_monitors (BgEngine             *self,
                        GNetworkMonitor      *network_monitor,
                        GPowerProfileMonitor *power_monitor)
{
  if (self->network_monitor != NULL)
    g_signal_handlers_disconnect_by_data (self->network_monitor, self);
  if (self->power_monitor != NULL)
    g_signal_handlers_disconnect_by_data (self->power_monitor, self);
  g_clear_object (&self->network_monitor);
  g_clear_object (&self->power_monitor);

  if (network_monitor != NULL)
    {
      self->network_monitor = g_object_ref (network_monitor);
      g_signal_connect (network_monitor, "network-changed",
                        G_CALLBACK (network_changed_cb), self);
      g_signal_connect (network_monitor, "notify::network-metered",
                        G_CALLBACK (conditions_notify_cb), self);
    }

  if (power_monitor != NULL)
    {
      self->power_monitor = g_object_ref (power_monitor);
      g_signal_connect (power_monitor, "notify::power-saver-enabled",
                        G_CALLBACK (conditions_notify_cb), self);
    }

  engine_conditions_changed (self);
}

void
bg_engine_set_allow_metered (BgEngine *self,
                             gboolean  allow_metered)
{
  self->allow_metered = !!allow_metered;
  engine_conditions_changed (self);
}

/* Holds every task as if it were paused (BG_WAIT_REASON_PAUSED), or lets them go on.  Unlike
 * BgTask:paused this is not stored: it lasts while the engine does. */
void
bg_engine_set_paused (BgEngine *self,
                      gboolean  paused)
{
  g_autoptr(GPtrArray) jobs = g_ptr_array_new_with_free_func ((GDestroyNotify) bg_job_unref);
  GHashTableIter iter;
  gpointer value;

  paused = !!paused;
  if (self->paused == paused || self->jobs == NULL)
    {
      self->paused = paused;
      return;
    }
  self->paused = paused;

  g_hash_table_iter_init (&iter, self->jobs);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      BgJob *job = value;

      /* Unpausing wakes only the tasks the pause held: the others wait for something else. */
      if (paused || (job_state (job) == BG_TASK_STATE_WAITING &&
                     bg_task_get_wait_reason (job->task) == BG_WAIT_REASON_PAUSED))
        g_ptr_array_add (jobs, bg_job_ref (job));
    }

  for (guint i = 0; i < jobs->len; i++)
    job_apply_pause (g_ptr_array_index (jobs, i));
}

gboolean
bg_engine_get_paused (BgEngine *self)
{
  return self->paused;
}

/* The cap across every running task; each attempt takes its bytes from this bucket too. */
void
bg_engine_set_max_bandwidth (BgEngine *self,
                             guint64   bytes_per_second)
{
  bg_throttle_set_rate (self->throttle, bytes_per_second);
}

guint64
bg_engine_get_max_bandwidth (BgEngine *self)
{
  return bg_throttle_get_rate (self->throttle);
}

BgThrottle *
bg_engine_get_throttle (BgEngine *self)
{
  return self->throttle;
}

void
bg_engine_set_retry_deadline (BgEngine *self,
                              guint     seconds)
{
  self->retry_deadline = seconds;
}

void
bg_engine_set_backoff (BgEngine *self,
                       guint     base_ms,
                       guint     max_ms)
{
  self->backoff_base_ms = base_ms;
  self->backoff_max_ms = MAX (self->backoff_base_ms, max_ms);
}

/* --- Submitting ---------------------------------------------------------------------------- */

static gboolean
validate_identifier (const char  *identifier,
                     GError     **error)
{
  gsize len;

  if (identifier == NULL || *identifier == '\0')
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The task identifier is empty"));
      return FALSE;
    }

  len = strlen (identifier);
  if (len > MAX_IDENTIFIER_LENGTH)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The task identifier is %lu bytes long; at most %d are allowed"),
                   (unsigned long) len, MAX_IDENTIFIER_LENGTH);
      return FALSE;
    }

  if (!g_utf8_validate (identifier, len, NULL))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The task identifier is not valid UTF-8"));
      return FALSE;
    }

  return TRUE;
}

/* Makes the job of @record (taken), loaded from the database, and puts it in the table (and in
 * the list, or in @listed for the caller to add).  job_carry_on() then carries it on. */
static BgJob *
engine_adopt_record (BgEngine      *self,
                     BgStoreRecord *record,
                     GPtrArray     *listed)
{
  BgJob *job = bg_job_new (self, record);

  engine_add_job (self, job, listed);

  /* A record from before credentials were kept out of the database still holds them: they
   * leave it now, and this run keeps them in memory. */
  if (record_withhold_credentials (job->record, &job->request_uri, &job->request_headers))
    engine_save (self, job->record);

  return job;
}

/* Carries on an adopted job: a finished one shows its stored response, an unfinished one
 * queues, or finishes at once when its attempt turns out to have completed.  Returns TRUE when
 * the job holds a result that no run has collected yet. */
static gboolean
job_carry_on (BgJob *job)
{
  BgEngine *self = job->engine;
  g_autoptr(BgResponse) response = NULL;

  if (job->record->state == BG_TASK_STATE_FINISHED)
    {
      response = bg_store_record_dup_response (job->record, job->file);
      bg_task_set_response (job->task, response);
      bg_task_set_state (job->task, BG_TASK_STATE_FINISHED);
      return TRUE;
    }

  response = self->transfer->recover (job);
  if (response != NULL)
    job_finish (job, response);
  else
    job_enqueue (job);

  return FALSE;
}

static BgJob *
engine_find_job (BgEngine    *self,
                 const char  *identifier,
                 GError     **error)
{
  BgStoreRecord *record;
  BgJob *job;

  g_assert (identifier != NULL);

  job = g_hash_table_lookup (self->jobs, identifier);
  if (job != NULL)
    return job;

  record = bg_store_lookup (self->store, self->kind, identifier, error);
  if (record == NULL)
    return NULL;

  job = engine_adopt_record (self, record, NULL);
  if (self->n_restoring > 0)
    g_hash_table_add (self->restore_taken, g_strdup (identifier));
  job_carry_on (job);

  return job;
}

static void
record_set_request (BgStoreRecord *record,
                    SoupMessage   *request)
{
  g_autofree char *built = NULL;

  g_assert (record != NULL);
  g_assert (SOUP_IS_MESSAGE (request));

  g_free (record->method);
  record->method = g_strdup (soup_message_get_method (request));
  /* Kept with the task: a copy at its length, not the string it was built in cut to size, which
   * would leave a hole in the heap for each of a hundred thousand tasks. */
  built = g_uri_to_string (soup_message_get_uri (request));
  g_free (record->uri);
  record->uri = g_strdup (built);
  g_free (record->request_headers);
  record->request_headers = bg_http_encode_headers (soup_message_get_request_headers (request));
  g_clear_pointer (&record->withheld_headers, g_free);
  record->withheld_password = FALSE;
}

static gboolean
same_file (const char *path,
           GFile      *file)
{
  g_autofree char *other = NULL;

  g_assert (G_IS_FILE (file));

  other = g_file_get_path (file);

  return other != NULL && g_strcmp0 (path, other) == 0;
}

static gboolean
validate_options (BgEngine       *self,
                  BgTaskOptions  *options,
                  GError        **error)
{
  if (options != NULL && self->kind != BG_TASK_KIND_DOWNLOAD &&
      bg_task_options_get_expected_sha256 (options) != NULL)
    {
      g_set_error_literal (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                           _("The option “expected-sha256” is for downloads only"));
      return FALSE;
    }

  if (options != NULL && self->kind == BG_TASK_KIND_DOWNLOAD &&
      (bg_task_options_get_upload_protocol (options) != BG_UPLOAD_PROTOCOL_AUTO ||
       bg_task_options_get_allow_tus (options) || bg_task_options_get_chunk_size (options) != 0))
    {
      g_set_error_literal (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                           _("The options “upload-protocol”, “allow-tus” and “chunk-size” are "
                             "for uploads only"));
      return FALSE;
    }

  return TRUE;
}

/* The options go into the record before its first save: they are committed with the task. */
static void
record_set_options (BgStoreRecord *record,
                    BgTaskOptions *options)
{
  GDateTime *earliest_start = bg_task_options_get_earliest_start (options);

  g_assert (record != NULL);
  g_assert (BG_IS_TASK_OPTIONS (options));

  record->allow_metered = bg_task_options_get_allow_metered (options);
  record->discretionary = bg_task_options_get_discretionary (options);
  record->priority = bg_task_options_get_priority (options);
  record->earliest_start =
    earliest_start != NULL ? g_date_time_to_unix (earliest_start) * G_USEC_PER_SEC : 0;
  g_free (record->expected_sha256);
  record->expected_sha256 = g_strdup (bg_task_options_get_expected_sha256 (options));
  record->keep_credentials = bg_task_options_get_keep_credentials (options);
  record->upload_protocol = bg_task_options_get_upload_protocol (options);
  record->allow_tus = bg_task_options_get_allow_tus (options);
  record->chunk_size = bg_task_options_get_chunk_size (options);
  record->max_bandwidth = (gint64) bg_task_options_get_max_bandwidth (options);
}

/* A call for a task that this run already has: it waits for the task's result, or has it at
 * once when the task has finished.  Later attempts use the newest request.  A task for another
 * file is a conflict. */
static void
job_join (BgJob         *job,
          Waiter        *waiter,
          SoupMessage   *request,
          GFile         *file,
          BgTaskOptions *options)
{
  g_autoptr(GError) error = NULL;

  g_assert (job != NULL);
  g_assert (waiter != NULL);
  g_assert (SOUP_IS_MESSAGE (request));
  g_assert (G_IS_FILE (file));

  if (!job_unpark (job, &error))
    {
      waiter_return_error (waiter, g_steal_pointer (&error));
      return;
    }

  if (!same_file (job->record->file_path, file))
    {
      g_autofree char *path = g_file_get_parse_name (file);
      g_autofree char *theirs = g_filename_display_name (job->record->file_path);

      waiter_return_error (waiter,
                           g_error_new (BG_ERROR, BG_ERROR_CONFLICT,
                                        _("The identifier “%s” is already used by a task for "
                                          "“%s”, not “%s”"),
                                        job->record->identifier, theirs, path));
      return;
    }

  if (job->announcing != NULL)
    {
      /* Finished, but not told yet: this call hears it with the others. */
      job_add_waiter (job, waiter);
      return;
    }

  if (job->record->state == BG_TASK_STATE_FINISHED)
    {
      waiter_return_response (waiter, bg_task_get_response (job->task));
      waiter_free (waiter);
      return;
    }

  record_set_request (job->record, request);
  g_clear_pointer (&job->request_uri, g_free);
  g_clear_pointer (&job->request_headers, g_free);
  record_withhold_credentials (job->record, &job->request_uri, &job->request_headers);
  bg_task_set_uri (job->task, job->record->uri);
  engine_save (job->engine, job->record);
  if (options != NULL)
    bg_task_apply_options (job->task, options);
  job_add_waiter (job, waiter);

  /* The request may carry the credentials the task waits for: look now. */
  if (job->record->state == BG_TASK_STATE_WAITING &&
      bg_task_get_wait_reason (job->task) == BG_WAIT_REASON_CREDENTIALS)
    job_enqueue (job);
}

/* The record of a new task, with its request and @options.  Unless the task keeps its
 * credentials they are left out of the record, and the whole request goes to *@full_uri and
 * *@full_headers. */
static BgStoreRecord *
engine_new_record (BgEngine       *self,
                   const char     *identifier,
                   SoupMessage    *request,
                   BgTaskOptions  *options,
                   char          **full_uri,
                   char          **full_headers)
{
  BgStoreRecord *record = bg_store_record_new ();
  gint64 now = now_wall ();

  g_assert (identifier != NULL);
  g_assert (SOUP_IS_MESSAGE (request));

  record->identifier = g_strdup (identifier);
  record->kind = self->kind;
  record->state = BG_TASK_STATE_QUEUED;
  record->total = -1;
  record->source_size = -1;
  record->created_at = now;
  record->updated_at = now;
  record_set_request (record, request);
  if (options != NULL)
    record_set_options (record, options);
  record_withhold_credentials (record, full_uri, full_headers);

  return record;
}

/* A task this run does not have: a new one, whose record is committed before the call returns
 * to the main loop, and which queues; or one that the database holds from an earlier run, which
 * the call joins.  The record is inserted only where none exists, so that a new task, the
 * common case, costs one statement and no lookup. */
static void
engine_submit_new (BgEngine      *self,
                   Waiter        *waiter,
                   SoupMessage   *request,
                   GFile         *file,
                   const char    *identifier,
                   BgTaskOptions *options)
{
  g_autoptr(BgStoreRecord) record = NULL;
  g_autofree char *full_uri = NULL;
  g_autofree char *full_headers = NULL;
  g_autoptr(GError) error = NULL;
  gboolean inserted = FALSE;
  BgJob *job;

  g_assert (waiter != NULL);
  g_assert (G_IS_FILE (file));

  record = engine_new_record (self, identifier, request, options, &full_uri, &full_headers);

  if (!self->transfer->prepare_new (self, record, file, &error) ||
      !bg_store_insert_new (self->store, record, &inserted, &error) ||
      !inserted)
    {
      g_autoptr(GError) find_error = NULL;

      /* A stored task is joined even where a new one would be refused (its file may be there
       * already, published by an earlier run). */
      job = engine_find_job (self, identifier, &find_error);
      if (job != NULL)
        job_join (job, waiter, request, file, options);
      else if (find_error != NULL)
        waiter_return_error (waiter, g_steal_pointer (&find_error));
      else if (error != NULL)
        waiter_return_error (waiter, g_steal_pointer (&error));
      else
        waiter_return_error (waiter,
                             g_error_new (BG_ERROR, BG_ERROR_STORE,
                                          _("The task “%s” is in the task database but could "
                                            "not be read"),
                                          identifier));
      return;
    }

  job = bg_job_new (self, g_steal_pointer (&record));
  job->request_uri = g_steal_pointer (&full_uri);
  job->request_headers = g_steal_pointer (&full_headers);
  engine_add_job (self, job, NULL);
  job_add_waiter (job, waiter);
  job_enqueue (job);
  job_park (job);
}

void
bg_engine_submit_async (BgEngine            *self,
                        gpointer             source_object,
                        gpointer             source_tag,
                        SoupMessage         *request,
                        GFile               *file,
                        const char          *identifier,
                        BgTaskOptions       *options,
                        GCancellable        *cancellable,
                        GAsyncReadyCallback  callback,
                        gpointer             user_data)
{
  Waiter *waiter;
  g_autoptr(GError) error = NULL;
  BgJob *job;

  waiter = waiter_new (source_object, source_tag, cancellable, callback, user_data);

  if (!validate_identifier (identifier, &error) ||
      !bg_http_uri_is_acceptable (soup_message_get_uri (request), &error) ||
      !validate_options (self, options, &error))
    {
      waiter_return_error (waiter, g_steal_pointer (&error));
      return;
    }

  job = g_hash_table_lookup (self->jobs, identifier);
  if (job != NULL)
    job_join (job, waiter, request, file, options);
  else
    engine_submit_new (self, waiter, request, file, identifier, options);
}

static gboolean engine_collect (BgEngine    *self,
                                BgResponse  *response,
                                GError     **error);

/* Returns the response and marks it collected: its record is deleted. */
BgResponse *
bg_engine_submit_finish (BgEngine      *self,
                         GAsyncResult  *result,
                         GError       **error)
{
  g_autoptr(BgResponse) response = NULL;

  response = g_task_propagate_pointer (G_TASK (result), error);
  if (response == NULL)
    return NULL;

  if (!engine_collect (self, response, error))
    return NULL;

  return g_steal_pointer (&response);
}

/* The same, but the result stays uncollected until bg_engine_collect(). */
BgResponse *
bg_engine_submit_finish_uncollected (BgEngine      *self,
                                     GAsyncResult  *result,
                                     GError       **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

gboolean
bg_engine_collect (BgEngine    *self,
                   const char  *identifier,
                   GError     **error)
{
  BgJob *job = self->jobs ? g_hash_table_lookup (self->jobs, identifier) : NULL;
  BgResponse *response = job ? bg_task_get_response (job->task) : NULL;

  return response == NULL || engine_collect (self, response, error);
}

gboolean
bg_engine_is_collected (BgEngine   *self,
                        const char *identifier)
{
  return self->kept != NULL && g_hash_table_contains (self->kept, identifier) &&
         !g_hash_table_contains (self->jobs, identifier);
}

void
bg_engine_wake_credentials (BgEngine *self)
{
  GHashTableIter iter;
  gpointer value;
  g_autoptr(GPtrArray) again = g_ptr_array_new_with_free_func ((GDestroyNotify) bg_job_unref);

  if (self->jobs == NULL)
    return;

  g_hash_table_iter_init (&iter, self->jobs);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    {
      BgJob *job = value;

      if (job_state (job) == BG_TASK_STATE_WAITING &&
          bg_task_get_wait_reason (job->task) == BG_WAIT_REASON_CREDENTIALS)
        g_ptr_array_add (again, bg_job_ref (job));
    }
  for (guint i = 0; i < again->len; i++)
    job_enqueue (g_ptr_array_index (again, i));
}

/* Deletes the record of the task that gave @response, if it is still the task's result. */
static gboolean
engine_collect (BgEngine    *self,
                BgResponse  *response,
                GError     **error)
{
  BgJob *job;

  /* A queue closed meanwhile cannot collect: the next run announces the result again. */
  if (self == NULL || self->jobs == NULL)
    return TRUE;

  job = g_hash_table_lookup (self->jobs, bg_response_get_identifier (response));
  if (job != NULL && bg_task_get_response (job->task) == response)
    {
      g_autoptr(GError) local_error = NULL;

      /* Grouped: until it is committed a kill only means the result is announced again in the
       * next run, which delivery allows (at least once until collected). */
      if (!bg_store_delete_grouped (self->store, self->kind, bg_task_get_identifier (job->task),
                                    &local_error))
        {
          g_propagate_error (error, g_steal_pointer (&local_error));
          return FALSE;
        }
      /* Collected: the record goes, the task may stay listed as history. */
      engine_remove_job (self, job, TRUE);
    }

  return TRUE;
}

/* --- Restoring ----------------------------------------------------------------------------- */

typedef struct
{
  BgEngine  *engine;
  GPtrArray *finished;   /* BgJob: results that no run has collected yet */
} Restore;

static void
restore_free (Restore *restore)
{
  g_clear_object (&restore->engine);
  g_clear_pointer (&restore->finished, g_ptr_array_unref);
  g_free (restore);
}

static void
engine_restore_end (BgEngine *self)
{
  g_assert (self->n_restoring > 0);

  if (--self->n_restoring == 0)
    {
      g_hash_table_remove_all (self->restore_taken);
      engine_schedule_pump (self);
    }
}

/* Adopts a batch of the records that the store reads (a main-loop turn each, so that restoring
 * 100,000 tasks never holds the main loop for long).  A task this run already has, or had since
 * the restore began (it was submitted, cancelled, forgotten or collected meanwhile), is left as
 * it is. */
static gboolean
restore_batch_cb (GPtrArray *records,
                  gpointer   user_data)
{
  GTask *task = user_data;
  Restore *restore = g_task_get_task_data (task);
  BgEngine *self = restore->engine;
  g_autoptr(GPtrArray) adopted = NULL;
  g_autoptr(GPtrArray) listed = NULL;

  g_assert (BG_IS_ENGINE (self));

  if (self->jobs == NULL)
    return FALSE;

  adopted = g_ptr_array_new_with_free_func ((GDestroyNotify) bg_job_unref);
  listed = g_ptr_array_new_with_free_func (g_object_unref);

  for (guint i = 0; i < records->len; i++)
    {
      BgStoreRecord *record = g_ptr_array_index (records, i);

      if (g_hash_table_contains (self->jobs, record->identifier) ||
          g_hash_table_contains (self->restore_taken, record->identifier))
        continue;

      /* The job takes the record; the array keeps a NULL, which its free function skips. */
      g_ptr_array_add (adopted,
                       bg_job_ref (engine_adopt_record (self,
                                                        g_steal_pointer (&records->pdata[i]),
                                                        listed)));
    }

  /* One items-changed for the batch, then its tasks carry on. */
  bg_task_list_append_many (self->tasks, listed);
  for (guint i = 0; i < adopted->len; i++)
    {
      BgJob *job = g_ptr_array_index (adopted, i);

      if (job_carry_on (job))
        g_ptr_array_add (restore->finished, bg_job_ref (job));
      else
        job_park (job);
    }

  return TRUE;
}

static void
restore_loaded_cb (GObject      *object,
                   GAsyncResult *result,
                   gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  Restore *restore = g_task_get_task_data (task);
  BgEngine *self = restore->engine;
  g_autoptr(GError) error = NULL;

  g_assert (BG_IS_ENGINE (self));

  engine_restore_end (self);

  if (!bg_store_load_all_finish (BG_STORE (object), result, &error))
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  if (self->jobs == NULL)
    {
      g_task_return_new_error (task, BG_ERROR, BG_ERROR_CLOSED, _("The task queue was closed"));
      return;
    }

  /* Announce results that earlier runs never handed over. A handler may forget them. */
  for (guint i = 0; i < restore->finished->len; i++)
    {
      BgJob *job = g_ptr_array_index (restore->finished, i);

      if (!job->dropped)
        g_signal_emit (self, signals[TASK_FINISHED], 0, job->task,
                       bg_task_get_response (job->task));
    }

  g_task_return_boolean (task, TRUE);
}

/* Loads the records on a worker thread (see bg_store_load_all_async()) and adopts them here, on
 * the engine's context, a batch per main-loop turn.  Nothing starts until the restore is over,
 * so that the first to start are the first in the queue's order. */
void
bg_engine_restore_async (BgEngine            *self,
                         gpointer             source_object,
                         gpointer             source_tag,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  Restore *restore = g_new0 (Restore, 1);

  task = g_task_new (source_object, cancellable, callback, user_data);
  g_task_set_source_tag (task, source_tag);
  restore->engine = g_object_ref (self);
  restore->finished = g_ptr_array_new_with_free_func ((GDestroyNotify) bg_job_unref);
  g_task_set_task_data (task, restore, (GDestroyNotify) restore_free);

  self->n_restoring++;
  bg_store_load_all_async (self->store, self->kind, restore_batch_cb, task, cancellable,
                           restore_loaded_cb, g_object_ref (task));
}

gboolean
bg_engine_restore_finish (BgEngine      *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* --- Cancel and forget --------------------------------------------------------------------- */

/* The job for an identifier the app named, which must exist: BG_ERROR_NOT_FOUND otherwise. */
static BgJob *
engine_require_job (BgEngine    *self,
                    const char  *identifier,
                    GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  BgJob *job;

  if (!validate_identifier (identifier, error))
    return NULL;

  job = engine_find_job (self, identifier, &local_error);
  if (job == NULL)
    {
      if (local_error != NULL)
        g_propagate_error (error, g_steal_pointer (&local_error));
      else
        g_set_error (error, BG_ERROR, BG_ERROR_NOT_FOUND,
                     _("No task has the identifier “%s”"), identifier);
    }

  return job;
}

gboolean
bg_engine_cancel (BgEngine    *self,
                  const char  *identifier,
                  GError     **error)
{
  g_autoptr(GError) cancelled = NULL;
  g_autoptr(GError) read_error = NULL;
  g_autoptr(BgJob) hold = NULL;
  BgJob *job;

  job = engine_require_job (self, identifier, error);
  if (job == NULL)
    return FALSE;

  hold = bg_job_ref (job);

  /* discard() needs the record (the partial file's name), which cannot be read back after the
   * delete.  A task whose record cannot be read is cancelled all the same, and what it may have
   * left on disk stays there. */
  if (!job_unpark (job, &read_error))
    g_warning ("Cancelling task “%s” without its record: %s", identifier, read_error->message);

  if (!bg_store_delete (self->store, self->kind, identifier, error))
    return FALSE;

  job->dropped = TRUE;
  if (job->cancellable != NULL)
    g_cancellable_cancel (job->cancellable);
  if (job->record != NULL &&
      (job->record->state != BG_TASK_STATE_FINISHED ||
       bg_response_get_kind (job_get_response (job)) != BG_RESPONSE_SUCCESS))
    self->transfer->discard (job);

  cancelled = g_error_new (G_IO_ERROR, G_IO_ERROR_CANCELLED,
                           _("The task “%s” was cancelled"), identifier);
  job_fail_waiters (job, cancelled);
  bg_task_set_state (job->task, BG_TASK_STATE_CANCELLED);
  engine_remove_job (self, job, FALSE);

  return TRUE;
}

gboolean
bg_engine_forget (BgEngine    *self,
                  const char  *identifier,
                  GError     **error)
{
  BgJob *job;

  /* A collected task kept in the list for its history: forgetting takes it off the list. */
  if (!g_hash_table_contains (self->jobs, identifier) &&
      g_hash_table_contains (self->kept, identifier))
    {
      engine_unkeep (self, identifier);
      return TRUE;
    }

  job = engine_require_job (self, identifier, error);
  if (job == NULL)
    return FALSE;

  /* One whose result waits for its commit has not finished for the app yet either. */
  if (job_state (job) != BG_TASK_STATE_FINISHED || job->announcing != NULL)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The task “%s” has not finished; cancel it to stop it"), identifier);
      return FALSE;
    }

  if (!bg_store_delete (self->store, self->kind, identifier, error))
    return FALSE;

  engine_remove_job (self, job, FALSE);

  return TRUE;
}

GListModel *
bg_engine_get_tasks (BgEngine *self)
{
  return G_LIST_MODEL (self->tasks);
}

BgTask *
bg_engine_lookup_task (BgEngine   *self,
                       const char *identifier)
{
  BgJob *job;

  if (identifier == NULL || self->jobs == NULL)
    return NULL;

  job = g_hash_table_lookup (self->jobs, identifier);

  return job ? job->task : g_hash_table_lookup (self->kept, identifier);
}

void
bg_engine_set_keep_finished (BgEngine *self,
                             gboolean  keep_finished)
{
  self->keep_finished = keep_finished;

  if (!keep_finished && self->kept != NULL)
    {
      GHashTableIter iter;
      gpointer value;

      g_hash_table_iter_init (&iter, self->kept);
      while (g_hash_table_iter_next (&iter, NULL, &value))
        {
          bg_task_list_remove (self->tasks, value);
          g_hash_table_iter_remove (&iter);
        }
    }
}

/* --- Sharing one engine per database ------------------------------------------------------- */

/* The engines of this process, so that two task queues of one kind on one database share
 * one engine and a task never runs twice.  Not owned: an engine leaves the list when its last
 * user releases it, or when it is finalised. */
static GMutex open_engines_mutex;
static GList *open_engines;

static void
open_engines_add (BgEngine *self)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&open_engines_mutex);

  g_assert (BG_IS_ENGINE (self));

  open_engines = g_list_prepend (open_engines, self);
}

static void
open_engines_remove (BgEngine *self)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&open_engines_mutex);

  g_assert (BG_IS_ENGINE (self));

  open_engines = g_list_remove (open_engines, self);
}

/* Finds the engine of @kind on @store that this process already runs, with one more user. */
static BgEngine *
engine_find_open (BgTaskKind   kind,
                  BgStore     *store,
                  GError     **error)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&open_engines_mutex);
  g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

  g_assert (BG_IS_STORE (store));

  for (GList *l = open_engines; l != NULL; l = l->next)
    {
      BgEngine *engine = l->data;

      if (engine->store != store || engine->kind != kind)
        continue;

      if (engine->context != context)
        {
          g_autofree char *shown = g_filename_display_name (bg_store_get_path (store));

          g_set_error (error, BG_ERROR, BG_ERROR_BUSY,
                       _("The task database “%s” is in use on another main context of this "
                         "process"), shown);
          return NULL;
        }

      engine->users++;
      return g_object_ref (engine);
    }

  return NULL;
}

/* The engine for @kind on @store: the one this process already runs on it, with one more use,
 * or a new one.  Runs on the context the engine is to live on.  Each call is one use, given back
 * with bg_engine_release(). */
BgEngine *
bg_engine_acquire_store (BgTaskKind        kind,
                         BgStore          *store,
                         SoupSession      *soup_session,
                         GNetworkMonitor  *network_monitor,
                         GError          **error)
{
  g_autoptr(SoupSession) session = NULL;
  g_autoptr(GPowerProfileMonitor) power = NULL;
  g_autoptr(GError) local_error = NULL;
  BgEngine *engine;

  engine = engine_find_open (kind, store, &local_error);
  if (engine != NULL || local_error != NULL)
    {
      if (local_error != NULL)
        g_propagate_error (error, g_steal_pointer (&local_error));
      return engine;
    }

  session = soup_session ? g_object_ref (soup_session) : bg_http_default_session_new ();
  power = g_power_profile_monitor_dup_default ();

  engine = bg_engine_new (kind, store, session);
  bg_engine_set_monitors (engine,
                          network_monitor ? network_monitor : g_network_monitor_get_default (),
                          power);
  engine->users = 1;
  open_engines_add (engine);

  return engine;
}

/* Gives back one use.  The last one shuts the engine down: every attempt stops (records kept),
 * every waiter gets BG_ERROR_CLOSED, and the database goes once the attempts have ended and
 * dropped their references. */
void
bg_engine_release (BgEngine *self)
{
  g_return_if_fail (BG_IS_ENGINE (self));
  g_return_if_fail (self->users > 0);

  if (--self->users > 0)
    return;

  open_engines_remove (self);
  bg_engine_shutdown (self);
}

GNetworkMonitor *
bg_engine_get_network_monitor (BgEngine *self)
{
  return self->network_monitor;
}
