/* bg-transfer-docs.c: the text of --help and of the bg-transfer(1) manual page
 *
 * Both are made from the tables below, from the commands (bt_commands) and from the tool's
 * GOptionEntry list, so that the manual page, which the build makes by running
 * "bg-transfer --help-man", never disagrees with --help.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-docs.h"
#include "bg-transfer-tool.h"

#define HELP_WIDTH 79

typedef struct
{
  const char *term;   /* not translated: command lines, numbers */
  const char *text;   /* translated */
} BtDocItem;

static const char intro[] =
  N_("bg-transfer downloads and uploads files over HTTP without losing work. Every transfer is "
     "a task kept in a database: when it is cut off by Ctrl-C, a crash or a lost connection, "
     "running the same command again, or “bg-transfer resume”, carries it on from its last "
     "checkpoint.");

static const char identifiers[] =
  N_("Without --id, the identifier of a task is made from the command, the URL and the file "
     "(for example “download-” and a hash), so running the same command again continues the "
     "same task, or tells its result. The identifier is shown when the transfer starts.");

static const char output[] =
  N_("On a terminal, each transfer has a progress bar with the percentage, the bytes, the rate "
     "and the time left. Otherwise only plain lines are printed, without escape sequences. "
     "A download that an earlier run left asks the server for the rest; “resuming from” is "
     "printed only once the server sends it, and when it sends the whole file instead (the "
     "file changed, or the server ignores ranges) the tool says that the download starts over. "
     "URLs are shown without their password. "
     "With --json, every line is one JSON object whose “event” member is “start”, "
     "“progress”, “resumed”, “restarted”, “result”, “task”, “interrupted”, “cancelled”, "
     "“forgotten”, “paused”, “unpaused”, “kept” (a paused task that resume leaves as it is) or "
     "“error”; a result has “identifier”, “operation”, “kind” (success, retry, rejected or "
     "failed), “status”, “reason” and “exit_code”; a “start” or “task” has “mode”, "
     "“in-process” or “service”, where its transfer runs.");

static const char service[] =
  N_("With --app-id ID, the tasks may run in the transfer service of the app ID, bg-transferd, "
     "which owns ID.Transfers on the session bus and goes on after bg-transfer ends: a transfer "
     "interrupted with Ctrl-C then carries on in the service, and “bg-transfer --app-id ID "
     "resume” or the same command tells its result. --mode says where the transfers run: "
     "“in-process”, in bg-transfer itself, the default without --app-id; “service”, in the "
     "app's service, failing when there is none; or “auto”, the default with --app-id, in the "
     "service when it is running or can be started, and in-process otherwise. The service "
     "uses the same task database.");

static const BtDocItem exit_statuses[] = {
  { "0", N_("Success.") },
  { "2", N_("Rejected: the server gave a final answer that is not a success, such as "
            "404 Not Found.") },
  { "3", N_("Retry: the transfer did not complete, but may later, such as after "
            "503 Service Unavailable; the wait the server asks for is printed. Also when "
            "another process is using the task database.") },
  { "4", N_("Failed: trying again will not help, such as after a TLS certificate failure, an "
            "answer that cannot be used, a problem with a local file, when no task has the "
            "given identifier, or when --mode service finds no transfer service.") },
  { "64", N_("The command line is wrong.") },
  { "130", N_("Interrupted by Ctrl-C. The transfer is kept: run the same command again, or "
              "“bg-transfer resume”, to continue it.") },
};

static const char files[] =
  N_("The tasks of a session are kept in $XDG_DATA_HOME/bg-glib/NAME.sqlite (usually "
     "~/.local/share/bg-glib/bg-transfer.sqlite), or in the file given with --database. Only "
     "one process at a time can use it. Downloads are written to a hidden partial file beside "
     "the destination, which appears only once complete.");

static const BtDocItem examples[] = {
  { "bg-transfer download https://example.org/big.iso",
    N_("Download big.iso into the current folder. After Ctrl-C, the same command continues "
       "it.") },
  { "bg-transfer upload -X POST -H 'X-Token: 1234' photo.jpg https://example.org/up",
    N_("Upload photo.jpg with POST and an extra header.") },
  { "bg-transfer --json list",
    N_("List the tasks, one JSON object per line.") },
  { "bg-transfer --app-id org.example.App --mode service download https://example.org/big.iso",
    N_("Download big.iso through the transfer service of org.example.App, which finishes it "
       "even if bg-transfer is interrupted.") },
  { "bg-transfer resume",
    N_("Finish everything that earlier runs left unfinished.") },
};

