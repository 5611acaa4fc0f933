/* bg-store.c: the task database
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Every task lives in one SQLite table.  The database is opened, checked and upgraded, and read,
 * through libgda; records are written, and all records loaded, through SQLite's own API on
 * connections of the store's own, where libgda's per-statement cost matters (see "Writing
 * records").  The schema is SQL in
 * data/schema/, compiled in as a GResource, and versioned by PRAGMA user_version: opening a
 * database first checks it without writing a byte, then upgrades it in place, one migration per
 * transaction.  Each store holds an exclusive lock on the database file for its whole life so
 * that only one process at a time works on a database; within a process, opening the same file
 * again, by any of its names, gives the same store.
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "bg-store-private.h"
#include "bg-error.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>
#include <libgda/libgda.h>
#include <libgda/sql-parser/gda-sql-parser.h>
#include <sqlite3.h>

/* libgda 5 predates g_autoptr. */
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GdaStatement, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GdaDataModel, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GdaSqlParser, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (GdaBatch, g_object_unref)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3, sqlite3_close)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (sqlite3_stmt, sqlite3_finalize)

/* The compiled-in schema (data/bg-glib.gresource.xml).  It is looked up through its getter
 * rather than the global registry: referring to bg_get_resource() is what pulls bg-resources.o,
 * and the constructor that registers it, out of the static library the tests link. */
#include "data/bg-resources.h"

#define SCHEMA_RESOURCE_DIR "/org/gnome/BgGlib/schema/"

/* The migration that brings a database to schema version N is migrations[N - 1]. */
static const char * const migrations[] = {
  "001-initial.sql",
  "002-idempotency.sql",
  "003-task-options.sql",
  "004-credentials.sql",
  "005-pause.sql",
  "006-resumable.sql",
  "007-max-bandwidth.sql",
};

G_STATIC_ASSERT (G_N_ELEMENTS (migrations) == BG_STORE_SCHEMA_VERSION);

/* See "Checkpoints" below. */
#define CHECKPOINT_INTERVAL 64
#define WAL_AUTOCHECKPOINT  4096
#define JOURNAL_SIZE_LIMIT  (32 * 1024 * 1024)

/* The columns of the tasks table, one per field of BgStoreRecord.  Records are written, read and
 * checked through this table, so a new field needs one line here and a migration. */
typedef enum {
  COLUMN_STRING,    /* char *, NULL stored as NULL */
  COLUMN_INT64,     /* gint64 */
  COLUMN_INT,       /* int, gboolean, or an enum */
  COLUMN_UINT,      /* guint */
  COLUMN_BYTES,     /* GBytes *, NULL stored as NULL */
} ColumnType;

typedef struct
{
  const char *name;
  ColumnType  type;
  gsize       offset;
  int         since;  /* the schema version that added the column */
  gboolean    key;
} Column;

#define COLUMN(field, type, since, key) \
  { #field, type, G_STRUCT_OFFSET (BgStoreRecord, field), since, key }

static const Column columns[] = {
  COLUMN (kind,             COLUMN_INT,    1, TRUE),
  COLUMN (identifier,       COLUMN_STRING, 1, TRUE),
  COLUMN (state,            COLUMN_INT,    1, FALSE),
  COLUMN (method,           COLUMN_STRING, 1, FALSE),
  COLUMN (uri,              COLUMN_STRING, 1, FALSE),
  COLUMN (request_headers,  COLUMN_STRING, 1, FALSE),
  COLUMN (file_path,        COLUMN_STRING, 1, FALSE),
  COLUMN (partial_path,     COLUMN_STRING, 1, FALSE),
  COLUMN (checkpoint,       COLUMN_INT64,  1, FALSE),
  COLUMN (total,            COLUMN_INT64,  1, FALSE),
  COLUMN (etag,             COLUMN_STRING, 1, FALSE),
  COLUMN (last_modified,    COLUMN_STRING, 1, FALSE),
  COLUMN (source_size,      COLUMN_INT64,  1, FALSE),
  COLUMN (source_mtime,     COLUMN_INT64,  1, FALSE),
  COLUMN (attempts,         COLUMN_UINT,   1, FALSE),
  COLUMN (restarts,         COLUMN_UINT,   2, FALSE),
  COLUMN (next_attempt_at,  COLUMN_INT64,  1, FALSE),
  COLUMN (created_at,       COLUMN_INT64,  1, FALSE),
  COLUMN (updated_at,       COLUMN_INT64,  1, FALSE),
  COLUMN (idempotency_key,  COLUMN_STRING, 2, FALSE),
  COLUMN (has_response,     COLUMN_INT,    1, FALSE),
  COLUMN (response_kind,    COLUMN_INT,    1, FALSE),
  COLUMN (response_status,  COLUMN_UINT,   1, FALSE),
  COLUMN (response_reason,  COLUMN_STRING, 1, FALSE),
  COLUMN (response_headers, COLUMN_STRING, 1, FALSE),
  COLUMN (response_body,    COLUMN_BYTES,  1, FALSE),
  COLUMN (error_domain,     COLUMN_STRING, 1, FALSE),
  COLUMN (error_code,       COLUMN_INT,    1, FALSE),
  COLUMN (error_message,    COLUMN_STRING, 1, FALSE),
  COLUMN (allow_metered,    COLUMN_INT,    3, FALSE),
  COLUMN (discretionary,    COLUMN_INT,    3, FALSE),
  COLUMN (priority,         COLUMN_INT,    3, FALSE),
  COLUMN (earliest_start,   COLUMN_INT64,  3, FALSE),
  COLUMN (expected_sha256,  COLUMN_STRING, 3, FALSE),
  COLUMN (keep_credentials, COLUMN_INT,    4, FALSE),
  COLUMN (withheld_headers, COLUMN_STRING, 4, FALSE),
  COLUMN (withheld_password, COLUMN_INT,   4, FALSE),
  COLUMN (paused,           COLUMN_INT,    5, FALSE),
  COLUMN (upload_protocol,  COLUMN_INT,    6, FALSE),
  COLUMN (allow_tus,        COLUMN_INT,    6, FALSE),
  COLUMN (chunk_size,       COLUMN_INT64,  6, FALSE),
  COLUMN (upload_url,       COLUMN_STRING, 6, FALSE),
  COLUMN (upload_url_protocol, COLUMN_INT, 6, FALSE),
  COLUMN (upload_expires,   COLUMN_INT64,  6, FALSE),
  COLUMN (max_bandwidth,    COLUMN_INT64,  7, FALSE),
};

#undef COLUMN

/* COLUMN_INT fields are read and written as int. */
G_STATIC_ASSERT (sizeof (BgTaskKind) == sizeof (int));
G_STATIC_ASSERT (sizeof (BgTaskState) == sizeof (int));
G_STATIC_ASSERT (sizeof (gboolean) == sizeof (int));

/* The reads each store parses once through libgda, when it opens, and then reuses. */
typedef enum {
  STMT_LOOKUP,
  STMT_LOAD_ALL,
  N_STMTS
} StmtId;

/* The writes, prepared once with SQLite's own API on the store's writer connection (see
 * "Writing records"). */
typedef enum {
  WRITE_INSERT_NEW,
  WRITE_SAVE,
  WRITE_PROGRESS,
  WRITE_ATTEMPT,
  WRITE_RESULT,
  WRITE_DELETE,
  N_WRITES
} WriteId;

struct _BgStore
{
  GObject        parent_instance;

  char          *path;            /* canonical */
  char          *display_path;    /* the same, for messages: valid UTF-8 */
  char          *key;             /* in open_stores; see file_key() */
  int            fd;              /* the database file, locked; see bg_store_open_file() */
  gboolean       registered;      /* in open_stores */
  int            schema_version;

  GdaConnection *cnc;
  GdaStatement  *stmts[N_STMTS];
  GdaSet        *params[N_STMTS];
  GType         *col_types;       /* for every SELECT of a whole record */

  /* See "Writing records" below. */
  sqlite3       *writer;
  sqlite3_stmt  *writes[N_WRITES];
  sqlite3_stmt  *read_one;        /* see bg_store_read_record() */

  /* See "Loading off the main thread" below. */
  GMutex         reader_mutex;
  GdaConnection *reader_cnc;
  GdaStatement  *reader_stmt;
  GdaSet        *reader_params;

  /* See "Checkpoints" below. */
  GdaConnection *checkpoint_cnc;
  GdaStatement  *checkpoint_stmt;
  GThread       *checkpoint_thread;
  GAsyncQueue   *checkpoint_queue;
  int            checkpoint_pending;  /* atomic */
  guint          writes_since_checkpoint;

  /* See "Group commit" below. */
  gboolean       group_open;      /* a transaction holds grouped writes */
  GSource       *group_source;    /* commits the group, then runs group_waiters */
  GQueue         group_waiters;   /* GroupWaiter */
};

G_DEFINE_FINAL_TYPE (BgStore, bg_store, G_TYPE_OBJECT)

static void     bg_store_close_group (BgStore *self);

/* The stores open in this process, by file (see file_key()).  An entry is a GWeakRef, so that a
 * store whose last reference is going away is no longer handed out; bg_store_open() then waits on
 * open_stores_cond until that store's finalize has released the lock and removed the entry. */
static GMutex      open_stores_mutex;
static GCond       open_stores_cond;
static GHashTable *open_stores;

static void
weak_ref_free (gpointer data)
{
  GWeakRef *ref = data;

  g_weak_ref_clear (ref);
  g_free (ref);
}

static gpointer
init_gda_once (gpointer data)
{
  gda_init ();
  return NULL;
}

static void
ensure_gda_init (void)
{
  static GOnce once = G_ONCE_INIT;

  g_once (&once, init_gda_once, NULL);
}

/* Records */

BgStoreRecord *
bg_store_record_new (void)
{
  BgStoreRecord *record = g_new0 (BgStoreRecord, 1);

  record->kind = BG_TASK_KIND_DOWNLOAD;
  record->state = BG_TASK_STATE_QUEUED;
  record->total = -1;
  record->source_size = -1;

  return record;
}

BgStoreRecord *
bg_store_record_copy (const BgStoreRecord *record)
{
  BgStoreRecord *copy;

  g_return_val_if_fail (record != NULL, NULL);

  copy = g_memdup2 (record, sizeof *record);

  for (guint i = 0; i < G_N_ELEMENTS (columns); i++)
    {
      gpointer field = G_STRUCT_MEMBER_P (copy, columns[i].offset);

      if (columns[i].type == COLUMN_STRING)
        *(char **) field = g_strdup (*(char **) field);
      else if (columns[i].type == COLUMN_BYTES && *(GBytes **) field != NULL)
        *(GBytes **) field = g_bytes_ref (*(GBytes **) field);
    }

  return copy;
}

void
bg_store_record_free (BgStoreRecord *record)
{
  if (record == NULL)
    return;

  for (guint i = 0; i < G_N_ELEMENTS (columns); i++)
    {
      gpointer field = G_STRUCT_MEMBER_P (record, columns[i].offset);

      if (columns[i].type == COLUMN_STRING)
        g_free (*(char **) field);
      else if (columns[i].type == COLUMN_BYTES)
        g_clear_pointer ((GBytes **) field, g_bytes_unref);
    }

  g_free (record);
}

/* SQL text
 *
 * Records are written through SQLite's own API (see "Writing records"), where parameter
 * ?<i + 1> always stands for columns[i], so that one binding of a record serves every write.
 * The reads go through libgda, with its named parameters. */

static const Column *
find_column (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (columns); i++)
    if (g_str_equal (columns[i].name, name))
      return &columns[i];

  g_assert_not_reached ();
}

/* The SQLite parameter number of column @name. */
static guint
column_parameter (const char *name)
{
  return (guint) (find_column (name) - columns) + 1;
}

static void
append_column_list (GString *sql)
{
  for (guint i = 0; i < G_N_ELEMENTS (columns); i++)
    g_string_append_printf (sql, "%s%s", i > 0 ? ", " : "", columns[i].name);
}

static char *
build_select_sql (const char *tail)
{
  g_autoptr(GString) sql = g_string_new ("SELECT ");

  append_column_list (sql);
  g_string_append_printf (sql, " FROM tasks %s", tail);

  return g_string_free (g_steal_pointer (&sql), FALSE);
}

/* An insert of the whole record.  A row that exists already is left alone by the insert of a
 * new record, and has every column rewritten by a save: an upsert, unlike INSERT OR REPLACE,
 * keeps the row's rowid, which bg_store_load_all() orders by after created_at. */
