/* bg-transferd-portal.c: what the service asks of the desktop
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * While unfinished tasks exist, the service asks the Background portal to let it run and to
 * start it with the session (`bg-transferd --app-id APP_ID --resume-all`), and withdraws the
 * autostart once they are all done.  When a task finishes while no client is connected, it
 * activates the app's "bg-task-finished" action, so that the app can tell the user; an app that
 * is not D-Bus activatable finds the result in the store when it next runs.
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "bg-transferd.h"

#ifdef HAVE_LIBPORTAL
#include <libportal/portal.h>
#endif

struct _BgTransferdPortal
{
  GDBusConnection *connection;
  char            *app_id;
  char            *executable;
  int              autostart;      /* -1 unknown, else what was last asked for */
  int              asking;         /* -1 nothing in flight, else the value asked for */
  gboolean         want;           /* unfinished tasks exist */
  int              refused;        /* -1, else what the portal last refused */
  gboolean         said_unavailable;
#ifdef HAVE_LIBPORTAL
  XdpPortal       *portal;
#endif
};

BgTransferdPortal *
bg_transferd_portal_new (GDBusConnection *connection,
                         const char      *app_id,
                         gboolean         autostarted)
{
  BgTransferdPortal *self = g_new0 (BgTransferdPortal, 1);

  self->connection = g_object_ref (connection);
  self->app_id = g_strdup (app_id);
  self->executable = g_build_filename (LIBEXECDIR, "bg-transferd", NULL);
  /* Started by the session, the autostart an earlier run asked for is on; started by a
   * client, there is none to withdraw unless this run asks for it. */
  self->autostart = autostarted ? 1 : 0;
  self->asking = -1;
  self->refused = -1;
  return self;
}

void
bg_transferd_portal_free (BgTransferdPortal *self)
{
  if (self == NULL)
    return;
#ifdef HAVE_LIBPORTAL
  g_clear_object (&self->portal);
#endif
  g_clear_object (&self->connection);
  g_free (self->app_id);
  g_free (self->executable);
  g_free (self);
}

static void ask_background (BgTransferdPortal *self,
                            gboolean           autostart);

#ifdef HAVE_LIBPORTAL
static void
background_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  BgTransferdPortal *self = user_data;
  g_autoptr(GError) error = NULL;
  gboolean asked = self->asking;

  self->asking = -1;
  if (!xdp_portal_request_background_finish (XDP_PORTAL (object), result, &error))
    {
      g_message ("The Background portal refused to %s: %s",
                 asked ? "start the transfer service with the session"
                       : "stop starting the transfer service with the session",
                 error->message);
      /* Not asked again for the same until the wish changes. */
      self->refused = asked;
    }
  else
    {
      g_debug ("Background portal: autostart %s", asked ? "on" : "off");
      self->autostart = asked;
      self->refused = -1;
    }

  /* The wish may have changed while the portal answered. */
  if (self->autostart != self->want && self->refused != self->want)
    ask_background (self, self->want);
}
#endif

static void
ask_background (BgTransferdPortal *self,
                gboolean           autostart)
{
#ifdef HAVE_LIBPORTAL
  g_autoptr(GPtrArray) commandline = NULL;

  if (self->asking != -1)
    return;

  if (self->portal == NULL)
    self->portal = xdp_portal_new ();

  commandline = g_ptr_array_new_with_free_func (g_free);
  g_ptr_array_add (commandline, g_strdup (self->executable));
  g_ptr_array_add (commandline, g_strdup ("--app-id"));
  g_ptr_array_add (commandline, g_strdup (self->app_id));
  g_ptr_array_add (commandline, g_strdup ("--resume-all"));

  g_debug ("Asking the Background portal to turn autostart %s", autostart ? "on" : "off");
  self->asking = autostart;
  xdp_portal_request_background (self->portal, NULL,
                                 autostart ? _("Transfers are still going on")
                                           : _("All transfers are done"),
                                 commandline,
                                 autostart ? XDP_BACKGROUND_FLAG_AUTOSTART
                                           : XDP_BACKGROUND_FLAG_NONE,
                                 NULL, background_cb, self);
#endif
}

void
bg_transferd_portal_set_pending (BgTransferdPortal *self,
                                 gboolean           pending)
{
  pending = !!pending;
  if (self->want != pending)
    g_debug ("Transfers %s", pending ? "pending" : "all done");
  self->want = pending;

#ifdef HAVE_LIBPORTAL
  if (xdp_portal_running_under_flatpak ())
    {
      if (pending != self->refused)
        self->refused = -1;
      if (self->autostart != pending && self->asking == -1 && self->refused == -1)
        ask_background (self, pending);
      return;
    }
#endif

  if (pending && !self->said_unavailable)
    {
      self->said_unavailable = TRUE;
      g_message ("Outside Flatpak there is no Background portal for this service: it cannot "
                 "start with the session; unfinished transfers carry on when the app or its "
                 "service runs again");
    }
}

static void
activate_cb (GObject      *object,
             GAsyncResult *result,
             gpointer      user_data)
{
  g_autofree char *app_id = user_data;
  g_autoptr(GVariant) reply = NULL;
  g_autoptr(GError) error = NULL;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (object), result, &error);
  /* Not D-Bus activatable, or gone: the results wait in the store for its next run. */
  if (reply == NULL)
    g_debug ("Could not activate %s with bg-task-finished: %s", app_id, error->message);
}

void
bg_transferd_portal_activate_finished (BgTransferdPortal *self,
                                       GPtrArray         *identifiers)
{
  g_autoptr(GString) path = g_string_new ("/");
  GVariantBuilder ids, parameter;

  if (identifiers->len == 0)
    return;

  /* The object path of a GApplication: its id with dots as slashes, dashes as underscores. */
  for (const char *p = self->app_id; *p != '\0'; p++)
    g_string_append_c (path, *p == '.' ? '/' : *p == '-' ? '_' : *p);

  g_variant_builder_init (&ids, G_VARIANT_TYPE_STRING_ARRAY);
  for (guint i = 0; i < identifiers->len; i++)
    g_variant_builder_add (&ids, "s", g_ptr_array_index (identifiers, i));
  g_variant_builder_init (&parameter, G_VARIANT_TYPE ("av"));
  g_variant_builder_add (&parameter, "v", g_variant_builder_end (&ids));

  g_debug ("Activating %s with bg-task-finished for %u tasks", self->app_id, identifiers->len);
  g_dbus_connection_call (self->connection, self->app_id, path->str,
                          "org.freedesktop.Application", "ActivateAction",
                          g_variant_new ("(s@av@a{sv})", "bg-task-finished",
                                         g_variant_builder_end (&parameter),
                                         g_variant_new_array (G_VARIANT_TYPE ("{sv}"), NULL, 0)),
                          NULL, G_DBUS_CALL_FLAGS_NONE, -1, NULL, activate_cb,
                          g_strdup (self->app_id));
}
