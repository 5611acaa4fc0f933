/* bg-transfer-output.c: what bg-transfer prints, on a terminal, in a pipe or as JSON lines
 *
 * On a terminal every tracked transfer gets a progress bar on its own line at the bottom; the
 * bars are redrawn in place with ANSI cursor moves, and messages are printed above them.  In a
 * pipe nothing but plain lines is written, never an escape sequence.  With --json every line is
 * one JSON object, built with json-glib.
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <glib/gi18n.h>

#include "bg-transfer-output.h"
#include "bg-transfer-json.h"

#define TTY_INTERVAL_MS   200   /* how often the bars are redrawn */
#define JSON_INTERVAL_MS  500   /* how often "progress" lines may come */
#define RATE_WINDOW_USEC  (4 * G_USEC_PER_SEC)
#define LABEL_MIN_WIDTH   12
#define LABEL_MAX_WIDTH   24
#define BAR_MAX_WIDTH     30
#define BAR_MIN_WIDTH     10
#define INFO_WIDTH        46    /* room kept for "42%  4.2 MB of 10.0 MB  1.1 MB/s  ETA 0:05" */

typedef struct
{
  gint64 time;
  gint64 bytes;
} Sample;

typedef struct
{
  BtOutput    *output;
  BgTask      *task;
  gulong       wait_handler;
  gulong       restarts_handler;
  gulong       bytes_handler;
  /* A download's restarts when last seen, and the bytes it asked the server to continue from
   * until the answer shows whether it did (-1 then). */
  guint        restarts;
  gint64       resume_from;
  char        *label;
  GArray      *samples;
  /* What the last "progress" line said, so that an unchanged task is not repeated. */
  gint64       json_bytes;
  int          json_state;
} Tracker;

struct _BtOutput
{
  GPtrArray *trackers;
  guint      tick_source;
  guint      n_bar_lines;
  guint      json : 1;
  guint      quiet : 1;
  guint      bars : 1;            /* progress bars on a terminal */
  guint      progress_lines : 1;  /* "progress" JSON lines */
};

/* Messages can quote the server (a reason phrase, an answer body): make sure they cannot carry
 * control sequences to the terminal. */
static char *
printable_text (const char *text)
{
  g_autofree char *valid = g_utf8_make_valid (text, -1);
  GString *out = g_string_sized_new (strlen (valid));

  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (c == '\n' || c == '\t' || !g_unichar_iscntrl (c))
        g_string_append_unichar (out, c);
      else
        g_string_append_unichar (out, 0xFFFD);
    }

  return g_string_free (out, FALSE);
}

static void
tracker_free (Tracker *tracker)
{
  g_clear_signal_handler (&tracker->wait_handler, tracker->task);
  g_clear_signal_handler (&tracker->restarts_handler, tracker->task);
  g_clear_signal_handler (&tracker->bytes_handler, tracker->task);
  g_clear_object (&tracker->task);
  g_clear_pointer (&tracker->label, g_free);
  g_clear_pointer (&tracker->samples, g_array_unref);
  g_free (tracker);
}

/* Records the task's byte count now, and forgets what is older than the rate window. */
static void
tracker_sample (Tracker *tracker,
                gint64   now)
{
  Sample sample = { now, bg_task_get_bytes_transferred (tracker->task) };
  guint drop = 0;

  if (tracker->samples->len > 0 &&
      g_array_index (tracker->samples, Sample, tracker->samples->len - 1).bytes > sample.bytes)
    g_array_set_size (tracker->samples, 0);   /* the transfer started over */

  g_array_append_val (tracker->samples, sample);

  while (drop + 1 < tracker->samples->len &&
         now - g_array_index (tracker->samples, Sample, drop).time > RATE_WINDOW_USEC)
    drop++;
  if (drop > 0)
    g_array_remove_range (tracker->samples, 0, drop);
}

