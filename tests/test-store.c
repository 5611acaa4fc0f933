/* test-store.c: the task database
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <libgda/libgda.h>
#include <sqlite3.h>

#include "bg-downloader.h"
#include "bg-error.h"
#include "bg-store-private.h"
#include "bg-uploader.h"

/* Helpers */

typedef struct
{
  char *dir;   /* a fresh temporary folder, removed afterwards */
  char *path;  /* dir/tasks.sqlite, canonical */
} Fixture;

static void
remove_tree (const char *path)
{
  GDir *dir = g_dir_open (path, 0, NULL);
  const char *name;

  if (dir != NULL)
    {
      while ((name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree char *child = g_build_filename (path, name, NULL);

          if (g_file_test (child, G_FILE_TEST_IS_DIR) &&
              !g_file_test (child, G_FILE_TEST_IS_SYMLINK))
            remove_tree (child);
          else
            g_unlink (child);
        }
      g_dir_close (dir);
    }

  g_rmdir (path);
}

static void
fixture_set_up (Fixture *fixture)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tmp = g_dir_make_tmp ("test-store-XXXXXX", &error);
  char *real;

  g_assert_no_error (error);
  real = realpath (tmp, NULL);
  g_assert_nonnull (real);
  fixture->dir = g_strdup (real);
  free (real);
  fixture->path = g_build_filename (fixture->dir, "tasks.sqlite", NULL);
}

static void
fixture_tear_down (Fixture *fixture)
{
  remove_tree (fixture->dir);
  g_clear_pointer (&fixture->dir, g_free);
  g_clear_pointer (&fixture->path, g_free);
}

static char *
file_sha256 (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize length = 0;

  g_file_get_contents (path, &contents, &length, &error);
  g_assert_no_error (error);

  return g_compute_checksum_for_data (G_CHECKSUM_SHA256, (const guchar *) contents, length);
}

static guint
file_mode (const char *path)
{
  struct stat st;

  g_assert_cmpint (g_stat (path, &st), ==, 0);
  return st.st_mode & 07777;
}

static BgStoreRecord *
make_record (BgTaskKind  kind,
             const char *identifier,
             gint64      created_at)
{
  BgStoreRecord *record = bg_store_record_new ();

  record->kind = kind;
  record->identifier = g_strdup (identifier);
  record->method = g_strdup ("GET");
  record->uri = g_strdup ("https://example.com/file");
  record->file_path = g_strdup ("/tmp/file");
  record->created_at = created_at;
  record->updated_at = created_at;

  return record;
}

/* A record with every field set to something other than its default. */
static BgStoreRecord *
make_full_record (const char *identifier)
{
  static const guchar body[] = { '{', 0, 0xff, 0x80, '\n', '}' };
  BgStoreRecord *record = bg_store_record_new ();

  record->identifier = g_strdup (identifier);
  record->kind = BG_TASK_KIND_UPLOAD;
  record->state = BG_TASK_STATE_FINISHED;
  record->method = g_strdup ("PUT");
  record->uri = g_strdup ("https://user@example.com:8443/up?x=1&y=%20");
  record->request_headers = g_strdup ("Authorization: none\nX-Emoji: 🎉\n");
  record->file_path = g_strdup ("/home/ünïcödé/файл.bin");
  record->partial_path = g_strdup ("/home/user/.bg-partial");
  record->checkpoint = G_GINT64_CONSTANT (5000000000);
  record->total = G_GINT64_CONSTANT (9000000000);
  record->etag = g_strdup ("W/\"abc\"");
  record->last_modified = g_strdup ("Tue, 02 Jan 2024 10:00:00 GMT");
  record->source_size = G_GINT64_CONSTANT (9000000000);
  record->source_mtime = G_GINT64_CONSTANT (1700000000123456);
  record->attempts = G_MAXUINT;
  record->restarts = 7;
  record->next_attempt_at = G_GINT64_CONSTANT (1700000100000000);
  record->created_at = G_GINT64_CONSTANT (1700000000000001);
  record->updated_at = G_MAXINT64;
  record->idempotency_key = g_strdup ("0f8fad5b-d9cb-469f-a165-70867728950e");
  record->has_response = TRUE;
  record->response_kind = 2;
  record->response_status = 418;
  record->response_reason = g_strdup ("I'm a teapot");
  record->response_headers = g_strdup ("Content-Type: application/json\n");
  record->response_body = g_bytes_new (body, sizeof body);
  record->error_domain = g_strdup ("g-io-error-quark");
  record->error_code = -3;
  record->error_message = g_strdup ("Something “went” wrong");
  record->keep_credentials = TRUE;
  record->withheld_headers = g_strdup ("Authorization, Cookie");
  record->withheld_password = TRUE;
  record->paused = TRUE;
  record->upload_protocol = BG_UPLOAD_PROTOCOL_TUS;
  record->allow_tus = TRUE;
  record->chunk_size = 5 * 1024 * 1024;
  record->upload_url = g_strdup ("http://127.0.0.1:1/files/0123456789abcdef");
  record->upload_url_protocol = BG_UPLOAD_PROTOCOL_TUS;
  record->upload_expires = G_GINT64_CONSTANT (1700000000000000);
  record->max_bandwidth = G_GINT64_CONSTANT (1) << 40;

  return record;
}

static void
assert_bytes_equal (GBytes *a,
                    GBytes *b)
{
  if (a == NULL || b == NULL)
    {
      g_assert_true (a == b);
      return;
    }

  g_assert_true (g_bytes_equal (a, b));
}

static void
assert_records_equal (const BgStoreRecord *a,
                      const BgStoreRecord *b)
{
  g_assert_cmpstr (a->identifier, ==, b->identifier);
  g_assert_cmpint (a->kind, ==, b->kind);
  g_assert_cmpint (a->state, ==, b->state);
  g_assert_cmpstr (a->method, ==, b->method);
  g_assert_cmpstr (a->uri, ==, b->uri);
  g_assert_cmpstr (a->request_headers, ==, b->request_headers);
  g_assert_cmpstr (a->file_path, ==, b->file_path);
  g_assert_cmpstr (a->partial_path, ==, b->partial_path);
  g_assert_cmpint (a->checkpoint, ==, b->checkpoint);
  g_assert_cmpint (a->total, ==, b->total);
  g_assert_cmpstr (a->etag, ==, b->etag);
  g_assert_cmpstr (a->last_modified, ==, b->last_modified);
  g_assert_cmpint (a->source_size, ==, b->source_size);
  g_assert_cmpint (a->source_mtime, ==, b->source_mtime);
  g_assert_cmpuint (a->attempts, ==, b->attempts);
  g_assert_cmpuint (a->restarts, ==, b->restarts);
  g_assert_cmpint (a->next_attempt_at, ==, b->next_attempt_at);
  g_assert_cmpint (a->created_at, ==, b->created_at);
  g_assert_cmpint (a->updated_at, ==, b->updated_at);
  g_assert_cmpstr (a->idempotency_key, ==, b->idempotency_key);
  g_assert_cmpint (a->allow_metered, ==, b->allow_metered);
  g_assert_cmpint (a->discretionary, ==, b->discretionary);
  g_assert_cmpint (a->priority, ==, b->priority);
  g_assert_cmpint (a->earliest_start, ==, b->earliest_start);
  g_assert_cmpstr (a->expected_sha256, ==, b->expected_sha256);
  g_assert_cmpint (a->keep_credentials, ==, b->keep_credentials);
  g_assert_cmpstr (a->withheld_headers, ==, b->withheld_headers);
  g_assert_cmpint (a->withheld_password, ==, b->withheld_password);
  g_assert_cmpint (a->paused, ==, b->paused);
  g_assert_cmpint (a->upload_protocol, ==, b->upload_protocol);
  g_assert_cmpint (a->allow_tus, ==, b->allow_tus);
  g_assert_cmpint (a->chunk_size, ==, b->chunk_size);
  g_assert_cmpstr (a->upload_url, ==, b->upload_url);
  g_assert_cmpint (a->upload_url_protocol, ==, b->upload_url_protocol);
  g_assert_cmpint (a->upload_expires, ==, b->upload_expires);
  g_assert_cmpint (a->max_bandwidth, ==, b->max_bandwidth);
  g_assert_cmpint (a->has_response, ==, b->has_response);
  g_assert_cmpint (a->response_kind, ==, b->response_kind);
  g_assert_cmpuint (a->response_status, ==, b->response_status);
  g_assert_cmpstr (a->response_reason, ==, b->response_reason);
  g_assert_cmpstr (a->response_headers, ==, b->response_headers);
  assert_bytes_equal (a->response_body, b->response_body);
  g_assert_cmpstr (a->error_domain, ==, b->error_domain);
  g_assert_cmpint (a->error_code, ==, b->error_code);
  g_assert_cmpstr (a->error_message, ==, b->error_message);
}

static BgStore *
open_store (const char *path)
{
  g_autoptr(GError) error = NULL;
  BgStore *store = bg_store_open (path, &error);

  g_assert_no_error (error);
  g_assert_nonnull (store);

  return store;
}

static void
save_or_die (BgStore             *store,
             const BgStoreRecord *record)
{
  g_autoptr(GError) error = NULL;

  g_assert_true (bg_store_save (store, record, &error));
  g_assert_no_error (error);
}

/* Writes a closed, valid database with @n_records records at @path. */
static void
make_database (const char *path,
               guint       n_records)
{
  g_autoptr(BgStore) store = open_store (path);

  for (guint i = 0; i < n_records; i++)
    {
      g_autofree char *identifier = g_strdup_printf ("record-%u", i);
      g_autoptr(BgStoreRecord) record = make_full_record (identifier);

      save_or_die (store, record);
    }
}

/* Opens @path expecting BG_ERROR_STORE, and checks that the file was not touched. */
static void
assert_refused (const char *path,
                const char *expected_fragment)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(BgStore) store = NULL;
  g_autofree char *before = file_sha256 (path);
  g_autofree char *after = NULL;

  store = bg_store_open (path, &error);
  g_assert_error (error, BG_ERROR, BG_ERROR_STORE);
  g_assert_null (store);
  g_test_message ("refused: %s", error->message);
  g_assert_nonnull (strstr (error->message, path));
  if (expected_fragment != NULL)
    g_assert_nonnull (strstr (error->message, expected_fragment));

  after = file_sha256 (path);
  g_assert_cmpstr (before, ==, after);

  /* Refusing twice changes nothing either. */
  g_clear_error (&error);
  store = bg_store_open (path, &error);
  g_assert_error (error, BG_ERROR, BG_ERROR_STORE);
  g_clear_pointer (&after, g_free);
  after = file_sha256 (path);
  g_assert_cmpstr (before, ==, after);
}

static void
read_page_size (const char *path,
                gsize      *page_size,
                gsize      *length)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  const guchar *header;

  g_file_get_contents (path, &contents, length, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (*length, >=, 100);
  header = (const guchar *) contents;
  *page_size = (header[16] << 8) | header[17];
  if (*page_size == 1)
    *page_size = 65536;
}

/* Tests */

static void
test_record_copy (void)
{
  g_autoptr(BgStoreRecord) fresh = bg_store_record_new ();
  g_autoptr(BgStoreRecord) record = make_full_record ("copy");
  g_autoptr(BgStoreRecord) copy = bg_store_record_copy (record);

  g_assert_cmpint (fresh->total, ==, -1);
  g_assert_cmpint (fresh->source_size, ==, -1);
  g_assert_null (fresh->identifier);

  assert_records_equal (record, copy);
  g_assert_true (record->identifier != copy->identifier);
  g_assert_true (record->response_body == copy->response_body);
}

static void
test_new_database (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GError) error = NULL;

  fixture_set_up (&fixture);

  store = open_store (fixture.path);
  g_assert_cmpint (bg_store_get_schema_version (store), ==, BG_STORE_SCHEMA_VERSION);
  g_assert_cmpstr (bg_store_get_path (store), ==, fixture.path);
  /* Exactly the file asked for, not a libgda "<name>.db". */
  g_assert_true (g_file_test (fixture.path, G_FILE_TEST_IS_REGULAR));
  {
    g_autofree char *db = g_strconcat (fixture.path, ".db", NULL);
    g_assert_false (g_file_test (db, G_FILE_TEST_EXISTS));
  }

  all = bg_store_load_all (store, BG_TASK_KIND_DOWNLOAD, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (all->len, ==, 0);

  g_clear_object (&store);

  /* Reopening an existing, current database. */
  store = open_store (fixture.path);
  g_assert_cmpint (bg_store_get_schema_version (store), ==, BG_STORE_SCHEMA_VERSION);
  g_clear_object (&store);

  fixture_tear_down (&fixture);
}

