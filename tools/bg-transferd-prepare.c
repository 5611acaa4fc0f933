/* bg-transferd-prepare.c: prepare-request over the bus
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Before each attempt the service asks the clients of the task's queue that have a Client object
 * (org.gnome.BgGlib.Transfers1.Client.PrepareRequest), one after the other, until one of them
 * handles the request: its URI and headers replace the attempt's.  What they add stays in this
 * process's memory; the engine keeps credentials out of the database.
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "bg-bus-private.h"
#include "bg-error.h"
#include "bg-http-private.h"
#include "bg-transferd.h"

/* How long a client's prepare-request handler may take. */
#define PREPARE_TIMEOUT_MSEC 5000

/* One attempt's round trip: its clients are asked one after the other until one handles it. */
typedef struct
{
  GDBusConnection *connection;
  char            *queue_path;
  char            *identifier;
  GPtrArray       *senders;     /* of char*, with paths at the same index */
  GPtrArray       *paths;
  guint            next;
  BgEnginePrepare *prepare;
} PrepareCall;

static void
prepare_call_free (PrepareCall *call)
{
  g_clear_object (&call->connection);
  g_free (call->queue_path);
  g_free (call->identifier);
  g_ptr_array_unref (call->senders);
  g_ptr_array_unref (call->paths);
  g_free (call);
}

gboolean
bg_transferd_header_is_acceptable (const char *name,
                                   const char *value)
{
  return name[0] != '\0' && strpbrk (name, " \t\r\n:") == NULL &&
         strpbrk (value, "\r\n") == NULL;
}

/* Applies a client's answer; FALSE (the message untouched) when it is not usable. */
static gboolean
prepare_apply (SoupMessage *msg,
               GVariant    *reply,
               GError     **error)
{
  const char *new_uri;
  g_autoptr(GVariant) new_headers = NULL;
  g_autoptr(GUri) uri = NULL;
  SoupMessageHeaders *headers;
  GVariantIter iter;
  const char *name, *value;

  g_variant_get (reply, "(b&s@a(ss))", NULL, &new_uri, &new_headers);

  uri = g_uri_parse (new_uri, SOUP_HTTP_URI_FLAGS, error);
  if (uri == NULL || !bg_http_uri_is_acceptable (uri, error))
    return FALSE;

  g_variant_iter_init (&iter, new_headers);
  while (g_variant_iter_next (&iter, "(&s&s)", &name, &value))
    {
      if (!bg_transferd_header_is_acceptable (name, value))
        {
          g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                       _("The header “%s” is not a valid HTTP header"), name);
          return FALSE;
        }
    }

  soup_message_set_uri (msg, uri);
  headers = soup_message_get_request_headers (msg);
  soup_message_headers_clear (headers);
  bg_bus_headers_from_variant (new_headers, headers);
  return TRUE;
}

static void prepare_ask_next (PrepareCall *call);

static void
prepare_reply_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  PrepareCall *call = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  gboolean handled = FALSE;

  reply = g_dbus_connection_call_finish (G_DBUS_CONNECTION (source), result, &error);
  if (reply != NULL)
    g_variant_get (reply, "(bsa(ss))", &handled, NULL, NULL);

  if (reply != NULL && handled)
    {
      SoupMessage *msg = bg_engine_prepare_get_message (call->prepare);

      if (prepare_apply (msg, reply, &error))
        {
          bg_engine_prepare_done (call->prepare);
          prepare_call_free (call);
          return;
        }
    }

  if (error != NULL)
    g_warning ("The prepare-request handler of %s for the task “%s” failed: %s",
               (const char *) g_ptr_array_index (call->senders, call->next - 1),
               call->identifier, error->message);
  prepare_ask_next (call);
}

static void
prepare_ask_next (PrepareCall *call)
{
  SoupMessage *msg = bg_engine_prepare_get_message (call->prepare);
  g_autofree char *uri = NULL;
  guint i = call->next++;

  if (i >= call->senders->len)
    {
      /* Nobody handled it: the engine makes a task without credentials wait for them. */
      bg_engine_prepare_done (call->prepare);
      prepare_call_free (call);
      return;
    }

  uri = g_uri_to_string (soup_message_get_uri (msg));
  g_dbus_connection_call (call->connection,
                          g_ptr_array_index (call->senders, i),
                          g_ptr_array_index (call->paths, i),
                          BG_BUS_CLIENT_INTERFACE, "PrepareRequest",
                          g_variant_new ("(osss@a(ss))", call->queue_path, call->identifier,
                                         soup_message_get_method (msg), uri,
                                         bg_bus_headers_to_variant (
                                           soup_message_get_request_headers (msg))),
                          G_VARIANT_TYPE ("(bsa(ss))"),
                          G_DBUS_CALL_FLAGS_NO_AUTO_START, PREPARE_TIMEOUT_MSEC, NULL,
                          prepare_reply_cb, call);
}

void
bg_transferd_prepare_ask (GDBusConnection *connection,
                          const char      *queue_path,
                          const char      *identifier,
                          GPtrArray       *senders,
                          GPtrArray       *paths,
                          BgEnginePrepare *prepare)
{
  PrepareCall *call;

  g_return_if_fail (G_IS_DBUS_CONNECTION (connection));
  g_return_if_fail (senders->len == paths->len);
  g_return_if_fail (prepare != NULL);

  call = g_new0 (PrepareCall, 1);
  call->connection = g_object_ref (connection);
  call->queue_path = g_strdup (queue_path);
  call->identifier = g_strdup (identifier);
  call->senders = g_ptr_array_ref (senders);
  call->paths = g_ptr_array_ref (paths);
  call->prepare = prepare;
  prepare_ask_next (call);
}
