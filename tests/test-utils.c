/* test-utils.c: helpers shared by the C test suites
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gstdio.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "test-utils.h"

struct _BgTestServer
{
  GSubprocess *process;
  char        *root;
  char        *base;
  gboolean     own_root;
  SoupSession *session;
};

BgTestServer *
bg_test_server_new (const char *root,
                    gboolean    tls)
{
  g_autoptr(GSubprocessLauncher) launcher = NULL;
  g_autoptr(GError) error = NULL;
  g_autoptr(GDataInputStream) out = NULL;
  g_autofree char *line = NULL;
  g_autofree char *cert = NULL;
  g_autofree char *key = NULL;
  BgTestServer *server = g_new0 (BgTestServer, 1);
  guint port;

  if (root == NULL)
    {
      server->root = bg_test_make_tmpdir ();
      server->own_root = TRUE;
    }
  else
    server->root = g_strdup (root);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_STDIN_PIPE |
                                        G_SUBPROCESS_FLAGS_STDOUT_PIPE);
  if (tls)
    {
      cert = g_test_build_filename (G_TEST_DIST, "fixtures", "test-cert.pem", NULL);
      key = g_test_build_filename (G_TEST_DIST, "fixtures", "test-key.pem", NULL);
      server->process = g_subprocess_launcher_spawn (launcher, &error, PYTHON3, FAULT_SERVER,
                                                     "--root", server->root,
                                                     "--tls", cert, key, NULL);
    }
  else
    server->process = g_subprocess_launcher_spawn (launcher, &error, PYTHON3, FAULT_SERVER,
                                                   "--root", server->root, NULL);
  g_assert_no_error (error);

  out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (server->process));
  line = g_data_input_stream_read_line_utf8 (out, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);
  g_assert_true (g_str_has_prefix (line, "PORT "));
  port = (guint) g_ascii_strtoull (line + 5, NULL, 10);
  g_assert_cmpuint (port, >, 0);

  server->base = g_strdup_printf ("%s://127.0.0.1:%u", tls ? "https" : "http", port);
  server->session = soup_session_new_with_options ("timeout", 30, NULL);
  if (tls)
    {
      /* The control requests trust the test certificate; the code under test does not. */
      g_autoptr(GTlsDatabase) db = g_tls_file_database_new (cert, &error);

      g_assert_no_error (error);
      soup_session_set_tls_database (server->session, db);
    }

  return server;
}

void
bg_test_server_free (BgTestServer *server)
{
  if (server == NULL)
    return;

  if (server->process != NULL)
    {
      /* Closing stdin makes the server exit; the signal is for a server that is stuck. */
      g_output_stream_close (g_subprocess_get_stdin_pipe (server->process), NULL, NULL);
      g_subprocess_send_signal (server->process, SIGTERM);
      g_subprocess_wait (server->process, NULL, NULL);
      g_clear_object (&server->process);
    }

  if (server->own_root)
    bg_test_rm_rf (server->root);

  g_clear_object (&server->session);
  g_free (server->root);
  g_free (server->base);
  g_free (server);
}

const char *
bg_test_server_get_root (BgTestServer *server)
{
  return server->root;
}

char *
bg_test_server_url (BgTestServer *server,
                    const char   *path_and_query)
{
  return g_strconcat (server->base, path_and_query, NULL);
}

