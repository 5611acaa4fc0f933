/* bg-frontend.c: what BgDownloader and BgUploader have in common
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */

#include "config.h"

#include <glib/gi18n-lib.h>

#include "bg-error.h"
#include "bg-frontend-private.h"
#include "bg-i18n-private.h"

#define RW (G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS)
#define CONSTRUCT (G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY | G_PARAM_STATIC_STRINGS)

/* The properties are documented in bg-downloader.c and bg-uploader.c, for each class. */
void
bg_frontend_class_init (GObjectClass  *klass,
                        GParamSpec   **pspecs,
                        guint         *signals)
{
  GType type = G_OBJECT_CLASS_TYPE (klass);

  pspecs[BG_FRONTEND_PROP_SESSION_ID] =
    g_param_spec_string ("session-id", NULL, NULL, NULL, CONSTRUCT);
  pspecs[BG_FRONTEND_PROP_DATABASE_PATH] =
    g_param_spec_string ("database-path", NULL, NULL, NULL, CONSTRUCT);
  pspecs[BG_FRONTEND_PROP_SOUP_SESSION] =
    g_param_spec_object ("soup-session", NULL, NULL, SOUP_TYPE_SESSION, CONSTRUCT);
  pspecs[BG_FRONTEND_PROP_NETWORK_MONITOR] =
    g_param_spec_object ("network-monitor", NULL, NULL, G_TYPE_NETWORK_MONITOR, CONSTRUCT);
  pspecs[BG_FRONTEND_PROP_MAX_CONCURRENT] =
    g_param_spec_uint ("max-concurrent", NULL, NULL, 1, 1024, 4, RW);
  pspecs[BG_FRONTEND_PROP_STALL_TIMEOUT] =
    g_param_spec_uint ("stall-timeout", NULL, NULL, 0, G_MAXUINT, 60, RW);
  pspecs[BG_FRONTEND_PROP_MAX_ATTEMPTS] =
    g_param_spec_uint ("max-attempts", NULL, NULL, 1, G_MAXUINT, 5, RW);
  pspecs[BG_FRONTEND_PROP_RETRY_DELAY] =
    g_param_spec_uint ("retry-delay", NULL, NULL, 0, 24 * 3600, 2, RW);
  pspecs[BG_FRONTEND_PROP_MAX_RETRY_DELAY] =
    g_param_spec_uint ("max-retry-delay", NULL, NULL, 0, 7 * 24 * 3600, 3600, RW);
  pspecs[BG_FRONTEND_PROP_RETRY_DEADLINE] =
    g_param_spec_uint ("retry-deadline", NULL, NULL, 0, G_MAXUINT, 7 * 24 * 3600, RW);
  pspecs[BG_FRONTEND_PROP_ALLOW_METERED] =
    g_param_spec_boolean ("allow-metered", NULL, NULL, FALSE, RW);

  signals[BG_FRONTEND_SIGNAL_TASK_FINISHED] =
    g_signal_new ("task-finished", type, G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, BG_TYPE_TASK, BG_TYPE_RESPONSE);
  signals[BG_FRONTEND_SIGNAL_PREPARE_REQUEST] =
    g_signal_new ("prepare-request", type, G_SIGNAL_RUN_LAST, 0, NULL, NULL, NULL,
                  G_TYPE_NONE, 2, BG_TYPE_TASK, SOUP_TYPE_MESSAGE);
}

void
bg_frontend_init (BgFrontend  *self,
                  GObject     *owner,
                  BgTaskKind   kind,
                  GParamSpec **pspecs,
                  guint       *signals)
{
  self->owner = owner;
  self->kind = kind;
  self->pspecs = pspecs;
  self->signals = signals;

  for (guint i = BG_FRONTEND_PROP_MAX_CONCURRENT; i <= BG_FRONTEND_PROP_RETRY_DEADLINE; i++)
    self->uints[i] = G_PARAM_SPEC_UINT (pspecs[i])->default_value;
}

