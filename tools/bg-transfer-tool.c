/* bg-transfer-tool.c: what the commands of bg-transfer share
 *
 * The global options and the parsing of a command's own options, with the checks that
 * GOptionContext cannot make; and one run of a command: its output, the downloader and the
 * uploader of the session, and the signals that end its waits.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <glib/gi18n.h>
#include <glib-unix.h>

#include "bg-transfer-tool.h"
#include "bg-transfer-docs.h"
#include "bg-transfer-report.h"

#define DEFAULT_SESSION "bg-transfer"

BtGlobalOptions bt_global_options = {
  .max_concurrent = -1,
  .max_attempts = -1,
};

const GOptionEntry bt_global_entries[] = {
  { "session", 0, 0, G_OPTION_ARG_STRING, &bt_global_options.session,
    N_("The session, which names the task database (default: bg-transfer)"), N_("NAME") },
  { "database", 0, 0, G_OPTION_ARG_FILENAME, &bt_global_options.database,
    N_("The task database (default: $XDG_DATA_HOME/bg-glib/NAME.sqlite)"), N_("PATH") },
  { "app-id", 0, 0, G_OPTION_ARG_STRING, &bt_global_options.app_id,
    N_("The app whose transfer service may run the tasks"), N_("ID") },
  { "mode", 0, 0, G_OPTION_ARG_STRING, &bt_global_options.mode,
    N_("Where the transfers run: auto, in-process or service"), N_("MODE") },
  { "max-concurrent", 0, 0, G_OPTION_ARG_INT, &bt_global_options.max_concurrent,
    N_("How many transfers may run at once (default: 4)"), N_("N") },
  { "max-attempts", 0, 0, G_OPTION_ARG_INT, &bt_global_options.max_attempts,
    N_("Attempts before a temporary failure is reported (default: 5)"), N_("N") },
  { "no-metered", 0, 0, G_OPTION_ARG_NONE, &bt_global_options.no_metered,
    N_("Wait while the network is metered, instead of using it"), NULL },
  { "json", 0, 0, G_OPTION_ARG_NONE, &bt_global_options.json,
    N_("Print one JSON object per line"), NULL },
  { "quiet", 'q', 0, G_OPTION_ARG_NONE, &bt_global_options.quiet,
    N_("Print no progress and no success, only errors"), NULL },
  G_OPTION_ENTRY_NULL
};

/* --- The command line ---------------------------------------------------------------------- */

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
bt_check_arguments (int         n_args,
                    int         n_wanted,
                    const char *synopsis)
{
  if (n_args == n_wanted)
    return TRUE;

  bt_usage_error (n_args < n_wanted ? _("Missing arguments; usage: %s")
                                    : _("Too many arguments; usage: %s"), synopsis);
  return FALSE;
}

static gboolean
has_entry (const GOptionEntry *entries,
           const char         *long_name)
{
  g_assert (long_name != NULL);

  for (const GOptionEntry *entry = entries; entry != NULL && entry->long_name != NULL; entry++)
    {
      if (strcmp (entry->long_name, long_name) == 0)
        return TRUE;
    }

  return FALSE;
}

void
bt_append_command_entries (GArray          *entries,
                           const BtCommand *except,
                           GOptionFlags     flags)
{
  g_assert (entries != NULL);

  for (guint i = 0; bt_commands[i] != NULL; i++)
    {
      if (bt_commands[i] == except || bt_commands[i]->entries == NULL)
        continue;

      for (const GOptionEntry *entry = bt_commands[i]->entries; entry->long_name != NULL; entry++)
        {
          GOptionEntry copy = *entry;

          /* download and upload share some options. */
          if ((except != NULL && has_entry (except->entries, entry->long_name)) ||
              has_entry ((gpointer) entries->data, entry->long_name))
            continue;

          copy.flags |= flags;
          g_array_append_val (entries, copy);
        }
    }
}

GOptionContext *
bt_command_context_new (const BtCommand *command)
{
  GOptionContext *context = g_option_context_new (command->synopsis);
  g_autoptr(GArray) others = g_array_new (TRUE, TRUE, sizeof (GOptionEntry));
  g_autofree char *summary = bt_docs_command_summary (command);

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, summary);
  /* --help after the command's name reaches the command as do_help. */
  g_option_context_set_help_enabled (context, FALSE);

  if (command->entries != NULL)
    g_option_context_add_main_entries (context, command->entries, GETTEXT_PACKAGE);
  g_option_context_add_main_entries (context, bt_global_entries, GETTEXT_PACKAGE);

  /* The other commands' options, hidden: given here, the tool says which command takes
   * them, instead of calling them unknown.  The context keeps a copy of the entries. */
  bt_append_command_entries (others, command, G_OPTION_FLAG_HIDDEN);
  g_option_context_add_main_entries (context, (gpointer) others->data,
                                     GETTEXT_PACKAGE);

  return context;
}

