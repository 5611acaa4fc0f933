/* bg-transfer-upload.c: the upload command
 *
 * bg-transfer upload FILE URL [-X PUT|POST] [--protocol auto|plain|tus|ietf] [--allow-tus]
 *                    [--chunk-size BYTES] [--id ID] [-H 'NAME: VALUE']…
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n.h>

#include "bg-transfer-transfer.h"

static char *method;
static char *protocol;
static gboolean allow_tus;
static char *chunk_size;

static const GOptionEntry entries[] = {
  BT_TRANSFER_OPTION_ENTRIES,
  { "method", 'X', 0, G_OPTION_ARG_STRING, &method,
    N_("upload: the HTTP method, PUT or POST (default: PUT)"), N_("METHOD") },
  { "protocol", 0, 0, G_OPTION_ARG_STRING, &protocol,
    N_("upload: auto, plain, tus or ietf (default: auto, which asks the server once a day "
       "and picks tus only with --allow-tus)"), N_("PROTOCOL") },
  { "allow-tus", 0, 0, G_OPTION_ARG_NONE, &allow_tus,
    N_("upload: with --protocol auto, use tus when the server offers it (URL is then where "
       "uploads are created)"), NULL },
  { "chunk-size", 0, 0, G_OPTION_ARG_STRING, &chunk_size,
    N_("upload: with tus or ietf, send at most BYTES per request (default: no limit)"),
    N_("BYTES") },
  G_OPTION_ENTRY_NULL
};

/* The task's options from --protocol, --allow-tus and --chunk-size. */
static BgTaskOptions *
upload_options (void)
{
  g_autoptr(BgTaskOptions) options = bg_task_options_new ();
  g_autoptr(GEnumClass) protocols = g_type_class_ref (BG_TYPE_UPLOAD_PROTOCOL);
  guint64 bytes = 0;

  if (protocol != NULL)
    {
      GEnumValue *value = g_enum_get_value_by_nick (protocols, protocol);

      if (value == NULL)
        {
          bt_usage_error (_("--protocol: “%s” is not a protocol; use auto, plain, tus or ietf"),
                          protocol);
          return NULL;
        }
      bg_task_options_set_upload_protocol (options, value->value);
    }

  if (chunk_size != NULL &&
      !g_ascii_string_to_unsigned (chunk_size, 10, 0, G_MAXINT64, &bytes, NULL))
    {
      bt_usage_error (_("--chunk-size: “%s” is not a number of bytes"), chunk_size);
      return NULL;
    }

  bg_task_options_set_allow_tus (options, allow_tus);
  bg_task_options_set_chunk_size (options, (gint64) bytes);

  return g_steal_pointer (&options);
}

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
  int exit_code;

  if (do_help)
    return bt_command_show_help (context);

  if (!bt_command_parse (&bt_command_upload, context, &argc, &argv) ||
      !bt_check_arguments (argc - 1, 2, "bg-transfer upload FILE URL [-X PUT|POST]") ||
      !bt_transfer_check_identifier () ||
      (http_method = upload_method ()) == NULL ||
      (bt_upload_task_options = upload_options ()) == NULL)
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
  exit_code = bt_transfer_run (app, BG_TASK_KIND_UPLOAD, msg, file);
  g_clear_object (&bt_upload_task_options);

  return exit_code;
}

const BtCommand bt_command_upload = {
  .name = "upload",
  .synopsis = "upload FILE URL [-X PUT|POST] [--protocol auto|plain|tus|ietf] [--allow-tus] "
              "[--chunk-size BYTES] [--id ID] [-H 'NAME: VALUE']…",
  .description = N_("Upload FILE to URL, with PUT unless -X POST is given. A resumable upload "
                    "(tus, or the IETF draft) goes on from what the server has after a cut or "
                    "a kill; its upload URL is kept with the task and never shown."),
  .entries = entries,
  .handle = handle_upload,
};