static void
test_round_trip (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) full = NULL;
  g_autoptr(BgStoreRecord) sparse = NULL;
  g_autoptr(BgStoreRecord) empty_body = NULL;
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(GError) error = NULL;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);

  /* Every field set. */
  full = make_full_record ("full");
  save_or_die (store, full);
  loaded = bg_store_lookup (store, BG_TASK_KIND_UPLOAD, "full", &error);
  g_assert_no_error (error);
  g_assert_nonnull (loaded);
  assert_records_equal (full, loaded);
  g_clear_pointer (&loaded, bg_store_record_free);

  /* Every string NULL, no body, unknown sizes. */
  sparse = bg_store_record_new ();
  sparse->identifier = g_strdup ("sparse");
  sparse->total = -1;
  sparse->source_size = -1;
  save_or_die (store, sparse);
  loaded = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "sparse", &error);
  g_assert_no_error (error);
  g_assert_nonnull (loaded);
  assert_records_equal (sparse, loaded);
  g_assert_null (loaded->method);
  g_assert_null (loaded->etag);
  g_assert_null (loaded->idempotency_key);
  g_assert_null (loaded->response_body);
  g_assert_cmpint (loaded->total, ==, -1);
  g_assert_cmpint (loaded->source_size, ==, -1);
  g_clear_pointer (&loaded, bg_store_record_free);

  /* An empty body is not the same as no body; an empty string is not NULL. */
  empty_body = make_full_record ("empty-body");
  g_clear_pointer (&empty_body->response_body, g_bytes_unref);
  empty_body->response_body = g_bytes_new (NULL, 0);
  g_free (empty_body->etag);
  empty_body->etag = g_strdup ("");
  save_or_die (store, empty_body);
  loaded = bg_store_lookup (store, BG_TASK_KIND_UPLOAD, "empty-body", &error);
  g_assert_no_error (error);
  g_assert_nonnull (loaded->response_body);
  g_assert_cmpuint (g_bytes_get_size (loaded->response_body), ==, 0);
  g_assert_cmpstr (loaded->etag, ==, "");
  assert_records_equal (empty_body, loaded);
  g_clear_pointer (&loaded, bg_store_record_free);

  /* Saving again replaces every column, including back to NULL. */
  g_clear_pointer (&full->response_body, g_bytes_unref);
  g_clear_pointer (&full->etag, g_free);
  full->state = BG_TASK_STATE_RUNNING;
  full->total = -1;
  save_or_die (store, full);
  loaded = bg_store_lookup (store, BG_TASK_KIND_UPLOAD, "full", &error);
  g_assert_no_error (error);
  assert_records_equal (full, loaded);
  g_clear_pointer (&loaded, bg_store_record_free);

  /* A missing record, or the right identifier under the other kind: NULL, no error. */
  loaded = bg_store_lookup (store, BG_TASK_KIND_UPLOAD, "missing", &error);
  g_assert_no_error (error);
  g_assert_null (loaded);
  loaded = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "full", &error);
  g_assert_no_error (error);
  g_assert_null (loaded);

  /* What was saved survives closing. */
  g_clear_object (&store);
  store = open_store (fixture.path);
  loaded = bg_store_lookup (store, BG_TASK_KIND_UPLOAD, "full", &error);
  g_assert_no_error (error);
  assert_records_equal (full, loaded);
  g_clear_object (&store);

  fixture_tear_down (&fixture);
}

static void
test_delete (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) download = NULL;
  g_autoptr(BgStoreRecord) upload = NULL;
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(GError) error = NULL;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);

  download = make_record (BG_TASK_KIND_DOWNLOAD, "same", 1);
  upload = make_record (BG_TASK_KIND_UPLOAD, "same", 2);
  save_or_die (store, download);
  save_or_die (store, upload);

  g_assert_true (bg_store_delete (store, BG_TASK_KIND_DOWNLOAD, "same", &error));
  g_assert_no_error (error);

  loaded = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "same", &error);
  g_assert_no_error (error);
  g_assert_null (loaded);

  /* The other kind is untouched. */
  loaded = bg_store_lookup (store, BG_TASK_KIND_UPLOAD, "same", &error);
  g_assert_no_error (error);
  assert_records_equal (upload, loaded);

  /* Deleting what is not there is not an error. */
  g_assert_true (bg_store_delete (store, BG_TASK_KIND_DOWNLOAD, "same", &error));
  g_assert_no_error (error);
  g_assert_true (bg_store_delete (store, BG_TASK_KIND_DOWNLOAD, "never", &error));
  g_assert_no_error (error);

  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

/* An insert of a new task leaves a stored task of the same kind and identifier as it is, and
 * says so; another kind, or another identifier, is inserted.  Every field round-trips. */
static void
test_insert_new (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) full = make_full_record ("taken");
  g_autoptr(BgStoreRecord) other = make_record (BG_TASK_KIND_UPLOAD, "taken", 7);
  g_autoptr(BgStoreRecord) fresh = make_full_record ("fresh");
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(GError) error = NULL;
  gboolean inserted = FALSE;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);

  g_assert_true (bg_store_insert_new (store, full, &inserted, &error));
  g_assert_no_error (error);
  g_assert_true (inserted);

  /* Same kind and identifier: nothing is written. */
  other->kind = full->kind;
  g_assert_true (bg_store_insert_new (store, other, &inserted, &error));
  g_assert_no_error (error);
  g_assert_false (inserted);
  loaded = bg_store_lookup (store, full->kind, "taken", &error);
  g_assert_no_error (error);
  assert_records_equal (full, loaded);
  g_clear_pointer (&loaded, bg_store_record_free);

  g_assert_true (bg_store_insert_new (store, fresh, &inserted, &error));
  g_assert_no_error (error);
  g_assert_true (inserted);
  loaded = bg_store_lookup (store, fresh->kind, "fresh", &error);
  g_assert_no_error (error);
  assert_records_equal (fresh, loaded);

  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

/* A connection of the test's own to the database, as another process would have. */
static sqlite3 *
open_other_connection (const char *path)
{
  sqlite3 *db = NULL;

  g_assert_cmpint (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL), ==, SQLITE_OK);
  sqlite3_busy_timeout (db, 5000);

  return db;
}

static gint64
other_count (sqlite3    *db,
             const char *identifier)
{
  sqlite3_stmt *stmt = NULL;
  gint64 count;

  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT count(*) FROM tasks WHERE identifier = ?1",
                                       -1, &stmt, NULL), ==, SQLITE_OK);
  sqlite3_bind_text (stmt, 1, identifier, -1, SQLITE_TRANSIENT);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  count = sqlite3_column_int64 (stmt, 0);
  sqlite3_finalize (stmt);

  return count;
}

/* Every column of the row, as SQLite's quote() spells it with its storage class. */
static char *
other_row_dump (sqlite3    *db,
                const char *identifier)
{
  g_autoptr(GString) sql = g_string_new ("SELECT ");
  g_autoptr(GString) dump = g_string_new (NULL);
  sqlite3_stmt *stmt = NULL;
  sqlite3_stmt *names = NULL;
  guint n = 0;

  g_assert_cmpint (sqlite3_prepare_v2 (db, "SELECT name FROM pragma_table_info ('tasks') "
                                       "WHERE name <> 'identifier' ORDER BY cid",
                                       -1, &names, NULL), ==, SQLITE_OK);
  while (sqlite3_step (names) == SQLITE_ROW)
    {
      const char *name = (const char *) sqlite3_column_text (names, 0);

      g_string_append_printf (sql, "%s'%s=' || typeof (%s) || ':' || quote (%s)",
                              n++ > 0 ? " || ' ' || " : "", name, name, name);
    }
  sqlite3_finalize (names);
  g_assert_cmpuint (n, >, 40);
  g_string_append (sql, " FROM tasks WHERE identifier = ?1");

  g_assert_cmpint (sqlite3_prepare_v2 (db, sql->str, -1, &stmt, NULL), ==, SQLITE_OK);
  sqlite3_bind_text (stmt, 1, identifier, -1, SQLITE_TRANSIENT);
  g_assert_cmpint (sqlite3_step (stmt), ==, SQLITE_ROW);
  g_string_append (dump, (const char *) sqlite3_column_text (stmt, 0));
  sqlite3_finalize (stmt);

  return g_string_free (g_steal_pointer (&dump), FALSE);
}

/* A new record is stored exactly as a save stores it: the same storage class and value in every
 * column, NULL strings and an empty body included. */
static void
test_insert_new_same_encoding (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GError) error = NULL;
  sqlite3 *other;
  gboolean inserted = FALSE;
  const char *variants[] = { "full", "empty", "sparse" };

  fixture_set_up (&fixture);
  store = open_store (fixture.path);
  other = open_other_connection (fixture.path);

  for (guint i = 0; i < G_N_ELEMENTS (variants); i++)
    {
      g_autofree char *saved_id = g_strdup_printf ("saved-%s", variants[i]);
      g_autofree char *inserted_id = g_strdup_printf ("inserted-%s", variants[i]);
      g_autoptr(BgStoreRecord) saved = NULL;
      g_autoptr(BgStoreRecord) fresh = NULL;
      g_autoptr(BgStoreRecord) loaded = NULL;
      g_autofree char *saved_dump = NULL;
      g_autofree char *inserted_dump = NULL;

      if (i == 2)
        saved = make_record (BG_TASK_KIND_DOWNLOAD, saved_id, 42);
      else
        saved = make_full_record (saved_id);
      if (i == 1)
        {
          g_clear_pointer (&saved->response_body, g_bytes_unref);
          saved->response_body = g_bytes_new (NULL, 0);
          g_free (saved->etag);
          saved->etag = g_strdup ("");
        }
      save_or_die (store, saved);

      fresh = bg_store_record_copy (saved);
      g_free (fresh->identifier);
      fresh->identifier = g_strdup (inserted_id);
      g_assert_true (bg_store_insert_new (store, fresh, &inserted, &error));
      g_assert_no_error (error);
      g_assert_true (inserted);

      saved_dump = other_row_dump (other, saved_id);
      inserted_dump = other_row_dump (other, inserted_id);
      g_test_message ("%s", inserted_dump);
      g_assert_cmpstr (inserted_dump, ==, saved_dump);

      loaded = bg_store_lookup (store, fresh->kind, inserted_id, &error);
      g_assert_no_error (error);
      assert_records_equal (fresh, loaded);
    }

  sqlite3_close (other);
  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

/* A new record is committed when the insert returns, even while grouped writes wait for their
 * commit: another connection sees it (and the grouped write before it) at once. */
static void
test_insert_new_committed_with_group_open (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) running = make_record (BG_TASK_KIND_DOWNLOAD, "running", 1);
  g_autoptr(BgStoreRecord) fresh = make_record (BG_TASK_KIND_DOWNLOAD, "fresh", 2);
  g_autoptr(GError) error = NULL;
  sqlite3 *other;
  gboolean inserted = FALSE;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);
  other = open_other_connection (fixture.path);
  save_or_die (store, running);

  running->checkpoint = 4096;
  g_assert_true (bg_store_save_progress_grouped (store, running, &error));
  g_assert_no_error (error);

  g_assert_true (bg_store_insert_new (store, fresh, &inserted, &error));
  g_assert_no_error (error);
  g_assert_true (inserted);

  g_assert_cmpint (other_count (other, "fresh"), ==, 1);

  /* The store goes on working, grouped writes included. */
  running->checkpoint = 8192;
  g_assert_true (bg_store_save_progress_grouped (store, running, &error));
  g_assert_no_error (error);
  g_assert_true (bg_store_commit_group (store, &error));
  g_assert_no_error (error);
  {
    g_autoptr(BgStoreRecord) loaded = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "running",
                                                       &error);

    g_assert_no_error (error);
    g_assert_cmpint (loaded->checkpoint, ==, 8192);
  }

  sqlite3_close (other);
  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

/* An insert that SQLite refuses (here a trigger another program added; in life a full disk or a
 * damaged page) gives BG_ERROR_STORE naming the database and SQLite's reason, writes nothing,
 * and leaves the store working. */
static void
test_insert_new_write_error (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) first = make_record (BG_TASK_KIND_DOWNLOAD, "first", 1);
  g_autoptr(BgStoreRecord) refused = make_record (BG_TASK_KIND_DOWNLOAD, "refused", 2);
  g_autoptr(GError) error = NULL;
  sqlite3 *other;
  gboolean inserted = FALSE;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);
  other = open_other_connection (fixture.path);

  /* A statement prepared before the schema changed is prepared again. */
  g_assert_true (bg_store_insert_new (store, first, &inserted, &error));
  g_assert_no_error (error);

  g_assert_cmpint (sqlite3_exec (other, "CREATE TRIGGER refuse BEFORE INSERT ON tasks "
                                 "BEGIN SELECT RAISE (ABORT, 'database or disk is full'); END",
                                 NULL, NULL, NULL), ==, SQLITE_OK);

  inserted = TRUE;
  g_assert_false (bg_store_insert_new (store, refused, &inserted, &error));
  g_assert_error (error, BG_ERROR, BG_ERROR_STORE);
  g_test_message ("refused: %s", error->message);
  g_assert_nonnull (strstr (error->message, fixture.path));
  g_assert_nonnull (strstr (error->message, "database or disk is full"));
  g_clear_error (&error);
  g_assert_cmpint (other_count (other, "refused"), ==, 0);

  g_assert_cmpint (sqlite3_exec (other, "DROP TRIGGER refuse", NULL, NULL, NULL), ==, SQLITE_OK);
  g_assert_true (bg_store_insert_new (store, refused, &inserted, &error));
  g_assert_no_error (error);
  g_assert_true (inserted);
  g_assert_cmpint (other_count (other, "refused"), ==, 1);

  sqlite3_close (other);
  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

/* A grouped write that SQLite refuses gives BG_ERROR_STORE naming the database and SQLite's
 * reason; the writes grouped before it are still committed with the group, and the store goes on
 * working. */
