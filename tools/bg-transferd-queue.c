/* bg-transferd-queue.c: one task database of bg-transferd, as a Queue object on the bus
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A queue is a BgDownloader or BgUploader run in this process (BG_MODE_IN_PROCESS), exported as
 * org.gnome.BgGlib.Transfers1.Queue.  It remembers its clients (the bus names that opened it),
 * tells the service which tasks changed, and asks its clients' prepare-request handlers for the
 * credentials of each attempt.
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "bg-bus-private.h"
#include "bg-downloader.h"
#include "bg-error.h"
#include "bg-transferd.h"
#include "bg-uploader.h"

typedef struct
{
  char  *sender;
  char  *path;      /* its Client object, or "/" */
  guint  watch_id;
} Client;

struct _BgTransferdQueue
{
  BgTransferd           *service;        /* not owned: it outlives its queues' use */
  GDBusConnection       *connection;
  BgTaskKind             kind;
  char                  *key;
  char                  *object_path;
  BgTaskQueue           *queue;
  BgEngine              *engine;
  BgDBusTransfers1Queue *skeleton;
  GPtrArray             *clients;        /* of Client */
  GListModel            *tasks;
  GPtrArray             *mirror;         /* the tasks as the model had them, to see removals */
  GHashTable            *dirty;          /* identifier -> BgTask, or NULL when removed */
  GHashTable            *nudged;         /* identifiers the app was activated for */
  GPtrArray             *restore_waiting; /* of GDBusMethodInvocation */
  gboolean               restoring;
  gboolean               restored;
  gboolean               closed;
};

static void
unref_nullable (gpointer object)
{
  if (object != NULL)
    g_object_unref (object);
}

static void
client_free (gpointer data)
{
  Client *client = data;

  if (client->watch_id != 0)
    g_bus_unwatch_name (client->watch_id);
  g_free (client->sender);
  g_free (client->path);
  g_free (client);
}

/* --- Changes ----------------------------------------------------------------------------- */

static void
queue_mark_dirty (BgTransferdQueue *self,
                  const char       *identifier,
                  BgTask           *task)
{
  g_assert (identifier != NULL);

  g_hash_table_replace (self->dirty, g_strdup (identifier), task ? g_object_ref (task) : NULL);
  bg_transferd_schedule_flush (self->service);
}

static void
task_notify_cb (BgTask     *task,
                GParamSpec *pspec,
                gpointer    user_data)
{
  BgTransferdQueue *self = user_data;

  queue_mark_dirty (self, bg_task_get_identifier (task), task);
}

static void
tasks_changed_cb (GListModel *model,
                  guint       position,
                  guint       removed,
                  guint       added,
                  gpointer    user_data)
{
  BgTransferdQueue *self = user_data;

  g_assert (position + removed <= self->mirror->len);

  for (guint i = position; i < position + removed; i++)
    {
      BgTask *task = g_ptr_array_index (self->mirror, i);

      g_signal_handlers_disconnect_by_func (task, task_notify_cb, self);
      queue_mark_dirty (self, bg_task_get_identifier (task), NULL);
    }
  g_ptr_array_remove_range (self->mirror, position, removed);

  for (guint i = 0; i < added; i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (model, position + i);

      g_signal_connect (task, "notify", G_CALLBACK (task_notify_cb), self);
      g_ptr_array_insert (self->mirror, position + i, g_object_ref (task));
      queue_mark_dirty (self, bg_task_get_identifier (task), task);
    }
}

static void
queue_unwatch_tasks (BgTransferdQueue *self)
{
  if (self->tasks == NULL)
    return;

  g_signal_handlers_disconnect_by_func (self->tasks, tasks_changed_cb, self);
  for (guint i = 0; i < self->mirror->len; i++)
    g_signal_handlers_disconnect_by_func (g_ptr_array_index (self->mirror, i),
                                          task_notify_cb, self);
  g_ptr_array_set_size (self->mirror, 0);
  g_clear_object (&self->tasks);
}