static char *
build_insert_sql (gboolean upsert)
{
  g_autoptr(GString) sql = g_string_new ("INSERT INTO tasks (");

  append_column_list (sql);
  g_string_append (sql, ") VALUES (");
  for (guint i = 0; i < G_N_ELEMENTS (columns); i++)
    g_string_append_printf (sql, "%s?%u", i > 0 ? ", " : "", i + 1);

  if (!upsert)
    {
      g_string_append (sql, ") ON CONFLICT (kind, identifier) DO NOTHING");
      return g_string_free (g_steal_pointer (&sql), FALSE);
    }

  g_string_append (sql, ") ON CONFLICT (kind, identifier) DO UPDATE SET ");
  for (guint i = 0, n = 0; i < G_N_ELEMENTS (columns); i++)
    {
      if (columns[i].key)
        continue;
      g_string_append_printf (sql, "%s%s = excluded.%s",
                              n++ > 0 ? ", " : "", columns[i].name, columns[i].name);
    }

  return g_string_free (g_steal_pointer (&sql), FALSE);
}

/* The columns bg_store_save_progress() writes, and nothing else. */
static const char * const progress_columns[] = {
  "partial_path",
  "checkpoint",
  "total",
  "etag",
  "last_modified",
  "updated_at",
  "upload_url",
  "upload_url_protocol",
  "upload_expires",
};

/* The columns that the start of an attempt, and the attempt itself, may change: its count and
 * state, the files (a download's partial file, an upload's source and key), and the progress
 * columns.  The request and the task's options change only through bg_store_save(). */
static const char * const attempt_columns[] = {
  "state",
  "attempts",
  "restarts",
  "next_attempt_at",
  "updated_at",
  "file_path",
  "partial_path",
  "checkpoint",
  "total",
  "etag",
  "last_modified",
  "source_size",
  "source_mtime",
  "idempotency_key",
  "upload_url",
  "upload_url_protocol",
  "upload_expires",
};

/* What an attempt's outcome adds to them. */
static const char * const result_columns[] = {
  "has_response",
  "response_kind",
  "response_status",
  "response_reason",
  "response_headers",
  "response_body",
  "error_domain",
  "error_code",
  "error_message",
};

/* Appends "name = ?<n>" for each of @names, after *@n_done assignments. */
static void
append_assignments (GString            *sql,
                    const char * const *names,
                    gsize               n_names,
                    guint              *n_done)
{
  for (gsize i = 0; i < n_names; i++)
    g_string_append_printf (sql, "%s%s = ?%u", (*n_done)++ > 0 ? ", " : "", names[i],
                            column_parameter (names[i]));
}

static void
append_key_condition (GString *sql)
{
  g_string_append_printf (sql, " WHERE kind = ?%u AND identifier = ?%u",
                          column_parameter ("kind"), column_parameter ("identifier"));
}

/* An UPDATE of the row keyed by (kind, identifier) that writes the columns of @names, and of
 * @more_names when it is not NULL. */
static char *
build_update_sql (const char * const *names,
                  gsize               n_names,
                  const char * const *more_names,
                  gsize               n_more_names)
{
  g_autoptr(GString) sql = g_string_new ("UPDATE tasks SET ");
  guint n_done = 0;

  append_assignments (sql, names, n_names, &n_done);
  append_assignments (sql, more_names, n_more_names, &n_done);
  append_key_condition (sql);

  return g_string_free (g_steal_pointer (&sql), FALSE);
}

static char *
build_write_sql (WriteId id)
{
  switch (id)
    {
    case WRITE_INSERT_NEW:
      return build_insert_sql (FALSE);

    case WRITE_SAVE:
      return build_insert_sql (TRUE);

    case WRITE_PROGRESS:
      return build_update_sql (progress_columns, G_N_ELEMENTS (progress_columns), NULL, 0);

    case WRITE_ATTEMPT:
      return build_update_sql (attempt_columns, G_N_ELEMENTS (attempt_columns), NULL, 0);

    case WRITE_RESULT:
      return build_update_sql (attempt_columns, G_N_ELEMENTS (attempt_columns),
                               result_columns, G_N_ELEMENTS (result_columns));

    case WRITE_DELETE:
      {
        g_autoptr(GString) sql = g_string_new ("DELETE FROM tasks");

        append_key_condition (sql);
        return g_string_free (g_steal_pointer (&sql), FALSE);
      }

    case N_WRITES:
    default:
      g_assert_not_reached ();
    }
}

static char *
build_sql (StmtId id)
{
  switch (id)
    {
    case STMT_LOOKUP:
      return build_select_sql ("WHERE kind = ##kind::gint64 AND identifier = ##identifier::string");

    case STMT_LOAD_ALL:
      return build_select_sql ("WHERE kind = ##kind::gint64 ORDER BY created_at, rowid");

    case N_STMTS:
    default:
      g_assert_not_reached ();
    }
}

/* Errors */

static void
set_write_error (GError     **error,
                 BgStore     *self,
                 GError      *cause)
{
  g_set_error (error, BG_ERROR, BG_ERROR_STORE,
               /* Translators: the first %s is a file path, the second SQLite's explanation. */
               _("Could not write to task database “%s”: %s"),
               self->display_path, cause != NULL ? cause->message : _("unknown error"));
}

static void
set_read_error (GError     **error,
                BgStore     *self,
                GError      *cause)
{
  g_set_error (error, BG_ERROR, BG_ERROR_STORE,
               /* Translators: the first %s is a file path, the second libgda's explanation. */
               _("Could not read task database “%s”: %s"),
               self->display_path, cause != NULL ? cause->message : _("unknown error"));
}

/* Binding */

static gboolean
bind_int64 (GdaSet      *params,
            const char  *name,
            gint64       value,
            GError     **error)
{
  GdaHolder *holder = gda_set_get_holder (params, name);
  g_auto(GValue) gvalue = G_VALUE_INIT;

  g_assert (holder != NULL);

  g_value_init (&gvalue, G_TYPE_INT64);
  g_value_set_int64 (&gvalue, value);
  return gda_holder_set_value (holder, &gvalue, error);
}

/* Binds @value, or NULL: libgda then rewrites the statement, which only the upload probes' rare
 * writes and the key of a lookup (never NULL) go through. */
static gboolean
bind_string (GdaSet      *params,
             const char  *name,
             const char  *value,
             GError     **error)
{
  GdaHolder *holder = gda_set_get_holder (params, name);
  g_auto(GValue) gvalue = G_VALUE_INIT;

  g_assert (holder != NULL);

  if (value == NULL)
    return gda_holder_set_value (holder, NULL, error);
  g_value_init (&gvalue, G_TYPE_STRING);
  g_value_set_string (&gvalue, value);
  return gda_holder_set_value (holder, &gvalue, error);
}

static gboolean
bind_key (GdaSet      *params,
          BgTaskKind   kind,
          const char  *identifier,
          GError     **error)
{
  g_assert (GDA_IS_SET (params));

  if (!bind_int64 (params, "kind", kind, error))
    return FALSE;

  return identifier == NULL ||
         bind_string (params, "identifier", identifier, error);
}

/* Reading */

static GType *
build_col_types (void)
{
  GType *types = g_new0 (GType, G_N_ELEMENTS (columns) + 1);

  for (guint i = 0; i < G_N_ELEMENTS (columns); i++)
    {
      switch (columns[i].type)
        {
        case COLUMN_STRING:
          types[i] = G_TYPE_STRING;
          break;

        case COLUMN_INT64:
        case COLUMN_INT:
        case COLUMN_UINT:
          types[i] = G_TYPE_INT64;
          break;

        case COLUMN_BYTES:
          types[i] = GDA_TYPE_BINARY;
          break;

        default:
          g_assert_not_reached ();
        }
    }
  types[G_N_ELEMENTS (columns)] = G_TYPE_NONE;

  return types;
}

static gint64
value_get_int64 (const GValue *value)
{
  if (value != NULL && G_VALUE_HOLDS_INT64 (value))
    return g_value_get_int64 (value);
  if (value != NULL && G_VALUE_HOLDS_INT (value))
    return g_value_get_int (value);
  return 0;
}

/* Makes a record of row @row of @model, a SELECT of every column in table order. */
static BgStoreRecord *
record_from_row (GdaDataModel  *model,
                 int            row,
                 GError       **error)
{
  g_autoptr(BgStoreRecord) record = g_new0 (BgStoreRecord, 1);

  g_assert (GDA_IS_DATA_MODEL (model));

  for (guint i = 0; i < G_N_ELEMENTS (columns); i++)
    {
      const Column *column = &columns[i];
      const GValue *value = gda_data_model_get_value_at (model, (int) i, row, error);
      gpointer field = G_STRUCT_MEMBER_P (record, column->offset);

      if (value == NULL)
        return NULL;

      switch (column->type)
        {
        case COLUMN_STRING:
          if (G_VALUE_HOLDS_STRING (value))
            *(char **) field = g_value_dup_string (value);
          break;

        case COLUMN_INT64:
          *(gint64 *) field = value_get_int64 (value);
          break;

        case COLUMN_INT:
          *(int *) field = (int) value_get_int64 (value);
          break;

        case COLUMN_UINT:
          *(guint *) field = (guint) value_get_int64 (value);
          break;

        case COLUMN_BYTES:
          /* NULL comes back as GDA_TYPE_NULL, an empty blob as an empty GdaBinary. */
          if (G_VALUE_HOLDS (value, GDA_TYPE_BINARY))
            {
              const GdaBinary *binary = gda_value_get_binary (value);

              *(GBytes **) field = g_bytes_new (binary->data, binary->binary_length);
            }
          break;

        default:
          g_assert_not_reached ();
        }
    }

  return g_steal_pointer (&record);
}

/* libgda fetches rows lazily, and counting them steps the statement to its end.  A step that
 * fails shows in one of two ways, depending on SQLite's error code: a count of -1, or a count of
 * the rows so far with the error among the model's exceptions.  Both are errors here. */
static int
count_rows (GdaDataModel  *model,
            GError       **error)
{
  int n_rows = gda_data_model_get_n_rows (model);
  GError **exceptions = gda_data_model_get_exceptions (model);

  if (exceptions != NULL && exceptions[0] != NULL)
    {
      g_set_error_literal (error, BG_ERROR, BG_ERROR_STORE, exceptions[0]->message);
      return -1;
    }

  if (n_rows < 0)
    {
      g_set_error_literal (error, BG_ERROR, BG_ERROR_STORE, _("A statement could not be run"));
      return -1;
    }

  return n_rows;
}

/* Runs a prepared SELECT of whole records and collects them. */
static GPtrArray *
select_records_on (BgStore       *self,
                   GdaConnection *cnc,
                   GdaStatement  *stmt,
                   GdaSet        *params,
                   GError       **error)
{
  g_autoptr(GPtrArray) records = NULL;
  g_autoptr(GdaDataModel) model = NULL;
  g_autoptr(GError) local_error = NULL;
  int n_rows;

  g_assert (GDA_IS_CONNECTION (cnc));
  g_assert (GDA_IS_STATEMENT (stmt));

  model = gda_connection_statement_execute_select_full (cnc, stmt, params,
                                                        GDA_STATEMENT_MODEL_RANDOM_ACCESS,
                                                        self->col_types, &local_error);
  if (model == NULL)
    {
      set_read_error (error, self, local_error);
      return NULL;
    }

  /* Counting the rows steps the statement to its end, so a failure halfway through shows here,
   * and the read transaction is over before the rows are used. */
  n_rows = count_rows (model, &local_error);
  if (n_rows < 0)
    {
      set_read_error (error, self, local_error);
      return NULL;
    }

  records = g_ptr_array_new_full (n_rows, (GDestroyNotify) bg_store_record_free);
  for (int row = 0; row < n_rows; row++)
    {
      BgStoreRecord *record = record_from_row (model, row, &local_error);

      if (record == NULL)
        {
          set_read_error (error, self, local_error);
          return NULL;
        }
      g_ptr_array_add (records, record);
    }

  return g_steal_pointer (&records);
}

static GPtrArray *
select_records (BgStore  *self,
                StmtId    id,
                GError  **error)
{
  /* The libgda connection sees only what is committed (see "Writing records"). */
  if (!bg_store_commit_group (self, error))
    return NULL;

  return select_records_on (self, self->cnc, self->stmts[id], self->params[id], error);
}

/* Opening: paths, the file and its lock */

/* The path the store works with: the real path of the folder, which is created (0700) when
 * missing, plus the file name, or the real path of the file itself when it exists, so that a
 * symbolic link to an existing database names that database.  A link that leads to no file stays
 * as it is, and bg_store_open_file() refuses it. */
static char *
canonicalize_path (const char  *path,
                   GError     **error)
{
  g_autofree char *shown = g_filename_display_name (path);   /* for messages */
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  g_autofree char *real_dir = NULL;
  g_autofree char *joined = NULL;
  char *real_file;

  if (g_str_has_suffix (path, G_DIR_SEPARATOR_S) ||
      g_str_equal (base, ".") || g_str_equal (base, ".."))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("“%s” does not name a file"), shown);
      return NULL;
    }

  if (g_mkdir_with_parents (dir, 0700) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Could not create the folder for task database “%s”: %s"),
                   shown, g_strerror (saved_errno));
      return NULL;
    }

  real_dir = realpath (dir, NULL);
  if (real_dir == NULL)
    {
      int saved_errno = errno;

      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Could not resolve the folder of task database “%s”: %s"),
                   shown, g_strerror (saved_errno));
      return NULL;
    }

  joined = g_build_filename (real_dir, base, NULL);
  real_file = realpath (joined, NULL);

  return real_file != NULL ? real_file : g_steal_pointer (&joined);
}

