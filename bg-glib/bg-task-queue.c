/* bg-task-queue.c: what BgDownloader and BgUploader have in common
 *
 * Both front ends are thin: the properties, signals, set-up and the calls that do not depend on
 * the direction of the transfer live here, and the work is the engine's.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "bg-enums.h"
#include "bg-error.h"
#include "bg-http-private.h"
#include "bg-remote-private.h"
#include "bg-i18n-private.h"
#include "bg-session-private.h"
#include "bg-task-queue-private.h"

/**
 * BgTaskQueue:
 *
 * The tasks of one kind, downloads or uploads, kept in one database.
 *
 * [class@Bg.Downloader] and [class@Bg.Uploader] are task queues: the settings, signals and
 * calls below are theirs. In C, each call also has a name of its own kind, such as
 * `bg_downloader_cancel()`, which takes the downloader as it is.
 *
 * Two downloaders (or two uploaders) on the same database in one process share their tasks and
 * their settings: a task never runs twice. A database is held by one process at a time.
 *
 * A queue is initialised with #GInitable (`bg_downloader_new()`) or, without blocking the main
 * loop while a large database is opened and checked, with #GAsyncInitable
 * (`bg_downloader_new_async()`).
 */

typedef struct
{
  BgEngine        *engine;           /* in this process */
  BgRemote        *remote;           /* or through the app's transfer service */
  char            *app_id;
  BgMode           mode;
  GListModel      *closed_tasks;     /* what get_tasks() gives once closed: empty */
  char            *session_id;
  char            *database_path;
  SoupSession     *soup_session;
  GNetworkMonitor *network_monitor;
  guint            uints[18];        /* the guint properties, by id */
  gboolean         allow_metered;
  gboolean         keep_finished;
  gboolean         paused;
  guint64          max_bandwidth;    /* bytes per second across the running tasks; 0: none */
  gboolean         closed;
} BgTaskQueuePrivate;

static void bg_task_queue_initable_iface_init (GInitableIface *iface);
static void bg_task_queue_async_initable_iface_init (GAsyncInitableIface *iface);

G_DEFINE_ABSTRACT_TYPE_WITH_CODE (BgTaskQueue, bg_task_queue, G_TYPE_OBJECT,
                                  G_ADD_PRIVATE (BgTaskQueue)
                                  G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE,
                                                         bg_task_queue_initable_iface_init)
                                  G_IMPLEMENT_INTERFACE (G_TYPE_ASYNC_INITABLE,
                                                         bg_task_queue_async_initable_iface_init))

enum {
  PROP_0,
  PROP_SESSION_ID,
  PROP_DATABASE_PATH,
  PROP_APP_ID,
  PROP_MODE,
  PROP_SOUP_SESSION,
  PROP_NETWORK_MONITOR,
  PROP_MAX_CONCURRENT,
  PROP_STALL_TIMEOUT,
  PROP_MAX_ATTEMPTS,
  PROP_RETRY_DELAY,
  PROP_MAX_RETRY_DELAY,
  PROP_RETRY_DEADLINE,
  PROP_ALLOW_METERED,
  PROP_KEEP_FINISHED,
  PROP_PAUSED,
  PROP_MAX_BANDWIDTH,
  N_PROPS
};

/* The guint properties run from PROP_MAX_CONCURRENT to PROP_RETRY_DEADLINE. */
#define IS_UINT_PROP(id) ((id) >= PROP_MAX_CONCURRENT && (id) <= PROP_RETRY_DEADLINE)

G_STATIC_ASSERT (N_PROPS <= 18);

enum {
  TASK_FINISHED,
  PREPARE_REQUEST,
  N_SIGNALS
};

static GParamSpec *properties[N_PROPS];
static guint signals[N_SIGNALS];
static GQuark kind_quark;

#define RW (G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS)
#define CONSTRUCT (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS)

void
bg_task_queue_class_set_kind (BgTaskQueueClass *klass,
                              BgTaskKind        kind)
{
  g_type_set_qdata (G_TYPE_FROM_CLASS (klass), kind_quark, GINT_TO_POINTER (kind + 1));
}

static BgTaskKind
task_queue_kind (BgTaskQueue *self)
{
  gpointer kind = g_type_get_qdata (G_OBJECT_TYPE (self), kind_quark);

  g_assert (kind != NULL);

  return GPOINTER_TO_INT (kind) - 1;
}

BgEngine *
bg_task_queue_get_engine (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), NULL);

  return priv->engine;
}

/* FALSE with BG_ERROR_CLOSED once the queue is closed (or before it was initialised). */
static gboolean
task_queue_check_open (BgTaskQueue  *self,
                       GError      **error)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  if (priv->engine == NULL && priv->remote == NULL)
    {
      g_set_error_literal (error, BG_ERROR, BG_ERROR_CLOSED,
                           priv->closed ? _("The task queue was closed")
                                        : _("The task queue was not initialised"));
      return FALSE;
    }

  return TRUE;
}

BgEngine *
bg_task_queue_require_engine (BgTaskQueue  *self,
                              GError      **error)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  if (priv->engine == NULL)
    {
      g_set_error_literal (error, BG_ERROR, BG_ERROR_CLOSED,
                           priv->closed ? _("The task queue was closed")
                                        : _("The task queue was not initialised"));
      return NULL;
    }

  return priv->engine;
}

void
bg_task_queue_submit_async (BgTaskQueue         *self,
                            gpointer             source_tag,
                            SoupMessage         *request,
                            GFile               *file,
                            const char          *identifier,
                            BgTaskOptions       *options,
                            GCancellable        *cancellable,
                            GAsyncReadyCallback  callback,
                            gpointer             user_data)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);
  g_autoptr(GError) error = NULL;

  g_assert (BG_IS_TASK_QUEUE (self));

  if (!task_queue_check_open (self, &error) ||
      !bg_http_check_request_headers (soup_message_get_request_headers (request), &error))
    {
      g_task_report_error (self, callback, user_data, source_tag, g_steal_pointer (&error));
      return;
    }

  if (priv->remote != NULL)
    bg_remote_submit_async (priv->remote, self, source_tag, request, file, identifier, options,
                            cancellable, callback, user_data);
  else
    bg_engine_submit_async (priv->engine, self, source_tag, request, file, identifier, options,
                            cancellable, callback, user_data);
}