guint
bg_transferd_queue_take_changes (BgTransferdQueue *self,
                                 GVariantBuilder  *builder,
                                 GPtrArray        *unattended)
{
  GHashTableIter iter;
  gpointer key, value;
  guint n = 0;

  g_hash_table_iter_init (&iter, self->dirty);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      const char *identifier = key;
      BgTask *task = value;
      GVariant *snapshot;

      if (task != NULL)
        {
          gboolean collected = self->engine != NULL &&
                               bg_engine_is_collected (self->engine, identifier);

          snapshot = bg_bus_task_to_variant (task, collected);

          /* A result that no client is there to take: the app hears of it once. */
          if (!collected && self->clients->len == 0 && bg_task_get_response (task) != NULL &&
              g_hash_table_add (self->nudged, g_strdup (identifier)))
            g_ptr_array_add (unattended, g_strdup (identifier));
        }
      else
        {
          GVariantDict dict;

          g_variant_dict_init (&dict, NULL);
          g_variant_dict_insert (&dict, "removed", "b", TRUE);
          snapshot = g_variant_dict_end (&dict);
        }
      g_variant_builder_add (builder, "(os@a{sv})", self->object_path, identifier, snapshot);
      n++;
    }
  g_hash_table_remove_all (self->dirty);

  return n;
}

static GVariant *
queue_list (BgTransferdQueue *self)
{
  GVariantBuilder builder;
  guint n = g_list_model_get_n_items (self->tasks);

  g_variant_builder_init (&builder, G_VARIANT_TYPE ("a(sa{sv})"));
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (self->tasks, i);
      const char *identifier = bg_task_get_identifier (task);
      gboolean collected = self->engine != NULL &&
                           bg_engine_is_collected (self->engine, identifier);

      g_variant_builder_add (&builder, "(s@a{sv})", identifier,
                             bg_bus_task_to_variant (task, collected));
    }
  return g_variant_builder_end (&builder);
}

gboolean
bg_transferd_queue_has_unfinished (BgTransferdQueue *self)
{
  guint n;

  if (self->closed || self->tasks == NULL)
    return FALSE;
  if (self->restoring)
    return TRUE;

  n = g_list_model_get_n_items (self->tasks);
  for (guint i = 0; i < n; i++)
    {
      g_autoptr(BgTask) task = g_list_model_get_item (self->tasks, i);
      BgTaskState state = bg_task_get_state (task);

      if (state != BG_TASK_STATE_FINISHED && state != BG_TASK_STATE_CANCELLED)
        return TRUE;
    }
  return FALSE;
}

gboolean
bg_transferd_queue_has_clients (BgTransferdQueue *self)
{
  return !self->closed && self->clients->len > 0;
}
/* --- Clients ----------------------------------------------------------------------------- */

static void
queue_drop_sender (BgTransferdQueue *self,
                   const char       *sender,
                   gboolean          all)
{
  for (guint i = self->clients->len; i > 0; i--)
    {
      Client *client = g_ptr_array_index (self->clients, i - 1);

      if (g_strcmp0 (client->sender, sender) == 0)
        {
          g_ptr_array_remove_index (self->clients, i - 1);
          if (!all)
            break;
        }
    }
  bg_transferd_update_hold (self->service);
}

static void
client_vanished_cb (GDBusConnection *connection,
                    const char      *name,
                    gpointer         user_data)
{
  BgTransferdQueue *self = user_data;

  g_debug ("Client %s left the bus", name);
  queue_drop_sender (self, name, TRUE);
}

void
bg_transferd_queue_add_client (BgTransferdQueue *self,
                               const char       *sender,
                               const char       *client_path)
{
  Client *client;

  g_return_if_fail (self != NULL);
  g_return_if_fail (sender != NULL);
  g_return_if_fail (client_path != NULL);

  client = g_new0 (Client, 1);
  client->sender = g_strdup (sender);
  client->path = g_strdup (client_path);
  client->watch_id = g_bus_watch_name_on_connection (self->connection, sender,
                                                     G_BUS_NAME_WATCHER_FLAGS_NONE, NULL,
                                                     client_vanished_cb, self, NULL);
  g_ptr_array_add (self->clients, client);

  /* Tasks that wait for credentials may get them from this client's handler. */
  if (!g_str_equal (client_path, "/") && self->engine != NULL)
    bg_engine_wake_credentials (self->engine);
  bg_transferd_update_hold (self->service);
}

/* --- prepare-request over the bus -------------------------------------------------------- */