int
bt_command_show_help (GOptionContext *context)
{
  g_autofree char *help = g_option_context_get_help (context, TRUE, NULL);

  fputs (help, stdout);
  return BT_EXIT_SUCCESS;
}

/* The BgMode of @nick, "auto", "in-process" or "service"; FALSE when it is none of them. */
static gboolean
mode_from_nick (const char *nick,
                BgMode     *mode)
{
  g_autoptr(GEnumClass) klass = g_type_class_ref (BG_TYPE_MODE);
  const GEnumValue *value;

  g_assert (nick != NULL && mode != NULL);

  value = g_enum_get_value_by_nick (klass, nick);
  if (value == NULL)
    return FALSE;

  *mode = value->value;
  return TRUE;
}

/* "“auto”, “in-process” or “service”", from the enumeration itself. */
static char *
mode_choices (void)
{
  g_autoptr(GEnumClass) klass = g_type_class_ref (BG_TYPE_MODE);
  GString *list = g_string_new (NULL);

  for (guint i = 0; i < klass->n_values; i++)
    {
      if (i > 0)
        /* Translators: between the last two choices of a list, such as "“auto” or “service”". */
        g_string_append (list, i + 1 < klass->n_values ? ", " : _(" or "));
      g_string_append_printf (list, "“%s”", klass->values[i].value_nick);
    }

  return g_string_free (list, FALSE);
}

BgMode
bt_global_mode (void)
{
  const BtGlobalOptions *options = &bt_global_options;
  BgMode mode;

  if (options->mode != NULL && mode_from_nick (options->mode, &mode))
    return mode;

  /* A person who names an app wants its service when it has one. */
  return options->app_id != NULL ? BG_MODE_AUTO : BG_MODE_IN_PROCESS;
}

static gboolean
check_mode_options (void)
{
  const BtGlobalOptions *options = &bt_global_options;
  BgMode mode;

  if (options->app_id != NULL && !g_application_id_is_valid (options->app_id))
    {
      bt_usage_error (_("--app-id: “%s” is not a valid application id, such as "
                        "org.example.App"), options->app_id);
      return FALSE;
    }

  if (options->mode != NULL && !mode_from_nick (options->mode, &mode))
    {
      g_autofree char *choices = mode_choices ();

      bt_usage_error (_("--mode: “%s” is not a mode; use %s"), options->mode, choices);
      return FALSE;
    }

  if (options->app_id == NULL && bt_global_mode () == BG_MODE_SERVICE)
    {
      bt_usage_error (_("--mode service needs --app-id, the app whose service runs the tasks"));
      return FALSE;
    }

  return TRUE;
}

/* Checks what GOptionContext cannot: values in range. */
static gboolean
check_global_options (void)
{
  const BtGlobalOptions *options = &bt_global_options;

  if (!check_mode_options ())
    return FALSE;

  if (options->database != NULL && *options->database == '\0')
    bt_usage_error (_("--database needs the path of a file"));
  else if (options->max_concurrent != -1 && options->max_concurrent < 1)
    bt_usage_error (_("--max-concurrent needs a number of at least 1"));
  else if (options->max_attempts != -1 && options->max_attempts < 1)
    bt_usage_error (_("--max-attempts needs a number of at least 1"));
  else
    return TRUE;

  return FALSE;
}

/* Whether the option of @entry was given: the options of a command are flags, strings and
 * lists, unset until given. */
static gboolean
entry_is_set (const GOptionEntry *entry)
{
  g_assert (entry != NULL);

  switch (entry->arg)
    {
    case G_OPTION_ARG_NONE:
      return *(gboolean *) entry->arg_data;
    case G_OPTION_ARG_STRING:
    case G_OPTION_ARG_FILENAME:
      return *(char **) entry->arg_data != NULL;
    case G_OPTION_ARG_STRING_ARRAY:
    case G_OPTION_ARG_FILENAME_ARRAY:
      return *(char ***) entry->arg_data != NULL;
    default:
      g_assert_not_reached ();
    }
}

/* "a", "a and b", "a, b and c". */
static char *
join_words (GPtrArray *words)
{
  GString *list = g_string_new (NULL);

  for (guint i = 0; i < words->len; i++)
    {
      if (i > 0)
        /* Translators: between the last two items of a list, such as "--id and --header". */
        g_string_append (list, i + 1 < words->len ? ", " : _(" and "));
      g_string_append (list, g_ptr_array_index (words, i));
    }

  return g_string_free (list, FALSE);
}