BgResponse *
bg_task_queue_submit_finish (BgTaskQueue   *self,
                             GAsyncResult  *result,
                             GError       **error)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_assert (BG_IS_TASK_QUEUE (self));
  g_assert (G_IS_TASK (result));

  /* A call refused at once carries the queue; a pending call's task has no source object, so
   * that it does not keep the queue alive (see bg-engine.c). */
  if (g_task_get_source_object (G_TASK (result)) != NULL)
    return g_task_propagate_pointer (G_TASK (result), error);

  if (priv->remote != NULL)
    return bg_remote_submit_finish (priv->remote, result, error);

  return bg_engine_submit_finish (priv->engine, result, error);
}

void
bg_task_queue_configure_remote (BgTaskQueue *self,
                                const char  *name,
                                GVariant    *value)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);
  g_autoptr(GVariant) sunk = g_variant_ref_sink (value);

  if (priv->remote != NULL)
    bg_remote_configure (priv->remote, name, sunk);
}

/* Hands the value of @prop_id to the engine, once there is one. */
static void
task_queue_apply (BgTaskQueue *self,
                  guint        prop_id)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_assert (BG_IS_TASK_QUEUE (self));

  if (priv->remote != NULL)
    {
      if (IS_UINT_PROP (prop_id))
        bg_remote_configure (priv->remote, properties[prop_id]->name,
                             g_variant_new_uint32 (priv->uints[prop_id]));
      else if (prop_id == PROP_ALLOW_METERED || prop_id == PROP_KEEP_FINISHED ||
               prop_id == PROP_PAUSED)
        bg_remote_configure (priv->remote, properties[prop_id]->name,
                             g_variant_new_boolean (prop_id == PROP_ALLOW_METERED
                                                    ? priv->allow_metered
                                                    : prop_id == PROP_KEEP_FINISHED
                                                    ? priv->keep_finished : priv->paused));
      else if (prop_id == PROP_MAX_BANDWIDTH)
        bg_remote_configure (priv->remote, properties[prop_id]->name,
                             g_variant_new_uint64 (priv->max_bandwidth));
      return;
    }

  if (priv->engine == NULL)
    return;

  switch (prop_id)
    {
    case PROP_MAX_CONCURRENT:
      bg_engine_set_max_concurrent (priv->engine, priv->uints[prop_id]);
      break;
    case PROP_STALL_TIMEOUT:
      bg_engine_set_stall_timeout (priv->engine, priv->uints[prop_id]);
      break;
    case PROP_MAX_ATTEMPTS:
      bg_engine_set_max_attempts (priv->engine, priv->uints[prop_id]);
      break;
    case PROP_RETRY_DELAY:
    case PROP_MAX_RETRY_DELAY:
      bg_engine_set_backoff (priv->engine,
                             priv->uints[PROP_RETRY_DELAY] * 1000,
                             priv->uints[PROP_MAX_RETRY_DELAY] * 1000);
      break;
    case PROP_RETRY_DEADLINE:
      bg_engine_set_retry_deadline (priv->engine, priv->uints[prop_id]);
      break;
    case PROP_ALLOW_METERED:
      bg_engine_set_allow_metered (priv->engine, priv->allow_metered);
      break;
    case PROP_KEEP_FINISHED:
      bg_engine_set_keep_finished (priv->engine, priv->keep_finished);
      break;
    case PROP_PAUSED:
      bg_engine_set_paused (priv->engine, priv->paused);
      break;
    case PROP_MAX_BANDWIDTH:
      bg_engine_set_max_bandwidth (priv->engine, priv->max_bandwidth);
      break;
    default:
      break;
    }
}

static guint
get_uint (BgTaskQueue *self,
          guint        prop_id)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_assert (IS_UINT_PROP (prop_id));

  return priv->uints[prop_id];
}

/* Sets a guint property, clamped to its range, and tells the engine and the listeners. */
static void
set_uint (BgTaskQueue *self,
          guint        prop_id,
          guint        value)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);
  GParamSpecUInt *pspec = G_PARAM_SPEC_UINT (properties[prop_id]);

  g_assert (IS_UINT_PROP (prop_id));

  value = CLAMP (value, pspec->minimum, pspec->maximum);
  if (priv->uints[prop_id] == value)
    return;

  priv->uints[prop_id] = value;
  task_queue_apply (self, prop_id);
  g_object_notify_by_pspec (G_OBJECT (self), properties[prop_id]);
}

static void
task_finished_cb (GObject     *engine,
                  BgTask      *task,
                  BgResponse  *response,
                  BgTaskQueue *self)
{
  g_signal_emit (self, signals[TASK_FINISHED], 0, task, response);
}

static void
prepare_request_cb (GObject     *engine,
                    BgTask      *task,
                    SoupMessage *msg,
                    BgTaskQueue *self)
{
  g_signal_emit (self, signals[PREPARE_REQUEST], 0, task, msg);
}

/* The database-path property, when set, has to name a file: an empty path, or one that ends in a
 * folder ("/", "dir/", ".", ".."), is refused before anything is created for it. */
static gboolean
check_database_path (const char  *path,
                     GError     **error)
{
  g_autofree char *base = NULL;
  g_autofree char *shown = NULL;

  if (path == NULL)
    return TRUE;

  if (*path == '\0')
    {
      g_set_error_literal (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                           _("The database-path property is empty; leave it unset for the "
                             "default database"));
      return FALSE;
    }

  base = g_path_get_basename (path);
  if (!g_str_has_suffix (path, G_DIR_SEPARATOR_S) &&
      !g_str_equal (base, ".") && !g_str_equal (base, ".."))
    return TRUE;

  shown = g_filename_display_name (path);
  g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
               _("The database-path “%s” names a folder, not a file"), shown);
  return FALSE;
}

/* The second half of initialising, on the queue's own context: joins the engine that already
 * runs on @store in this process, or starts one. */
static gboolean
task_queue_attach (BgTaskQueue  *self,
                   BgStore      *store,
                   char         *path_used,
                   GError      **error)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_assert (BG_IS_STORE (store));

  g_free (priv->database_path);
  priv->database_path = path_used;

  priv->engine = bg_engine_acquire_store (task_queue_kind (self), store, priv->soup_session,
                                          priv->network_monitor, error);
  if (priv->engine == NULL)
    return FALSE;

  priv->mode = BG_MODE_IN_PROCESS;
  g_set_object (&priv->soup_session, bg_engine_get_session (priv->engine));
  g_set_object (&priv->network_monitor, bg_engine_get_network_monitor (priv->engine));
  for (guint i = PROP_MAX_CONCURRENT; i < N_PROPS; i++)
    task_queue_apply (self, i);

  g_signal_connect_object (priv->engine, "task-finished", G_CALLBACK (task_finished_cb), self, 0);
  g_signal_connect_object (priv->engine, "prepare-request", G_CALLBACK (prepare_request_cb),
                           self, 0);

  return TRUE;
}