static void
queue_prepare_func (BgEngine        *engine,
                    BgTask          *task,
                    SoupMessage     *msg,
                    BgEnginePrepare *prepare,
                    gpointer         user_data)
{
  BgTransferdQueue *self = user_data;
  g_autoptr(GPtrArray) senders = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);

  /* The clients that have a Client object, in the order they came. */
  for (guint i = 0; i < self->clients->len; i++)
    {
      Client *client = g_ptr_array_index (self->clients, i);

      if (!g_str_equal (client->path, "/"))
        {
          g_ptr_array_add (senders, g_strdup (client->sender));
          g_ptr_array_add (paths, g_strdup (client->path));
        }
    }

  /* The handlers look at the task (its attempts, its wait reason): the snapshot goes first. */
  if (senders->len > 0)
    bg_transferd_flush_now (self->service);
  bg_transferd_prepare_ask (self->connection, self->object_path, bg_task_get_identifier (task),
                            senders, paths, prepare);
}

/* --- Settings ---------------------------------------------------------------------------- */

static const struct
{
  const char *name;
  const char *type;
} known_settings[] = {
  { "max-concurrent", "u" },
  { "stall-timeout", "u" },
  { "max-attempts", "u" },
  { "retry-delay", "u" },
  { "max-retry-delay", "u" },
  { "retry-deadline", "u" },
  { "allow-metered", "b" },
  { "keep-finished", "b" },
  { "paused", "b" },
  { "max-response-size", "t" },
  { "max-bandwidth", "t" },
};

gboolean
bg_transferd_queue_configure (BgTransferdQueue  *self,
                              GVariant          *settings,
                              GError           **error)
{
  GObjectClass *klass;
  const char *names[G_N_ELEMENTS (known_settings)];
  GValue values[G_N_ELEMENTS (known_settings)] = { G_VALUE_INIT, };
  guint n = 0;
  gboolean ok = TRUE;

  g_return_val_if_fail (self != NULL, FALSE);
  g_return_val_if_fail (g_variant_is_of_type (settings, G_VARIANT_TYPE_VARDICT), FALSE);

  klass = G_OBJECT_GET_CLASS (self->queue);
  for (guint i = 0; i < G_N_ELEMENTS (known_settings) && ok; i++)
    {
      g_autoptr(GVariant) value = g_variant_lookup_value (settings, known_settings[i].name, NULL);
      g_auto(GValue) from = G_VALUE_INIT;
      GParamSpec *pspec;

      if (value == NULL)
        continue;
      if (!g_variant_is_of_type (value, G_VARIANT_TYPE (known_settings[i].type)))
        {
          g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                       _("The setting “%s” should be of type “%s”, not “%s”"),
                       known_settings[i].name, known_settings[i].type,
                       g_variant_get_type_string (value));
          ok = FALSE;
          break;
        }
      /* max-response-size is the uploaders' only. */
      pspec = g_object_class_find_property (klass, known_settings[i].name);
      if (pspec == NULL)
        continue;

      g_dbus_gvariant_to_gvalue (value, &from);
      g_value_init (&values[n], pspec->value_type);
      if (!g_value_transform (&from, &values[n]) || g_param_value_validate (pspec, &values[n]))
        {
          g_autofree char *shown = g_variant_print (value, FALSE);

          g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                       _("The value %s of the setting “%s” is out of range"), shown,
                       known_settings[i].name);
          ok = FALSE;
          n++;
          break;
        }
      names[n++] = known_settings[i].name;
    }

  if (ok && n > 0)
    g_object_setv (G_OBJECT (self->queue), n, names, values);
  for (guint i = 0; i < n; i++)
    g_value_unset (&values[i]);
  return ok;
}

/* --- Method handlers --------------------------------------------------------------------- */

static BgEngine *
queue_require_engine (BgTransferdQueue      *self,
                      GDBusMethodInvocation *invocation)
{
  g_autoptr(GError) error = NULL;
  BgEngine *engine = bg_task_queue_require_engine (self->queue, &error);

  if (engine == NULL)
    g_dbus_method_invocation_return_gerror (invocation, error);
  return engine;
}

