/* bg-transfer-upload.c: the upload command
 *
 * bg-transfer upload FILE URL [-X PUT|POST] [--id ID] [-H 'NAME: VALUE']…
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-transfer.h"

static char *method;

static const GOptionEntry entries[] = {
  BT_TRANSFER_OPTION_ENTRIES,
  { "method", 'X', 0, G_OPTION_ARG_STRING, &method,
    N_("upload: the HTTP method, PUT or POST (default: PUT)"), N_("METHOD") },
  G_OPTION_ENTRY_NULL
};

static const char *
upload_method (void)
{
  if (method == NULL || g_ascii_strcasecmp (method, "PUT") == 0)
    return SOUP_METHOD_PUT;
  if (g_ascii_strcasecmp (method, "POST") == 0)
    return SOUP_METHOD_POST;

  bt_usage_error (_("The method must be PUT or POST, not “%s”"), method);
  return NULL;
}

static int
handle_upload (int      argc,
               char    *argv[],
               gboolean do_help)
{
  g_autoptr(GOptionContext) context = bt_command_context_new (&bt_command_upload);
  g_autoptr(GUri) uri = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GFile) file = NULL;
  g_autoptr(BtApp) app = NULL;
  const char *http_method;

  if (do_help)
    return bt_command_show_help (context);

  if (!bt_command_parse (&bt_command_upload, context, &argc, &argv) ||
      !bt_check_arguments (argc - 1, 2, "bg-transfer upload FILE URL [-X PUT|POST]") ||
      !bt_transfer_check_identifier () ||
      (http_method = upload_method ()) == NULL)
    return BT_EXIT_USAGE;
  if (*argv[1] == '\0')
    {
      bt_usage_error (_("The file to upload has an empty name"));
      return BT_EXIT_USAGE;
    }
  if ((uri = bt_transfer_parse_url (argv[2])) == NULL ||
      (msg = bt_transfer_new_message (http_method, uri)) == NULL)
    return BT_EXIT_USAGE;
  file = bt_file_for_argument (argv[1]);

  app = bt_app_new ();
  return bt_transfer_run (app, BG_TASK_KIND_UPLOAD, msg, file);
}

const BtCommand bt_command_upload = {
  .name = "upload",
  .synopsis = "upload FILE URL [-X PUT|POST] [--id ID] [-H 'NAME: VALUE']…",
  .description = N_("Upload FILE to URL, with PUT unless -X POST is given."),
  .entries = entries,
  .handle = handle_upload,
};