/* The queue's settings as the transfer service takes them (see OpenQueue). */
static GVariant *
task_queue_settings (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);
  GVariantBuilder builder;

  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
  for (guint i = PROP_MAX_CONCURRENT; i <= PROP_RETRY_DEADLINE; i++)
    g_variant_builder_add (&builder, "{sv}", properties[i]->name,
                           g_variant_new_uint32 (priv->uints[i]));
  g_variant_builder_add (&builder, "{sv}", "allow-metered",
                         g_variant_new_boolean (priv->allow_metered));
  g_variant_builder_add (&builder, "{sv}", "keep-finished",
                         g_variant_new_boolean (priv->keep_finished));
  g_variant_builder_add (&builder, "{sv}", "paused", g_variant_new_boolean (priv->paused));
  g_variant_builder_add (&builder, "{sv}", "max-bandwidth",
                         g_variant_new_uint64 (priv->max_bandwidth));
  return g_variant_builder_end (&builder);
}

static void
task_queue_attach_remote (BgTaskQueue *self,
                          BgRemote    *remote)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  priv->remote = remote;
  priv->mode = BG_MODE_SERVICE;
  g_signal_connect_object (remote, "task-finished", G_CALLBACK (task_finished_cb), self, 0);
  g_signal_connect_object (remote, "prepare-request", G_CALLBACK (prepare_request_cb), self, 0);
}

/* Settles BG_MODE_AUTO: the service when the app has one on the session bus.  Blocking, but
 * short: it asks the bus daemon. */
static BgMode
task_queue_choose_mode (BgTaskQueue  *self,
                        GError      **error)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  if (priv->app_id == NULL)
    {
      GApplication *app = g_application_get_default ();

      if (app != NULL && g_application_get_application_id (app) != NULL)
        priv->app_id = g_strdup (g_application_get_application_id (app));
    }

  if (priv->mode == BG_MODE_IN_PROCESS)
    return BG_MODE_IN_PROCESS;

  if (priv->app_id == NULL)
    {
      if (priv->mode == BG_MODE_SERVICE)
        {
          g_set_error_literal (error, BG_ERROR, BG_ERROR_SERVICE,
                               _("The service mode needs an app id: set the app-id property"));
          return BG_MODE_AUTO;
        }
      return BG_MODE_IN_PROCESS;
    }

  if (priv->mode == BG_MODE_SERVICE || bg_remote_service_available (priv->app_id))
    return BG_MODE_SERVICE;

  return BG_MODE_IN_PROCESS;
}

/* Whether initialising has anything left to do; FALSE with @error when it cannot start. */
static gboolean
task_queue_needs_init (BgTaskQueue  *self,
                       GError      **error)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  bg_i18n_init ();

  if (priv->engine != NULL || priv->remote != NULL)
    return FALSE;

  if (priv->closed)
    {
      bg_task_queue_require_engine (self, error);
      return FALSE;
    }

  return check_database_path (priv->database_path, error);
}

/* Opens the database (or joins the engine that already has it open in this process). */
static gboolean
bg_task_queue_initable_init (GInitable     *initable,
                             GCancellable  *cancellable,
                             GError       **error)
{
  BgTaskQueue *self = BG_TASK_QUEUE (initable);
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);
  g_autoptr(GError) local_error = NULL;
  g_autoptr(BgStore) store = NULL;
  char *path_used = NULL;
  BgMode mode;

  if (!task_queue_needs_init (self, &local_error))
    {
      if (local_error == NULL)
        return TRUE;
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  mode = task_queue_choose_mode (self, error);
  if (mode == BG_MODE_AUTO)
    return FALSE;
  if (mode == BG_MODE_SERVICE)
    {
      BgRemote *remote = bg_remote_open (task_queue_kind (self), priv->app_id, priv->session_id,
                                         priv->database_path, task_queue_settings (self),
                                         cancellable, error);
      if (remote == NULL)
        return FALSE;
      task_queue_attach_remote (self, remote);
      return TRUE;
    }

  store = bg_session_open_store (priv->session_id, priv->database_path, &path_used, error);

  return store != NULL && task_queue_attach (self, store, path_used, error);
}

static void
bg_task_queue_initable_iface_init (GInitableIface *iface)
{
  iface->init = bg_task_queue_initable_init;
}

typedef struct
{
  char    *session_id;
  char    *database_path;
  char    *path_used;
} OpenData;

static void
open_data_free (OpenData *data)
{
  g_free (data->session_id);
  g_free (data->database_path);
  g_free (data->path_used);
  g_free (data);
}

/* Opening and checking a database of thousands of tasks takes a while: on a worker thread. */
static void
open_store_thread (GTask        *task,
                   gpointer      source_object,
                   gpointer      task_data,
                   GCancellable *cancellable)
{
  OpenData *data = task_data;
  GError *error = NULL;
  BgStore *store;

  store = bg_session_open_store (data->session_id, data->database_path, &data->path_used,
                                 &error);
  if (store == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, store, g_object_unref);
}

static void
open_store_done_cb (GObject      *object,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  BgTaskQueue *self = g_task_get_source_object (task);
  OpenData *data = g_task_get_task_data (G_TASK (result));
  g_autoptr(BgStore) store = NULL;
  GError *error = NULL;

  store = g_task_propagate_pointer (G_TASK (result), &error);
  if (store == NULL || !task_queue_attach (self, store, g_steal_pointer (&data->path_used),
                                           &error))
    g_task_return_error (task, error);
  else
    g_task_return_boolean (task, TRUE);
}

