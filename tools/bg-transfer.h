/* bg-transfer.h: what the commands of bg-transfer share
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <bg-glib.h>

#include "bg-transfer-output.h"

G_BEGIN_DECLS

/* The exit statuses, documented in --help and in bg-transfer(1). */
typedef enum {
  BT_EXIT_SUCCESS     = 0,
  BT_EXIT_REJECTED    = 2,
  BT_EXIT_RETRY       = 3,
  BT_EXIT_FAILED      = 4,
  BT_EXIT_USAGE       = 64,
  BT_EXIT_INTERRUPTED = 130,
} BtExit;

/* The command line, as GOptionContext left it. */
typedef struct
{
  char      *session;
  char      *database;
  int        max_concurrent;
  int        max_attempts;
  gboolean   no_metered;
  gboolean   json;
  gboolean   quiet;
  char      *output;
  char      *identifier;
  char     **headers;
  char      *method;
  gboolean   help_man;
  gboolean   version;
} BtOptions;

/* One run of the tool. */
typedef struct
{
  const BtOptions *options;
  const char      *command;
  char           **args;      /* the arguments after the command */
  guint            n_args;

  BtOutput        *output;
  BgDownloader    *downloader;
  BgUploader      *uploader;

  /* Cancelled by SIGINT or SIGTERM: ends the waits, never the transfers. */
  GCancellable    *interrupt;
  int              signal_number;
} BtApp;

/* bg-transfer.c */
void      bt_usage_error          (const char  *format,
                                   ...) G_GNUC_PRINTF (1, 2);
gboolean  bt_check_arguments      (BtApp       *app,
                                   guint        n_wanted,
                                   const char  *synopsis);
gboolean  bt_app_open_downloader  (BtApp       *app,
                                   int         *exit_code);
gboolean  bt_app_open_uploader    (BtApp       *app,
                                   int         *exit_code);
int       bt_app_interrupted_exit (BtApp       *app);

/* bg-transfer-transfer.c */
int       bt_command_download     (BtApp       *app);
int       bt_command_upload       (BtApp       *app);

/* bg-transfer-session.c */
int       bt_command_list         (BtApp       *app);
int       bt_command_resume       (BtApp       *app);
int       bt_command_cancel       (BtApp       *app);
int       bt_command_forget       (BtApp       *app);

G_END_DECLS
