/* fake-monitors.c: a network monitor and a power-profile monitor that tests steer
 *
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The C suites link these directly.  The Python and GJS tests reach them through the test-only
 * typelib BgTest-1: a PyGObject class cannot implement GNetworkMonitor, whose properties and
 * can_reach() the library reads from C.
 */

#include "config.h"

#include "fake-monitors.h"

/**
 * BgFakeNetworkMonitor:
 *
 * A [iface@Gio.NetworkMonitor] that is online and not metered until a test says otherwise
 * with [method@BgTest.FakeNetworkMonitor.set_online] and
 * [method@BgTest.FakeNetworkMonitor.set_metered].
 */
struct _BgFakeNetworkMonitor
{
  GObject  parent_instance;
  gboolean online;
  gboolean metered;
};

static void network_iface_init (GNetworkMonitorInterface *iface);
static void initable_iface_init (GInitableIface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (BgFakeNetworkMonitor, bg_fake_network_monitor, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, initable_iface_init)
                               G_IMPLEMENT_INTERFACE (G_TYPE_NETWORK_MONITOR, network_iface_init))

enum {
  PROP_0,
  PROP_NETWORK_AVAILABLE,
  PROP_NETWORK_METERED,
  PROP_CONNECTIVITY,
};

static gboolean
fake_initable_init (GInitable     *initable,
                    GCancellable  *cancellable,
                    GError       **error)
{
  return TRUE;
}

static void
initable_iface_init (GInitableIface *iface)
{
  iface->init = fake_initable_init;
}

static gboolean
fake_can_reach (GNetworkMonitor     *monitor,
                GSocketConnectable  *connectable,
                GCancellable        *cancellable,
                GError             **error)
{
  BgFakeNetworkMonitor *self = BG_FAKE_NETWORK_MONITOR (monitor);

  if (!self->online)
    {
      g_set_error_literal (error, G_IO_ERROR, G_IO_ERROR_NETWORK_UNREACHABLE,
                           "The fake network is offline");
      return FALSE;
    }

  return TRUE;
}

