/* bg-http.c: HTTP details shared by the transfers
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "bg-error.h"
#include "bg-http-private.h"

static gboolean
parse_decimal (const char  *p,
               const char **endp,
               gint64      *out)
{
  guint64 value = 0;
  const char *start = p;

  while (g_ascii_isdigit (*p))
    {
      guint digit = *p - '0';

      if (value > ((guint64) G_MAXINT64 - digit) / 10)
        {
          /* Too large to mean anything; consume the digits and saturate. */
          value = G_MAXINT64;
          while (g_ascii_isdigit (*p))
            p++;
          break;
        }

      value = value * 10 + digit;
      p++;
    }

  *endp = p;
  *out = (gint64) value;

  return p != start;
}

static const char *
skip_ows (const char *p)
{
  while (*p == ' ' || *p == '\t')
    p++;
  return p;
}

/* Parses a Retry-After value: either delay-seconds or an HTTP-date (IMF-fixdate, RFC 850 or
 * asctime).  An HTTP-date is measured against @date, the answer's Date header, when it parses,
 * and against @now otherwise.  Returns the number of seconds to wait, clamped to
 * BG_HTTP_RETRY_AFTER_MAX, or -1 when @value means nothing. */
gint64
bg_http_parse_retry_after (const char *value,
                           const char *date,
                           GDateTime  *now)
{
  g_autoptr(GDateTime) when = NULL;
  g_autoptr(GDateTime) reference = NULL;
  const char *p;
  const char *end;
  gint64 seconds;

  if (value == NULL)
    return -1;

  p = skip_ows (value);

  if (g_ascii_isdigit (*p))
    {
      if (!parse_decimal (p, &end, &seconds))
        return -1;
      if (*skip_ows (end) != '\0')
        return -1;
      return MIN (seconds, BG_HTTP_RETRY_AFTER_MAX);
    }

  /* An HTTP-date starts with a day name. */
  if (!g_ascii_isalpha (*p))
    return -1;

  when = soup_date_time_new_from_http_string (p);
  if (when == NULL)
    return -1;

  if (date != NULL)
    reference = soup_date_time_new_from_http_string (date);
  if (reference == NULL && now != NULL)
    reference = g_date_time_ref (now);
  if (reference == NULL)
    reference = g_date_time_new_now_utc ();

  seconds = g_date_time_difference (when, reference) / G_TIME_SPAN_SECOND;

  return CLAMP (seconds, 0, BG_HTTP_RETRY_AFTER_MAX);
}

/* Parses a Content-Range value in either of its byte forms, "bytes FIRST-LAST/LENGTH" (LENGTH
 * may be "*") and "bytes * / LENGTH".  Unknown parts come back as -1.  It is strict: anything
 * it does not understand, and any range that is not self-consistent, gives FALSE. */
gboolean
bg_http_parse_content_range (const char *value,
                             gint64     *start,
                             gint64     *end,
                             gint64     *total)
{
  const char *p;
  gint64 first = -1;
  gint64 last = -1;
  gint64 length = -1;

  g_assert (start != NULL && end != NULL && total != NULL);

  *start = *end = *total = -1;

  if (value == NULL)
    return FALSE;

  p = skip_ows (value);
  if (g_ascii_strncasecmp (p, "bytes", 5) != 0)
    return FALSE;
  p += 5;
  if (*p != ' ' && *p != '\t')
    return FALSE;
  p = skip_ows (p);

  if (*p == '*')
    {
      p++;
    }
  else
    {
      if (!parse_decimal (p, &p, &first) || *p != '-')
        return FALSE;
      p++;
      if (!parse_decimal (p, &p, &last))
        return FALSE;
      if (first == G_MAXINT64 || last == G_MAXINT64 || last < first)
        return FALSE;
    }

  if (*p != '/')
    return FALSE;
  p++;

  if (*p == '*')
    {
      if (first < 0)
        return FALSE;  /* an unknown range of an unknown length says nothing */
      p++;
    }
  else
    {
      if (!parse_decimal (p, &p, &length) || length == G_MAXINT64)
        return FALSE;
      if (first >= 0 && last >= length)
        return FALSE;
    }

  if (*skip_ows (p) != '\0')
    return FALSE;

  *start = first;
  *end = last;
  *total = length;

  return TRUE;
}

