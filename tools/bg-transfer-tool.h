/* bg-transfer-tool.h: what the commands of bg-transfer share
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

/* One command: a file of its own (bg-transfer-NAME.c) that defines it, and a row in
 * bt_commands.  --help and the manual page are made from these fields.
 *
 * @handle gets the command line from the command's name on, with the options given before
 * the name already parsed.  With @do_help it prints the command's help and returns;
 * otherwise it parses the rest with bt_command_context_new() and bt_command_parse().
 *
 * The options in @entries are flags, strings or lists of strings, so that one given to another
 * command can be told (see bt_command_parse). */
typedef struct
{
  const char         *name;         /* "download" */
  const char         *synopsis;     /* "download URL [-o FILE]…": not translated */
  const char         *description;  /* marked with N_() */
  const GOptionEntry *entries;      /* its own options, or NULL */
  int               (*handle)       (int         argc,
                                     char       *argv[],
                                     gboolean    do_help);
} BtCommand;

/* bg-transfer.c: every command, in the order of --help, ending with NULL. */
extern const BtCommand *const bt_commands[];

/* bg-transfer-NAME.c */
extern const BtCommand bt_command_download;
extern const BtCommand bt_command_upload;
extern const BtCommand bt_command_list;
extern const BtCommand bt_command_resume;
extern const BtCommand bt_command_cancel;
extern const BtCommand bt_command_forget;
/* bg-transfer-pause.c has both */
extern const BtCommand bt_command_pause;
extern const BtCommand bt_command_unpause;

/* --- The command line (bg-transfer-tool.c) -------------------------------------------------- */

/* The options that go with every command, before or after its name. */
typedef struct
{
  char      *session;
  char      *database;
  char      *app_id;
  char      *mode;
  int        max_concurrent;
  int        max_attempts;
  gboolean   no_metered;
  gboolean   json;
  gboolean   quiet;
} BtGlobalOptions;

extern BtGlobalOptions    bt_global_options;
extern const GOptionEntry bt_global_entries[];

/* The mode that --mode and --app-id ask for, once bt_command_parse() has checked them. */
BgMode          bt_global_mode            (void);

void            bt_usage_error            (const char       *format,
                                           ...) G_GNUC_PRINTF (1, 2);
gboolean        bt_check_arguments        (int               n_args,
                                           int               n_wanted,
                                           const char       *synopsis);

/* Appends to @entries (a zero-terminated GArray of GOptionEntry) the options of every command
 * but @except, each name once, with @flags added. */
void            bt_append_command_entries (GArray           *entries,
                                           const BtCommand  *except,
                                           GOptionFlags      flags);

/* A context for @command's options and the global ones. */
GOptionContext *bt_command_context_new    (const BtCommand  *command);
/* Prints the help of @context's command; returns the exit status. */
int             bt_command_show_help      (GOptionContext   *context);
/* Parses the command line of @command with @context and checks the values; FALSE after a
 * usage message.  @argv keeps the command's name and its arguments. */
gboolean        bt_command_parse          (const BtCommand  *command,
                                           GOptionContext   *context,
                                           int              *argc,
                                           char           ***argv);

/* --- One run (bg-transfer-tool.c) ---------------------------------------------------------- */

typedef struct
{
  BtOutput        *output;
  BgDownloader    *downloader;
  BgUploader      *uploader;

  /* Cancelled by SIGINT or SIGTERM: ends the waits, never the transfers. */
  GCancellable    *interrupt;
  int              signal_number;
  guint            sigint_source;
  guint            sigterm_source;
} BtApp;

/* Made once the command line is read: it prints as the global options say. */
BtApp          *bt_app_new                (void);
void            bt_app_free               (BtApp            *app);
gboolean        bt_app_open_downloader    (BtApp            *app,
                                           int              *exit_code);
gboolean        bt_app_open_uploader      (BtApp            *app,
                                           int              *exit_code);
int             bt_app_interrupted_exit   (BtApp            *app);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BtApp, bt_app_free)

G_END_DECLS