/* The key of open_stores: the device and inode of the database file, so that every name of one
 * database (a second path, a hard link) gives the one store of this process. */
static char *
file_key (const struct stat *st)
{
  return g_strdup_printf ("%" G_GUINT64_FORMAT ":%" G_GUINT64_FORMAT,
                          (guint64) st->st_dev, (guint64) st->st_ino);
}

static void
set_link_error (GError     **error,
                const char  *path)
{
  g_autofree char *shown = g_filename_display_name (path);   /* for messages */

  g_set_error (error, BG_ERROR, BG_ERROR_STORE,
               _("Task database “%s” is a symbolic link that leads to no file; a database is "
                 "never created through a link"),
               shown);
}

/* Sets @key to the key of the file at @path, or to NULL when there is no file yet.  Read-only: it
 * opens nothing (see bg_store_open_file() for why that matters). */
static gboolean
identify_file (const char  *path,
               char       **key,
               GError     **error)
{
  g_autofree char *shown = g_filename_display_name (path);   /* for messages */
  struct stat st;

  g_assert (path != NULL);
  g_assert (key != NULL);

  *key = NULL;

  if (lstat (path, &st) != 0)
    {
      int saved_errno = errno;

      if (saved_errno == ENOENT)
        return TRUE;

      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Could not open task database “%s”: %s"), shown, g_strerror (saved_errno));
      return FALSE;
    }

  /* canonicalize_path() resolved a link to an existing file: this one leads nowhere. */
  if (S_ISLNK (st.st_mode))
    {
      set_link_error (error, path);
      return FALSE;
    }

  if (!S_ISREG (st.st_mode))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” is not a regular file"), shown);
      return FALSE;
    }

  *key = file_key (&st);

  return TRUE;
}

/* Opens the database file at @path for writing, never through a symbolic link; when it is
 * missing and @may_create, creates it with mode 0600.  Returns the descriptor, or -1 with
 * @error set. */
static int
open_or_create (const char  *path,
                gboolean     may_create,
                GError     **error)
{
  g_autofree char *shown = g_filename_display_name (path);   /* for messages */
  int fd;
  int saved_errno;

  g_assert (path != NULL);

  fd = open (path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
  if (fd < 0 && errno == ENOENT && may_create)
    {
      fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
      if (fd < 0)
        {
          saved_errno = errno;
          g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                       _("Could not create task database “%s”: %s"),
                       shown, g_strerror (saved_errno));
          return -1;
        }

      /* The umask may have left out bits of 0600; it may not add any. */
      (void) fchmod (fd, 0600);
    }

  if (fd >= 0)
    return fd;

  saved_errno = errno;
  if (saved_errno == ELOOP)
    set_link_error (error, path);
  else if (saved_errno == EACCES || saved_errno == EPERM || saved_errno == EROFS ||
           saved_errno == ETXTBSY)
    g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                 _("Task database “%s” is read-only: %s"), shown, g_strerror (saved_errno));
  else
    g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                 _("Could not open task database “%s”: %s"), shown, g_strerror (saved_errno));

  return -1;
}

/* Takes the lock that keeps other processes off the database (see bg_store_open_file()). */
static gboolean
lock_file (int          fd,
           const char  *path,
           GError     **error)
{
  g_autofree char *shown = g_filename_display_name (path);   /* for messages */
  int saved_errno;

  g_assert (fd >= 0);

  if (flock (fd, LOCK_EX | LOCK_NB) == 0)
    return TRUE;

  saved_errno = errno;
  if (saved_errno == EWOULDBLOCK)
    g_set_error (error, BG_ERROR, BG_ERROR_BUSY,
                 _("Task database “%s” is in use by another process"), shown);
  else
    g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                 _("Could not lock task database “%s”: %s"), shown, g_strerror (saved_errno));

  return FALSE;
}

/* Opens the database file for writing, creating it when it is missing, and locks it: one process
 * per database.
 *
 * A new database is created here, before libgda sees it, with O_CREAT | O_EXCL | O_NOFOLLOW and
 * mode 0600, so that no file is ever created through a symbolic link; SQLite gives the -wal and
 * -shm files the mode of the database.  The open asks for writing because a database that this
 * process cannot write has to be refused now: SQLite would quietly open it read-only, and every
 * save would fail.
 *
 * The lock is flock(2) on that descriptor, which stays open for the store's whole life, so it is
 * on the database file itself: a second path or a hard link to it meets the same lock.  flock(2)
 * locks and the fcntl(2) record locks SQLite takes on the same file are independent of each other
 * on Linux local file systems.  What would hurt SQLite is a close: a process drops all of its
 * record locks on a file as soon as it closes any descriptor of it.  So this descriptor is closed
 * only after SQLite has closed the database (bg_store_close()), the header is read through it
 * rather than through another one, and bg_store_open() never opens a file that another store of
 * this process has open (it looks the file up by its inode first).  On NFS, where Linux emulates
 * flock(2) with record locks, SQLite's WAL mode does not work anyway.  The descriptor is
 * close-on-exec, so that a spawned child never inherits the lock.
 *
 * @expected_key is the file's key as bg_store_open() found it, NULL when there was none. */
static gboolean
bg_store_open_file (BgStore     *self,
                    const char  *expected_key,
                    goffset     *size,
                    GError     **error)
{
  struct stat st;

  g_assert (BG_IS_STORE (self));
  g_assert (size != NULL);

  self->fd = open_or_create (self->path, expected_key == NULL, error);
  if (self->fd < 0)
    return FALSE;

  if (fstat (self->fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” is not a regular file"), self->display_path);
      return FALSE;
    }

  self->key = file_key (&st);
  if (expected_key != NULL && !g_str_equal (expected_key, self->key))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” was replaced while it was being opened"), self->display_path);
      return FALSE;
    }

  if (!lock_file (self->fd, self->path, error))
    return FALSE;

  *size = st.st_size;

  return TRUE;
}

static guint32
read_be32 (const guint8 *bytes)
{
  return ((guint32) bytes[0] << 24) | ((guint32) bytes[1] << 16) |
         ((guint32) bytes[2] << 8) | (guint32) bytes[3];
}

/* Whether SQLite's "<database><suffix>" file exists and has something in it. */
static gboolean
has_side_file (BgStore    *self,
               const char *suffix)
{
  g_autofree char *side_path = g_strconcat (self->path, suffix, NULL);
  GStatBuf st;

  return g_stat (side_path, &st) == 0 && st.st_size > 0;
}

/* A first look at the 100-byte SQLite header, before libgda opens the file: a file that is not a
 * database at all, or that lost its end, is refused here with a precise message.  (It also spares
 * libgda 5 an open that fails, which leaks the SQLite handle and its descriptor.)  Read-only. */
static gboolean
bg_store_check_header (BgStore  *self,
                       goffset   size,
                       GError  **error)
{
  static const char magic[16] = "SQLite format 3";  /* with its NUL */
  guint8 header[100];
  guint32 page_size;
  guint32 n_pages;
  gssize n_read;

  g_assert (self->fd >= 0);

  if (size == 0)
    return TRUE;

  do
    n_read = pread (self->fd, header, sizeof header, 0);
  while (n_read < 0 && errno == EINTR);

  if (n_read < (gssize) sizeof header || memcmp (header, magic, sizeof magic) != 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” is not an SQLite database"), self->display_path);
      return FALSE;
    }

  page_size = ((guint32) header[16] << 8) | header[17];
  if (page_size == 1)
    page_size = 65536;
  if (page_size < 512 || (page_size & (page_size - 1)) != 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” is damaged: its header is invalid"), self->display_path);
      return FALSE;
    }

  /* The page count in the header is to be trusted only when the version-valid-for number
   * matches the change counter, and the file may be short of it only while a WAL or a hot
   * journal holds pages that SQLite has yet to put back. */
  n_pages = read_be32 (header + 28);
  if (n_pages > 0 &&
      read_be32 (header + 24) == read_be32 (header + 92) &&
      size < (goffset) n_pages * page_size &&
      !has_side_file (self, "-wal") &&
      !has_side_file (self, "-journal"))
    {
      g_autofree char *have = g_format_size_full (size, G_FORMAT_SIZE_LONG_FORMAT);
      g_autofree char *want = g_format_size_full ((guint64) n_pages * page_size,
                                                  G_FORMAT_SIZE_LONG_FORMAT);

      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   /* Translators: "it has 4.1 kB (4,096 bytes) of its 8.2 kB (8,192 bytes)" */
                   _("Task database “%s” is truncated: it has %s of its %s"),
                   self->display_path, have, want);
      return FALSE;
    }

  return TRUE;
}

/* A read-write connection through libgda, to exactly the file that is locked: without
 * APPEND_DB_EXTENSION=FALSE libgda would open "<name>.db" instead whenever there is one. */
static GdaConnection *
bg_store_open_connection (BgStore  *self,
                          GError  **error)
{
  g_autofree char *dir = g_path_get_dirname (self->path);
  g_autofree char *base = g_path_get_basename (self->path);
  g_autofree char *enc_dir = gda_rfc1738_encode (dir);
  g_autofree char *enc_base = gda_rfc1738_encode (base);
  g_autofree char *cnc_string = g_strdup_printf ("DB_DIR=%s;DB_NAME=%s;APPEND_DB_EXTENSION=FALSE",
                                                 enc_dir, enc_base);
  g_autoptr(GError) local_error = NULL;
  g_autofree char *key = NULL;
  GdaConnection *cnc;

  g_assert (self->key != NULL);

  cnc = gda_connection_open_from_string ("SQLite", cnc_string, NULL,
                                         GDA_CONNECTION_OPTIONS_NONE, &local_error);
  if (cnc == NULL)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” cannot be opened: %s"),
                   self->display_path, local_error != NULL ? local_error->message : _("unknown error"));
      return NULL;
    }

  /* SQLite opened the file by its name: it has to be the one that is locked. */
  if (!identify_file (self->path, &key, NULL) || g_strcmp0 (key, self->key) != 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” was replaced while it was being opened"), self->display_path);
      gda_connection_close (cnc);
      g_object_unref (cnc);
      return NULL;
    }

  return cnc;
}

/* Opening: checking and upgrading */

/* Runs a one-column query and returns its values as strings (NULL values as NULL). */
static GPtrArray *
query_strings (BgStore     *self,
               const char  *sql,
               GError     **error)
{
  g_autoptr(GPtrArray) values = NULL;
  g_autoptr(GdaStatement) stmt = NULL;
  g_autoptr(GdaDataModel) model = NULL;
  GType types[] = { G_TYPE_STRING, G_TYPE_NONE };
  int n_rows;

  stmt = gda_connection_parse_sql_string (self->cnc, sql, NULL, error);
  if (stmt == NULL)
    return NULL;

  model = gda_connection_statement_execute_select_full (self->cnc, stmt, NULL,
                                                        GDA_STATEMENT_MODEL_RANDOM_ACCESS,
                                                        types, error);
  if (model == NULL)
    return NULL;

  n_rows = count_rows (model, error);
  if (n_rows < 0)
    return NULL;

  values = g_ptr_array_new_full (n_rows, g_free);
  for (int row = 0; row < n_rows; row++)
    {
      const GValue *value = gda_data_model_get_value_at (model, 0, row, error);

      if (value == NULL)
        return NULL;
      g_ptr_array_add (values, G_VALUE_HOLDS_STRING (value) ? g_value_dup_string (value) : NULL);
    }

  return g_steal_pointer (&values);
}

static gboolean
query_int64 (BgStore     *self,
             const char  *sql,
             gint64      *result,
             GError     **error)
{
  g_autoptr(GdaStatement) stmt = NULL;
  g_autoptr(GdaDataModel) model = NULL;
  GType types[] = { G_TYPE_INT64, G_TYPE_NONE };
  const GValue *value;

  g_assert (result != NULL);

  stmt = gda_connection_parse_sql_string (self->cnc, sql, NULL, error);
  if (stmt == NULL)
    return FALSE;

  model = gda_connection_statement_execute_select_full (self->cnc, stmt, NULL,
                                                        GDA_STATEMENT_MODEL_RANDOM_ACCESS,
                                                        types, error);
  if (model == NULL)
    return FALSE;

  value = gda_data_model_get_value_at (model, 0, 0, error);
  if (value == NULL)
    return FALSE;

  *result = value_get_int64 (value);

  return TRUE;
}

