/* bg-download-attempt.c: one download attempt, streamed to a partial file and published atomically
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gi18n-lib.h>
#include <glib/gstdio.h>

#include "bg-connection-watch-private.h"
#include "bg-engine-private.h"
#include "bg-error.h"
#include "bg-http-private.h"

/* Two buffers: one fills from the network while the other is written to disk. */
#define BUFFER_SIZE (512 * 1024)

/* A checkpoint is taken whenever this much has arrived, or this long has passed.  The promise
 * is that a kill redoes at most 8 MiB; data keeps arriving while a checkpoint's flush runs, so
 * the byte interval leaves that much margin. */
#define CHECKPOINT_BYTES (6 * 1024 * 1024)
#define CHECKPOINT_INTERVAL_USEC (G_USEC_PER_SEC)

/* Set by the test suites only, to play a slow disk; see bg-engine-private.h. */
BgDownloadTestDiskHook bg_download_test_disk_hook = NULL;

typedef struct
{
  grefcount      ref_count;
  BgJob         *job;
  GCancellable  *cancellable;
  SoupMessage   *msg;
  GInputStream  *in;
  int            fd;             /* the partial file, opened without following links */
  BgResponse    *outcome;        /* set once the attempt is over, handed on once it is idle */
  BgConnectionWatch *watch;      /* notices an HTTP/2 connection gone under the body */
  GError        *lost;           /* why the watch ended the attempt */

  guint8        *buf[2];
  gsize          fill[2];
  guint          cur;            /* the buffer being filled */
  BgThrottle    *task_throttle;  /* the bandwidth caps: the task's and its queue's */
  BgThrottle    *queue_throttle;
  gsize          granted;        /* bytes the caps gave the read in flight */
  GSource       *throttle_source; /* the wait for the caps to allow a read */

  gint64         received;       /* bytes of the file that have arrived */
  gint64         written;        /* bytes of the file that are written to the partial file */
  gint64         total;
  gint64         last_checkpoint_time;
  gint64         last_write_time;

  guint          redirects;
  guint          ranged : 1;
  guint          restarted : 1;
  guint          reading : 1;
  guint          writing : 1;
  guint          flushing : 1;
  guint          publishing : 1;
  guint          opening : 1;    /* a fresh partial file is being made on a worker */
  guint          eof : 1;
  guint          done : 1;       /* the outcome is known; nothing new starts */
  guint          ended : 1;      /* every write has landed and the engine was told */
} Download;

static void download_read (Download *self);
static void download_send (Download *self);

static Download *
download_ref (Download *self)
{
  g_ref_count_inc (&self->ref_count);
  return self;
}

static void
download_unref (Download *self)
{
  if (!g_ref_count_dec (&self->ref_count))
    return;

  if (self->fd >= 0)
    close (self->fd);
  g_clear_pointer (&self->watch, bg_connection_watch_free);
  g_assert (self->throttle_source == NULL);
  g_clear_pointer (&self->task_throttle, bg_throttle_unref);
  g_clear_pointer (&self->queue_throttle, bg_throttle_unref);
  g_clear_error (&self->lost);
  g_clear_object (&self->in);
  g_clear_object (&self->outcome);
  g_clear_object (&self->msg);
  g_clear_object (&self->cancellable);
  g_clear_pointer (&self->job, bg_job_unref);
  g_free (self->buf[0]);
  g_free (self->buf[1]);
  g_free (self);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Download, download_unref)

/* The partial file's name comes from a hash, never from the identifier or the server.  The
 * first name is stable, so that a run can find it again; a @salt gives a fresh one when that
 * name is taken by something that is not ours. */
static char *
partial_path_for (const char *identifier,
                  const char *file_path,
                  const char *salt)
{
  g_autofree char *dir = g_path_get_dirname (file_path);
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree char *hash = NULL;

  g_checksum_update (checksum, (const guchar *) identifier, -1);
  g_checksum_update (checksum, (const guchar *) "\n", 1);
  g_checksum_update (checksum, (const guchar *) file_path, -1);
  if (salt != NULL)
    {
      g_checksum_update (checksum, (const guchar *) "\n", 1);
      g_checksum_update (checksum, (const guchar *) salt, -1);
    }
  /* Made at its length: it is kept in every task's record, and a string grown and then cut to
   * size (as g_build_filename() and g_strdup_printf() do) leaves a hole in the heap behind for
   * each of a hundred thousand tasks. */
  hash = g_strndup (g_checksum_get_string (checksum), 32);
  return g_strconcat (dir, g_str_has_suffix (dir, G_DIR_SEPARATOR_S) ? "" : G_DIR_SEPARATOR_S,
                      ".bg-", hash, ".part", NULL);
}

/* Only a file this process could have made is ever written, published or removed: a regular
 * file owned by this user, with no other name. */
static gboolean
partial_is_ours (const struct stat *st)
{
  g_assert (st != NULL);

  return S_ISREG (st->st_mode) && st->st_uid == geteuid () && st->st_nlink == 1;
}

/* The longest name the folder's file system takes, or 255 when it does not say. */
static long
name_max_for (const char *dir)
{
  long name_max = pathconf (dir, _PC_NAME_MAX);

  return name_max > 0 ? name_max : 255;
}

static gboolean
download_prepare_new (BgEngine       *engine,
                      BgStoreRecord  *record,
                      GFile          *file,
                      GError        **error)
{
  g_autofree char *path = g_file_get_path (file);
  g_autofree char *dir = NULL;
  gboolean have_dir;
  GStatBuf st;

  g_assert (BG_IS_ENGINE (engine));
  g_assert (record != NULL);

  if (path == NULL)
    {
      g_autofree char *name = g_file_get_parse_name (file);

      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The destination “%s” is not a local file"), name);
      return FALSE;
    }

  dir = g_path_get_dirname (path);
  have_dir = g_stat (dir, &st) == 0;
  if (!have_dir || !S_ISDIR (st.st_mode) || access (dir, W_OK | X_OK) != 0)
    {
      g_autofree char *shown = g_filename_display_name (dir);

      if (!have_dir)
        g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                     _("The destination folder “%s” does not exist"), shown);
      else if (!S_ISDIR (st.st_mode))
        g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                     _("“%s” is not a folder"), shown);
      else
        g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                     _("The destination folder “%s” is not writable"), shown);
      return FALSE;
    }

  {
    g_autofree char *base = g_path_get_basename (path);
    long name_max = name_max_for (dir);

    if ((long) strlen (base) > name_max)
      {
        g_autofree char *shown = g_filename_display_name (base);

        g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                     _("The destination name “%s” is longer than its file system allows "
                       "(%ld bytes)"), shown, name_max);
        return FALSE;
      }
  }

  if (g_lstat (path, &st) == 0)
    {
      g_autofree char *shown = g_filename_display_name (path);

      if (S_ISDIR (st.st_mode))
        g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                     _("The destination “%s” is a folder"), shown);
      else
        g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                     _("The destination “%s” already exists; it is never overwritten"), shown);
      return FALSE;
    }

  g_free (record->file_path);
  record->file_path = g_steal_pointer (&path);
  g_free (record->partial_path);
  record->partial_path = partial_path_for (record->identifier, record->file_path, NULL);

  return TRUE;
}

static void
set_partial_error (GError     **error,
                   int          saved_errno,
                   const char  *path)
{
  g_autofree char *shown = g_filename_display_name (path);

  g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
               _("Cannot use the partial file “%s”: %s"), shown, g_strerror (saved_errno));
}

/* Opens the partial file at @path for reading and writing without following a link, or creates
 * it there at mode 0600 when nothing has the name.  Returns the descriptor, or -1 with @errno
 * set; EEXIST and EPERM mean the name holds something that is not ours. */