static GBytes *
control_request (BgTestServer *server,
                 const char   *method,
                 const char   *path)
{
  g_autofree char *url = bg_test_server_url (server, path);
  g_autoptr(SoupMessage) msg = soup_message_new (method, url);
  g_autoptr(GError) error = NULL;
  GBytes *bytes;

  /* The server is another process, so a blocking call cannot deadlock here. */
  bytes = soup_session_send_and_read (server->session, msg, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (soup_message_get_status (msg), <, 300);

  return bytes;
}

JsonNode *
bg_test_server_stats (BgTestServer *server)
{
  g_autoptr(GBytes) bytes = control_request (server, "GET", "/_stats");
  g_autoptr(GError) error = NULL;
  gsize len;
  const char *data = g_bytes_get_data (bytes, &len);
  /* The body has no terminating NUL of its own. */
  g_autofree char *text = g_strndup (data, len);
  JsonNode *node = json_from_string (text, &error);

  g_assert_no_error (error);

  return node;
}

gint64
bg_test_server_stat_int (BgTestServer *server,
                         const char   *member)
{
  g_autoptr(JsonNode) node = bg_test_server_stats (server);

  return json_object_get_int_member (json_node_get_object (node), member);
}

void
bg_test_server_reset (BgTestServer *server)
{
  g_autoptr(GBytes) bytes = control_request (server, "POST", "/_reset");
}

static gboolean
flag_cb (gpointer data)
{
  *(gboolean *) data = TRUE;

  return G_SOURCE_REMOVE;
}

void
bg_test_server_wait_idle (BgTestServer *server,
                          guint         timeout_seconds)
{
  gint64 deadline = g_get_monotonic_time () + timeout_seconds * G_USEC_PER_SEC;

  /* The server is another process: there is nothing to be notified of, so ask. */
  while (bg_test_server_stat_int (server, "active") > 0)
    {
      gboolean again = FALSE;

      if (g_get_monotonic_time () > deadline)
        g_error ("The test server still had requests in progress after %u seconds",
                 timeout_seconds);
      g_timeout_add (20, flag_cb, &again);
      bg_test_wait_for (&again, 10);
    }
}

void
bg_test_server_replace (BgTestServer *server,
                        const char   *relpath,
                        const char   *from_relpath)
{
  g_autofree char *path = g_uri_escape_string (relpath, NULL, FALSE);
  g_autofree char *from = g_uri_escape_string (from_relpath, NULL, FALSE);
  g_autofree char *control = g_strdup_printf ("/_replace?path=%s&from=%s", path, from);
  g_autoptr(GBytes) bytes = control_request (server, "POST", control);
}

struct _BgTestHttpServer
{
  SoupServer   *server;
  /* The server's context: its own thread's, or its creator's thread-default. */
  GMainContext *context;
  GThread      *thread;
  GMainLoop    *loop;
  char         *base;
  GMutex        mutex;
  GCond         cond;
  gboolean      ready;
};

/* Called on the server's context, which is thread-default there. */
static void
http_server_listen (BgTestHttpServer *self)
{
  g_autoptr(GError) error = NULL;
  GSList *uris;

  g_assert (self->server == NULL);

  self->server = soup_server_new ("server-header", "bg-test-server ", NULL);
  soup_server_listen_local (self->server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY, &error);
  g_assert_no_error (error);

  uris = soup_server_get_uris (self->server);
  g_assert_nonnull (uris);
  self->base = g_strdup_printf ("http://127.0.0.1:%d", g_uri_get_port (uris->data));
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
}

static void
http_server_disconnect (BgTestHttpServer *self)
{
  g_assert (self->server != NULL);

  /* Connections close from idles on the server's context: let them run. */
  soup_server_disconnect (self->server);
  while (g_main_context_iteration (self->context, FALSE))
    ;
}

static gpointer
http_server_thread (gpointer data)
{
  BgTestHttpServer *self = data;

  g_main_context_push_thread_default (self->context);
  http_server_listen (self);

  g_mutex_lock (&self->mutex);
  self->ready = TRUE;
  g_cond_signal (&self->cond);
  g_mutex_unlock (&self->mutex);

  g_main_loop_run (self->loop);

  http_server_disconnect (self);
  g_main_context_pop_thread_default (self->context);

  return NULL;
}

BgTestHttpServer *
bg_test_http_server_new (BgTestHttpServerFlags flags)
{
  BgTestHttpServer *self = g_new0 (BgTestHttpServer, 1);

  g_mutex_init (&self->mutex);
  g_cond_init (&self->cond);

  if (flags & BG_TEST_HTTP_SERVER_IN_THREAD)
    {
      self->context = g_main_context_new ();
      self->loop = g_main_loop_new (self->context, FALSE);
      self->thread = g_thread_new ("bg-test-http-server", http_server_thread, self);

      g_mutex_lock (&self->mutex);
      while (!self->ready)
        g_cond_wait (&self->cond, &self->mutex);
      g_mutex_unlock (&self->mutex);
    }
  else
    {
      self->context = g_main_context_ref_thread_default ();
      http_server_listen (self);
    }

  return self;
}

typedef struct
{
  BgTestHttpServer   *self;
  const char         *path;
  SoupServerCallback  callback;
  gpointer            user_data;
  gboolean            done;
} AddHandler;

static gboolean
add_handler_cb (gpointer data)
{
  AddHandler *add = data;

  soup_server_add_handler (add->self->server, add->path, add->callback, add->user_data, NULL);

  g_mutex_lock (&add->self->mutex);
  add->done = TRUE;
  g_cond_signal (&add->self->cond);
  g_mutex_unlock (&add->self->mutex);

  return G_SOURCE_REMOVE;
}

void
bg_test_http_server_add_handler (BgTestHttpServer   *self,
                                 const char         *path,
                                 SoupServerCallback  callback,
                                 gpointer            user_data)
{
  AddHandler add = { self, path, callback, user_data, FALSE };

  if (self->thread == NULL)
    {
      soup_server_add_handler (self->server, path, callback, user_data, NULL);
      return;
    }

  /* A SoupServer is not thread-safe: change it on its own thread, and wait. */
  g_main_context_invoke (self->context, add_handler_cb, &add);
  g_mutex_lock (&self->mutex);
  while (!add.done)
    g_cond_wait (&self->cond, &self->mutex);
  g_mutex_unlock (&self->mutex);
}

char *
bg_test_http_server_url (BgTestHttpServer *self,
                         const char       *path_and_query)
{
  return g_strconcat (self->base, path_and_query, NULL);
}

SoupServer *
bg_test_http_server_get_server (BgTestHttpServer *self)
{
  return self->server;
}

static gboolean
quit_loop_cb (gpointer data)
{
  g_main_loop_quit (data);

  return G_SOURCE_REMOVE;
}

void
bg_test_http_server_free (BgTestHttpServer *self)
{
  if (self == NULL)
    return;

  if (self->thread != NULL)
    {
      /* The thread disconnects the server once its loop stops. */
      g_main_context_invoke (self->context, quit_loop_cb, self->loop);
      g_thread_join (self->thread);
      g_clear_pointer (&self->loop, g_main_loop_unref);
    }
  else
    http_server_disconnect (self);

  /* Nothing, not a connection nor a message, may outlive the server. */
  g_assert_cmpuint (G_OBJECT (self->server)->ref_count, ==, 1);
  g_assert_finalize_object (g_steal_pointer (&self->server));

  g_main_context_unref (self->context);
  g_mutex_clear (&self->mutex);
  g_cond_clear (&self->cond);
  g_free (self->base);
  g_free (self);
}

static gboolean
keep_going_cb (gpointer data)
{
  return G_SOURCE_CONTINUE;
}

void
bg_test_assert_finalized (gpointer *object)
{
  GMainContext *context = g_main_context_ref_thread_default ();
  gint64 deadline = g_get_monotonic_time () + 5 * G_USEC_PER_SEC;
  GSource *tick = g_timeout_source_new (20);
  g_autofree char *name = NULL;
  GObject *weak;

  g_assert_nonnull (object);
  g_assert_true (G_IS_OBJECT (*object));

  weak = g_steal_pointer (object);
  name = g_strdup (G_OBJECT_TYPE_NAME (weak));
  g_object_add_weak_pointer (weak, (gpointer *) &weak);
  g_object_unref (weak);

  /* Sources that still hold a reference run out; a reference cycle never does.  The tick
   * wakes the loop up to look again when the last reference goes on another thread. */
  g_source_set_callback (tick, keep_going_cb, NULL, NULL);
  g_source_attach (tick, context);
  while (weak != NULL && g_get_monotonic_time () < deadline)
    g_main_context_iteration (context, TRUE);
  g_source_destroy (tick);
  g_source_unref (tick);

  if (weak != NULL)
    g_error ("%s %p was not finalised: %u references are left", name, (gpointer) weak,
             G_OBJECT (weak)->ref_count);

  g_main_context_unref (context);
}

void
bg_test_wait_finalized (GWeakRef *ref)
{
  GMainContext *context = g_main_context_ref_thread_default ();
  gint64 deadline = g_get_monotonic_time () + 30 * G_USEC_PER_SEC;
  GSource *tick = g_timeout_source_new (20);
  GObject *object;

  /* The tick wakes the loop up to look again when the last reference goes on another thread. */
  g_source_set_callback (tick, keep_going_cb, NULL, NULL);
  g_source_attach (tick, context);
  while ((object = g_weak_ref_get (ref)) != NULL && g_get_monotonic_time () < deadline)
    {
      g_object_unref (object);
      g_main_context_iteration (context, TRUE);
    }
  g_source_destroy (tick);
  g_source_unref (tick);

  if (object != NULL)
    g_error ("%s %p was not finalised within 30 seconds: %u references are left",
             G_OBJECT_TYPE_NAME (object), (gpointer) object, object->ref_count - 1);

  g_weak_ref_clear (ref);
  g_main_context_unref (context);
}

char *
bg_test_make_tmpdir (void)
{
  g_autoptr(GError) error = NULL;
  char *dir = g_dir_make_tmp ("bg-test-XXXXXX", &error);

  g_assert_no_error (error);

  return dir;
}

void
bg_test_rm_rf (const char *path)
{
  GDir *dir;
  const char *name;

  if (path == NULL)
    return;

  dir = g_dir_open (path, 0, NULL);
  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          if (g_file_test (child, G_FILE_TEST_IS_DIR) && !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            bg_test_rm_rf (child);
          else
            g_unlink (child);
        }
      g_dir_close (dir);
      g_rmdir (path);
    }
  else
    g_unlink (path);
}