static void
remote_opened_cb (GObject      *object,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  BgTaskQueue *self = g_task_get_source_object (task);
  GError *error = NULL;
  BgRemote *remote;

  remote = bg_remote_open_finish (result, &error);
  if (remote == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  task_queue_attach_remote (self, remote);
  g_task_return_boolean (task, TRUE);
}

static void
bg_task_queue_init_async (GAsyncInitable      *initable,
                          int                  io_priority,
                          GCancellable        *cancellable,
                          GAsyncReadyCallback  callback,
                          gpointer             user_data)
{
  BgTaskQueue *self = BG_TASK_QUEUE (initable);
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);
  g_autoptr(GTask) task = NULL;
  g_autoptr(GTask) worker = NULL;
  g_autoptr(GError) error = NULL;
  OpenData *data;
  BgMode mode;

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, bg_task_queue_init_async);
  g_task_set_priority (task, io_priority);

  if (!task_queue_needs_init (self, &error))
    {
      if (error != NULL)
        g_task_return_error (task, g_steal_pointer (&error));
      else
        g_task_return_boolean (task, TRUE);
      return;
    }

  mode = task_queue_choose_mode (self, &error);
  if (mode == BG_MODE_AUTO)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  if (mode == BG_MODE_SERVICE)
    {
      bg_remote_open_async (task_queue_kind (self), priv->app_id, priv->session_id,
                            priv->database_path, task_queue_settings (self), cancellable,
                            remote_opened_cb, g_steal_pointer (&task));
      return;
    }

  data = g_new0 (OpenData, 1);
  data->session_id = g_strdup (priv->session_id);
  data->database_path = g_strdup (priv->database_path);

  worker = g_task_new (self, cancellable, open_store_done_cb, g_steal_pointer (&task));
  g_task_set_source_tag (worker, open_store_thread);
  g_task_set_priority (worker, io_priority);
  g_task_set_task_data (worker, data, (GDestroyNotify) open_data_free);
  g_task_run_in_thread (worker, open_store_thread);
}

