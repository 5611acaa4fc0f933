/* bg-transfer.c: durable HTTP downloads and uploads from the command line
 *
 * This file reads the command line, opens the session and hands over to a command:
 * bg-transfer-transfer.c runs download and upload, bg-transfer-session.c runs list, resume,
 * cancel and forget.  The tool uses only the public API of bg-glib, as any app would.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib/gi18n.h>
#include <glib-unix.h>

#include "bg-transfer.h"
#include "bg-transfer-docs.h"
#include "bg-transfer-report.h"

#define DEFAULT_SESSION "bg-transfer"

static BtOptions options = {
  .max_concurrent = -1,
  .max_attempts = -1,
};

static const GOptionEntry entries[] = {
  { "session", 0, 0, G_OPTION_ARG_STRING, &options.session,
    N_("The session, which names the task database (default: bg-transfer)"), N_("NAME") },
  { "database", 0, 0, G_OPTION_ARG_FILENAME, &options.database,
    N_("The task database (default: $XDG_DATA_HOME/bg-glib/NAME.sqlite)"), N_("PATH") },
  { "max-concurrent", 0, 0, G_OPTION_ARG_INT, &options.max_concurrent,
    N_("How many transfers may run at once (default: 4)"), N_("N") },
  { "max-attempts", 0, 0, G_OPTION_ARG_INT, &options.max_attempts,
    N_("Attempts before a temporary failure is reported (default: 5)"), N_("N") },
  { "no-metered", 0, 0, G_OPTION_ARG_NONE, &options.no_metered,
    N_("Wait while the network is metered, instead of using it"), NULL },
  { "json", 0, 0, G_OPTION_ARG_NONE, &options.json,
    N_("Print one JSON object per line"), NULL },
  { "quiet", 'q', 0, G_OPTION_ARG_NONE, &options.quiet,
    N_("Print no progress and no success, only errors"), NULL },
  { "output", 'o', 0, G_OPTION_ARG_FILENAME, &options.output,
    N_("download: where to save the file (default: the URL’s last part)"), N_("FILE") },
  { "id", 0, 0, G_OPTION_ARG_STRING, &options.identifier,
    N_("download, upload: the task identifier (default: made from the command)"), N_("ID") },
  { "header", 'H', 0, G_OPTION_ARG_STRING_ARRAY, &options.headers,
    N_("download, upload: add a request header; may be repeated"),
    N_("'NAME: VALUE'") },
  { "method", 'X', 0, G_OPTION_ARG_STRING, &options.method,
    N_("upload: the HTTP method, PUT or POST (default: PUT)"), N_("METHOD") },
  { "version", 0, 0, G_OPTION_ARG_NONE, &options.version,
    N_("Print the version and exit"), NULL },
  { "help-man", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &options.help_man,
    "Print the manual page in roff and exit", NULL },
  { NULL }
};

typedef struct
{
  const char *name;
  int       (*run) (BtApp *app);
} BtCommand;

static const BtCommand command_table[] = {
  { "download", bt_command_download },
  { "upload", bt_command_upload },
  { "list", bt_command_list },
  { "resume", bt_command_resume },
  { "cancel", bt_command_cancel },
  { "forget", bt_command_forget },
};

void
bt_usage_error (const char *format,
                ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);

  fflush (stdout);
  fprintf (stderr, "bg-transfer: %s\n", message);
  fprintf (stderr, _("Run “bg-transfer --help” for the commands and options."));
  fputc ('\n', stderr);
}

gboolean
bt_check_arguments (BtApp      *app,
                    guint       n_wanted,
                    const char *synopsis)
{
  if (app->n_args == n_wanted)
    return TRUE;

  bt_usage_error (app->n_args < n_wanted ? _("Missing arguments; usage: %s")
                                         : _("Too many arguments; usage: %s"), synopsis);
  return FALSE;
}

static void
i18n_init (void)
{
  setlocale (LC_ALL, "");
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
}

static GOptionContext *
make_option_context (void)
{
  GOptionContext *context = g_option_context_new (_("COMMAND [ARGUMENT…]"));
  g_autofree char *summary = bt_docs_help_summary ();
  g_autofree char *description = bt_docs_help_description ();

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, summary);
  g_option_context_set_description (context, description);

  return context;
}

/* Checks what GOptionContext cannot: values in range, and options given to the command that
 * uses them. */
static gboolean
check_options (const char *command)
{
  gboolean transfer = g_strcmp0 (command, "download") == 0 || g_strcmp0 (command, "upload") == 0;

  if (options.database != NULL && *options.database == '\0')
    bt_usage_error (_("--database needs the path of a file"));
  else if (options.max_concurrent != -1 && options.max_concurrent < 1)
    bt_usage_error (_("--max-concurrent needs a number of at least 1"));
  else if (options.max_attempts != -1 && options.max_attempts < 1)
    bt_usage_error (_("--max-attempts needs a number of at least 1"));
  else if (options.output != NULL && g_strcmp0 (command, "download") != 0)
    bt_usage_error (_("--output goes only with “download”"));
  else if (options.method != NULL && g_strcmp0 (command, "upload") != 0)
    bt_usage_error (_("--method goes only with “upload”"));
  else if ((options.identifier != NULL || options.headers != NULL) && !transfer)
    bt_usage_error (_("--id and --header go only with “download” and “upload”"));
  else
    return TRUE;

  return FALSE;
}

static const BtCommand *
find_command (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (command_table); i++)
    {
      if (strcmp (command_table[i].name, name) == 0)
        return &command_table[i];
    }

  return NULL;
}