static void
test_grouped_write_error (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) kept = make_record (BG_TASK_KIND_DOWNLOAD, "kept", 1);
  g_autoptr(BgStoreRecord) refused = make_record (BG_TASK_KIND_DOWNLOAD, "refused", 2);
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(GError) error = NULL;
  sqlite3 *other;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);
  other = open_other_connection (fixture.path);
  save_or_die (store, kept);
  save_or_die (store, refused);

  g_assert_cmpint (sqlite3_exec (other, "CREATE TRIGGER refuse BEFORE UPDATE ON tasks "
                                 "WHEN NEW.identifier = 'refused' "
                                 "BEGIN SELECT RAISE (ABORT, 'database or disk is full'); END",
                                 NULL, NULL, NULL), ==, SQLITE_OK);

  kept->checkpoint = 4096;
  g_assert_true (bg_store_save_progress_grouped (store, kept, &error));
  g_assert_no_error (error);

  refused->checkpoint = 4096;
  g_assert_false (bg_store_save_progress_grouped (store, refused, &error));
  g_assert_error (error, BG_ERROR, BG_ERROR_STORE);
  g_test_message ("refused: %s", error->message);
  g_assert_nonnull (strstr (error->message, fixture.path));
  g_assert_nonnull (strstr (error->message, "database or disk is full"));
  g_clear_error (&error);

  g_assert_true (bg_store_commit_group (store, &error));
  g_assert_no_error (error);
  loaded = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "kept", &error);
  g_assert_no_error (error);
  g_assert_cmpint (loaded->checkpoint, ==, 4096);
  g_clear_pointer (&loaded, bg_store_record_free);
  loaded = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "refused", &error);
  g_assert_no_error (error);
  g_assert_cmpint (loaded->checkpoint, ==, 0);
  g_clear_pointer (&loaded, bg_store_record_free);

  g_assert_cmpint (sqlite3_exec (other, "DROP TRIGGER refuse", NULL, NULL, NULL), ==, SQLITE_OK);
  g_assert_true (bg_store_save_progress_grouped (store, refused, &error));
  g_assert_no_error (error);
  g_assert_true (bg_store_commit_group (store, &error));
  g_assert_no_error (error);
  loaded = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "refused", &error);
  g_assert_no_error (error);
  g_assert_cmpint (loaded->checkpoint, ==, 4096);

  sqlite3_close (other);
  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

/* bg_store_read_record() reads a record back as this process wrote it: every field, grouped
 * writes included before their commit, nothing of another kind; one that is not there, or
 * deleted by another connection to the file, is an error naming the task and the database. */
static void
test_read_record (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) full = make_full_record ("it's \"full\"/1");
  g_autoptr(BgStoreRecord) grouped = make_record (BG_TASK_KIND_DOWNLOAD, "grouped", 1);
  g_autoptr(BgStoreRecord) read = NULL;
  g_autoptr(GError) error = NULL;
  sqlite3 *other;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);
  other = open_other_connection (fixture.path);

  save_or_die (store, full);
  read = bg_store_read_record (store, BG_TASK_KIND_UPLOAD, "it's \"full\"/1", &error);
  g_assert_no_error (error);
  assert_records_equal (read, full);
  g_clear_pointer (&read, bg_store_record_free);

  /* The same identifier of the other kind is another task. */
  read = bg_store_read_record (store, BG_TASK_KIND_DOWNLOAD, "it's \"full\"/1", &error);
  g_assert_null (read);
  g_assert_error (error, BG_ERROR, BG_ERROR_STORE);
  g_assert_nonnull (strstr (error->message, "it's \"full\"/1"));
  g_assert_nonnull (strstr (error->message, fixture.path));
  g_clear_error (&error);

  /* A grouped write is read back before its commit. */
  save_or_die (store, grouped);
  grouped->checkpoint = 8192;
  grouped->etag = g_strdup ("\"v2\"");
  g_assert_true (bg_store_save_progress_grouped (store, grouped, &error));
  g_assert_no_error (error);
  read = bg_store_read_record (store, BG_TASK_KIND_DOWNLOAD, "grouped", &error);
  g_assert_no_error (error);
  assert_records_equal (read, grouped);
  g_clear_pointer (&read, bg_store_record_free);
  g_assert_true (bg_store_commit_group (store, &error));
  g_assert_no_error (error);

  /* Deleted by another connection: the next read says so. */
  g_assert_cmpint (sqlite3_exec (other, "DELETE FROM tasks WHERE identifier = 'grouped'",
                                 NULL, NULL, NULL), ==, SQLITE_OK);
  read = bg_store_read_record (store, BG_TASK_KIND_DOWNLOAD, "grouped", &error);
  g_assert_null (read);
  g_assert_error (error, BG_ERROR, BG_ERROR_STORE);
  g_test_message ("missing: %s", error->message);
  g_assert_nonnull (strstr (error->message, "grouped"));
  g_clear_error (&error);

  /* The statement was reset: the store goes on reading. */
  read = bg_store_read_record (store, BG_TASK_KIND_UPLOAD, "it's \"full\"/1", &error);
  g_assert_no_error (error);
  assert_records_equal (read, full);

  sqlite3_close (other);
  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

/* A stream of inserts with no pause for a checkpoint to catch up: SQLite's own checkpoint, the
 * safety valve, keeps the WAL bounded, and the restart after it reuses the file instead of
 * truncating it on the main loop (which took longer than the checkpoint). */
static void
test_insert_stream_wal_reused (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *wal = NULL;
  goffset largest = 0;
  guint shrank = 0;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);
  wal = g_strconcat (fixture.path, "-wal", NULL);

  for (guint i = 0; i < 6000; i++)
    {
      g_autofree char *identifier = g_strdup_printf ("stream/%05u", i);
      g_autoptr(BgStoreRecord) record = make_record (BG_TASK_KIND_DOWNLOAD, identifier, i);
      gboolean inserted = FALSE;
      GStatBuf st;

      g_assert_true (bg_store_insert_new (store, record, &inserted, &error));
      g_assert_no_error (error);
      g_assert_true (inserted);

      /* Beyond journal_size_limit (32 MiB) a restart does truncate it. */
      g_assert_cmpint (g_stat (wal, &st), ==, 0);
      if (st.st_size < largest && largest <= 32 * 1024 * 1024)
        shrank++;
      largest = MAX (largest, st.st_size);
    }

  /* Three pages a record: some 72 MiB of WAL without the valve. */
  g_test_message ("largest WAL %" G_GOFFSET_FORMAT " bytes", largest);
  g_assert_cmpint (largest, <, 48 * 1024 * 1024);
  g_assert_cmpuint (shrank, ==, 0);

  g_clear_object (&store);
  g_assert_false (g_file_test (wal, G_FILE_TEST_EXISTS));
  fixture_tear_down (&fixture);
}

typedef struct
{
  GPtrArray *records;   /* every record handed over, in order */
  guint      batches;
  guint      largest;
  guint      stop_after; /* batches; 0 for all */
  gboolean   done;
} Loaded;

static gboolean
store_batch_cb (GPtrArray *records,
                gpointer   user_data)
{
  Loaded *loaded = user_data;

  g_assert_false (loaded->done);
  loaded->batches++;
  loaded->largest = MAX (loaded->largest, records->len);
  /* Taken from the array, as the engine does. */
  for (guint i = 0; i < records->len; i++)
    g_ptr_array_add (loaded->records, g_steal_pointer (&records->pdata[i]));

  return loaded->stop_after == 0 || loaded->batches < loaded->stop_after;
}

static void
store_result_cb (GObject      *source,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  Loaded *loaded = user_data;
  g_autoptr(GError) error = NULL;

  g_assert_true (bg_store_load_all_finish (BG_STORE (source), result, &error));
  g_assert_no_error (error);
  loaded->done = TRUE;
}

static void
load_all_async (BgStore    *store,
                BgTaskKind  kind,
                Loaded     *loaded)
{
  loaded->records = g_ptr_array_new_with_free_func ((GDestroyNotify) bg_store_record_free);
  bg_store_load_all_async (store, kind, store_batch_cb, loaded, NULL, store_result_cb, loaded);
  while (!loaded->done)
    g_main_context_iteration (NULL, TRUE);
}

/* A restore reads 3,000 records of one kind, every field intact, in the order they were
 * created, and none of the other kind. */
static void
test_load_all_many (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) full = make_full_record ("full");
  Loaded loaded = { NULL, };
  Loaded stopped = { .stop_after = 2 };
  g_autoptr(GError) error = NULL;
  const guint count = 3000;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);

  for (guint i = 0; i < count; i++)
    {
      g_autofree char *identifier = g_strdup_printf ("many/%06u", i);
      /* Saved in reverse order of creation. */
      g_autoptr(BgStoreRecord) record = make_record (BG_TASK_KIND_DOWNLOAD, identifier,
                                                     100000 - i);
      g_autoptr(BgStoreRecord) upload = make_record (BG_TASK_KIND_UPLOAD, identifier, i);

      save_or_die (store, record);
      save_or_die (store, upload);
    }
  full->kind = BG_TASK_KIND_DOWNLOAD;
  full->created_at = 1;
  save_or_die (store, full);

  load_all_async (store, BG_TASK_KIND_DOWNLOAD, &loaded);
  g_assert_cmpuint (loaded.records->len, ==, count + 1);
  assert_records_equal (full, g_ptr_array_index (loaded.records, 0));
  for (guint i = 1; i <= count; i++)
    {
      BgStoreRecord *record = g_ptr_array_index (loaded.records, i);
      g_autofree char *expected = g_strdup_printf ("many/%06u", count - i);

      g_assert_cmpstr (record->identifier, ==, expected);
      g_assert_cmpint (record->kind, ==, BG_TASK_KIND_DOWNLOAD);
    }
  /* Handed over a few hundred at a time, not all at once. */
  g_assert_cmpuint (loaded.batches, >, 1);
  g_assert_cmpuint (loaded.largest, <, count);
  g_clear_pointer (&loaded.records, g_ptr_array_unref);

  /* A caller that wants no more stops the load: nothing after the batch that said so, and the
   * load still ends. */
  load_all_async (store, BG_TASK_KIND_DOWNLOAD, &stopped);
  g_assert_cmpuint (stopped.batches, ==, 2);
  g_assert_cmpuint (stopped.records->len, ==, 2 * stopped.largest);
  g_assert_cmpstr (((BgStoreRecord *) g_ptr_array_index (stopped.records, 0))->identifier, ==,
                   "full");
  g_clear_pointer (&stopped.records, g_ptr_array_unref);

  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