static int
open_partial_fd (const char *path,
                 gboolean   *created)
{
  struct stat st;
  int fd;

  g_assert (path != NULL);
  g_assert (created != NULL);

  *created = FALSE;

  /* O_NONBLOCK: a FIFO planted at the name must not block the open. */
  fd = open (path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0 && errno == ENOENT)
    {
      fd = open (path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
      if (fd >= 0)
        {
          *created = TRUE;
          return fd;
        }
      /* Somebody made the name between the two calls: that is not ours either. */
      return -1;
    }

  if (fd < 0)
    {
      /* A symbolic link, a FIFO without a reader, or a file we may not write. */
      if (errno == ELOOP || errno == ENXIO || errno == EACCES || errno == EISDIR ||
          errno == EWOULDBLOCK)
        errno = EPERM;
      return -1;
    }

  if (fstat (fd, &st) != 0 || !partial_is_ours (&st))
    {
      close (fd);
      errno = EPERM;
      return -1;
    }

  /* Nobody else gets to read a download before it is published. */
  if (fcntl (fd, F_SETFL, 0) != 0 || ((st.st_mode & 077) != 0 && fchmod (fd, 0600) != 0))
    {
      int saved_errno = errno;

      close (fd);
      errno = saved_errno;
      return -1;
    }

  return fd;
}

/* Opens our partial file at *@partial_path.  A name that holds something other than our own
 * file (a link, a FIFO, another user's file, a file with a second name) is left alone, and a
 * fresh name (replacing *@partial_path) is tried instead.  Touches nothing but its arguments, so
 * it may run on a worker thread.  Returns the descriptor, or -1 with @error set. */
static int
open_partial_named (const char  *identifier,
                    const char  *file_path,
                    char       **partial_path,
                    gboolean    *created,
                    GError     **error)
{
  int fd = -1;
  guint tries;

  g_assert (partial_path != NULL && *partial_path != NULL);

  for (tries = 0; tries < 8 && fd < 0; tries++)
    {
      fd = open_partial_fd (*partial_path, created);
      if (fd < 0)
        {
          int saved_errno = errno;
          g_autofree char *salt = NULL;

          if (saved_errno != EPERM && saved_errno != EEXIST)
            {
              set_partial_error (error, saved_errno, *partial_path);
              return -1;
            }

          g_debug ("The partial file “%s” is not ours; starting over under a new name",
                   *partial_path);
          salt = g_uuid_string_random ();
          g_free (*partial_path);
          *partial_path = partial_path_for (identifier, file_path, salt);
        }
    }

  if (fd < 0)
    {
      g_autofree char *shown = g_filename_display_name (file_path);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                   _("No name for a partial file is free beside “%s”"), shown);
    }

  return fd;
}

/* Opens the partial file, cutting it back to the last checkpoint: bytes past it may never have
 * reached the disk, so they are not trusted.  Something at the name that is not ours is left
 * alone, and the download starts over under a fresh name. */
static gboolean
download_open_partial (Download  *self,
                       GError   **error)
{
  BgStoreRecord *record = bg_job_get_record (self->job);
  struct stat st;
  gboolean created = FALSE;
  int fd;

  fd = open_partial_named (record->identifier, record->file_path, &record->partial_path,
                           &created, error);
  if (fd < 0)
    return FALSE;

  if (fstat (fd, &st) != 0)
    st.st_size = -1;

  if (record->checkpoint > 0 && (created || st.st_size < record->checkpoint))
    {
      /* Less on disk than was recorded, or not the file that was recorded: start over. */
      record->checkpoint = 0;
      g_clear_pointer (&record->etag, g_free);
      g_clear_pointer (&record->last_modified, g_free);
      bg_job_note_restart (self->job);
    }

  /* A file made just now is empty already: no truncate, which would dirty its inode. */
  if (st.st_size != record->checkpoint && ftruncate (fd, record->checkpoint) != 0)
    {
      int saved_errno = errno;

      set_partial_error (error, saved_errno, record->partial_path);
      close (fd);
      return FALSE;
    }

  self->fd = fd;
  self->written = self->received = record->checkpoint;

  return TRUE;
}

static gboolean
download_truncate (Download  *self,
                   GError   **error)
{
  BgStoreRecord *record = bg_job_get_record (self->job);

  g_assert (!self->writing && !self->flushing);

  if (ftruncate (self->fd, 0) != 0)
    {
      int saved_errno = errno;

      set_partial_error (error, saved_errno, record->partial_path);
      return FALSE;
    }

  record->checkpoint = 0;
  self->written = self->received = 0;
  self->fill[0] = self->fill[1] = 0;
  g_clear_pointer (&record->etag, g_free);
  g_clear_pointer (&record->last_modified, g_free);
  bg_job_note_restart (self->job);
  bg_job_save_progress (self->job);

  return TRUE;
}

static void
add_range_headers (Download      *self,
                   SoupMessage   *msg,
                   BgStoreRecord *record)
{
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);

  soup_message_headers_remove (headers, "Range");
  soup_message_headers_remove (headers, "If-Range");
  self->ranged = FALSE;

  if (self->written > 0)
    {
      soup_message_headers_set_range (headers, self->written, -1);
      soup_message_headers_replace (headers, "If-Range",
                                    record->etag ? record->etag : record->last_modified);
      self->ranged = TRUE;
    }
}

static SoupMessage *
new_message (Download      *self,
             GUri          *uri,
             SoupMessageHeaders *copy_from,
             gboolean       same_origin)
{
  SoupMessage *msg = soup_message_new_from_uri (SOUP_METHOD_GET, uri);
  SoupMessageHeaders *headers = soup_message_get_request_headers (msg);

  if (copy_from != NULL)
    bg_http_copy_request_headers (copy_from, headers, same_origin);

  /* We store the bytes as they are sent: offsets must mean the same thing on every attempt. */
  soup_message_disable_feature (msg, SOUP_TYPE_CONTENT_DECODER);
  soup_message_headers_replace (headers, "Accept-Encoding", "identity");
  soup_message_add_flags (msg, SOUP_MESSAGE_NO_REDIRECT);

  return msg;
}

static SoupMessage *
download_build (BgJob   *job,
                GError **error)
{
  BgStoreRecord *record = bg_job_get_record (job);
  g_autoptr(Download) self = g_new0 (Download, 1);
  g_autoptr(GUri) uri = NULL;
  g_autoptr(SoupMessageHeaders) stored = NULL;
  g_autoptr(SoupMessage) msg = NULL;

  g_ref_count_init (&self->ref_count);
  self->job = bg_job_ref (job);
  self->fd = -1;
  self->total = record->total;
  self->cancellable = g_object_ref (bg_job_get_cancellable (job));
  self->task_throttle = bg_throttle_ref (bg_job_get_throttle (job));
  self->queue_throttle = bg_throttle_ref (bg_engine_get_throttle (bg_job_get_engine (job)));
  self->last_checkpoint_time = self->last_write_time = g_get_monotonic_time ();

  uri = g_uri_parse (bg_job_get_request_uri (job), SOUP_HTTP_URI_FLAGS, error);
  if (uri == NULL || !bg_http_uri_is_acceptable (uri, error))
    return NULL;

  stored = soup_message_headers_new (SOUP_MESSAGE_HEADERS_REQUEST);
  if (!bg_http_decode_headers (bg_job_get_request_headers (job), stored, error))
    return NULL;

  /* A download from byte 0 makes its partial file on a worker thread, before the request is
   * sent (see download_start()): creating a file can cost the file system far more than the
   * rest of an attempt, and the main loop should not wait for it. */
  if (record->checkpoint > 0 && !download_open_partial (self, error))
    return NULL;

  /* Resuming needs a strong validator, so the bytes we have and the bytes we get are
   * known to come from the same version of the file. */
  if (self->written > 0 && record->etag == NULL && record->last_modified == NULL)
    {
      if (!download_truncate (self, error))
        return NULL;
    }

  msg = new_message (self, uri, stored, TRUE);
  add_range_headers (self, msg, record);

  bg_job_progress (job, self->written, self->total);
  bg_job_set_attempt_data (job, g_steal_pointer (&self), (GDestroyNotify) download_unref);

  return g_steal_pointer (&msg);
}