/* Runs one statement whatever it returns.  libgda treats every PRAGMA as a query and hands back a
 * data model without stepping the statement, so an assignment such as "PRAGMA user_version = 2"
 * takes effect only once the model is made to fetch its rows. */
static gboolean
execute_statement (GdaConnection  *cnc,
                   GdaStatement   *stmt,
                   GError        **error)
{
  g_autoptr(GObject) result = NULL;

  g_assert (GDA_IS_CONNECTION (cnc));
  g_assert (GDA_IS_STATEMENT (stmt));

  result = gda_connection_statement_execute (cnc, stmt, NULL,
                                             GDA_STATEMENT_MODEL_RANDOM_ACCESS, NULL, error);
  if (result == NULL)
    return FALSE;

  return !GDA_IS_DATA_MODEL (result) || count_rows (GDA_DATA_MODEL (result), error) >= 0;
}

static gboolean
run_sql (GdaConnection  *cnc,
         const char     *sql,
         GError        **error)
{
  g_autoptr(GdaStatement) stmt = NULL;

  g_assert (GDA_IS_CONNECTION (cnc));

  stmt = gda_connection_parse_sql_string (cnc, sql, NULL, error);
  if (stmt == NULL)
    return FALSE;

  return execute_statement (cnc, stmt, error);
}

/* The first line of quick_check's report that says what is wrong, without the
 * "*** in database main ***" heading. */
static char *
first_problem (GPtrArray *problems)
{
  g_assert (problems != NULL);

  for (guint i = 0; i < problems->len; i++)
    {
      const char *row = g_ptr_array_index (problems, i);
      g_auto(GStrv) lines = NULL;

      if (row == NULL)
        continue;

      lines = g_strsplit (row, "\n", -1);
      for (guint j = 0; lines[j] != NULL; j++)
        {
          g_strstrip (lines[j]);
          if (*lines[j] != '\0' && !g_str_has_prefix (lines[j], "***"))
            return g_strdup (lines[j]);
        }
    }

  return NULL;
}

/* Opening: checking, read-only
 *
 * A database is checked before anything writes to it, and libgda 5 cannot help there: it opens
 * every file read-write (GDA_CONNECTION_OPTIONS_READ_ONLY only stops transactions), and closing
 * the last read-write connection to a database in WAL mode checkpoints its -wal into it and
 * deletes the -wal and -shm.  A refused database would come out changed.  So the checks run on a
 * connection of SQLite's own, opened read-only, and libgda connects only to a database that
 * passed them. */

/* The URI that has SQLite open the database read-only and leave every byte of it, of its -wal
 * and of its -shm as it is:
 * - with no -wal, or an empty one, the database file holds everything, and immutable=1 reads it
 *   without locks and without making a -wal and a -shm (which mode=ro alone would leave behind);
 * - with a -wal, that has to be read too, through the -shm.  readonly_shm=1 keeps SQLite from
 *   writing the -shm, which the first connection after a crash would otherwise empty and
 *   rebuild: with no live writer to trust it, SQLite builds its index of the -wal in its own
 *   memory instead;
 * - with a -wal but no -shm (removed by hand, or not copied along), SQLite has to make the -shm;
 *   that new file is all that is left behind. */
static char *
read_only_uri (BgStore *self)
{
  g_autofree char *escaped = g_uri_escape_string (self->path, "/", FALSE);
  g_autofree char *shm_path = g_strconcat (self->path, "-shm", NULL);
  const char *options;

  if (!has_side_file (self, "-wal"))
    options = "mode=ro&immutable=1";
  else if (g_file_test (shm_path, G_FILE_TEST_EXISTS))
    options = "mode=ro&readonly_shm=1";
  else
    options = "mode=ro";

  return g_strdup_printf ("file:%s?%s", escaped, options);
}

/* Runs a query on the read-only connection and returns the first column of its rows as strings
 * (NULL values as NULL). */
static GPtrArray *
read_only_query (sqlite3     *db,
                 const char  *sql,
                 GError     **error)
{
  g_autoptr(sqlite3_stmt) stmt = NULL;
  g_autoptr(GPtrArray) values = g_ptr_array_new_with_free_func (g_free);
  int rc;

  g_assert (db != NULL);

  rc = sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    {
      while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        g_ptr_array_add (values, g_strdup ((const char *) sqlite3_column_text (stmt, 0)));
    }

  if (rc != SQLITE_DONE)
    {
      g_set_error_literal (error, BG_ERROR, BG_ERROR_STORE, sqlite3_errmsg (db));
      return NULL;
    }

  return g_steal_pointer (&values);
}

static gboolean
read_only_query_int64 (sqlite3     *db,
                       const char  *sql,
                       gint64      *result,
                       GError     **error)
{
  g_autoptr(GPtrArray) values = read_only_query (db, sql, error);

  g_assert (result != NULL);

  if (values == NULL)
    return FALSE;

  if (values->len == 0 || g_ptr_array_index (values, 0) == NULL)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE, _("“%s” gave no answer"), sql);
      return FALSE;
    }

  *result = g_ascii_strtoll (g_ptr_array_index (values, 0), NULL, 10);

  return TRUE;
}

/* A connection of SQLite's own to the database, read-only (see read_only_uri()). */
static sqlite3 *
read_only_open (BgStore  *self,
                GError  **error)
{
  g_autofree char *uri = read_only_uri (self);
  g_autoptr(sqlite3) db = NULL;

  if (sqlite3_open_v2 (uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOFOLLOW,
                       NULL) != SQLITE_OK)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” cannot be opened: %s"),
                   self->display_path, db != NULL ? sqlite3_errmsg (db) : g_strerror (ENOMEM));
      return NULL;
    }
  /* As libgda does; with the lock taken only a program that is not bg-glib could be writing. */
  sqlite3_busy_timeout (db, 500);

  return g_steal_pointer (&db);
}

/* Reads the schema version into @version: one this code understands, or 0 for none. */
static gboolean
check_schema_version (BgStore  *self,
                      sqlite3  *db,
                      gint64   *version,
                      GError  **error)
{
  g_autoptr(GError) local_error = NULL;

  g_assert (db != NULL);
  g_assert (version != NULL);

  if (!read_only_query_int64 (db, "PRAGMA user_version", version, &local_error))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” cannot be read: %s"),
                   self->display_path, local_error->message);
      return FALSE;
    }

  if (*version > BG_STORE_SCHEMA_VERSION)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” was written by a newer version of bg-glib "
                     "(schema %d, this version understands %d)"),
                   self->display_path, (int) *version, BG_STORE_SCHEMA_VERSION);
      return FALSE;
    }

  if (*version < 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” has an invalid schema version (%d)"),
                   self->display_path, (int) *version);
      return FALSE;
    }

  return TRUE;
}

/* Reads every page of the file and checks the structure of each b-tree, in time proportional to
 * the size: a damaged page is found here, not by the engine halfway through a transfer.  (It
 * leaves out the index cross-checks of a full integrity_check, which cost far more.) */
static gboolean
check_integrity (BgStore  *self,
                 sqlite3  *db,
                 GError  **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GPtrArray) problems = NULL;

  g_assert (db != NULL);

  problems = read_only_query (db, "PRAGMA quick_check", &local_error);
  if (problems == NULL)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” is damaged: %s"), self->display_path, local_error->message);
      return FALSE;
    }
  if (problems->len == 0 || g_strcmp0 (g_ptr_array_index (problems, 0), "ok") != 0)
    {
      g_autofree char *first = first_problem (problems);

      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” is damaged: %s"),
                   self->display_path, first != NULL ? first : _("the integrity check gave no answer"));
      return FALSE;
    }

  return TRUE;
}

/* A file that SQLite can read, with no schema version: it is ours only if it is empty. */
static gboolean
check_unversioned_is_empty (BgStore  *self,
                            sqlite3  *db,
                            GError  **error)
{
  g_autoptr(GError) local_error = NULL;
  gint64 n_objects = 0;

  g_assert (db != NULL);

  if (!read_only_query_int64 (db, "SELECT count(*) FROM sqlite_master", &n_objects,
                              &local_error))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” cannot be read: %s"),
                   self->display_path, local_error->message);
      return FALSE;
    }
  if (n_objects > 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("“%s” is an SQLite database, but not a bg-glib task database"),
                   self->display_path);
      return FALSE;
    }

  return TRUE;
}

/* The tasks table has every column that schema @version brought (see columns[]). */
static gboolean
check_columns (BgStore  *self,
               sqlite3  *db,
               gint64    version,
               GError  **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GPtrArray) names = NULL;
  g_autoptr(GHashTable) present = NULL;

  g_assert (db != NULL);

  names = read_only_query (db, "SELECT name FROM pragma_table_info ('tasks')", &local_error);
  if (names == NULL)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” cannot be read: %s"), self->display_path, local_error->message);
      return FALSE;
    }

  present = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < names->len; i++)
    if (g_ptr_array_index (names, i) != NULL)
      g_hash_table_add (present, g_ptr_array_index (names, i));

  for (guint i = 0; i < G_N_ELEMENTS (columns); i++)
    {
      if (columns[i].since > version || g_hash_table_contains (present, columns[i].name))
        continue;

      if (names->len == 0)
        g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                     _("Task database “%s” (schema %d) has no tasks table"),
                     self->display_path, (int) version);
      else
        g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                     _("Task database “%s” (schema %d) lacks the column “%s” of its tasks table"),
                     self->display_path, (int) version, columns[i].name);
      return FALSE;
    }

  return TRUE;
}

/* Everything here only reads: a database that is refused must be left exactly as it was.
 * @is_empty: the database is a file of 0 bytes with no -wal, that is, a new one. */
static gboolean
bg_store_check (BgStore   *self,
                gboolean   is_empty,
                gint64    *version,
                GError   **error)
{
  g_autoptr(sqlite3) db = NULL;

  g_assert (BG_IS_STORE (self));
  g_assert (version != NULL);

  *version = 0;
  if (is_empty)
    return TRUE;

  db = read_only_open (self, error);
  if (db == NULL ||
      !check_schema_version (self, db, version, error) ||
      !check_integrity (self, db, error))
    return FALSE;

  if (*version == 0)
    return check_unversioned_is_empty (self, db, error);

  return check_columns (self, db, *version, error);
}

/* WAL: a commit appends to the -wal file, and readers never block the writer.  With
 * synchronous=NORMAL a commit is not fsync'ed; the WAL is synced at each checkpoint instead.
 * A committed transaction therefore survives the process being killed or crashing at any point,
 * which is the threat this library is built for, since the data is already in the kernel's page
 * cache; only a power cut or an OS crash can lose the last commits, and even then the database
 * stays consistent (it rolls back to an earlier commit, never to a torn one).  FULL would add an
 * fsync to every commit, far more than the few milliseconds a write may take on the main loop. */
static gboolean
bg_store_configure (BgStore  *self,
                    GError  **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GPtrArray) mode = NULL;
  g_autofree char *size_limit = g_strdup_printf ("PRAGMA journal_size_limit = %d",
                                                 JOURNAL_SIZE_LIMIT);
  gint64 synchronous = -1;

  mode = query_strings (self, "PRAGMA journal_mode = WAL", &local_error);
  if (mode == NULL)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Could not switch task database “%s” to write-ahead logging: %s"),
                   self->display_path, local_error != NULL ? local_error->message : _("unknown error"));
      return FALSE;
    }
  if (mode->len == 0 || g_ascii_strcasecmp (g_ptr_array_index (mode, 0), "wal") != 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Could not switch task database “%s” to write-ahead logging; the file "
                     "system may not support it"),
                   self->display_path);
      return FALSE;
    }

  /* Read back: libgda reports no error for a PRAGMA it did not run. */
  if (!run_sql (self->cnc, size_limit, &local_error) ||
      !run_sql (self->cnc, "PRAGMA synchronous = NORMAL", &local_error) ||
      !query_int64 (self, "PRAGMA synchronous", &synchronous, &local_error))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Could not configure task database “%s”: %s"),
                   self->display_path, local_error != NULL ? local_error->message : _("unknown error"));
      return FALSE;
    }
  if (synchronous != 1)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Could not configure task database “%s”: synchronous is %d"),
                   self->display_path, (int) synchronous);
      return FALSE;
    }

  return TRUE;
}

/* A database this process cannot write is refused here rather than found out at the first save:
 * SQLite quietly opens a file it may not write read-only, and a -wal or -shm that cannot be made
 * or written fails only at a commit.  So one real commit is made, through the -wal as every save
 * will be: the schema version rewritten with its own value. */
static gboolean
bg_store_check_writable (BgStore  *self,
                         GError  **error)
{
  g_autofree char *sql = g_strdup_printf ("PRAGMA user_version = %d", self->schema_version);
  g_autoptr(GError) local_error = NULL;

  if (!gda_connection_begin_transaction (self->cnc, NULL, GDA_TRANSACTION_ISOLATION_UNKNOWN,
                                         &local_error) ||
      !run_sql (self->cnc, sql, &local_error) ||
      !gda_connection_commit_transaction (self->cnc, NULL, &local_error))
    {
      gda_connection_rollback_transaction (self->cnc, NULL, NULL);
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s”, or its -wal or -shm file, cannot be written: %s"),
                   self->display_path, local_error != NULL ? local_error->message : _("unknown error"));
      return FALSE;
    }

  return TRUE;
}

