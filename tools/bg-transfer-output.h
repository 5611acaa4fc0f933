/* bg-transfer-output.h: what bg-transfer prints, on a terminal, in a pipe or as JSON lines
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <bg-glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _BtOutput BtOutput;

BtOutput    *bt_output_new        (gboolean     json,
                                   gboolean     quiet);
void         bt_output_free       (BtOutput    *self);
gboolean     bt_output_is_json    (BtOutput    *self);
gboolean     bt_output_is_quiet   (BtOutput    *self);

/* Shows the progress of @task until it is untracked: a bar on a terminal, throttled "progress"
 * lines in JSON mode, nothing otherwise; and a line whenever it waits for another attempt. */
void         bt_output_track      (BtOutput    *self,
                                   BgTask      *task);
void         bt_output_untrack    (BtOutput    *self,
                                   BgTask      *task);

/* A line of information on stdout; not printed with --quiet or --json. */
void         bt_output_info       (BtOutput    *self,
                                   const char  *format,
                                   ...) G_GNUC_PRINTF (2, 3);
/* A line of what the command was asked for, such as a listing, on stdout; not printed with
 * --json. */
void         bt_output_print      (BtOutput    *self,
                                   const char  *format,
                                   ...) G_GNUC_PRINTF (2, 3);
/* A line that tells how something ended: on stdout when @is_error is FALSE (not printed with
 * --quiet), on stderr otherwise.  Not printed with --json. */
void         bt_output_say        (BtOutput    *self,
                                   gboolean     is_error,
                                   const char  *text);

/* Prints the JSON line @builder holds, with --json only; see bg-transfer-json.h. */
void         bt_output_json       (BtOutput    *self,
                                   JsonBuilder *builder);

/* Names used in messages. */
char        *bt_format_seconds    (gint64       seconds);
char        *bt_describe_wait     (BgTask      *task);
/* @uri as the tool shows it, in text and JSON alike: never with its password. */
char        *bt_uri_for_display   (const char  *uri);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BtOutput, bt_output_free)

G_END_DECLS