/* Removes our partial file when the attempt left it where no later attempt can find it (its
 * folder was renamed or moved, or the name now holds something else): nobody would ever come
 * back for it. */
static void
download_drop_orphan (Download *self)
{
  BgStoreRecord *record = bg_job_get_record (self->job);
  struct stat ours, there;
  g_autofree char *dir = NULL;
  g_autofree char *name = NULL;
  int dir_fd;

  if (self->fd < 0 || fstat (self->fd, &ours) != 0 || ours.st_nlink == 0)
    return;
  if (lstat (record->partial_path, &there) == 0 &&
      there.st_dev == ours.st_dev && there.st_ino == ours.st_ino)
    return;

  /* /proc/self/fd names the folder the file is really in now. */
  {
    g_autofree char *link = g_strdup_printf ("/proc/self/fd/%d", self->fd);
    g_autofree char *real = g_file_read_link (link, NULL);

    if (real == NULL || !g_path_is_absolute (real))
      return;
    dir = g_path_get_dirname (real);
    name = g_path_get_basename (real);
  }

  dir_fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0)
    return;
  if (fstatat (dir_fd, name, &there, AT_SYMLINK_NOFOLLOW) == 0 &&
      there.st_dev == ours.st_dev && there.st_ino == ours.st_ino)
    unlinkat (dir_fd, name, 0);
  close (dir_fd);
}

/* Tells the engine the attempt is over, once nothing of it is still in flight: a write that
 * landed after the next attempt started would put old bytes into the new file. */
static void
download_end_when_idle (Download *self)
{
  g_autoptr(Download) hold = download_ref (self);

  if (!self->done || self->ended || self->opening || self->writing || self->flushing ||
      self->publishing)
    return;
  self->ended = TRUE;

  if (bg_response_get_kind (self->outcome) != BG_RESPONSE_SUCCESS)
    download_drop_orphan (self);

  bg_job_attempt_finished (self->job, self->outcome);
}

/* Ends the attempt with @response; it reaches the engine once every write has landed. */
static void
download_finish (Download   *self,
                 BgResponse *response)
{
  g_autoptr(Download) hold = download_ref (self);

  g_assert (BG_IS_RESPONSE (response));

  if (self->done)
    return;
  self->done = TRUE;
  self->outcome = g_object_ref (response);
  g_clear_pointer (&self->watch, bg_connection_watch_free);
  if (self->throttle_source != NULL)
    {
      /* The wait held a reference; the read it stood for will not happen. */
      g_source_destroy (self->throttle_source);
      g_clear_pointer (&self->throttle_source, g_source_unref);
      self->reading = FALSE;
    }

  if (self->in != NULL)
    g_input_stream_close_async (self->in, G_PRIORITY_DEFAULT, NULL, NULL, NULL);

  download_end_when_idle (self);
}

static void
download_fail (Download     *self,
               const GError *error)
{
  g_autoptr(BgResponse) response = NULL;

  g_assert (error != NULL);

  /* Cancelled by the connection watch: say why. */
  if (self->lost != NULL && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    error = self->lost;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    response = bg_job_make_response (self->job, BG_RESPONSE_FAILED, NULL, NULL, error);
  else
    response = bg_job_make_response (self->job, bg_http_classify_error (error),
                                     self->msg, NULL, error);
  download_finish (self, response);
}

static void
download_fail_literal (Download   *self,
                       GQuark      domain,
                       int         code,
                       const char *message)
{
  g_autoptr(GError) error = g_error_new_literal (domain, code, message);
  g_autoptr(BgResponse) response = NULL;

  response = bg_job_make_response (self->job, BG_RESPONSE_FAILED, self->msg, NULL, error);
  download_finish (self, response);
}

/* --- Folder queues ---------------------------------------------------------------------------- */

/* Creating and renaming names in one folder are serialized by the kernel's lock on the folder:
 * eight workers creating partial files in one folder at once wait on each other, and on ext4
 * they spin while they wait, which doubled the CPU time of 2,000 small downloads (bench case 4).
 * Those steps therefore run in order, one folder at a time, each folder's on one worker thread
 * that takes the next step as soon as one is done (a lock, with its sleeping waiters, cost 8%
 * more).  Other folders go on beside it, so a folder that hangs (a network mount gone away)
 * holds up only the transfers into it.  Writes and fsyncs, which do run in parallel, stay on
 * GLib's pool. */

typedef struct
{
  GTask           *task;
  GTaskThreadFunc  func;
} FolderWork;

typedef struct
{
  char   *folder;
  GQueue  work;     /* FolderWork, in the order it came */
} FolderQueue;

static GMutex folder_queues_mutex;
static GHashTable *folder_queues;   /* folder path → FolderQueue with work, or being drained */
static GThreadPool *folder_pool;

static void
folder_queue_drain (gpointer data,
                    gpointer user_data)
{
  FolderQueue *queue = data;

  for (;;)
    {
      FolderWork *work;

      g_mutex_lock (&folder_queues_mutex);
      work = g_queue_pop_head (&queue->work);
      if (work == NULL)
        {
          /* Done: the next step for this folder starts a new drain. */
          g_hash_table_remove (folder_queues, queue->folder);
          g_mutex_unlock (&folder_queues_mutex);
          g_free (queue->folder);
          g_free (queue);
          return;
        }
      g_mutex_unlock (&folder_queues_mutex);

      work->func (work->task,
                  g_task_get_source_object (work->task),
                  g_task_get_task_data (work->task),
                  g_task_get_cancellable (work->task));
      g_object_unref (work->task);
      g_free (work);
    }
}

/* Runs @func for @task on a worker, after every step queued before it for the folder of
 * @path.  Like g_task_run_in_thread(), @func returns the task's result. */
static void
run_in_folder (GTask           *task,
               GTaskThreadFunc  func,
               const char      *path)
{
  g_autofree char *folder = g_path_get_dirname (path);
  FolderWork *work = g_new0 (FolderWork, 1);
  FolderQueue *queue;
  gboolean start = FALSE;

  work->task = g_object_ref (task);
  work->func = func;

  g_mutex_lock (&folder_queues_mutex);
  if (folder_queues == NULL)
    {
      folder_queues = g_hash_table_new (g_str_hash, g_str_equal);
      folder_pool = g_thread_pool_new (folder_queue_drain, NULL, -1, FALSE, NULL);
    }
  queue = g_hash_table_lookup (folder_queues, folder);
  if (queue == NULL)
    {
      queue = g_new0 (FolderQueue, 1);
      queue->folder = g_steal_pointer (&folder);
      g_queue_init (&queue->work);
      g_hash_table_insert (folder_queues, queue->folder, queue);
      start = TRUE;
    }
  g_queue_push_tail (&queue->work, work);
  g_mutex_unlock (&folder_queues_mutex);

  if (start)
    g_thread_pool_push (folder_pool, queue, NULL);
}

/* --- Checkpoints ------------------------------------------------------------------------- */

typedef struct
{
  int    fd;
  gint64 offset;
  gint64 drop_from;  /* the part of [drop_from, offset) that may leave the page cache */
} FlushData;

static void
fdatasync_thread (GTask        *task,
                  gpointer      source_object,
                  gpointer      task_data,
                  GCancellable *cancellable)
{
  FlushData *data = task_data;

  if (fdatasync (data->fd) != 0)
    {
      int saved_errno = errno;

      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                               _("Cannot flush the partial file: %s"), g_strerror (saved_errno));
      return;
    }

#ifdef POSIX_FADV_DONTNEED
  /* A background download should not push the user's working set out of the page cache: the
   * bytes just flushed are clean now, so they leave it, and the pages come back for the next
   * writes. A failure only means the pages stay. */
  if (data->offset > data->drop_from)
    (void) posix_fadvise (data->fd, data->drop_from, data->offset - data->drop_from,
                          POSIX_FADV_DONTNEED);
#endif

  g_task_return_boolean (task, TRUE);
}

