/* bg-store-response.c: a task's final response as its database record keeps it
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-http-private.h"
#include "bg-response-private.h"
#include "bg-store-response-private.h"

BgResponse *
bg_store_record_dup_response (const BgStoreRecord *record,
                              GFile               *file)
{
  g_autoptr(SoupMessageHeaders) headers = NULL;
  g_autoptr(GError) error = NULL;

  g_return_val_if_fail (record != NULL, NULL);

  if (record->response_headers != NULL)
    {
      g_autoptr(GError) decode_error = NULL;

      headers = soup_message_headers_new (SOUP_MESSAGE_HEADERS_RESPONSE);
      if (!bg_http_decode_headers (record->response_headers, headers, &decode_error))
        g_clear_pointer (&headers, soup_message_headers_unref);
    }

  if (record->error_domain != NULL)
    error = g_error_new_literal (g_quark_from_string (record->error_domain),
                                 record->error_code,
                                 record->error_message ? record->error_message : "");

  return bg_response_new (record->response_kind, record->identifier,
                          record->response_status, record->response_reason,
                          headers, file, record->response_body, error);
}

void
bg_store_record_set_response (BgStoreRecord *record,
                              BgResponse    *response)
{
  const GError *error;
  GBytes *body;

  g_return_if_fail (record != NULL);
  g_return_if_fail (BG_IS_RESPONSE (response));

  error = bg_response_get_error (response);
  body = bg_response_get_body (response);

  record->has_response = TRUE;
  record->response_kind = bg_response_get_kind (response);
  record->response_status = bg_response_get_status (response);
  g_free (record->response_reason);
  record->response_reason = g_strdup (bg_response_get_reason (response));
  g_free (record->response_headers);
  record->response_headers = bg_http_encode_headers (bg_response_get_headers (response));
  g_clear_pointer (&record->response_body, g_bytes_unref);
  record->response_body = body ? g_bytes_ref (body) : NULL;
  g_clear_pointer (&record->error_domain, g_free);
  g_clear_pointer (&record->error_message, g_free);
  record->error_code = 0;
  if (error != NULL)
    {
      record->error_domain = g_strdup (g_quark_to_string (error->domain));
      record->error_code = error->code;
      record->error_message = g_strdup (error->message);
    }
}