static void
test_load_all_order (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GPtrArray) downloads = NULL;
  g_autoptr(GPtrArray) uploads = NULL;
  g_autoptr(GError) error = NULL;
  /* Saved in this order; created_at ties are broken by insertion order. */
  static const struct { const char *identifier; gint64 created_at; } saved[] = {
    { "c", 300 },
    { "a", 100 },
    { "tie-1", 200 },
    { "tie-2", 200 },
    { "tie-3", 200 },
    { "b", 150 },
  };
  static const char * const expected[] = { "a", "b", "tie-1", "tie-2", "tie-3", "c" };

  fixture_set_up (&fixture);
  store = open_store (fixture.path);

  for (guint i = 0; i < G_N_ELEMENTS (saved); i++)
    {
      g_autoptr(BgStoreRecord) record = make_record (BG_TASK_KIND_DOWNLOAD, saved[i].identifier,
                                                     saved[i].created_at);
      save_or_die (store, record);
    }

  /* Saving a record again keeps its place among equals. */
  {
    g_autoptr(BgStoreRecord) record = make_record (BG_TASK_KIND_DOWNLOAD, "tie-1", 200);

    record->state = BG_TASK_STATE_RUNNING;
    save_or_die (store, record);
  }

  /* An upload, which must not show up among the downloads. */
  {
    g_autoptr(BgStoreRecord) record = make_record (BG_TASK_KIND_UPLOAD, "up", 50);
    save_or_die (store, record);
  }

  downloads = bg_store_load_all (store, BG_TASK_KIND_DOWNLOAD, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (downloads->len, ==, G_N_ELEMENTS (expected));
  for (guint i = 0; i < G_N_ELEMENTS (expected); i++)
    {
      BgStoreRecord *record = g_ptr_array_index (downloads, i);

      g_assert_cmpstr (record->identifier, ==, expected[i]);
      g_assert_cmpint (record->kind, ==, BG_TASK_KIND_DOWNLOAD);
    }
  g_assert_cmpint (((BgStoreRecord *) g_ptr_array_index (downloads, 2))->state, ==,
                   BG_TASK_STATE_RUNNING);

  uploads = bg_store_load_all (store, BG_TASK_KIND_UPLOAD, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (uploads->len, ==, 1);
  g_assert_cmpstr (((BgStoreRecord *) g_ptr_array_index (uploads, 0))->identifier, ==, "up");

  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

static void
test_save_progress (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) record = NULL;
  g_autoptr(BgStoreRecord) progress = NULL;
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(BgStoreRecord) missing = NULL;
  g_autoptr(GError) error = NULL;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);

  record = make_full_record ("progress");
  save_or_die (store, record);

  /* Everything differs in the copy; only the progress columns may be written. */
  progress = bg_store_record_copy (record);
  progress->checkpoint = 123;
  progress->total = -1;
  g_free (progress->etag);
  progress->etag = g_strdup ("\"new\"");
  g_clear_pointer (&progress->last_modified, g_free);
  progress->updated_at = 42;
  progress->state = BG_TASK_STATE_QUEUED;
  progress->attempts = 1;
  progress->restarts = 0;
  g_free (progress->uri);
  progress->uri = g_strdup ("https://elsewhere.example/");
  g_clear_pointer (&progress->response_body, g_bytes_unref);
  g_clear_pointer (&progress->error_message, g_free);
  g_clear_pointer (&progress->idempotency_key, g_free);
  progress->has_response = FALSE;
  progress->created_at = 1;

  g_assert_true (bg_store_save_progress (store, progress, &error));
  g_assert_no_error (error);

  loaded = bg_store_lookup (store, BG_TASK_KIND_UPLOAD, "progress", &error);
  g_assert_no_error (error);
  g_assert_cmpint (loaded->checkpoint, ==, 123);
  g_assert_cmpint (loaded->total, ==, -1);
  g_assert_cmpstr (loaded->etag, ==, "\"new\"");
  g_assert_null (loaded->last_modified);
  g_assert_cmpint (loaded->updated_at, ==, 42);

  /* The rest is what bg_store_save() wrote. */
  record->checkpoint = 123;
  record->total = -1;
  g_free (record->etag);
  record->etag = g_strdup ("\"new\"");
  g_clear_pointer (&record->last_modified, g_free);
  record->updated_at = 42;
  assert_records_equal (record, loaded);

  /* Progress for a record that is gone writes nothing and is not an error. */
  missing = make_record (BG_TASK_KIND_UPLOAD, "gone", 5);
  g_assert_true (bg_store_save_progress (store, missing, &error));
  g_assert_no_error (error);
  g_clear_pointer (&loaded, bg_store_record_free);
  loaded = bg_store_lookup (store, BG_TASK_KIND_UPLOAD, "gone", &error);
  g_assert_no_error (error);
  g_assert_null (loaded);

  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

static void
set_string (char       **field,
            const char  *value)
{
  g_free (*field);
  *field = g_strdup (value);
}

/* Sets in @to the columns that bg_store_save_attempt_grouped() writes, from @from. */
static void
copy_attempt_columns (BgStoreRecord       *to,
                      const BgStoreRecord *from)
{
  to->state = from->state;
  to->attempts = from->attempts;
  to->restarts = from->restarts;
  to->next_attempt_at = from->next_attempt_at;
  to->updated_at = from->updated_at;
  set_string (&to->file_path, from->file_path);
  set_string (&to->partial_path, from->partial_path);
  to->checkpoint = from->checkpoint;
  to->total = from->total;
  set_string (&to->etag, from->etag);
  set_string (&to->last_modified, from->last_modified);
  to->source_size = from->source_size;
  to->source_mtime = from->source_mtime;
  set_string (&to->idempotency_key, from->idempotency_key);
  set_string (&to->upload_url, from->upload_url);
  to->upload_url_protocol = from->upload_url_protocol;
  to->upload_expires = from->upload_expires;
}

/* And the ones that bg_store_save_result_grouped() adds. */
static void
copy_result_columns (BgStoreRecord       *to,
                     const BgStoreRecord *from)
{
  copy_attempt_columns (to, from);
  to->has_response = from->has_response;
  to->response_kind = from->response_kind;
  to->response_status = from->response_status;
  set_string (&to->response_reason, from->response_reason);
  set_string (&to->response_headers, from->response_headers);
  g_clear_pointer (&to->response_body, g_bytes_unref);
  if (from->response_body != NULL)
    to->response_body = g_bytes_ref (from->response_body);
  set_string (&to->error_domain, from->error_domain);
  to->error_code = from->error_code;
  set_string (&to->error_message, from->error_message);
}

static BgStoreRecord *
lookup_committed (BgStore    *store,
                  BgTaskKind  kind,
                  const char *identifier)
{
  g_autoptr(GError) error = NULL;
  BgStoreRecord *record;

  g_assert_true (bg_store_commit_group (store, &error));
  g_assert_no_error (error);
  record = bg_store_lookup (store, kind, identifier, &error);
  g_assert_no_error (error);
  g_assert_nonnull (record);

  return record;
}

/* The start of an attempt and its result write only their columns, and read back equal to the
 * record that a full save would have written from the same fields. */
static void
test_save_attempt_and_result (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) stored = NULL;
  g_autoptr(BgStoreRecord) other = NULL;
  g_autoptr(BgStoreRecord) expected = NULL;
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(BgStoreRecord) gone = NULL;
  g_autoptr(GError) error = NULL;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);

  stored = make_full_record ("narrow");
  save_or_die (store, stored);

  /* Every column differs in @other, NULLs included; only the attempt's may be written. */
  other = make_record (BG_TASK_KIND_UPLOAD, "narrow", 1);
  other->state = BG_TASK_STATE_RUNNING;
  other->total = -1;
  other->source_size = -1;
  g_assert_true (bg_store_save_attempt_grouped (store, other, &error));
  g_assert_no_error (error);
  loaded = lookup_committed (store, BG_TASK_KIND_UPLOAD, "narrow");
  expected = bg_store_record_copy (stored);
  copy_attempt_columns (expected, other);
  assert_records_equal (expected, loaded);
  g_clear_pointer (&loaded, bg_store_record_free);

  g_assert_true (bg_store_save_result_grouped (store, other, &error));
  g_assert_no_error (error);
  loaded = lookup_committed (store, BG_TASK_KIND_UPLOAD, "narrow");
  copy_result_columns (expected, other);
  assert_records_equal (expected, loaded);
  g_clear_pointer (&loaded, bg_store_record_free);

  /* Back to every value set, binary body and all: the record is the full one again. */
  g_assert_true (bg_store_save_result_grouped (store, stored, &error));
  g_assert_no_error (error);
  loaded = lookup_committed (store, BG_TASK_KIND_UPLOAD, "narrow");
  assert_records_equal (stored, loaded);
  g_clear_pointer (&loaded, bg_store_record_free);

  /* A record that is gone is written whole, with the full upsert. */
  gone = make_full_record ("gone");
  g_assert_true (bg_store_save_attempt_grouped (store, gone, &error));
  g_assert_no_error (error);
  loaded = lookup_committed (store, BG_TASK_KIND_UPLOAD, "gone");
  assert_records_equal (gone, loaded);
  g_clear_pointer (&loaded, bg_store_record_free);
  g_assert_true (bg_store_delete (store, BG_TASK_KIND_UPLOAD, "gone", &error));
  g_assert_no_error (error);
  g_assert_true (bg_store_save_result_grouped (store, gone, &error));
  g_assert_no_error (error);
  loaded = lookup_committed (store, BG_TASK_KIND_UPLOAD, "gone");
  assert_records_equal (gone, loaded);

  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