static gboolean
run_script (BgStore     *self,
            const char  *sql,
            GError     **error)
{
  g_autoptr(GdaSqlParser) parser = gda_connection_create_parser (self->cnc);
  g_autoptr(GdaBatch) batch = NULL;
  g_autoptr(GError) local_error = NULL;
  GSList *results;

  if (parser == NULL)
    parser = gda_sql_parser_new ();

  batch = gda_sql_parser_parse_string_as_batch (parser, sql, NULL, error);
  if (batch == NULL)
    return FALSE;

  results = gda_connection_batch_execute (self->cnc, batch, NULL,
                                          GDA_STATEMENT_MODEL_RANDOM_ACCESS, &local_error);
  g_slist_free_full (results, g_object_unref);
  if (local_error != NULL)
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }

  return TRUE;
}

/* Brings the database from @version to BG_STORE_SCHEMA_VERSION, one migration per transaction,
 * each committed together with its user_version bump. */
static gboolean
bg_store_migrate (BgStore  *self,
                  gint64    version,
                  GError  **error)
{
  GResource *resource = bg_get_resource ();

  for (int target = (int) version + 1; target <= BG_STORE_SCHEMA_VERSION; target++)
    {
      g_autofree char *resource_path = g_strconcat (SCHEMA_RESOURCE_DIR,
                                                    migrations[target - 1], NULL);
      g_autofree char *bump = g_strdup_printf ("PRAGMA user_version = %d", target);
      g_autoptr(GBytes) script = NULL;
      g_autoptr(GError) local_error = NULL;
      g_autofree char *sql = NULL;

      script = g_resource_lookup_data (resource, resource_path, G_RESOURCE_LOOKUP_FLAGS_NONE,
                                       &local_error);
      if (script == NULL)
        {
          g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                       _("Could not upgrade task database “%s” to schema %d: %s"),
                       self->display_path, target, local_error->message);
          return FALSE;
        }
      sql = g_strndup (g_bytes_get_data (script, NULL), g_bytes_get_size (script));

      if (!gda_connection_begin_transaction (self->cnc, NULL, GDA_TRANSACTION_ISOLATION_UNKNOWN,
                                             &local_error) ||
          !run_script (self, sql, &local_error) ||
          !run_sql (self->cnc, bump, &local_error) ||
          !gda_connection_commit_transaction (self->cnc, NULL, &local_error))
        {
          gda_connection_rollback_transaction (self->cnc, NULL, NULL);
          g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                       _("Could not upgrade task database “%s” to schema %d: %s"),
                       self->display_path, target,
                       local_error != NULL ? local_error->message : _("unknown error"));
          return FALSE;
        }

      self->schema_version = target;
    }

  return TRUE;
}

static gboolean
bg_store_prepare (BgStore  *self,
                  GError  **error)
{
  for (guint id = 0; id < N_STMTS; id++)
    {
      g_autofree char *sql = build_sql (id);
      g_autoptr(GError) local_error = NULL;

      self->stmts[id] = gda_connection_parse_sql_string (self->cnc, sql, &self->params[id],
                                                         &local_error);
      if (self->stmts[id] == NULL)
        {
          g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                       _("Could not prepare statements for task database “%s”: %s"),
                       self->display_path,
                       local_error != NULL ? local_error->message : _("unknown error"));
          return FALSE;
        }
    }

  self->col_types = build_col_types ();

  return TRUE;
}

/* Checkpoints
 *
 * SQLite copies the WAL back into the database at a checkpoint, and a checkpoint syncs both
 * files: milliseconds on a good disk, tens of them on a slow one.  Left to itself SQLite runs one
 * inside whichever commit finds the WAL past 1000 pages, which would be a write stalling the main
 * loop.  So a thread of the store's own runs a PASSIVE checkpoint, on a second connection, after
 * every CHECKPOINT_INTERVAL writes.  A passive checkpoint takes no lock that a writer waits for,
 * so commits on the main loop go on meanwhile, and the first commit after a checkpoint that caught
 * up starts the WAL again from its beginning.
 *
 * Under writes so constant that no checkpoint ever catches up, the WAL would only grow; so the
 * store's connection keeps SQLite's own checkpoint as a safety valve, at WAL_AUTOCHECKPOINT pages
 * instead of 1000, and journal_size_limit gives the disk space back once the WAL restarts.
 * Closing the store's connection, the last one, checkpoints what is left and removes the WAL.
 *
 * A stream of submits is such a load (a commit every few tens of microseconds: a passive
 * checkpoint, which cannot pass frames written while it runs, never finds the WAL caught up), so
 * there the valve does run, on the main loop, about every 1,300 new records.  Two choices keep
 * it short.  The interval is small, so that the valve finds little of the WAL left to copy and
 * sync.  And journal_size_limit is twice the WAL's size at the valve (WAL_AUTOCHECKPOINT pages
 * of 4 KiB and their frame headers; the valve waits while the thread's checkpoint runs, and the
 * WAL grows meanwhile), so that a restart after the valve reuses the file: truncating 12 MiB of
 * it took longer than the checkpoint itself, and the writes that followed had to grow the file
 * again.  The WAL may therefore keep up to that much disk space until the store is closed. */

enum {
  CHECKPOINT_QUIT = 1,
  CHECKPOINT_RUN,
};

static gpointer
checkpoint_thread_main (gpointer data)
{
  BgStore *self = data;

  for (;;)
    {
      int request = GPOINTER_TO_INT (g_async_queue_pop (self->checkpoint_queue));
      g_autoptr(GError) error = NULL;

      if (request == CHECKPOINT_QUIT)
        break;

      if (!execute_statement (self->checkpoint_cnc, self->checkpoint_stmt, &error))
        g_debug ("Checkpoint of task database “%s” failed: %s",
                 self->display_path, error != NULL ? error->message : "unknown error");

      g_atomic_int_set (&self->checkpoint_pending, 0);
    }

  return NULL;
}

/* Without a second connection SQLite's own checkpoints stay on: slower writes, but still writes. */
static void
bg_store_start_checkpoints (BgStore *self)
{
  g_autoptr(GError) error = NULL;
  g_autofree char *autocheckpoint = g_strdup_printf ("PRAGMA wal_autocheckpoint = %d",
                                                     WAL_AUTOCHECKPOINT);

  /* Parsed here, once: the worker thread only executes. */
  self->checkpoint_cnc = bg_store_open_connection (self, &error);
  if (self->checkpoint_cnc != NULL)
    self->checkpoint_stmt = gda_connection_parse_sql_string (self->checkpoint_cnc,
                                                             "PRAGMA wal_checkpoint(PASSIVE)",
                                                             NULL, &error);
  if (self->checkpoint_stmt == NULL || !run_sql (self->cnc, autocheckpoint, &error))
    {
      g_debug ("Checkpoints of task database “%s” stay in the writing thread: %s",
               self->display_path, error != NULL ? error->message : "unknown error");
      g_clear_object (&self->checkpoint_stmt);
      g_clear_object (&self->checkpoint_cnc);
      return;
    }

  self->checkpoint_queue = g_async_queue_new ();
  self->checkpoint_thread = g_thread_new ("bg-store-checkpoint", checkpoint_thread_main, self);
}

static void
bg_store_stop_checkpoints (BgStore *self)
{
  if (self->checkpoint_thread != NULL)
    {
      g_async_queue_push (self->checkpoint_queue, GINT_TO_POINTER (CHECKPOINT_QUIT));
      g_clear_pointer (&self->checkpoint_thread, g_thread_join);
    }
  g_clear_pointer (&self->checkpoint_queue, g_async_queue_unref);
  g_clear_object (&self->checkpoint_stmt);

  if (self->checkpoint_cnc != NULL)
    {
      if (gda_connection_is_opened (self->checkpoint_cnc))
        gda_connection_close (self->checkpoint_cnc);
      g_clear_object (&self->checkpoint_cnc);
    }
}

/* Called after each write on the store's connection. */
static void
bg_store_maybe_checkpoint (BgStore *self)
{
  if (self->checkpoint_queue == NULL || ++self->writes_since_checkpoint < CHECKPOINT_INTERVAL)
    return;

  /* One at a time: if the last one is still running, try again after the next write. */
  if (!g_atomic_int_compare_and_exchange (&self->checkpoint_pending, 0, 1))
    return;

  self->writes_since_checkpoint = 0;
  g_async_queue_push (self->checkpoint_queue, GINT_TO_POINTER (CHECKPOINT_RUN));
}

/* Writing records
 *
 * Records are written through SQLite's own API, on a connection that the store opens for it,
 * rather than through libgda: there, binding a record sets some fifty GdaHolders (a GValue copy
 * and a few signal emissions each) and every run goes through a copy of the statement, which
 * together cost more than the write and its commit.  An app that imports a long list submits
 * thousands in a row, and every small file a transfer publishes costs three writes (bench cases
 * 4 and 11).  The connection is set up as the libgda one is (WAL, synchronous=NORMAL, the same
 * busy timeout, journal size limit and checkpoint threshold).  A record is bound column by
 * column from the table of columns, as record_from_sqlite_row() reads it back.  A plain write
 * is committed when it returns; grouped writes share a transaction on this connection (see
 * "Group commit").  The libgda connection only reads once the database is open, and commits
 * the group first, since it would neither see the group's rows nor get the write lock while
 * the group holds it. */

/* Binds every field of @record that @stmt has a parameter for, parameter i + 1 for columns[i]:
 * a NULL string or body as NULL, an empty body as an empty blob, every number as an integer.
 * Nothing is copied, so @record has to outlive the statement's next step. */
static int
bind_record_sqlite (sqlite3_stmt        *stmt,
                    const BgStoreRecord *record)
{
  guint n_parameters = (guint) sqlite3_bind_parameter_count (stmt);
  int rc = SQLITE_OK;

  g_assert (stmt != NULL);
  g_assert (record != NULL);

  for (guint i = 0; i < MIN (G_N_ELEMENTS (columns), n_parameters) && rc == SQLITE_OK; i++)
    {
      const Column *column = &columns[i];
      gconstpointer field = G_STRUCT_MEMBER_P (record, column->offset);
      int n = (int) i + 1;

      switch (column->type)
        {
        case COLUMN_STRING:
          {
            const char *value = *(char * const *) field;

            g_assert (value != NULL || !column->key);
            rc = value != NULL ? sqlite3_bind_text (stmt, n, value, -1, SQLITE_STATIC)
                               : sqlite3_bind_null (stmt, n);
          }
          break;

        case COLUMN_INT64:
          rc = sqlite3_bind_int64 (stmt, n, *(const gint64 *) field);
          break;

        case COLUMN_INT:
          rc = sqlite3_bind_int64 (stmt, n, *(const int *) field);
          break;

        case COLUMN_UINT:
          rc = sqlite3_bind_int64 (stmt, n, *(const guint *) field);
          break;

        case COLUMN_BYTES:
          {
            GBytes *bytes = *(GBytes * const *) field;
            gconstpointer data = NULL;
            gsize size = 0;

            if (bytes != NULL)
              data = g_bytes_get_data (bytes, &size);

            if (bytes == NULL)
              rc = sqlite3_bind_null (stmt, n);
            else if (size == 0)
              rc = sqlite3_bind_zeroblob (stmt, n, 0);
            else
              rc = sqlite3_bind_blob64 (stmt, n, data, size, SQLITE_STATIC);
          }
          break;

        default:
          g_assert_not_reached ();
        }
    }

  return rc;
}

