/* bg-remote.c: a task queue run by the app's transfer service
 *
 * The client keeps a mirror of the service's list of tasks: the service's Restore and List give
 * every task, and its batched Changed signal brings the newest snapshot of those that changed.
 * A download_async() is a Submit call that returns when the task has finished, which may take
 * days; the app's _finish() then confirms with Collect, so that a client that dies in between
 * gets the result again from its next restore.
 *
 * When the service goes away (it was killed, say), a client with calls pending or tasks still
 * going opens the queue again, which starts a new service by D-Bus activation, and sends its
 * pending calls again: they join the tasks, which resume from their last checkpoint.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n-lib.h>
#include <unistd.h>

#include "bg-bus-private.h"
#include "bg-engine-private.h"
#include "bg-error.h"
#include "bg-remote-private.h"
#include "bg-task-list-private.h"
#include "bg-task-private.h"

/* How many times in a row the service may vanish under a pending call before the call fails. */
#define MAX_REOPENS 3
/* How long the client's main loop spends on the service's messages in one turn, at most (it
 * always takes one snapshot or one call): a client that submits a hundred tasks at once gets a
 * Changed and a PrepareRequest for each as they start, and a Changed may list hundreds. */
#define INCOMING_TURN_USEC 2000
/* A service that is stopping refuses to open queues until it is gone: how long to wait. */
#define STOPPING_WAIT_MSEC 100
#define MAX_STOPPING_WAITS 100

typedef struct _Pending Pending;

/* A message from the service, taken in over one or more turns of the main loop, in the order it
 * came. */
typedef struct
{
  GVariant              *changed;     /* Changed's (a(osa{sv})), then its list, or NULL */
  GVariantIter           snapshots;   /* the snapshots not applied yet, once started */
  gboolean               started;
  GPtrArray             *finished;    /* the responses it brought so far */
  GDBusMethodInvocation *prepare;     /* a PrepareRequest, or NULL */
} Incoming;

struct _BgRemote
{
  GObject          parent_instance;

  BgTaskKind       kind;
  GDBusConnection *connection;
  GMainContext    *context;
  char            *bus_name;
  char            *queue_path;      /* NULL while the queue is not open at the service */
  char            *client_path;
  char            *session_id;
  char            *database_path;
  GVariant        *settings;        /* a{sv}: what OpenQueue is given again after a restart */

  BgTaskList      *tasks;
  GHashTable      *by_id;           /* identifier → BgTask, as listed */
  GHashTable      *collecting;      /* identifier → Collect calls not answered yet */
  GHashTable      *setting;         /* identifier → SetTaskOptions calls not answered yet */
  GHashTable      *removing;        /* identifier → Cancel or Forget calls not caught up with */
  GList           *pending;         /* Pending */
  GQueue           incoming;        /* Incoming: the service's messages not taken in yet */
  GSource         *incoming_source;

  guint            changed_id;
  guint            client_id;
  guint            client_name_id;  /* the name under the app id the Client object is reached by */
  guint            owner_id;
  guint            reopens;         /* service restarts since a call last got an answer */
  guint            stopping_waits;
  gboolean         reopening;
  gboolean         restored;        /* the app restored: a new service restores too */
  gboolean         applying;        /* updating tasks from the service: do not echo */
  gboolean         taking_in;       /* in remote_take_in() */
  gboolean         closed;
};

G_DEFINE_FINAL_TYPE (BgRemote, bg_remote, G_TYPE_OBJECT)

enum {
  TASK_FINISHED,
  PREPARE_REQUEST,
  N_SIGNALS
};

static guint signals[N_SIGNALS];

/* The task's result was announced with task-finished (once per task object). */
static GQuark announced_quark;
/* The task was listed by a Submit of this client (the Pending) that the service has not
 * confirmed yet. */
static GQuark placeholder_quark;
/* Its result was collected: it is listed only as history. */
static GQuark collected_quark;

static void remote_reopen (BgRemote *self);
static void remote_catch_up (BgRemote *self);
static gboolean reopen_again_cb (gpointer data);
static void rerestore_reply_cb (GObject      *object,
                                GAsyncResult *result,
                                gpointer      user_data);

/* --- Errors --------------------------------------------------------------------------------- */

/* Whether @error says the service is gone (killed, crashed, or not running any more). */
static gboolean
error_is_service_gone (const GError *error)
{
  return g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_NO_REPLY) ||
         g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_SERVICE_UNKNOWN) ||
         g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_NAME_HAS_NO_OWNER) ||
         g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_OBJECT) ||
         g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_UNKNOWN_METHOD) ||
         g_error_matches (error, G_DBUS_ERROR, G_DBUS_ERROR_DISCONNECTED) ||
         g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CLOSED);
}

/* A D-Bus error as the app should see it: BgError and GIOError codes come through as they were
 * sent; anything else about the bus becomes BG_ERROR_SERVICE. */
static GError *
error_from_bus (GError *error)
{
  if (error->domain == BG_ERROR || error->domain == G_IO_ERROR)
    {
      g_dbus_error_strip_remote_error (error);
      return error;
    }

  if (error->domain == G_DBUS_ERROR || g_dbus_error_is_remote_error (error))
    {
      GError *service_error;

      g_dbus_error_strip_remote_error (error);
      service_error = g_error_new (BG_ERROR, BG_ERROR_SERVICE,
                                   _("The transfer service failed: %s"), error->message);
      g_error_free (error);
      return service_error;
    }

  return error;
}

static GError *
closed_error_new (void)
{
  return g_error_new_literal (BG_ERROR, BG_ERROR_CLOSED, _("The task queue was closed"));
}

/* --- The mirrored list ---------------------------------------------------------------------- */

static void
announce (BgRemote   *self,
          BgTask     *task,
          BgResponse *response)
{
  if (g_object_get_qdata (G_OBJECT (task), announced_quark) != NULL)
    return;

  g_object_set_qdata (G_OBJECT (task), announced_quark, GINT_TO_POINTER (TRUE));
  g_signal_emit (self, signals[TASK_FINISHED], 0, task, response);
}

/* The options an app may change on a listed task, by their names in snapshots. */
static const char * const task_options[] = {
  "allow-metered", "discretionary", "priority", "earliest-start", "expected-sha256",
  "keep-credentials", "paused", "max-bandwidth", NULL,
};

/* A call about one task (Collect, SetTaskOptions, Cancel, Forget) that the service has not
 * answered yet.  The snapshots the service sends until it answers may not show the call's
 * effect yet. */
typedef struct
{
  GWeakRef    remote;
  GHashTable *calls;       /* the remote's count of such calls, by identifier */
  char       *identifier;
} TaskCall;

static gpointer
task_call_new (BgRemote   *self,
               GHashTable *calls,
               const char *identifier)
{
  TaskCall *call = g_new0 (TaskCall, 1);
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (calls, identifier));

  g_weak_ref_init (&call->remote, self);
  call->calls = calls;
  call->identifier = g_strdup (identifier);
  g_hash_table_insert (calls, g_strdup (identifier), GUINT_TO_POINTER (n + 1));

  return call;
}

static void remote_catch_up (BgRemote *self);

static void
task_call_answered (TaskCall *call)
{
  g_autoptr(BgRemote) self = g_weak_ref_get (&call->remote);

  if (self != NULL)
    {
      guint n = GPOINTER_TO_UINT (g_hash_table_lookup (call->calls, call->identifier));

      /* The snapshots sent before the answer go first, while they are known to be older. */
      remote_catch_up (self);
      if (n > 1)
        g_hash_table_insert (call->calls, g_strdup (call->identifier),
                             GUINT_TO_POINTER (n - 1));
      else
        g_hash_table_remove (call->calls, call->identifier);
    }

  g_weak_ref_clear (&call->remote);
  g_free (call->identifier);
  g_free (call);
}

