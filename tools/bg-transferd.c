/* bg-transferd.c: the per-app transfer service
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * bg-transferd --app-id APP_ID [--resume-all]
 *
 * Owns APP_ID.Transfers on the session bus and runs the transfers of the app's front ends in
 * service mode, with the same engine and databases the in-process mode uses, so that they go on
 * after the app's process ended.  The interface is data/org.gnome.BgGlib.Transfers1.xml.  The
 * service holds itself while a queue has clients or unfinished tasks, and exits after a time of
 * inactivity otherwise.
 */

#include "config.h"

#include <glib-unix.h>
#include <glib/gi18n-lib.h>
#include <locale.h>

#include "bg-bus-private.h"
#include "bg-error.h"
#include "bg-i18n-private.h"
#include "bg-session-private.h"
#include "bg-transferd.h"

/* Changed is emitted at most this often, however many tasks change. */
#define FLUSH_INTERVAL_MSEC 100
#define DEFAULT_IDLE_TIMEOUT_SEC 30

struct _BgTransferd
{
  GApplication      parent_instance;

  char             *app_id;
  gboolean          resume_all;
  GDBusConnection  *connection;
  BgDBusTransfers1 *manager;
  GPtrArray        *queues;        /* of BgTransferdQueue */
  guint             next_queue;
  guint             flush_source;
  BgTransferdPortal *portal;
  gboolean          held;
  gboolean          stopping;
};

G_DEFINE_FINAL_TYPE (BgTransferd, bg_transferd, G_TYPE_APPLICATION)

/* --- Changed, and the lifetime ----------------------------------------------------------- */

static gboolean
service_has_unfinished (BgTransferd *self)
{
  for (guint i = 0; i < self->queues->len; i++)
    if (bg_transferd_queue_has_unfinished (g_ptr_array_index (self->queues, i)))
      return TRUE;
  return FALSE;
}

/* Holds the service while a queue has a client or, as @pending says, an unfinished task. */
static void
hold_while_busy (BgTransferd *self,
                 gboolean     pending)
{
  gboolean busy = pending && !self->stopping;

  for (guint i = 0; i < self->queues->len && !busy && !self->stopping; i++)
    busy = bg_transferd_queue_has_clients (g_ptr_array_index (self->queues, i));

  if (busy != self->held)
    g_debug ("%s", busy ? "Busy: held" : "Nothing to do: released");
  if (busy && !self->held)
    g_application_hold (G_APPLICATION (self));
  else if (!busy && self->held)
    g_application_release (G_APPLICATION (self));
  self->held = busy;
}

void
bg_transferd_update_hold (BgTransferd *self)
{
  g_return_if_fail (BG_IS_TRANSFERD (self));

  hold_while_busy (self, service_has_unfinished (self));
}

static gboolean
flush_cb (gpointer user_data)
{
  BgTransferd *self = user_data;
  g_autoptr(GPtrArray) unattended = g_ptr_array_new_with_free_func (g_free);
  GVariantBuilder builder;
  gboolean pending;
  guint n = 0;

  self->flush_source = 0;

  g_variant_builder_init (&builder, G_VARIANT_TYPE ("a(osa{sv})"));
  for (guint i = 0; i < self->queues->len; i++)
    n += bg_transferd_queue_take_changes (g_ptr_array_index (self->queues, i), &builder,
                                          unattended);

  if (n > 0 && self->manager != NULL)
    bg_dbus_transfers1_emit_changed (self->manager, g_variant_builder_end (&builder));
  else
    g_variant_builder_clear (&builder);

  /* Once a flush: the portal and the hold both follow whether tasks are unfinished. */
  pending = service_has_unfinished (self);
  if (self->portal != NULL)
    {
      bg_transferd_portal_set_pending (self->portal, pending);
      bg_transferd_portal_activate_finished (self->portal, unattended);
    }
  hold_while_busy (self, pending);

  return G_SOURCE_REMOVE;
}

/* Sends what changed now rather than when the timer fires: a client asked something about a task
 * (prepare-request) sees the task as it is, because the bus keeps one sender's messages in
 * order. */
