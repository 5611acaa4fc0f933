/* bg-bus-private.h: what travels between the transfer service and its clients
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The dictionaries are described in data/org.gnome.BgGlib.Transfers1.xml.
 */

#pragma once

#include <libsoup/soup.h>

#include "bg-response.h"
#include "bg-task.h"
#include "bg-task-options.h"

G_BEGIN_DECLS

#define BG_BUS_NAME_SUFFIX      ".Transfers"
#define BG_BUS_OBJECT_PATH      "/org/gnome/BgGlib/Transfers1"
#define BG_BUS_CLIENT_PATH      "/org/gnome/BgGlib/Transfers1/Client"
#define BG_BUS_INTERFACE        "org.gnome.BgGlib.Transfers1"
#define BG_BUS_QUEUE_INTERFACE  "org.gnome.BgGlib.Transfers1.Queue"
#define BG_BUS_CLIENT_INTERFACE "org.gnome.BgGlib.Transfers1.Client"

/* Registers BG_ERROR with GDBus, so that its codes cross the bus. */
void           bg_bus_ensure_error_domain  (void);

/* "download" and "upload". */
const char    *bg_bus_kind_to_string       (BgTaskKind          kind);
gboolean       bg_bus_kind_from_string     (const char         *string,
                                            BgTaskKind         *kind);

/* The well-known name of @app_id's service, or NULL with BG_ERROR_INVALID_ARGUMENT when
 * @app_id is not a valid application id. */
char          *bg_bus_name_for_app_id      (const char         *app_id,
                                            GError            **error);

/* a(ss), in order. */
GVariant      *bg_bus_headers_to_variant   (SoupMessageHeaders *headers);
void           bg_bus_headers_from_variant (GVariant           *variant,
                                            SoupMessageHeaders *headers);

/* a{sv}; @options may be NULL (an empty dictionary). */
GVariant      *bg_bus_options_to_variant   (BgTaskOptions      *options);
/* NULL with BG_ERROR_INVALID_ARGUMENT when a value is out of range or has the wrong type. */
BgTaskOptions *bg_bus_options_from_variant (GVariant           *variant,
                                            GError            **error);

/* a{sv}. */
GVariant      *bg_bus_response_to_variant  (BgResponse         *response);
BgResponse    *bg_bus_response_from_variant (GVariant          *variant,
                                             const char        *identifier,
                                             GFile             *file);

/* a{sv}: a snapshot of @task; @collected tells that its result was collected already. */
GVariant      *bg_bus_task_to_variant      (BgTask             *task,
                                            gboolean            collected);
/* A client reads a snapshot once, into a GVariantDict: a key looked up in the serialised a{sv}
 * of a D-Bus message is found by walking the entries, and a snapshot has some twenty of them,
 * each looked up.
 *
 * A new task for the client's list, made from a snapshot. */
BgTask        *bg_bus_task_new_from_dict   (BgTaskKind         kind,
                                            const char        *identifier,
                                            GVariantDict      *snapshot);
/* Brings a client's task up to date with a newer snapshot; @response_out is set (transfer full)
 * when the snapshot carries a response the task did not have. */
void           bg_bus_task_update_dict     (BgTask             *task,
                                            GVariantDict       *snapshot,
                                            BgResponse        **response_out);
/* Whether a snapshot says "collected" (or "removed"). */
gboolean       bg_bus_snapshot_dict_flag   (GVariantDict       *snapshot,
                                            const char         *key);

G_END_DECLS