/* The answer to a TaskCall's call whose error, if any, is not told: an option the service
 * refused stays as the app set it until the task's next snapshot, and a ping is only a
 * marker. */
static void
task_call_reply_cb (GObject      *object,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(GVariant) reply = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (object), result, NULL);
  task_call_answered (user_data);
}

/* The app changed one of the task's options: tell the service. */
static void
task_notify_cb (BgTask     *task,
                GParamSpec *pspec,
                BgRemote   *self)
{
  g_autoptr(GVariant) snapshot = NULL;
  g_autoptr(GVariant) value = NULL;
  GVariantBuilder builder;

  if (self->applying || self->queue_path == NULL ||
      !g_strv_contains (task_options, pspec->name))
    return;

  /* The snapshot has each option in the form the service takes. */
  snapshot = g_variant_ref_sink (bg_bus_task_to_variant (task, FALSE));
  g_variant_builder_init (&builder, G_VARIANT_TYPE_VARDICT);
  value = g_variant_lookup_value (snapshot, pspec->name, NULL);
  if (value != NULL)
    g_variant_builder_add (&builder, "{sv}", pspec->name, value);
  else if (g_str_equal (pspec->name, "expected-sha256"))
    g_variant_builder_add (&builder, "{sv}", pspec->name, g_variant_new_string (""));

  g_dbus_connection_call (self->connection, self->bus_name, self->queue_path,
                          BG_BUS_QUEUE_INTERFACE, "SetTaskOptions",
                          g_variant_new ("(sa{sv})", bg_task_get_identifier (task), &builder),
                          NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, task_call_reply_cb,
                          task_call_new (self, self->setting, bg_task_get_identifier (task)));
}

static gboolean
remote_keeps_finished (BgRemote *self)
{
  gboolean keep = TRUE;

  g_variant_lookup (self->settings, "keep-finished", "b", &keep);
  return keep;
}

/* The task's result was collected: it is only listed, as history. */
static void
remote_mark_collected (BgTask *task)
{
  g_object_set_qdata (G_OBJECT (task), announced_quark, GINT_TO_POINTER (TRUE));
  g_object_set_qdata (G_OBJECT (task), collected_quark, GINT_TO_POINTER (TRUE));
}

static BgTask *
remote_add_task (BgRemote     *self,
                 const char   *identifier,
                 GVariantDict *snapshot,
                 GPtrArray    *batch)
{
  BgTask *task;

  self->applying = TRUE;
  task = bg_bus_task_new_from_dict (self->kind, identifier, snapshot);
  self->applying = FALSE;
  if (bg_bus_snapshot_dict_flag (snapshot, "collected"))
    remote_mark_collected (task);

  g_signal_connect_object (task, "notify", G_CALLBACK (task_notify_cb), self, 0);
  g_hash_table_insert (self->by_id, g_strdup (identifier), task);
  if (batch != NULL)
    g_ptr_array_add (batch, g_object_ref (task));
  else
    bg_task_list_append (self->tasks, task);

  return task;
}

static void
remote_remove_task (BgRemote   *self,
                    const char *identifier)
{
  BgTask *task = g_hash_table_lookup (self->by_id, identifier);

  if (task == NULL)
    return;

  g_signal_handlers_disconnect_by_data (task, self);
  bg_task_list_remove (self->tasks, task);
  g_hash_table_remove (self->by_id, identifier);
}

/* Brings the listed task up to date, or lists it; returns the response it newly reached. */
static BgResponse *
remote_apply (BgRemote     *self,
              const char   *identifier,
              GVariantDict *snapshot,
              GPtrArray    *batch)
{
  BgTask *task = g_hash_table_lookup (self->by_id, identifier);
  BgResponse *response = NULL;

  /* A collected task listed as history gives way to a new task of the same identifier. */
  if (task != NULL && g_object_get_qdata (G_OBJECT (task), collected_quark) != NULL &&
      !bg_bus_snapshot_dict_flag (snapshot, "collected"))
    {
      remote_remove_task (self, identifier);
      task = NULL;
    }

  if (task == NULL)
    {
      task = remote_add_task (self, identifier, snapshot, batch);
      response = bg_task_get_response (task);
      return response != NULL && !bg_bus_snapshot_dict_flag (snapshot, "collected")
        ? g_object_ref (response) : NULL;
    }

  /* The app's newer options stand until the service has them. */
  if (g_hash_table_contains (self->setting, identifier))
    for (guint i = 0; task_options[i] != NULL; i++)
      g_variant_dict_remove (snapshot, task_options[i]);

  self->applying = TRUE;
  bg_bus_task_update_dict (task, snapshot, &response);
  self->applying = FALSE;
  g_object_set_qdata (G_OBJECT (task), placeholder_quark, NULL);

  if (bg_bus_snapshot_dict_flag (snapshot, "collected"))
    remote_mark_collected (task);

  return response;
}

/* A snapshot the service took before it had the Collect of the task's result, which this client
 * sent: the task it shows is the one collected here, not a new one of the same identifier,
 * whose snapshots can only come after the Collect's answer.  Likewise a snapshot of a task this
 * client cancelled or forgot, sent before the service had the call. */
static gboolean
remote_snapshot_is_stale (BgRemote     *self,
                          const char   *identifier,
                          GVariantDict *snapshot)
{
  return (g_hash_table_contains (self->collecting, identifier) &&
          !bg_bus_snapshot_dict_flag (snapshot, "collected")) ||
         g_hash_table_contains (self->removing, identifier);
}

/* One snapshot of a Changed. */
static void
changed_apply (BgRemote   *self,
               const char *queue,
               const char *identifier,
               GVariant   *snapshot,
               GPtrArray  *finished)
{
  GVariantDict dict;

  if (!g_str_equal (queue, self->queue_path))
    return;

  g_variant_dict_init (&dict, snapshot);
  if (bg_bus_snapshot_dict_flag (&dict, "removed"))
    remote_remove_task (self, identifier);
  else if (remote_snapshot_is_stale (self, identifier, &dict))
    ;
  /* Another client's history, as in remote_take_listing(); and, as in process, the tasks of
   * earlier runs (or of other processes) are listed once restored. */
  else if (!g_hash_table_contains (self->by_id, identifier) &&
           (bg_bus_snapshot_dict_flag (&dict, "collected") || !self->restored))
    ;
  else
    {
      BgResponse *response = remote_apply (self, identifier, &dict, NULL);

      if (response != NULL)
        g_ptr_array_add (finished, response);
    }
  g_variant_dict_clear (&dict);
}

/* Announced once the whole Changed is in, so that a handler sees the list as it is. */
static void
changed_announce (BgRemote  *self,
                  GPtrArray *finished)
{
  for (guint i = 0; i < finished->len; i++)
    {
      BgResponse *response = g_ptr_array_index (finished, i);
      BgTask *task = g_hash_table_lookup (self->by_id, bg_response_get_identifier (response));

      if (task != NULL && bg_task_get_response (task) == response)
        announce (self, task, response);
    }
}

/* Takes in a whole listing (Restore or List), in one items-changed; returns the tasks with a
 * result no one collected yet. */
