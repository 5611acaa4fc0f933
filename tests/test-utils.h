/* test-utils.h: helpers shared by the C test suites
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <bg-glib.h>
#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef struct _BgTestServer BgTestServer;

/* Where the suites' queues run: BG_MODE_SERVICE when tests/service_bus.py runs the suite (it
 * sets BG_TEST_MODE=service and BG_TEST_APP_ID), BG_MODE_IN_PROCESS otherwise.  Pass both as
 * the "mode" and "app-id" properties of every queue a test makes. */
BgMode        bg_test_mode                (void);
const char   *bg_test_app_id              (void);
/* Skips the rest of a test that looks inside the engine of this process, or hands the queue
 * something that cannot cross the bus (a SoupSession, a network monitor, a disk hook). */
#define bg_test_skip_in_service_mode(why) \
  G_STMT_START { \
    if (bg_test_mode () == BG_MODE_SERVICE) \
      { \
        g_test_skip (why); \
        return; \
      } \
  } G_STMT_END

/* Starts tests/fault-server.py on 127.0.0.1 serving @root; NULL root makes a temp folder. */
BgTestServer *bg_test_server_new          (const char   *root,
                                           gboolean      tls);
void          bg_test_server_free         (BgTestServer *server);
const char   *bg_test_server_get_root     (BgTestServer *server);
/* The URL of @path_and_query on the server, e.g. "/files/a.bin?norange=1". */
char         *bg_test_server_url          (BgTestServer *server,
                                           const char   *path_and_query);
/* The server's /_stats document, parsed. */
JsonNode     *bg_test_server_stats        (BgTestServer *server);
gint64        bg_test_server_stat_int     (BgTestServer *server,
                                           const char   *member);
void          bg_test_server_reset        (BgTestServer *server);
/* Waits until the server has no request in progress (it saw the last connection end), asking it
 * every 20 ms, for at most @timeout_seconds; the main context runs meanwhile. */
void          bg_test_server_wait_idle    (BgTestServer *server,
                                           guint         timeout_seconds);
/* Makes a new version of /files/@relpath, a copy of /files/@from_relpath, whose ETag and
 * Last-Modified differ from the version before (the server's /_replace). */
void          bg_test_server_replace      (BgTestServer *server,
                                           const char   *relpath,
                                           const char   *from_relpath);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BgTestServer, bg_test_server_free)

/* An in-process SoupServer on 127.0.0.1, on a port the system picks, for tests whose point is
 * not a separate server process.  It runs on the thread-default main context of its creator,
 * or with BG_TEST_HTTP_SERVER_IN_THREAD on a thread and GMainContext of its own: a test needs
 * that when its client blocks (soup_session_send() and the like), as the server could not
 * answer otherwise. */
typedef enum
{
  BG_TEST_HTTP_SERVER_DEFAULT   = 0,
  BG_TEST_HTTP_SERVER_IN_THREAD = 1 << 0,
} BgTestHttpServerFlags;

typedef struct _BgTestHttpServer BgTestHttpServer;

BgTestHttpServer *bg_test_http_server_new         (BgTestHttpServerFlags  flags);
/* Adds a handler for @path (NULL: every path); it runs on the server's context, so on the
 * server's thread with BG_TEST_HTTP_SERVER_IN_THREAD. */
void          bg_test_http_server_add_handler     (BgTestHttpServer      *server,
                                                   const char            *path,
                                                   SoupServerCallback     callback,
                                                   gpointer               user_data);
/* The URL of @path_and_query on the server, e.g. "/s.bin?x=1". */
char         *bg_test_http_server_url             (BgTestHttpServer      *server,
                                                   const char            *path_and_query);
SoupServer   *bg_test_http_server_get_server      (BgTestHttpServer      *server);
/* Stops the server and its thread, and asserts that nothing else still holds the SoupServer
 * (its reference count is 1) and that it is finalised. */
void          bg_test_http_server_free            (BgTestHttpServer      *server);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BgTestHttpServer, bg_test_http_server_free)

/* Drops the reference in *@object, sets it to NULL and asserts that the object is finalised,
 * as g_assert_finalize_object() does, after iterating the thread-default main context for at
 * most a few seconds: idles and closing connections may hold the last references for a
 * moment. */