/* Headers are kept in the database as "Name: value" lines separated by "\n".  libsoup refuses
 * CR and LF inside values, so a line break can only separate two headers. */
/* Whether an answer that libsoup frames by its Content-Length declares a length: one decimal
 * number, nothing else but spaces around it, below G_MAXINT64.  libsoup reads the value with
 * g_ascii_strtoull, which takes "-5" for a negative length (read as an empty body) and lets an
 * overflow become "until the connection closes"; a lying server must not turn either into a
 * finished file.  An answer framed otherwise (chunked, or by the end of the connection) is
 * valid here. */
gboolean
bg_http_content_length_is_valid (SoupMessageHeaders *headers)
{
  const char *value;
  const char *end;
  gint64 length;

  g_return_val_if_fail (headers != NULL, FALSE);

  if (soup_message_headers_get_encoding (headers) != SOUP_ENCODING_CONTENT_LENGTH)
    return TRUE;

  value = soup_message_headers_get_one (headers, "Content-Length");
  if (value == NULL)
    return TRUE;

  return parse_decimal (skip_ows (value), &end, &length) && *skip_ows (end) == '\0' &&
         length < G_MAXINT64;
}

/* Whether the app's request headers can be kept with the task: the task database keeps them as
 * text and the bus carries them as strings, so each name and value must be UTF-8. */
gboolean
bg_http_check_request_headers (SoupMessageHeaders  *headers,
                               GError             **error)
{
  SoupMessageHeadersIter iter;
  const char *name;
  const char *value;

  if (headers == NULL)
    return TRUE;

  soup_message_headers_iter_init (&iter, headers);
  while (soup_message_headers_iter_next (&iter, &name, &value))
    {
      if (!g_utf8_validate (name, -1, NULL) || !g_utf8_validate (value, -1, NULL))
        {
          g_autofree char *shown = g_utf8_make_valid (name, -1);

          g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                       _("The request header “%s” is not UTF-8"), shown);
          return FALSE;
        }
    }

  return TRUE;
}

char *
bg_http_encode_headers (SoupMessageHeaders *headers)
{
  g_autoptr(GString) out = g_string_new (NULL);
  SoupMessageHeadersIter iter;
  const char *name;
  const char *value;

  if (headers == NULL)
    return NULL;

  soup_message_headers_iter_init (&iter, headers);
  while (soup_message_headers_iter_next (&iter, &name, &value))
    {
      if (strpbrk (value, "\r\n") != NULL)
        continue;
      g_string_append_printf (out, "%s: %s\n", name, value);
    }

  /* Kept with every task: a copy at its length, without the string's spare room (128 bytes at
   * least), and not the string cut to size, which would leave a hole in the heap. */
  return g_strndup (out->str, out->len);
}

static gboolean
is_token_char (char c)
{
  return g_ascii_isalnum (c) || (c != '\0' && strchr ("!#$%&'*+-.^_`|~", c) != NULL);
}

gboolean
bg_http_decode_headers (const char          *encoded,
                        SoupMessageHeaders  *into,
                        GError             **error)
{
  const char *line;

  g_assert (into != NULL);

  if (encoded == NULL)
    return TRUE;

  if (!g_utf8_validate (encoded, -1, NULL))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                   _("Stored headers are not valid UTF-8"));
      return FALSE;
    }

  line = encoded;
  while (*line != '\0')
    {
      const char *eol = strchr (line, '\n');
      const char *colon;
      const char *p;
      g_autofree char *name = NULL;
      g_autofree char *value = NULL;

      if (eol == NULL)
        eol = line + strlen (line);

      for (p = line; p < eol && is_token_char (*p); p++)
        ;
      colon = p;
      if (colon == line || colon >= eol || *colon != ':')
        {
          g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                       _("Stored header line is malformed"));
          return FALSE;
        }

      p = skip_ows (colon + 1);
      if (p > eol)
        p = eol;

      if (memchr (p, '\r', eol - p) != NULL)
        {
          g_set_error (error, BG_ERROR, BG_ERROR_STORE,
                       _("Stored header value contains a carriage return"));
          return FALSE;
        }

      name = g_strndup (line, colon - line);
      value = g_strndup (p, eol - p);
      soup_message_headers_append (into, name, value);

      line = *eol ? eol + 1 : eol;
    }

  return TRUE;
}