static GPtrArray *
remote_take_listing (BgRemote *self,
                     GVariant *listing)
{
  g_autoptr(GPtrArray) batch = g_ptr_array_new_with_free_func (g_object_unref);
  GPtrArray *finished = g_ptr_array_new_with_free_func (g_object_unref);
  GVariantIter iter;
  const char *identifier;
  GVariant *snapshot;

  g_variant_iter_init (&iter, listing);
  while (g_variant_iter_next (&iter, "(&s@a{sv})", &identifier, &snapshot))
    {
      g_autoptr(BgResponse) response = NULL;
      GVariantDict dict;
      BgTask *task;

      g_variant_dict_init (&dict, snapshot);
      g_variant_unref (snapshot);

      /* History belongs to the run that collected the result, as in process: another client's
       * collected tasks are not listed here. */
      if ((bg_bus_snapshot_dict_flag (&dict, "collected") &&
           !g_hash_table_contains (self->by_id, identifier)) ||
          remote_snapshot_is_stale (self, identifier, &dict))
        {
          g_variant_dict_clear (&dict);
          continue;
        }

      response = remote_apply (self, identifier, &dict, batch);
      task = g_hash_table_lookup (self->by_id, identifier);

      if (task != NULL && bg_task_get_response (task) != NULL &&
          !bg_bus_snapshot_dict_flag (&dict, "collected"))
        g_ptr_array_add (finished, g_object_ref (task));
      g_variant_dict_clear (&dict);
    }
  bg_task_list_append_many (self->tasks, batch);

  return finished;
}

/* Announces the results of @finished (from remote_take_listing()) not announced yet. */
static void
remote_announce_all (BgRemote  *self,
                     GPtrArray *finished)
{
  for (guint i = 0; i < finished->len; i++)
    {
      BgTask *task = g_ptr_array_index (finished, i);

      if (g_hash_table_lookup (self->by_id, bg_task_get_identifier (task)) == task)
        announce (self, task, bg_task_get_response (task));
    }
}

/* --- Asking the app's prepare-request handlers ---------------------------------------------- */

static gboolean
message_differs (SoupMessage *msg,
                 const char  *uri,
                 GVariant    *headers)
{
  g_autofree char *now_uri = g_uri_to_string (soup_message_get_uri (msg));
  g_autoptr(GVariant) now_headers =
    g_variant_ref_sink (bg_bus_headers_to_variant (soup_message_get_request_headers (msg)));

  return g_strcmp0 (now_uri, uri) != 0 || !g_variant_equal (now_headers, headers);
}

/* Answers a PrepareRequest: the service's snapshot of the task came before it. */
static void
prepare_answer (BgRemote              *self,
                GDBusMethodInvocation *invocation)
{
  GVariant *parameters = g_dbus_method_invocation_get_parameters (invocation);
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GVariant) headers = NULL;
  g_autoptr(BgTask) scratch = NULL;
  g_autofree char *new_uri = NULL;
  const char *queue, *identifier, *method, *uri;
  gboolean handled;
  BgTask *task;

  g_variant_get (parameters, "(&o&s&s&s@a(ss))", &queue, &identifier, &method, &uri, &headers);

  msg = soup_message_new (method, uri);
  if (msg == NULL || self->closed)
    {
      g_dbus_method_invocation_return_value (invocation,
                                             g_variant_new ("(bs@a(ss))", FALSE, uri, headers));
      return;
    }
  bg_bus_headers_from_variant (headers, soup_message_get_request_headers (msg));

  task = g_hash_table_lookup (self->by_id, identifier);
  if (task == NULL)
    task = scratch = bg_task_new (self->kind, identifier, uri, NULL);

  g_signal_emit (self, signals[PREPARE_REQUEST], 0, task, msg);

  handled = message_differs (msg, uri, headers);
  new_uri = g_uri_to_string (soup_message_get_uri (msg));
  g_dbus_method_invocation_return_value (
    invocation,
    g_variant_new ("(bs@a(ss))", handled, new_uri,
                   bg_bus_headers_to_variant (soup_message_get_request_headers (msg))));
}

/* --- Taking in the service's messages ------------------------------------------------------- */

static void
incoming_free (Incoming *incoming)
{
  g_clear_pointer (&incoming->changed, g_variant_unref);
  g_clear_pointer (&incoming->finished, g_ptr_array_unref);
  /* A call is answered (which takes the invocation) before. */
  g_assert (incoming->prepare == NULL);
  g_free (incoming);
}

/* Answers the calls still queued with "not handled", and drops the rest: the remote is closed. */
static void
incoming_clear (BgRemote *self)
{
  while (!g_queue_is_empty (&self->incoming))
    {
      Incoming *incoming = g_queue_pop_head (&self->incoming);

      if (incoming->prepare != NULL)
        prepare_answer (self, g_steal_pointer (&incoming->prepare));
      incoming_free (incoming);
    }
}

/* Takes in the service's messages in the order they came, until @deadline (monotonic time, or
 * -1 for all of them); returns whether some are left.  A Changed that lists many tasks may be
 * taken in over several turns: its snapshots are applied in order, and the results it brought
 * are announced once it is all in. */
static gboolean
remote_take_in (BgRemote *self,
                gint64    deadline)
{
  /* A handler called from here that calls the remote sees what is in so far, as it would in
   * the middle of one Changed. */
  if (self->taking_in)
    return !g_queue_is_empty (&self->incoming);

  self->taking_in = TRUE;
  while (!g_queue_is_empty (&self->incoming))
    {
      Incoming *incoming = g_queue_peek_head (&self->incoming);
      const char *queue, *identifier;
      GVariant *snapshot;

      if (incoming->prepare != NULL)
        {
          g_queue_pop_head (&self->incoming);
          prepare_answer (self, g_steal_pointer (&incoming->prepare));
          incoming_free (incoming);
        }
      else
        {
          if (!incoming->started)
            {
              /* The iterator needs the list for as long as it runs. */
              GVariant *list = g_variant_get_child_value (incoming->changed, 0);

              g_variant_unref (incoming->changed);
              incoming->changed = list;
              g_variant_iter_init (&incoming->snapshots, list);
              incoming->finished = g_ptr_array_new_with_free_func (g_object_unref);
              incoming->started = TRUE;
            }
          if (g_variant_iter_next (&incoming->snapshots, "(&o&s@a{sv})", &queue, &identifier,
                                   &snapshot))
            {
              /* The queue was closed at a service that went away since: its snapshots are
               * old news. */
              if (self->queue_path != NULL)
                changed_apply (self, queue, identifier, snapshot, incoming->finished);
              g_variant_unref (snapshot);
            }
          else
            {
              g_queue_pop_head (&self->incoming);
              changed_announce (self, incoming->finished);
              incoming_free (incoming);
            }
        }

      /* A handler closed the remote. */
      if (self->closed)
        break;
      if (deadline >= 0 && g_get_monotonic_time () >= deadline)
        break;
    }
  self->taking_in = FALSE;

  if (self->closed)
    incoming_clear (self);

  return !g_queue_is_empty (&self->incoming);
}

static gboolean
incoming_cb (gpointer user_data)
{
  /* A handler may drop the app's last reference. */
  g_autoptr(BgRemote) self = g_object_ref (user_data);

  if (remote_take_in (self, g_get_monotonic_time () + INCOMING_TURN_USEC))
    return G_SOURCE_CONTINUE;

  g_clear_pointer (&self->incoming_source, g_source_unref);
  return G_SOURCE_REMOVE;
}

static void
remote_push_incoming (BgRemote *self,
                      Incoming *incoming)
{
  g_queue_push_tail (&self->incoming, incoming);
  if (self->incoming_source != NULL)
    return;

  self->incoming_source = g_idle_source_new ();
  g_source_set_priority (self->incoming_source, G_PRIORITY_DEFAULT);
  g_source_set_callback (self->incoming_source, incoming_cb, self, NULL);
  g_source_set_static_name (self->incoming_source, "[bg] remote changes");
  g_source_attach (self->incoming_source, self->context);
}

