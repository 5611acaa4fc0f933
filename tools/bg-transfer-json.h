/* bg-transfer-json.h: the JSON lines of bg-transfer --json, built with json-glib
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <bg-glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

/* A line is one object: begin it with its "event" member, add members, then end it. */
JsonBuilder *bt_json_begin               (const char   *event);
/* Closes the object and returns it as one line of text, without the newline. */
char        *bt_json_end                 (JsonBuilder  *builder);

/* A NULL @value is written as null. */
void         bt_json_add_string          (JsonBuilder  *builder,
                                          const char   *name,
                                          const char   *value);
/* A NULL @value leaves the member out. */
void         bt_json_add_optional_string (JsonBuilder  *builder,
                                          const char   *name,
                                          const char   *value);
void         bt_json_add_int             (JsonBuilder  *builder,
                                          const char   *name,
                                          gint64        value);
void         bt_json_add_boolean         (JsonBuilder  *builder,
                                          const char   *name,
                                          gboolean      value);
/* The nick of @value, such as "download" or "rejected". */
void         bt_json_add_enum            (JsonBuilder  *builder,
                                          const char   *name,
                                          GType         enum_type,
                                          int           value);
/* "error": { "domain", "code", "message" }; nothing when @error is NULL. */
void         bt_json_add_error           (JsonBuilder  *builder,
                                          const GError *error);
/* What every line about a task says: identifier, operation, state, uri, file, bytes, total,
 * attempts, paused, bytes_per_second, eta, and wait_reason and next_attempt_in while it
 * waits. */
void         bt_json_add_task            (JsonBuilder  *builder,
                                          BgTask       *task);

/* The nick of an enum value, as JSON and some messages name it. */
const char  *bt_enum_nick                (GType         enum_type,
                                          int           value);

G_END_DECLS