/* Bytes per second over the rate window, or -1 while there is too little to tell. */
static double
tracker_rate (Tracker *tracker)
{
  const Sample *first, *last;
  gint64 span;

  if (tracker->samples->len < 2)
    return -1;

  first = &g_array_index (tracker->samples, Sample, 0);
  last = &g_array_index (tracker->samples, Sample, tracker->samples->len - 1);
  span = last->time - first->time;
  if (span < G_USEC_PER_SEC / 2)
    return -1;

  return (double) (last->bytes - first->bytes) * G_USEC_PER_SEC / (double) span;
}

/* Text that is not a URL GLib can parse may still hold a password in "scheme://user:pw@host":
 * drop ":pw" as G_URI_HIDE_PASSWORD would. */
static char *
hide_password_in_text (const char *text)
{
  const char *authority = strstr (text, "://");
  const char *end, *at, *colon;
  GString *shown;

  if (authority == NULL)
    return g_strdup (text);

  authority += 3;
  end = authority + strcspn (authority, "/?#");
  at = g_strrstr_len (authority, end - authority, "@");
  colon = at ? memchr (authority, ':', (gsize) (at - authority)) : NULL;
  if (colon == NULL)
    return g_strdup (text);

  shown = g_string_new_len (text, colon - text);
  g_string_append (shown, at);

  return g_string_free (shown, FALSE);
}

char *
bt_uri_for_display (const char *uri)
{
  g_autoptr(GUri) parsed = NULL;

  if (uri == NULL)
    return NULL;

  /* With G_URI_FLAGS_HAS_PASSWORD, so that the password is a part of its own to hide. */
  parsed = g_uri_parse (uri, SOUP_HTTP_URI_FLAGS, NULL);
  if (parsed != NULL)
    return g_uri_to_string_partial (parsed, G_URI_HIDE_PASSWORD);

  return hide_password_in_text (uri);
}

/* "7 seconds", "3 minutes", "2 hours": a wait, as a sentence would say it. */
char *
bt_format_seconds (gint64 seconds)
{
  if (seconds < 120)
    return g_strdup_printf (ngettext ("%d second", "%d seconds", (gulong) seconds),
                            (int) seconds);
  if (seconds < 2 * 3600)
    {
      gint64 minutes = (seconds + 59) / 60;

      return g_strdup_printf (ngettext ("%d minute", "%d minutes", (gulong) minutes),
                              (int) minutes);
    }

  {
    gint64 hours = (seconds + 3599) / 3600;

    return g_strdup_printf (ngettext ("%d hour", "%d hours", (gulong) hours), (int) hours);
  }
}

/* "0:07", "12:30", "1:02:03": the time left, as a clock shows it. */
static char *
format_clock (gint64 seconds)
{
  if (seconds >= 3600)
    return g_strdup_printf ("%d:%02d:%02d", (int) (seconds / 3600),
                            (int) (seconds / 60 % 60), (int) (seconds % 60));

  return g_strdup_printf ("%d:%02d", (int) (seconds / 60), (int) (seconds % 60));
}

/* "next attempt in 5 seconds", "waiting for the network": why a waiting task waits. */
char *
bt_describe_wait (BgTask *task)
{
  switch (bg_task_get_wait_reason (task))
    {
    case BG_WAIT_REASON_NETWORK:
      return g_strdup (_("waiting for the network"));
    case BG_WAIT_REASON_METERED:
      return g_strdup (_("waiting for a network that is not metered"));
    case BG_WAIT_REASON_POWER_SAVER:
      return g_strdup (_("waiting for power saver to be turned off"));
    case BG_WAIT_REASON_CREDENTIALS:
      return g_strdup (_("waiting for the credentials it lost when the last run stopped; "
                         "run the same command again with them"));
    case BG_WAIT_REASON_PAUSED:
      return g_strdup (_("paused"));
    case BG_WAIT_REASON_SCHEDULED:
      {
        g_autoptr(GDateTime) start = bg_task_dup_earliest_start (task);
        g_autoptr(GDateTime) local = start ? g_date_time_to_local (start) : NULL;
        g_autofree char *when = local ? g_date_time_format (local, "%c") : NULL;

        return when ? g_strdup_printf (_("waiting until %s"), when)
                    : g_strdup (_("waiting for its start time"));
      }
    case BG_WAIT_REASON_RETRY:
    case BG_WAIT_REASON_NONE:
    default:
      {
        g_autoptr(GDateTime) at = bg_task_dup_next_attempt_at (task);
        g_autoptr(GDateTime) now = g_date_time_new_now_utc ();
        GTimeSpan left = at ? g_date_time_difference (at, now) : 0;
        gint64 wait = (left + G_USEC_PER_SEC - 1) / G_USEC_PER_SEC;
        g_autofree char *when = bt_format_seconds (MAX (wait, 0));

        return g_strdup_printf (_("next attempt in %s"), when);
      }
    }
}

