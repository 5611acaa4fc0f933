/* bg-transfer-download.c: the download command
 *
 * bg-transfer download URL [-o FILE] [--id ID] [-H 'NAME: VALUE']…
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-transfer.h"

/* The longest file name most file systems take, in bytes. */
#define MAX_NAME_BYTES 255

static char *output;

static const GOptionEntry entries[] = {
  { "output", 'o', 0, G_OPTION_ARG_FILENAME, &output,
    N_("download: where to save the file (default: the URL’s last part)"), N_("FILE") },
  BT_TRANSFER_OPTION_ENTRIES,
  G_OPTION_ENTRY_NULL
};

/* The last segment of the URL's path, decoded, as a safe file name; NULL when nothing usable
 * is left. */
static char *
name_from_uri (GUri *uri)
{
  const char *path = g_uri_get_path (uri);
  const char *last = strrchr (path, '/') ? strrchr (path, '/') + 1 : path;
  g_autofree char *decoded = g_uri_unescape_string (last, NULL);
  g_autofree char *valid = g_utf8_make_valid (decoded ? decoded : last, -1);
  GString *name = g_string_new (NULL);
  const char *p = valid;

  /* No hidden files: leading dots and spaces go. */
  while (*p == '.' || *p == ' ')
    p++;

  for (; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (c == '/' || c == '\\' || g_unichar_iscntrl (c))
        c = '_';
      if (name->len + g_unichar_to_utf8 (c, NULL) > MAX_NAME_BYTES)
        break;
      g_string_append_unichar (name, c);
    }

  while (name->len > 0 && name->str[name->len - 1] == ' ')
    g_string_truncate (name, name->len - 1);

  if (name->len == 0)
    {
      g_string_free (name, TRUE);
      return NULL;
    }

  return g_string_free (name, FALSE);
}

/* The destination: --output, or the URL's last segment in the current folder. */
static GFile *
download_destination (GUri *uri)
{
  g_autofree char *name = NULL;

  g_assert (uri != NULL);

  if (output != NULL)
    {
      if (*output == '\0')
        {
          bt_usage_error (_("--output needs a file name"));
          return NULL;
        }
      return bt_file_for_argument (output);
    }

  name = name_from_uri (uri);
  if (name == NULL)
    {
      bt_usage_error (_("The URL does not end in a file name; give one with --output"));
      return NULL;
    }

  return bt_file_for_argument (name);
}

static int
handle_download (int      argc,
                 char    *argv[],
                 gboolean do_help)
{
  g_autoptr(GOptionContext) context = bt_command_context_new (&bt_command_download);
  g_autoptr(GUri) uri = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GFile) file = NULL;
  g_autoptr(BtApp) app = NULL;

  if (do_help)
    return bt_command_show_help (context);

  if (!bt_command_parse (&bt_command_download, context, &argc, &argv) ||
      !bt_check_arguments (argc - 1, 1, "bg-transfer download URL [-o FILE]") ||
      !bt_transfer_check_identifier ())
    return BT_EXIT_USAGE;
  if ((uri = bt_transfer_parse_url (argv[1])) == NULL ||
      (msg = bt_transfer_new_message (SOUP_METHOD_GET, uri)) == NULL ||
      (file = download_destination (uri)) == NULL)
    return BT_EXIT_USAGE;

  app = bt_app_new ();
  return bt_transfer_run (app, BG_TASK_KIND_DOWNLOAD, msg, file);
}

const BtCommand bt_command_download = {
  .name = "download",
  .synopsis = "download URL [-o FILE] [--id ID] [-H 'NAME: VALUE']…",
  .description = N_("Download URL into FILE; by default the last part of the URL, in the current "
                    "folder. An existing file is never overwritten."),
  .entries = entries,
  .handle = handle_download,
};
