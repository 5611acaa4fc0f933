/* bg-transfer.c: durable HTTP downloads and uploads from the command line
 *
 * This file reads the options given before the command's name and hands over to the command,
 * which parses the rest.  Each command is a file of its own, bg-transfer-NAME.c, with its own
 * options and a row in bt_commands; what they share is in bg-transfer-tool.c.  The tool uses only the public API of bg-glib, as any app would.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <locale.h>
#include <stdio.h>
#include <string.h>

#include <glib/gi18n.h>

#include "bg-transfer-tool.h"
#include "bg-transfer-docs.h"

/* In the order of --help and of the manual page. */
const BtCommand *const bt_commands[] = {
  &bt_command_download,
  &bt_command_upload,
  &bt_command_list,
  &bt_command_resume,
  &bt_command_cancel,
  &bt_command_forget,
  &bt_command_pause,
  &bt_command_unpause,
  NULL
};

static gboolean help_man;
static gboolean version;

/* The tool's own options, which it answers itself: the commands do not parse them. */
static const GOptionEntry tool_entries[] = {
  { "version", 0, 0, G_OPTION_ARG_NONE, &version,
    N_("Print the version and exit"), NULL },
  { "help-man", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_NONE, &help_man,
    "Print the manual page in roff and exit", NULL },
  G_OPTION_ENTRY_NULL
};

static void
i18n_init (void)
{
  setlocale (LC_ALL, "");
#ifdef ENABLE_NLS
  bindtextdomain (GETTEXT_PACKAGE, LOCALEDIR);
  bind_textdomain_codeset (GETTEXT_PACKAGE, "UTF-8");
  textdomain (GETTEXT_PACKAGE);
#endif
}

static void
append_entries (GArray             *entries,
                const GOptionEntry *table)
{
  for (const GOptionEntry *entry = table; entry->long_name != NULL; entry++)
    g_array_append_val (entries, *entry);
}

/* Every option, as --help and the manual page list them: the global ones, each command's,
 * then the tool's own. */
static GArray *
all_entries (void)
{
  GArray *entries = g_array_new (TRUE, TRUE, sizeof (GOptionEntry));

  append_entries (entries, bt_global_entries);
  bt_append_command_entries (entries, NULL, 0);
  append_entries (entries, tool_entries);

  return entries;
}

static GOptionContext *
make_option_context (const GOptionEntry *entries)
{
  GOptionContext *context = g_option_context_new (_("COMMAND [ARGUMENT…]"));
  g_autofree char *summary = bt_docs_help_summary ();
  g_autofree char *description = bt_docs_help_description ();

  g_option_context_set_translation_domain (context, GETTEXT_PACKAGE);
  g_option_context_add_main_entries (context, entries, GETTEXT_PACKAGE);
  g_option_context_set_summary (context, summary);
  g_option_context_set_description (context, description);
  /* Parsing stops at the command's name: the command parses the rest. */
  g_option_context_set_strict_posix (context, TRUE);

  return context;
}

static const BtCommand *
find_command (const char *name)
{
  for (guint i = 0; bt_commands[i] != NULL; i++)
    {
      if (strcmp (bt_commands[i]->name, name) == 0)
        return bt_commands[i];
    }

  return NULL;
}

static const GOptionEntry *
find_long_option (const GOptionEntry *entries,
                  const char         *name)
{
  for (const GOptionEntry *entry = entries; entry->long_name != NULL; entry++)
    {
      if (strcmp (entry->long_name, name) == 0)
        return entry;
    }

  return NULL;
}

/* How many words after it an option of @short_name takes as its value: 0 or 1. */
static int
short_option_values (const GOptionEntry *entries,
                     char                short_name)
{
  for (const GOptionEntry *entry = entries; entry->long_name != NULL; entry++)
    {
      if (entry->short_name == short_name)
        return entry->arg != G_OPTION_ARG_NONE;
    }

  return 0;
}

/* Looks through the words after the command's name, as GOptionContext would, for what the
 * tool answers itself: --version and --help-man, which it takes anywhere, and a request for
 * help: -h, -?, --help or --help-all, but not as the value of an option such as -o. */
static gboolean
scan_after_command (int                 argc,
                    char               *argv[],
                    const GOptionEntry *entries)
{
  for (int i = 1; i < argc && strcmp (argv[i], "--") != 0; i++)
    {
      const char *word = argv[i];
      const GOptionEntry *entry;

      if (strcmp (word, "--help") == 0 || strcmp (word, "--help-all") == 0)
        return TRUE;

      if (g_str_has_prefix (word, "--") && (entry = find_long_option (entries, word + 2)))
        {
          if (entry->arg_data == &version || entry->arg_data == &help_man)
            *(gboolean *) entry->arg_data = TRUE;
          /* GOptionContext takes the next word as the value, whatever it looks like. */
          else if (entry->arg != G_OPTION_ARG_NONE)
            i++;
        }
      else if (word[0] == '-' && word[1] != '-')
        {
          /* Short options, alone or grouped as in -qo FILE. */
          for (const char *c = word + 1; *c != '\0'; c++)
            {
              if (*c == 'h' || *c == '?')
                return TRUE;
              i += short_option_values (entries, *c);
            }
        }
    }

  return FALSE;
}

/* --help-man and --version; FALSE when neither was given. */
static gboolean
print_about_the_tool (const GOptionEntry *entries)
{
  if (help_man)
    {
      g_autofree char *page = bt_docs_man_page (entries);

      fputs (page, stdout);
      return TRUE;
    }
  if (version)
    {
      printf ("bg-transfer %s\n", PACKAGE_VERSION);
      return TRUE;
    }

  return FALSE;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GArray) entries = NULL;
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GError) error = NULL;
  const BtCommand *command;
  gboolean do_help;

  i18n_init ();

  entries = all_entries ();
  context = make_option_context ((gpointer) entries->data);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      bt_usage_error ("%s", error->message);
      return BT_EXIT_USAGE;
    }

  /* The help wins, as GOptionContext prints it as soon as it meets it. */
  do_help = argc >= 2 && scan_after_command (argc - 1, argv + 1, (gpointer) entries->data);
  if (!do_help && print_about_the_tool ((gpointer) entries->data))
    return BT_EXIT_SUCCESS;

  if (argc < 2)
    {
      bt_usage_error (_("No command given"));
      return BT_EXIT_USAGE;
    }

  command = find_command (argv[1]);
  if (command == NULL && do_help)
    return bt_command_show_help (context);
  if (command == NULL)
    {
      bt_usage_error (_("Unknown command “%s”"), argv[1]);
      return BT_EXIT_USAGE;
    }

  /* From the command's name on, as GOptionContext expects a program's. */
  return command->handle (argc - 1, argv + 1, do_help);
}