static gboolean
bg_task_queue_init_finish (GAsyncInitable  *initable,
                           GAsyncResult    *result,
                           GError         **error)
{
  g_return_val_if_fail (g_task_is_valid (result, initable), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
bg_task_queue_async_initable_iface_init (GAsyncInitableIface *iface)
{
  iface->init_async = bg_task_queue_init_async;
  iface->init_finish = bg_task_queue_init_finish;
}

static void
bg_task_queue_dispose (GObject *object)
{
  bg_task_queue_close (BG_TASK_QUEUE (object));

  G_OBJECT_CLASS (bg_task_queue_parent_class)->dispose (object);
}

static void
bg_task_queue_finalize (GObject *object)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (BG_TASK_QUEUE (object));

  g_clear_object (&priv->closed_tasks);
  g_clear_pointer (&priv->session_id, g_free);
  g_clear_pointer (&priv->database_path, g_free);
  g_clear_pointer (&priv->app_id, g_free);
  g_clear_object (&priv->soup_session);
  g_clear_object (&priv->network_monitor);

  G_OBJECT_CLASS (bg_task_queue_parent_class)->finalize (object);
}

static void
bg_task_queue_get_property (GObject    *object,
                            guint       prop_id,
                            GValue     *value,
                            GParamSpec *pspec)
{
  BgTaskQueue *self = BG_TASK_QUEUE (object);
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  switch (prop_id)
    {
    case PROP_SESSION_ID:
      g_value_set_string (value, priv->session_id);
      break;
    case PROP_DATABASE_PATH:
      g_value_set_string (value, priv->database_path);
      break;
    case PROP_APP_ID:
      g_value_set_string (value, priv->app_id);
      break;
    case PROP_MODE:
      g_value_set_enum (value, priv->mode);
      break;
    case PROP_SOUP_SESSION:
      g_value_set_object (value, priv->soup_session);
      break;
    case PROP_NETWORK_MONITOR:
      g_value_set_object (value, bg_task_queue_get_network_monitor (self));
      break;
    case PROP_ALLOW_METERED:
      g_value_set_boolean (value, priv->allow_metered);
      break;
    case PROP_KEEP_FINISHED:
      g_value_set_boolean (value, priv->keep_finished);
      break;
    case PROP_PAUSED:
      g_value_set_boolean (value, priv->paused);
      break;
    case PROP_MAX_BANDWIDTH:
      g_value_set_uint64 (value, priv->max_bandwidth);
      break;
    default:
      if (IS_UINT_PROP (prop_id))
        g_value_set_uint (value, get_uint (self, prop_id));
      else
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
bg_task_queue_set_property (GObject      *object,
                            guint         prop_id,
                            const GValue *value,
                            GParamSpec   *pspec)
{
  BgTaskQueue *self = BG_TASK_QUEUE (object);
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  switch (prop_id)
    {
    case PROP_SESSION_ID:
      priv->session_id = g_value_dup_string (value);
      break;
    case PROP_DATABASE_PATH:
      priv->database_path = g_value_dup_string (value);
      break;
    case PROP_APP_ID:
      priv->app_id = g_value_dup_string (value);
      break;
    case PROP_MODE:
      priv->mode = g_value_get_enum (value);
      break;
    case PROP_SOUP_SESSION:
      priv->soup_session = g_value_dup_object (value);
      break;
    case PROP_NETWORK_MONITOR:
      priv->network_monitor = g_value_dup_object (value);
      break;
    case PROP_ALLOW_METERED:
      bg_task_queue_set_allow_metered (self, g_value_get_boolean (value));
      break;
    case PROP_KEEP_FINISHED:
      bg_task_queue_set_keep_finished (self, g_value_get_boolean (value));
      break;
    case PROP_PAUSED:
      bg_task_queue_set_paused (self, g_value_get_boolean (value));
      break;
    case PROP_MAX_BANDWIDTH:
      bg_task_queue_set_max_bandwidth (self, g_value_get_uint64 (value));
      break;
    default:
      if (IS_UINT_PROP (prop_id))
        set_uint (self, prop_id, g_value_get_uint (value));
      else
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
bg_task_queue_class_init (BgTaskQueueClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  kind_quark = g_quark_from_static_string ("bg-task-queue-kind");

  object_class->dispose = bg_task_queue_dispose;
  object_class->finalize = bg_task_queue_finalize;
  object_class->get_property = bg_task_queue_get_property;
  object_class->set_property = bg_task_queue_set_property;

  /**
   * BgTaskQueue:session-id:
   *
   * The name of the task database, such as the app's id. It may contain only letters, digits,
   * `.`, `_` and `-`, at most 200 of them.
   */
  properties[PROP_SESSION_ID] =
    g_param_spec_string ("session-id", NULL, NULL, NULL, CONSTRUCT);

  /**
   * BgTaskQueue:database-path:
   *
   * Where the task database lives. The default is
   * `$XDG_DATA_HOME/bg-glib/<session-id>.sqlite`, which inside Flatpak is the app's own data
   * folder.
   */
  properties[PROP_DATABASE_PATH] =
    g_param_spec_string ("database-path", NULL, NULL, NULL, CONSTRUCT);

  /**
   * BgTaskQueue:app-id:
   *
   * The id of the app whose transfer service ([enum@Bg.Mode]) the queue may use: the service
   * owns `APP_ID.Transfers` on the session bus. The default is the id of the default
   * #GApplication, if there is one.
   */
  properties[PROP_APP_ID] =
    g_param_spec_string ("app-id", NULL, NULL, NULL, CONSTRUCT);

  /**
   * BgTaskQueue:mode:
   *
   * Where the transfers run: in this process, or in the app's transfer service, which goes on
   * after the app's process ended (see [enum@Bg.Mode]). Once the queue is initialised, this
   * reads back the mode in use: %BG_MODE_AUTO has become %BG_MODE_IN_PROCESS or
   * %BG_MODE_SERVICE.
   */
  properties[PROP_MODE] =
    g_param_spec_enum ("mode", NULL, NULL, BG_TYPE_MODE, BG_MODE_AUTO, CONSTRUCT);

  /**
   * BgTaskQueue:soup-session:
   *
   * The #SoupSession used for the transfers. By default the queue makes its own. A queue that
   * shares its database with another one in the same process uses that one's session.
   */
  properties[PROP_SOUP_SESSION] =
    g_param_spec_object ("soup-session", NULL, NULL, SOUP_TYPE_SESSION, CONSTRUCT);

  /**
   * BgTaskQueue:network-monitor:
   *
   * The #GNetworkMonitor that says whether there is a network and whether it is metered. The
   * default is g_network_monitor_get_default(); once the queue is initialised, this reads back
   * the monitor in use. While there is no network and the server cannot be reached, tasks wait
   * with %BG_WAIT_REASON_NETWORK and use up no attempts.
   */
  properties[PROP_NETWORK_MONITOR] =
    g_param_spec_object ("network-monitor", NULL, NULL, G_TYPE_NETWORK_MONITOR, CONSTRUCT);

  /**
   * BgTaskQueue:max-concurrent:
   *
   * How many tasks may run at once.
   */
  properties[PROP_MAX_CONCURRENT] =
    g_param_spec_uint ("max-concurrent", NULL, NULL, 1, 1024, 4, RW);

  /**
   * BgTaskQueue:stall-timeout:
   *
   * How many seconds an attempt may go without a byte moving before it ends as
   * %BG_RESPONSE_RETRY with %BG_ERROR_TIMEOUT. 0 turns the check off.
   */
  properties[PROP_STALL_TIMEOUT] =
    g_param_spec_uint ("stall-timeout", NULL, NULL, 0, G_MAXUINT, 60, RW);

  /**
   * BgTaskQueue:max-attempts:
   *
   * How many attempts a task gets before a %BG_RESPONSE_RETRY outcome is handed to the app.
   * Between attempts the task waits, longer each time (see
   * [property@Bg.TaskQueue:retry-delay]), or as long as the server's `Retry-After` asks when
   * that is longer. 1 hands every retry straight to the app.
   */
  properties[PROP_MAX_ATTEMPTS] =
    g_param_spec_uint ("max-attempts", NULL, NULL, 1, G_MAXUINT, 5, RW);

  /**
   * BgTaskQueue:retry-delay:
   *
   * How many seconds the first automatic retry waits. Each later one waits twice as long, up
   * to [property@Bg.TaskQueue:max-retry-delay], plus up to a quarter more at random so that
   * tasks that failed together do not come back together. A longer `Retry-After` from the
   * server wins.
   */
  properties[PROP_RETRY_DELAY] =
    g_param_spec_uint ("retry-delay", NULL, NULL, 0, 24 * 3600, 2, RW);

  /**
   * BgTaskQueue:max-retry-delay:
   *
   * The longest wait, in seconds, that the backoff between automatic retries reaches.
   */
  properties[PROP_MAX_RETRY_DELAY] =
    g_param_spec_uint ("max-retry-delay", NULL, NULL, 0, 7 * 24 * 3600, 3600, RW);

  /**
   * BgTaskQueue:retry-deadline:
   *
   * How many seconds after a task was created it stops being retried: a retry that would fall
   * later hands the %BG_RESPONSE_RETRY outcome to the app. 0 means no deadline; the default is
   * seven days.
   */
  properties[PROP_RETRY_DEADLINE] =
    g_param_spec_uint ("retry-deadline", NULL, NULL, 0, G_MAXUINT, 7 * 24 * 3600, RW);

  /**
   * BgTaskQueue:allow-metered:
   *
   * Whether tasks may use a metered network. When it is %FALSE, tasks wait with
   * %BG_WAIT_REASON_METERED while the network is metered, unless the task itself allows it
   * ([property@Bg.Task:allow-metered]).
   */
  properties[PROP_ALLOW_METERED] =
    g_param_spec_boolean ("allow-metered", NULL, NULL, FALSE, RW);

  /**
   * BgTaskQueue:keep-finished:
   *
   * Whether a task whose result was collected (by a `_finish`) stays in
   * [method@Bg.TaskQueue.get_tasks] until the app calls [method@Bg.TaskQueue.forget] for it, so
   * that a "Downloads" window can show a history. Its record leaves the database either way,
   * and a new task with the same identifier takes its place in the list. Setting it to %FALSE
   * takes every collected task off the list.
   */
  properties[PROP_KEEP_FINISHED] =
    g_param_spec_boolean ("keep-finished", NULL, NULL, TRUE, RW);

  /**
   * BgTaskQueue:paused:
   *
   * Holds every task of the queue, as if each were paused ([property@Bg.Task:paused]): running
   * attempts stop within moments (keeping their partial files and records), and no task
   * starts, each waiting with %BG_WAIT_REASON_PAUSED. Unlike a task's own pause, it is not
   * stored: a later run starts unpaused. Queues sharing a database share it.
   */
  properties[PROP_PAUSED] =
    g_param_spec_boolean ("paused", NULL, NULL, FALSE, RW);

  /**
   * BgTaskQueue:max-bandwidth:
   *
   * The most bytes per second the queue's running tasks may move together, averaged over half a
   * second; 0 for no cap. The tasks share it, each taking its bytes from it as it
   * reads or sends, and each task's own cap ([property@Bg.Task:max-bandwidth]) applies too.
   * Running tasks follow a change within half a second. Like
   * [property@Bg.TaskQueue:max-concurrent] it is not stored; queues sharing a database share it.
   */
  properties[PROP_MAX_BANDWIDTH] =
    g_param_spec_uint64 ("max-bandwidth", NULL, NULL, 0, G_MAXINT64, 0, RW);

  g_object_class_install_properties (object_class, N_PROPS, properties);

  /**
   * BgTaskQueue::task-finished:
   * @self: the queue
   * @task: the task that finished
   * @response: its outcome
   *
   * Emitted when a task reaches its final outcome, also for a task that was restored from an
   * earlier run. Results that an earlier run never collected are announced again by
   * [method@Bg.TaskQueue.restore_async]: call [method@Bg.TaskQueue.forget] once the result is
   * safely handled.
   */
  signals[TASK_FINISHED] =
    g_signal_new ("task-finished", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 2, BG_TYPE_TASK, BG_TYPE_RESPONSE);

  /**
   * BgTaskQueue::prepare-request:
   * @self: the queue
   * @task: the task about to make an attempt
   * @msg: the request of the attempt
   *
   * Emitted before every attempt, first ones and resumed ones alike. A handler can add a fresh
   * `Authorization` header or re-sign the URL; what it changes is not stored.
   *
   * Credentials on the request given to `_async` (`Authorization`, `Proxy-Authorization` and
   * `Cookie` headers, the password of the URL) are kept in memory only, unless the task's
   * [property@Bg.Task:keep-credentials] is set. After a restart, a task whose request still
   * carries none of them once this signal has been emitted does not start its attempt: it
   * waits with %BG_WAIT_REASON_CREDENTIALS until a handler supplies them.
   */
  signals[PREPARE_REQUEST] =
    g_signal_new ("prepare-request", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 2, BG_TYPE_TASK, SOUP_TYPE_MESSAGE);
}

static void
bg_task_queue_init (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  for (guint i = PROP_MAX_CONCURRENT; i <= PROP_RETRY_DEADLINE; i++)
    priv->uints[i] = G_PARAM_SPEC_UINT (properties[i])->default_value;
  priv->keep_finished = TRUE;
}

/**
 * bg_task_queue_get_app_id:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:app-id].
 *
 * Returns: (nullable): the app id
 */
const char *
bg_task_queue_get_app_id (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), NULL);

  return priv->app_id;
}

/**
 * bg_task_queue_get_mode:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:mode]: once the queue is initialised, the mode in use.
 *
 * Returns: the mode
 */
BgMode
bg_task_queue_get_mode (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), BG_MODE_AUTO);

  return priv->mode;
}

/**
 * bg_task_queue_get_session_id:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:session-id].
 *
 * Returns: the session id
 */
const char *
bg_task_queue_get_session_id (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), NULL);

  return priv->session_id;
}