static void
test_hostile_identifiers (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GPtrArray) identifiers = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GPtrArray) all = NULL;
  g_autoptr(GError) error = NULL;
  GString *huge;

  fixture_set_up (&fixture);
  store = open_store (fixture.path);

  g_ptr_array_add (identifiers, g_strdup ("it's"));
  g_ptr_array_add (identifiers, g_strdup ("\"double\" 'single' `back`"));
  g_ptr_array_add (identifiers, g_strdup ("'; DROP TABLE tasks; --"));
  g_ptr_array_add (identifiers, g_strdup ("\"); DELETE FROM tasks; --"));
  g_ptr_array_add (identifiers, g_strdup ("%s%n%d%%"));
  g_ptr_array_add (identifiers, g_strdup ("back\\slash\\\\ \\' \\0"));
  g_ptr_array_add (identifiers, g_strdup ("##identifier::string"));
  g_ptr_array_add (identifiers, g_strdup ("?1 :name @x $y"));
  g_ptr_array_add (identifiers, g_strdup ("tab\tnew\nline\r"));
  g_ptr_array_add (identifiers, g_strdup ("emoji 🎉👩‍👩‍👧 and CJK 漢字かな한국어"));
  g_ptr_array_add (identifiers, g_strdup ("e\xcc\x81 vs \xc3\xa9"));  /* not normalised */
  g_ptr_array_add (identifiers, g_strdup (" "));
  g_ptr_array_add (identifiers, g_strdup ("NULL"));

  /* 1 MiB of multibyte text with everything above sprinkled in. */
  huge = g_string_sized_new (1024 * 1024 + 64);
  while (huge->len < 1024 * 1024)
    g_string_append (huge, "漢'; --%s\\🎉");
  g_ptr_array_add (identifiers, g_string_free (huge, FALSE));

  for (guint i = 0; i < identifiers->len; i++)
    {
      const char *identifier = g_ptr_array_index (identifiers, i);
      g_autoptr(BgStoreRecord) record = make_record (BG_TASK_KIND_DOWNLOAD, identifier, i);
      g_autoptr(BgStoreRecord) loaded = NULL;

      /* The identifier also goes into a string column and the body. */
      record->etag = g_strdup (identifier);
      record->response_body = g_bytes_new (identifier, strlen (identifier));
      save_or_die (store, record);

      loaded = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, identifier, &error);
      g_assert_no_error (error);
      g_assert_nonnull (loaded);
      g_assert_cmpuint (strlen (loaded->identifier), ==, strlen (identifier));
      g_assert_true (strcmp (loaded->identifier, identifier) == 0);
      assert_records_equal (record, loaded);

      record->checkpoint = 77;
      g_assert_true (bg_store_save_progress (store, record, &error));
      g_assert_no_error (error);
      g_clear_pointer (&loaded, bg_store_record_free);
      loaded = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, identifier, &error);
      g_assert_no_error (error);
      g_assert_cmpint (loaded->checkpoint, ==, 77);
    }

  /* Nothing was dropped or merged, and every identifier came back byte for byte. */
  all = bg_store_load_all (store, BG_TASK_KIND_DOWNLOAD, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (all->len, ==, identifiers->len);
  for (guint i = 0; i < identifiers->len; i++)
    g_assert_true (strcmp (((BgStoreRecord *) g_ptr_array_index (all, i))->identifier,
                           g_ptr_array_index (identifiers, i)) == 0);

  /* Deleting one removes that one only. */
  for (guint i = 0; i < identifiers->len; i++)
    {
      g_clear_pointer (&all, g_ptr_array_unref);
      g_assert_true (bg_store_delete (store, BG_TASK_KIND_DOWNLOAD,
                                      g_ptr_array_index (identifiers, i), &error));
      g_assert_no_error (error);
      all = bg_store_load_all (store, BG_TASK_KIND_DOWNLOAD, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (all->len, ==, identifiers->len - i - 1);
    }

  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

static void
test_file_modes (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) record = NULL;
  g_autofree char *wal = NULL;
  g_autofree char *shm = NULL;
  g_autofree char *lock = NULL;
  mode_t old_umask;

  fixture_set_up (&fixture);
  wal = g_strconcat (fixture.path, "-wal", NULL);
  shm = g_strconcat (fixture.path, "-shm", NULL);
  lock = g_strconcat (fixture.path, ".lock", NULL);

  /* With no umask to hide behind, 0600 has to come from the store. */
  old_umask = umask (0);
  store = open_store (fixture.path);
  record = make_record (BG_TASK_KIND_DOWNLOAD, "mode", 1);
  save_or_die (store, record);
  umask (old_umask);

  g_assert_cmpuint (file_mode (fixture.path), ==, 0600);
  g_assert_true (g_file_test (wal, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (file_mode (wal), ==, 0600);
  g_assert_true (g_file_test (shm, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (file_mode (shm), ==, 0600);
  /* The lock is on the database itself: no file of its own. */
  g_assert_false (g_file_test (lock, G_FILE_TEST_EXISTS));

  /* Closing checkpoints the log into the database and removes it: SQLite was closed cleanly. */
  g_clear_object (&store);
  g_assert_false (g_file_test (wal, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (shm, G_FILE_TEST_EXISTS));

  fixture_tear_down (&fixture);
}

static void
test_migration (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GFile) source = NULL;
  g_autoptr(GFile) destination = NULL;
  g_autoptr(GPtrArray) downloads = NULL;
  g_autoptr(GPtrArray) uploads = NULL;
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(GError) error = NULL;
  BgStoreRecord *record;

  fixture_set_up (&fixture);

  source = g_file_new_for_path (g_test_get_filename (G_TEST_DIST, "fixtures",
                                                     "store-v1.sqlite", NULL));
  destination = g_file_new_for_path (fixture.path);
  g_file_copy (source, destination, G_FILE_COPY_NONE, NULL, NULL, NULL, &error);
  g_assert_no_error (error);
  g_chmod (fixture.path, 0600);

  store = open_store (fixture.path);
  g_assert_cmpint (bg_store_get_schema_version (store), ==, BG_STORE_SCHEMA_VERSION);

  downloads = bg_store_load_all (store, BG_TASK_KIND_DOWNLOAD, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (downloads->len, ==, 2);

  record = g_ptr_array_index (downloads, 0);
  g_assert_cmpstr (record->identifier, ==, "photos/2024.tar");
  g_assert_cmpint (record->state, ==, BG_TASK_STATE_RUNNING);
  g_assert_cmpstr (record->method, ==, "GET");
  g_assert_cmpstr (record->uri, ==, "https://example.com/photos/2024.tar");
  g_assert_cmpstr (record->request_headers, ==, "Accept: */*\n");
  g_assert_cmpstr (record->file_path, ==, "/home/user/Downloads/2024.tar");
  g_assert_cmpstr (record->partial_path, ==, "/home/user/Downloads/.bg-3f9a1c.partial");
  g_assert_cmpint (record->checkpoint, ==, 8388608);
  g_assert_cmpint (record->total, ==, 52428800);
  g_assert_cmpstr (record->etag, ==, "\"v1-etag\"");
  g_assert_cmpstr (record->last_modified, ==, "Tue, 02 Jan 2024 10:00:00 GMT");
  g_assert_cmpint (record->source_size, ==, -1);
  g_assert_cmpuint (record->attempts, ==, 2);
  g_assert_cmpint (record->created_at, ==, G_GINT64_CONSTANT (1700000000000000));
  g_assert_cmpint (record->updated_at, ==, G_GINT64_CONSTANT (1700000005000000));
  g_assert_false (record->has_response);
  g_assert_null (record->response_body);
  /* The columns schemas 2 and 3 added, defaulted. */
  g_assert_null (record->idempotency_key);
  g_assert_cmpuint (record->restarts, ==, 0);
  g_assert_false (record->allow_metered);
  g_assert_false (record->discretionary);
  g_assert_cmpint (record->priority, ==, 0);
  g_assert_cmpint (record->earliest_start, ==, 0);
  g_assert_null (record->expected_sha256);
  /* And those of schema 4. */
  g_assert_false (record->keep_credentials);
  g_assert_null (record->withheld_headers);
  g_assert_false (record->withheld_password);
  /* And that of schema 5. */
  g_assert_false (record->paused);
  /* And those of schema 6: a plain upload, as it was. */
  g_assert_cmpint (record->upload_protocol, ==, BG_UPLOAD_PROTOCOL_PLAIN);
  g_assert_null (record->upload_url);
  /* And that of schema 7: no bandwidth cap. */
  g_assert_cmpint (record->max_bandwidth, ==, 0);

  record = g_ptr_array_index (downloads, 1);
  g_assert_cmpstr (record->identifier, ==, "broken");
  g_assert_true (record->has_response);
  g_assert_cmpint (record->response_kind, ==, 3);
  g_assert_cmpint (record->total, ==, -1);
  g_assert_cmpstr (record->error_domain, ==, "g-tls-error-quark");
  g_assert_cmpint (record->error_code, ==, 3);
  g_assert_cmpstr (record->error_message, ==, "Unacceptable TLS certificate");
  g_assert_null (record->idempotency_key);
  g_assert_cmpuint (record->restarts, ==, 0);

  uploads = bg_store_load_all (store, BG_TASK_KIND_UPLOAD, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (uploads->len, ==, 1);
  record = g_ptr_array_index (uploads, 0);
  g_assert_cmpstr (record->identifier, ==, "report 'final'.pdf");
  g_assert_cmpuint (record->response_status, ==, 201);
  g_assert_cmpstr (record->response_reason, ==, "Created");
  g_assert_cmpint (record->source_mtime, ==, G_GINT64_CONSTANT (1690000000000000));
  g_assert_nonnull (record->response_body);
  g_assert_cmpmem (g_bytes_get_data (record->response_body, NULL),
                   g_bytes_get_size (record->response_body), "{\"id\":1}", 8);

  /* The new columns work on the upgraded table, and the upgrade is done once. */
  record->idempotency_key = g_strdup ("key");
  record->restarts = 3;
  record->allow_metered = TRUE;
  record->discretionary = TRUE;
  record->priority = -7;
  record->earliest_start = G_GINT64_CONSTANT (1800000000000000);
  record->expected_sha256 = g_strdup ("0123456789abcdef0123456789abcdef"
                                      "0123456789abcdef0123456789abcdef");
  record->keep_credentials = TRUE;
  record->withheld_headers = g_strdup ("Cookie");
  record->withheld_password = TRUE;
  record->paused = TRUE;
  record->max_bandwidth = 5 * 1024 * 1024;
  save_or_die (store, record);
  g_clear_object (&store);

  store = open_store (fixture.path);
  g_assert_cmpint (bg_store_get_schema_version (store), ==, BG_STORE_SCHEMA_VERSION);
  loaded = bg_store_lookup (store, BG_TASK_KIND_UPLOAD, "report 'final'.pdf", &error);
  g_assert_no_error (error);
  assert_records_equal (record, loaded);
  g_clear_object (&store);

  fixture_tear_down (&fixture);
}

static void
test_corrupt_garbage (void)
{
  Fixture fixture;
  g_autoptr(GError) error = NULL;
  g_autofree guint8 *garbage = g_malloc (64 * 1024);

  fixture_set_up (&fixture);

  for (gsize i = 0; i < 64 * 1024; i++)
    garbage[i] = (guint8) g_test_rand_int_range (0, 256);
  g_file_set_contents (fixture.path, (const char *) garbage, 64 * 1024, &error);
  g_assert_no_error (error);

  assert_refused (fixture.path, NULL);

  /* Text that merely starts like a database. */
  g_file_set_contents (fixture.path, "SQLite format 3\0 and then nothing useful", 41, &error);
  g_assert_no_error (error);
  assert_refused (fixture.path, NULL);

  fixture_tear_down (&fixture);
}

static void
test_corrupt_page (void)
{
  Fixture fixture;
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize page_size = 0;
  gsize length = 0;

  fixture_set_up (&fixture);
  make_database (fixture.path, 300);

  read_page_size (fixture.path, &page_size, &length);
  g_assert_cmpuint (length / page_size, >, 4);

  /* Page 2 is the root of the tasks table. */
  g_file_get_contents (fixture.path, &contents, &length, &error);
  g_assert_no_error (error);
  for (gsize i = page_size; i < 2 * page_size; i++)
    contents[i] = (char) g_test_rand_int_range (0, 256);
  g_file_set_contents (fixture.path, contents, length, &error);
  g_assert_no_error (error);

  assert_refused (fixture.path, "damaged");

  /* The schema table, on page 1 right after the 100-byte header, which libgda reads as it opens
   * the file. */
  g_clear_pointer (&contents, g_free);
  g_file_get_contents (fixture.path, &contents, &length, &error);
  g_assert_no_error (error);
  for (gsize i = 100; i < page_size; i++)
    contents[i] = (char) g_test_rand_int_range (0, 256);
  g_file_set_contents (fixture.path, contents, length, &error);
  g_assert_no_error (error);

  assert_refused (fixture.path, NULL);

  fixture_tear_down (&fixture);
}

static void
test_corrupt_truncated (void)
{
  Fixture fixture;
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize page_size = 0;
  gsize length = 0;

  fixture_set_up (&fixture);
  make_database (fixture.path, 300);

  read_page_size (fixture.path, &page_size, &length);
  g_file_get_contents (fixture.path, &contents, &length, &error);
  g_assert_no_error (error);

  /* Cut at a page boundary, then in the middle of a page. */
  g_file_set_contents (fixture.path, contents, (length / page_size / 2) * page_size, &error);
  g_assert_no_error (error);
  assert_refused (fixture.path, NULL);

  g_file_set_contents (fixture.path, contents, length / 2 + 123, &error);
  g_assert_no_error (error);
  assert_refused (fixture.path, NULL);

  /* Only the header survived. */
  g_file_set_contents (fixture.path, contents, 100, &error);
  g_assert_no_error (error);
  assert_refused (fixture.path, NULL);

  fixture_tear_down (&fixture);
}

static void
set_user_version (const char *path,
                  guint32     version)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize length = 0;

  /* The header keeps user_version big-endian at offset 60. */
  g_file_get_contents (path, &contents, &length, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (length, >=, 100);
  contents[60] = (char) (version >> 24);
  contents[61] = (char) (version >> 16);
  contents[62] = (char) (version >> 8);
  contents[63] = (char) version;
  g_file_set_contents (path, contents, length, &error);
  g_assert_no_error (error);
}

static void
test_newer_schema (void)
{
  Fixture fixture;

  fixture_set_up (&fixture);
  make_database (fixture.path, 3);
  set_user_version (fixture.path, 99);

  assert_refused (fixture.path, "99");

  fixture_tear_down (&fixture);
}

static void
test_foreign_database (void)
{
  Fixture fixture;

  fixture_set_up (&fixture);

  /* Tables, but no schema version: someone else's database. */
  make_database (fixture.path, 3);
  set_user_version (fixture.path, 0);
  assert_refused (fixture.path, NULL);

  fixture_tear_down (&fixture);
}

/* Runs @statements on the closed database at @path, outside the store. */
static void
run_sql_on (const char         *path,
            const char * const *statements)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  g_autofree char *enc_dir = gda_rfc1738_encode (dir);
  g_autofree char *enc_base = gda_rfc1738_encode (base);
  g_autofree char *cnc_string = g_strdup_printf ("DB_DIR=%s;DB_NAME=%s", enc_dir, enc_base);
  GdaConnection *cnc;

  cnc = gda_connection_open_from_string ("SQLite", cnc_string, NULL,
                                         GDA_CONNECTION_OPTIONS_NONE, &error);
  g_assert_no_error (error);

  for (guint i = 0; statements[i] != NULL; i++)
    {
      GdaStatement *stmt = gda_connection_parse_sql_string (cnc, statements[i], NULL, &error);

      g_assert_no_error (error);
      gda_connection_statement_execute_non_select (cnc, stmt, NULL, NULL, &error);
      g_assert_no_error (error);
      g_object_unref (stmt);
    }

  gda_connection_close (cnc);
  g_object_unref (cnc);
}

/* What a record of schema 5 or older reads as once upgraded: a plain upload, with no upload
 * resource. */
static void
clear_resumable_fields (BgStoreRecord *record)
{
  record->upload_protocol = BG_UPLOAD_PROTOCOL_PLAIN;
  record->allow_tus = FALSE;
  record->chunk_size = 0;
  g_clear_pointer (&record->upload_url, g_free);
  record->upload_url_protocol = BG_UPLOAD_PROTOCOL_AUTO;
  record->upload_expires = 0;
}

/* A database of schema 3 (a current one without the columns 004-credentials.sql and later
 * migrations add) is upgraded: its records are intact, the new columns take their defaults and
 * work. */
static void
test_migration_v3 (void)
{
  static const char * const downgrade[] = {
    "ALTER TABLE tasks DROP COLUMN keep_credentials",
    "ALTER TABLE tasks DROP COLUMN withheld_headers",
    "ALTER TABLE tasks DROP COLUMN withheld_password",
    "ALTER TABLE tasks DROP COLUMN paused",
    "ALTER TABLE tasks DROP COLUMN upload_protocol",
    "ALTER TABLE tasks DROP COLUMN allow_tus",
    "ALTER TABLE tasks DROP COLUMN chunk_size",
    "ALTER TABLE tasks DROP COLUMN upload_url",
    "ALTER TABLE tasks DROP COLUMN upload_url_protocol",
    "ALTER TABLE tasks DROP COLUMN upload_expires",
    "DROP TABLE upload_probes",
    "ALTER TABLE tasks DROP COLUMN max_bandwidth",
    NULL
  };
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) record = make_full_record ("from v3");
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(BgStoreRecord) again = NULL;
  g_autoptr(GError) error = NULL;

  fixture_set_up (&fixture);

  /* What version 3 could hold, including credentials it stored in plain text. */
  record->keep_credentials = FALSE;
  g_clear_pointer (&record->withheld_headers, g_free);
  record->withheld_password = FALSE;
  record->paused = FALSE;
  clear_resumable_fields (record);
  record->max_bandwidth = 0;
  store = open_store (fixture.path);
  save_or_die (store, record);
  g_clear_object (&store);
  run_sql_on (fixture.path, downgrade);
  set_user_version (fixture.path, 3);

  store = open_store (fixture.path);
  g_assert_cmpint (bg_store_get_schema_version (store), ==, BG_STORE_SCHEMA_VERSION);
  loaded = bg_store_lookup (store, record->kind, record->identifier, &error);
  g_assert_no_error (error);
  assert_records_equal (record, loaded);

  loaded->keep_credentials = TRUE;
  loaded->withheld_headers = g_strdup ("Proxy-Authorization");
  loaded->withheld_password = TRUE;
  save_or_die (store, loaded);
  g_clear_object (&store);

  store = open_store (fixture.path);
  again = bg_store_lookup (store, record->kind, record->identifier, &error);
  g_assert_no_error (error);
  assert_records_equal (loaded, again);
  g_clear_object (&store);

  fixture_tear_down (&fixture);
}

/* A database of schema 6 (a current one without the column 007-max-bandwidth.sql adds) is
 * upgraded to 7: its tasks have no bandwidth cap, and a cap is kept once stored. */
static void
test_migration_max_bandwidth (void)
{
  static const char * const downgrade[] = {
    "ALTER TABLE tasks DROP COLUMN max_bandwidth",
    NULL
  };
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) record = make_full_record ("from v6");
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(BgStoreRecord) again = NULL;
  g_autoptr(GError) error = NULL;

  fixture_set_up (&fixture);

  record->max_bandwidth = 0;
  store = open_store (fixture.path);
  save_or_die (store, record);
  g_clear_object (&store);
  run_sql_on (fixture.path, downgrade);
  set_user_version (fixture.path, 6);

  store = open_store (fixture.path);
  g_assert_cmpint (bg_store_get_schema_version (store), ==, BG_STORE_SCHEMA_VERSION);
  loaded = bg_store_lookup (store, record->kind, record->identifier, &error);
  g_assert_no_error (error);
  assert_records_equal (record, loaded);

  loaded->max_bandwidth = 20 * 1024 * 1024;
  save_or_die (store, loaded);
  g_clear_object (&store);

  store = open_store (fixture.path);
  again = bg_store_lookup (store, record->kind, record->identifier, &error);
  g_assert_no_error (error);
  g_assert_cmpint (again->max_bandwidth, ==, 20 * 1024 * 1024);
  assert_records_equal (loaded, again);
  g_clear_object (&store);

  fixture_tear_down (&fixture);
}

/* A database of schema 4 (a current one without the column 005-pause.sql adds) is upgraded to
 * 5: its tasks are not paused, and a pause is kept once stored. */
static void
test_migration_v4 (void)
{
  static const char * const downgrade[] = {
    "ALTER TABLE tasks DROP COLUMN paused",
    "ALTER TABLE tasks DROP COLUMN upload_protocol",
    "ALTER TABLE tasks DROP COLUMN allow_tus",
    "ALTER TABLE tasks DROP COLUMN chunk_size",
    "ALTER TABLE tasks DROP COLUMN upload_url",
    "ALTER TABLE tasks DROP COLUMN upload_url_protocol",
    "ALTER TABLE tasks DROP COLUMN upload_expires",
    "DROP TABLE upload_probes",
    "ALTER TABLE tasks DROP COLUMN max_bandwidth",
    NULL
  };
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) record = make_full_record ("from v4");
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(BgStoreRecord) again = NULL;
  g_autoptr(GError) error = NULL;

  fixture_set_up (&fixture);

  record->paused = FALSE;
  clear_resumable_fields (record);
  record->max_bandwidth = 0;
  store = open_store (fixture.path);
  save_or_die (store, record);
  g_clear_object (&store);
  run_sql_on (fixture.path, downgrade);
  set_user_version (fixture.path, 4);

  store = open_store (fixture.path);
  g_assert_cmpint (bg_store_get_schema_version (store), ==, BG_STORE_SCHEMA_VERSION);
  loaded = bg_store_lookup (store, record->kind, record->identifier, &error);
  g_assert_no_error (error);
  assert_records_equal (record, loaded);

  loaded->paused = TRUE;
  save_or_die (store, loaded);
  g_clear_object (&store);

  store = open_store (fixture.path);
  again = bg_store_lookup (store, record->kind, record->identifier, &error);
  g_assert_no_error (error);
  g_assert_true (again->paused);
  assert_records_equal (loaded, again);
  g_clear_object (&store);

  fixture_tear_down (&fixture);
}

/* A database of schema 5 (what the previous version wrote) is upgraded: its uploads stay
 * plain ones, a resumable upload's fields are kept once stored, and the probe cache works. */
static void
test_migration_v5 (void)
{
  static const char * const downgrade[] = {
    "ALTER TABLE tasks DROP COLUMN upload_protocol",
    "ALTER TABLE tasks DROP COLUMN allow_tus",
    "ALTER TABLE tasks DROP COLUMN chunk_size",
    "ALTER TABLE tasks DROP COLUMN upload_url",
    "ALTER TABLE tasks DROP COLUMN upload_url_protocol",
    "ALTER TABLE tasks DROP COLUMN upload_expires",
    "DROP TABLE upload_probes",
    "ALTER TABLE tasks DROP COLUMN max_bandwidth",
    NULL
  };
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) record = make_full_record ("from v5");
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(BgStoreRecord) again = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *extensions = NULL;
  int protocol = -1;
  gint64 checked_at = 0;

  fixture_set_up (&fixture);

  record->kind = BG_TASK_KIND_UPLOAD;
  clear_resumable_fields (record);
  record->max_bandwidth = 0;
  store = open_store (fixture.path);
  save_or_die (store, record);
  g_clear_object (&store);
  run_sql_on (fixture.path, downgrade);
  set_user_version (fixture.path, 5);

  store = open_store (fixture.path);
  g_assert_cmpint (bg_store_get_schema_version (store), ==, BG_STORE_SCHEMA_VERSION);
  loaded = bg_store_lookup (store, record->kind, record->identifier, &error);
  g_assert_no_error (error);
  assert_records_equal (record, loaded);

  g_assert_false (bg_store_lookup_probe (store, "http://127.0.0.1:1/up", &protocol, &extensions,
                                         &checked_at, &error));
  g_assert_no_error (error);
  g_assert_true (bg_store_save_probe (store, "http://127.0.0.1:1/up", BG_UPLOAD_PROTOCOL_TUS,
                                      "creation,termination", 42, &error));
  g_assert_no_error (error);

  loaded->upload_protocol = BG_UPLOAD_PROTOCOL_IETF;
  loaded->upload_url = g_strdup ("http://127.0.0.1:1/resumable/0123");
  loaded->upload_url_protocol = BG_UPLOAD_PROTOCOL_IETF;
  loaded->chunk_size = 1024;
  save_or_die (store, loaded);
  g_clear_object (&store);

  store = open_store (fixture.path);
  again = bg_store_lookup (store, record->kind, record->identifier, &error);
  g_assert_no_error (error);
  assert_records_equal (loaded, again);
  g_assert_true (bg_store_lookup_probe (store, "http://127.0.0.1:1/up", &protocol, &extensions,
                                        &checked_at, &error));
  g_assert_no_error (error);
  g_assert_cmpint (protocol, ==, BG_UPLOAD_PROTOCOL_TUS);
  g_assert_cmpstr (extensions, ==, "creation,termination");
  g_assert_cmpint (checked_at, ==, 42);
  g_clear_object (&store);

  fixture_tear_down (&fixture);
}

static void
test_same_process (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStore) again = NULL;
  g_autoptr(BgStore) dotted = NULL;
  g_autoptr(BgStore) linked = NULL;
  g_autoptr(BgStore) reopened = NULL;
  g_autoptr(BgStoreRecord) record = NULL;
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *real_dir = NULL;
  g_autofree char *link_dir = NULL;
  g_autofree char *real_path = NULL;
  g_autofree char *dotted_path = NULL;
  g_autofree char *linked_path = NULL;

  fixture_set_up (&fixture);
  real_dir = g_build_filename (fixture.dir, "real", NULL);
  link_dir = g_build_filename (fixture.dir, "link", NULL);
  g_assert_cmpint (g_mkdir (real_dir, 0700), ==, 0);
  g_assert_cmpint (symlink (real_dir, link_dir), ==, 0);
  real_path = g_build_filename (real_dir, "tasks.sqlite", NULL);
  dotted_path = g_build_filename (fixture.dir, ".", "real", "..", "real", "tasks.sqlite", NULL);
  linked_path = g_build_filename (link_dir, "tasks.sqlite", NULL);

  store = open_store (real_path);
  again = open_store (real_path);
  dotted = open_store (dotted_path);
  linked = open_store (linked_path);
  g_assert_true (store == again);
  g_assert_true (store == dotted);
  g_assert_true (store == linked);
  g_assert_cmpstr (bg_store_get_path (linked), ==, real_path);

  record = make_record (BG_TASK_KIND_DOWNLOAD, "shared", 1);
  save_or_die (linked, record);

  g_clear_object (&again);
  g_clear_object (&dotted);
  g_clear_object (&linked);
  g_clear_object (&store);

  /* Once the last reference is gone, the file can be opened afresh. */
  reopened = open_store (linked_path);
  loaded = bg_store_lookup (reopened, BG_TASK_KIND_DOWNLOAD, "shared", &error);
  g_assert_no_error (error);
  assert_records_equal (record, loaded);
  g_clear_object (&reopened);

  fixture_tear_down (&fixture);
}

static void
test_busy (void)
{
  Fixture fixture;
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) lines = NULL;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *helper_path = NULL;

  fixture_set_up (&fixture);
  helper_path = g_test_build_filename (G_TEST_BUILT, "store-helper", NULL);

  helper = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                             &error, helper_path, fixture.path, NULL);
  g_assert_no_error (error);

  lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (helper));
  line = g_data_input_stream_read_line_utf8 (lines, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, "ready");

  /* The helper holds the database: this process is refused, with the path in the message. */
  store = bg_store_open (fixture.path, &error);
  g_assert_error (error, BG_ERROR, BG_ERROR_BUSY);
  g_assert_null (store);
  g_test_message ("busy: %s", error->message);
  g_assert_nonnull (strstr (error->message, fixture.path));
  g_clear_error (&error);

  /* Refused again: a failed attempt leaves nothing behind in this process. */
  store = bg_store_open (fixture.path, &error);
  g_assert_error (error, BG_ERROR, BG_ERROR_BUSY);
  g_clear_error (&error);

  /* End of input makes the helper close the store and exit. */
  g_output_stream_close (g_subprocess_get_stdin_pipe (helper), NULL, &error);
  g_assert_no_error (error);
  g_subprocess_wait_check (helper, NULL, &error);
  g_assert_no_error (error);

  store = open_store (fixture.path);
  g_assert_cmpint (bg_store_get_schema_version (store), ==, BG_STORE_SCHEMA_VERSION);

  /* And the other way round: while this process holds it, the helper is refused. */
  g_clear_object (&helper);
  g_clear_object (&lines);
  g_clear_pointer (&line, g_free);
  helper = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                             &error, helper_path, fixture.path, NULL);
  g_assert_no_error (error);
  lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (helper));
  line = g_data_input_stream_read_line_utf8 (lines, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_str_has_prefix (line, "error: "));
  g_assert_nonnull (strstr (line, fixture.path));
  g_subprocess_wait (helper, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_subprocess_get_exit_status (helper), ==, 1);

  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

