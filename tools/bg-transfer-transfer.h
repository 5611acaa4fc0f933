/* bg-transfer-transfer.h: what download and upload share: one task, from the request to its
 * result
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include "bg-transfer-tool.h"

G_BEGIN_DECLS

/* The options of both download and upload. */
typedef struct
{
  char  *identifier;
  char **headers;
  char  *max_bandwidth;
} BtTransferOptions;

extern BtTransferOptions bt_transfer_options;

/* The options the upload command gives its task (NULL: the defaults). */
extern BgTaskOptions *bt_upload_task_options;

/* Their entries, in the tables of both commands: the same storage, so that either command
 * finds them wherever they were given. */
#define BT_TRANSFER_OPTION_ENTRIES \
  { "id", 0, 0, G_OPTION_ARG_STRING, &bt_transfer_options.identifier, \
    N_("download, upload: the task identifier (default: made from the command)"), N_("ID") }, \
  { "header", 'H', 0, G_OPTION_ARG_STRING_ARRAY, &bt_transfer_options.headers, \
    N_("download, upload: add a request header; may be repeated"), \
    N_("'NAME: VALUE'") }, \
  { "max-bandwidth", 0, 0, G_OPTION_ARG_STRING, &bt_transfer_options.max_bandwidth, \
    N_("download, upload: move at most RATE bytes per second, such as 500K, 5M or 1.5MiB " \
       "(K, M, G count in 1000s; KiB, MiB, GiB in 1024s; 0 for no cap)"), N_("RATE") }

/* These print a usage message and return FALSE or NULL when the command line is wrong. */
gboolean     bt_transfer_check_identifier (void);
GUri        *bt_transfer_parse_url        (const char  *text);
/* A request for @uri with the headers of -H. */
SoupMessage *bt_transfer_new_message      (const char  *method,
                                           GUri        *uri);

/* Reads a rate such as "500K", "5M" or "1.5MiB" into bytes per second; FALSE with @error when
 * @text is not one. */
gboolean     bt_transfer_parse_rate       (const char  *text,
                                           guint64     *bytes_per_second,
                                           GError     **error);

/* A file named on the command line, made absolute against the current folder. */
GFile       *bt_file_for_argument         (const char  *argument);

/* Opens the session, starts or joins the task of @msg and @file, shows its progress until it
 * ends and reports how; returns the exit status. */
int          bt_transfer_run              (BtApp       *app,
                                           BgTaskKind   kind,
                                           SoupMessage *msg,
                                           GFile       *file);

G_END_DECLS