/**
 * bg_task_queue_get_database_path:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:database-path], the default one once the queue is initialised.
 *
 * Returns: (type filename) (nullable): the path
 */
const char *
bg_task_queue_get_database_path (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), NULL);

  return priv->database_path;
}

/**
 * bg_task_queue_get_soup_session:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:soup-session], the session the transfers use.
 *
 * Returns: (transfer none) (nullable): the session
 */
SoupSession *
bg_task_queue_get_soup_session (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), NULL);

  return priv->soup_session;
}

/**
 * bg_task_queue_get_network_monitor:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:network-monitor], the monitor in use.
 *
 * Returns: (transfer none) (nullable): the monitor
 */
GNetworkMonitor *
bg_task_queue_get_network_monitor (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), NULL);

  return priv->network_monitor;
}

/**
 * bg_task_queue_get_max_concurrent:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:max-concurrent].
 *
 * Returns: how many tasks may run at once
 */
guint
bg_task_queue_get_max_concurrent (BgTaskQueue *self)
{
  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), 0);

  return get_uint (self, PROP_MAX_CONCURRENT);
}

/**
 * bg_task_queue_set_max_concurrent:
 * @self: a #BgTaskQueue
 * @max_concurrent: how many tasks may run at once, at least 1
 *
 * Sets [property@Bg.TaskQueue:max-concurrent].
 */
void
bg_task_queue_set_max_concurrent (BgTaskQueue *self,
                                  guint        max_concurrent)
{
  g_return_if_fail (BG_IS_TASK_QUEUE (self));

  set_uint (self, PROP_MAX_CONCURRENT, max_concurrent);
}

/**
 * bg_task_queue_get_stall_timeout:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:stall-timeout].
 *
 * Returns: the timeout in seconds, or 0 when it is off
 */
guint
bg_task_queue_get_stall_timeout (BgTaskQueue *self)
{
  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), 0);

  return get_uint (self, PROP_STALL_TIMEOUT);
}

/**
 * bg_task_queue_set_stall_timeout:
 * @self: a #BgTaskQueue
 * @seconds: the timeout in seconds, or 0 to turn it off
 *
 * Sets [property@Bg.TaskQueue:stall-timeout].
 */
void
bg_task_queue_set_stall_timeout (BgTaskQueue *self,
                                 guint        seconds)
{
  g_return_if_fail (BG_IS_TASK_QUEUE (self));

  set_uint (self, PROP_STALL_TIMEOUT, seconds);
}

/**
 * bg_task_queue_get_max_attempts:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:max-attempts].
 *
 * Returns: the number of attempts
 */
guint
bg_task_queue_get_max_attempts (BgTaskQueue *self)
{
  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), 0);

  return get_uint (self, PROP_MAX_ATTEMPTS);
}

/**
 * bg_task_queue_set_max_attempts:
 * @self: a #BgTaskQueue
 * @max_attempts: the number of attempts, at least 1
 *
 * Sets [property@Bg.TaskQueue:max-attempts].
 */
void
bg_task_queue_set_max_attempts (BgTaskQueue *self,
                                guint        max_attempts)
{
  g_return_if_fail (BG_IS_TASK_QUEUE (self));

  set_uint (self, PROP_MAX_ATTEMPTS, max_attempts);
}

/**
 * bg_task_queue_get_retry_delay:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:retry-delay].
 *
 * Returns: the first retry's wait in seconds
 */
guint
bg_task_queue_get_retry_delay (BgTaskQueue *self)
{
  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), 0);

  return get_uint (self, PROP_RETRY_DELAY);
}

/**
 * bg_task_queue_set_retry_delay:
 * @self: a #BgTaskQueue
 * @seconds: the first retry's wait in seconds
 *
 * Sets [property@Bg.TaskQueue:retry-delay].
 */
void
bg_task_queue_set_retry_delay (BgTaskQueue *self,
                               guint        seconds)
{
  g_return_if_fail (BG_IS_TASK_QUEUE (self));

  set_uint (self, PROP_RETRY_DELAY, seconds);
}