/* Brings the tasks up to date with everything the service sent so far: anything else from the
 * service (a reply) came after it, and a call from the app sees the tasks as they are. */
static void
remote_catch_up (BgRemote *self)
{
  remote_take_in (self, -1);
}

/* Changed, and the PrepareRequest calls, which follow a task's snapshot, are queued in the order
 * they came and taken in a little at a time, so that a burst of them (a client that submits a
 * hundred tasks gets both for each as they start) does not hold the app's main loop. */
static void
changed_cb (GDBusConnection *connection,
            const char      *sender,
            const char      *object_path,
            const char      *interface,
            const char      *signal,
            GVariant        *parameters,
            gpointer         user_data)
{
  BgRemote *self = user_data;
  Incoming *incoming;

  if (self->queue_path == NULL || self->closed ||
      !g_variant_is_of_type (parameters, G_VARIANT_TYPE ("(a(osa{sv}))")))
    return;

  incoming = g_new0 (Incoming, 1);
  incoming->changed = g_variant_ref (parameters);
  remote_push_incoming (self, incoming);
}

static void
client_method_call (GDBusConnection       *connection,
                    const char            *sender,
                    const char            *object_path,
                    const char            *interface_name,
                    const char            *method_name,
                    GVariant              *parameters,
                    GDBusMethodInvocation *invocation,
                    gpointer               user_data)
{
  BgRemote *self = user_data;
  Incoming *incoming;

  if (!g_str_equal (method_name, "PrepareRequest") ||
      g_strcmp0 (sender, g_dbus_connection_get_unique_name (connection)) == 0)
    {
      g_dbus_method_invocation_return_error (invocation, G_DBUS_ERROR,
                                             G_DBUS_ERROR_UNKNOWN_METHOD,
                                             "No method %s", method_name);
      return;
    }

  if (self->closed)
    {
      prepare_answer (self, invocation);
      return;
    }

  /* Answered after the snapshots that came before it. */
  incoming = g_new0 (Incoming, 1);
  incoming->prepare = invocation;
  remote_push_incoming (self, incoming);
}

static const char client_xml[] =
  "<node><interface name='" BG_BUS_CLIENT_INTERFACE "'>"
  "<method name='PrepareRequest'>"
  "<arg name='queue' type='o' direction='in'/>"
  "<arg name='identifier' type='s' direction='in'/>"
  "<arg name='method' type='s' direction='in'/>"
  "<arg name='uri' type='s' direction='in'/>"
  "<arg name='headers' type='a(ss)' direction='in'/>"
  "<arg name='handled' type='b' direction='out'/>"
  "<arg name='new_uri' type='s' direction='out'/>"
  "<arg name='new_headers' type='a(ss)' direction='out'/>"
  "</method></interface></node>";

static const GDBusInterfaceVTable client_vtable = { client_method_call, NULL, NULL, { 0 } };

/* --- Opening -------------------------------------------------------------------------------- */

static GVariant *
open_parameters (BgRemote *self)
{
  return g_variant_new ("(sss@a{sv}o)", bg_bus_kind_to_string (self->kind),
                        self->session_id ? self->session_id : "",
                        self->database_path ? self->database_path : "",
                        self->settings, self->client_path);
}

static void
service_vanished_cb (GDBusConnection *connection,
                     const char      *name,
                     gpointer         user_data)
{
  BgRemote *self = user_data;
  gboolean going = self->pending != NULL;
  GHashTableIter iter;
  gpointer value;

  /* Opening again already (a pending call saw the service go first). */
  if (self->reopening || self->closed)
    return;

  remote_catch_up (self);

  /* The queue object died with the service. */
  g_clear_pointer (&self->queue_path, g_free);

  g_hash_table_iter_init (&iter, self->by_id);
  while (!going && g_hash_table_iter_next (&iter, NULL, &value))
    going = bg_task_get_state (value) != BG_TASK_STATE_FINISHED;

  /* Someone is waiting, or tasks were going: start the service again, which carries them on. */
  if (going)
    remote_reopen (self);
}

/* Everything but the call itself: the remote is set up for @queue_path on @connection. */
static gboolean
remote_setup (BgRemote  *self,
              GError   **error)
{
  static guint64 serial;
  g_autoptr(GDBusNodeInfo) info = NULL;
  g_autofree char *client_name = NULL;
  guint64 n;

  info = g_dbus_node_info_new_for_xml (client_xml, error);
  if (info == NULL)
    return FALSE;

  n = (guint64) g_atomic_pointer_add (&serial, 1);
  self->client_path = g_strdup_printf ("%s/%" G_GUINT64_FORMAT, BG_BUS_CLIENT_PATH, n);
  self->client_id = g_dbus_connection_register_object (self->connection, self->client_path,
                                                       info->interfaces[0], &client_vtable,
                                                       self, NULL, error);
  if (self->client_id == 0)
    return FALSE;

  /* Inside a Flatpak sandbox the bus proxy lets the service call only peers that own a name it
   * may talk to, and it may talk to the names under the app id.  The name is asked for before
   * OpenQueue goes out on the same connection, so the service knows the client by then. */
  client_name = g_strdup_printf ("%s.Client.c%" G_GUINT64_FORMAT "_%" G_GUINT64_FORMAT, self->bus_name,
                                 (guint64) getpid (), n);
  self->client_name_id = g_bus_own_name_on_connection (self->connection, client_name,
                                                       G_BUS_NAME_OWNER_FLAGS_DO_NOT_QUEUE,
                                                       NULL, NULL, NULL, NULL);

  self->changed_id =
    g_dbus_connection_signal_subscribe (self->connection, self->bus_name, BG_BUS_INTERFACE,
                                        "Changed", BG_BUS_OBJECT_PATH, NULL,
                                        G_DBUS_SIGNAL_FLAGS_NONE, changed_cb, self, NULL);
  return TRUE;
}

static BgRemote *
remote_new (BgTaskKind    kind,
            const char   *app_id,
            const char   *session_id,
            const char   *database_path,
            GVariant     *settings,
            GError      **error)
{
  g_autoptr(BgRemote) self = NULL;
  g_autofree char *bus_name = NULL;

  bg_bus_ensure_error_domain ();

  bus_name = bg_bus_name_for_app_id (app_id, error);
  if (bus_name == NULL)
    return NULL;

  self = g_object_new (BG_TYPE_REMOTE, NULL);
  self->kind = kind;
  self->bus_name = g_steal_pointer (&bus_name);
  self->session_id = g_strdup (session_id);
  /* The service runs in a folder of its own: a relative path is this process's. */
  self->database_path = database_path ? g_canonicalize_filename (database_path, NULL) : NULL;
  self->settings = settings ? g_variant_ref_sink (settings)
                            : g_variant_ref_sink (g_variant_new ("a{sv}", NULL));
  self->context = g_main_context_ref_thread_default ();

  return g_steal_pointer (&self);
}

/* The queue is open at the service: @reply is OpenQueue's. */
static void
remote_opened (BgRemote *self,
               GVariant *reply)
{
  g_variant_get (reply, "(o)", &self->queue_path);
  if (self->owner_id == 0)
    self->owner_id = g_bus_watch_name_on_connection (self->connection, self->bus_name,
                                                     G_BUS_NAME_WATCHER_FLAGS_NONE,
                                                     NULL, service_vanished_cb, self, NULL);
}