char *
bg_test_write_random_file (const char *path,
                           gsize       size,
                           guint32     seed)
{
  g_autoptr(GRand) rand = g_rand_new_with_seed (seed);
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guint32 *block = g_new (guint32, 16384);
  FILE *fp = fopen (path, "wb");
  gsize left = size;

  g_assert_nonnull (fp);

  while (left > 0)
    {
      gsize n = MIN (left, 16384 * sizeof (guint32));

      for (guint i = 0; i < 16384; i++)
        block[i] = g_rand_int (rand);
      g_assert_cmpuint (fwrite (block, 1, n, fp), ==, n);
      g_checksum_update (checksum, (const guchar *) block, n);
      left -= n;
    }

  g_assert_cmpint (fclose (fp), ==, 0);

  return g_strdup (g_checksum_get_string (checksum));
}

char *
bg_test_sha256_file (const char *path)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guchar *buf = g_malloc (1 << 20);
  FILE *fp = fopen (path, "rb");
  size_t n;

  if (fp == NULL)
    return NULL;

  while ((n = fread (buf, 1, 1 << 20, fp)) > 0)
    g_checksum_update (checksum, buf, n);
  fclose (fp);

  return g_strdup (g_checksum_get_string (checksum));
}

#define TMPFS_MAGIC_NUMBER 0x01021994

