/* bg-response.c: the outcome of one transfer
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include "bg-enums.h"
#include "bg-http-private.h"
#include "bg-response-private.h"

/**
 * BgResponse:
 *
 * The outcome of one transfer: how it ended ([enum@Bg.ResponseKind]), the HTTP status and
 * headers when there were any, the error when it did not succeed, and the file it concerns.
 *
 * A `BgResponse` is immutable. It is what [method@Bg.Downloader.download_finish] and
 * [method@Bg.Uploader.upload_finish] return and what the `task-finished` signals carry, also
 * when the transfer ended in an earlier run of the app: the response is kept in the task
 * database until it has been collected.
 */
struct _BgResponse
{
  GObject             parent_instance;

  BgResponseKind      kind;
  guint               status;
  char               *reason;
  SoupMessageHeaders *headers;
  gint64              retry_after;
  GError             *error;
  GFile              *file;
  GBytes             *body;
  char               *identifier;
};

G_DEFINE_FINAL_TYPE (BgResponse, bg_response, G_TYPE_OBJECT)

enum {
  PROP_0,
  PROP_KIND,
  PROP_STATUS,
  PROP_REASON,
  PROP_HEADERS,
  PROP_RETRY_AFTER,
  PROP_ERROR,
  PROP_FILE,
  PROP_BODY,
  PROP_IDENTIFIER,
  N_PROPS
};

static GParamSpec *properties[N_PROPS];

static void
bg_response_finalize (GObject *object)
{
  BgResponse *self = (BgResponse *)object;

  g_clear_pointer (&self->reason, g_free);
  g_clear_pointer (&self->headers, soup_message_headers_unref);
  g_clear_error (&self->error);
  g_clear_object (&self->file);
  g_clear_pointer (&self->body, g_bytes_unref);
  g_clear_pointer (&self->identifier, g_free);

  G_OBJECT_CLASS (bg_response_parent_class)->finalize (object);
}

