/* bg-throttle.c: bandwidth caps, as token buckets
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * A task's cap (BgTask:max-bandwidth) and its queue's (BgTaskQueue:max-bandwidth) are each a
 * bucket; a read takes its bytes from both before it starts, and gives back what it did not
 * use.  A bucket fills at its rate and holds one tick (1/2 s) of it, so a transfer that waited
 * never bursts more than that, and a reader that finds it holding less than half a tick's worth
 * (and less than it wants) sleeps until it holds three quarters of a tick (or what the
 * transfer has left, if less): under three reads a second per capped transfer, however low
 * the rate, and never a busy loop.  The quarter left is the margin for a late wakeup: the
 * bucket is not full yet, so nothing is lost.  A shorter tick smooths the rate over shorter
 * spans but wakes the transfer more often; at 1/10 s the wakeups cost a capped download twice
 * the CPU time of the same bytes uncapped.
 *
 * Every bucket is guarded by one lock: a take touches two buckets, and the work under the lock
 * is a few arithmetic operations.
 */

#include "config.h"

#include "bg-throttle-private.h"

/* The shortest sleep: below this a wakeup costs more than it saves. */
#define MIN_DELAY_USEC 1000

/* How full a bucket must be before a transfer that waits on it wakes, as a part of a tick. */
#define WAKE_FRACTION 0.75

struct _BgThrottle
{
  gatomicrefcount ref_count;
  guint64         rate;       /* bytes per second; 0: no cap */
  double          tokens;     /* bytes that may move now */
  gint64          filled_at;  /* monotonic time tokens was last brought up to date */
};

static GMutex throttle_mutex;

/* A tick's worth of the rate, and at least one byte. */
static double
capacity (const BgThrottle *self)
{
  return MAX (1.0, (double) self->rate * BG_THROTTLE_TICK_USEC / G_USEC_PER_SEC);
}

BgThrottle *
bg_throttle_new (guint64 rate)
{
  BgThrottle *self = g_new0 (BgThrottle, 1);

  g_atomic_ref_count_init (&self->ref_count);
  self->rate = rate;
  self->filled_at = g_get_monotonic_time ();
  /* A new transfer's first read need not wait: as if it had waited half a tick already. */
  if (rate > 0)
    self->tokens = capacity (self) / 2;

  return self;
}

BgThrottle *
bg_throttle_ref (BgThrottle *self)
{
  g_return_val_if_fail (self != NULL, NULL);

  g_atomic_ref_count_inc (&self->ref_count);
  return self;
}

void
bg_throttle_unref (BgThrottle *self)
{
  if (self != NULL && g_atomic_ref_count_dec (&self->ref_count))
    g_free (self);
}

/* Brings the bucket up to @now; called with the lock held. */
static void
fill (BgThrottle *self,
      gint64      now)
{
  g_assert (self->rate > 0);

  if (now > self->filled_at)
    {
      self->tokens += (double) (now - self->filled_at) * self->rate / G_USEC_PER_SEC;
      self->tokens = MIN (self->tokens, capacity (self));
      self->filled_at = now;
    }
}

void
bg_throttle_set_rate (BgThrottle *self,
                      guint64     rate)
{
  g_return_if_fail (self != NULL);

  g_mutex_lock (&throttle_mutex);
  if (self->rate != rate)
    {
      gint64 now = g_get_monotonic_time ();

      if (self->rate > 0)
        fill (self, now);
      else
        self->tokens = 0;   /* an uncapped transfer has just been moving as fast as it could */
      self->rate = rate;
      self->filled_at = now;
      if (rate > 0)
        self->tokens = MIN (self->tokens, capacity (self));
    }
  g_mutex_unlock (&throttle_mutex);
}

guint64
bg_throttle_get_rate (BgThrottle *self)
{
  guint64 rate;

  g_return_val_if_fail (self != NULL, 0);

  g_mutex_lock (&throttle_mutex);
  rate = self->rate;
  g_mutex_unlock (&throttle_mutex);

  return rate;
}

/* Whether @self may give @wanted bytes now; sets @delay_usec (when not) to how long until it
 * may.  Called with the lock held. */