double
bg_test_cached_fraction (const char *path,
                         gsize       length)
{
  long page = sysconf (_SC_PAGESIZE);
  struct statfs fs;
  struct stat st;
  g_autofree unsigned char *vec = NULL;
  gsize pages, cached = 0;
  void *map;
  int fd;

  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  if (fstatfs (fd, &fs) != 0 || fs.f_type == TMPFS_MAGIC_NUMBER ||
      fstat (fd, &st) != 0 || st.st_size == 0)
    {
      close (fd);
      return -1;
    }
  length = MIN (length, (gsize) st.st_size);

  /* Mapping touches no page; mincore() only reads what is resident. */
  map = mmap (NULL, length, PROT_READ, MAP_SHARED, fd, 0);
  close (fd);
  if (map == MAP_FAILED)
    return -1;
  pages = (length + page - 1) / page;
  vec = g_malloc (pages);
  if (mincore (map, length, vec) != 0)
    {
      munmap (map, length);
      return -1;
    }
  munmap (map, length);

  for (gsize i = 0; i < pages; i++)
    cached += vec[i] & 1;

  return (double) cached / pages;
}

static gboolean
timeout_cb (gpointer data)
{
  gboolean *timed_out = data;

  *timed_out = TRUE;

  return G_SOURCE_REMOVE;
}

static gboolean
window_over_cb (gpointer data)
{
  *(gboolean *) data = TRUE;

  return G_SOURCE_REMOVE;
}

BgMode
bg_test_mode (void)
{
  return g_strcmp0 (g_getenv ("BG_TEST_MODE"), "service") == 0 ? BG_MODE_SERVICE
                                                               : BG_MODE_IN_PROCESS;
}

