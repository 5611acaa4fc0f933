/* bg-connection-watch-private.h: notices an HTTP/2 connection that libsoup stopped reading
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <libsoup/soup.h>

G_BEGIN_DECLS

typedef struct _BgConnectionWatch BgConnectionWatch;

/* Called once, on the context the watch was made on, with a G_IO_ERROR_CONNECTION_CLOSED error
 * that says what happened to the connection. */
typedef void (*BgConnectionLostFunc) (const GError *error,
                                      gpointer      user_data);

void               bg_connection_watch_track (SoupSession          *session);
BgConnectionWatch *bg_connection_watch_new   (SoupSession          *session,
                                              SoupMessage          *msg,
                                              GInputStream         *body,
                                              BgConnectionLostFunc  func,
                                              gpointer              user_data);
void               bg_connection_watch_free  (BgConnectionWatch    *watch);

/* The watch itself, on a given connection; for tests. */
BgConnectionWatch *bg_connection_watch_new_for_connection (GSocketConnection    *connection,
                                                           GInputStream         *body,
                                                           BgConnectionLostFunc  func,
                                                           gpointer              user_data);

G_END_DECLS