gboolean
bg_http_is_strong_etag (const char *etag)
{
  gsize len;

  if (etag == NULL)
    return FALSE;

  /* A weak validator starts with W/; a strong one is a quoted string. */
  len = strlen (etag);
  return len >= 2 && etag[0] == '"' && etag[len - 1] == '"';
}

/* RFC 9110, section 8.8.2.2: a Last-Modified date is strong when it is at least 60 seconds
 * older than the Date of the response that carried it. */
gboolean
bg_http_is_strong_last_modified (const char *last_modified,
                                 const char *date)
{
  g_autoptr(GDateTime) lm = NULL;
  g_autoptr(GDateTime) dt = NULL;

  if (last_modified == NULL || date == NULL)
    return FALSE;

  lm = soup_date_time_new_from_http_string (last_modified);
  dt = soup_date_time_new_from_http_string (date);
  if (lm == NULL || dt == NULL)
    return FALSE;

  return g_date_time_difference (dt, lm) >= 60 * G_TIME_SPAN_SECOND;
}

/* libsoup 3.2 reports a stream that an HTTP/2 server reset, or left unanswered when it sent
 * GOAWAY, as G_IO_ERROR_FAILED "HTTP/2 Error: <code name>" (untranslated).  These codes say the
 * server is going away or busy, not that the request or the protocol was wrong: a graceful
 * shutdown or reload (NO_ERROR), a request it did not process (REFUSED_STREAM), a stream it
 * cancelled (CANCEL), trouble of its own (INTERNAL_ERROR) or too many requests
 * (ENHANCE_YOUR_CALM). */
static gboolean
is_transient_http2_error (const GError *error)
{
  static const char * const codes[] = {
    "NO_ERROR", "REFUSED_STREAM", "CANCEL", "INTERNAL_ERROR", "ENHANCE_YOUR_CALM",
  };
  const char *code;

  if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_FAILED) ||
      !g_str_has_prefix (error->message, "HTTP/2 Error: "))
    return FALSE;

  code = error->message + strlen ("HTTP/2 Error: ");
  for (gsize i = 0; i < G_N_ELEMENTS (codes); i++)
    if (strcmp (code, codes[i]) == 0)
      return TRUE;

  return FALSE;
}

/* How a transport-level error should be reported: transient failures are worth a retry,
 * everything else is final. */
BgResponseKind
bg_http_classify_error (const GError *error)
{
  if (error == NULL)
    return BG_RESPONSE_FAILED;

  if (is_transient_http2_error (error))
    return BG_RESPONSE_RETRY;

  /* libsoup reports response headers past its size limit as partial input too; a server that
   * sends them is broken, not busy.  Compare with libsoup's own (translated) message. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT) &&
      g_strcmp0 (error->message, g_dgettext ("libsoup-3.0", "Header too big")) == 0)
    return BG_RESPONSE_FAILED;

  if (error->domain == G_IO_ERROR)
    {
      switch (error->code)
        {
        case G_IO_ERROR_CONNECTION_REFUSED:
        case G_IO_ERROR_CONNECTION_CLOSED:
        case G_IO_ERROR_TIMED_OUT:
        case G_IO_ERROR_HOST_UNREACHABLE:
        case G_IO_ERROR_NETWORK_UNREACHABLE:
        case G_IO_ERROR_HOST_NOT_FOUND:
        case G_IO_ERROR_PARTIAL_INPUT:
        case G_IO_ERROR_NOT_CONNECTED:
        case G_IO_ERROR_PROXY_FAILED:
        case G_IO_ERROR_BUSY:
        case G_IO_ERROR_WOULD_BLOCK:
          return BG_RESPONSE_RETRY;
        default:
          return BG_RESPONSE_FAILED;
        }
    }

  if (error->domain == G_RESOLVER_ERROR)
    return BG_RESPONSE_RETRY;

  if (error->domain == BG_ERROR)
    return error->code == BG_ERROR_TIMEOUT ? BG_RESPONSE_RETRY : BG_RESPONSE_FAILED;

  /* TLS failures, libsoup parse errors, redirect loops and the rest. */
  return BG_RESPONSE_FAILED;
}