static gboolean
bucket_ready (BgThrottle *self,
              gsize       wanted,
              gsize       left,
              gint64      now,
              gsize      *grant,
              gint64     *delay_usec)
{
  double half;
  double enough;
  double need;

  if (self == NULL || self->rate == 0)
    return TRUE;

  /* Ready once the bucket holds what is wanted or half a tick, whichever is less.  A transfer
   * that must wait sleeps until three quarters of a tick have come in: a small read (libsoup
   * sends a body 8 KiB at a time) then does not wake up for every block, and a late wakeup
   * loses nothing, since the bucket holds a whole tick.  Neither waits for more than the
   * transfer has left. */
  fill (self, now);
  half = MAX (1.0, capacity (self) / 2);
  enough = MIN ((double) left, MAX (1.0, capacity (self) * WAKE_FRACTION));
  need = MIN (MIN ((double) wanted, half), enough);
  if (self->tokens >= need)
    {
      *grant = MIN (*grant, (gsize) self->tokens);
      return TRUE;
    }

  *delay_usec = MAX (*delay_usec,
                     (gint64) ((enough - self->tokens) * G_USEC_PER_SEC / self->rate) + 1);
  return FALSE;
}

gsize
bg_throttle_take (BgThrottle *task,
                  BgThrottle *queue,
                  gsize       wanted,
                  gsize       left,
                  gint64     *delay_usec)
{
  gsize grant = wanted;
  gint64 delay = 0;
  gint64 now;
  gboolean ready;

  g_return_val_if_fail (delay_usec != NULL, 0);

  *delay_usec = 0;
  if (wanted == 0)
    return 0;

  g_mutex_lock (&throttle_mutex);

  now = g_get_monotonic_time ();
  /* Both are asked, so that the delay is the longer of the two waits. */
  left = MAX (left, 1);
  ready = bucket_ready (task, wanted, left, now, &grant, &delay);
  ready = bucket_ready (queue, wanted, left, now, &grant, &delay) && ready;

  if (ready)
    {
      if (task != NULL && task->rate > 0)
        task->tokens -= grant;
      if (queue != NULL && queue->rate > 0)
        queue->tokens -= grant;
    }

  g_mutex_unlock (&throttle_mutex);

  if (!ready)
    {
      *delay_usec = CLAMP (delay, MIN_DELAY_USEC, BG_THROTTLE_TICK_USEC);
      return 0;
    }

  return grant;
}

static void
bucket_refund (BgThrottle *self,
               gsize       unused)
{
  if (self != NULL && self->rate > 0)
    self->tokens = MIN (self->tokens + unused, capacity (self));
}

void
bg_throttle_refund (BgThrottle *task,
                    BgThrottle *queue,
                    gsize       unused)
{
  if (unused == 0)
    return;

  g_mutex_lock (&throttle_mutex);
  bucket_refund (task, unused);
  bucket_refund (queue, unused);
  g_mutex_unlock (&throttle_mutex);
}

gsize
bg_throttle_take_sync (BgThrottle    *task,
                       BgThrottle    *queue,
                       gsize          wanted,
                       gsize          left,
                       GCancellable  *cancellable,
                       GError       **error)
{
  GPollFD pollfd = { -1, G_IO_IN, 0 };
  gboolean have_fd = FALSE;
  gsize grant = 0;

  g_return_val_if_fail (wanted > 0, 0);

  while (!g_cancellable_set_error_if_cancelled (cancellable, error))
    {
      gint64 delay;

      grant = bg_throttle_take (task, queue, wanted, left, &delay);
      if (grant > 0)
        break;

      /* The cancellable's descriptor wakes the sleep; without one, the sleep is at most a tick
       * and the cancellable is looked at again after it. */
      if (!have_fd && cancellable != NULL)
        have_fd = g_cancellable_make_pollfd (cancellable, &pollfd);
      if (have_fd)
        {
          pollfd.revents = 0;
          g_poll (&pollfd, 1, (int) ((delay + 999) / 1000));
        }
      else
        {
          g_usleep (delay);
        }
    }

  if (have_fd)
    g_cancellable_release_fd (cancellable);

  return grant;
}

GSource *
bg_throttle_source_new (gint64        delay_usec,
                        GCancellable *cancellable)
{
  GSource *source = g_cancellable_source_new (cancellable);

  g_source_set_ready_time (source, g_get_monotonic_time () + MAX (delay_usec, 0));
  g_source_set_static_name (source, "[bg] bandwidth cap");

  return source;
}
