/* bg-session-private.h: a session id, and the task database it names
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <gio/gio.h>

#include "bg-store-private.h"

G_BEGIN_DECLS

/* A session id is 1 to 200 characters among letters, digits, ".", "_" and "-", and not "." or
 * "..": it becomes a file name.  BG_ERROR_INVALID_ARGUMENT otherwise. */
gboolean  bg_session_id_validate           (const char  *session_id,
                                            GError     **error);
/* $XDG_DATA_HOME/bg-glib/<session_id>.sqlite: the database of a session when the app names
 * none. */
char     *bg_session_default_database_path (const char  *session_id);
/* Opens the database of @session_id, at @database_path or its default path (returned in
 * @path_used), creating its folder privately.  Only files and the store: it may run on any
 * thread. */
BgStore  *bg_session_open_store            (const char  *session_id,
                                            const char  *database_path,
                                            char       **path_used,
                                            GError     **error);

G_END_DECLS