/* OpenQueue, blocking: the queue is open when it returns TRUE. */
static gboolean
remote_open_queue_sync (BgRemote      *self,
                        GCancellable  *cancellable,
                        GError       **error)
{
  g_autoptr(GVariant) reply = NULL;
  GError *local_error = NULL;

  reply = g_dbus_connection_call_sync (self->connection, self->bus_name, BG_BUS_OBJECT_PATH,
                                       BG_BUS_INTERFACE, "OpenQueue", open_parameters (self),
                                       G_VARIANT_TYPE ("(o)"), G_DBUS_CALL_FLAGS_NONE, -1,
                                       cancellable, &local_error);
  if (reply == NULL)
    {
      g_propagate_error (error, error_from_bus (local_error));
      return FALSE;
    }

  remote_opened (self, reply);
  return TRUE;
}

/* OpenQueue, with the reply to @callback. */
static void
remote_open_queue_async (BgRemote            *self,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_dbus_connection_call (self->connection, self->bus_name, BG_BUS_OBJECT_PATH,
                          BG_BUS_INTERFACE, "OpenQueue", open_parameters (self),
                          G_VARIANT_TYPE ("(o)"), G_DBUS_CALL_FLAGS_NONE, -1, cancellable,
                          callback, user_data);
}

BgRemote *
bg_remote_open (BgTaskKind     kind,
                const char    *app_id,
                const char    *session_id,
                const char    *database_path,
                GVariant      *settings,
                GCancellable  *cancellable,
                GError       **error)
{
  g_autoptr(BgRemote) self = NULL;
  g_autoptr(GError) local_error = NULL;

  self = remote_new (kind, app_id, session_id, database_path, settings, error);
  if (self == NULL)
    return NULL;

  self->connection = g_bus_get_sync (G_BUS_TYPE_SESSION, cancellable, &local_error);
  if (self->connection == NULL || !remote_setup (self, &local_error))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_SERVICE,
                   _("Cannot reach the session bus for the transfer service: %s"),
                   local_error->message);
      return NULL;
    }

  if (!remote_open_queue_sync (self, cancellable, error))
    return NULL;

  return g_steal_pointer (&self);
}

static void
open_reply_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  BgRemote *self = g_task_get_task_data (task);
  g_autoptr(GVariant) reply = NULL;
  GError *error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (object), result, &error);
  if (reply == NULL)
    {
      g_task_return_error (task, error_from_bus (error));
      return;
    }

  remote_opened (self, reply);
  g_task_return_pointer (task, g_object_ref (self), g_object_unref);
}

static void
open_bus_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  BgRemote *self = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;

  self->connection = g_bus_get_finish (result, &error);
  if (self->connection == NULL || !remote_setup (self, &error))
    {
      g_task_return_new_error (task, BG_ERROR, BG_ERROR_SERVICE,
                               _("Cannot reach the session bus for the transfer service: %s"),
                               error->message);
      return;
    }

  remote_open_queue_async (self, g_task_get_cancellable (task), open_reply_cb,
                           g_object_ref (task));
}

void
bg_remote_open_async (BgTaskKind           kind,
                      const char          *app_id,
                      const char          *session_id,
                      const char          *database_path,
                      GVariant            *settings,
                      GCancellable        *cancellable,
                      GAsyncReadyCallback  callback,
                      gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  g_autoptr(BgRemote) self = NULL;
  GError *error = NULL;

  g_task_set_source_tag (task, bg_remote_open_async);

  self = remote_new (kind, app_id, session_id, database_path, settings, &error);
  if (self == NULL)
    {
      g_task_return_error (task, error);
      return;
    }

  g_task_set_task_data (task, g_steal_pointer (&self), g_object_unref);
  g_bus_get (G_BUS_TYPE_SESSION, cancellable, open_bus_cb, g_steal_pointer (&task));
}

BgRemote *
bg_remote_open_finish (GAsyncResult  *result,
                       GError       **error)
{
  return g_task_propagate_pointer (G_TASK (result), error);
}

gboolean
bg_remote_service_available (const char *app_id)
{
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(GVariant) owner = NULL;
  g_autoptr(GVariant) names = NULL;
  g_autofree char *bus_name = NULL;
  g_autofree const char **activatable = NULL;

  bus_name = bg_bus_name_for_app_id (app_id, NULL);
  if (bus_name == NULL)
    return FALSE;

  connection = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, NULL);
  if (connection == NULL)
    return FALSE;

  owner = g_dbus_connection_call_sync (connection, "org.freedesktop.DBus",
                                       "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "NameHasOwner", g_variant_new ("(s)", bus_name),
                                       G_VARIANT_TYPE ("(b)"), G_DBUS_CALL_FLAGS_NONE, -1,
                                       NULL, NULL);
  if (owner != NULL)
    {
      gboolean has_owner;

      g_variant_get (owner, "(b)", &has_owner);
      if (has_owner)
        return TRUE;
    }

  names = g_dbus_connection_call_sync (connection, "org.freedesktop.DBus",
                                       "/org/freedesktop/DBus", "org.freedesktop.DBus",
                                       "ListActivatableNames", NULL, G_VARIANT_TYPE ("(as)"),
                                       G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL);
  if (names == NULL)
    return FALSE;

  g_variant_get (names, "(^a&s)", &activatable);
  return g_strv_contains (activatable, bus_name);
}

/* --- Submitting ----------------------------------------------------------------------------- */

struct _Pending
{
  BgRemote     *remote;           /* weak: cleared when the remote closes */
  GTask        *task;
  char         *identifier;
  GFile        *file;
  GVariant     *parameters;       /* Submit's, kept to send again after a restart */
  GCancellable *call_cancellable;
  GCancellable *app_cancellable;
  gulong        cancelled_id;
};

static void
pending_free (Pending *pending)
{
  if (pending->app_cancellable != NULL)
    g_cancellable_disconnect (pending->app_cancellable, pending->cancelled_id);
  g_clear_object (&pending->app_cancellable);
  g_clear_object (&pending->call_cancellable);
  g_clear_object (&pending->task);
  g_clear_object (&pending->file);
  g_clear_pointer (&pending->parameters, g_variant_unref);
  g_free (pending->identifier);
  g_free (pending);
}

/* Ends the call with @error (owned) or @response, once. */
static void
pending_return (Pending    *pending,
                BgResponse *response,
                GError     *error)
{
  if (pending->remote != NULL)
    pending->remote->pending = g_list_remove (pending->remote->pending, pending);
  pending->remote = NULL;

  if (error != NULL)
    g_task_return_error (pending->task, error);
  else
    g_task_return_pointer (pending->task, g_object_ref (response), g_object_unref);
}

static void pending_send (Pending *pending);