static void
bg_response_get_property (GObject    *object,
                          guint       prop_id,
                          GValue     *value,
                          GParamSpec *pspec)
{
  BgResponse *self = BG_RESPONSE (object);

  switch (prop_id)
    {
    case PROP_KIND:
      g_value_set_enum (value, self->kind);
      break;
    case PROP_STATUS:
      g_value_set_uint (value, self->status);
      break;
    case PROP_REASON:
      g_value_set_string (value, self->reason);
      break;
    case PROP_HEADERS:
      g_value_set_boxed (value, self->headers);
      break;
    case PROP_RETRY_AFTER:
      g_value_set_int64 (value, self->retry_after);
      break;
    case PROP_ERROR:
      g_value_set_boxed (value, self->error);
      break;
    case PROP_FILE:
      g_value_set_object (value, self->file);
      break;
    case PROP_BODY:
      g_value_set_boxed (value, self->body);
      break;
    case PROP_IDENTIFIER:
      g_value_set_string (value, self->identifier);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
bg_response_class_init (BgResponseClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = bg_response_finalize;
  object_class->get_property = bg_response_get_property;

  /**
   * BgResponse:kind:
   *
   * How the transfer ended.
   */
  properties[PROP_KIND] =
    g_param_spec_enum ("kind", NULL, NULL,
                       BG_TYPE_RESPONSE_KIND, BG_RESPONSE_FAILED,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * BgResponse:status:
   *
   * The HTTP status of the final answer, or 0 when there was none.
   */
  properties[PROP_STATUS] =
    g_param_spec_uint ("status", NULL, NULL,
                       0, G_MAXUINT, 0,
                       G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * BgResponse:reason:
   *
   * The reason phrase that came with [property@Bg.Response:status], if any.  Bytes of it that
   * are not UTF-8 are replaced by U+FFFD.
   */
  properties[PROP_REASON] =
    g_param_spec_string ("reason", NULL, NULL,
                         NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * BgResponse:headers:
   *
   * The headers of the final answer, if there was one.
   */
  properties[PROP_HEADERS] =
    g_param_spec_boxed ("headers", NULL, NULL,
                        SOUP_TYPE_MESSAGE_HEADERS,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * BgResponse:retry-after:
   *
   * The number of seconds the server asked us to wait before trying again, or -1.
   */
  properties[PROP_RETRY_AFTER] =
    g_param_spec_int64 ("retry-after", NULL, NULL,
                        -1, G_MAXINT64, -1,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * BgResponse:error:
   *
   * What went wrong, when the kind is %BG_RESPONSE_FAILED or %BG_RESPONSE_RETRY.
   */
  properties[PROP_ERROR] =
    g_param_spec_boxed ("error", NULL, NULL,
                        G_TYPE_ERROR,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * BgResponse:file:
   *
   * For a download the finished file, for an upload the source file.
   */
  properties[PROP_FILE] =
    g_param_spec_object ("file", NULL, NULL,
                         G_TYPE_FILE,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * BgResponse:body:
   *
   * The body of an upload's answer, capped by [property@Bg.Uploader:max-response-size].
   */
  properties[PROP_BODY] =
    g_param_spec_boxed ("body", NULL, NULL,
                        G_TYPE_BYTES,
                        G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  /**
   * BgResponse:identifier:
   *
   * The identifier of the task this response belongs to.
   */
  properties[PROP_IDENTIFIER] =
    g_param_spec_string ("identifier", NULL, NULL,
                         NULL,
                         G_PARAM_READABLE | G_PARAM_STATIC_STRINGS);

  g_object_class_install_properties (object_class, N_PROPS, properties);
}

static void
bg_response_init (BgResponse *self)
{
  self->retry_after = -1;
}

BgResponse *
bg_response_new (BgResponseKind      kind,
                 const char         *identifier,
                 guint               status,
                 const char         *reason,
                 SoupMessageHeaders *headers,
                 GFile              *file,
                 GBytes             *body,
                 const GError       *error)
{
  BgResponse *self;

  g_return_val_if_fail (identifier != NULL, NULL);

  self = g_object_new (BG_TYPE_RESPONSE, NULL);
  self->kind = kind;
  self->identifier = g_strdup (identifier);
  self->status = status;
  /* The server's bytes: what is not UTF-8 becomes U+FFFD, since bindings must read it. */
  self->reason = reason != NULL ? g_utf8_make_valid (reason, -1) : NULL;
  self->headers = headers ? soup_message_headers_ref (headers) : NULL;
  self->file = file ? g_object_ref (file) : NULL;
  self->body = body ? g_bytes_ref (body) : NULL;
  self->error = error ? g_error_copy (error) : NULL;

  if (headers != NULL)
    {
      const char *retry_after = soup_message_headers_get_one (headers, "Retry-After");
      const char *date = soup_message_headers_get_one (headers, "Date");

      if (retry_after != NULL)
        {
          g_autoptr(GDateTime) now = g_date_time_new_now_utc ();

          self->retry_after = bg_http_parse_retry_after (retry_after, date, now);
        }
    }

  return self;
}

/**
 * bg_response_get_kind:
 * @self: a #BgResponse
 *
 * Gets how the transfer ended.
 *
 * Returns: the kind of outcome
 */
BgResponseKind
bg_response_get_kind (BgResponse *self)
{
  g_return_val_if_fail (BG_IS_RESPONSE (self), BG_RESPONSE_FAILED);

  return self->kind;
}

/**
 * bg_response_get_status:
 * @self: a #BgResponse
 *
 * Gets the HTTP status of the final answer.
 *
 * Returns: the HTTP status, or 0 when no answer came back
 */
guint
bg_response_get_status (BgResponse *self)
{
  g_return_val_if_fail (BG_IS_RESPONSE (self), 0);

  return self->status;
}

/**
 * bg_response_get_reason:
 * @self: a #BgResponse
 *
 * Gets the reason phrase the server gave with the status.
 *
 * Returns: (nullable): the reason phrase
 */
const char *
bg_response_get_reason (BgResponse *self)
{
  g_return_val_if_fail (BG_IS_RESPONSE (self), NULL);

  return self->reason;
}

/**
 * bg_response_get_headers:
 * @self: a #BgResponse
 *
 * Gets the headers of the final answer.
 *
 * Returns: (transfer none) (nullable): the response headers, or %NULL when no answer came back
 */
SoupMessageHeaders *
bg_response_get_headers (BgResponse *self)
{
  g_return_val_if_fail (BG_IS_RESPONSE (self), NULL);

  return self->headers;
}

/**
 * bg_response_get_retry_after:
 * @self: a #BgResponse
 *
 * Gets how long the server asked us to wait before trying again.
 *
 * Both forms of the `Retry-After` header are understood: a number of seconds, and an HTTP-date,
 * which is measured against the answer's `Date` header when it has one.
 *
 * Returns: the number of seconds to wait, or -1 when the server did not say
 */
gint64
bg_response_get_retry_after (BgResponse *self)
{
  g_return_val_if_fail (BG_IS_RESPONSE (self), -1);

  return self->retry_after;
}

/**
 * bg_response_get_error:
 * @self: a #BgResponse
 *
 * Gets what went wrong. It is set when the kind is %BG_RESPONSE_FAILED, and when it is
 * %BG_RESPONSE_RETRY because of a transport failure.
 *
 * Returns: (transfer none) (nullable): the error
 */
const GError *
bg_response_get_error (BgResponse *self)
{
  g_return_val_if_fail (BG_IS_RESPONSE (self), NULL);

  return self->error;
}

/**
 * bg_response_get_file:
 * @self: a #BgResponse
 *
 * Gets the file the transfer concerns: for a download the finished file, for an upload the
 * source file.
 *
 * Returns: (transfer none) (nullable): the file
 */
GFile *
bg_response_get_file (BgResponse *self)
{
  g_return_val_if_fail (BG_IS_RESPONSE (self), NULL);

  return self->file;
}

/**
 * bg_response_get_body:
 * @self: a #BgResponse
 *
 * Gets the body of an upload's answer, at most
 * [property@Bg.Uploader:max-response-size] bytes of it.
 *
 * Returns: (transfer none) (nullable): the response body
 */
GBytes *
bg_response_get_body (BgResponse *self)
{
  g_return_val_if_fail (BG_IS_RESPONSE (self), NULL);

  return self->body;
}

/**
 * bg_response_get_identifier:
 * @self: a #BgResponse
 *
 * Gets the identifier of the task this response belongs to.
 *
 * Returns: the identifier
 */
const char *
bg_response_get_identifier (BgResponse *self)
{
  g_return_val_if_fail (BG_IS_RESPONSE (self), NULL);

  return self->identifier;
}

/**
 * bg_response_kind_for_status:
 * @status: an HTTP status code
 *
 * Classifies a final HTTP status the way bg-glib does.
 *
 * 200, 201, 202, 204 and 206 are %BG_RESPONSE_SUCCESS (a 206 counts only when it answers the
 * library's own Range request; the transfer checks that separately). 408, 429, 500, 502, 503 and
 * 504 are %BG_RESPONSE_RETRY. Every other status from 100 to 599, including an unfollowed
 * redirection, is %BG_RESPONSE_REJECTED. A number outside that range is not HTTP and gives
 * %BG_RESPONSE_FAILED.
 *
 * Returns: the kind of outcome the status means
 */
BgResponseKind
bg_response_kind_for_status (guint status)
{
  if (status < 100 || status > 599)
    return BG_RESPONSE_FAILED;

  switch (status)
    {
    case 200:
    case 201:
    case 202:
    case 204:
    case 206:
      return BG_RESPONSE_SUCCESS;

    case 408:
    case 429:
    case 500:
    case 502:
    case 503:
    case 504:
      return BG_RESPONSE_RETRY;

    default:
      return BG_RESPONSE_REJECTED;
    }
}