static void maybe_publish (Download *self);
static void pump (Download *self);

static void
checkpoint_done_cb (GObject      *object,
                    GAsyncResult *result,
                    gpointer      user_data)
{
  g_autoptr(Download) self = user_data;
  g_autoptr(GError) error = NULL;
  FlushData *data = g_task_get_task_data (G_TASK (result));

  self->flushing = FALSE;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (!self->done)
        download_fail (self, error);
      download_end_when_idle (self);
      return;
    }

  if (self->done)
    download_end_when_idle (self);
  else
    {
      BgStoreRecord *record = bg_job_get_record (self->job);

      /* The bytes up to data->offset are on disk: only now may the record say so. */
      record->checkpoint = data->offset;
      record->total = self->total;
      bg_job_save_progress (self->job);
      pump (self);
    }
}

/* Flushes what has been written so far on a worker thread, so the stream never waits for the
 * disk, then records the offset. */
static void
download_checkpoint (Download *self)
{
  g_autoptr(GTask) task = NULL;
  FlushData *data;

  g_assert (!self->flushing);

  self->flushing = TRUE;
  self->last_checkpoint_time = g_get_monotonic_time ();

  data = g_new0 (FlushData, 1);
  data->fd = self->fd;
  data->offset = self->written;
  data->drop_from = bg_job_get_record (self->job)->checkpoint;

  task = g_task_new (NULL, NULL, checkpoint_done_cb, download_ref (self));
  g_task_set_source_tag (task, download_checkpoint);
  g_task_set_task_data (task, data, g_free);
  g_task_run_in_thread (task, fdatasync_thread);
}

/* --- Streaming ----------------------------------------------------------------------------- */

typedef struct
{
  int           fd;
  const guint8 *data;
  gsize         len;
  gint64        offset;
} WriteData;

/* Writes @len bytes at @offset, so that where they land never depends on a shared file
 * position.  Returns 0, or the errno of the write that failed. */
static int
pwrite_all (int           fd,
            const guint8 *data,
            gsize         len,
            gint64        offset)
{
  gsize done = 0;

  while (done < len)
    {
      gssize n = pwrite (fd, data + done, len - done, offset + done);

      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return errno;
      done += n;
    }

  return 0;
}

/* Writes body bytes into the partial file: on a worker, for a full buffer or for the last
 * bytes of the body in the publish's first step. */
static gboolean
write_partial (int            fd,
               const guint8  *data,
               gsize          len,
               gint64         offset,
               GError       **error)
{
  int saved_errno;

  if (bg_download_test_disk_hook != NULL)
    bg_download_test_disk_hook ("write", offset, len);

  saved_errno = pwrite_all (fd, data, len, offset);
  if (saved_errno != 0)
    {
      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Cannot write the partial file: %s"), g_strerror (saved_errno));
      return FALSE;
    }

  return TRUE;
}

static void
write_thread (GTask        *task,
              gpointer      source_object,
              gpointer      task_data,
              GCancellable *cancellable)
{
  WriteData *data = task_data;
  GError *error = NULL;

  if (write_partial (data->fd, data->data, data->len, data->offset, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
write_done_cb (GObject      *object,
               GAsyncResult *result,
               gpointer      user_data)
{
  g_autoptr(Download) self = user_data;
  g_autoptr(GError) error = NULL;
  WriteData *data = g_task_get_task_data (G_TASK (result));
  guint idx = 1 - self->cur;

  self->writing = FALSE;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (!self->done)
        download_fail (self, error);
      download_end_when_idle (self);
      return;
    }

  if (self->done)
    {
      download_end_when_idle (self);
      return;
    }

  self->written += data->len;
  self->fill[idx] = 0;
  self->last_write_time = g_get_monotonic_time ();

  pump (self);
}

/* The write is not cancellable: once started it lands, and the attempt waits for it. */
static void
start_write (Download *self)
{
  g_autoptr(GTask) task = NULL;
  guint idx = self->cur;
  WriteData *data;

  g_assert (!self->writing);
  g_assert (self->fill[1 - idx] == 0);

  /* Swap: the full buffer goes to disk, reading carries on into the other one. */
  self->cur = 1 - idx;
  self->writing = TRUE;

  data = g_new0 (WriteData, 1);
  data->fd = self->fd;
  data->data = self->buf[idx];
  data->len = self->fill[idx];
  data->offset = self->written;

  task = g_task_new (NULL, NULL, write_done_cb, download_ref (self));
  g_task_set_source_tag (task, start_write);
  g_task_set_task_data (task, data, g_free);
  g_task_run_in_thread (task, write_thread);
}

/* Decides what to do next: write a buffer, take a checkpoint, read more, or publish. */
static void
pump (Download *self)
{
  gint64 now;

  if (self->done)
    return;

  now = g_get_monotonic_time ();

  /* At the end of the body the last buffer is written by the publish's first step, on the
   * same trip to a worker as the file's fsync. */
  if (!self->writing && self->fill[self->cur] > 0 && !self->eof &&
      (self->fill[self->cur] == BUFFER_SIZE ||
       now - self->last_write_time >= CHECKPOINT_INTERVAL_USEC))
    start_write (self);

  if (!self->flushing && self->written > bg_job_get_record (self->job)->checkpoint &&
      !self->eof &&
      (self->written - bg_job_get_record (self->job)->checkpoint >= CHECKPOINT_BYTES ||
       now - self->last_checkpoint_time >= CHECKPOINT_INTERVAL_USEC))
    download_checkpoint (self);

  if (!self->eof && !self->reading && self->fill[self->cur] < BUFFER_SIZE)
    download_read (self);

  if (self->eof && !self->writing && !self->flushing)
    maybe_publish (self);
}

static void
read_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(Download) self = user_data;
  g_autoptr(GError) error = NULL;
  gssize n;

  self->reading = FALSE;

  n = g_input_stream_read_finish (G_INPUT_STREAM (object), result, &error);
  if ((gsize) MAX (n, 0) < self->granted)
    bg_throttle_refund (self->task_throttle, self->queue_throttle,
                        self->granted - (gsize) MAX (n, 0));
  self->granted = 0;
  if (n < 0)
    {
      if (!self->done)
        download_fail (self, error);
      return;
    }

  if (self->done)
    return;

  if (n == 0)
    self->eof = TRUE;

  self->fill[self->cur] += n;
  self->received += n;
  bg_job_progress (self->job, self->received, self->total);

  pump (self);
}

/* The bandwidth caps allow a read again, or the attempt was cancelled while it waited (the
 * read then fails at once with the cancellation). */
static gboolean
throttle_ready_cb (GCancellable *cancellable,
                   gpointer      user_data)
{
  Download *self = user_data;

  g_clear_pointer (&self->throttle_source, g_source_unref);
  self->reading = FALSE;
  download_read (self);

  return G_SOURCE_REMOVE;
}

static void
download_read (Download *self)
{
  guint idx = self->cur;
  gsize wanted = BUFFER_SIZE - self->fill[idx];
  gsize left = G_MAXSIZE;
  gint64 delay = 0;

  g_assert (!self->reading);
  g_assert (self->throttle_source == NULL);

  if (self->buf[idx] == NULL)
    self->buf[idx] = g_malloc (BUFFER_SIZE);

  self->reading = TRUE;

  /* Under a bandwidth cap the read asks for no more than the caps allow, and when they allow
   * too little it waits (a tick at most) rather than reading: the server is held back by the
   * connection's flow control meanwhile. */
  if (!g_cancellable_is_cancelled (self->cancellable))
    {
      /* Near the end the caps wait for no more than the rest of the body (once every byte is
       * here, the read that sees its end needs none). */
      if (self->total >= 0)
        left = (gsize) MAX (self->total - self->received, 1);
      self->granted = bg_throttle_take (self->task_throttle, self->queue_throttle,
                                        wanted, left, &delay);
      if (self->granted == 0)
        {
          g_autoptr(GMainContext) context = g_main_context_ref_thread_default ();

          self->throttle_source = bg_throttle_source_new (delay, self->cancellable);
          g_source_set_callback (self->throttle_source, G_SOURCE_FUNC (throttle_ready_cb),
                                 download_ref (self), (GDestroyNotify) download_unref);
          g_source_attach (self->throttle_source, context);
          return;
        }
      wanted = self->granted;
    }

  g_input_stream_read_async (self->in,
                             self->buf[idx] + self->fill[idx],
                             wanted,
                             G_PRIORITY_DEFAULT, self->cancellable,
                             read_done_cb, download_ref (self));
}

/* --- Publishing ---------------------------------------------------------------------------- */

/* Returns 0, or the errno of the open or fsync that failed (close() cannot change it). */
static int
fsync_dir (const char *dir)
{
  int fd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int saved_errno = 0;

  if (fd < 0)
    return errno;
  if (fsync (fd) != 0)
    saved_errno = errno;
  close (fd);

  return saved_errno;
}

/* One folder fsync covers every rename into that folder done before it started.  So the
 * publishing threads share them: each rename takes a number, and waits until an fsync that
 * began after its rename has succeeded, running one itself when none is under way.  Renames
 * that finish while an fsync runs are all covered by the next one. */
typedef struct
{
  guint64  renamed;   /* renames done, numbered from 1 */
  guint64  synced;    /* every rename up to this one is covered by a finished fsync */
  gboolean syncing;
  guint    users;
} FolderSync;

static GMutex      folder_sync_mutex;
static GCond       folder_sync_cond;
static GHashTable *folder_syncs;  /* folder path → FolderSync */

/* Makes the rename into @path, just done, durable: 0, or the errno of the failed fsync. */
static int
sync_folder_after_rename (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  g_autoptr(GMutexLocker) locker = g_mutex_locker_new (&folder_sync_mutex);
  FolderSync *folder;
  guint64 mine;
  int saved_errno = 0;

  if (folder_syncs == NULL)
    folder_syncs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);

  folder = g_hash_table_lookup (folder_syncs, dir);
  if (folder == NULL)
    {
      folder = g_new0 (FolderSync, 1);
      g_hash_table_insert (folder_syncs, g_strdup (dir), folder);
    }
  folder->users++;
  mine = ++folder->renamed;

  while (folder->synced < mine && saved_errno == 0)
    {
      guint64 covered;

      if (folder->syncing)
        {
          g_cond_wait (&folder_sync_cond, &folder_sync_mutex);
          continue;
        }

      folder->syncing = TRUE;
      covered = folder->renamed;
      g_mutex_unlock (&folder_sync_mutex);
      if (bg_download_test_disk_hook != NULL)
        bg_download_test_disk_hook ("sync-folder", 0, 0);
      saved_errno = fsync_dir (dir);
      g_mutex_lock (&folder_sync_mutex);
      folder->syncing = FALSE;
      if (saved_errno == 0)
        folder->synced = MAX (folder->synced, covered);
      g_cond_broadcast (&folder_sync_cond);
    }

  if (--folder->users == 0)
    g_hash_table_remove (folder_syncs, dir);

  return saved_errno;
}