const char *
bg_test_app_id (void)
{
  const char *app_id = g_getenv ("BG_TEST_APP_ID");

  return app_id != NULL ? app_id : "org.bgglib.Test";
}

void
bg_test_run_for (guint ms)
{
  gboolean over = FALSE;

  g_timeout_add (ms, window_over_cb, &over);
  bg_test_wait_for (&over, ms / 1000 + 10);
}

void
bg_test_wait_for (gboolean *flag,
                  guint     timeout_seconds)
{
  GMainContext *context = g_main_context_ref_thread_default ();
  GSource *timeout = g_timeout_source_new_seconds (timeout_seconds);
  gboolean timed_out = FALSE;

  /* On the thread-default context, which a test may have pushed. */
  g_source_set_callback (timeout, timeout_cb, &timed_out, NULL);
  g_source_attach (timeout, context);

  while (!*flag && !timed_out)
    g_main_context_iteration (context, TRUE);

  if (timed_out)
    g_error ("Timed out after %u seconds", timeout_seconds);

  g_source_destroy (timeout);
  g_source_unref (timeout);
  g_main_context_unref (context);
}

void
bg_test_wait_for_result (GAsyncResult **result,
                         guint          timeout_seconds)
{
  GMainContext *context = g_main_context_ref_thread_default ();
  GSource *timeout = g_timeout_source_new_seconds (timeout_seconds);
  gboolean timed_out = FALSE;

  g_source_set_callback (timeout, timeout_cb, &timed_out, NULL);
  g_source_attach (timeout, context);

  while (*result == NULL && !timed_out)
    g_main_context_iteration (context, TRUE);

  if (timed_out)
    g_error ("Timed out after %u seconds", timeout_seconds);

  g_source_destroy (timeout);
  g_source_unref (timeout);
  g_main_context_unref (context);
}

void
bg_test_store_result_cb (GObject      *object,
                         GAsyncResult *result,
                         gpointer      user_data)
{
  GAsyncResult **out = user_data;

  g_assert_null (*out);
  *out = g_object_ref (result);
}

GSubprocess *
bg_test_spawn_helper (GDataInputStream **out,
                      GError           **error,
                      ...)
{
  g_autofree char *helper = g_test_build_filename (G_TEST_BUILT, "transfer-helper", NULL);
  g_autoptr(GPtrArray) argv = g_ptr_array_new ();
  GSubprocess *process;
  const char *arg;
  va_list args;

  g_ptr_array_add (argv, helper);
  va_start (args, error);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, (gpointer) arg);
  va_end (args);
  g_ptr_array_add (argv, NULL);

  process = g_subprocess_newv ((const char * const *) argv->pdata,
                               G_SUBPROCESS_FLAGS_STDOUT_PIPE, error);
  if (process != NULL)
    *out = g_data_input_stream_new (g_subprocess_get_stdout_pipe (process));

  return process;
}

guint
bg_test_count_partials (const char *dir)
{
  g_autoptr(GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  guint n = 0;

  while (d != NULL && (name = g_dir_read_name (d)) != NULL)
    if (g_str_has_suffix (name, ".part"))
      n++;

  return n;
}

void
bg_test_start_download (BgDownloader  *downloader,
                        BgTestServer  *server,
                        const char    *path_and_query,
                        const char    *dest,
                        const char    *identifier,
                        GCancellable  *cancellable,
                        GAsyncResult **result)
{
  g_autofree char *url = bg_test_server_url (server, path_and_query);
  g_autoptr(SoupMessage) msg = soup_message_new ("GET", url);
  g_autoptr(GFile) file = g_file_new_for_path (dest);

  g_assert_nonnull (msg);
  bg_downloader_download_async (downloader, msg, file, identifier, NULL, cancellable,
                                bg_test_store_result_cb, result);
}

BgResponse *
bg_test_download (BgDownloader *downloader,
                  BgTestServer *server,
                  const char   *path_and_query,
                  const char   *dest,
                  const char   *identifier,
                  guint         timeout_seconds)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  BgResponse *response;

  bg_test_start_download (downloader, server, path_and_query, dest, identifier, NULL, &result);
  bg_test_wait_for_result (&result, timeout_seconds);
  response = bg_downloader_download_finish (downloader, result, &error);
  g_assert_no_error (error);
  g_assert_nonnull (response);

  return response;
}