/* The threat model: a process killed right after a commit returned. */
static void
test_survives_kill (void)
{
  Fixture fixture;
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *helper_path = NULL;

  fixture_set_up (&fixture);
  helper_path = g_test_build_filename (G_TEST_BUILT, "store-helper", NULL);

  helper = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE, &error,
                             helper_path, "--save-then-kill", fixture.path, "killed 💥", NULL);
  g_assert_no_error (error);
  g_subprocess_wait (helper, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_signaled (helper));
  g_assert_cmpint (g_subprocess_get_term_sig (helper), ==, SIGKILL);

  store = open_store (fixture.path);
  loaded = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "killed 💥", &error);
  g_assert_no_error (error);
  g_assert_nonnull (loaded);
  g_assert_cmpint (loaded->state, ==, BG_TASK_STATE_RUNNING);
  g_assert_cmpstr (loaded->uri, ==, "https://example.com/killed");
  g_assert_cmpint (loaded->checkpoint, ==, 4096);
  g_assert_cmpint (loaded->total, ==, 8192);

  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

/* Second processes, and other users */

#define HELPER_ACCEPTED (-100)
#define HELPER_SKIPPED  (-101)

/* Runs store-helper with the arguments that follow @message (NULL-terminated).  When it opens the
 * database it is let go at once, and HELPER_ACCEPTED is returned; otherwise the BgError code it
 * was refused with, or HELPER_SKIPPED, with the error or the reason in @message.  @launcher may
 * make it run as another user. */
static int
run_helper (GSubprocessLauncher  *launcher,
            char                **message,
            ...)
{
  g_autoptr(GSubprocessLauncher) own_launcher = NULL;
  g_autoptr(GPtrArray) argv = g_ptr_array_new_with_free_func (g_free);
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) lines = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *line = NULL;
  g_autofree char *code_line = NULL;
  const char *arg;
  va_list args;
  int result;

  g_clear_pointer (message, g_free);
  if (launcher == NULL)
    launcher = own_launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_set_flags (launcher, G_SUBPROCESS_FLAGS_STDIN_PIPE |
                                             G_SUBPROCESS_FLAGS_STDOUT_PIPE);

  g_ptr_array_add (argv, g_test_build_filename (G_TEST_BUILT, "store-helper", NULL));
  va_start (args, message);
  while ((arg = va_arg (args, const char *)) != NULL)
    g_ptr_array_add (argv, g_strdup (arg));
  va_end (args);
  g_ptr_array_add (argv, NULL);

  helper = g_subprocess_launcher_spawnv (launcher, (const char * const *) argv->pdata, &error);
  g_assert_no_error (error);
  lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (helper));
  line = g_data_input_stream_read_line_utf8 (lines, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_nonnull (line);

  /* End of input makes a helper that holds the database close it and exit. */
  g_output_stream_close (g_subprocess_get_stdin_pipe (helper), NULL, &error);
  g_assert_no_error (error);

  if (g_str_equal (line, "ready"))
    {
      result = HELPER_ACCEPTED;
    }
  else if (g_str_has_prefix (line, "skip: "))
    {
      *message = g_strdup (line + strlen ("skip: "));
      result = HELPER_SKIPPED;
    }
  else
    {
      g_assert_true (g_str_has_prefix (line, "error: "));
      *message = g_strdup (line + strlen ("error: "));
      code_line = g_data_input_stream_read_line_utf8 (lines, NULL, NULL, &error);
      g_assert_no_error (error);
      g_assert_nonnull (code_line);
      g_assert_true (g_str_has_prefix (code_line, "code: "));
      result = atoi (code_line + strlen ("code: "));
    }

  g_subprocess_wait (helper, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_exited (helper));
  g_assert_cmpint (g_subprocess_get_exit_status (helper), ==,
                   result == HELPER_ACCEPTED ? 0 : result == HELPER_SKIPPED ? 77 : 1);

  return result;
}