static gboolean
handle_close_queue (BgDBusTransfers1Queue *skeleton,
                    GDBusMethodInvocation *invocation,
                    BgTransferdQueue      *self)
{
  bg_transferd_touch (self->service);
  queue_drop_sender (self, g_dbus_method_invocation_get_sender (invocation), FALSE);
  bg_dbus_transfers1_queue_complete_close_queue (skeleton, invocation);
  return TRUE;
}

static gboolean
handle_configure (BgDBusTransfers1Queue *skeleton,
                  GDBusMethodInvocation *invocation,
                  GVariant              *settings,
                  BgTransferdQueue      *self)
{
  g_autoptr(GError) error = NULL;

  bg_transferd_touch (self->service);

  if (!bg_transferd_queue_configure (self, settings, &error))
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    bg_dbus_transfers1_queue_complete_configure (skeleton, invocation);
  return TRUE;
}

static void
restore_cb (GObject      *source,
            GAsyncResult *result,
            gpointer      user_data)
{
  g_autoptr(BgTransferdQueue) self = user_data;
  g_autoptr(GPtrArray) waiting = g_steal_pointer (&self->restore_waiting);
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) list = NULL;

  self->restore_waiting = g_ptr_array_new_with_free_func (g_object_unref);
  self->restoring = FALSE;
  self->restored = bg_task_queue_restore_finish (BG_TASK_QUEUE (source), result, &error);
  if (self->restored && self->closed)
    {
      self->restored = FALSE;
      g_set_error (&error, BG_ERROR, BG_ERROR_CLOSED, _("The transfer service is stopping"));
    }
  else if (!self->restored)
    g_warning ("Cannot restore the tasks of %s: %s", self->key, error->message);
  else
    list = g_variant_ref_sink (queue_list (self));

  for (guint i = 0; i < waiting->len; i++)
    {
      GDBusMethodInvocation *invocation = g_ptr_array_index (waiting, i);

      /* Completing takes the invocation's reference. */
      g_object_ref (invocation);
      if (list != NULL)
        g_dbus_method_invocation_return_value (invocation, g_variant_new ("(@a(sa{sv}))", list));
      else
        g_dbus_method_invocation_return_gerror (invocation, error);
    }
  bg_transferd_update_hold (self->service);
}

void
bg_transferd_queue_restore (BgTransferdQueue *self)
{
  g_return_if_fail (self != NULL);

  if (self->restored || self->restoring || self->closed)
    return;
  self->restoring = TRUE;
  bg_task_queue_restore_async (self->queue, NULL, restore_cb, bg_transferd_queue_ref (self));
}

static gboolean
handle_restore (BgDBusTransfers1Queue *skeleton,
                GDBusMethodInvocation *invocation,
                BgTransferdQueue      *self)
{
  bg_transferd_touch (self->service);
  if (queue_require_engine (self, invocation) == NULL)
    return TRUE;
  if (self->restored)
    {
      bg_dbus_transfers1_queue_complete_restore (skeleton, invocation, queue_list (self));
      return TRUE;
    }
  g_ptr_array_add (self->restore_waiting, g_object_ref (invocation));
  bg_transferd_queue_restore (self);
  return TRUE;
}

static gboolean
handle_list (BgDBusTransfers1Queue *skeleton,
             GDBusMethodInvocation *invocation,
             BgTransferdQueue      *self)
{
  bg_transferd_touch (self->service);
  bg_dbus_transfers1_queue_complete_list (skeleton, invocation, queue_list (self));
  return TRUE;
}

typedef struct
{
  BgEngine              *engine;
  GDBusMethodInvocation *invocation;
} SubmitCall;

static void
submit_cb (GObject      *source,
           GAsyncResult *result,
           gpointer      user_data)
{
  SubmitCall *call = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  response = bg_engine_submit_finish_uncollected (call->engine, result, &error);
  if (response == NULL && g_error_matches (error, BG_ERROR, BG_ERROR_CLOSED))
    {
      /* The service is stopping (only that closes a queue): no answer, so that the client
       * sees the service go, as after a crash, and carries on with the next one. */
      g_object_unref (call->invocation);
    }
  else if (response == NULL)
    g_dbus_method_invocation_return_gerror (call->invocation, error);
  else
    {
      const char *identifier = bg_response_get_identifier (response);
      BgTask *task = bg_engine_lookup_task (call->engine, identifier);
      GVariantDict dict;

      /* The task as it finished, so that the client's copy is complete before the call
       * returns, whenever the next Changed comes. */
      g_variant_dict_init (&dict, bg_bus_response_to_variant (response));
      if (task != NULL)
        g_variant_dict_insert_value (&dict, "task",
                                     bg_bus_task_to_variant (task,
                                                             bg_engine_is_collected (call->engine,
                                                                                     identifier)));
      g_dbus_method_invocation_return_value (call->invocation,
                                             g_variant_new ("(@a{sv})",
                                                            g_variant_dict_end (&dict)));
    }
  g_object_unref (call->engine);
  g_free (call);
}