/* The process's umask, read without changing it: umask(2) can only be read by setting it, which
 * would race with every other thread that creates a file.  Read for every file, so that a change
 * counts from the next one, as it does for a file made with open(2). */
static mode_t
current_umask (void)
{
  g_autofree char *status = NULL;
  const char *line;

  if (g_file_get_contents ("/proc/self/status", &status, NULL, NULL) &&
      (line = strstr (status, "\nUmask:")) != NULL)
    return (mode_t) strtoul (line + strlen ("\nUmask:"), NULL, 8) & 0777;

  return 022;
}

typedef struct
{
  int           fd;
  gint64        size;
  const guint8 *tail;       /* step 0: the body's last bytes, still to write before the fsync */
  gsize         tail_len;
  char         *partial;
  char         *destination;
  char         *expected_sha256;
  GCancellable *cancellable;
  int           step;
} PublishData;

static void
publish_data_free (PublishData *data)
{
  g_clear_object (&data->cancellable);
  g_free (data->expected_sha256);
  g_free (data->partial);
  g_free (data->destination);
  g_free (data);
}

/* Reads the whole partial file back and compares its SHA-256 with the one the app expects.
 * Only a cancelled task stops it: a long check is not a stall. */
static gboolean
verify_sha256 (PublishData  *data,
               GError      **error)
{
  g_autoptr(GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree guint8 *buf = g_malloc (BUFFER_SIZE);
  gint64 offset = 0;
  gssize n;

  while ((n = pread (data->fd, buf, BUFFER_SIZE, offset)) > 0)
    {
      if (g_cancellable_set_error_if_cancelled (data->cancellable, error))
        return FALSE;
      g_checksum_update (checksum, buf, n);
      offset += n;
    }

  if (n < 0)
    {
      int saved_errno = errno;
      g_autofree char *shown = g_filename_display_name (data->partial);

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Cannot read the partial file “%s” back: %s"), shown,
                   g_strerror (saved_errno));
      return FALSE;
    }

  if (g_ascii_strcasecmp (g_checksum_get_string (checksum), data->expected_sha256) != 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INTEGRITY,
                   _("The download's SHA-256 is %s, but %s was expected; it was not published"),
                   g_checksum_get_string (checksum), data->expected_sha256);
      return FALSE;
    }

  return TRUE;
}

/* Step 0: write the body's last bytes, cut the file to its length, give it the mode the umask
 * gives a new file (as curl -o does), fsync it, and check its SHA-256 when the app gave one. */
static gboolean
publish_flush (PublishData  *data,
               GError      **error)
{
  struct stat st;

  if (data->tail_len > 0 &&
      !write_partial (data->fd, data->tail, data->tail_len, data->size - data->tail_len, error))
    return FALSE;

  /* Most files have their length already: no truncate, which would dirty the inode again. */
  if (((fstat (data->fd, &st) != 0 || st.st_size != data->size) &&
       ftruncate (data->fd, data->size) != 0) ||
      fchmod (data->fd, 0666 & ~current_umask ()) != 0 ||
      fsync (data->fd) != 0)
    {
      int saved_errno = errno;
      g_autofree char *shown = g_filename_display_name (data->partial);

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   _("Cannot flush “%s”: %s"), shown, g_strerror (saved_errno));
      return FALSE;
    }

  if (data->expected_sha256 != NULL && !verify_sha256 (data, error))
    return FALSE;

  return TRUE;
}

/* Step 1: rename the file into place without replacing anything; the folder's fsync follows.
 * The name must still hold the very file that was written: something swapped in for it is
 * never published. */