static void
submit_reply_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Pending *pending = user_data;
  BgRemote *self = pending->remote;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) response_v = NULL;
  g_autoptr(BgResponse) response = NULL;
  g_autoptr(BgResponse) applied = NULL;
  g_autoptr(GVariant) task_v = NULL;
  GError *error = NULL;
  BgTask *task;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (object), result, &error);

  /* Closed, or the app stopped waiting: the call has been answered already. */
  if (self == NULL)
    {
      g_clear_error (&error);
      pending_free (pending);
      return;
    }

  /* The service's snapshots of the task came before its answer. */
  remote_catch_up (self);

  if (reply == NULL)
    {
      if (error_is_service_gone (error) && self->reopens < MAX_REOPENS)
        {
          /* Sent again once the queue is open at a new service (remote_reopen()). */
          g_clear_error (&error);
          g_clear_object (&pending->call_cancellable);
          if (!self->reopening)
            {
              g_clear_pointer (&self->queue_path, g_free);
              remote_reopen (self);
            }
          return;
        }
      /* A task listed only because of this call goes again, as it never existed. */
      task = g_hash_table_lookup (self->by_id, pending->identifier);
      if (task != NULL && g_object_get_qdata (G_OBJECT (task), placeholder_quark) == pending)
        remote_remove_task (self, pending->identifier);
      pending_return (pending, NULL, error_from_bus (error));
      pending_free (pending);
      return;
    }

  self->reopens = 0;
  g_variant_get (reply, "(@a{sv})", &response_v);

  /* The task's final snapshot first, so that its progress and state are complete. */
  task_v = g_variant_lookup_value (response_v, "task", G_VARIANT_TYPE_VARDICT);
  task = g_hash_table_lookup (self->by_id, pending->identifier);
  if (task_v != NULL && task != NULL)
    {
      GVariantDict dict;

      g_variant_dict_init (&dict, task_v);
      applied = remote_apply (self, pending->identifier, &dict, NULL);
      g_variant_dict_clear (&dict);
    }

  /* The listed task and the _finish share one response, as in process. */
  task = g_hash_table_lookup (self->by_id, pending->identifier);
  if (task != NULL && bg_task_get_response (task) != NULL)
    response = g_object_ref (bg_task_get_response (task));
  else
    {
      response = bg_bus_response_from_variant (response_v, pending->identifier, pending->file);
      if (task != NULL)
        {
          self->applying = TRUE;
          bg_task_set_response (task, response);
          bg_task_set_state (task, BG_TASK_STATE_FINISHED);
          self->applying = FALSE;
        }
    }
  if (task != NULL)
    announce (self, task, response);

  pending_return (pending, response, NULL);
  pending_free (pending);
}

static void
pending_send (Pending *pending)
{
  BgRemote *self = pending->remote;

  g_assert (self != NULL && self->queue_path != NULL);

  g_clear_object (&pending->call_cancellable);
  pending->call_cancellable = g_cancellable_new ();
  g_dbus_connection_call (self->connection, self->bus_name, self->queue_path,
                          BG_BUS_QUEUE_INTERFACE, "Submit", pending->parameters,
                          G_VARIANT_TYPE ("(a{sv})"), G_DBUS_CALL_FLAGS_NONE, G_MAXINT,
                          pending->call_cancellable, submit_reply_cb, pending);
}

static gboolean
app_cancelled_idle (gpointer data)
{
  Pending *pending = data;

  if (pending->remote != NULL)
    {
      /* The task goes on at the service; only this wait ends.  The pending call's reply
       * frees it. */
      BgRemote *self = pending->remote;

      self->pending = g_list_remove (self->pending, pending);
      pending->remote = NULL;
      g_task_return_new_error (pending->task, G_IO_ERROR, G_IO_ERROR_CANCELLED,
                               _("The wait was cancelled; the transfer goes on"));
      if (pending->call_cancellable != NULL)
        g_cancellable_cancel (pending->call_cancellable);
      else
        pending_free (pending);
    }

  return G_SOURCE_REMOVE;
}

static void
app_cancelled_cb (GCancellable *cancellable,
                  gpointer      data)
{
  Pending *pending = data;
  GSource *source = g_idle_source_new ();

  /* Possibly on another thread: answer on the remote's context. */
  g_source_set_callback (source, app_cancelled_idle, pending, NULL);
  g_source_set_static_name (source, "[bg] remote wait cancelled");
  g_source_attach (source, g_task_get_context (pending->task));
  g_source_unref (source);
}

void
bg_remote_submit_async (BgRemote            *self,
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
  g_autofree char *uri = NULL;
  g_autofree char *path = NULL;
  Pending *pending;

  pending = g_new0 (Pending, 1);
  /* Like the engine's, a pending call does not keep the queue alive. */
  pending->task = bg_reply_task_new (source_object, source_tag, NULL, callback, user_data);

  if (self->closed)
    {
      g_task_return_error (pending->task, closed_error_new ());
      pending_free (pending);
      return;
    }

  path = g_file_get_path (file);
  if (path == NULL)
    {
      g_autofree char *shown = g_file_get_uri (file);

      g_task_return_new_error (pending->task, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                               _("The file “%s” is not a local file"), shown);
      pending_free (pending);
      return;
    }

  /* The bus carries a path as a string, which must be UTF-8; in process any name works. */
  if (!g_utf8_validate (path, -1, NULL))
    {
      g_autofree char *shown = g_filename_display_name (path);

      g_task_return_new_error (pending->task, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                               _("The name of the file “%s” is not UTF-8, which the transfer "
                                 "service cannot be given"), shown);
      pending_free (pending);
      return;
    }

  remote_catch_up (self);
  uri = g_uri_to_string (soup_message_get_uri (request));
  pending->remote = self;
  pending->identifier = g_strdup (identifier);
  pending->file = g_object_ref (file);
  pending->parameters = g_variant_ref_sink (
    g_variant_new ("(sss@a(ss)s@a{sv})", identifier, soup_message_get_method (request), uri,
                   bg_bus_headers_to_variant (soup_message_get_request_headers (request)),
                   path, bg_bus_options_to_variant (options)));
  self->pending = g_list_prepend (self->pending, pending);

  /* As in process, a new task is listed at once; the service's snapshots take over.  A
   * collected task of the same identifier stays until the service accepted the new one. */
  if (!g_hash_table_contains (self->by_id, identifier))
    {
      GVariantDict snapshot;
      BgTask *task;

      g_variant_dict_init (&snapshot, NULL);
      g_variant_dict_insert (&snapshot, "uri", "s", uri);
      g_variant_dict_insert (&snapshot, "file", "s", path);
      g_variant_dict_insert (&snapshot, "state", "u", (guint32) BG_TASK_STATE_QUEUED);
      task = remote_add_task (self, identifier, &snapshot, NULL);
      g_variant_dict_clear (&snapshot);
      self->applying = TRUE;
      if (options != NULL)
        bg_task_apply_options (task, options);
      self->applying = FALSE;
      g_object_set_qdata (G_OBJECT (task), placeholder_quark, pending);
    }

  if (cancellable != NULL)
    {
      pending->app_cancellable = g_object_ref (cancellable);
      pending->cancelled_id = g_cancellable_connect (cancellable, G_CALLBACK (app_cancelled_cb),
                                                     pending, NULL);
    }

  if (self->queue_path != NULL)
    {
      pending_send (pending);
      /* Handed to the bus before this returns: an app killed now still has its task, which
       * the service commits as the call arrives. */
      g_dbus_connection_flush_sync (self->connection, NULL, NULL);
    }
  else if (!self->reopening)
    remote_reopen (self);
}

/* A result the service could not mark collected is announced again by the next restore. */
static void
collect_reply_cb (GObject      *object,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  TaskCall *call = user_data;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (object), result, &error);
  if (reply == NULL)
    g_warning ("The transfer service could not mark the result of “%s” collected: %s",
               call->identifier, error->message);
  task_call_answered (call);
}

BgResponse *
bg_remote_submit_finish (BgRemote      *self,
                         GAsyncResult  *result,
                         GError       **error)
{
  g_autoptr(BgResponse) response = g_task_propagate_pointer (G_TASK (result), error);

  if (response == NULL)
    return NULL;

  /* The app has it now: the service may delete the record. */
  if (self != NULL && self->queue_path != NULL)
    {
      const char *identifier = bg_response_get_identifier (response);
      BgTask *task;

      remote_catch_up (self);
      task = g_hash_table_lookup (self->by_id, identifier);

      g_dbus_connection_call (self->connection, self->bus_name, self->queue_path,
                              BG_BUS_QUEUE_INTERFACE, "Collect",
                              g_variant_new ("(s)", identifier),
                              NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, collect_reply_cb,
                              task_call_new (self, self->collecting, identifier));

      /* As in process, the list shows it at once. */
      if (task != NULL && bg_task_get_response (task) == response)
        {
          if (remote_keeps_finished (self))
            remote_mark_collected (task);
          else
            remote_remove_task (self, identifier);
        }
    }

  return g_steal_pointer (&response);
}