static gboolean
method_is_token (const char *method)
{
  if (method[0] == '\0')
    return FALSE;
  for (const char *p = method; *p != '\0'; p++)
    if (!g_ascii_isalnum (*p) && strchr ("!#$%&'*+-.^_`|~", *p) == NULL)
      return FALSE;
  return TRUE;
}

static gboolean
submit_check (const char  *method,
              const char  *uri,
              GVariant    *headers,
              const char  *path,
              GError     **error)
{
  GVariantIter iter;
  const char *name, *value;

  if (!method_is_token (method))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("“%s” is not a valid HTTP method"), method);
      return FALSE;
    }
  g_variant_iter_init (&iter, headers);
  while (g_variant_iter_next (&iter, "(&s&s)", &name, &value))
    {
      if (!bg_transferd_header_is_acceptable (name, value))
        {
          g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                       _("The header “%s” is not a valid HTTP header"), name);
          return FALSE;
        }
    }
  if (!g_path_is_absolute (path))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The file “%s” is not an absolute path"), path);
      return FALSE;
    }
  return TRUE;
}

static gboolean
handle_submit (BgDBusTransfers1Queue *skeleton,
               GDBusMethodInvocation *invocation,
               const char            *identifier,
               const char            *method,
               const char            *uri,
               GVariant              *headers,
               const char            *path,
               GVariant              *options_v,
               BgTransferdQueue      *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GFile) file = NULL;
  g_autoptr(BgTaskOptions) options = NULL;
  BgEngine *engine;
  SubmitCall *call;

  bg_transferd_touch (self->service);

  engine = queue_require_engine (self, invocation);
  if (engine == NULL)
    return TRUE;

  if (!submit_check (method, uri, headers, path, &error) ||
      (options = bg_bus_options_from_variant (options_v, &error)) == NULL)
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return TRUE;
    }
  msg = soup_message_new (method, uri);
  if (msg == NULL)
    {
      g_dbus_method_invocation_return_error (invocation, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                                             _("“%s” is not a valid HTTP URI"), uri);
      return TRUE;
    }
  bg_bus_headers_from_variant (headers, soup_message_get_request_headers (msg));
  file = g_file_new_for_path (path);

  call = g_new0 (SubmitCall, 1);
  call->engine = g_object_ref (engine);
  call->invocation = invocation;
  bg_engine_submit_async (engine, self->queue, handle_submit, msg, file, identifier, options,
                          NULL, submit_cb, call);
  return TRUE;
}

