/* test-throttle.c: the token buckets behind the bandwidth caps
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * Only bounds that time passing can not break: time passing fills a bucket, so it can only
 * make a grant larger or a wait shorter.
 */

#include "config.h"

#include "bg-throttle-private.h"
#include "test-utils.h"

#define RATE 1000   /* bytes a second: a tick (1/2 s) holds 500 bytes */

/* A new transfer's first read does not wait: the bucket starts with half a tick. */
static void
test_first_read_at_once (void)
{
  g_autoptr(BgThrottle) task = bg_throttle_new (RATE);
  gint64 delay = -1;
  gsize grant;

  grant = bg_throttle_take (task, NULL, 200, G_MAXSIZE, &delay);
  g_assert_cmpuint (grant, ==, 200);
  g_assert_cmpint (delay, ==, 0);
}

/* A drained bucket makes the transfer wait, at most a tick. */
static void
test_drained_waits (void)
{
  g_autoptr(BgThrottle) task = bg_throttle_new (RATE);
  gint64 delay = -1;
  gsize grant;

  grant = bg_throttle_take (task, NULL, G_MAXSIZE, G_MAXSIZE, &delay);
  g_assert_cmpuint (grant, >=, RATE / 4);
  g_assert_cmpuint (grant, <=, RATE / 2);

  grant = bg_throttle_take (task, NULL, 400, G_MAXSIZE, &delay);
  if (grant == 0)
    {
      g_assert_cmpint (delay, >, 0);
      g_assert_cmpint (delay, <=, BG_THROTTLE_TICK_USEC);
    }
}

/* The end of a body waits for what it has left, not for a share of the tick: 5 bytes at
 * 1000 bytes a second are there within 5 ms of a drained bucket. */
static void
test_end_waits_for_what_is_left (void)
{
  g_autoptr(BgThrottle) task = bg_throttle_new (RATE);
  gint64 delay = -1;
  gsize grant;

  grant = bg_throttle_take (task, NULL, G_MAXSIZE, G_MAXSIZE, &delay);
  g_assert_cmpuint (grant, >, 0);

  grant = bg_throttle_take (task, NULL, 400, 5, &delay);
  if (grant == 0)
    g_assert_cmpint (delay, <=, 5 * G_USEC_PER_SEC / RATE + 1000);
  else
    g_assert_cmpuint (grant, >=, 5);
}

/* A transfer with nothing left but the end of its body waits for a byte at most. */
static void
test_end_of_body_waits_for_a_byte (void)
{
  g_autoptr(BgThrottle) task = bg_throttle_new (RATE);
  gint64 delay = -1;

  bg_throttle_take (task, NULL, G_MAXSIZE, G_MAXSIZE, &delay);
  if (bg_throttle_take (task, NULL, 1, 1, &delay) == 0)
    g_assert_cmpint (delay, <=, G_USEC_PER_SEC / RATE + 1000);
}

/* What a read did not use goes back into the bucket. */
static void
test_refund (void)
{
  g_autoptr(BgThrottle) task = bg_throttle_new (RATE);
  gint64 delay = -1;
  gsize grant;

  grant = bg_throttle_take (task, NULL, G_MAXSIZE, G_MAXSIZE, &delay);
  bg_throttle_refund (task, NULL, grant);
  g_assert_cmpuint (bg_throttle_take (task, NULL, grant, G_MAXSIZE, &delay), ==, grant);
}

int
main (int   argc,
      char *argv[])
{
  g_test_init (&argc, &argv, NULL);

  g_test_add_func ("/throttle/first-read-at-once", test_first_read_at_once);
  g_test_add_func ("/throttle/drained-waits", test_drained_waits);
  g_test_add_func ("/throttle/end-waits-for-what-is-left", test_end_waits_for_what_is_left);
  g_test_add_func ("/throttle/end-of-body-waits-for-a-byte", test_end_of_body_waits_for_a_byte);
  g_test_add_func ("/throttle/refund", test_refund);

  return g_test_run ();
}