/* Hands the value of @prop_id to the engine, once there is one. */
static void
frontend_apply (BgFrontend *self,
                guint       prop_id)
{
  if (self->engine == NULL)
    return;

  switch (prop_id)
    {
    case BG_FRONTEND_PROP_MAX_CONCURRENT:
      bg_engine_set_max_concurrent (self->engine, self->uints[prop_id]);
      break;
    case BG_FRONTEND_PROP_STALL_TIMEOUT:
      bg_engine_set_stall_timeout (self->engine, self->uints[prop_id]);
      break;
    case BG_FRONTEND_PROP_MAX_ATTEMPTS:
      bg_engine_set_max_attempts (self->engine, self->uints[prop_id]);
      break;
    case BG_FRONTEND_PROP_RETRY_DELAY:
    case BG_FRONTEND_PROP_MAX_RETRY_DELAY:
      bg_engine_set_backoff (self->engine,
                             self->uints[BG_FRONTEND_PROP_RETRY_DELAY] * 1000,
                             self->uints[BG_FRONTEND_PROP_MAX_RETRY_DELAY] * 1000);
      break;
    case BG_FRONTEND_PROP_RETRY_DEADLINE:
      bg_engine_set_retry_deadline (self->engine, self->uints[prop_id]);
      break;
    case BG_FRONTEND_PROP_ALLOW_METERED:
      bg_engine_set_allow_metered (self->engine, self->allow_metered);
      break;
    default:
      break;
    }
}

static void
task_finished_cb (BgEngine   *engine,
                  BgTask     *task,
                  BgResponse *response,
                  BgFrontend *self)
{
  g_signal_emit (self->owner, self->signals[BG_FRONTEND_SIGNAL_TASK_FINISHED], 0,
                 task, response);
}

static void
prepare_request_cb (BgEngine    *engine,
                    BgTask      *task,
                    SoupMessage *msg,
                    BgFrontend  *self)
{
  g_signal_emit (self->owner, self->signals[BG_FRONTEND_SIGNAL_PREPARE_REQUEST], 0, task, msg);
}

/* The database-path property, when set, has to name a file: an empty path, or one that ends in a
 * folder ("/", "dir/", ".", ".."), is refused before anything is created for it. */
static gboolean
check_database_path (const char  *path,
                     GError     **error)
{
  g_autofree char *base = NULL;
  g_autofree char *shown = NULL;

  if (path == NULL)
    return TRUE;

  if (*path == '\0')
    {
      g_set_error_literal (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
                           _("The database-path property is empty; leave it unset for the "
                             "default database"));
      return FALSE;
    }

  base = g_path_get_basename (path);
  if (!g_str_has_suffix (path, G_DIR_SEPARATOR_S) &&
      !g_str_equal (base, ".") && !g_str_equal (base, ".."))
    return TRUE;

  shown = g_filename_display_name (path);
  g_set_error (error, BG_ERROR, BG_ERROR_INVALID_ARGUMENT,
               _("The database-path “%s” names a folder, not a file"), shown);
  return FALSE;
}

/* GInitable.init of both front ends: opens the database and makes the engine. */
gboolean
bg_frontend_open (BgFrontend  *self,
                  GError     **error)
{
  bg_i18n_init ();

  if (self->engine != NULL)
    return TRUE;

  if (!check_database_path (self->database_path, error))
    return FALSE;

  self->engine = bg_engine_open (self->kind, self->session_id, &self->database_path,
                                 self->soup_session, self->network_monitor, error);
  if (self->engine == NULL)
    return FALSE;

  g_set_object (&self->soup_session, bg_engine_get_session (self->engine));
  for (guint i = BG_FRONTEND_PROP_MAX_CONCURRENT; i < BG_FRONTEND_N_PROPS; i++)
    frontend_apply (self, i);

  g_signal_connect (self->engine, "task-finished", G_CALLBACK (task_finished_cb), self);
  g_signal_connect (self->engine, "prepare-request", G_CALLBACK (prepare_request_cb), self);

  return TRUE;
}