gboolean
bg_http_uri_is_acceptable (GUri    *uri,
                           GError **error)
{
  const char *scheme;

  if (uri == NULL)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The request has no URI"));
      return FALSE;
    }

  scheme = g_uri_get_scheme (uri);
  if (scheme == NULL ||
      (g_ascii_strcasecmp (scheme, "http") != 0 && g_ascii_strcasecmp (scheme, "https") != 0))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("Unsupported URI scheme “%s”: only http and https can be transferred"),
                   scheme ? scheme : "");
      return FALSE;
    }

  if (g_uri_get_host (uri) == NULL || *g_uri_get_host (uri) == '\0')
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                   _("The URI has no host"));
      return FALSE;
    }

  return TRUE;
}

gboolean
bg_http_is_redirect (guint status)
{
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

#define MAX_REDIRECTS 20

/* Where the redirect answer in @msg points, counting it in *@redirects.  Returns NULL with
 * @error set when it must not be followed: too many of them, a Location that is not an http or
 * https URL, or https redirected to plain http.  *@same_origin says whether credentials may go
 * along. */
GUri *
bg_http_redirect_target (SoupMessage  *msg,
                         guint        *redirects,
                         gboolean     *same_origin,
                         GError      **error)
{
  SoupMessageHeaders *headers = soup_message_get_response_headers (msg);
  const char *location = soup_message_headers_get_one (headers, "Location");
  GUri *current = soup_message_get_uri (msg);
  g_autoptr(GUri) next = NULL;

  if (++*redirects > MAX_REDIRECTS)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_PROTOCOL, _("Too many redirects"));
      return NULL;
    }

  if (location != NULL)
    next = g_uri_parse_relative (current, location, SOUP_HTTP_URI_FLAGS, NULL);
  if (next == NULL || !bg_http_uri_is_acceptable (next, NULL))
    {
      g_set_error (error, BG_ERROR, BG_ERROR_PROTOCOL,
                   _("The server redirected to an address that cannot be used"));
      return NULL;
    }

  if (g_ascii_strcasecmp (g_uri_get_scheme (current), "https") == 0 &&
      g_ascii_strcasecmp (g_uri_get_scheme (next), "http") == 0)
    {
      g_set_error (error, BG_ERROR, BG_ERROR_INSECURE_REDIRECT,
                   _("Refusing a redirect from https to plain http"));
      return NULL;
    }

  *same_origin = g_ascii_strcasecmp (g_uri_get_scheme (current), g_uri_get_scheme (next)) == 0 &&
                 g_ascii_strcasecmp (g_uri_get_host (current), g_uri_get_host (next)) == 0 &&
                 g_uri_get_port (current) == g_uri_get_port (next);

  return g_steal_pointer (&next);
}

/* Whether the request header @name carries credentials: these are kept out of the database
 * unless the task keeps them, and do not follow a redirect to another origin. */
gboolean
bg_http_is_credential_header (const char *name)
{
  return g_ascii_strcasecmp (name, "Authorization") == 0 ||
         g_ascii_strcasecmp (name, "Cookie") == 0 ||
         g_ascii_strcasecmp (name, "Proxy-Authorization") == 0;
}

/* @uri (a request's URI as a string) as it may be stored or shown: without the password of its
 * userinfo.  A user name holding a ':' (the whole userinfo, from a URI parsed without
 * G_URI_FLAGS_HAS_PASSWORD) loses what follows it too.  *@hidden (may be NULL) says whether
 * anything was taken out.  A string that does not parse is returned as it is. */