/* --- Opening again after the service went away ---------------------------------------------- */

static void
fail_pending (BgRemote *self,
              GError   *error)
{
  while (self->pending != NULL)
    {
      Pending *pending = self->pending->data;
      gboolean in_flight = pending->call_cancellable != NULL;

      pending_return (pending, NULL, g_error_copy (error));
      if (in_flight)
        g_cancellable_cancel (pending->call_cancellable);
      else
        pending_free (pending);
    }
  g_error_free (error);
}

static void
reopen_cb (GObject      *object,
           GAsyncResult *result,
           gpointer      user_data)
{
  g_autoptr(BgRemote) self = user_data;
  g_autoptr(GVariant) reply = NULL;
  GError *error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (object), result, &error);
  self->reopening = FALSE;
  if (self->closed)
    {
      g_clear_error (&error);
      return;
    }
  remote_catch_up (self);

  /* The old service is still stopping, or still lets go of the database as a new one opens
   * it: try again in a moment, for a while. */
  if (reply == NULL &&
      (g_error_matches (error, BG_ERROR, BG_ERROR_CLOSED) ||
       g_error_matches (error, BG_ERROR, BG_ERROR_BUSY)) &&
      self->stopping_waits++ < MAX_STOPPING_WAITS)
    {
      g_clear_error (&error);
      self->reopening = TRUE;
      {
        GSource *source = g_timeout_source_new (STOPPING_WAIT_MSEC);

        g_source_set_callback (source, reopen_again_cb, g_object_ref (self), g_object_unref);
        g_source_set_static_name (source, "[bg] remote reopen");
        g_source_attach (source, self->context);
        g_source_unref (source);
      }
      return;
    }
  self->stopping_waits = 0;

  if (reply == NULL)
    {
      fail_pending (self, error_from_bus (error));
      return;
    }

  g_clear_pointer (&self->queue_path, g_free);
  remote_opened (self, reply);

  /* A client that restored wants every task carried on, not only those it waits for. */
  if (self->restored)
    g_dbus_connection_call (self->connection, self->bus_name, self->queue_path,
                            BG_BUS_QUEUE_INTERFACE, "Restore", NULL,
                            G_VARIANT_TYPE ("(a(sa{sv}))"), G_DBUS_CALL_FLAGS_NONE, G_MAXINT,
                            NULL, rerestore_reply_cb, g_object_ref (self));

  /* Joining the tasks again makes the new service adopt their records.  Calls still in flight
   * (their answer from the old service is yet to come) are sent once it came. */
  for (GList *l = self->pending; l != NULL; l = l->next)
    {
      Pending *pending = l->data;

      if (pending->call_cancellable == NULL)
        pending_send (pending);
    }
}

static void
rerestore_reply_cb (GObject      *object,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(BgRemote) self = user_data;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) listing = NULL;
  g_autoptr(GPtrArray) finished = NULL;
  g_autoptr(GError) error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (object), result, &error);
  if (reply == NULL || self->closed)
    return;

  remote_catch_up (self);
  g_variant_get (reply, "(@a(sa{sv}))", &listing);
  finished = remote_take_listing (self, listing);
  remote_announce_all (self, finished);
}

static gboolean
reopen_again_cb (gpointer data)
{
  BgRemote *self = data;

  self->reopening = FALSE;
  self->reopens--;
  remote_reopen (self);
  return G_SOURCE_REMOVE;
}

static void
remote_reopen (BgRemote *self)
{
  if (self->closed || self->reopening)
    return;

  if (++self->reopens > MAX_REOPENS)
    {
      fail_pending (self, g_error_new (BG_ERROR, BG_ERROR_SERVICE,
                                       _("The transfer service “%s” keeps going away"),
                                       self->bus_name));
      return;
    }

  self->reopening = TRUE;
  remote_open_queue_async (self, NULL, reopen_cb, g_object_ref (self));
}

/* A short call to the queue; opens it again first (blocking) when the service went away. */
static GVariant *
remote_call_sync (BgRemote    *self,
                  const char  *method,
                  GVariant    *parameters,
                  GError     **error)
{
  g_autoptr(GVariant) owned = g_variant_ref_sink (parameters);

  if (self->closed)
    {
      g_propagate_error (error, closed_error_new ());
      return NULL;
    }

  for (guint tries = 0; ; tries++)
    {
      g_autoptr(GError) local_error = NULL;
      GVariant *reply;

      if (self->queue_path == NULL && !remote_open_queue_sync (self, NULL, error))
        return NULL;

      reply = g_dbus_connection_call_sync (self->connection, self->bus_name, self->queue_path,
                                           BG_BUS_QUEUE_INTERFACE, method, owned, NULL,
                                           G_DBUS_CALL_FLAGS_NONE, -1, NULL, &local_error);
      if (reply != NULL)
        return reply;

      if (tries > 0 || !error_is_service_gone (local_error))
        {
          g_propagate_error (error, error_from_bus (g_steal_pointer (&local_error)));
          return NULL;
        }
      g_clear_pointer (&self->queue_path, g_free);
    }
}

/* --- Restoring and the rest ----------------------------------------------------------------- */

static void
restore_reply_cb (GObject      *object,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  BgRemote *self = g_task_get_task_data (task);
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GVariant) listing = NULL;
  g_autoptr(GPtrArray) finished = NULL;
  GError *error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (object), result, &error);
  if (self->closed)
    {
      g_clear_error (&error);
      g_task_return_error (task, closed_error_new ());
      return;
    }
  if (reply == NULL)
    {
      g_task_return_error (task, error_from_bus (error));
      return;
    }

  remote_catch_up (self);
  g_variant_get (reply, "(@a(sa{sv}))", &listing);
  finished = remote_take_listing (self, listing);
  self->restored = TRUE;

  /* Results that no one collected, announced as an in-process restore does. */
  remote_announce_all (self, finished);

  g_task_return_boolean (task, TRUE);
}

void
bg_remote_restore_async (BgRemote            *self,
                         gpointer             source_object,
                         gpointer             source_tag,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (source_object, cancellable, callback, user_data);
  g_autoptr(GError) error = NULL;

  g_task_set_source_tag (task, source_tag);
  g_task_set_task_data (task, g_object_ref (self), g_object_unref);

  if (self->closed)
    {
      g_task_return_error (task, closed_error_new ());
      return;
    }

  remote_catch_up (self);

  /* Opening again, if the service went away, is short: do it first. */
  if (self->queue_path == NULL)
    {
      g_autoptr(GVariant) listing = remote_call_sync (self, "List", g_variant_new ("()"),
                                                      &error);
      if (listing == NULL)
        {
          g_task_return_error (task, g_steal_pointer (&error));
          return;
        }
    }

  g_dbus_connection_call (self->connection, self->bus_name, self->queue_path,
                          BG_BUS_QUEUE_INTERFACE, "Restore", NULL,
                          G_VARIANT_TYPE ("(a(sa{sv}))"), G_DBUS_CALL_FLAGS_NONE, G_MAXINT,
                          cancellable, restore_reply_cb, g_steal_pointer (&task));
}

