/* bg-throttle-private.h: bandwidth caps, as token buckets
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* The longest a throttled transfer sleeps before it looks again: a changed cap, a pause or a
 * cancel is seen within this. */
#define BG_THROTTLE_TICK_USEC (500 * 1000)

/* A token bucket filled at a rate in bytes per second (0: no cap) and holding at most a tick's
 * worth of it, so a transfer that was held back never bursts more than 1/2 s of its rate.
 * Reference counted and safe to use from any thread. */
typedef struct _BgThrottle BgThrottle;

BgThrottle *bg_throttle_new          (guint64       rate);
BgThrottle *bg_throttle_ref          (BgThrottle   *self);
void        bg_throttle_unref        (BgThrottle   *self);
void        bg_throttle_set_rate     (BgThrottle   *self,
                                      guint64       rate);
guint64     bg_throttle_get_rate     (BgThrottle   *self);

/* How many of @wanted bytes may move now through both buckets (@task's and @queue's; either
 * may be NULL or uncapped).  Those bytes are taken from the buckets; give back what did not
 * move with bg_throttle_refund().  When the buckets hold too little to be worth a read, returns
 * 0 and sets @delay_usec to how long to wait before asking again (at most a tick).  @left is
 * what the transfer has left to move at most (G_MAXSIZE when not known): the end of a body
 * waits for no more than it needs. */
gsize       bg_throttle_take         (BgThrottle   *task,
                                      BgThrottle   *queue,
                                      gsize         wanted,
                                      gsize         left,
                                      gint64       *delay_usec);
void        bg_throttle_refund       (BgThrottle   *task,
                                      BgThrottle   *queue,
                                      gsize         unused);
/* The same for a worker thread: sleeps, without spinning, until some bytes may move, and wakes
 * at once when @cancellable is cancelled (then returns 0 with @error set). */
gsize       bg_throttle_take_sync    (BgThrottle   *task,
                                      BgThrottle   *queue,
                                      gsize         wanted,
                                      gsize         left,
                                      GCancellable *cancellable,
                                      GError      **error);
/* A source for the main loop that fires after @delay_usec, or as soon as @cancellable (which
 * may be NULL) is cancelled; its callback is a GCancellableSourceFunc. */
GSource    *bg_throttle_source_new   (gint64        delay_usec,
                                      GCancellable *cancellable);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (BgThrottle, bg_throttle_unref)

G_END_DECLS
