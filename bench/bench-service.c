/* bench-service.c: a download through the app's transfer service, and the service's start
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage: bench-service download [--mode in-process|service] [--app-id ID] URL DESTINATION
 *                               DATABASE
 *        bench-service start --app-id ID URL DESTINATION DATABASE
 *
 * download: one BgDownloader, made with the given mode, downloads URL to DESTINATION (which must
 * not exist).  Nothing else runs on the main loop, so that the two modes can be compared: in
 * service mode the client only waits for Submit's reply.  It prints
 *   init_ms   the time g_initable_new() took (in service mode: OpenQueue, and the service's
 *             activation if it was not running)
 *   seconds   from bg_downloader_download_async() to its callback
 *   bytes     the size of the downloaded file
 *
 * start: meant for a bus on which the service is not running yet.  It times, on that bus:
 *   activate_ms  a first call to the service (Get of its Version property): the bus starts
 *                bg-transferd, which answers once it owns its name
 *   call_ms      the same call again, the service now running
 *   open_ms      making a BgDownloader in service mode (OpenQueue: the service opens DATABASE)
 *   small_ms     downloading URL to DESTINATION through the service
 *   bytes        the size of that file
 * and leaves the service idle, with one finished task behind it, for bench/run to read its RSS.
 *
 * Both exit 0 on success, 1 when something failed (said on stderr), 64 on a usage error.
 */

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bg-glib.h>

#include "bg-glib/bg-bus-private.h"

typedef struct
{
  GMainLoop *loop;
  gboolean   ok;
  goffset    bytes;
  gint64     end;
} State;

static gdouble
ms_since (gint64 start)
{
  return (g_get_monotonic_time () - start) / 1000.0;
}

static void
download_done_cb (GObject      *source,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  State *state = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(BgResponse) response = NULL;

  state->end = g_get_monotonic_time ();
  response = bg_downloader_download_finish (BG_DOWNLOADER (source), result, &error);
  if (response == NULL)
    {
      g_printerr ("bench-service: %s\n", error->message);
    }
  else if (bg_response_get_kind (response) != BG_RESPONSE_SUCCESS)
    {
      const GError *response_error = bg_response_get_error (response);

      g_printerr ("bench-service: HTTP %u %s\n", bg_response_get_status (response),
                  response_error != NULL ? response_error->message : "");
    }
  else
    {
      g_autoptr(GFileInfo) info =
        g_file_query_info (bg_response_get_file (response), G_FILE_ATTRIBUTE_STANDARD_SIZE,
                           G_FILE_QUERY_INFO_NONE, NULL, NULL);

      state->bytes = info != NULL ? g_file_info_get_size (info) : -1;
      state->ok = TRUE;
    }

  g_main_loop_quit (state->loop);
}

/* Downloads @url to @path with @downloader; the time it took in seconds, or -1. */
static gdouble
download (BgDownloader *downloader,
          const char   *url,
          const char   *path,
          goffset      *bytes)
{
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GFile) destination = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  State state = { 0 };
  gint64 start;

  g_assert (BG_IS_DOWNLOADER (downloader));

  msg = soup_message_new ("GET", url);
  if (msg == NULL)
    {
      g_printerr ("bench-service: not a URL: %s\n", url);
      return -1;
    }
  destination = g_file_new_for_commandline_arg (path);
  loop = g_main_loop_new (NULL, FALSE);
  state.loop = loop;

  start = g_get_monotonic_time ();
  bg_downloader_download_async (downloader, msg, destination, "bench-service", NULL, NULL,
                                download_done_cb, &state);
  g_main_loop_run (loop);

  *bytes = state.bytes;
  return state.ok ? (state.end - start) / (gdouble) G_USEC_PER_SEC : -1;
}

static BgDownloader *
downloader_new (BgMode       mode,
                const char  *app_id,
                const char  *database,
                gdouble     *init_ms)
{
  g_autoptr(GError) error = NULL;
  BgDownloader *downloader;
  gint64 start = g_get_monotonic_time ();

  downloader = g_initable_new (BG_TYPE_DOWNLOADER, NULL, &error,
                               "session-id", "bench-service",
                               "database-path", database,
                               "app-id", app_id,
                               "mode", mode,
                               NULL);
  *init_ms = ms_since (start);
  if (downloader == NULL)
    g_printerr ("bench-service: %s\n", error->message);

  return downloader;
}