static void
fake_can_reach_async (GNetworkMonitor     *monitor,
                      GSocketConnectable  *connectable,
                      GCancellable        *cancellable,
                      GAsyncReadyCallback  callback,
                      gpointer             user_data)
{
  g_autoptr(GTask) task = g_task_new (monitor, cancellable, callback, user_data);
  GError *error = NULL;

  if (fake_can_reach (monitor, connectable, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static gboolean
fake_can_reach_finish (GNetworkMonitor  *monitor,
                       GAsyncResult     *result,
                       GError          **error)
{
  return g_task_propagate_boolean (G_TASK (result), error);
}

static void
network_iface_init (GNetworkMonitorInterface *iface)
{
  iface->can_reach = fake_can_reach;
  iface->can_reach_async = fake_can_reach_async;
  iface->can_reach_finish = fake_can_reach_finish;
}

static void
fake_network_get_property (GObject    *object,
                           guint       prop_id,
                           GValue     *value,
                           GParamSpec *pspec)
{
  BgFakeNetworkMonitor *self = BG_FAKE_NETWORK_MONITOR (object);

  switch (prop_id)
    {
    case PROP_NETWORK_AVAILABLE:
      g_value_set_boolean (value, self->online);
      break;
    case PROP_NETWORK_METERED:
      g_value_set_boolean (value, self->metered);
      break;
    case PROP_CONNECTIVITY:
      g_value_set_enum (value, self->online ? G_NETWORK_CONNECTIVITY_FULL
                                            : G_NETWORK_CONNECTIVITY_LOCAL);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
bg_fake_network_monitor_class_init (BgFakeNetworkMonitorClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = fake_network_get_property;
  g_object_class_override_property (object_class, PROP_NETWORK_AVAILABLE, "network-available");
  g_object_class_override_property (object_class, PROP_NETWORK_METERED, "network-metered");
  g_object_class_override_property (object_class, PROP_CONNECTIVITY, "connectivity");
}

static void
bg_fake_network_monitor_init (BgFakeNetworkMonitor *self)
{
  self->online = TRUE;
}

/**
 * bg_fake_network_monitor_new:
 *
 * Makes a network monitor that is online and not metered.
 *
 * Returns: (transfer full): a new #BgFakeNetworkMonitor
 */
BgFakeNetworkMonitor *
bg_fake_network_monitor_new (void)
{
  return g_object_new (BG_TYPE_FAKE_NETWORK_MONITOR, NULL);
}

/**
 * bg_fake_network_monitor_set_online:
 * @self: a #BgFakeNetworkMonitor
 * @online: whether the network is up
 *
 * Takes the network down or brings it back: notifies #GNetworkMonitor:network-available and
 * #GNetworkMonitor:connectivity and emits #GNetworkMonitor::network-changed.  While offline,
 * g_network_monitor_can_reach() fails with %G_IO_ERROR_NETWORK_UNREACHABLE.
 */
void
bg_fake_network_monitor_set_online (BgFakeNetworkMonitor *self,
                                    gboolean              online)
{
  g_return_if_fail (BG_IS_FAKE_NETWORK_MONITOR (self));

  if (self->online == online)
    return;

  self->online = online;
  g_object_notify (G_OBJECT (self), "network-available");
  g_object_notify (G_OBJECT (self), "connectivity");
  g_signal_emit_by_name (self, "network-changed", online);
}

/**
 * bg_fake_network_monitor_set_metered:
 * @self: a #BgFakeNetworkMonitor
 * @metered: whether the network is metered
 *
 * Says whether the network is metered, and notifies #GNetworkMonitor:network-metered.
 */
void
bg_fake_network_monitor_set_metered (BgFakeNetworkMonitor *self,
                                     gboolean              metered)
{
  g_return_if_fail (BG_IS_FAKE_NETWORK_MONITOR (self));

  if (self->metered == metered)
    return;

  self->metered = metered;
  g_object_notify (G_OBJECT (self), "network-metered");
}

/**
 * BgFakePowerMonitor:
 *
 * A [iface@Gio.PowerProfileMonitor] whose power-saver mode is off until a test turns it on
 * with [method@BgTest.FakePowerMonitor.set_power_saver].
 */
struct _BgFakePowerMonitor
{
  GObject  parent_instance;
  gboolean power_saver;
};

static void power_iface_init (GPowerProfileMonitorInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (BgFakePowerMonitor, bg_fake_power_monitor, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_INITABLE, initable_iface_init)
                               G_IMPLEMENT_INTERFACE (G_TYPE_POWER_PROFILE_MONITOR,
                                                      power_iface_init))

enum {
  PROP_POWER_0,
  PROP_POWER_SAVER_ENABLED,
};

static void
power_iface_init (GPowerProfileMonitorInterface *iface)
{
}

static void
fake_power_get_property (GObject    *object,
                         guint       prop_id,
                         GValue     *value,
                         GParamSpec *pspec)
{
  BgFakePowerMonitor *self = BG_FAKE_POWER_MONITOR (object);

  switch (prop_id)
    {
    case PROP_POWER_SAVER_ENABLED:
      g_value_set_boolean (value, self->power_saver);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
bg_fake_power_monitor_class_init (BgFakePowerMonitorClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->get_property = fake_power_get_property;
  g_object_class_override_property (object_class, PROP_POWER_SAVER_ENABLED,
                                    "power-saver-enabled");
}

static void
bg_fake_power_monitor_init (BgFakePowerMonitor *self)
{
}

/**
 * bg_fake_power_monitor_new:
 *
 * Makes a power-profile monitor with power-saver mode off.
 *
 * Returns: (transfer full): a new #BgFakePowerMonitor
 */
BgFakePowerMonitor *
bg_fake_power_monitor_new (void)
{
  return g_object_new (BG_TYPE_FAKE_POWER_MONITOR, NULL);
}

/**
 * bg_fake_power_monitor_set_power_saver:
 * @self: a #BgFakePowerMonitor
 * @enabled: whether power-saver mode is on
 *
 * Turns power-saver mode on or off, and notifies
 * #GPowerProfileMonitor:power-saver-enabled.
 */
void
bg_fake_power_monitor_set_power_saver (BgFakePowerMonitor *self,
                                       gboolean            enabled)
{
  g_return_if_fail (BG_IS_FAKE_POWER_MONITOR (self));

  if (self->power_saver == enabled)
    return;

  self->power_saver = enabled;
  g_object_notify (G_OBJECT (self), "power-saver-enabled");
}
