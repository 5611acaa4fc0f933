/* download.c: the smallest complete bg-glib program
 *
 * Usage: download URL DEST [SESSION]
 *
 * Downloads URL into the new file DEST. Kill it and run it again with the same arguments: the
 * identifier is the same, so the download carries on from its last checkpoint.
 * Exit status: 0 success, 2 rejected, 3 retry, 4 failed, 1 when the call itself was wrong.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include <bg-glib.h>

static const char *url, *path;
static GMainLoop *loop;
static int status = 1;

static void
downloaded_cb (GObject *downloader, GAsyncResult *result, gpointer user_data)
{
  static const char *names[] = { [BG_RESPONSE_SUCCESS] = "success", [BG_RESPONSE_RETRY] = "retry",
                                 [BG_RESPONSE_REJECTED] = "rejected",
                                 [BG_RESPONSE_FAILED] = "failed" };
  static const int codes[] = { [BG_RESPONSE_SUCCESS] = 0, [BG_RESPONSE_RETRY] = 3,
                               [BG_RESPONSE_REJECTED] = 2, [BG_RESPONSE_FAILED] = 4 };
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response =
    bg_downloader_download_finish (BG_DOWNLOADER (downloader), result, &error);

  if (response == NULL)
    g_printerr ("Cannot download: %s\n", error->message);
  else
    {
      BgResponseKind kind = bg_response_get_kind (response);
      const GError *why = bg_response_get_error (response);

      g_print ("%s: HTTP %u%s%s\n", names[kind], bg_response_get_status (response),
               why ? ", " : "", why ? why->message : "");
      status = codes[kind];
    }
  g_main_loop_quit (loop);
}

static void
restored_cb (GObject *downloader, GAsyncResult *result, gpointer user_data)
{
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr(GFile) dest = g_file_new_for_commandline_arg (path);
  g_autofree char *dest_path = g_file_get_path (dest);
  /* The same in every run for the same work, so a rerun joins the task instead of restarting. */
  g_autofree char *identifier = g_strconcat ("download:", dest_path, NULL);
  g_autoptr(GError) error = NULL;

  if (!bg_downloader_restore_finish (BG_DOWNLOADER (downloader), result, &error))
    g_printerr ("Earlier downloads were not restored: %s\n", error->message);
  if (msg == NULL)
    {
      g_printerr ("Not a URL: %s\n", url);
      g_main_loop_quit (loop);
      return;
    }
  bg_downloader_download_async (BG_DOWNLOADER (downloader), msg, dest, identifier, NULL, NULL,
                                downloaded_cb, NULL);
}

int
main (int argc, char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgDownloader) downloader = NULL;

  if (argc < 3 || argc > 4)
    {
      g_printerr ("Usage: %s URL DEST [SESSION]\n", argv[0]);
      return 64;
    }
  url = argv[1];
  path = argv[2];

  downloader = bg_downloader_new (argc > 3 ? argv[3] : "org.example.Download", NULL, &error);
  if (downloader == NULL)
    {
      g_printerr ("Cannot open the session: %s\n", error->message);
      return 1;
    }

  loop = g_main_loop_new (NULL, FALSE);
  bg_downloader_restore_async (downloader, NULL, restored_cb, NULL);
  g_main_loop_run (loop);
  g_main_loop_unref (loop);

  return status;
}