/* Says, above the bars, why a task has started to wait. */
static void
announce_waiting (Tracker *tracker)
{
  BgTask *task = tracker->task;
  g_autofree char *why = bt_describe_wait (task);

  if (bg_task_get_wait_reason (task) == BG_WAIT_REASON_RETRY)
    bt_output_info (tracker->output, _("%s: attempt %u did not complete; %s."),
                    tracker->label, bg_task_get_attempts (task), why);
  else
    bt_output_info (tracker->output, "%s: %s.", tracker->label, why);
}

static void
task_wait_reason_cb (BgTask     *task,
                     GParamSpec *pspec,
                     gpointer    user_data)
{
  if (bg_task_get_wait_reason (task) != BG_WAIT_REASON_NONE)
    announce_waiting (user_data);
}

static void
json_task_event (BtOutput   *output,
                 BgTask     *task,
                 const char *event,
                 const char *member,
                 gint64      value)
{
  g_autoptr(JsonBuilder) builder = bt_json_begin (event);

  bt_json_add_string (builder, "identifier", bg_task_get_identifier (task));
  bt_json_add_int (builder, member, value);
  bt_output_json (output, builder);
}

/* The server sends bytes after the ones the download had: it really resumes. */
static void
task_bytes_cb (BgTask     *task,
               GParamSpec *pspec,
               gpointer    user_data)
{
  Tracker *tracker = user_data;
  gint64 total = bg_task_get_bytes_total (task);
  g_autofree char *done = NULL;
  g_autofree char *offset = NULL;

  if (tracker->resume_from < 0 || bg_task_get_restarts (task) != tracker->restarts ||
      bg_task_get_bytes_transferred (task) <= tracker->resume_from)
    return;

  done = g_format_size (tracker->resume_from);
  offset = g_strdup_printf ("%" G_GINT64_FORMAT, tracker->resume_from);
  json_task_event (tracker->output, task, "resumed", "resumed_from", tracker->resume_from);
  if (total > 0)
    {
      g_autofree char *all = g_format_size (total);

      /* Translators: "big.iso: resuming from 1.2 MB of 4.0 MB (byte 1200000)." */
      bt_output_info (tracker->output, _("%s: resuming from %s of %s (byte %s)."),
                      tracker->label, done, all, offset);
    }
  else
    bt_output_info (tracker->output, _("%s: resuming from %s (byte %s)."),
                    tracker->label, done, offset);

  tracker->resume_from = -1;
  g_clear_signal_handler (&tracker->bytes_handler, task);
}

/* The download threw its bytes away: the server sent the whole file, or the partial file was
 * lost. */