static gboolean
handle_collect (BgDBusTransfers1Queue *skeleton,
                GDBusMethodInvocation *invocation,
                const char            *identifier,
                BgTransferdQueue      *self)
{
  g_autoptr(GError) error = NULL;
  BgEngine *engine = queue_require_engine (self, invocation);
  BgTask *task;

  bg_transferd_touch (self->service);

  if (engine == NULL)
    return TRUE;
  if (!bg_engine_collect (engine, identifier, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return TRUE;
    }
  /* A task kept as history only changes its "collected" flag. */
  task = bg_task_queue_lookup_task (self->queue, identifier);
  if (task != NULL)
    queue_mark_dirty (self, identifier, task);
  bg_dbus_transfers1_queue_complete_collect (skeleton, invocation);
  return TRUE;
}

static gboolean
handle_cancel (BgDBusTransfers1Queue *skeleton,
               GDBusMethodInvocation *invocation,
               const char            *identifier,
               BgTransferdQueue      *self)
{
  g_autoptr(GError) error = NULL;

  bg_transferd_touch (self->service);

  if (!bg_task_queue_cancel (self->queue, identifier, &error))
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    bg_dbus_transfers1_queue_complete_cancel (skeleton, invocation);
  return TRUE;
}

static gboolean
handle_forget (BgDBusTransfers1Queue *skeleton,
               GDBusMethodInvocation *invocation,
               const char            *identifier,
               BgTransferdQueue      *self)
{
  g_autoptr(GError) error = NULL;

  bg_transferd_touch (self->service);

  if (!bg_task_queue_forget (self->queue, identifier, &error))
    g_dbus_method_invocation_return_gerror (invocation, error);
  else
    bg_dbus_transfers1_queue_complete_forget (skeleton, invocation);
  return TRUE;
}

static gboolean
handle_set_task_options (BgDBusTransfers1Queue *skeleton,
                         GDBusMethodInvocation *invocation,
                         const char            *identifier,
                         GVariant              *options_v,
                         BgTransferdQueue      *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgTaskOptions) options = NULL;
  g_autoptr(GVariant) paused = NULL;
  BgTaskState state;
  BgTask *task;

  bg_transferd_touch (self->service);

  if (queue_require_engine (self, invocation) == NULL)
    return TRUE;

  task = bg_task_queue_lookup_task (self->queue, identifier);
  if (task == NULL)
    {
      g_dbus_method_invocation_return_error (invocation, BG_ERROR, BG_ERROR_NOT_FOUND,
                                             _("There is no task “%s”"), identifier);
      return TRUE;
    }

  options = bg_bus_options_from_variant (options_v, &error);
  paused = g_variant_lookup_value (options_v, "paused", NULL);
  if (options != NULL && paused != NULL && !g_variant_is_of_type (paused, G_VARIANT_TYPE_BOOLEAN))
    g_set_error (&error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                 _("The option “%s” should be of type “%s”"), "paused", "b");
  else if (options != NULL && bg_task_get_kind (task) == BG_TASK_KIND_UPLOAD &&
           bg_task_options_get_expected_sha256 (options) != NULL)
    g_set_error (&error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                 _("The upload “%s” cannot take an expected SHA-256"), identifier);
  if (error != NULL)
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return TRUE;
    }

  /* A finished task takes no more options. */
  state = bg_task_get_state (task);
  if (state != BG_TASK_STATE_FINISHED && state != BG_TASK_STATE_CANCELLED)
    {
#define HAS(key) g_variant_dict_contains (&dict, key)
      GVariantDict dict;

      g_variant_dict_init (&dict, options_v);
      if (HAS ("allow-metered"))
        bg_task_set_allow_metered (task, bg_task_options_get_allow_metered (options));
      if (HAS ("discretionary"))
        bg_task_set_discretionary (task, bg_task_options_get_discretionary (options));
      if (HAS ("priority"))
        bg_task_set_priority (task, bg_task_options_get_priority (options));
      if (HAS ("earliest-start"))
        bg_task_set_earliest_start (task, bg_task_options_get_earliest_start (options));
      if (HAS ("expected-sha256"))
        bg_task_set_expected_sha256 (task, bg_task_options_get_expected_sha256 (options));
      if (HAS ("keep-credentials"))
        bg_task_set_keep_credentials (task, bg_task_options_get_keep_credentials (options));
      if (HAS ("max-bandwidth"))
        bg_task_set_max_bandwidth (task, bg_task_options_get_max_bandwidth (options));
      if (paused != NULL)
        bg_task_set_paused (task, g_variant_get_boolean (paused));
      g_variant_dict_clear (&dict);
#undef HAS
    }
  bg_dbus_transfers1_queue_complete_set_task_options (skeleton, invocation);
  return TRUE;
}

/* --- Life cycle -------------------------------------------------------------------------- */