void
bg_transferd_flush_now (BgTransferd *self)
{
  g_return_if_fail (BG_IS_TRANSFERD (self));

  if (self->flush_source != 0)
    {
      g_clear_handle_id (&self->flush_source, g_source_remove);
      flush_cb (self);
    }
}

void
bg_transferd_schedule_flush (BgTransferd *self)
{
  g_return_if_fail (BG_IS_TRANSFERD (self));

  /* One timer for everything: the first change starts it, the ones until it fires join. */
  if (self->flush_source == 0 && !self->stopping)
    self->flush_source = g_timeout_add (FLUSH_INTERVAL_MSEC, flush_cb, self);
}

/* Every call restarts the inactivity timeout.  (Not from g-authorize-method: that runs on a
 * thread of its own, and the use count is the main thread's.) */
void
bg_transferd_touch (BgTransferd *self)
{
  g_return_if_fail (BG_IS_TRANSFERD (self));

  g_application_hold (G_APPLICATION (self));
  g_application_release (G_APPLICATION (self));
}

/* --- The manager object ------------------------------------------------------------------ */

static BgTransferdQueue *
find_queue (BgTransferd *self,
            const char  *key)
{
  for (guint i = 0; i < self->queues->len; i++)
    {
      BgTransferdQueue *queue = g_ptr_array_index (self->queues, i);

      if (g_str_equal (bg_transferd_queue_get_key (queue), key))
        return queue;
    }
  return NULL;
}

/* The queue of @kind on the database of @session_id at @database_path (NULL for the default),
 * opened now or earlier in this run. */
static BgTransferdQueue *
open_queue (BgTransferd  *self,
            BgTaskKind    kind,
            const char   *session_id,
            const char   *database_path,
            GError      **error)
{
  g_autofree char *path = NULL;
  g_autofree char *key = NULL;
  g_autofree char *object_path = NULL;
  BgTransferdQueue *queue;

  if (!bg_session_id_validate (session_id, error))
    return NULL;
  if (database_path != NULL && !g_path_is_absolute (database_path))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The database path “%s” is not absolute"), database_path);
      return NULL;
    }

  path = database_path != NULL ? g_canonicalize_filename (database_path, NULL)
                               : bg_session_default_database_path (session_id);
  key = g_strdup_printf ("%s:%s", bg_bus_kind_to_string (kind), path);
  queue = find_queue (self, key);
  if (queue != NULL)
    return queue;

  object_path = g_strdup_printf ("%s/queue/%u", BG_BUS_OBJECT_PATH, self->next_queue++);
  queue = bg_transferd_queue_new (self, self->connection, kind, session_id, database_path, key,
                                  object_path, error);
  if (queue == NULL)
    return NULL;
  g_ptr_array_add (self->queues, queue);
  return queue;
}

static gboolean
handle_open_queue (BgDBusTransfers1      *manager,
                   GDBusMethodInvocation *invocation,
                   const char            *kind_name,
                   const char            *session_id,
                   const char            *database_path,
                   GVariant              *settings,
                   const char            *client_path,
                   BgTransferd           *self)
{
  g_autoptr(GError) error = NULL;
  BgTransferdQueue *queue;
  BgTaskKind kind;

  bg_transferd_touch (self);
  if (self->stopping)
    {
      g_dbus_method_invocation_return_error (invocation, BG_ERROR, BG_ERROR_CLOSED,
                                             _("The transfer service is stopping"));
      return TRUE;
    }
  if (!bg_bus_kind_from_string (kind_name, &kind))
    {
      g_dbus_method_invocation_return_error (invocation, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                                             _("“%s” is not a kind of queue: use “download” or "
                                               "“upload”"), kind_name);
      return TRUE;
    }

  queue = open_queue (self, kind, session_id, database_path[0] != '\0' ? database_path : NULL,
                      &error);
  if (queue == NULL || !bg_transferd_queue_configure (queue, settings, &error))
    {
      g_dbus_method_invocation_return_gerror (invocation, error);
      return TRUE;
    }

  bg_transferd_queue_add_client (queue, g_dbus_method_invocation_get_sender (invocation),
                                 client_path);
  bg_dbus_transfers1_complete_open_queue (manager, invocation,
                                          bg_transferd_queue_get_object_path (queue));
  return TRUE;
}

