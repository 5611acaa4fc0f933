/* bg-http-private.h: HTTP details shared by the transfers
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#pragma once

#include <libsoup/soup.h>

#include "bg-response.h"

G_BEGIN_DECLS

/* The longest wait a Retry-After header can ask for; larger values are clamped to it. */
#define BG_HTTP_RETRY_AFTER_MAX (7 * 24 * 60 * 60)

gint64          bg_http_parse_retry_after    (const char          *value,
                                              const char          *date,
                                              GDateTime           *now);
gboolean        bg_http_parse_content_range  (const char          *value,
                                              gint64              *start,
                                              gint64              *end,
                                              gint64              *total);
gboolean        bg_http_content_length_is_valid (SoupMessageHeaders *headers);
gboolean        bg_http_check_request_headers (SoupMessageHeaders *headers,
                                               GError            **error);
char           *bg_http_encode_headers       (SoupMessageHeaders  *headers);
gboolean        bg_http_decode_headers       (const char          *encoded,
                                              SoupMessageHeaders  *into,
                                              GError             **error);
gboolean        bg_http_is_strong_etag       (const char          *etag);
gboolean        bg_http_is_strong_last_modified (const char       *last_modified,
                                                 const char       *date);
BgResponseKind  bg_http_classify_error       (const GError        *error);
gboolean        bg_http_uri_is_acceptable    (GUri                *uri,
                                              GError             **error);
gboolean        bg_http_is_redirect          (guint                status);
GUri           *bg_http_redirect_target      (SoupMessage         *msg,
                                              guint               *redirects,
                                              gboolean            *same_origin,
                                              GError             **error);
gboolean        bg_http_is_credential_header (const char          *name);
char           *bg_http_uri_hide_password    (const char          *uri,
                                              gboolean            *hidden);
void            bg_http_copy_request_headers (SoupMessageHeaders  *from,
                                              SoupMessageHeaders  *to,
                                              gboolean             same_origin);
SoupSession    *bg_http_default_session_new  (void);

G_END_DECLS
