/* bg-response.h: the outcome of one transfer
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#if !defined (BG_GLIB_INSIDE) && !defined (BG_COMPILATION)
#error "Only <bg-glib.h> can be included directly."
#endif

#include <gio/gio.h>
#include <libsoup/soup.h>

#include "bg-version-macros.h"

G_BEGIN_DECLS

/**
 * BgResponseKind:
 * @BG_RESPONSE_SUCCESS: the transfer completed: HTTP 200, 201, 202, 204, or 206 answering our own
 *   Range request
 * @BG_RESPONSE_RETRY: the transfer did not complete, but trying again later may help: HTTP 408,
 *   429, 500, 502, 503, 504, or a transient transport failure (connection refused or reset,
 *   timeout, host lookup failure, network unreachable)
 * @BG_RESPONSE_REJECTED: the server gave a final answer that is not success: every other HTTP
 *   status, including a redirection that was not followed
 * @BG_RESPONSE_FAILED: nothing useful came back and trying again would not help, such as a TLS
 *   certificate failure, an unreadable source, a full disk, a failed integrity check or a protocol
 *   violation; [method@Bg.Response.get_error] says which
 *
 * How a transfer ended.
 */
typedef enum {
  BG_RESPONSE_SUCCESS,
  BG_RESPONSE_RETRY,
  BG_RESPONSE_REJECTED,
  BG_RESPONSE_FAILED,
} BgResponseKind;

#define BG_TYPE_RESPONSE (bg_response_get_type ())

BG_AVAILABLE_IN_ALL
G_DECLARE_FINAL_TYPE (BgResponse, bg_response, BG, RESPONSE, GObject)

BG_AVAILABLE_IN_ALL
BgResponseKind      bg_response_get_kind        (BgResponse *self);
BG_AVAILABLE_IN_ALL
guint               bg_response_get_status      (BgResponse *self);
BG_AVAILABLE_IN_ALL
const char         *bg_response_get_reason      (BgResponse *self);
BG_AVAILABLE_IN_ALL
SoupMessageHeaders *bg_response_get_headers     (BgResponse *self);
BG_AVAILABLE_IN_ALL
gint64              bg_response_get_retry_after (BgResponse *self);
BG_AVAILABLE_IN_ALL
const GError       *bg_response_get_error       (BgResponse *self);
BG_AVAILABLE_IN_ALL
GFile              *bg_response_get_file        (BgResponse *self);
BG_AVAILABLE_IN_ALL
GBytes             *bg_response_get_body        (BgResponse *self);
BG_AVAILABLE_IN_ALL
const char         *bg_response_get_identifier  (BgResponse *self);

BG_AVAILABLE_IN_ALL
BgResponseKind      bg_response_kind_for_status (guint status);

G_END_DECLS