/* The commands that take the option @long_name, quoted. */
static GPtrArray *
commands_taking (const char *long_name)
{
  GPtrArray *commands = g_ptr_array_new_with_free_func (g_free);

  for (guint i = 0; bt_commands[i] != NULL; i++)
    {
      if (has_entry (bt_commands[i]->entries, long_name))
        g_ptr_array_add (commands, g_strdup_printf ("“%s”", bt_commands[i]->name));
    }

  return commands;
}

static gboolean
taken_by_the_same_commands (const char *long_name,
                            const char *other_long_name)
{
  for (guint i = 0; bt_commands[i] != NULL; i++)
    {
      if (has_entry (bt_commands[i]->entries, long_name) !=
          has_entry (bt_commands[i]->entries, other_long_name))
        return FALSE;
    }

  return TRUE;
}

/* The options that the same commands take as @long_name, @long_name among them. */
static GPtrArray *
options_like (const char *long_name)
{
  g_autoptr(GArray) entries = g_array_new (TRUE, TRUE, sizeof (GOptionEntry));
  GPtrArray *options = g_ptr_array_new_with_free_func (g_free);

  bt_append_command_entries (entries, NULL, 0);
  for (guint i = 0; i < entries->len; i++)
    {
      const char *name = g_array_index (entries, GOptionEntry, i).long_name;

      if (taken_by_the_same_commands (name, long_name))
        g_ptr_array_add (options, g_strdup_printf ("--%s", name));
    }

  return options;
}

/* The options of other commands, given before @command's name or after it, are a mistake. */
static gboolean
check_other_commands_options (const BtCommand *command)
{
  for (guint i = 0; bt_commands[i] != NULL; i++)
    {
      if (bt_commands[i] == command || bt_commands[i]->entries == NULL)
        continue;

      for (const GOptionEntry *entry = bt_commands[i]->entries; entry->long_name != NULL; entry++)
        {
          g_autoptr(GPtrArray) options = NULL;
          g_autoptr(GPtrArray) commands = NULL;
          g_autofree char *option_list = NULL;
          g_autofree char *command_list = NULL;

          if (has_entry (command->entries, entry->long_name) || !entry_is_set (entry))
            continue;

          options = options_like (entry->long_name);
          commands = commands_taking (entry->long_name);
          option_list = join_words (options);
          command_list = join_words (commands);
          /* Translators: "--output goes only with “download”", "--id and --header go only
           * with “download” and “upload”". */
          bt_usage_error (ngettext ("%s goes only with %s", "%s go only with %s", options->len),
                          option_list, command_list);
          return FALSE;
        }
    }

  return TRUE;
}

/* The value of a string or list option before the command parses its part of the command
 * line: what was given before the command's name. */
typedef struct
{
  const GOptionEntry *entry;
  gpointer            value;
} EarlierValue;

static void
save_earlier_values (GArray             *saved,
                     const GOptionEntry *entries)
{
  for (const GOptionEntry *entry = entries; entry != NULL && entry->long_name != NULL; entry++)
    {
      EarlierValue earlier = { entry, NULL };

      if (entry->arg != G_OPTION_ARG_STRING && entry->arg != G_OPTION_ARG_FILENAME &&
          entry->arg != G_OPTION_ARG_STRING_ARRAY && entry->arg != G_OPTION_ARG_FILENAME_ARRAY)
        continue;

      earlier.value = *(gpointer *) entry->arg_data;
      g_array_append_val (saved, earlier);
    }
}

/* GOptionContext replaces the value of an option given again, and leaves the earlier value to
 * its owner.  As if the whole command line had been parsed at once, a list keeps both, and a
 * string the later one. */
static void
merge_earlier_values (GArray *saved)
{
  for (guint i = 0; i < saved->len; i++)
    {
      const EarlierValue *earlier = &g_array_index (saved, EarlierValue, i);
      gpointer *storage = earlier->entry->arg_data;
      g_autoptr(GStrvBuilder) builder = NULL;

      if (earlier->value == NULL || *storage == earlier->value)
        continue;

      if (earlier->entry->arg == G_OPTION_ARG_STRING ||
          earlier->entry->arg == G_OPTION_ARG_FILENAME)
        {
          g_free (earlier->value);
          continue;
        }

      builder = g_strv_builder_new ();
      g_strv_builder_addv (builder, (const char **) earlier->value);
      g_strv_builder_addv (builder, (const char **) *storage);
      g_strfreev (earlier->value);
      g_strfreev (*storage);
      *storage = g_strv_builder_end (builder);
    }
}