char *
bg_http_uri_hide_password (const char *uri,
                           gboolean   *hidden)
{
  g_autoptr(GUri) parsed = NULL;
  g_autoptr(GUri) bare = NULL;
  g_autofree char *user = NULL;
  const char *given_user;

  if (hidden != NULL)
    *hidden = FALSE;

  if (uri == NULL)
    return NULL;

  /* No userinfo, nothing to hide: the common case, without parsing. */
  if (strchr (uri, '@') != NULL)
    parsed = g_uri_parse (uri, SOUP_HTTP_URI_FLAGS, NULL);
  if (parsed == NULL)
    return g_strdup (uri);

  given_user = g_uri_get_user (parsed);
  if (g_uri_get_password (parsed) == NULL &&
      (given_user == NULL || strchr (given_user, ':') == NULL))
    return g_strdup (uri);

  if (given_user != NULL && strcspn (given_user, ":") > 0)
    user = g_strndup (given_user, strcspn (given_user, ":"));
  bare = g_uri_build_with_user (g_uri_get_flags (parsed), g_uri_get_scheme (parsed),
                                user, NULL, NULL, g_uri_get_host (parsed),
                                g_uri_get_port (parsed), g_uri_get_path (parsed),
                                g_uri_get_query (parsed), g_uri_get_fragment (parsed));
  if (hidden != NULL)
    *hidden = TRUE;

  return g_uri_to_string (bare);
}

/* Copies the app's request headers onto a new message.  libsoup sets Host and Content-Length
 * itself, and credentials do not follow a redirect to another origin. */
void
bg_http_copy_request_headers (SoupMessageHeaders *from,
                              SoupMessageHeaders *to,
                              gboolean            same_origin)
{
  SoupMessageHeadersIter iter;
  const char *name;
  const char *value;

  soup_message_headers_iter_init (&iter, from);
  while (soup_message_headers_iter_next (&iter, &name, &value))
    {
      if (!same_origin && bg_http_is_credential_header (name))
        continue;
      if (g_ascii_strcasecmp (name, "Host") == 0 ||
          g_ascii_strcasecmp (name, "Content-Length") == 0)
        continue;
      soup_message_headers_append (to, name, value);
    }
}

/* The session a task queue uses when the app gives none.  It has no I/O timeout: an attempt
 * that stops moving bytes is for the engine's stall watchdog to end (BgTaskQueue:stall-timeout). */
SoupSession *
bg_http_default_session_new (void)
{
  g_autoptr(GTypeClass) session_class = NULL;

  /* The session's class, and the socket address types it and a bus connection both need, are
   * made before the proxy resolver below, whose GNOME module reads GSettings: dconf then
   * connects to the session bus on a thread of its own, which registers those socket address
   * types.  GLib 2.74 deadlocks when one thread, inside a class_init, waits for a type that
   * another thread is registering, and that thread waits for the class_init lock to add an
   * interface; the download of bench case 8 hung for good in about one start in thirty that
   * way. */
  g_type_ensure (G_TYPE_INET_SOCKET_ADDRESS);
  g_type_ensure (G_TYPE_PROXY_ADDRESS);
  g_type_ensure (G_TYPE_UNIX_SOCKET_ADDRESS);
  g_type_ensure (G_TYPE_NETWORK_ADDRESS);
  session_class = g_type_class_ref (SOUP_TYPE_SESSION);

  /* The default proxy resolver is the one libsoup would use anyway.  Asked for here, its GIO
   * module loads on this thread, not on a connection's worker thread, where a process that
   * exits meanwhile would find GObject half torn down. */
  return g_object_new (SOUP_TYPE_SESSION,
                       "user-agent", "bg-glib/" PACKAGE_VERSION " ",
                       "max-conns", 64,
                       "max-conns-per-host", 32,
                       "timeout", 0,
                       "proxy-resolver", g_proxy_resolver_get_default (),
                       NULL);
}