static gboolean
publish_rename (PublishData  *data,
                GError      **error)
{
  struct stat ours, there;
  int saved_errno = 0;

  if (fstat (data->fd, &ours) != 0 || lstat (data->partial, &there) != 0 ||
      ours.st_dev != there.st_dev || ours.st_ino != there.st_ino)
    {
      g_autofree char *shown = g_filename_display_name (data->partial);

      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("The partial file “%s” was moved or replaced; the download was not "
                     "published"), shown);
      return FALSE;
    }

  if (renameat2 (AT_FDCWD, data->partial, AT_FDCWD, data->destination, RENAME_NOREPLACE) != 0)
    {
      saved_errno = errno;

      if (saved_errno == EINVAL || saved_errno == ENOSYS)
        {
          /* No RENAME_NOREPLACE on this file system: link() refuses to replace as well. */
          if (link (data->partial, data->destination) == 0)
            {
              unlink (data->partial);
              saved_errno = 0;
            }
          else
            saved_errno = errno;
        }
    }

  if (saved_errno != 0)
    {
      g_autofree char *shown = g_filename_display_name (data->destination);

      if (saved_errno == EEXIST)
        g_set_error (error, G_IO_ERROR, G_IO_ERROR_EXISTS,
                     _("The destination “%s” appeared during the download; it was not "
                       "overwritten"), shown);
      else
        g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                     _("Cannot move the download to “%s”: %s"), shown,
                     g_strerror (saved_errno));
      return FALSE;
    }

  return TRUE;
}

/* Step 1, after the rename: fsync the folder.  This runs off the folder's queue, so that the
 * next rename or partial file there does not wait for the disk, and so that the renames done
 * meanwhile share one fsync. */
static void
publish_sync_folder (gpointer task_data,
                     gpointer user_data)
{
  GTask *task = task_data;
  PublishData *data = g_task_get_task_data (task);
  int saved_errno;

  saved_errno = sync_folder_after_rename (data->destination);
  if (saved_errno != 0)
    {
      g_autofree char *shown = g_filename_display_name (data->destination);

      g_task_return_new_error (task, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                               _("Cannot flush the folder of “%s”: %s"), shown,
                               g_strerror (saved_errno));
    }
  else
    g_task_return_boolean (task, TRUE);
  g_object_unref (task);
}

static GThreadPool *
folder_sync_pool (void)
{
  static GThreadPool *pool;

  if (g_once_init_enter (&pool))
    g_once_init_leave (&pool, g_thread_pool_new (publish_sync_folder, NULL, -1, FALSE, NULL));

  return pool;
}

static void
publish_thread (GTask        *task,
                gpointer      source_object,
                gpointer      task_data,
                GCancellable *cancellable)
{
  PublishData *data = task_data;
  g_autoptr(GError) error = NULL;
  gboolean ok;

  if (bg_download_test_disk_hook != NULL)
    bg_download_test_disk_hook (data->step == 0 ? "flush" : "rename", 0, data->size);

  ok = data->step == 0 ? publish_flush (data, &error) : publish_rename (data, &error);
  if (!ok)
    g_task_return_error (task, g_steal_pointer (&error));
  else if (data->step == 1)
    g_thread_pool_push (folder_sync_pool (), g_object_ref (task), NULL);
  else
    g_task_return_boolean (task, TRUE);
}

static void publish_step (Download *self, int step);

/* The record of step 0 is committed: the rename may go ahead. */
static void
publish_committed_cb (gpointer data)
{
  Download *self = data;

  self->publishing = FALSE;

  if (self->done)
    download_end_when_idle (self);
  else
    publish_step (self, 1);
}

static void
publish_done_cb (GObject      *object,
                 GAsyncResult *result,
                 gpointer      user_data)
{
  g_autoptr(Download) self = user_data;
  g_autoptr(GError) error = NULL;
  PublishData *data = g_task_get_task_data (G_TASK (result));

  self->publishing = FALSE;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (!self->done)
        {
          g_autoptr(BgResponse) response = NULL;

          response = bg_job_make_response (self->job, BG_RESPONSE_FAILED, self->msg, NULL,
                                           error);
          download_finish (self, response);
        }
      download_end_when_idle (self);
      return;
    }

  if (data->step == 0 && !self->done)
    {
      BgStoreRecord *record = bg_job_get_record (self->job);

      /* The last bytes are on disk with the rest. */
      self->written = data->size;
      self->fill[self->cur] = 0;

      /* Recorded, and committed, before the rename: a run that finds the partial file gone and
       * a destination of exactly this size knows the rename happened.  The write joins the
       * store's group commit with the other transfers' of this main-loop turn. */
      record->checkpoint = self->written;
      record->total = self->written;
      self->publishing = TRUE;
      bg_job_save_progress_then (self->job, publish_committed_cb, download_ref (self),
                                 (GDestroyNotify) download_unref);
    }
  else if (data->step == 1)
    {
      g_autoptr(BgResponse) response = NULL;

      /* The file is in place: that is the outcome, whatever happened meanwhile. */
      self->total = self->written;
      bg_job_progress (self->job, self->written, self->total);
      response = bg_job_make_response (self->job, BG_RESPONSE_SUCCESS, self->msg, NULL, NULL);
      if (self->done)
        g_set_object (&self->outcome, response);
      else
        download_finish (self, response);
      download_end_when_idle (self);
    }
  else
    {
      download_end_when_idle (self);
    }
}

/* Runs on a worker thread, without the attempt's cancellable: a rename that has begun is seen
 * through, and only a cancelled task interrupts the SHA-256 check. */
static void
publish_step (Download *self,
              int       step)
{
  g_autoptr(GTask) task = NULL;
  BgStoreRecord *record = bg_job_get_record (self->job);
  PublishData *data = g_new0 (PublishData, 1);

  g_assert (!self->publishing);

  data->fd = self->fd;
  data->size = self->written;
  if (step == 0)
    {
      data->tail = self->buf[self->cur];
      data->tail_len = self->fill[self->cur];
      data->size += data->tail_len;
    }
  data->partial = g_strdup (record->partial_path);
  data->destination = g_strdup (record->file_path);
  data->expected_sha256 = g_strdup (record->expected_sha256);
  data->cancellable = g_object_ref (self->cancellable);
  data->step = step;

  self->publishing = TRUE;
  task = g_task_new (NULL, NULL, publish_done_cb, download_ref (self));
  g_task_set_source_tag (task, publish_step);
  g_task_set_task_data (task, data, (GDestroyNotify) publish_data_free);
  if (step == 0)
    g_task_run_in_thread (task, publish_thread);
  else
    run_in_folder (task, publish_thread, record->file_path);
}

static void
maybe_publish (Download *self)
{
  gint64 received = self->written + (gint64) self->fill[self->cur];

  g_assert (self->eof);

  if (self->total >= 0 && received != self->total)
    {
      g_autoptr(GError) error = NULL;
      g_autoptr(BgResponse) response = NULL;

      error = g_error_new (G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT,
                           _("The server sent %lld bytes of %lld"),
                           (long long) received, (long long) self->total);
      response = bg_job_make_response (self->job, BG_RESPONSE_RETRY, self->msg, NULL, error);
      download_finish (self, response);
      return;
    }

  /* Every byte is here: what follows is disk work, and the stall watchdog is for the network. */
  bg_job_set_watched (self->job, FALSE);
  publish_step (self, 0);
}

/* --- Answers ------------------------------------------------------------------------------- */

