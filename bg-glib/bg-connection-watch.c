/* bg-connection-watch.c: notices an HTTP/2 connection that libsoup stopped reading
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Over HTTP/1.1 a response body is read straight from the socket, so a server that goes away
 * makes the pending read fail.  Over HTTP/2, libsoup (3.2 at least) reads every frame of the
 * connection from one source of its own and hands DATA to each response body as a
 * SoupBodyInputStreamHttp2.  When that reader meets the end of the socket or an error
 * (io_read_ready() in soup-client-message-io-http2.c), it records the error for the connection,
 * wakes only the messages still waiting for their headers, and removes itself; a body stream has
 * no error state, and its pending read waits for more data or END_STREAM, neither of which will
 * ever come.  The connection stays in use by that message, so nothing else notices either, and
 * the download would wait for the stall timeout.  A GOAWAY is no better: handle_goaway() marks
 * the message with an error that nothing reads once its body is being read.
 *
 * So: the socket under each connection is remembered from the "network-event" that connected
 * it, and a download's body is watched with a source polling that socket at a lower priority
 * than libsoup's reader.  While the reader exists it is ready whenever the socket is, and GLib
 * dispatches only the highest priority among ready sources, so this source runs only once the
 * reader is gone.  From then on nothing will reach the body: once what it holds is read, the
 * connection is reported lost.  (A reader blocked by a nested main loop run from inside its own
 * dispatch would look gone too; the attempt would then end early and its retry resume.)
 */

#include "config.h"

#include <errno.h>
#include <sys/socket.h>

#include <glib/gi18n-lib.h>

#include "bg-connection-watch-private.h"

/* --- The sockets of a session's connections --------------------------------------------------- */

typedef struct
{
  grefcount   ref_count;
  GMutex      mutex;
  GHashTable *connections;  /* connection id (guint64 *) -> GWeakRef * on a GSocketConnection */
} Registry;

static GQuark
registry_quark (void)
{
  static GQuark quark;

  /* A racing first call stores the same value. */
  if (G_UNLIKELY (quark == 0))
    quark = g_quark_from_static_string ("bg-connection-watch-registry");

  return quark;
}

static Registry *
registry_ref (Registry *registry)
{
  g_ref_count_inc (&registry->ref_count);
  return registry;
}

static void
registry_unref (Registry *registry)
{
  if (!g_ref_count_dec (&registry->ref_count))
    return;

  g_hash_table_unref (registry->connections);
  g_mutex_clear (&registry->mutex);
  g_free (registry);
}

static void
registry_closure_notify (gpointer  data,
                         GClosure *closure)
{
  registry_unref (data);
}

static void
weak_ref_free (GWeakRef *ref)
{
  g_weak_ref_clear (ref);
  g_free (ref);
}

static gboolean
weak_ref_is_empty (gpointer key,
                   gpointer value,
                   gpointer user_data)
{
  g_autoptr(GObject) object = g_weak_ref_get (value);

  return object == NULL;
}

/* May run on any thread that sends on the session. */
static void
network_event_cb (SoupMessage        *msg,
                  GSocketClientEvent  event,
                  GIOStream          *connection,
                  Registry           *registry)
{
  guint64 id = soup_message_get_connection_id (msg);
  GWeakRef *ref;

  if (event != G_SOCKET_CLIENT_CONNECTED || !G_IS_SOCKET_CONNECTION (connection) || id == 0)
    return;

  ref = g_new0 (GWeakRef, 1);
  g_weak_ref_init (ref, connection);

  g_mutex_lock (&registry->mutex);
  g_hash_table_foreach_remove (registry->connections, weak_ref_is_empty, NULL);
  g_hash_table_replace (registry->connections, g_memdup2 (&id, sizeof id), ref);
  g_mutex_unlock (&registry->mutex);
}