void
bg_frontend_dispose (BgFrontend *self)
{
  if (self->engine != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->engine, self);
      bg_engine_shutdown (self->engine);
      g_clear_object (&self->engine);
    }
}

void
bg_frontend_finalize (BgFrontend *self)
{
  g_clear_pointer (&self->session_id, g_free);
  g_clear_pointer (&self->database_path, g_free);
  g_clear_object (&self->soup_session);
  g_clear_object (&self->network_monitor);
}

gboolean
bg_frontend_get_property (BgFrontend *self,
                          guint       prop_id,
                          GValue     *value)
{
  switch (prop_id)
    {
    case BG_FRONTEND_PROP_SESSION_ID:
      g_value_set_string (value, self->session_id);
      return TRUE;
    case BG_FRONTEND_PROP_DATABASE_PATH:
      g_value_set_string (value, self->database_path);
      return TRUE;
    case BG_FRONTEND_PROP_SOUP_SESSION:
      g_value_set_object (value, self->soup_session);
      return TRUE;
    case BG_FRONTEND_PROP_NETWORK_MONITOR:
      g_value_set_object (value, self->network_monitor);
      return TRUE;
    case BG_FRONTEND_PROP_ALLOW_METERED:
      g_value_set_boolean (value, self->allow_metered);
      return TRUE;
    default:
      if (prop_id >= BG_FRONTEND_PROP_MAX_CONCURRENT && prop_id < BG_FRONTEND_N_PROPS)
        {
          g_value_set_uint (value, self->uints[prop_id]);
          return TRUE;
        }
      return FALSE;
    }
}

gboolean
bg_frontend_set_property (BgFrontend   *self,
                          guint         prop_id,
                          const GValue *value)
{
  switch (prop_id)
    {
    case BG_FRONTEND_PROP_SESSION_ID:
      self->session_id = g_value_dup_string (value);
      return TRUE;
    case BG_FRONTEND_PROP_DATABASE_PATH:
      self->database_path = g_value_dup_string (value);
      return TRUE;
    case BG_FRONTEND_PROP_SOUP_SESSION:
      self->soup_session = g_value_dup_object (value);
      return TRUE;
    case BG_FRONTEND_PROP_NETWORK_MONITOR:
      self->network_monitor = g_value_dup_object (value);
      return TRUE;
    case BG_FRONTEND_PROP_ALLOW_METERED:
      if (self->allow_metered != g_value_get_boolean (value))
        {
          self->allow_metered = g_value_get_boolean (value);
          frontend_apply (self, prop_id);
          g_object_notify_by_pspec (self->owner, self->pspecs[prop_id]);
        }
      return TRUE;
    default:
      if (prop_id >= BG_FRONTEND_PROP_MAX_CONCURRENT && prop_id < BG_FRONTEND_N_PROPS)
        {
          bg_frontend_set_uint (self, prop_id, g_value_get_uint (value));
          return TRUE;
        }
      return FALSE;
    }
}

guint
bg_frontend_get_uint (BgFrontend *self,
                      guint       prop_id)
{
  g_assert (prop_id >= BG_FRONTEND_PROP_MAX_CONCURRENT && prop_id < BG_FRONTEND_N_PROPS);

  return self->uints[prop_id];
}

/* Sets a guint property, clamped to its range, and tells the engine and the listeners. */
void
bg_frontend_set_uint (BgFrontend *self,
                      guint       prop_id,
                      guint       value)
{
  GParamSpecUInt *pspec = G_PARAM_SPEC_UINT (self->pspecs[prop_id]);

  value = CLAMP (value, pspec->minimum, pspec->maximum);
  if (self->uints[prop_id] == value)
    return;

  self->uints[prop_id] = value;
  frontend_apply (self, prop_id);
  g_object_notify_by_pspec (self->owner, self->pspecs[prop_id]);
}