/* A 3xx.  Returns FALSE when it has no Location: the answer is to be reported as it is. */
static gboolean
follow_redirect (Download *self)
{
  SoupMessageHeaders *response_headers = soup_message_get_response_headers (self->msg);
  g_autoptr(GUri) next = NULL;
  g_autoptr(SoupMessage) msg = NULL;
  g_autoptr(GError) error = NULL;
  gboolean same_origin = FALSE;

  if (soup_message_headers_get_one (response_headers, "Location") == NULL)
    return FALSE;

  next = bg_http_redirect_target (self->msg, &self->redirects, &same_origin, &error);
  if (next == NULL)
    {
      download_fail_literal (self, error->domain, error->code, error->message);
      return TRUE;
    }

  msg = new_message (self, next, soup_message_get_request_headers (self->msg), same_origin);
  add_range_headers (self, msg, bg_job_get_record (self->job));

  if (self->in != NULL)
    {
      g_input_stream_close_async (self->in, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
      g_clear_object (&self->in);
    }
  g_set_object (&self->msg, msg);
  download_send (self);

  return TRUE;
}

static void
remember_validators (Download *self)
{
  BgStoreRecord *record = bg_job_get_record (self->job);
  SoupMessageHeaders *headers = soup_message_get_response_headers (self->msg);
  const char *etag = soup_message_headers_get_one (headers, "ETag");
  const char *last_modified = soup_message_headers_get_one (headers, "Last-Modified");
  const char *date = soup_message_headers_get_one (headers, "Date");

  g_clear_pointer (&record->etag, g_free);
  g_clear_pointer (&record->last_modified, g_free);

  if (bg_http_is_strong_etag (etag))
    record->etag = g_strdup (etag);
  else if (bg_http_is_strong_last_modified (last_modified, date))
    record->last_modified = g_strdup (last_modified);
}

/* A 206 continues our bytes only if it names the same strong validator and the same complete
 * length as the answer they came from. */
static gboolean
partial_answer_matches (Download           *self,
                        SoupMessageHeaders *headers,
                        gint64              total)
{
  BgStoreRecord *record = bg_job_get_record (self->job);

  g_assert (headers != NULL);

  if (record->etag != NULL &&
      g_strcmp0 (soup_message_headers_get_one (headers, "ETag"), record->etag) != 0)
    return FALSE;

  if (record->etag == NULL && record->last_modified != NULL &&
      g_strcmp0 (soup_message_headers_get_one (headers, "Last-Modified"),
                 record->last_modified) != 0)
    return FALSE;

  if (record->total >= 0 && total != record->total)
    return FALSE;

  return TRUE;
}

/* Throws the partial file away and asks for the whole file again, once per attempt.  Returns
 * FALSE when the attempt already started over, so the caller can report the server instead. */
static gboolean
download_start_over (Download *self)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SoupMessage) msg = NULL;

  g_assert (G_IS_INPUT_STREAM (self->in));

  if (self->restarted)
    return FALSE;
  self->restarted = TRUE;

  if (!download_truncate (self, &error))
    {
      download_fail (self, error);
      return TRUE;
    }

  /* A new message: the old one stays in the session's queue until its body is closed. */
  msg = new_message (self, soup_message_get_uri (self->msg),
                     soup_message_get_request_headers (self->msg), TRUE);
  add_range_headers (self, msg, bg_job_get_record (self->job));
  g_input_stream_close_async (self->in, G_PRIORITY_DEFAULT, NULL, NULL, NULL);
  g_clear_object (&self->in);
  g_set_object (&self->msg, msg);
  download_send (self);

  return TRUE;
}

/* libsoup stopped reading the HTTP/2 connection under the body, and the body is empty: a read
 * would wait forever.  End the attempt now, as if the read had failed. */
static void
connection_lost_cb (const GError *error,
                    gpointer      user_data)
{
  Download *self = user_data;

  g_clear_pointer (&self->watch, bg_connection_watch_free);
  if (self->done)
    return;

  if (self->reading)
    {
      /* The pending read must end before the stream can close; download_fail() says why. */
      self->lost = g_error_copy (error);
      g_cancellable_cancel (self->cancellable);
      return;
    }

  download_fail (self, error);
}

static void
download_watch (Download *self)
{
  g_clear_pointer (&self->watch, bg_connection_watch_free);
  self->watch = bg_connection_watch_new (bg_engine_get_session (bg_job_get_engine (self->job)),
                                         self->msg, self->in, connection_lost_cb, self);
}

/* A 416 to a ranged request.  Returns FALSE when the answer is to be reported as it is. */
static gboolean
receive_range_not_satisfiable (Download           *self,
                               SoupMessageHeaders *headers)
{
  gint64 start, end, total;

  g_assert (self != NULL);
  g_assert (headers != NULL);
  g_assert (self->ranged);

  if (bg_http_parse_content_range (soup_message_headers_get_one (headers, "Content-Range"),
                                   &start, &end, &total) &&
      start < 0 && total == self->written)
    {
      /* We already have every byte. */
      self->total = total;
      self->eof = TRUE;
      pump (self);
      return TRUE;
    }

  /* The file on the server is shorter than what we have: it changed. */
  return download_start_over (self);
}

/* A 206: the rest of our bytes, if it continues them. */
static void
receive_partial_content (Download           *self,
                         SoupMessageHeaders *headers)
{
  gint64 start, end, total;

  g_assert (self != NULL);
  g_assert (headers != NULL);

  if (!self->ranged)
    {
      download_fail_literal (self, BG_ERROR, BG_ERROR_PROTOCOL,
                             _("The server sent part of the file without being asked"));
      return;
    }

  if (!bg_http_parse_content_range (soup_message_headers_get_one (headers, "Content-Range"),
                                    &start, &end, &total) ||
      start < 0)
    {
      download_fail_literal (self, BG_ERROR, BG_ERROR_PROTOCOL,
                             _("The server sent a partial answer without a valid "
                               "Content-Range"));
      return;
    }

  /* libsoup reads what the Content-Length says: bytes past the range, or a range cut short,
   * would be taken for the file's. */
  if (soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CONTENT_LENGTH &&
      soup_message_headers_get_content_length (headers) != end - start + 1)
    {
      g_autofree char *message =
        g_strdup_printf (_("The server's partial answer holds %lld bytes, but its "
                           "Content-Range names %lld"),
                         (long long) soup_message_headers_get_content_length (headers),
                         (long long) (end - start + 1));

      download_fail_literal (self, BG_ERROR, BG_ERROR_PROTOCOL, message);
      return;
    }

  if (!partial_answer_matches (self, headers, total))
    {
      /* A server that ignores If-Range, or a file that changed length: the bytes offered do
       * not belong with the ones we have. */
      if (download_start_over (self))
        return;
      download_fail_literal (self, BG_ERROR, BG_ERROR_PROTOCOL,
                             _("The server's partial answer is for another version of the "
                               "file, even after starting over"));
      return;
    }

  if (start != self->written)
    {
      g_autofree char *message =
        g_strdup_printf (_("The server's Content-Range starts at byte %lld, but the download "
                           "continues at byte %lld"),
                         (long long) start, (long long) self->written);

      download_fail_literal (self, BG_ERROR, BG_ERROR_PROTOCOL, message);
      return;
    }

  self->total = total;
  bg_job_progress (self->job, self->received, self->total);
  pump (self);
}

/* Any other 2xx: the whole file, from its first byte. */
static void
receive_whole_content (Download           *self,
                       SoupMessageHeaders *headers)
{
  g_autoptr(GError) error = NULL;

  g_assert (self != NULL);
  g_assert (headers != NULL);

  if (self->written > 0)
    {
      /* A whole answer to a ranged request: the file changed, start over. */
      if (!download_truncate (self, &error))
        {
          download_fail (self, error);
          return;
        }
    }

  remember_validators (self);
  if (soup_message_headers_get_encoding (headers) == SOUP_ENCODING_CONTENT_LENGTH)
    self->total = soup_message_headers_get_content_length (headers);
  else
    self->total = -1;
  /* Not saved yet: nothing is on disk to resume from, and the first checkpoint (or the
   * publish) writes the validators and the length with the offset they go with. */
  bg_job_get_record (self->job)->total = self->total;
  bg_job_progress (self->job, self->received, self->total);
  pump (self);
}