static void
task_restarts_cb (BgTask     *task,
                  GParamSpec *pspec,
                  gpointer    user_data)
{
  Tracker *tracker = user_data;
  guint restarts = bg_task_get_restarts (task);
  gboolean was_resuming = tracker->resume_from > 0;
  g_autofree char *kept = NULL;

  if (restarts <= tracker->restarts)
    {
      tracker->restarts = restarts;
      return;
    }
  tracker->restarts = restarts;

  json_task_event (tracker->output, task, "restarted", "restarts", restarts);
  if (was_resuming)
    {
      kept = g_format_size (tracker->resume_from);
      /* Translators: "big.iso: the 1.2 MB downloaded before could not be used; the download
       * starts over from the first byte." */
      bt_output_info (tracker->output, _("%s: the %s downloaded before could not be used; the "
                                         "download starts over from the first byte."),
                      tracker->label, kept);
    }
  else
    bt_output_info (tracker->output, _("%s: the download starts over from the first byte."),
                    tracker->label);

  tracker->resume_from = -1;
  g_clear_signal_handler (&tracker->bytes_handler, task);
}

static Tracker *
tracker_new (BtOutput *output,
             BgTask   *task)
{
  Tracker *tracker = g_new0 (Tracker, 1);
  GFile *file = bg_task_get_file (task);
  g_autofree char *name = file ? g_file_get_basename (file) : NULL;

  tracker->output = output;
  tracker->task = g_object_ref (task);
  tracker->label = printable_text (name ? name : bg_task_get_identifier (task));
  tracker->samples = g_array_new (FALSE, FALSE, sizeof (Sample));
  tracker->json_bytes = -1;
  tracker->json_state = -1;
  tracker->wait_handler = g_signal_connect (task, "notify::wait-reason",
                                            G_CALLBACK (task_wait_reason_cb), tracker);
  tracker->resume_from = -1;

  /* A download that has bytes from before only asks for the rest: say what the server did
   * once its answer shows it. */
  if (bg_task_get_kind (task) == BG_TASK_KIND_DOWNLOAD)
    {
      BgTaskState state = bg_task_get_state (task);

      tracker->restarts = bg_task_get_restarts (task);
      tracker->restarts_handler = g_signal_connect (task, "notify::restarts",
                                                    G_CALLBACK (task_restarts_cb), tracker);
      if (bg_task_get_bytes_transferred (task) > 0 && state != BG_TASK_STATE_FINISHED &&
          state != BG_TASK_STATE_CANCELLED)
        {
          tracker->resume_from = bg_task_get_bytes_transferred (task);
          tracker->bytes_handler = g_signal_connect (task, "notify::bytes-transferred",
                                                     G_CALLBACK (task_bytes_cb), tracker);
        }
    }

  return tracker;
}

/* --- The bars on a terminal ---------------------------------------------------------------- */

static guint
terminal_width (void)
{
  struct winsize size;

  if (ioctl (STDOUT_FILENO, TIOCGWINSZ, &size) == 0 && size.ws_col > 0)
    return size.ws_col;

  return 80;
}

/* "42%  4.2 MB of 10.0 MB  1.1 MB/s  ETA 0:05", or the state when no bytes are moving. */
static char *
format_progress_text (Tracker *tracker)
{
  BgTask *task = tracker->task;
  gint64 bytes = bg_task_get_bytes_transferred (task);
  gint64 total = bg_task_get_bytes_total (task);
  double rate = tracker_rate (tracker);
  g_autofree char *done = g_format_size (bytes);
  GString *text = g_string_new (NULL);

  if (bg_task_get_state (task) == BG_TASK_STATE_WAITING)
    {
      g_autofree char *why = bt_describe_wait (task);

      g_string_append (text, why);
      return g_string_free (text, FALSE);
    }
  if (bg_task_get_state (task) == BG_TASK_STATE_QUEUED)
    g_string_append_printf (text, "%s  ", _("queued"));

  if (total > 0)
    {
      g_autofree char *all = g_format_size (total);

      g_string_append_printf (text, "%3d%%  ", (int) (MIN (bytes, total) * 100 / total));
      g_string_append_printf (text, _("%s of %s"), done, all);
    }
  else
    g_string_append (text, done);

  if (rate >= 0)
    {
      g_autofree char *speed = g_format_size ((guint64) rate);

      g_string_append_printf (text, "  %s/s", speed);
      if (total > 0 && rate >= 1)
        {
          g_autofree char *eta = format_clock ((gint64) ((double) MAX (total - bytes, 0) / rate));

          g_string_append_printf (text, _("  ETA %s"), eta);
        }
    }

  return g_string_free (text, FALSE);
}