static gboolean
bg_store_open_writer (BgStore  *self,
                      GError  **error)
{
  g_autofree char *escaped = g_uri_escape_string (self->path, "/", FALSE);
  g_autofree char *uri = g_strdup_printf ("file:%s", escaped);
  g_autofree char *pragmas = NULL;
  g_autofree char *key = NULL;
  g_autoptr(sqlite3) db = NULL;
  g_autoptr(GPtrArray) mode = NULL;
  g_autoptr(GError) local_error = NULL;
  gint64 synchronous = -1;

  g_assert (self->writer == NULL);

  if (sqlite3_open_v2 (uri, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI | SQLITE_OPEN_NOFOLLOW,
                       NULL) != SQLITE_OK)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” cannot be opened: %s"),
                   self->display_path, db != NULL ? sqlite3_errmsg (db) : g_strerror (ENOMEM));
      return FALSE;
    }

  /* SQLite opened the file by its name: it has to be the one that is locked. */
  if (!identify_file (self->path, &key, NULL) || g_strcmp0 (key, self->key) != 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Task database “%s” was replaced while it was being opened"), self->display_path);
      return FALSE;
    }

  /* As the libgda connection is (see bg_store_configure() and "Checkpoints"). */
  sqlite3_busy_timeout (db, 500);
  pragmas = g_strdup_printf ("PRAGMA synchronous = NORMAL; PRAGMA journal_size_limit = %d;%s",
                             JOURNAL_SIZE_LIMIT,
                             self->checkpoint_thread != NULL
                               ? " PRAGMA wal_autocheckpoint = " G_STRINGIFY (WAL_AUTOCHECKPOINT)
                               : "");
  if (sqlite3_exec (db, pragmas, NULL, NULL, NULL) != SQLITE_OK)
    local_error = g_error_new_literal (BG_ERROR, BG_ERROR_STORE, sqlite3_errmsg (db));
  else if ((mode = read_only_query (db, "PRAGMA journal_mode", &local_error)) == NULL ||
           !read_only_query_int64 (db, "PRAGMA synchronous", &synchronous, &local_error))
    ;
  else if (mode->len == 0 || g_strcmp0 (g_ptr_array_index (mode, 0), "wal") != 0 ||
           synchronous != 1)
    local_error = g_error_new_literal (BG_ERROR, BG_ERROR_STORE,
                                       _("write-ahead logging or synchronous=NORMAL is off"));
  else
    {
      for (guint id = 0; id < N_WRITES && local_error == NULL; id++)
        {
          g_autofree char *sql = build_write_sql (id);

          if (sqlite3_prepare_v3 (db, sql, -1, SQLITE_PREPARE_PERSISTENT, &self->writes[id],
                                  NULL) != SQLITE_OK)
            local_error = g_error_new_literal (BG_ERROR, BG_ERROR_STORE, sqlite3_errmsg (db));
        }
      if (local_error == NULL)
        {
          g_autoptr(GString) sql = g_string_new ("SELECT ");

          append_column_list (sql);
          g_string_append (sql, " FROM tasks");
          append_key_condition (sql);
          if (sqlite3_prepare_v3 (db, sql->str, -1, SQLITE_PREPARE_PERSISTENT, &self->read_one,
                                  NULL) != SQLITE_OK)
            local_error = g_error_new_literal (BG_ERROR, BG_ERROR_STORE, sqlite3_errmsg (db));
        }
    }

  if (local_error != NULL)
    {
      for (guint id = 0; id < N_WRITES; id++)
        g_clear_pointer (&self->writes[id], sqlite3_finalize);
      g_clear_pointer (&self->read_one, sqlite3_finalize);
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Could not configure task database “%s”: %s"),
                   self->display_path, local_error->message);
      return FALSE;
    }

  self->writer = g_steal_pointer (&db);

  return TRUE;
}

static void
bg_store_close_writer (BgStore *self)
{
  for (guint id = 0; id < N_WRITES; id++)
    g_clear_pointer (&self->writes[id], sqlite3_finalize);
  g_clear_pointer (&self->read_one, sqlite3_finalize);
  g_clear_pointer (&self->writer, sqlite3_close);
}

/* Open (or create) and lock the file, check it read-only, and then and only then connect
 * through libgda and write: WAL, a first commit, migrations. */
static gboolean
bg_store_setup (BgStore     *self,
                const char  *expected_key,
                GError     **error)
{
  goffset size = 0;
  gint64 version = 0;

  if (!bg_store_open_file (self, expected_key, &size, error) ||
      !bg_store_check_header (self, size, error) ||
      !bg_store_check (self, size == 0 && !has_side_file (self, "-wal"), &version, error))
    return FALSE;

  self->schema_version = (int) version;

  if ((self->cnc = bg_store_open_connection (self, error)) == NULL ||
      !bg_store_configure (self, error) ||
      !bg_store_check_writable (self, error) ||
      !bg_store_migrate (self, version, error) ||
      !bg_store_prepare (self, error))
    return FALSE;

  bg_store_start_checkpoints (self);

  return bg_store_open_writer (self, error);
}

/* Loading off the main thread
 *
 * Restoring reads every record of a kind: tens of milliseconds for thousands of tasks, which
 * must not stall the main loop.  A GdaConnection runs one statement at a time, so a read on the
 * store's own connection from a worker would hold up the main loop's writes for as long; the
 * worker reads through a connection of its own instead, opened on first use and kept.  In WAL
 * mode a reader and the writer do not wait for each other. */

/* The records are handed over in batches, on the caller's context, while the worker reads on: it
 * waits as long as LOAD_AHEAD batches have not been taken.  So only a few batches are in memory
 * at a time, and the memory of the records that the caller drops is reused by the worker for the
 * next ones: made all at once, a hundred thousand records left 60 MiB resident in the C library's
 * heap for the worker's thread after the caller had freed them. */
#define LOAD_BATCH 500
#define LOAD_AHEAD 2

typedef struct
{
  gatomicrefcount   ref_count;
  BgTaskKind        kind;
  GMainContext     *context;
  BgStoreBatchFunc  func;
  gpointer          func_data;

  GMutex            mutex;
  GCond             cond;
  GQueue            batches;     /* GPtrArray of BgStoreRecord, oldest first */
  GSource          *deliver;     /* hands the next batch over, while there is one */
  gboolean          stopped;     /* the caller wants no more */
} LoadStream;

static LoadStream *
load_stream_ref (LoadStream *stream)
{
  g_atomic_ref_count_inc (&stream->ref_count);
  return stream;
}

static void
load_stream_unref (LoadStream *stream)
{
  if (!g_atomic_ref_count_dec (&stream->ref_count))
    return;

  g_assert (stream->deliver == NULL);
  g_queue_clear_full (&stream->batches, (GDestroyNotify) g_ptr_array_unref);
  g_main_context_unref (stream->context);
  g_mutex_clear (&stream->mutex);
  g_cond_clear (&stream->cond);
  g_free (stream);
}

/* Hands the oldest batch over to the caller's function; on the caller's context. */
static gboolean
load_stream_deliver_one (LoadStream *stream)
{
  g_autoptr(GPtrArray) batch = NULL;
  gboolean more;
  gboolean stopped;

  g_mutex_lock (&stream->mutex);
  batch = g_queue_pop_head (&stream->batches);
  more = !g_queue_is_empty (&stream->batches);
  stopped = stream->stopped;
  g_cond_signal (&stream->cond);
  g_mutex_unlock (&stream->mutex);

  if (batch != NULL && !stopped && !stream->func (batch, stream->func_data))
    {
      g_mutex_lock (&stream->mutex);
      stream->stopped = TRUE;
      g_cond_signal (&stream->cond);
      g_mutex_unlock (&stream->mutex);
    }

  return more;
}

/* One batch per dispatch, so that the caller's work on each one is a main-loop turn of its own. */
static gboolean
load_stream_deliver_cb (gpointer data)
{
  LoadStream *stream = data;

  if (load_stream_deliver_one (stream))
    return G_SOURCE_CONTINUE;

  g_mutex_lock (&stream->mutex);
  /* A batch pushed meanwhile found the source still there: it is delivered next time. */
  if (!g_queue_is_empty (&stream->batches))
    {
      g_mutex_unlock (&stream->mutex);
      return G_SOURCE_CONTINUE;
    }
  g_clear_pointer (&stream->deliver, g_source_unref);
  g_mutex_unlock (&stream->mutex);

  return G_SOURCE_REMOVE;
}

/* On the worker: queues @batch (taken) for delivery, once fewer than LOAD_AHEAD wait.  FALSE when
 * the caller wants no more. */
static gboolean
load_stream_push (LoadStream *stream,
                  GPtrArray  *batch)
{
  g_mutex_lock (&stream->mutex);
  while (!stream->stopped && stream->batches.length >= LOAD_AHEAD)
    g_cond_wait (&stream->cond, &stream->mutex);

  if (stream->stopped)
    {
      g_mutex_unlock (&stream->mutex);
      g_ptr_array_unref (batch);
      return FALSE;
    }

  g_queue_push_tail (&stream->batches, batch);
  if (stream->deliver == NULL)
    {
      stream->deliver = g_idle_source_new ();
      g_source_set_priority (stream->deliver, G_PRIORITY_DEFAULT);
      g_source_set_callback (stream->deliver, load_stream_deliver_cb, load_stream_ref (stream),
                             (GDestroyNotify) load_stream_unref);
      g_source_set_static_name (stream->deliver, "[bg] task database load");
      g_source_attach (stream->deliver, stream->context);
    }
  g_mutex_unlock (&stream->mutex);

  return TRUE;
}

/* Runs with reader_mutex held.  Returns FALSE when there is no reader connection to be had. */
static gboolean
bg_store_ensure_reader (BgStore  *self,
                        GError  **error)
{
  g_autofree char *sql = NULL;

  if (self->reader_stmt != NULL)
    return TRUE;

  self->reader_cnc = bg_store_open_connection (self, error);
  if (self->reader_cnc == NULL)
    return FALSE;

  sql = build_sql (STMT_LOAD_ALL);
  self->reader_stmt = gda_connection_parse_sql_string (self->reader_cnc, sql,
                                                       &self->reader_params, error);
  if (self->reader_stmt == NULL)
    {
      gda_connection_close (self->reader_cnc);
      g_clear_object (&self->reader_cnc);
      return FALSE;
    }

  return TRUE;
}

/* Loading with SQLite's own API: libgda's data model holds every row as GValues before the first
 * record is made, which for 100,000 records costs more than the records themselves.  This reads
 * the same statement row by row on a read-only connection of its own, opened for the one load.
 * Returns NULL with @error set, or NULL without it when the connection cannot be had (the caller
 * then reads through libgda). */
static BgStoreRecord *
record_from_sqlite_row (sqlite3_stmt *stmt)
{
  BgStoreRecord *record = g_new0 (BgStoreRecord, 1);

  for (guint i = 0; i < G_N_ELEMENTS (columns); i++)
    {
      const Column *column = &columns[i];
      gpointer field = G_STRUCT_MEMBER_P (record, column->offset);
      gboolean is_null = sqlite3_column_type (stmt, (int) i) == SQLITE_NULL;

      switch (column->type)
        {
        case COLUMN_STRING:
          if (!is_null)
            *(char **) field = g_strndup ((const char *) sqlite3_column_text (stmt, (int) i),
                                         (gsize) sqlite3_column_bytes (stmt, (int) i));
          break;

        case COLUMN_INT64:
          *(gint64 *) field = sqlite3_column_int64 (stmt, (int) i);
          break;

        case COLUMN_INT:
          *(int *) field = (int) sqlite3_column_int64 (stmt, (int) i);
          break;

        case COLUMN_UINT:
          *(guint *) field = (guint) sqlite3_column_int64 (stmt, (int) i);
          break;

        case COLUMN_BYTES:
          /* An empty blob is an empty GBytes, NULL is NULL. */
          if (!is_null)
            *(GBytes **) field = g_bytes_new (sqlite3_column_blob (stmt, (int) i),
                                              (gsize) sqlite3_column_bytes (stmt, (int) i));
          break;

        default:
          g_assert_not_reached ();
        }
    }

  return record;
}

/* Reads the records of the stream's kind and pushes them in batches.  Returns FALSE with @error
 * set on a read error, and FALSE without it when there is no connection to read with (the caller
 * then reads through libgda). */