/* A call to the service that opens nothing: Get of its Version property. */
static gboolean
get_version (GDBusConnection *connection,
             const char      *bus_name,
             gdouble         *ms)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GVariant) reply = NULL;
  gint64 start = g_get_monotonic_time ();

  reply = g_dbus_connection_call_sync (connection, bus_name, BG_BUS_OBJECT_PATH,
                                       "org.freedesktop.DBus.Properties", "Get",
                                       g_variant_new ("(ss)", BG_BUS_INTERFACE, "Version"),
                                       G_VARIANT_TYPE ("(v)"), G_DBUS_CALL_FLAGS_NONE,
                                       30 * 1000, NULL, &error);
  *ms = ms_since (start);
  if (reply == NULL)
    {
      g_printerr ("bench-service: %s: %s\n", bus_name, error->message);
      return FALSE;
    }

  return TRUE;
}

static int
command_start (const char *app_id,
               char      **args)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDBusConnection) connection = NULL;
  g_autoptr(BgDownloader) downloader = NULL;
  g_autofree char *bus_name = NULL;
  gdouble activate_ms, call_ms, open_ms, seconds;
  goffset bytes = 0;

  g_assert (args != NULL);

  if (app_id == NULL)
    {
      g_printerr ("bench-service: start needs --app-id\n");
      return 64;
    }
  bus_name = g_strconcat (app_id, BG_BUS_NAME_SUFFIX, NULL);
  connection = g_bus_get_sync (G_BUS_TYPE_SESSION, NULL, &error);
  if (connection == NULL)
    {
      g_printerr ("bench-service: the session bus: %s\n", error->message);
      return 1;
    }

  if (!get_version (connection, bus_name, &activate_ms)
      || !get_version (connection, bus_name, &call_ms))
    return 1;

  downloader = downloader_new (BG_MODE_SERVICE, app_id, args[2], &open_ms);
  if (downloader == NULL)
    return 1;

  seconds = download (downloader, args[0], args[1], &bytes);
  if (seconds < 0)
    return 1;

  g_print ("activate_ms=%.1f call_ms=%.2f open_ms=%.1f small_ms=%.1f bytes=%" G_GOFFSET_FORMAT
           "\n", activate_ms, call_ms, open_ms, seconds * 1000, bytes);

  return 0;
}

static int
command_download (BgMode      mode,
                  const char *app_id,
                  char      **args)
{
  g_autoptr(BgDownloader) downloader = NULL;
  gdouble init_ms, seconds;
  goffset bytes = 0;

  g_assert (args != NULL);

  downloader = downloader_new (mode, app_id, args[2], &init_ms);
  if (downloader == NULL)
    return 1;

  seconds = download (downloader, args[0], args[1], &bytes);
  if (seconds < 0)
    return 1;

  g_print ("init_ms=%.1f seconds=%.3f bytes=%" G_GOFFSET_FORMAT "\n", init_ms, seconds, bytes);

  return 0;
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GOptionContext) context = NULL;
  g_autoptr(GEnumClass) modes = NULL;
  g_autofree char *mode_name = NULL;
  g_autofree char *app_id = NULL;
  GEnumValue *mode;
  const GOptionEntry entries[] = {
    { "mode", 0, 0, G_OPTION_ARG_STRING, &mode_name,
      "in-process (the default) or service", "MODE" },
    { "app-id", 0, 0, G_OPTION_ARG_STRING, &app_id,
      "the app whose transfer service to use", "ID" },
    G_OPTION_ENTRY_NULL
  };

  context = g_option_context_new ("download|start URL DESTINATION DATABASE");
  g_option_context_add_main_entries (context, entries, NULL);
  if (!g_option_context_parse (context, &argc, &argv, &error))
    {
      g_printerr ("bench-service: %s\n", error->message);
      return 64;
    }
  modes = g_type_class_ref (BG_TYPE_MODE);
  mode = g_enum_get_value_by_nick (modes, mode_name != NULL ? mode_name : "in-process");
  if (argc != 5 || mode == NULL)
    {
      g_printerr ("Usage: %s download [--mode in-process|service] [--app-id ID] URL DESTINATION "
                  "DATABASE\n"
                  "       %s start --app-id ID URL DESTINATION DATABASE\n",
                  g_get_prgname (), g_get_prgname ());
      return 64;
    }

  if (strcmp (argv[1], "download") == 0)
    return command_download (mode->value, app_id, argv + 2);
  if (strcmp (argv[1], "start") == 0)
    return command_start (app_id, argv + 2);

  g_printerr ("bench-service: unknown command %s (download or start)\n", argv[1]);
  return 64;
}