/* Cuts @text to at most @width characters. */
static void
truncate_chars (GString *text,
                guint    width)
{
  if (g_utf8_strlen (text->str, -1) > width)
    g_string_truncate (text, g_utf8_offset_to_pointer (text->str, width) - text->str);
}

static char *
format_bar_line (Tracker *tracker,
                 guint    width)
{
  g_autofree char *info = format_progress_text (tracker);
  gint64 bytes = bg_task_get_bytes_transferred (tracker->task);
  gint64 total = bg_task_get_bytes_total (tracker->task);
  GString *line = g_string_new (tracker->label);
  guint label_width = CLAMP (width / 5, LABEL_MIN_WIDTH, LABEL_MAX_WIDTH);
  guint label_len;
  int bar_width;

  truncate_chars (line, label_width);
  for (label_len = g_utf8_strlen (line->str, -1); label_len < label_width; label_len++)
    g_string_append_c (line, ' ');
  g_string_append_c (line, ' ');

  /* The label, the brackets, the gaps, the text and a spare column: the bar gets the rest.  The
   * text's room is fixed, so that the bar keeps its length while the numbers change. */
  bar_width = (int) width - (int) label_width - 1 - 4 - INFO_WIDTH - 1;
  bar_width = MIN (bar_width, BAR_MAX_WIDTH);
  if (total > 0 && bar_width >= BAR_MIN_WIDTH &&
      bg_task_get_state (tracker->task) == BG_TASK_STATE_RUNNING)
    {
      int filled = (int) (MIN (bytes, total) * bar_width / total);

      g_string_append_c (line, '[');
      for (int i = 0; i < bar_width; i++)
        g_string_append_c (line, i < filled ? '#' : '-');
      g_string_append (line, "]  ");
    }
  g_string_append (line, info);

  /* One column spare, so that the terminal never wraps the line. */
  truncate_chars (line, width > 1 ? width - 1 : width);

  return g_string_free (line, FALSE);
}

static void
erase_bars (BtOutput *self)
{
  if (self->n_bar_lines == 0)
    return;

  /* Up to the first bar, then clear to the end of the screen. */
  printf ("\033[%uA\r\033[J", self->n_bar_lines);
  self->n_bar_lines = 0;
}

static void
draw_bars (BtOutput *self)
{
  guint width = terminal_width ();

  erase_bars (self);
  for (guint i = 0; i < self->trackers->len; i++)
    {
      g_autofree char *line = format_bar_line (g_ptr_array_index (self->trackers, i), width);

      printf ("%s\n", line);
      self->n_bar_lines++;
    }
  fflush (stdout);
}

/* --- Progress as JSON lines ---------------------------------------------------------------- */

static void
emit_json_progress (BtOutput *self,
                    Tracker  *tracker)
{
  BgTask *task = tracker->task;
  g_autoptr(JsonBuilder) builder = NULL;
  gint64 bytes = bg_task_get_bytes_transferred (task);
  BgTaskState state = bg_task_get_state (task);
  double rate = tracker_rate (tracker);

  if (bytes == tracker->json_bytes && (int) state == tracker->json_state)
    return;
  tracker->json_bytes = bytes;
  tracker->json_state = (int) state;

  builder = bt_json_begin ("progress");
  bt_json_add_task (builder, task);
  if (rate >= 0)
    bt_json_add_int (builder, "rate", (gint64) rate);
  bt_output_json (self, builder);
}

static gboolean
tick_cb (gpointer data)
{
  BtOutput *self = data;
  gint64 now = g_get_monotonic_time ();

  for (guint i = 0; i < self->trackers->len; i++)
    {
      Tracker *tracker = g_ptr_array_index (self->trackers, i);

      tracker_sample (tracker, now);
      if (self->progress_lines)
        emit_json_progress (self, tracker);
    }

  if (self->bars)
    draw_bars (self);

  return G_SOURCE_CONTINUE;
}