static gboolean
load_all_sqlite (BgStore     *self,
                 LoadStream  *stream,
                 GError     **error)
{
  g_autofree char *escaped = g_uri_escape_string (self->path, "/", FALSE);
  g_autofree char *uri = g_strdup_printf ("file:%s", escaped);
  g_autoptr(GString) sql = g_string_new ("SELECT ");
  g_autoptr(sqlite3) db = NULL;
  g_autoptr(sqlite3_stmt) stmt = NULL;
  g_autoptr(GPtrArray) batch = NULL;
  int rc;

  if (sqlite3_open_v2 (uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOFOLLOW,
                       NULL) != SQLITE_OK)
    {
      g_debug ("Task database “%s”: no connection to load with: %s", self->display_path,
               db != NULL ? sqlite3_errmsg (db) : g_strerror (ENOMEM));
      return FALSE;
    }
  /* As libgda does; the store's own connection may hold the write lock for a moment. */
  sqlite3_busy_timeout (db, 500);

  append_column_list (sql);
  g_string_append (sql, " FROM tasks WHERE kind = ?1 ORDER BY created_at, rowid");

  rc = sqlite3_prepare_v2 (db, sql->str, -1, &stmt, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_int64 (stmt, 1, stream->kind);
  while (rc == SQLITE_OK || rc == SQLITE_ROW)
    {
      rc = sqlite3_step (stmt);
      if (rc == SQLITE_ROW)
        {
          if (batch == NULL)
            batch = g_ptr_array_new_full (LOAD_BATCH, (GDestroyNotify) bg_store_record_free);
          g_ptr_array_add (batch, record_from_sqlite_row (stmt));
        }
      if (batch != NULL && (batch->len == LOAD_BATCH || rc == SQLITE_DONE) &&
          !load_stream_push (stream, g_steal_pointer (&batch)))
        return TRUE;
    }

  if (rc != SQLITE_DONE)
    {
      g_autoptr(GError) cause = g_error_new_literal (BG_ERROR, BG_ERROR_STORE,
                                                     sqlite3_errmsg (db));

      set_read_error (error, self, cause);
      return FALSE;
    }

  return TRUE;
}

static void
load_all_thread (GTask        *task,
                 gpointer      source_object,
                 gpointer      task_data,
                 GCancellable *cancellable)
{
  BgStore *self = source_object;
  LoadStream *stream = task_data;
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->reader_mutex);
  g_autoptr(GError) error = NULL;
  GPtrArray *records;

  if (load_all_sqlite (self, stream, &error))
    {
      g_task_return_boolean (task, TRUE);
      return;
    }
  if (error != NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }

  if (!bg_store_ensure_reader (self, &error))
    {
      g_debug ("Restoring from task database “%s” on the main thread: %s",
               self->display_path, error != NULL ? error->message : "unknown error");
      g_task_return_new_error (task, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED, "no reader");
      return;
    }

  if (!bind_key (self->reader_params, stream->kind, NULL, &error))
    {
      g_autoptr(GError) read_error = NULL;

      set_read_error (&read_error, self, error);
      g_task_return_error (task, g_steal_pointer (&read_error));
      return;
    }

  /* libgda reads them all at once: one batch. */
  records = select_records_on (self, self->reader_cnc, self->reader_stmt, self->reader_params,
                               &error);
  if (records == NULL)
    {
      g_task_return_error (task, g_steal_pointer (&error));
      return;
    }
  load_stream_push (stream, records);
  g_task_return_boolean (task, TRUE);
}

static void
load_all_done_cb (GObject      *object,
                  GAsyncResult *result,
                  gpointer      user_data)
{
  g_autoptr(GTask) task = user_data;
  BgStore *self = BG_STORE (object);
  LoadStream *stream = g_task_get_task_data (task);
  g_autoptr(GError) error = NULL;

  /* What the worker read before it ended is handed over first, in order. */
  while (load_stream_deliver_one (stream))
    ;

  if (!g_task_propagate_boolean (G_TASK (result), &error) &&
      g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED))
    {
      g_autoptr(GPtrArray) records = NULL;

      /* No second connection: read on the store's own, here. */
      g_clear_error (&error);
      records = bg_store_load_all (self, stream->kind, &error);
      if (records != NULL && !stream->stopped)
        stream->func (records, stream->func_data);
    }

  if (error != NULL)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
}

/* Reads every record of @kind, oldest first, on a worker thread through a connection of its own,
 * so that the main loop's writes go on meanwhile.  @func gets them in batches on the caller's
 * thread-default context, a batch per main-loop turn, all before @callback; it may steal the
 * records from the array, and returns FALSE to stop the load. */
void
bg_store_load_all_async (BgStore             *self,
                         BgTaskKind           kind,
                         BgStoreBatchFunc     func,
                         gpointer             func_data,
                         GCancellable        *cancellable,
                         GAsyncReadyCallback  callback,
                         gpointer             user_data)
{
  g_autoptr(GTask) task = NULL;
  g_autoptr(GTask) worker = NULL;
  LoadStream *stream;

  g_return_if_fail (BG_IS_STORE (self));
  g_return_if_fail (func != NULL);

  /* The reader has a connection of its own: it sees committed writes only. */
  if (self->group_open)
    {
      g_autoptr(GError) error = NULL;

      if (!bg_store_commit_group (self, &error))
        g_warning ("%s", error->message);
    }

  stream = g_new0 (LoadStream, 1);
  g_atomic_ref_count_init (&stream->ref_count);
  stream->kind = kind;
  stream->context = g_main_context_ref_thread_default ();
  stream->func = func;
  stream->func_data = func_data;
  g_mutex_init (&stream->mutex);
  g_cond_init (&stream->cond);
  g_queue_init (&stream->batches);

  task = g_task_new (self, cancellable, callback, user_data);
  g_task_set_source_tag (task, bg_store_load_all_async);
  g_task_set_task_data (task, stream, (GDestroyNotify) load_stream_unref);

  worker = g_task_new (self, cancellable, load_all_done_cb, g_object_ref (task));
  g_task_set_source_tag (worker, load_all_thread);
  g_task_set_task_data (worker, load_stream_ref (stream), (GDestroyNotify) load_stream_unref);
  g_task_run_in_thread (worker, load_all_thread);
}

gboolean
bg_store_load_all_finish (BgStore       *self,
                          GAsyncResult  *result,
                          GError       **error)
{
  g_return_val_if_fail (g_task_is_valid (result, self), FALSE);

  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
bg_store_close_reader (BgStore *self)
{
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&self->reader_mutex);

  g_clear_object (&self->reader_stmt);
  g_clear_object (&self->reader_params);
  if (self->reader_cnc != NULL)
    {
      if (gda_connection_is_opened (self->reader_cnc))
        gda_connection_close (self->reader_cnc);
      g_clear_object (&self->reader_cnc);
    }
}

/* GObject */

/* Closes the database, then gives up the lock: in that order, so that another process can never
 * get the lock while SQLite still has the file open here, and so that closing the locked
 * descriptor cannot drop SQLite's record locks (see bg_store_open_file()). */
static void
bg_store_close (BgStore *self)
{
  bg_store_close_group (self);
  bg_store_close_writer (self);
  bg_store_stop_checkpoints (self);
  bg_store_close_reader (self);

  for (guint id = 0; id < N_STMTS; id++)
    {
      g_clear_object (&self->stmts[id]);
      g_clear_object (&self->params[id]);
    }
  g_clear_pointer (&self->col_types, g_free);

  if (self->cnc != NULL)
    {
      if (gda_connection_is_opened (self->cnc))
        gda_connection_close (self->cnc);
      g_clear_object (&self->cnc);
    }

  if (self->fd >= 0)
    {
      close (self->fd);
      self->fd = -1;
    }
}

static void
bg_store_finalize (GObject *object)
{
  BgStore *self = (BgStore *) object;

  if (self->registered)
    {
      g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&open_stores_mutex);

      bg_store_close (self);
      g_hash_table_remove (open_stores, self->key);
      g_cond_broadcast (&open_stores_cond);
    }
  else
    {
      bg_store_close (self);
    }

  g_clear_pointer (&self->path, g_free);
  g_clear_pointer (&self->display_path, g_free);
  g_clear_pointer (&self->key, g_free);
  g_mutex_clear (&self->reader_mutex);

  G_OBJECT_CLASS (bg_store_parent_class)->finalize (object);
}

static void
bg_store_class_init (BgStoreClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = bg_store_finalize;
}

static void
bg_store_init (BgStore *self)
{
  self->fd = -1;
  g_mutex_init (&self->reader_mutex);
  g_queue_init (&self->group_waiters);
}

/* Group commit
 *
 * Most of a small download's writes need not be committed before the call that makes them
 * returns: what they protect is an announcement (task-finished, a _finish callback, a state
 * notification) or a step (publishing) that comes later.  Those writes join one transaction,
 * which a source on the thread-default main context commits after the current dispatch, and
 * what was waiting for them runs once it is committed.  So the writes of one main-loop turn,
 * for every transfer, cost one commit.  A plain write meanwhile commits the group with it. */

typedef struct
{
  BgStoreCommittedFunc func;
  gpointer             data;
  GDestroyNotify       destroy;
} GroupWaiter;

static void
group_waiter_free (GroupWaiter *waiter)
{
  if (waiter->destroy != NULL)
    waiter->destroy (waiter->data);
  g_free (waiter);
}

static gboolean
group_source_cb (gpointer data)
{
  BgStore *self = data;
  g_autoptr(BgStore) hold = g_object_ref (self);
  g_autoptr(GError) error = NULL;
  GQueue waiters = G_QUEUE_INIT;
  GroupWaiter *waiter;

  g_clear_pointer (&self->group_source, g_source_unref);

  if (!bg_store_commit_group (self, &error))
    g_warning ("%s", error->message);

  /* Waiters queued by the ones that run now wait for the next commit. */
  waiters = self->group_waiters;
  g_queue_init (&self->group_waiters);

  while ((waiter = g_queue_pop_head (&waiters)) != NULL)
    {
      waiter->func (waiter->data);
      group_waiter_free (waiter);
    }

  return G_SOURCE_REMOVE;
}

static void
bg_store_schedule_group (BgStore *self)
{
  g_autoptr(GMainContext) context = NULL;

  if (self->group_source != NULL)
    return;

  /* High priority: it runs as soon as the dispatch that made the writes is over, before any
   * other event is handled. */
  context = g_main_context_ref_thread_default ();
  self->group_source = g_idle_source_new ();
  g_source_set_priority (self->group_source, G_PRIORITY_HIGH);
  g_source_set_callback (self->group_source, group_source_cb, self, NULL);
  g_source_set_static_name (self->group_source, "[bg] store group commit");
  g_source_attach (self->group_source, context);
}

/* On close: whatever is grouped is committed, and the waiters are dropped without running. */
static void
bg_store_close_group (BgStore *self)
{
  g_autoptr(GError) error = NULL;

  if (self->group_open && !bg_store_commit_group (self, &error))
    g_warning ("%s", error->message);

  if (self->group_source != NULL)
    {
      g_source_destroy (self->group_source);
      g_clear_pointer (&self->group_source, g_source_unref);
    }
  g_queue_clear_full (&self->group_waiters, (GDestroyNotify) group_waiter_free);
}

/* Opens the group's transaction on the writer connection if it is not open yet.  When it cannot
 * be opened, the writes are committed one by one. */
static void
open_group (BgStore *self)
{
  if (self->group_open || self->writer == NULL)
    return;

  if (sqlite3_exec (self->writer, "BEGIN", NULL, NULL, NULL) == SQLITE_OK)
    {
      self->group_open = TRUE;
      bg_store_schedule_group (self);
    }
  else
    {
      g_debug ("Task database “%s”: no transaction for grouped writes: %s", self->display_path,
               sqlite3_errmsg (self->writer));
    }
}

gboolean
bg_store_commit_group (BgStore  *self,
                       GError  **error)
{
  g_return_val_if_fail (BG_IS_STORE (self), FALSE);

  if (!self->group_open)
    return TRUE;
  self->group_open = FALSE;

  if (sqlite3_exec (self->writer, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
    {
      g_autoptr(GError) cause = g_error_new_literal (BG_ERROR, BG_ERROR_STORE,
                                                     sqlite3_errmsg (self->writer));

      /* Leave no transaction behind, so that later writes are not lost with this one. */
      if (!sqlite3_get_autocommit (self->writer))
        sqlite3_exec (self->writer, "ROLLBACK", NULL, NULL, NULL);
      set_write_error (error, self, cause);
      return FALSE;
    }

  return TRUE;
}

void
bg_store_when_committed (BgStore              *self,
                         BgStoreCommittedFunc  func,
                         gpointer              data,
                         GDestroyNotify        destroy)
{
  GroupWaiter *waiter;

  g_return_if_fail (BG_IS_STORE (self));
  g_return_if_fail (func != NULL);

  waiter = g_new0 (GroupWaiter, 1);
  waiter->func = func;
  waiter->data = data;
  waiter->destroy = destroy;
  g_queue_push_tail (&self->group_waiters, waiter);

  bg_store_schedule_group (self);
}

/* Public (to the library) API */

BgStore *
bg_store_open (const char  *path,
               GError     **error)
{
  g_autofree char *canonical = NULL;
  g_autofree char *key = NULL;
  g_autoptr(BgStore) store = NULL;
  g_autoptr(GMutexLocker) locker = NULL;  /* declared last: it unlocks before the rest goes */
  GWeakRef *ref;

  g_return_val_if_fail (path != NULL && *path != '\0', NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  ensure_gda_init ();

  canonical = canonicalize_path (path, error);
  if (canonical == NULL)
    return NULL;

  locker = g_mutex_locker_new (&open_stores_mutex);

  if (open_stores == NULL)
    open_stores = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, weak_ref_free);

  /* The file is looked up by its inode before it is opened: opening (and closing) a descriptor of
   * a file that a store of this process has open would drop SQLite's locks on it. */
  if (!identify_file (canonical, &key, error))
    return NULL;

  while (key != NULL && (ref = g_hash_table_lookup (open_stores, key)) != NULL)
    {
      store = g_weak_ref_get (ref);
      if (store != NULL)
        return g_steal_pointer (&store);

      /* Another thread is dropping the last reference: wait until it has let go of the file. */
      g_cond_wait (&open_stores_cond, &open_stores_mutex);
    }

  /* Opening runs under the mutex, so that one thread cannot take the lock while another is
   * still opening the same file; a store that failed to open is closed under it too. */
  store = g_object_new (BG_TYPE_STORE, NULL);
  store->path = g_strdup (canonical);
  store->display_path = g_filename_display_name (canonical);

  if (!bg_store_setup (store, key, error))
    {
      g_clear_object (&store);
      return NULL;
    }

  ref = g_new0 (GWeakRef, 1);
  g_weak_ref_init (ref, store);
  g_hash_table_insert (open_stores, g_strdup (store->key), ref);
  store->registered = TRUE;

  return g_steal_pointer (&store);
}

const char *
bg_store_get_path (BgStore *self)
{
  g_return_val_if_fail (BG_IS_STORE (self), NULL);

  return self->path;
}

int
bg_store_get_schema_version (BgStore *self)
{
  g_return_val_if_fail (BG_IS_STORE (self), -1);

  return self->schema_version;
}

/* Runs the write @id, already bound (or failing to bind with @rc), and resets it.  In the group
 * when @grouped and a group can be had, otherwise committed when it returns, with the grouped
 * writes before it.  *@rows, when @rows is not NULL, is the number of rows it changed. */
static gboolean
run_write (BgStore   *self,
           WriteId    id,
           int        rc,
           gboolean   grouped,
           int       *rows,
           GError   **error)
{
  sqlite3_stmt *stmt = self->writes[id];

  if (grouped && rc == SQLITE_OK)
    open_group (self);

  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);

  if (rc == SQLITE_DONE)
    {
      if (rows != NULL)
        *rows = sqlite3_changes (self->writer);
    }
  else
    {
      g_autoptr(GError) cause = g_error_new_literal (BG_ERROR, BG_ERROR_STORE,
                                                     sqlite3_errmsg (self->writer));

      set_write_error (error, self, cause);
    }

  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);

  if (rc != SQLITE_DONE)
    return FALSE;

  bg_store_maybe_checkpoint (self);

  /* A plain write is committed when it returns, with the grouped writes before it. */
  if (!grouped)
    return bg_store_commit_group (self, error);

  return TRUE;
}