void
bg_test_start_upload (BgUploader    *uploader,
                      BgTestServer  *server,
                      const char    *method,
                      const char    *path_and_query,
                      const char    *source,
                      const char    *identifier,
                      GAsyncResult **result)
{
  g_autofree char *url = bg_test_server_url (server, path_and_query);
  g_autoptr(SoupMessage) msg = soup_message_new (method, url);
  g_autoptr(GFile) file = g_file_new_for_path (source);

  g_assert_nonnull (msg);
  bg_uploader_upload_async (uploader, msg, file, identifier, NULL, NULL,
                            bg_test_store_result_cb, result);
}

BgResponse *
bg_test_upload (BgUploader   *uploader,
                BgTestServer *server,
                const char   *method,
                const char   *path_and_query,
                const char   *source,
                const char   *identifier,
                guint         timeout_seconds)
{
  g_autoptr(GAsyncResult) result = NULL;
  g_autoptr(GError) error = NULL;
  BgResponse *response;

  bg_test_start_upload (uploader, server, method, path_and_query, source, identifier, &result);
  bg_test_wait_for_result (&result, timeout_seconds);
  response = bg_uploader_upload_finish (uploader, result, &error);
  g_assert_no_error (error);
  g_assert_nonnull (response);

  return response;
}

gboolean
bg_test_database_contains (const char *db,
                           const char *needle)
{
  const char *suffixes[] = { "", "-wal" };

  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *path = g_strconcat (db, suffixes[i], NULL);
      g_autofree char *contents = NULL;
      gsize length = 0;

      if (!g_file_get_contents (path, &contents, &length, NULL))
        continue;
      if (memmem (contents, length, needle, strlen (needle)) != NULL)
        return TRUE;
    }

  return FALSE;
}

struct _BgTestProgressSeen
{
  BgTask   *task;
  GArray   *bytes;      /* every bytes-transferred notified, in order */
  gboolean  rate_seen;  /* bytes-per-second was above 0 while the task ran */
};

static void
progress_seen_cb (BgTask             *task,
                  GParamSpec         *pspec,
                  BgTestProgressSeen *seen)
{
  gint64 bytes = bg_task_get_bytes_transferred (task);

  if (g_str_equal (pspec->name, "bytes-transferred"))
    g_array_append_val (seen->bytes, bytes);
  else if (bg_task_get_bytes_per_second (task) > 0)
    seen->rate_seen = TRUE;
}

BgTestProgressSeen *
bg_test_watch_progress (BgTask *task)
{
  BgTestProgressSeen *seen = g_new0 (BgTestProgressSeen, 1);

  g_assert_nonnull (task);
  seen->task = g_object_ref (task);
  seen->bytes = g_array_new (FALSE, FALSE, sizeof (gint64));
  g_signal_connect (task, "notify::bytes-transferred", G_CALLBACK (progress_seen_cb), seen);
  g_signal_connect (task, "notify::bytes-per-second", G_CALLBACK (progress_seen_cb), seen);

  return seen;
}

void
bg_test_assert_progress_seen (BgTestProgressSeen *seen,
                              gint64              size,
                              guint               min_steps)
{
  guint steps = 0;

  g_signal_handlers_disconnect_by_data (seen->task, seen);

  for (guint i = 0; i < seen->bytes->len; i++)
    {
      gint64 bytes = g_array_index (seen->bytes, gint64, i);

      if (i > 0)
        g_assert_cmpint (bytes, >=, g_array_index (seen->bytes, gint64, i - 1));
      if (bytes > 0 && bytes < size)
        steps++;
    }
  g_test_message ("%u progress notifications, %u before the end", seen->bytes->len, steps);
  g_assert_cmpuint (seen->bytes->len, >, 0);
  g_assert_cmpint (g_array_index (seen->bytes, gint64, seen->bytes->len - 1), ==, size);
  g_assert_cmpuint (steps, >=, min_steps);
  g_assert_true (seen->rate_seen);

  g_array_unref (seen->bytes);
  g_object_unref (seen->task);
  g_free (seen);
}