/**
 * bg_task_queue_get_max_retry_delay:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:max-retry-delay].
 *
 * Returns: the longest wait between retries, in seconds
 */
guint
bg_task_queue_get_max_retry_delay (BgTaskQueue *self)
{
  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), 0);

  return get_uint (self, PROP_MAX_RETRY_DELAY);
}

/**
 * bg_task_queue_set_max_retry_delay:
 * @self: a #BgTaskQueue
 * @seconds: the longest wait between retries, in seconds
 *
 * Sets [property@Bg.TaskQueue:max-retry-delay].
 */
void
bg_task_queue_set_max_retry_delay (BgTaskQueue *self,
                                   guint        seconds)
{
  g_return_if_fail (BG_IS_TASK_QUEUE (self));

  set_uint (self, PROP_MAX_RETRY_DELAY, seconds);
}

/**
 * bg_task_queue_get_retry_deadline:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:retry-deadline].
 *
 * Returns: seconds after its creation that a task is retried, or 0 for no deadline
 */
guint
bg_task_queue_get_retry_deadline (BgTaskQueue *self)
{
  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), 0);

  return get_uint (self, PROP_RETRY_DEADLINE);
}

/**
 * bg_task_queue_set_retry_deadline:
 * @self: a #BgTaskQueue
 * @seconds: seconds after its creation that a task is retried, or 0 for no deadline
 *
 * Sets [property@Bg.TaskQueue:retry-deadline].
 */
void
bg_task_queue_set_retry_deadline (BgTaskQueue *self,
                                  guint        seconds)
{
  g_return_if_fail (BG_IS_TASK_QUEUE (self));

  set_uint (self, PROP_RETRY_DEADLINE, seconds);
}

/**
 * bg_task_queue_get_allow_metered:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:allow-metered].
 *
 * Returns: whether tasks may use a metered network
 */
gboolean
bg_task_queue_get_allow_metered (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), FALSE);

  return priv->allow_metered;
}

/**
 * bg_task_queue_set_allow_metered:
 * @self: a #BgTaskQueue
 * @allow_metered: whether tasks may use a metered network
 *
 * Sets [property@Bg.TaskQueue:allow-metered].
 */
void
bg_task_queue_set_allow_metered (BgTaskQueue *self,
                                 gboolean     allow_metered)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_if_fail (BG_IS_TASK_QUEUE (self));

  allow_metered = !!allow_metered;
  if (priv->allow_metered == allow_metered)
    return;

  priv->allow_metered = allow_metered;
  task_queue_apply (self, PROP_ALLOW_METERED);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_ALLOW_METERED]);
}

/**
 * bg_task_queue_get_keep_finished:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:keep-finished].
 *
 * Returns: whether collected tasks stay listed until forgotten
 */
gboolean
bg_task_queue_get_keep_finished (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), FALSE);

  return priv->keep_finished;
}

/**
 * bg_task_queue_set_keep_finished:
 * @self: a #BgTaskQueue
 * @keep_finished: whether collected tasks stay listed until forgotten
 *
 * Sets [property@Bg.TaskQueue:keep-finished].
 */
void
bg_task_queue_set_keep_finished (BgTaskQueue *self,
                                 gboolean     keep_finished)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_if_fail (BG_IS_TASK_QUEUE (self));

  keep_finished = !!keep_finished;
  if (priv->keep_finished == keep_finished)
    return;

  priv->keep_finished = keep_finished;
  task_queue_apply (self, PROP_KEEP_FINISHED);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_KEEP_FINISHED]);
}

/**
 * bg_task_queue_get_paused:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:paused].
 *
 * Returns: whether every task is held
 */
gboolean
bg_task_queue_get_paused (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), FALSE);

  return priv->paused;
}

/**
 * bg_task_queue_set_paused:
 * @self: a #BgTaskQueue
 * @paused: whether to hold every task
 *
 * Sets [property@Bg.TaskQueue:paused].
 */
void
bg_task_queue_set_paused (BgTaskQueue *self,
                          gboolean     paused)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_if_fail (BG_IS_TASK_QUEUE (self));

  paused = !!paused;
  if (priv->paused == paused)
    return;

  priv->paused = paused;
  task_queue_apply (self, PROP_PAUSED);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_PAUSED]);
}

/**
 * bg_task_queue_get_max_bandwidth:
 * @self: a #BgTaskQueue
 *
 * Gets [property@Bg.TaskQueue:max-bandwidth].
 *
 * Returns: the cap in bytes per second across the running tasks, or 0 for none
 */
guint64
bg_task_queue_get_max_bandwidth (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), 0);

  return priv->max_bandwidth;
}

/**
 * bg_task_queue_set_max_bandwidth:
 * @self: a #BgTaskQueue
 * @bytes_per_second: the cap in bytes per second across the running tasks, or 0 for none
 *
 * Sets [property@Bg.TaskQueue:max-bandwidth]. A cap above %G_MAXINT64 is a programming error,
 * ignored with a critical warning.
 */
void
bg_task_queue_set_max_bandwidth (BgTaskQueue *self,
                                 guint64      bytes_per_second)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_if_fail (BG_IS_TASK_QUEUE (self));
  g_return_if_fail (bytes_per_second <= G_MAXINT64);

  if (priv->max_bandwidth == bytes_per_second)
    return;

  priv->max_bandwidth = bytes_per_second;
  task_queue_apply (self, PROP_MAX_BANDWIDTH);
  g_object_notify_by_pspec (G_OBJECT (self), properties[PROP_MAX_BANDWIDTH]);
}

/**
 * bg_task_queue_restore_async:
 * @self: a #BgTaskQueue
 * @cancellable: (nullable): a #GCancellable
 * @callback: (scope async) (nullable): called when the tasks are loaded
 * @user_data: data for @callback
 *
 * Loads the tasks that earlier runs left unfinished and carries them on. Call it once at
 * startup, after connecting to [signal@Bg.TaskQueue::task-finished]: results arrive through
 * that signal, and through any later `download_async` or `upload_async` with the same
 * identifier. Results that finished in an earlier run but were never collected are announced
 * again. No task starts while the tasks load (half a second for 100,000), so that the first to
 * start are the first in the queue's order, restored or submitted meanwhile.
 */