BgTransferdQueue *
bg_transferd_queue_new (BgTransferd      *service,
                        GDBusConnection  *connection,
                        BgTaskKind        kind,
                        const char       *session_id,
                        const char       *database_path,
                        const char       *key,
                        const char       *object_path,
                        GError          **error)
{
  g_autoptr(BgTransferdQueue) self = NULL;
  GType type = kind == BG_TASK_KIND_UPLOAD ? BG_TYPE_UPLOADER : BG_TYPE_DOWNLOADER;
  BgTaskQueue *queue;

  g_return_val_if_fail (BG_IS_TRANSFERD (service), NULL);
  g_return_val_if_fail (G_IS_DBUS_CONNECTION (connection), NULL);

  queue = g_initable_new (type, NULL, error,
                          "session-id", session_id,
                          "database-path", database_path,
                          "mode", BG_MODE_IN_PROCESS,
                          NULL);
  if (queue == NULL)
    return NULL;

  self = g_atomic_rc_box_new0 (BgTransferdQueue);
  self->service = service;
  self->connection = g_object_ref (connection);
  self->kind = kind;
  self->key = g_strdup (key);
  self->object_path = g_strdup (object_path);
  self->queue = queue;
  self->engine = g_object_ref (bg_task_queue_get_engine (queue));
  self->clients = g_ptr_array_new_with_free_func (client_free);
  self->mirror = g_ptr_array_new_with_free_func (g_object_unref);
  self->dirty = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, unref_nullable);
  self->nudged = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->restore_waiting = g_ptr_array_new_with_free_func (g_object_unref);

  self->tasks = g_object_ref (bg_task_queue_get_tasks (queue));
  tasks_changed_cb (self->tasks, 0, 0, g_list_model_get_n_items (self->tasks), self);
  g_signal_connect (self->tasks, "items-changed", G_CALLBACK (tasks_changed_cb), self);

  bg_engine_set_prepare_func (self->engine, queue_prepare_func, self);

  self->skeleton = bg_dbus_transfers1_queue_skeleton_new ();
#define HANDLE(name, func) g_signal_connect (self->skeleton, name, G_CALLBACK (func), self)
  HANDLE ("handle-close-queue", handle_close_queue);
  HANDLE ("handle-configure", handle_configure);
  HANDLE ("handle-restore", handle_restore);
  HANDLE ("handle-list", handle_list);
  HANDLE ("handle-submit", handle_submit);
  HANDLE ("handle-collect", handle_collect);
  HANDLE ("handle-cancel", handle_cancel);
  HANDLE ("handle-forget", handle_forget);
  HANDLE ("handle-set-task-options", handle_set_task_options);
#undef HANDLE
  if (!g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (self->skeleton), connection,
                                         object_path, error))
    {
      bg_transferd_queue_close (self);
      return NULL;
    }

  return g_steal_pointer (&self);
}

void
bg_transferd_queue_close (BgTransferdQueue *self)
{
  g_return_if_fail (self != NULL);

  if (self->closed)
    return;
  self->closed = TRUE;

  if (g_dbus_interface_skeleton_get_connection (G_DBUS_INTERFACE_SKELETON (self->skeleton)))
    g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (self->skeleton));
  g_signal_handlers_disconnect_by_data (self->skeleton, self);
  g_ptr_array_set_size (self->clients, 0);
  bg_engine_set_prepare_func (self->engine, NULL, NULL);
  queue_unwatch_tasks (self);
  bg_task_queue_close (self->queue);
}

static void
queue_finalize (gpointer data)
{
  BgTransferdQueue *self = data;

  bg_transferd_queue_close (self);
  g_clear_object (&self->skeleton);
  g_clear_object (&self->queue);
  g_clear_object (&self->engine);
  g_clear_object (&self->connection);
  g_clear_pointer (&self->clients, g_ptr_array_unref);
  g_clear_pointer (&self->mirror, g_ptr_array_unref);
  g_clear_pointer (&self->dirty, g_hash_table_unref);
  g_clear_pointer (&self->nudged, g_hash_table_unref);
  g_clear_pointer (&self->restore_waiting, g_ptr_array_unref);
  g_free (self->key);
  g_free (self->object_path);
}

BgTransferdQueue *
bg_transferd_queue_ref (BgTransferdQueue *self)
{
  return g_atomic_rc_box_acquire (self);
}

void
bg_transferd_queue_unref (BgTransferdQueue *self)
{
  g_atomic_rc_box_release_full (self, queue_finalize);
}

const char *
bg_transferd_queue_get_key (BgTransferdQueue *self)
{
  return self->key;
}

const char *
bg_transferd_queue_get_object_path (BgTransferdQueue *self)
{
  return self->object_path;
}