/* --- --resume-all ------------------------------------------------------------------------ */

/* Opens and restores every database in the default folder, for both kinds, so that the tasks
 * of earlier runs carry on after a reboot.  A database given another path cannot be found. */
static void
resume_all (BgTransferd *self)
{
  g_autofree char *dir_path = g_build_filename (g_get_user_data_dir (), "bg-glib", NULL);
  g_autoptr(GDir) dir = NULL;
  g_autoptr(GError) error = NULL;
  const char *name;

  dir = g_dir_open (dir_path, 0, &error);
  if (dir == NULL)
    {
      if (!g_error_matches (error, G_FILE_ERROR, G_FILE_ERROR_NOENT))
        g_warning ("Cannot list the task databases in %s: %s", dir_path, error->message);
      return;
    }

  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *session_id = NULL;

      if (!g_str_has_suffix (name, ".sqlite"))
        continue;
      session_id = g_strndup (name, strlen (name) - strlen (".sqlite"));
      if (!bg_session_id_validate (session_id, NULL))
        continue;

      for (BgTaskKind kind = BG_TASK_KIND_DOWNLOAD; kind <= BG_TASK_KIND_UPLOAD; kind++)
        {
          g_autoptr(GError) local_error = NULL;
          BgTransferdQueue *queue = open_queue (self, kind, session_id, NULL, &local_error);

          if (queue == NULL)
            {
              g_warning ("Cannot resume the %ss of the session “%s”: %s",
                         bg_bus_kind_to_string (kind), session_id, local_error->message);
              continue;
            }
          bg_transferd_queue_restore (queue);
        }
    }
  bg_transferd_update_hold (self);
}

/* --- The application --------------------------------------------------------------------- */

static gboolean
bg_transferd_dbus_register (GApplication     *application,
                            GDBusConnection  *connection,
                            const char       *object_path,
                            GError          **error)
{
  BgTransferd *self = BG_TRANSFERD (application);

  if (!G_APPLICATION_CLASS (bg_transferd_parent_class)->dbus_register (application, connection,
                                                                        object_path, error))
    return FALSE;

  self->connection = g_object_ref (connection);
  self->portal = bg_transferd_portal_new (connection, self->app_id, self->resume_all);
  self->manager = bg_dbus_transfers1_skeleton_new ();
  bg_dbus_transfers1_set_version (self->manager, 1);
  g_signal_connect (self->manager, "handle-open-queue", G_CALLBACK (handle_open_queue), self);

  return g_dbus_interface_skeleton_export (G_DBUS_INTERFACE_SKELETON (self->manager), connection,
                                           BG_BUS_OBJECT_PATH, error);
}

static void
bg_transferd_dbus_unregister (GApplication    *application,
                              GDBusConnection *connection,
                              const char      *object_path)
{
  BgTransferd *self = BG_TRANSFERD (application);

  if (self->manager != NULL)
    {
      if (g_dbus_interface_skeleton_get_connection (G_DBUS_INTERFACE_SKELETON (self->manager)))
        g_dbus_interface_skeleton_unexport (G_DBUS_INTERFACE_SKELETON (self->manager));
      g_signal_handlers_disconnect_by_data (self->manager, self);
      g_clear_object (&self->manager);
    }

  G_APPLICATION_CLASS (bg_transferd_parent_class)->dbus_unregister (application, connection,
                                                                   object_path);
}

static void
bg_transferd_startup (GApplication *application)
{
  BgTransferd *self = BG_TRANSFERD (application);

  G_APPLICATION_CLASS (bg_transferd_parent_class)->startup (application);

  if (self->resume_all)
    resume_all (self);
}

/* SIGTERM and SIGINT: every attempt stops, the records stay for the next run. */
static gboolean
stop_cb (gpointer user_data)
{
  BgTransferd *self = user_data;

  g_debug ("Stopping: closing %u queues", self->queues->len);
  self->stopping = TRUE;
  g_clear_handle_id (&self->flush_source, g_source_remove);
  for (guint i = 0; i < self->queues->len; i++)
    bg_transferd_queue_close (g_ptr_array_index (self->queues, i));
  g_application_quit (G_APPLICATION (self));
  return G_SOURCE_CONTINUE;
}