static void
request_queued_cb (SoupSession *session,
                   SoupMessage *msg,
                   Registry    *registry)
{
  g_signal_connect_data (msg, "network-event", G_CALLBACK (network_event_cb),
                         registry_ref (registry), registry_closure_notify, 0);
}

static Registry *
registry_get (SoupSession *session)
{
  return g_object_get_qdata (G_OBJECT (session), registry_quark ());
}

/* Starts remembering the socket of every connection @session makes from now on.  Call it before
 * the first request; calling it again does nothing. */
void
bg_connection_watch_track (SoupSession *session)
{
  Registry *registry;

  g_assert (SOUP_IS_SESSION (session));

  if (registry_get (session) != NULL)
    return;

  registry = g_new0 (Registry, 1);
  g_ref_count_init (&registry->ref_count);
  g_mutex_init (&registry->mutex);
  registry->connections = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free,
                                                 (GDestroyNotify) weak_ref_free);

  g_object_set_qdata_full (G_OBJECT (session), registry_quark (), registry,
                           (GDestroyNotify) registry_unref);
  g_signal_connect_data (session, "request-queued", G_CALLBACK (request_queued_cb),
                         registry_ref (registry), registry_closure_notify, 0);
}

static GSocketConnection *
registry_lookup (Registry *registry,
                 guint64   id)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&registry->mutex);
  GWeakRef *ref;

  ref = g_hash_table_lookup (registry->connections, &id);

  return ref != NULL ? g_weak_ref_get (ref) : NULL;
}

/* --- The watch ---------------------------------------------------------------------------------- */

/* A GSource. */
typedef struct _BgConnectionWatch
{
  GSource               source;
  GSocketConnection    *connection;
  GPollableInputStream *body;
  gpointer              fd_tag;
  GError               *error;   /* set once libsoup's reader is gone */
} Watch;

/* What became of the socket that nobody reads any more, looked at without consuming a byte. */
static GError *
lost_error (Watch *self)
{
  GSocket *socket = g_socket_connection_get_socket (self->connection);
  char byte;
  gssize n = -1;
  int saved_errno = EBADF;

  if (!g_socket_is_closed (socket))
    {
      n = recv (g_socket_get_fd (socket), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      saved_errno = errno;
    }

  if (n == 0 || (n < 0 && saved_errno == EBADF))
    return g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                                _("The server closed the HTTP/2 connection during the "
                                  "download"));

  if (n < 0 && saved_errno != EAGAIN && saved_errno != EWOULDBLOCK)
    return g_error_new (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                        _("The HTTP/2 connection to the server failed during the download: %s"),
                        g_strerror (saved_errno));

  /* libsoup gave up on the connection for an error of its own. */
  return g_error_new_literal (G_IO_ERROR, G_IO_ERROR_CONNECTION_CLOSED,
                              _("The HTTP/2 connection to the server failed during the "
                                "download"));
}

static gboolean
watch_prepare (GSource *source,
               gint    *timeout)
{
  Watch *self = (Watch *) source;

  *timeout = -1;

  return self->error != NULL && !g_pollable_input_stream_is_readable (self->body);
}

static gboolean
watch_check (GSource *source)
{
  Watch *self = (Watch *) source;

  /* Checked only when nothing of a higher priority is ready, libsoup's reader included. */
  if (self->fd_tag != NULL && g_source_query_unix_fd (source, self->fd_tag) != 0)
    return TRUE;

  return self->error != NULL && !g_pollable_input_stream_is_readable (self->body);
}

static gboolean
watch_dispatch (GSource     *source,
                GSourceFunc  callback,
                gpointer     user_data)
{
  Watch *self = (Watch *) source;
  BgConnectionLostFunc func = (BgConnectionLostFunc) (void (*) (void)) callback;

  if (self->fd_tag != NULL)
    {
      /* The socket is ready and libsoup did not read it: its reader is gone for good. */
      self->error = lost_error (self);
      g_source_remove_unix_fd (source, self->fd_tag);
      self->fd_tag = NULL;
    }

  /* What the body already holds can still be read; only an empty body is stuck. */
  if (g_pollable_input_stream_is_readable (self->body))
    return G_SOURCE_CONTINUE;

  if (func != NULL)
    func (self->error, user_data);

  return G_SOURCE_REMOVE;
}

