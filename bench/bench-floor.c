/* bench-floor.c: the least a durable download of many small files costs through libsoup
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Usage: bench-floor [--ca FILE] LIST FOLDER [MAX-CONCURRENT]
 *
 * LIST holds one http:// or https:// URL per line, as for bench-many, and --ca names the CA
 * certificates (PEM) the session trusts for https:// (HTTP/2 when the server offers it).  Each
 * URL is fetched through one
 * SoupSession, MAX-CONCURRENT (8) at a time, its body kept in memory; a worker thread then does
 * what any download that survives a power cut must do before it calls the file done: write it
 * under a temporary name in FOLDER, fsync it, rename it to the last segment of its URL without
 * replacing anything, and fsync the folder.  Nothing else: no database, no resume, no checks of
 * what is on the disk, no progress.  bench/run calls it in cases 4 and 12, next to bench-many, to show
 * how much of bg-glib's time any durable client on libsoup would pay.  Exits 0 when every file
 * was published, 1 when any was not (named on stderr), 64 on a usage error.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <libsoup/soup.h>

#include "bench-list.h"

typedef struct
{
  SoupSession *session;
  GMainLoop   *loop;
  GStrv        urls;
  const char  *folder;
  guint        next;
  guint        running;
  guint        max_running;
  guint        failed;
} State;

typedef struct
{
  State  *state;
  char   *url;
  char   *path;
  GBytes *body;
} Fetch;

static void start_more (State *state);

static void
fetch_free (Fetch *fetch)
{
  g_free (fetch->url);
  g_free (fetch->path);
  g_clear_pointer (&fetch->body, g_bytes_unref);
  g_free (fetch);
}

/* Returns 0, or the errno of the open or fsync that failed (close() cannot change it). */
static int
fsync_folder (const char *folder)
{
  int fd = open (folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int saved_errno = 0;

  if (fd < 0)
    return errno;
  if (fsync (fd) != 0)
    saved_errno = errno;
  close (fd);

  return saved_errno;
}

/* Write, fsync, rename without replacing, fsync the folder. */
static void
publish_thread (GTask        *task,
                gpointer      source_object,
                gpointer      task_data,
                GCancellable *cancellable)
{
  Fetch *fetch = task_data;
  g_autofree char *folder = g_path_get_dirname (fetch->path);
  g_autofree char *temporary = g_strconcat (fetch->path, ".part", NULL);
  gsize size;
  const guint8 *data = g_bytes_get_data (fetch->body, &size);
  gsize done = 0;
  int saved_errno = 0;
  int fd;

  fd = open (temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0)
    saved_errno = errno;
  else
    {
      while (saved_errno == 0 && done < size)
        {
          gssize n = write (fd, data + done, size - done);

          if (n >= 0)
            done += n;
          else if (errno != EINTR)
            saved_errno = errno;
        }
      if (saved_errno == 0 && fsync (fd) != 0)
        saved_errno = errno;
      close (fd);
      if (saved_errno == 0 &&
          renameat2 (AT_FDCWD, temporary, AT_FDCWD, fetch->path, RENAME_NOREPLACE) != 0)
        saved_errno = errno;
      if (saved_errno != 0)
        unlink (temporary);
    }
  if (saved_errno == 0)
    saved_errno = fsync_folder (folder);

  if (saved_errno != 0)
    g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved_errno), "%s: %s",
                             fetch->path, g_strerror (saved_errno));
  else
    g_task_return_boolean (task, TRUE);
}

/* One URL is done with, published or not: the next may start. */
static void
fetch_ended (State    *state,
             gboolean  published)
{
  if (!published)
    state->failed++;
  state->running--;
  start_more (state);
}

static void
published_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  State *state = user_data;
  g_autoptr(GError) error = NULL;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    g_printerr ("bench-floor: %s\n", error->message);

  fetch_ended (state, error == NULL);
}

static void
fetched_cb (GObject      *object,
            GAsyncResult *result,
            gpointer      user_data)
{
  Fetch *fetch = user_data;
  State *state = fetch->state;
  SoupMessage *msg = soup_session_get_async_result_message (state->session, result);
  g_autoptr(GError) error = NULL;
  g_autoptr(GTask) task = NULL;

  fetch->body = soup_session_send_and_read_finish (state->session, result, &error);
  if (fetch->body == NULL || !SOUP_STATUS_IS_SUCCESSFUL (soup_message_get_status (msg)))
    {
      g_printerr ("bench-floor: %s: %s\n", fetch->url,
                  error != NULL ? error->message : soup_message_get_reason_phrase (msg));
      fetch_free (fetch);
      fetch_ended (state, FALSE);
      return;
    }

  task = g_task_new (NULL, NULL, published_cb, state);
  g_task_set_task_data (task, fetch, (GDestroyNotify) fetch_free);
  g_task_run_in_thread (task, publish_thread);
}

static void
start_more (State *state)
{
  while (state->running < state->max_running && state->urls[state->next] != NULL)
    {
      const char *url = g_strstrip (state->urls[state->next++]);
      g_autoptr(SoupMessage) msg = NULL;
      g_autofree char *basename = NULL;
      Fetch *fetch;

      if (*url == '\0')
        continue;

      msg = soup_message_new ("GET", url);
      if (msg == NULL)
        {
          g_printerr ("bench-floor: not a URL: %s\n", url);
          state->failed++;
          continue;
        }

      basename = g_path_get_basename (g_uri_get_path (soup_message_get_uri (msg)));
      fetch = g_new0 (Fetch, 1);
      fetch->state = state;
      fetch->url = g_strdup (url);
      fetch->path = g_build_filename (state->folder, basename, NULL);
      state->running++;
      soup_session_send_and_read_async (state->session, msg, G_PRIORITY_DEFAULT, NULL,
                                        fetched_cb, fetch);
    }

  if (state->running == 0 && state->urls[state->next] == NULL)
    g_main_loop_quit (state->loop);
}

int
main (int   argc,
      char *argv[])
{
  g_autoptr(GError) error = NULL;
  g_autofree char *ca_path = NULL;
  g_autoptr(SoupSession) session = NULL;
  g_autoptr(GMainLoop) loop = NULL;
  g_auto(GStrv) urls = NULL;
  State state = { 0 };

  urls = bench_list_parse ("bench-floor", "LIST FOLDER [MAX-CONCURRENT]", 2, &argc, &argv,
                           &ca_path, &state.max_running);
  if (urls == NULL)
    return 64;
  session = soup_session_new_with_options ("max-conns-per-host", 32, "timeout", 0, NULL);
  if (ca_path != NULL)
    {
      g_autoptr(GTlsDatabase) db = bench_list_tls_database (ca_path, &error);

      if (db == NULL)
        {
          g_printerr ("bench-floor: %s: %s\n", ca_path, error->message);
          return 64;
        }
      soup_session_set_tls_database (session, db);
    }
  loop = g_main_loop_new (NULL, FALSE);

  state.session = session;
  state.loop = loop;
  state.urls = urls;
  state.folder = argv[2];

  start_more (&state);
  if (state.running > 0)
    g_main_loop_run (loop);

  return state.failed > 0 ? 1 : 0;
}