/* --- Public -------------------------------------------------------------------------------- */

static gboolean
stdout_is_capable_terminal (void)
{
  const char *term = g_getenv ("TERM");

  return isatty (STDOUT_FILENO) && term != NULL && *term != '\0' && strcmp (term, "dumb") != 0;
}

BtOutput *
bt_output_new (gboolean json,
               gboolean quiet)
{
  BtOutput *self = g_new0 (BtOutput, 1);

  self->trackers = g_ptr_array_new_with_free_func ((GDestroyNotify) tracker_free);
  self->json = !!json;
  self->quiet = !!quiet;
  self->bars = !json && !quiet && stdout_is_capable_terminal ();
  self->progress_lines = json && !quiet;

  return self;
}

void
bt_output_free (BtOutput *self)
{
  erase_bars (self);
  fflush (stdout);
  g_clear_handle_id (&self->tick_source, g_source_remove);
  g_clear_pointer (&self->trackers, g_ptr_array_unref);
  g_free (self);
}

gboolean
bt_output_is_json (BtOutput *self)
{
  return self->json;
}

gboolean
bt_output_is_quiet (BtOutput *self)
{
  return self->quiet;
}

void
bt_output_track (BtOutput *self,
                 BgTask   *task)
{
  Tracker *tracker = tracker_new (self, task);

  tracker_sample (tracker, g_get_monotonic_time ());
  g_ptr_array_add (self->trackers, tracker);

  if (bg_task_get_wait_reason (task) != BG_WAIT_REASON_NONE)
    announce_waiting (tracker);

  if (self->tick_source == 0 && (self->bars || self->progress_lines))
    self->tick_source = g_timeout_add (self->bars ? TTY_INTERVAL_MS : JSON_INTERVAL_MS,
                                       tick_cb, self);
  if (self->bars)
    draw_bars (self);
}

void
bt_output_untrack (BtOutput *self,
                   BgTask   *task)
{
  for (guint i = 0; i < self->trackers->len; i++)
    {
      Tracker *tracker = g_ptr_array_index (self->trackers, i);

      if (tracker->task != task)
        continue;

      erase_bars (self);
      g_ptr_array_remove_index (self->trackers, i);
      break;
    }

  if (self->trackers->len == 0)
    g_clear_handle_id (&self->tick_source, g_source_remove);
  else if (self->bars)
    draw_bars (self);
}

/* Prints @text on @stream above the bars. */
static void
print_line (BtOutput   *self,
            FILE       *stream,
            const char *text)
{
  gboolean bars = self->n_bar_lines > 0;
  g_autofree char *shown = printable_text (text);

  if (bars)
    erase_bars (self);
  fflush (stdout);
  fprintf (stream, "%s\n", shown);
  fflush (stream);
  if (bars)
    draw_bars (self);
}

void
bt_output_info (BtOutput   *self,
                const char *format,
                ...)
{
  g_autofree char *text = NULL;
  va_list args;

  if (self->quiet || self->json)
    return;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);

  print_line (self, stdout, text);
}

void
bt_output_print (BtOutput   *self,
                 const char *format,
                 ...)
{
  g_autofree char *text = NULL;
  va_list args;

  if (self->json)
    return;

  va_start (args, format);
  text = g_strdup_vprintf (format, args);
  va_end (args);

  print_line (self, stdout, text);
}

void
bt_output_say (BtOutput   *self,
               gboolean    is_error,
               const char *text)
{
  if (self->json || (self->quiet && !is_error))
    return;

  print_line (self, is_error ? stderr : stdout, text);
}

void
bt_output_json (BtOutput    *self,
                JsonBuilder *builder)
{
  g_autofree char *text = NULL;

  if (!self->json)
    return;

  text = bt_json_end (builder);

  fprintf (stdout, "%s\n", text);
  fflush (stdout);
}