void          bg_test_assert_finalized            (gpointer              *object);
/* Waits (iterating the thread-default main context, 30 s at most) until the object @ref was
 * set to, and to which the caller holds no reference, is finalised (at once if it already is),
 * then clears @ref: for work that ends with the object, such as the attempts that keep a closed
 * engine alive. */
void          bg_test_wait_finalized              (GWeakRef              *ref);

/* A fresh temporary folder, removed with everything in it by bg_test_rm_rf(). */
char         *bg_test_make_tmpdir         (void);
void          bg_test_rm_rf               (const char   *path);
/* Writes @size pseudo-random bytes to @path and returns their sha256 in hex. */
char         *bg_test_write_random_file   (const char   *path,
                                           gsize         size,
                                           guint32       seed);
char         *bg_test_sha256_file         (const char   *path);
/* The share of the pages of @path's first @length bytes that are in the page cache, from 0 to
 * 1, or -1 when the file system keeps files in memory anyway (tmpfs) or cannot tell. */
double        bg_test_cached_fraction     (const char   *path,
                                           gsize         length);
/* Spins the thread-default main context until *flag is TRUE, failing the test after
 * @timeout_seconds. */
/* Spins the thread-default main context for @ms milliseconds.  Only for a test whose point is
 * that nothing happens meanwhile (no byte moves, no request reaches the server): there is no
 * event to wait for then.  A test that waits for something waits for its event instead. */
void          bg_test_run_for             (guint         ms);
void          bg_test_wait_for            (gboolean     *flag,
                                           guint         timeout_seconds);
void          bg_test_wait_for_result     (GAsyncResult **result,
                                           guint          timeout_seconds);
/* Stores the result in *(GAsyncResult **) user_data. */
void          bg_test_store_result_cb     (GObject       *object,
                                           GAsyncResult  *result,
                                           gpointer       user_data);

/* Starts tests/transfer-helper with the given arguments (NULL-terminated); its stdout is
 * returned in @out, one event per line. */
GSubprocess  *bg_test_spawn_helper        (GDataInputStream **out,
                                           GError           **error,
                                           ...) G_GNUC_NULL_TERMINATED;
/* Starts a GET of @path_and_query on @server into @dest; the result lands in *@result. */
void          bg_test_start_download      (BgDownloader      *downloader,
                                           BgTestServer      *server,
                                           const char        *path_and_query,
                                           const char        *dest,
                                           const char        *identifier,
                                           GCancellable      *cancellable,
                                           GAsyncResult     **result);
/* The same, waited for at most @timeout_seconds; the call itself must succeed. */
BgResponse   *bg_test_download            (BgDownloader      *downloader,
                                           BgTestServer      *server,
                                           const char        *path_and_query,
                                           const char        *dest,
                                           const char        *identifier,
                                           guint              timeout_seconds);
void          bg_test_start_upload        (BgUploader        *uploader,
                                           BgTestServer      *server,
                                           const char        *method,
                                           const char        *path_and_query,
                                           const char        *source,
                                           const char        *identifier,
                                           GAsyncResult     **result);
BgResponse   *bg_test_upload              (BgUploader        *uploader,
                                           BgTestServer      *server,
                                           const char        *method,
                                           const char        *path_and_query,
                                           const char        *source,
                                           const char        *identifier,
                                           guint              timeout_seconds);
/* Whether the raw bytes of the database file @db, or of its -wal, hold @needle anywhere. */
gboolean      bg_test_database_contains   (const char        *db,
                                           const char        *needle);
/* Counts the partial files (".part") in @dir. */
guint         bg_test_count_partials      (const char        *dir);
/* What a list view bound to @task would see of its progress, from now until
 * bg_test_assert_progress_seen(). */
typedef struct _BgTestProgressSeen BgTestProgressSeen;
BgTestProgressSeen *bg_test_watch_progress (BgTask             *task);
/* Stops watching and checks what a transfer of @size bytes told: its progress went up step by
 * step, at least @min_steps times before the end, ended at @size, and it showed a rate.  Frees
 * @seen. */
void          bg_test_assert_progress_seen (BgTestProgressSeen *seen,
                                            gint64              size,
                                            guint               min_steps);

G_END_DECLS