gboolean
bt_command_parse (const BtCommand   *command,
                  GOptionContext    *context,
                  int               *argc,
                  char            ***argv)
{
  g_autoptr(GArray) earlier = g_array_new (FALSE, FALSE, sizeof (EarlierValue));
  g_autoptr(GError) error = NULL;

  save_earlier_values (earlier, command->entries);
  save_earlier_values (earlier, bt_global_entries);

  if (!g_option_context_parse (context, argc, argv, &error))
    {
      bt_usage_error ("%s", error->message);
      return FALSE;
    }
  merge_earlier_values (earlier);

  return check_global_options () && check_other_commands_options (command);
}

/* --- Opening the session ------------------------------------------------------------------- */

static gboolean
report_open_error (BtApp   *app,
                   GError  *error,
                   int     *exit_code)
{
  g_assert (error != NULL);

  /* A session name the library refuses is a mistake on the command line. */
  if (g_error_matches (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT))
    {
      bt_usage_error ("%s", error->message);
      *exit_code = BT_EXIT_USAGE;
      return FALSE;
    }

  *exit_code = bt_exit_for_error (error);
  if (g_error_matches (error, BG_ERROR, BG_ERROR_SERVICE))
    {
      g_autofree char *message =
        g_strdup_printf (_("%s. The transfer service of “%s” is needed with --mode service: "
                           "start it, or use --mode auto or --mode in-process."),
                         error->message, bt_global_options.app_id);

      bt_report_message (app->output, *exit_code, message);
    }
  else if (g_error_matches (error, BG_ERROR, BG_ERROR_BUSY))
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
  const BtGlobalOptions *opts = &bt_global_options;
  g_autoptr(GError) error = NULL;

  if (app->downloader != NULL)
    return TRUE;

  app->downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                                    "session-id", opts->session ? opts->session : DEFAULT_SESSION,
                                    "database-path", opts->database,
                                    "app-id", opts->app_id,
                                    "mode", bt_global_mode (),
                                    NULL);
  if (app->downloader == NULL)
    return report_open_error (app, error, exit_code);

  if (opts->max_concurrent > 0)
    bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (app->downloader), (guint) opts->max_concurrent);
  if (opts->max_attempts > 0)
    bg_task_queue_set_max_attempts (BG_TASK_QUEUE (app->downloader), (guint) opts->max_attempts);
  /* Someone who types the command wants the transfer now, unless told otherwise. */
  bg_task_queue_set_allow_metered (BG_TASK_QUEUE (app->downloader), !opts->no_metered);

  return TRUE;
}

gboolean
bt_app_open_uploader (BtApp *app,
                      int   *exit_code)
{
  const BtGlobalOptions *opts = &bt_global_options;
  g_autoptr(GError) error = NULL;

  if (app->uploader != NULL)
    return TRUE;

  app->uploader = g_initable_new (BG_TYPE_UPLOADER, NULL, &error,
                                  "session-id", opts->session ? opts->session : DEFAULT_SESSION,
                                  "database-path", opts->database,
                                  "app-id", opts->app_id,
                                  "mode", bt_global_mode (),
                                  NULL);
  if (app->uploader == NULL)
    return report_open_error (app, error, exit_code);

  if (opts->max_concurrent > 0)
    bg_task_queue_set_max_concurrent (BG_TASK_QUEUE (app->uploader), (guint) opts->max_concurrent);
  if (opts->max_attempts > 0)
    bg_task_queue_set_max_attempts (BG_TASK_QUEUE (app->uploader), (guint) opts->max_attempts);
  bg_task_queue_set_allow_metered (BG_TASK_QUEUE (app->uploader), !opts->no_metered);

  return TRUE;
}

/* --- Signals ------------------------------------------------------------------------------- */

/* Ends the waits; the transfers stay in the database for a later run. */
static void
interrupt (BtApp *app,
           int    signal_number)
{
  g_assert (app != NULL);

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

/* --- One run ------------------------------------------------------------------------------- */

BtApp *
bt_app_new (void)
{
  BtApp *app = g_new0 (BtApp, 1);

  app->output = bt_output_new (bt_global_options.json, bt_global_options.quiet);
  app->interrupt = g_cancellable_new ();
  app->sigint_source = g_unix_signal_add (SIGINT, sigint_cb, app);
  app->sigterm_source = g_unix_signal_add (SIGTERM, sigterm_cb, app);

  return app;
}

void
bt_app_free (BtApp *app)
{
  g_clear_handle_id (&app->sigint_source, g_source_remove);
  g_clear_handle_id (&app->sigterm_source, g_source_remove);
  g_clear_object (&app->downloader);
  g_clear_object (&app->uploader);
  g_clear_object (&app->interrupt);
  g_clear_pointer (&app->output, bt_output_free);
  g_free (app);
}