static void
bg_transferd_shutdown (GApplication *application)
{
  BgTransferd *self = BG_TRANSFERD (application);

  g_debug ("Shutting down");
  self->stopping = TRUE;
  g_clear_handle_id (&self->flush_source, g_source_remove);
  for (guint i = 0; i < self->queues->len; i++)
    bg_transferd_queue_close (g_ptr_array_index (self->queues, i));

  G_APPLICATION_CLASS (bg_transferd_parent_class)->shutdown (application);
}

static void
bg_transferd_finalize (GObject *object)
{
  BgTransferd *self = BG_TRANSFERD (object);

  g_clear_handle_id (&self->flush_source, g_source_remove);
  g_clear_pointer (&self->queues, g_ptr_array_unref);
  g_clear_pointer (&self->portal, bg_transferd_portal_free);
  g_clear_object (&self->manager);
  g_clear_object (&self->connection);
  g_free (self->app_id);

  G_OBJECT_CLASS (bg_transferd_parent_class)->finalize (object);
}

static void
bg_transferd_class_init (BgTransferdClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GApplicationClass *app_class = G_APPLICATION_CLASS (klass);

  object_class->finalize = bg_transferd_finalize;
  app_class->dbus_register = bg_transferd_dbus_register;
  app_class->dbus_unregister = bg_transferd_dbus_unregister;
  app_class->startup = bg_transferd_startup;
  app_class->shutdown = bg_transferd_shutdown;
}

static void
bg_transferd_init (BgTransferd *self)
{
  self->queues = g_ptr_array_new_with_free_func ((GDestroyNotify) bg_transferd_queue_unref);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgTransferd) self = NULL;
  g_autofree char *app_id = NULL;
  g_autofree char *bus_name = NULL;
  gboolean resume = FALSE;
  int idle_timeout = DEFAULT_IDLE_TIMEOUT_SEC;
  char *run_argv[] = { argv[0], NULL };
  const GOptionEntry entries[] = {
    { "app-id", 0, 0, G_OPTION_ARG_STRING, &app_id,
      N_("The application id of the app whose transfers to run"), N_("APP_ID") },
    { "resume-all", 0, 0, G_OPTION_ARG_NONE, &resume,
      N_("Carry on the unfinished tasks of every session in the default folder"), NULL },
    /* For the tests. */
    { "idle-timeout", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_INT, &idle_timeout,
      N_("Exit after this many seconds with nothing to do"), N_("SECONDS") },
    { NULL }
  };

  setlocale (LC_ALL, "");
  bg_i18n_init ();

  context = g_option_context_new (NULL);
  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, _("The transfer service of one app: runs its "
                                           "downloads and uploads while it is closed."));
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("bg-transferd: %s\n", error->message);
      return 2;
    }
  if (app_id == NULL)
    {
      g_printerr ("bg-transferd: %s\n", _("--app-id is required"));
      return 2;
    }
  if (idle_timeout < 0)
    {
      g_printerr ("bg-transferd: %s\n", _("--idle-timeout cannot be negative"));
      return 2;
    }
  bus_name = bg_bus_name_for_app_id (app_id, &error);
  if (bus_name == NULL)
    {
      g_printerr ("bg-transferd: %s\n", error->message);
      return 2;
    }

  bg_bus_ensure_error_domain ();

  self = g_object_new (BG_TYPE_TRANSFERD,
                       "application-id", bus_name,
                       "flags", G_APPLICATION_IS_SERVICE,
                       NULL);
  self->app_id = g_steal_pointer (&app_id);
  self->resume_all = resume;
  g_application_set_inactivity_timeout (G_APPLICATION (self), (guint) idle_timeout * 1000);

  g_unix_signal_add (SIGTERM, stop_cb, self);
  g_unix_signal_add (SIGINT, stop_cb, self);

  return g_application_run (G_APPLICATION (self), 1, run_argv);
}