/* The commands as items: their synopsis and what they do.  Free with g_free(). */
static BtDocItem *
command_items (guint *n_items)
{
  guint n = 0;
  BtDocItem *items;

  while (bt_commands[n] != NULL)
    n++;

  items = g_new0 (BtDocItem, n);
  for (guint i = 0; i < n; i++)
    {
      items[i].term = bt_commands[i]->synopsis;
      items[i].text = bt_commands[i]->description;
    }

  *n_items = n;
  return items;
}

/* --- --help -------------------------------------------------------------------------------- */

/* Appends @text wrapped to HELP_WIDTH columns, each line indented by @indent spaces. */
static void
append_wrapped (GString    *out,
                const char *text,
                guint       indent)
{
  g_auto(GStrv) words = g_strsplit (text, " ", -1);
  guint column = 0;

  for (guint i = 0; words[i] != NULL; i++)
    {
      guint len = (guint) g_utf8_strlen (words[i], -1);

      if (*words[i] == '\0')
        continue;
      if (column > indent && column + 1 + len > HELP_WIDTH)
        {
          g_string_append_c (out, '\n');
          column = 0;
        }
      if (column == 0)
        {
          for (; column < indent; column++)
            g_string_append_c (out, ' ');
        }
      else
        {
          g_string_append_c (out, ' ');
          column++;
        }
      g_string_append (out, words[i]);
      column += len;
    }
  g_string_append_c (out, '\n');
}

static void
append_help_items (GString         *out,
                   const char      *heading,
                   const BtDocItem *items,
                   guint            n_items,
                   guint            indent)
{
  g_string_append_printf (out, "\n%s\n", heading);
  for (guint i = 0; i < n_items; i++)
    {
      guint len = (guint) strlen (items[i].term);

      if (len + 3 < indent)
        {
          /* Short terms (exit statuses) share the line with their text. */
          g_autoptr(GString) item = g_string_new (NULL);

          append_wrapped (item, _(items[i].text), indent);
          g_string_append_printf (out, "  %s", items[i].term);
          g_string_append (out, item->str + 2 + len);
        }
      else
        {
          g_string_append_printf (out, "  %s\n", items[i].term);
          append_wrapped (out, _(items[i].text), indent);
        }
    }
}