void
bg_task_queue_restore_async (BgTaskQueue         *self,
                             GCancellable        *cancellable,
                             GAsyncReadyCallback  callback,
                             gpointer             user_data)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);
  g_autoptr(GError) error = NULL;

  g_return_if_fail (BG_IS_TASK_QUEUE (self));
  g_return_if_fail (!cancellable || G_IS_CANCELLABLE (cancellable));

  if (!task_queue_check_open (self, &error))
    {
      g_task_report_error (self, callback, user_data, bg_task_queue_restore_async,
                           g_steal_pointer (&error));
      return;
    }

  if (priv->remote != NULL)
    bg_remote_restore_async (priv->remote, self, bg_task_queue_restore_async,
                             cancellable, callback, user_data);
  else
    bg_engine_restore_async (priv->engine, self, bg_task_queue_restore_async,
                           cancellable, callback, user_data);
}

/**
 * bg_task_queue_restore_finish:
 * @self: a #BgTaskQueue
 * @result: the #GAsyncResult given to the callback
 * @error: return location for a #GError
 *
 * Finishes [method@Bg.TaskQueue.restore_async].
 *
 * Returns: %TRUE when the tasks were loaded
 */
gboolean
bg_task_queue_restore_finish (BgTaskQueue   *self,
                              GAsyncResult  *result,
                              GError       **error)
{
  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), FALSE);
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);
  g_return_val_if_fail (g_task_get_source_tag (G_TASK (result)) == bg_task_queue_restore_async,
                        FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

/**
 * bg_task_queue_cancel:
 * @self: a #BgTaskQueue
 * @identifier: the task's identifier
 * @error: return location for a #GError
 *
 * Stops the task and forgets it: its partial file and its record are deleted, and anyone
 * waiting on it gets %G_IO_ERROR_CANCELLED.
 *
 * Returns: %TRUE on success; %FALSE with %BG_ERROR_NOT_FOUND when no task has @identifier, or
 *   %BG_ERROR_CLOSED after [method@Bg.TaskQueue.close]
 */
gboolean
bg_task_queue_cancel (BgTaskQueue  *self,
                      const char   *identifier,
                      GError      **error)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), FALSE);
  g_return_val_if_fail (identifier != NULL, FALSE);

  if (!task_queue_check_open (self, error))
    return FALSE;
  if (priv->remote != NULL)
    return bg_remote_cancel (priv->remote, identifier, error);
  return bg_engine_cancel (priv->engine, identifier, error);
}

/**
 * bg_task_queue_forget:
 * @self: a #BgTaskQueue
 * @identifier: the task's identifier
 * @error: return location for a #GError
 *
 * Marks the result of a finished task as collected, deletes its record, and takes the task
 * off [method@Bg.TaskQueue.get_tasks]. Use it after handling a result that came through
 * [signal@Bg.TaskQueue::task-finished], or to take a collected task off the list.
 *
 * Returns: %TRUE on success; %FALSE with %BG_ERROR_NOT_FOUND when no task has @identifier
 *   (also when a `_finish` already collected its result), %BG_ERROR_INVALID_ARGUMENT when the
 *   task has not finished, or %BG_ERROR_CLOSED after [method@Bg.TaskQueue.close]
 */
gboolean
bg_task_queue_forget (BgTaskQueue  *self,
                      const char   *identifier,
                      GError      **error)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), FALSE);
  g_return_val_if_fail (identifier != NULL, FALSE);

  if (!task_queue_check_open (self, error))
    return FALSE;
  if (priv->remote != NULL)
    return bg_remote_forget (priv->remote, identifier, error);
  return bg_engine_forget (priv->engine, identifier, error);
}

/**
 * bg_task_queue_get_tasks:
 * @self: a #BgTaskQueue
 *
 * Gets the tasks this queue knows: those started in this run, and those loaded by
 * [method@Bg.TaskQueue.restore_async]. The list is live and read-only, and a list view can
 * bind to it; restoring adds its tasks in one change. A task leaves it when it is cancelled or
 * forgotten, and when its result is collected unless [property@Bg.TaskQueue:keep-finished] keeps
 * it. Once the queue is closed the list is empty.
 *
 * Returns: (transfer none): a #GListModel of #BgTask
 */
GListModel *
bg_task_queue_get_tasks (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), NULL);

  if (priv->engine != NULL)
    return bg_engine_get_tasks (priv->engine);
  if (priv->remote != NULL)
    return bg_remote_get_tasks (priv->remote);

  if (priv->closed_tasks == NULL)
    priv->closed_tasks = G_LIST_MODEL (g_list_store_new (BG_TYPE_TASK));

  return priv->closed_tasks;
}

/**
 * bg_task_queue_lookup_task:
 * @self: a #BgTaskQueue
 * @identifier: the task's identifier
 *
 * Finds a task in [method@Bg.TaskQueue.get_tasks] by its identifier.
 *
 * Returns: (transfer none) (nullable): the task, or %NULL
 */
BgTask *
bg_task_queue_lookup_task (BgTaskQueue *self,
                           const char  *identifier)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);

  g_return_val_if_fail (BG_IS_TASK_QUEUE (self), NULL);
  g_return_val_if_fail (identifier != NULL, NULL);

  if (priv->remote != NULL)
    return bg_remote_lookup_task (priv->remote, identifier);
  if (priv->engine == NULL)
    return NULL;

  return bg_engine_lookup_task (priv->engine, identifier);
}

/**
 * bg_task_queue_close:
 * @self: a #BgTaskQueue
 *
 * Stops using the database. When no other queue of this process shares it, every attempt
 * stops (the tasks stay in the database, so the next run carries them on), every pending wait
 * ends with %BG_ERROR_CLOSED, and the database is released once the attempts have ended.
 *
 * Calls after this one fail with %BG_ERROR_CLOSED. Dropping the last reference to the queue
 * closes it as well. Closing twice does nothing.
 */
void
bg_task_queue_close (BgTaskQueue *self)
{
  BgTaskQueuePrivate *priv = bg_task_queue_get_instance_private (self);
  g_autoptr(BgEngine) engine = NULL;
  g_autoptr(BgRemote) remote = NULL;

  g_return_if_fail (BG_IS_TASK_QUEUE (self));

  priv->closed = TRUE;
  remote = g_steal_pointer (&priv->remote);
  if (remote != NULL)
    {
      g_signal_handlers_disconnect_by_data (remote, self);
      bg_remote_close (remote);
    }

  engine = g_steal_pointer (&priv->engine);
  if (engine == NULL)
    return;

  g_signal_handlers_disconnect_by_data (engine, self);
  bg_engine_release (engine);
}