gboolean
bg_remote_restore_finish (BgRemote      *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

/* The answer to a synchronous call comes before the messages the service sent ahead of it are
 * taken in: they are still queued in the main context.  A ping sent after the call is answered
 * after all of them, and the task's snapshots until then are old. */
static void
remote_removed_by_call (BgRemote   *self,
                        const char *identifier)
{
  if (self->queue_path != NULL)
    g_dbus_connection_call (self->connection, self->bus_name, self->queue_path,
                            "org.freedesktop.DBus.Peer", "Ping", NULL, NULL,
                            G_DBUS_CALL_FLAGS_NONE, -1, NULL, task_call_reply_cb,
                            task_call_new (self, self->removing, identifier));
  remote_remove_task (self, identifier);
}

gboolean
bg_remote_cancel (BgRemote    *self,
                  const char  *identifier,
                  GError     **error)
{
  g_autoptr(GVariant) reply = NULL;
  BgTask *task;

  remote_catch_up (self);
  reply = remote_call_sync (self, "Cancel", g_variant_new ("(s)", identifier), error);
  if (reply == NULL)
    return FALSE;

  /* As in process: the task leaves the list at once, cancelled. */
  task = g_hash_table_lookup (self->by_id, identifier);
  if (task != NULL)
    {
      self->applying = TRUE;
      bg_task_set_state (task, BG_TASK_STATE_CANCELLED);
      self->applying = FALSE;
    }
  remote_removed_by_call (self, identifier);

  return TRUE;
}

gboolean
bg_remote_forget (BgRemote    *self,
                  const char  *identifier,
                  GError     **error)
{
  g_autoptr(GVariant) reply = NULL;

  remote_catch_up (self);
  reply = remote_call_sync (self, "Forget", g_variant_new ("(s)", identifier), error);
  if (reply == NULL)
    return FALSE;

  remote_removed_by_call (self, identifier);
  return TRUE;
}

void
bg_remote_configure (BgRemote   *self,
                     const char *name,
                     GVariant   *value)
{
  GVariantDict dict;
  g_autoptr(GVariant) sunk = g_variant_ref_sink (value);
  g_autoptr(GVariant) settings = NULL;

  remote_catch_up (self);

  /* Kept for opening the queue again at a new service. */
  g_variant_dict_init (&dict, self->settings);
  g_variant_dict_insert_value (&dict, name, sunk);
  settings = g_variant_ref_sink (g_variant_dict_end (&dict));
  g_variant_unref (self->settings);
  self->settings = g_steal_pointer (&settings);

  /* As in process, turning keep-finished off takes the collected tasks off the list at once. */
  if (!remote_keeps_finished (self))
    {
      g_autoptr(GPtrArray) collected = g_ptr_array_new_with_free_func (g_free);
      GHashTableIter iter;
      gpointer key, task;

      g_hash_table_iter_init (&iter, self->by_id);
      while (g_hash_table_iter_next (&iter, &key, &task))
        if (g_object_get_qdata (task, collected_quark) != NULL)
          g_ptr_array_add (collected, g_strdup (key));
      for (guint i = 0; i < collected->len; i++)
        remote_remove_task (self, g_ptr_array_index (collected, i));
    }

  if (self->closed || self->queue_path == NULL)
    return;

  g_dbus_connection_call (self->connection, self->bus_name, self->queue_path,
                          BG_BUS_QUEUE_INTERFACE, "Configure",
                          g_variant_new_parsed ("({%s: %v},)", name, sunk),
                          NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL, NULL);
}

GListModel *
bg_remote_get_tasks (BgRemote *self)
{
  return G_LIST_MODEL (self->tasks);
}

BgTask *
bg_remote_lookup_task (BgRemote   *self,
                       const char *identifier)
{
  return identifier ? g_hash_table_lookup (self->by_id, identifier) : NULL;
}

void
bg_remote_close (BgRemote *self)
{
  GHashTableIter iter;
  gpointer value;

  if (self->closed)
    return;
  self->closed = TRUE;

  fail_pending (self, closed_error_new ());

  /* What the service sent is of no use now; its calls get "not handled" (by
   * remote_take_in(), if a handler it called closes the remote). */
  if (self->incoming_source != NULL)
    {
      g_source_destroy (self->incoming_source);
      g_clear_pointer (&self->incoming_source, g_source_unref);
    }
  if (!self->taking_in)
    incoming_clear (self);

  if (self->connection != NULL)
    {
      if (self->queue_path != NULL)
        g_dbus_connection_call (self->connection, self->bus_name, self->queue_path,
                                BG_BUS_QUEUE_INTERFACE, "CloseQueue", NULL, NULL,
                                G_DBUS_CALL_FLAGS_NONE, -1, NULL, NULL, NULL);
      if (self->changed_id != 0)
        g_dbus_connection_signal_unsubscribe (self->connection, self->changed_id);
      if (self->client_id != 0)
        g_dbus_connection_unregister_object (self->connection, self->client_id);
    }
  self->changed_id = self->client_id = 0;
  g_clear_handle_id (&self->client_name_id, g_bus_unown_name);
  if (self->owner_id != 0)
    g_bus_unwatch_name (self->owner_id);
  self->owner_id = 0;

  g_hash_table_iter_init (&iter, self->by_id);
  while (g_hash_table_iter_next (&iter, NULL, &value))
    g_signal_handlers_disconnect_by_data (value, self);
  g_hash_table_remove_all (self->by_id);
  bg_task_list_remove_all (self->tasks);
  g_clear_pointer (&self->queue_path, g_free);
}

static void
bg_remote_dispose (GObject *object)
{
  bg_remote_close (BG_REMOTE (object));

  G_OBJECT_CLASS (bg_remote_parent_class)->dispose (object);
}

static void
bg_remote_finalize (GObject *object)
{
  BgRemote *self = BG_REMOTE (object);

  g_clear_object (&self->connection);
  g_clear_pointer (&self->context, g_main_context_unref);
  g_clear_pointer (&self->bus_name, g_free);
  g_clear_pointer (&self->client_path, g_free);
  g_clear_pointer (&self->session_id, g_free);
  g_clear_pointer (&self->database_path, g_free);
  g_clear_pointer (&self->settings, g_variant_unref);
  g_clear_pointer (&self->by_id, g_hash_table_unref);
  g_clear_pointer (&self->collecting, g_hash_table_unref);
  g_clear_pointer (&self->setting, g_hash_table_unref);
  g_clear_pointer (&self->removing, g_hash_table_unref);
  g_clear_object (&self->tasks);

  G_OBJECT_CLASS (bg_remote_parent_class)->finalize (object);
}

static void
bg_remote_class_init (BgRemoteClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->dispose = bg_remote_dispose;
  object_class->finalize = bg_remote_finalize;

  announced_quark = g_quark_from_static_string ("bg-remote-announced");
  placeholder_quark = g_quark_from_static_string ("bg-remote-placeholder");
  collected_quark = g_quark_from_static_string ("bg-remote-collected");

  signals[TASK_FINISHED] =
    g_signal_new ("task-finished", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 2, BG_TYPE_TASK, BG_TYPE_RESPONSE);
  signals[PREPARE_REQUEST] =
    g_signal_new ("prepare-request", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0,
                  NULL, NULL, NULL, G_TYPE_NONE, 2, BG_TYPE_TASK, SOUP_TYPE_MESSAGE);
}

static void
bg_remote_init (BgRemote *self)
{
  self->tasks = bg_task_list_new ();
  self->by_id = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->collecting = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->setting = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  self->removing = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
}