char *
bt_docs_help_summary (void)
{
  g_autoptr(GString) out = g_string_new (NULL);
  guint n_commands;
  g_autofree BtDocItem *commands = command_items (&n_commands);

  append_wrapped (out, _(intro), 0);
  append_help_items (out, _("Commands:"), commands, n_commands, 6);

  /* GOptionContext adds the final newline. */
  g_string_truncate (out, out->len - 1);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

char *
bt_docs_command_summary (const BtCommand *command)
{
  g_autoptr(GString) out = g_string_new (NULL);

  append_wrapped (out, _(command->description), 0);

  g_string_truncate (out, out->len - 1);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

char *
bt_docs_help_description (void)
{
  g_autoptr(GString) out = g_string_new (NULL);

  g_string_append_printf (out, "%s\n", _("Identifiers:"));
  append_wrapped (out, _(identifiers), 2);
  g_string_append_printf (out, "\n%s\n", _("Transfer service:"));
  append_wrapped (out, _(service), 2);
  g_string_append_printf (out, "\n%s\n", _("Output:"));
  append_wrapped (out, _(output), 2);
  append_help_items (out, _("Exit status:"), exit_statuses, G_N_ELEMENTS (exit_statuses), 7);
  g_string_append_printf (out, "\n%s\n", _("Files:"));
  append_wrapped (out, _(files), 2);
  append_help_items (out, _("Examples:"), examples, G_N_ELEMENTS (examples), 6);

  g_string_truncate (out, out->len - 1);
  return g_string_free (g_steal_pointer (&out), FALSE);
}

/* --- The manual page ----------------------------------------------------------------------- */

/* Appends @text as roff: backslashes, dashes and typographic characters escaped, and no line
 * starting with a control character. */
static void
append_roff (GString    *out,
             const char *text)
{
  gboolean line_start = out->len == 0 || out->str[out->len - 1] == '\n';

  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (line_start && (c == '.' || c == '\''))
        g_string_append (out, "\\&");
      line_start = c == '\n';

      switch (c)
        {
        case '\\': g_string_append (out, "\\e"); break;
        case '-': g_string_append (out, "\\-"); break;
        case 0x201C: g_string_append (out, "\\(lq"); break;   /* “ */
        case 0x201D: g_string_append (out, "\\(rq"); break;   /* ” */
        case 0x2019: g_string_append (out, "\\(cq"); break;   /* ’ */
        case 0x2026: g_string_append (out, "\\&..."); break;  /* … */
        default: g_string_append_unichar (out, c); break;
        }
    }
}

static void
append_man_paragraph (GString    *out,
                      const char *text)
{
  g_string_append (out, ".PP\n");
  append_roff (out, text);
  g_string_append_c (out, '\n');
}

static void
append_man_items (GString         *out,
                  const char      *section,
                  const BtDocItem *items,
                  guint            n_items)
{
  g_string_append_printf (out, ".SH %s\n", section);
  for (guint i = 0; i < n_items; i++)
    {
      g_string_append (out, ".TP\n.B ");
      append_roff (out, items[i].term);
      g_string_append_c (out, '\n');
      append_roff (out, _(items[i].text));
      g_string_append_c (out, '\n');
    }
}

static void
append_man_option (GString           *out,
                   const GOptionEntry *entry)
{
  g_string_append (out, ".TP\n");
  if (entry->short_name != '\0')
    g_string_append_printf (out, "\\fB\\-%c\\fR, ", entry->short_name);
  g_string_append (out, "\\fB\\-\\-");
  append_roff (out, entry->long_name);
  g_string_append (out, "\\fR");
  if (entry->arg_description != NULL)
    {
      g_string_append (out, " \\fI");
      append_roff (out, _(entry->arg_description));
      g_string_append (out, "\\fR");
    }
  g_string_append_c (out, '\n');
  append_roff (out, _(entry->description));
  g_string_append_c (out, '\n');
}

static void
append_man_synopsis (GString *out)
{
  g_string_append (out, ".SH SYNOPSIS\n");
  for (guint i = 0; bt_commands[i] != NULL; i++)
    {
      g_string_append (out, ".br\n\\fBbg\\-transfer\\fR [\\fIOPTION\\fR\\&...] ");
      append_roff (out, bt_commands[i]->synopsis);
      g_string_append_c (out, '\n');
    }
}

char *
bt_docs_man_page (const GOptionEntry *entries)
{
  g_autoptr(GString) out = g_string_new (NULL);
  guint n_commands;
  g_autofree BtDocItem *commands = command_items (&n_commands);

  g_string_append (out, ".\\\" Made by \"bg-transfer --help-man\" from tools/bg-transfer-docs.c\n");
  g_string_append_printf (out, ".TH BG\\-TRANSFER 1 \"\" \"bg-glib %s\" \"User Commands\"\n",
                          PACKAGE_VERSION);
  g_string_append (out, ".SH NAME\nbg\\-transfer \\- ");
  append_roff (out, _("durable HTTP downloads and uploads"));
  g_string_append_c (out, '\n');
  append_man_synopsis (out);

  g_string_append (out, ".SH DESCRIPTION\n");
  append_roff (out, _(intro));
  g_string_append_c (out, '\n');
  append_man_paragraph (out, _(identifiers));
  append_man_items (out, "COMMANDS", commands, n_commands);

  g_string_append (out, ".SH OPTIONS\n");
  for (const GOptionEntry *entry = entries; entry->long_name != NULL; entry++)
    {
      if ((entry->flags & G_OPTION_FLAG_HIDDEN) == 0 && entry->description != NULL)
        append_man_option (out, entry);
    }

  g_string_append (out, ".SH TRANSFER SERVICE\n");
  append_roff (out, _(service));
  g_string_append_c (out, '\n');
  g_string_append (out, ".SH OUTPUT\n");
  append_roff (out, _(output));
  g_string_append_c (out, '\n');
  append_man_items (out, "EXIT STATUS", exit_statuses, G_N_ELEMENTS (exit_statuses));
  g_string_append (out, ".SH FILES\n");
  append_roff (out, _(files));
  g_string_append_c (out, '\n');
  append_man_items (out, "EXAMPLES", examples, G_N_ELEMENTS (examples));

  return g_string_free (g_steal_pointer (&out), FALSE);
}
