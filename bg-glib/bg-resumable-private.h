/* bg-resumable-private.h: uploads that go on from the server's offset (tus 1.0, IETF draft)
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <libsoup/soup.h>

#include "bg-engine-private.h"

G_BEGIN_DECLS

/* Called on the engine's context when the AUTO probe found a server that speaks neither
 * resumable protocol: the attempt goes on as a plain upload of the message it started with. */
typedef void (*BgResumablePlainFunc) (gpointer user_data);

/* Whether the task's upload may be a resumable one (its options ask for AUTO, TUS or IETF). */
gboolean bg_resumable_wanted  (BgStoreRecord        *record);

/* Runs the attempt of @job with @msg (the request as prepared, which names the target and
 * carries the app's headers) as a resumable upload: the protocol is found out if it must be,
 * the stored upload resource is asked for its offset or a new one is made, and the rest of the
 * source is appended.  @fd is the source, opened when the attempt began (the call takes a
 * descriptor of its own); @stale_url, when set, is the upload resource of an earlier version
 * of the source, deleted first.  The attempt ends with bg_job_attempt_finished(), or with
 * @plain when the server offers no resumable protocol. */
void     bg_resumable_start   (BgJob                *job,
                               SoupMessage          *msg,
                               int                   fd,
                               const char           *path,
                               gboolean              verify,
                               const char           *stale_url,
                               int                   stale_protocol,
                               BgResumablePlainFunc  plain,
                               gpointer              plain_data,
                               GDestroyNotify        plain_data_free);

/* The task is given up (cancelled, or finished without success): its upload resource on the
 * server is deleted, in the background, and forgotten. */
void     bg_resumable_discard (BgJob                *job);

/* Test hook, NULL outside the test suites: called on the sending thread before each append
 * with the protocol, the upload URL and the offset the append starts at, so that a test can
 * change the source or wait for the server's upload to expire. */
typedef void (*BgResumableTestAppendHook) (BgUploadProtocol  protocol,
                                           const char       *upload_url,
                                           gint64            offset);
extern BgResumableTestAppendHook bg_resumable_test_append_hook;

G_END_DECLS