static void
watch_finalize (GSource *source)
{
  Watch *self = (Watch *) source;

  g_clear_object (&self->connection);
  g_clear_object (&self->body);
  g_clear_error (&self->error);
}

static GSourceFuncs watch_funcs = {
  watch_prepare,
  watch_check,
  watch_dispatch,
  watch_finalize,
  NULL,
  NULL,
};

/* Watches @body for the case above, with @connection the socket connection under it: once
 * nothing of a higher priority reads that socket any more and @body holds nothing more, @func is
 * called, on the thread-default context, which must be the one the reader runs on. */
BgConnectionWatch *
bg_connection_watch_new_for_connection (GSocketConnection    *connection,
                                        GInputStream         *body,
                                        BgConnectionLostFunc  func,
                                        gpointer              user_data)
{
  GSocket *socket;
  GSource *source;
  Watch *self;

  g_assert (G_IS_SOCKET_CONNECTION (connection));
  g_assert (G_IS_POLLABLE_INPUT_STREAM (body));

  socket = g_socket_connection_get_socket (connection);
  if (g_socket_is_closed (socket))
    return NULL;

  source = g_source_new (&watch_funcs, sizeof (Watch));
  self = (Watch *) source;
  self->connection = g_object_ref (connection);
  self->body = g_object_ref (G_POLLABLE_INPUT_STREAM (body));
  self->fd_tag = g_source_add_unix_fd (source, g_socket_get_fd (socket),
                                       G_IO_IN | G_IO_HUP | G_IO_ERR);

  /* Below libsoup's reader (G_PRIORITY_DEFAULT): see the top of this file. */
  g_source_set_priority (source, G_PRIORITY_LOW);
  g_source_set_static_name (source, "[bg] HTTP/2 connection watch");
  g_source_set_callback (source, G_SOURCE_FUNC (func), user_data, NULL);
  g_source_attach (source, g_main_context_get_thread_default ());

  return self;
}

/* Watches @body, the response body of @msg, for the case above: when libsoup has stopped reading
 * the HTTP/2 connection that carries it and @body holds nothing more, @func is called, on the
 * thread-default context, which must be the one @msg was sent from.  Returns the watch (free it
 * to stop watching), or NULL when there is nothing to watch: @msg did not use HTTP/2, or its
 * connection was made before bg_connection_watch_track(). */
BgConnectionWatch *
bg_connection_watch_new (SoupSession          *session,
                         SoupMessage          *msg,
                         GInputStream         *body,
                         BgConnectionLostFunc  func,
                         gpointer              user_data)
{
  g_autoptr(GSocketConnection) connection = NULL;
  Registry *registry;

  g_assert (SOUP_IS_SESSION (session));
  g_assert (SOUP_IS_MESSAGE (msg));
  g_assert (G_IS_INPUT_STREAM (body));

  if (soup_message_get_http_version (msg) != SOUP_HTTP_2_0 ||
      !G_IS_POLLABLE_INPUT_STREAM (body) ||
      !g_pollable_input_stream_can_poll (G_POLLABLE_INPUT_STREAM (body)))
    return NULL;

  registry = registry_get (session);
  if (registry == NULL)
    return NULL;

  connection = registry_lookup (registry, soup_message_get_connection_id (msg));
  if (connection == NULL)
    return NULL;

  return bg_connection_watch_new_for_connection (connection, body, func, user_data);
}

void
bg_connection_watch_free (BgConnectionWatch *watch)
{
  g_source_destroy ((GSource *) watch);
  g_source_unref ((GSource *) watch);
}