/* A body whose length libsoup would misread: nothing of it is kept.  The value is the
 * server's, so it is shown made valid UTF-8 and cut short. */
static void
fail_bad_content_length (Download           *self,
                         SoupMessageHeaders *headers)
{
  g_autofree char *value =
    g_utf8_make_valid (soup_message_headers_get_one (headers, "Content-Length"), -1);
  g_autofree char *message = NULL;

  if (g_utf8_strlen (value, -1) > 40)
    {
      g_autofree char *start = g_utf8_substring (value, 0, 40);

      g_free (value);
      value = g_strconcat (start, "…", NULL);
    }
  message = g_strdup_printf (_("The server's Content-Length “%s” is not a length"), value);
  download_fail_literal (self, BG_ERROR, BG_ERROR_PROTOCOL, message);
}

/* Any other answer ends the attempt with the kind of response its status calls for; the engine
 * tries again after a BG_RESPONSE_RETRY. */
static void
receive_final_status (Download *self,
                      guint     status)
{
  g_autoptr(BgResponse) response = NULL;

  g_assert (self != NULL);

  response = bg_job_make_response (self->job, bg_response_kind_for_status (status),
                                   self->msg, NULL, NULL);
  download_finish (self, response);
}

static void
sent_cb (GObject      *object,
         GAsyncResult *result,
         gpointer      user_data)
{
  g_autoptr(Download) self = user_data;
  g_autoptr(GError) error = NULL;
  g_autoptr(GInputStream) in = NULL;
  SoupMessageHeaders *headers;
  guint status;

  in = soup_session_send_finish (SOUP_SESSION (object), result, &error);

  if (self->done)
    return;

  if (in == NULL)
    {
      download_fail (self, error);
      return;
    }

  self->in = g_steal_pointer (&in);
  download_watch (self);
  bg_job_progress (self->job, self->received, self->total);

  status = soup_message_get_status (self->msg);
  headers = soup_message_get_response_headers (self->msg);

  if (bg_http_is_redirect (status) && follow_redirect (self))
    return;

  if (status == SOUP_STATUS_REQUESTED_RANGE_NOT_SATISFIABLE && self->ranged &&
      receive_range_not_satisfiable (self, headers))
    return;

  if ((status == SOUP_STATUS_PARTIAL_CONTENT ||
       bg_response_kind_for_status (status) == BG_RESPONSE_SUCCESS) &&
      !bg_http_content_length_is_valid (headers))
    {
      fail_bad_content_length (self, headers);
      return;
    }

  if (status == SOUP_STATUS_PARTIAL_CONTENT)
    receive_partial_content (self, headers);
  else if (bg_response_kind_for_status (status) == BG_RESPONSE_SUCCESS)
    receive_whole_content (self, headers);
  else
    receive_final_status (self, status);
}

static void
download_send (Download *self)
{
  SoupSession *session = bg_engine_get_session (bg_job_get_engine (self->job));

  g_clear_pointer (&self->watch, bg_connection_watch_free);
  bg_connection_watch_track (session);
  soup_session_send_async (session, self->msg, G_PRIORITY_DEFAULT, self->cancellable,
                           sent_cb, download_ref (self));
}

typedef struct
{
  char *identifier;
  char *file_path;
  char *partial_path;
  int   fd;
} OpenData;

static void
open_data_free (OpenData *data)
{
  if (data->fd >= 0)
    close (data->fd);
  g_free (data->identifier);
  g_free (data->file_path);
  g_free (data->partial_path);
  g_free (data);
}

/* Makes (or takes back and empties) the partial file of a download that starts from byte 0. */
static void
open_thread (GTask        *task,
             gpointer      source_object,
             gpointer      task_data,
             GCancellable *cancellable)
{
  OpenData *data = task_data;
  g_autoptr(GError) error = NULL;
  gboolean created = FALSE;

  data->fd = open_partial_named (data->identifier, data->file_path, &data->partial_path,
                                 &created, &error);
  if (data->fd >= 0 && ftruncate (data->fd, 0) != 0)
    {
      int saved_errno = errno;

      set_partial_error (&error, saved_errno, data->partial_path);
      close (data->fd);
      data->fd = -1;
    }

  if (data->fd < 0)
    g_task_return_error (task, g_steal_pointer (&error));
  else
    g_task_return_boolean (task, TRUE);
}

static void
open_done_cb (GObject      *object,
              GAsyncResult *result,
              gpointer      user_data)
{
  g_autoptr(Download) self = user_data;
  g_autoptr(GError) error = NULL;
  OpenData *data = g_task_get_task_data (G_TASK (result));
  BgStoreRecord *record = bg_job_get_record (self->job);

  self->opening = FALSE;

  if (!g_task_propagate_boolean (G_TASK (result), &error))
    {
      if (!self->done)
        {
          g_autoptr(BgResponse) response = bg_job_make_error_response (self->job, error);

          download_finish (self, response);
        }
      download_end_when_idle (self);
      return;
    }

  self->fd = data->fd;
  data->fd = -1;

  if (g_strcmp0 (record->partial_path, data->partial_path) != 0)
    {
      /* The stable name was taken by something not ours: the record names the new one. */
      g_free (record->partial_path);
      record->partial_path = g_steal_pointer (&data->partial_path);
      bg_job_save_progress (self->job);
    }

  if (self->done)
    download_end_when_idle (self);
  else
    download_send (self);
}

static void
download_start (BgJob       *job,
                SoupMessage *msg)
{
  Download *self = bg_job_get_attempt_data (job);
  BgStoreRecord *record = bg_job_get_record (job);
  g_autoptr(GTask) task = NULL;
  OpenData *data;

  g_assert (self != NULL);

  g_set_object (&self->msg, msg);

  if (self->fd >= 0)
    {
      download_send (self);
      return;
    }

  data = g_new0 (OpenData, 1);
  data->identifier = g_strdup (record->identifier);
  data->file_path = g_strdup (record->file_path);
  data->partial_path = g_strdup (record->partial_path);
  data->fd = -1;

  self->opening = TRUE;
  task = g_task_new (NULL, NULL, open_done_cb, download_ref (self));
  g_task_set_source_tag (task, download_start);
  g_task_set_task_data (task, data, (GDestroyNotify) open_data_free);
  run_in_folder (task, open_thread, record->file_path);
}

/* A run that died between the rename and recording the result left no partial file and a
 * destination of the recorded size: the download is complete. */
static BgResponse *
download_recover (BgJob *job)
{
  BgStoreRecord *record = bg_job_get_record (job);
  GStatBuf st;

  if (record->partial_path == NULL || record->total < 0 || record->checkpoint != record->total)
    return NULL;

  if (g_lstat (record->partial_path, &st) == 0)
    return NULL;

  if (g_lstat (record->file_path, &st) != 0 || !S_ISREG (st.st_mode) ||
      st.st_size != record->total)
    return NULL;

  return bg_job_make_response (job, BG_RESPONSE_SUCCESS, NULL, NULL, NULL);
}

static void
download_discard (BgJob *job)
{
  BgStoreRecord *record = bg_job_get_record (job);
  struct stat st;

  /* Something planted at the name since is not ours to remove. */
  if (record->partial_path != NULL && lstat (record->partial_path, &st) == 0 &&
      partial_is_ours (&st))
    g_unlink (record->partial_path);
}

const BgTransferClass bg_download_transfer = {
  .prepare_new = download_prepare_new,
  .build = download_build,
  .start = download_start,
  .recover = download_recover,
  .discard = download_discard,
};