/* --- Opening the session ------------------------------------------------------------------- */

static gboolean
report_open_error (BtApp   *app,
                   GError  *error,
                   int     *exit_code)
{
  /* A session name the library refuses is a mistake on the command line. */
  if (g_error_matches (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT))
    {
      bt_usage_error ("%s", error->message);
      *exit_code = BT_EXIT_USAGE;
      return FALSE;
    }

  *exit_code = bt_exit_for_error (error);
  if (g_error_matches (error, BG_ERROR, BG_ERROR_BUSY))
    {
      g_autofree char *message =
        g_strdup_printf (_("%s. Wait for it to finish, or use another --session."),
                         error->message);

      bt_report_message (app->output, *exit_code, message);
    }
  else
    bt_report_message (app->output, *exit_code, error->message);

  return FALSE;
}

gboolean
bt_app_open_downloader (BtApp *app,
                        int   *exit_code)
{
  const BtOptions *opts = app->options;
  g_autoptr(GError) error = NULL;

  if (app->downloader != NULL)
    return TRUE;

  app->downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                                    "session-id", opts->session ? opts->session : DEFAULT_SESSION,
                                    "database-path", opts->database,
                                    NULL);
  if (app->downloader == NULL)
    return report_open_error (app, error, exit_code);

  if (opts->max_concurrent > 0)
    bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (app->downloader), (guint) opts->max_concurrent);
  if (opts->max_attempts > 0)
    bg_task_queue_set_max_attempts (BG_TASK_QUEUE (app->downloader), (guint) opts->max_attempts);
  /* Someone who types the command wants the transfer now, unless told otherwise. */
  g_object_set (app->downloader, "allow-metered", !opts->no_metered, NULL);

  return TRUE;
}

gboolean
bt_app_open_uploader (BtApp *app,
                      int   *exit_code)
{
  const BtOptions *opts = app->options;
  g_autoptr(GError) error = NULL;

  if (app->uploader != NULL)
    return TRUE;

  app->uploader = g_initable_new (BG_TYPE_UPLOADER, NULL, &error,
                                  "session-id", opts->session ? opts->session : DEFAULT_SESSION,
                                  "database-path", opts->database,
                                  NULL);
  if (app->uploader == NULL)
    return report_open_error (app, error, exit_code);

  if (opts->max_concurrent > 0)
    bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (app->uploader), (guint) opts->max_concurrent);
  if (opts->max_attempts > 0)
    bg_task_queue_set_max_attempts (BG_TASK_QUEUE (app->uploader), (guint) opts->max_attempts);
  g_object_set (app->uploader, "allow-metered", !opts->no_metered, NULL);

  return TRUE;
}

/* --- Signals ------------------------------------------------------------------------------- */

/* Ends the waits; the transfers stay in the database for a later run. */
static void
interrupt (BtApp *app,
           int    signal_number)
{
  /* A second signal does not wait for anything.  The database stays consistent: the library
   * recovers from a process that simply stops. */
  if (g_cancellable_is_cancelled (app->interrupt))
    {
      fflush (stdout);
      _exit (bt_app_interrupted_exit (app));
    }

  app->signal_number = signal_number;
  g_cancellable_cancel (app->interrupt);
}

static gboolean
sigint_cb (gpointer data)
{
  interrupt (data, SIGINT);
  return G_SOURCE_CONTINUE;
}

static gboolean
sigterm_cb (gpointer data)
{
  interrupt (data, SIGTERM);
  return G_SOURCE_CONTINUE;
}

int
bt_app_interrupted_exit (BtApp *app)
{
  return app->signal_number == SIGTERM ? 128 + SIGTERM : BT_EXIT_INTERRUPTED;
}

/* --- main ---------------------------------------------------------------------------------- */

static int
run_command (const BtCommand  *command,
             char            **args,
             guint             n_args)
{
  BtApp app = { 0 };
  guint sigint_source, sigterm_source;
  int exit_code;

  app.options = &options;
  app.command = command->name;
  app.args = args;
  app.n_args = n_args;
  app.output = bt_output_new (options.json, options.quiet);
  app.interrupt = g_cancellable_new ();

  sigint_source = g_unix_signal_add (SIGINT, sigint_cb, &app);
  sigterm_source = g_unix_signal_add (SIGTERM, sigterm_cb, &app);

  exit_code = command->run (&app);

  g_source_remove (sigint_source);
  g_source_remove (sigterm_source);
  g_clear_object (&app.downloader);
  g_clear_object (&app.uploader);
  g_clear_object (&app.interrupt);
  g_clear_pointer (&app.output, bt_output_free);

  return exit_code;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  const BtCommand *command;

  i18n_init ();

  context = make_option_context ();
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      bt_usage_error ("%s", error->message);
      return BT_EXIT_USAGE;
    }

  if (options.help_man)
    {
      g_autofree char *page = bt_docs_man_page (entries);

      fputs (page, stdout);
      return BT_EXIT_SUCCESS;
    }
  if (options.version)
    {
      printf ("bg-transfer %s\n", PACKAGE_VERSION);
      return BT_EXIT_SUCCESS;
    }

  if (argc < 2)
    {
      bt_usage_error (_("No command given"));
      return BT_EXIT_USAGE;
    }

  command = find_command (argv[1]);
  if (command == NULL)
    {
      bt_usage_error (_("Unknown command “%s”"), argv[1]);
      return BT_EXIT_USAGE;
    }
  if (!check_options (command->name))
    return BT_EXIT_USAGE;

  return run_command (command, argv + 2, (guint) argc - 2);
}