static int
compare_names (gconstpointer a,
               gconstpointer b)
{
  return strcmp (*(const char * const *) a, *(const char * const *) b);
}

/* The names in @dir, sorted and joined with spaces. */
static char *
list_dir (const char *path)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(GDir) dir = g_dir_open (path, 0, &error);
  g_autoptr(GPtrArray) names = g_ptr_array_new ();
  const char *name;

  g_assert_no_error (error);
  while ((name = g_dir_read_name (dir)) != NULL)
    g_ptr_array_add (names, (gpointer) name);
  g_ptr_array_sort (names, compare_names);
  g_ptr_array_add (names, NULL);

  return g_strjoinv (" ", (char **) names->pdata);
}

static char *
side_path (const char *path,
           const char *suffix)
{
  return g_strconcat (path, suffix, NULL);
}

/* CI runs as root, for whom the mode bits of a file mean nothing: there, "a file this process
 * cannot write" is made real by running store-helper as the user nobody. */
typedef struct
{
  uid_t  uid;
  gid_t  gid;
  char  *home;  /* a folder of its own, for libgda's settings */
} OtherUser;

static OtherUser other_user;

static void
become_other_user (gpointer data)
{
  /* In the child, between fork and exec: system calls only. */
  if (setgroups (0, NULL) != 0 || setgid (other_user.gid) != 0 || setuid (other_user.uid) != 0)
    _exit (126);
}

/* A launcher that runs store-helper as nobody, or NULL (with the test skipped) when there is no
 * such user. */
static GSubprocessLauncher *
other_user_launcher (void)
{
  GSubprocessLauncher *launcher;
  g_autoptr(GError) error = NULL;
  struct passwd *pw;

  g_assert_cmpint (geteuid (), ==, 0);

  pw = getpwnam ("nobody");
  if (pw == NULL || pw->pw_uid == 0)
    {
      g_test_skip ("Running as root, and there is no user “nobody” to be instead");
      return NULL;
    }
  other_user.uid = pw->pw_uid;
  other_user.gid = pw->pw_gid;

  g_clear_pointer (&other_user.home, g_free);
  other_user.home = g_dir_make_tmp ("test-store-home-XXXXXX", &error);
  g_assert_no_error (error);
  g_assert_cmpint (chown (other_user.home, other_user.uid, other_user.gid), ==, 0);

  launcher = g_subprocess_launcher_new (G_SUBPROCESS_FLAGS_NONE);
  g_subprocess_launcher_setenv (launcher, "HOME", other_user.home, TRUE);
  g_subprocess_launcher_setenv (launcher, "XDG_DATA_HOME", other_user.home, TRUE);
  g_subprocess_launcher_set_child_setup (launcher, become_other_user, NULL, NULL);

  return launcher;
}

static void
other_user_clean_up (void)
{
  if (other_user.home != NULL)
    remove_tree (other_user.home);
  g_clear_pointer (&other_user.home, g_free);
}

/* Read-only databases: refused when opened, not warned about at every save. */

static void
assert_read_only_refused (GError     *error,
                          const char *path)
{
  g_assert_error (error, BG_ERROR, BG_ERROR_STORE);
  g_test_message ("refused: %s", error->message);
  g_assert_nonnull (strstr (error->message, path));
}

static void
test_read_only_file (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *message = NULL;

  fixture_set_up (&fixture);
  make_database (fixture.path, 3);
  before = file_sha256 (fixture.path);

  if (geteuid () != 0)
    {
      g_assert_cmpint (g_chmod (fixture.path, 0400), ==, 0);
      store = bg_store_open (fixture.path, &error);
      g_assert_null (store);
      assert_read_only_refused (error, fixture.path);
    }
  else
    {
      g_autoptr(GSubprocessLauncher) launcher = other_user_launcher ();

      if (launcher == NULL)
        goto out;

      /* The database belongs to nobody, with mode 0400; so does its folder, so that it is the
       * file alone that cannot be written. */
      g_assert_cmpint (chown (fixture.dir, other_user.uid, other_user.gid), ==, 0);
      g_assert_cmpint (chown (fixture.path, other_user.uid, other_user.gid), ==, 0);
      g_assert_cmpint (g_chmod (fixture.path, 0400), ==, 0);
      g_assert_cmpint (run_helper (launcher, &message, fixture.path, NULL), ==, BG_ERROR_STORE);
      g_test_message ("refused: %s", message);
      g_assert_nonnull (strstr (message, fixture.path));

      /* The same user is let in once the file is writable: nothing else was in the way. */
      g_assert_cmpint (g_chmod (fixture.path, 0600), ==, 0);
      g_assert_cmpint (run_helper (launcher, &message, fixture.path, NULL), ==, HELPER_ACCEPTED);
      g_assert_cmpint (g_chmod (fixture.path, 0400), ==, 0);
      g_clear_pointer (&before, g_free);
      before = file_sha256 (fixture.path);
      g_assert_cmpint (run_helper (launcher, &message, fixture.path, NULL), ==, BG_ERROR_STORE);
    }

  after = file_sha256 (fixture.path);
  g_assert_cmpstr (before, ==, after);

out:
  other_user_clean_up ();
  g_chmod (fixture.path, 0600);
  fixture_tear_down (&fixture);
}

static void
test_read_only_folder (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *message = NULL;

  fixture_set_up (&fixture);
  make_database (fixture.path, 3);
  before = file_sha256 (fixture.path);

  /* The database can be written, but its -wal and -shm cannot be made beside it. */
  if (geteuid () != 0)
    {
      g_assert_cmpint (g_chmod (fixture.dir, 0500), ==, 0);
      store = bg_store_open (fixture.path, &error);
      g_assert_null (store);
      assert_read_only_refused (error, fixture.path);
    }
  else
    {
      g_autoptr(GSubprocessLauncher) launcher = other_user_launcher ();

      if (launcher == NULL)
        goto out;

      g_assert_cmpint (chown (fixture.path, other_user.uid, other_user.gid), ==, 0);
      g_assert_cmpint (g_chmod (fixture.dir, 0555), ==, 0);
      g_assert_cmpint (run_helper (launcher, &message, fixture.path, NULL), ==, BG_ERROR_STORE);
      g_test_message ("refused: %s", message);
      g_assert_nonnull (strstr (message, fixture.path));

      g_assert_cmpint (g_chmod (fixture.dir, 0755), ==, 0);
      g_assert_cmpint (chown (fixture.dir, other_user.uid, other_user.gid), ==, 0);
      g_assert_cmpint (run_helper (launcher, &message, fixture.path, NULL), ==, HELPER_ACCEPTED);
      g_assert_cmpint (chown (fixture.dir, 0, 0), ==, 0);
      g_assert_cmpint (g_chmod (fixture.dir, 0555), ==, 0);
      g_clear_pointer (&before, g_free);
      before = file_sha256 (fixture.path);
      g_assert_cmpint (run_helper (launcher, &message, fixture.path, NULL), ==, BG_ERROR_STORE);
    }

  after = file_sha256 (fixture.path);
  g_assert_cmpstr (before, ==, after);

out:
  other_user_clean_up ();
  g_chmod (fixture.dir, 0700);
  fixture_tear_down (&fixture);
}

/* The database can be written, but the -wal a killed process left beside it cannot: SQLite opens
 * that read-only without a word, and the first save would fail. */
static void
test_read_only_wal (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *helper_path = NULL;
  g_autofree char *wal = NULL;
  g_autofree char *shm = NULL;
  g_autofree char *message = NULL;

  fixture_set_up (&fixture);
  wal = side_path (fixture.path, "-wal");
  shm = side_path (fixture.path, "-shm");
  helper_path = g_test_build_filename (G_TEST_BUILT, "store-helper", NULL);
  helper = g_subprocess_new (G_SUBPROCESS_FLAGS_STDOUT_SILENCE, &error,
                             helper_path, "--save-then-kill", fixture.path, "killed", NULL);
  g_assert_no_error (error);
  g_subprocess_wait (helper, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_file_test (wal, G_FILE_TEST_IS_REGULAR));

  if (geteuid () != 0)
    {
      g_assert_cmpint (g_chmod (wal, 0400), ==, 0);
      store = bg_store_open (fixture.path, &error);
      g_assert_null (store);
      assert_read_only_refused (error, fixture.path);
    }
  else
    {
      g_autoptr(GSubprocessLauncher) launcher = other_user_launcher ();

      if (launcher == NULL)
        goto out;

      /* Everything belongs to nobody but the -wal, which nobody may only read. */
      g_assert_cmpint (chown (fixture.dir, other_user.uid, other_user.gid), ==, 0);
      g_assert_cmpint (chown (fixture.path, other_user.uid, other_user.gid), ==, 0);
      g_assert_cmpint (chown (shm, other_user.uid, other_user.gid), ==, 0);
      g_assert_cmpint (g_chmod (wal, 0644), ==, 0);
      g_assert_cmpint (run_helper (launcher, &message, fixture.path, NULL), ==, BG_ERROR_STORE);
      g_test_message ("refused: %s", message);
      g_assert_nonnull (strstr (message, fixture.path));

      g_assert_cmpint (chown (wal, other_user.uid, other_user.gid), ==, 0);
      g_assert_cmpint (run_helper (launcher, &message, fixture.path, NULL), ==, HELPER_ACCEPTED);
    }

out:
  other_user_clean_up ();
  fixture_tear_down (&fixture);
}

/* A read-only mount, which is read-only for root too: of the database file alone (its folder
 * stays writable), or of its folder. */
static void
check_read_only_mount (gboolean whole_folder)
{
  Fixture fixture;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;
  g_autofree char *message = NULL;
  int result;

  fixture_set_up (&fixture);
  make_database (fixture.path, 3);
  before = file_sha256 (fixture.path);

  result = run_helper (NULL, &message, "--read-only-mount", fixture.path,
                       whole_folder ? fixture.dir : fixture.path, NULL);
  if (result == HELPER_SKIPPED)
    {
      g_autofree char *reason = g_strdup_printf ("No read-only mount can be made here: %s",
                                                 message);
      g_test_skip (reason);
    }
  else
    {
      g_assert_cmpint (result, ==, BG_ERROR_STORE);
      g_test_message ("refused: %s", message);
      g_assert_nonnull (strstr (message, fixture.path));
    }

  after = file_sha256 (fixture.path);
  g_assert_cmpstr (before, ==, after);

  fixture_tear_down (&fixture);
}

static void
test_read_only_mount_file (void)
{
  check_read_only_mount (FALSE);
}

static void
test_read_only_mount_folder (void)
{
  check_read_only_mount (TRUE);
}

/* Refused databases that a killed process left with a -wal: looking at them changes nothing. */

static void
assert_refused_with_wal (const char *path,
                         const char *expected_fragment)
{
  const char * const suffixes[] = { "", "-wal", "-shm" };
  char *before[G_N_ELEMENTS (suffixes)];

  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *side = side_path (path, suffixes[i]);
      GStatBuf st;

      g_assert_cmpint (g_stat (side, &st), ==, 0);
      g_assert_cmpint (st.st_size, >, 0);
      before[i] = file_sha256 (side);
    }

  /* Twice: a refusal leaves nothing that changes the next one. */
  assert_refused (path, expected_fragment);

  for (guint i = 0; i < G_N_ELEMENTS (suffixes); i++)
    {
      g_autofree char *side = side_path (path, suffixes[i]);
      g_autofree char *after = NULL;

      g_assert_true (g_file_test (side, G_FILE_TEST_IS_REGULAR));
      after = file_sha256 (side);
      g_assert_cmpstr (before[i], ==, after);
      g_free (before[i]);
    }
}

static void
sql_then_kill (const char *path,
               const char *sql)
{
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *helper_path = g_test_build_filename (G_TEST_BUILT, "store-helper", NULL);

  helper = g_subprocess_new (G_SUBPROCESS_FLAGS_NONE, &error,
                             helper_path, "--sql-then-kill", path, sql, NULL);
  g_assert_no_error (error);
  g_subprocess_wait (helper, NULL, &error);
  g_assert_no_error (error);
  g_assert_true (g_subprocess_get_if_signaled (helper));
  g_assert_cmpint (g_subprocess_get_term_sig (helper), ==, SIGKILL);
}

static void
test_refused_newer_schema_with_wal (void)
{
  Fixture fixture;

  fixture_set_up (&fixture);
  make_database (fixture.path, 3);

  /* A newer version raised the schema version and was killed: the new version is in the -wal
   * alone, so the refusal naming it shows that the -wal was read. */
  sql_then_kill (fixture.path, "PRAGMA user_version = 99");
  assert_refused_with_wal (fixture.path, "99");

  fixture_tear_down (&fixture);
}