/* Binds @record to the write @id and runs it (see run_write()). */
static gboolean
write_record (BgStore              *self,
              WriteId               id,
              const BgStoreRecord  *record,
              gboolean              grouped,
              int                  *rows,
              GError              **error)
{
  g_return_val_if_fail (BG_IS_STORE (self), FALSE);
  g_return_val_if_fail (record != NULL, FALSE);
  g_return_val_if_fail (record->identifier != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_return_val_if_fail (self->writer != NULL, FALSE);

  return run_write (self, id, bind_record_sqlite (self->writes[id], record), grouped, rows,
                    error);
}

gboolean
bg_store_save (BgStore              *self,
               const BgStoreRecord  *record,
               GError              **error)
{
  return write_record (self, WRITE_SAVE, record, FALSE, NULL, error);
}

/* Runs about once a second for every running transfer, so it rewrites only the progress columns
 * of one row.  A record that is gone (cancelled meanwhile) is not an error. */
gboolean
bg_store_save_progress (BgStore              *self,
                        const BgStoreRecord  *record,
                        GError              **error)
{
  return write_record (self, WRITE_PROGRESS, record, FALSE, NULL, error);
}

/* Inserts @record unless the store has a record of the same kind and identifier already; then
 * *@inserted is FALSE and nothing is written.  One statement, committed when it returns, with
 * the grouped writes before it: a new task needs no lookup first. */
gboolean
bg_store_insert_new (BgStore              *self,
                     const BgStoreRecord  *record,
                     gboolean             *inserted,
                     GError              **error)
{
  int rows = 0;

  g_return_val_if_fail (inserted != NULL, FALSE);

  if (!write_record (self, WRITE_INSERT_NEW, record, FALSE, &rows, error))
    return FALSE;

  *inserted = rows > 0;

  return TRUE;
}

BgStoreRecord *
bg_store_lookup (BgStore     *self,
                 BgTaskKind   kind,
                 const char  *identifier,
                 GError     **error)
{
  g_autoptr(GError) local_error = NULL;
  g_autoptr(GPtrArray) records = NULL;

  g_return_val_if_fail (BG_IS_STORE (self), NULL);
  g_return_val_if_fail (identifier != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!bind_key (self->params[STMT_LOOKUP], kind, identifier, &local_error))
    {
      set_read_error (error, self, local_error);
      return NULL;
    }

  records = select_records (self, STMT_LOOKUP, error);
  if (records == NULL || records->len == 0)
    return NULL;

  return g_ptr_array_steal_index (records, 0);
}

/* Reads the record of @kind and @identifier on the writer connection, which sees the grouped
 * writes before they are committed: no commit first, unlike bg_store_lookup(), and no libgda.
 * A record that is not there is an error too. */
BgStoreRecord *
bg_store_read_record (BgStore     *self,
                      BgTaskKind   kind,
                      const char  *identifier,
                      GError     **error)
{
  sqlite3_stmt *stmt;
  BgStoreRecord *record = NULL;
  int rc;

  g_return_val_if_fail (BG_IS_STORE (self), NULL);
  g_return_val_if_fail (identifier != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (self->writer == NULL)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_CLOSED,
                   _("Task database “%s” is closed"), self->display_path);
      return NULL;
    }

  stmt = self->read_one;
  rc = sqlite3_bind_int64 (stmt, (int) column_parameter ("kind"), kind);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_text (stmt, (int) column_parameter ("identifier"), identifier, -1,
                            SQLITE_STATIC);
  if (rc == SQLITE_OK)
    rc = sqlite3_step (stmt);

  if (rc == SQLITE_ROW)
    {
      record = record_from_sqlite_row (stmt);
    }
  else if (rc == SQLITE_DONE)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("The task “%s” is missing from task database “%s”"), identifier,
                   self->display_path);
    }
  else
    {
      g_autoptr(GError) cause = g_error_new_literal (BG_ERROR, BG_ERROR_STORE,
                                                     sqlite3_errmsg (self->writer));

      set_read_error (error, self, cause);
    }

  sqlite3_reset (stmt);
  sqlite3_clear_bindings (stmt);

  return record;
}

GPtrArray *
bg_store_load_all (BgStore     *self,
                   BgTaskKind   kind,
                   GError     **error)
{
  g_autoptr(GError) local_error = NULL;

  g_return_val_if_fail (BG_IS_STORE (self), NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!bind_key (self->params[STMT_LOAD_ALL], kind, NULL, &local_error))
    {
      set_read_error (error, self, local_error);
      return NULL;
    }

  return select_records (self, STMT_LOAD_ALL, error);
}

static gboolean
delete_record (BgStore     *self,
               BgTaskKind   kind,
               const char  *identifier,
               gboolean     grouped,
               GError     **error)
{
  sqlite3_stmt *stmt;
  int rc;

  g_return_val_if_fail (BG_IS_STORE (self), FALSE);
  g_return_val_if_fail (identifier != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);
  g_return_val_if_fail (self->writer != NULL, FALSE);

  stmt = self->writes[WRITE_DELETE];
  rc = sqlite3_bind_int64 (stmt, (int) column_parameter ("kind"), kind);
  if (rc == SQLITE_OK)
    rc = sqlite3_bind_text (stmt, (int) column_parameter ("identifier"), identifier, -1,
                            SQLITE_STATIC);

  return run_write (self, WRITE_DELETE, rc, grouped, NULL, error);
}

gboolean
bg_store_delete (BgStore     *self,
                 BgTaskKind   kind,
                 const char  *identifier,
                 GError     **error)
{
  return delete_record (self, kind, identifier, FALSE, error);
}

gboolean
bg_store_save_progress_grouped (BgStore              *self,
                                const BgStoreRecord  *record,
                                GError              **error)
{
  return write_record (self, WRITE_PROGRESS, record, TRUE, NULL, error);
}

/* Writes the columns of the UPDATE @id in the group; a record that is gone is written whole
 * (the full upsert, in the group). */
static gboolean
update_record_grouped (BgStore              *self,
                       WriteId               id,
                       const BgStoreRecord  *record,
                       GError              **error)
{
  int rows = 0;

  if (!write_record (self, id, record, TRUE, &rows, error))
    return FALSE;

  return rows > 0 || write_record (self, WRITE_SAVE, record, TRUE, NULL, error);
}

gboolean
bg_store_save_attempt_grouped (BgStore              *self,
                               const BgStoreRecord  *record,
                               GError              **error)
{
  return update_record_grouped (self, WRITE_ATTEMPT, record, error);
}

gboolean
bg_store_save_result_grouped (BgStore              *self,
                              const BgStoreRecord  *record,
                              GError              **error)
{
  return update_record_grouped (self, WRITE_RESULT, record, error);
}

gboolean
bg_store_delete_grouped (BgStore     *self,
                         BgTaskKind   kind,
                         const char  *identifier,
                         GError     **error)
{
  return delete_record (self, kind, identifier, TRUE, error);
}

/* Upload probes */

gboolean
bg_store_lookup_probe (BgStore     *self,
                       const char  *target,
                       int         *protocol,
                       char       **extensions,
                       gint64      *checked_at,
                       GError     **error)
{
  g_autoptr(GdaStatement) stmt = NULL;
  g_autoptr(GdaDataModel) model = NULL;
  g_autoptr(GError) local_error = NULL;
  GdaSet *params = NULL;
  GType types[] = { G_TYPE_INT64, G_TYPE_STRING, G_TYPE_INT64, G_TYPE_NONE };
  const GValue *value;
  int n_rows;

  g_return_val_if_fail (BG_IS_STORE (self), FALSE);
  g_return_val_if_fail (target != NULL, FALSE);
  g_return_val_if_fail (protocol != NULL && extensions != NULL && checked_at != NULL, FALSE);

  *extensions = NULL;

  stmt = gda_connection_parse_sql_string (self->cnc,
                                          "SELECT protocol, extensions, checked_at "
                                          "FROM upload_probes "
                                          "WHERE target = ##target::string",
                                          &params, &local_error);
  if (stmt == NULL || !bind_string (params, "target", target, &local_error))
    {
      g_clear_object (&params);
      set_read_error (error, self, local_error);
      return FALSE;
    }

  model = gda_connection_statement_execute_select_full (self->cnc, stmt, params,
                                                        GDA_STATEMENT_MODEL_RANDOM_ACCESS,
                                                        types, &local_error);
  g_clear_object (&params);
  if (model == NULL || (n_rows = count_rows (model, &local_error)) < 0)
    {
      set_read_error (error, self, local_error);
      return FALSE;
    }
  if (n_rows == 0)
    return FALSE;

  if ((value = gda_data_model_get_value_at (model, 0, 0, &local_error)) == NULL)
    goto failed;
  *protocol = G_VALUE_HOLDS_INT64 (value) ? (int) g_value_get_int64 (value) : 0;
  if ((value = gda_data_model_get_value_at (model, 1, 0, &local_error)) == NULL)
    goto failed;
  *extensions = G_VALUE_HOLDS_STRING (value) ? g_value_dup_string (value) : NULL;
  if ((value = gda_data_model_get_value_at (model, 2, 0, &local_error)) == NULL)
    goto failed;
  *checked_at = G_VALUE_HOLDS_INT64 (value) ? g_value_get_int64 (value) : 0;

  return TRUE;

failed:
  g_clear_pointer (extensions, g_free);
  set_read_error (error, self, local_error);
  return FALSE;
}

gboolean
bg_store_save_probe (BgStore     *self,
                     const char  *target,
                     int          protocol,
                     const char  *extensions,
                     gint64       checked_at,
                     GError     **error)
{
  g_autoptr(GdaStatement) stmt = NULL;
  g_autoptr(GError) local_error = NULL;
  GdaSet *params = NULL;
  gboolean ok;

  g_return_val_if_fail (BG_IS_STORE (self), FALSE);
  g_return_val_if_fail (target != NULL, FALSE);

  /* The group holds the write lock (see "Writing records"). */
  if (!bg_store_commit_group (self, error))
    return FALSE;

  stmt = gda_connection_parse_sql_string (self->cnc,
                                          "INSERT OR REPLACE INTO upload_probes "
                                          "(target, protocol, extensions, checked_at) VALUES "
                                          "(##target::string, ##protocol::gint64, "
                                          "##extensions::string::null, ##checked_at::gint64)",
                                          &params, &local_error);
  ok = stmt != NULL &&
       bind_string (params, "target", target, &local_error) &&
       bind_int64 (params, "protocol", protocol, &local_error) &&
       bind_string (params, "extensions", extensions, &local_error) &&
       bind_int64 (params, "checked_at", checked_at, &local_error) &&
       gda_connection_statement_execute_non_select (self->cnc, stmt, params, NULL,
                                                    &local_error) != -1;
  g_clear_object (&params);
  if (!ok)
    {
      set_write_error (error, self, local_error);
      return FALSE;
    }

  bg_store_maybe_checkpoint (self);

  return TRUE;
}