static void
test_refused_damaged_with_wal (void)
{
  Fixture fixture;
  g_autoptr(GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize page_size = 0;
  gsize length = 0;

  fixture_set_up (&fixture);
  make_database (fixture.path, 300);

  /* Page 2, the root of the tasks table, damaged; then a write to page 1 left in the -wal. */
  read_page_size (fixture.path, &page_size, &length);
  g_file_get_contents (fixture.path, &contents, &length, &error);
  g_assert_no_error (error);
  for (gsize i = page_size; i < 2 * page_size; i++)
    contents[i] = (char) g_test_rand_int_range (0, 256);
  g_file_set_contents (fixture.path, contents, length, &error);
  g_assert_no_error (error);
  sql_then_kill (fixture.path, "PRAGMA user_version = 3");

  assert_refused_with_wal (fixture.path, "damaged");

  fixture_tear_down (&fixture);
}

/* The lock: on the database file itself, and never through a symbolic link. */

static void
test_lock_hard_link (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStore) linked = NULL;
  g_autoptr(GSubprocess) helper = NULL;
  g_autoptr(GDataInputStream) lines = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *helper_path = NULL;
  g_autofree char *line = NULL;
  g_autofree char *message = NULL;
  g_autofree char *alias = NULL;

  fixture_set_up (&fixture);
  make_database (fixture.path, 1);
  alias = g_build_filename (fixture.dir, "alias.sqlite", NULL);
  g_assert_cmpint (link (fixture.path, alias), ==, 0);

  /* A second process holds the database through the other name. */
  helper_path = g_test_build_filename (G_TEST_BUILT, "store-helper", NULL);
  helper = g_subprocess_new (G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE,
                             &error, helper_path, alias, NULL);
  g_assert_no_error (error);
  lines = g_data_input_stream_new (g_subprocess_get_stdout_pipe (helper));
  line = g_data_input_stream_read_line_utf8 (lines, NULL, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (line, ==, "ready");

  store = bg_store_open (fixture.path, &error);
  g_assert_error (error, BG_ERROR, BG_ERROR_BUSY);
  g_assert_null (store);
  g_test_message ("busy: %s", error->message);
  g_clear_error (&error);

  g_output_stream_close (g_subprocess_get_stdin_pipe (helper), NULL, &error);
  g_assert_no_error (error);
  g_subprocess_wait_check (helper, NULL, &error);
  g_assert_no_error (error);

  /* In this process both names give the one store; from another, either name is busy. */
  store = open_store (fixture.path);
  linked = open_store (alias);
  g_assert_true (store == linked);
  g_assert_cmpint (run_helper (NULL, &message, alias, NULL), ==, BG_ERROR_BUSY);
  g_clear_pointer (&message, g_free);
  g_assert_cmpint (run_helper (NULL, &message, fixture.path, NULL), ==, BG_ERROR_BUSY);

  g_clear_object (&linked);
  g_clear_object (&store);
  fixture_tear_down (&fixture);
}

/* A second temporary folder, standing for files outside the database's folder. */
static char *
make_outside_dir (void)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *tmp = g_dir_make_tmp ("test-store-outside-XXXXXX", &error);
  char *real;
  char *copy;

  g_assert_no_error (error);
  real = realpath (tmp, NULL);
  g_assert_nonnull (real);
  copy = g_strdup (real);
  free (real);

  return copy;
}

static void
test_lock_old_lock_file_symlink (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) record = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *outside = make_outside_dir ();
  g_autofree char *victim = g_build_filename (outside, "victim", NULL);
  g_autofree char *lock = NULL;
  g_autofree char *contents = NULL;
  g_autofree char *listing = NULL;

  fixture_set_up (&fixture);
  g_file_set_contents (victim, "precious", -1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g_chmod (victim, 0644), ==, 0);

  /* Where an earlier version kept its lock file, a link to a file elsewhere. */
  lock = side_path (fixture.path, ".lock");
  g_assert_cmpint (symlink (victim, lock), ==, 0);

  store = open_store (fixture.path);
  record = make_record (BG_TASK_KIND_DOWNLOAD, "lock", 1);
  save_or_die (store, record);
  g_clear_object (&store);

  g_assert_cmpuint (file_mode (victim), ==, 0644);
  g_file_get_contents (victim, &contents, NULL, &error);
  g_assert_no_error (error);
  g_assert_cmpstr (contents, ==, "precious");
  listing = list_dir (outside);
  g_assert_cmpstr (listing, ==, "victim");

  remove_tree (outside);
  fixture_tear_down (&fixture);
}

static void
test_lock_database_symlink (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autofree char *outside = make_outside_dir ();
  g_autofree char *target = g_build_filename (outside, "real.sqlite", NULL);
  g_autofree char *listing = NULL;

  fixture_set_up (&fixture);
  make_database (target, 1);
  g_assert_cmpint (symlink (target, fixture.path), ==, 0);

  /* A link to an existing database opens that database, and adds nothing beside either. */
  store = open_store (fixture.path);
  g_assert_cmpstr (bg_store_get_path (store), ==, target);
  g_clear_object (&store);

  listing = list_dir (outside);
  g_assert_cmpstr (listing, ==, "real.sqlite");
  g_clear_pointer (&listing, g_free);
  listing = list_dir (fixture.dir);
  g_assert_cmpstr (listing, ==, "tasks.sqlite");

  remove_tree (outside);
  fixture_tear_down (&fixture);
}

static void
test_lock_dangling_symlink (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *outside = make_outside_dir ();
  g_autofree char *target = g_build_filename (outside, "missing.sqlite", NULL);
  g_autofree char *listing = NULL;

  fixture_set_up (&fixture);
  g_assert_cmpint (symlink (target, fixture.path), ==, 0);

  /* No database is created through a link. */
  store = bg_store_open (fixture.path, &error);
  g_assert_error (error, BG_ERROR, BG_ERROR_STORE);
  g_assert_null (store);
  g_test_message ("refused: %s", error->message);
  g_assert_nonnull (strstr (error->message, fixture.path));
  g_assert_nonnull (strstr (error->message, "link"));

  listing = list_dir (outside);
  g_assert_cmpstr (listing, ==, "");
  g_clear_pointer (&listing, g_free);
  listing = list_dir (fixture.dir);
  g_assert_cmpstr (listing, ==, "tasks.sqlite");

  remove_tree (outside);
  fixture_tear_down (&fixture);
}

/* libgda opens "<name>.db" instead of "<name>" whenever there is one: the store opens exactly the
 * file it locked. */
static void
test_lock_planted_db_suffix (void)
{
  Fixture fixture;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(BgStoreRecord) record = NULL;
  g_autoptr(BgStoreRecord) loaded = NULL;
  g_autoptr(GError) error = NULL;
  g_autofree char *planted = NULL;
  g_autofree char *before = NULL;
  g_autofree char *after = NULL;

  fixture_set_up (&fixture);
  make_database (fixture.path, 1);
  planted = side_path (fixture.path, ".db");
  make_database (planted, 2);
  before = file_sha256 (planted);

  store = open_store (fixture.path);
  record = make_record (BG_TASK_KIND_DOWNLOAD, "mine", 1);
  save_or_die (store, record);
  g_clear_object (&store);

  after = file_sha256 (planted);
  g_assert_cmpstr (before, ==, after);
  store = open_store (fixture.path);
  loaded = bg_store_lookup (store, BG_TASK_KIND_DOWNLOAD, "mine", &error);
  g_assert_no_error (error);
  g_assert_nonnull (loaded);
  g_clear_object (&store);

  fixture_tear_down (&fixture);
}

/* The database-path property: nonsense is a clear error from the constructor, and creates
 * nothing. */
/* A path need not be UTF-8, but an error's message must be: the path is shown with U+FFFD in
 * place of what is not UTF-8 (bindings refuse a message that is not valid UTF-8). */
static void
test_paths_not_in_utf8 (void)
{
  Fixture fixture;
  g_autofree char *file = NULL;
  g_autofree char *folder = NULL;
  const char *paths[2];

  fixture_set_up (&fixture);
  /* A file where a folder should be, and a folder where the database should be. */
  file = g_build_filename (fixture.dir, "file-\xff", NULL);
  g_assert_true (g_file_set_contents (file, "x", 1, NULL));
  folder = g_build_filename (fixture.dir, "folder-\xfe.sqlite", NULL);
  g_assert_cmpint (g_mkdir (folder, 0700), ==, 0);
  paths[0] = g_build_filename (file, "tasks.sqlite", NULL);
  paths[1] = folder;

  for (guint i = 0; i < G_N_ELEMENTS (paths); i++)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(BgStore) store = bg_store_open (paths[i], &error);

      g_assert_null (store);
      g_assert_nonnull (error);
      g_test_message ("%s", error->message);
      g_assert_true (g_utf8_validate (error->message, -1, NULL));
      g_assert_nonnull (strstr (error->message, "\xef\xbf\xbd"));
    }

  g_free ((char *) paths[0]);
  fixture_tear_down (&fixture);
}

static void
test_database_path_property (void)
{
  Fixture fixture;
  const GType types[] = { BG_TYPE_DOWNLOADER, BG_TYPE_UPLOADER };
  g_autofree char *sub = NULL;
  g_autofree char *listing = NULL;

  fixture_set_up (&fixture);
  sub = g_strconcat (fixture.dir, "/sub/", NULL);
  g_assert_true (g_str_has_suffix (sub, "/"));

  for (guint t = 0; t < G_N_ELEMENTS (types); t++)
    {
      const char * const bad[] = { "", "/", ".", "..", "sub/..", sub };

      for (guint i = 0; i < G_N_ELEMENTS (bad); i++)
        {
          g_autoptr(GError) error = NULL;
          g_autoptr(GObject) object = NULL;

          object = g_initable_new (types[t], NULL, &error,
                                   "session-id", "database-path-test",
                                   "database-path", bad[i],
                                   NULL);
          g_assert_null (object);
          g_assert_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT);
          g_test_message ("%s “%s”: %s", g_type_name (types[t]), bad[i], error->message);
          g_assert_nonnull (strstr (error->message, "database-path"));
        }
    }

  listing = list_dir (fixture.dir);
  g_assert_cmpstr (listing, ==, "");

  fixture_tear_down (&fixture);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/store/record/copy", test_record_copy);
  g_test_add_func ("/store/open/new", test_new_database);
  g_test_add_func ("/store/round-trip", test_round_trip);
  g_test_add_func ("/store/delete", test_delete);
  g_test_add_func ("/store/load-all/order", test_load_all_order);
  g_test_add_func ("/store/load-all/many", test_load_all_many);
  g_test_add_func ("/store/insert-new", test_insert_new);
  g_test_add_func ("/store/insert-new/same-encoding", test_insert_new_same_encoding);
  g_test_add_func ("/store/insert-new/committed-with-group-open",
                   test_insert_new_committed_with_group_open);
  g_test_add_func ("/store/insert-new/write-error", test_insert_new_write_error);
  g_test_add_func ("/store/grouped/write-error", test_grouped_write_error);
  g_test_add_func ("/store/read-record", test_read_record);
  g_test_add_func ("/store/insert-new/stream-wal-reused", test_insert_stream_wal_reused);
  g_test_add_func ("/store/save-progress", test_save_progress);
  g_test_add_func ("/store/save-attempt-and-result", test_save_attempt_and_result);
  g_test_add_func ("/store/hostile-identifiers", test_hostile_identifiers);
  g_test_add_func ("/store/file-modes", test_file_modes);
  g_test_add_func ("/store/migration/v1", test_migration);
  g_test_add_func ("/store/migration/v3", test_migration_v3);
  g_test_add_func ("/store/migration/v4", test_migration_v4);
  g_test_add_func ("/store/migration/v5", test_migration_v5);
  g_test_add_func ("/store/migration/max-bandwidth", test_migration_max_bandwidth);
  g_test_add_func ("/store/corrupt/garbage", test_corrupt_garbage);
  g_test_add_func ("/store/corrupt/page", test_corrupt_page);
  g_test_add_func ("/store/corrupt/truncated", test_corrupt_truncated);
  g_test_add_func ("/store/corrupt/newer-schema", test_newer_schema);
  g_test_add_func ("/store/corrupt/foreign", test_foreign_database);
  g_test_add_func ("/store/open/same-process", test_same_process);
  g_test_add_func ("/store/open/busy", test_busy);
  g_test_add_func ("/store/durability/kill", test_survives_kill);
  g_test_add_func ("/store/read-only/file", test_read_only_file);
  g_test_add_func ("/store/read-only/folder", test_read_only_folder);
  g_test_add_func ("/store/read-only/wal", test_read_only_wal);
  g_test_add_func ("/store/read-only/mount-file", test_read_only_mount_file);
  g_test_add_func ("/store/read-only/mount-folder", test_read_only_mount_folder);
  g_test_add_func ("/store/refused-with-wal/newer-schema", test_refused_newer_schema_with_wal);
  g_test_add_func ("/store/refused-with-wal/damaged", test_refused_damaged_with_wal);
  g_test_add_func ("/store/lock/hard-link", test_lock_hard_link);
  g_test_add_func ("/store/lock/old-lock-file-symlink", test_lock_old_lock_file_symlink);
  g_test_add_func ("/store/lock/database-symlink", test_lock_database_symlink);
  g_test_add_func ("/store/lock/dangling-symlink", test_lock_dangling_symlink);
  g_test_add_func ("/store/lock/planted-db-suffix", test_lock_planted_db_suffix);
  g_test_add_func ("/store/database-path-property", test_database_path_property);
  g_test_add_func ("/store/paths-not-in-utf8", test_paths_not_in_utf8);

  return g_test_run ();
}
