# BIQU Panda Breath chamber heater, driven through Moonraker
#
# Copyright (C) 2026  Panda Breath bridge contributors
#
# This file may be distributed under the terms of the GNU GPLv3 license.
#
# The [panda_breath] Moonraker component decides; this module stores what it
# pushes, refuses targets the device cannot take and forwards the others.
import logging
import math

UPDATE_ENDPOINT = "heater_panda_breath/update"
ROUTER_NAME = "heater_panda_breath_update"
REMOTE_METHOD, HELIX_OBJECT = "panda_breath_set_target", "panda_breath"
CHECK_INTERVAL, STALE_TIMEOUT, KELVIN_TO_CELSIUS = 1., 30., -273.15
DEVICE_MAX_TEMP, PATCHED_DEVICE_MAX_TEMP, DEFAULT_MAX_TEMP = 60., 70., 80.
TEXT = (str, type(u''))  # Python 2 klippy decodes JSON strings as unicode

# A push: name -> (accepted types, what an error says is expected, (lowest,
# highest) or None, value when absent); numbers finite, bools no numbers.
NUMBER = ((int, float), "a finite number", None, None)
BOOL = ((bool,), "true or false", None, None)
STRING = (TEXT, "a string", None, None)
FLAG = BOOL[:3] + (False,)
FIELDS = {
    'temperature': NUMBER, 'device_target': NUMBER, 'min_target': NUMBER,
    'max_target': NUMBER, 'drying_remaining': NUMBER, 'heater_on': BOOL,
    'drying': FLAG, 'link': STRING, 'fault': STRING,
    'external_control': STRING, 'helix': ((dict,), "an object", None, {}),
    'power': ((int, float), "0.0 to 1.0", (0., 1.), 0.)}
# The "panda_breath" object as HelixScreen reads it ('connected': the link's)
HELIX_FIELDS = {
    'connected': FLAG, 'work_on': FLAG, 'filament_drying_active': FLAG,
    'fault': STRING, 'device_target': NUMBER, 'filament_temp': NUMBER,
    'work_mode': ((int,), "one of 0, 1, 2, 3", (0, 3), None),
    'remaining_seconds': ((int,), "whole seconds", None, 0),
    'filament_timer': ((int,), "whole hours", None, None)}
SHOWN = ('power', 'heater_on', 'device_target', 'link', 'fault',
         'external_control', 'drying', 'drying_remaining')

def checked(web_request, values, fields, prefix=""):
    # Each value by its row of the table; nothing is applied on an error.
    out = {}
    for name, (types, what, bounds, default) in fields.items():
        value = out[name] = values.get(name, None)
        if value is None:
            out[name] = default
        elif type(value) not in types or type(value) in (int, float) and (
                math.isnan(value) or math.isinf(value) or bounds is not None
                and not bounds[0] <= value <= bounds[1]):
            raise web_request.error("Invalid Argument [%s%s]: expected %s,"
                                    " got %r" % (prefix, name, what, value))
        elif float in types:
            out[name] = float(value)
    return out

class UpdateRouter:
    # One plain endpoint, not a mux one: a mux lookup shuts down on an
    # unhashable "heater", and this endpoint is reachable through Moonraker.
    def __init__(self, printer):
        self.printer, self.heaters = printer, []
        printer.lookup_object('webhooks').register_endpoint(
            UPDATE_ENDPOINT, self._handle_update)
        printer.register_event_handler("klippy:connect", self._handle_connect)
    def _handle_connect(self):
        # Unless another module (an earlier bridge, say) has the name
        if self.printer.lookup_object(HELIX_OBJECT, None) is None:
            self.printer.add_object(HELIX_OBJECT, HelixStatus(self.heaters))
    def _handle_update(self, web_request):
        name = web_request.get('heater', None)
        found = [s for s in self.heaters if s.short_name == name]
        if not isinstance(name, TEXT) or not found:
            raise web_request.error(
                "Unknown heater %r for %s (configured: %s)" % (
                    name, UPDATE_ENDPOINT,
                    ", ".join(sorted(s.short_name for s in self.heaters))))
        found[0].handle_update(web_request)

class HelixStatus:
    # The "panda_breath" object HelixScreen reads: the first heater named
    # *panda_breath* (or *pandabreath*), else the first one
    def __init__(self, heaters):
        self.heaters = heaters
    def get_status(self, eventtime):
        named = [s for s in self.heaters if any(
            t in s.short_name.lower() for t in ('panda_breath', 'pandabreath'))]
        for state in named + self.heaters:
            return state.helix_status(eventtime)
        return {}

def lookup_router(printer):
    if printer.lookup_object(ROUTER_NAME, None) is None:
        printer.add_object(ROUTER_NAME, UpdateRouter(printer))
    return printer.lookup_object(ROUTER_NAME)

class PushedState:
    # A heater's pushed state, staleness and target forwarding.  Its owner
    # (the default heater is its own) has min_temp, max_temp, turn_off() and
    # poll(eventtime) -> target (each interval and push; changes forwarded).
    def __init__(self, config, owner, interval):
        self.printer = config.get_printer()
        self.reactor = self.printer.get_reactor()
        self.owner, self.full_name = owner, config.get_name()
        self.short_name = self.full_name.split()[-1]
        self.device_max_temp = config.getfloat(
            'device_max_temp', DEVICE_MAX_TEMP, above=0.,
            maxval=PATCHED_DEVICE_MAX_TEMP)
        self.stale_timeout = config.getfloat('stale_timeout', STALE_TIMEOUT,
                                             minval=2.)
        self.state, self.helix = checked(None, {}, FIELDS), checked(
            None, {}, HELIX_FIELDS)
        self.temperature = self.last_update_time = self.ready_time = None
        self.forward_error = self.reported_stale = None
        self.sent_target = 0.
        self.interval, self.timer = interval, self.reactor.register_timer(
            self._check)
        self.printer.register_event_handler("klippy:ready", self._ready)
        self.printer.register_event_handler("klippy:shutdown", self._shutdown)
        lookup_router(self.printer).heaters.append(self)
    def _ready(self):
        self.ready_time = self.reactor.monotonic()
        self.reactor.update_timer(self.timer, self.reactor.NOW)
    def _shutdown(self):
        self.reactor.update_timer(self.timer, self.reactor.NEVER)
        self.owner.turn_off()
    def _check(self, eventtime):
        # Staleness first: a target set while stale never leaves Klipper
        target = self.owner.poll(eventtime)
        if self.printer.is_shutdown() or self.check_stale(eventtime, target):
            return self.reactor.NEVER
        if target != self.sent_target:
            self.forward(target)
        return eventtime + self.interval
    def handle_update(self, web_request):
        state = checked(web_request, web_request, FIELDS)
        helix = checked(web_request, state['helix'], HELIX_FIELDS, "helix.")
        self.state, self.helix, now = state, helix, self.reactor.monotonic()
        if state['temperature'] is not None:
            self.temperature, self.last_update_time = state['temperature'], now
            self.check_range(self.temperature)
        web_request.send({'target': self.owner.poll(now),
                          'heater': self.short_name})
    def max_target(self):  # the lower of device_max_temp and the pushed one
        return min(self.device_max_temp, self.state['max_target'] or 1e9)
    def refusal(self, target):
        # A target the device cannot take: (why, the nearest it can take)
        limit, minimum = self.max_target(), self.state['min_target']
        if target > limit:
            return ("%s: target %.1f is above the device's limit"
                    " (device_max_temp %.1f)" % (self.full_name, target,
                                                 limit), limit)
        if minimum is not None and 0. < target < minimum:
            return ("%s: target %.1f refused: the device heats only to %.0f"
                    " or more (0 switches it off)"
                    % (self.full_name, target, minimum), 0.)
    def forward(self, target):
        # A failure is logged once and shown, never raised: Moonraker
        # reconciles the target from the update replies.
        self.sent_target = target
        try:
            self.printer.lookup_object('webhooks').call_remote_method(
                REMOTE_METHOD, heater=self.short_name, target=target)
            error = None
        except self.printer.command_error as e:
            error = str(e)
        if error is not None and error != self.forward_error:
            logging.warning("%s: cannot forward target %.1f: %s",
                            self.full_name, target, error)
        elif error is None and self.forward_error is not None:
            logging.info("%s: forwarding targets to Moonraker again",
                         self.full_name)
        self.forward_error = error
    def reading_age(self, eventtime):
        if self.last_update_time is not None:
            return max(0., eventtime - self.last_update_time)
    def is_stale(self, eventtime):
        age = self.reading_age(eventtime)
        return age is None or age > self.stale_timeout
    def silence(self, eventtime):
        # Why readings are stale, or None (the first may take stale_timeout)
        age = self.reading_age(eventtime)
        since_ready = eventtime - (self.ready_time or eventtime)
        if age is not None and age > self.stale_timeout:
            return "no temperature from Moonraker for %.0fs" % (age,)
        if age is None and since_ready > self.stale_timeout:
            return ("no temperature received from Moonraker in the %.0fs"
                    " since Klipper became ready" % (since_ready,))
    def check_stale(self, eventtime, target):
        # Stale while heating shuts down (True); stale at 0 is logged once.
        silence = self.silence(eventtime)
        if silence is not None and target > 0.:
            self.printer.invoke_shutdown("%s: %s while heating"
                                         % (self.full_name, silence))
        elif silence and not self.reported_stale and self.last_update_time:
            logging.info("%s: %s (target is 0, not shutting down)",
                         self.full_name, silence)
        self.reported_stale = silence is not None
        return silence is not None and target > 0.
    def check_range(self, temperature):
        low, high = self.owner.min_temp, self.owner.max_temp
        if not low <= temperature <= high:
            self.printer.invoke_shutdown(
                "%s: temperature %.1f %s temperature of %.1f" % (
                    self.full_name, temperature, "below minimum" if
                    temperature < low else "above maximum",
                    low if temperature < low else high))
    def get_status(self, eventtime):
        # Nothing ticks by itself ('connected' flips at the stale limit):
        # subscribers hear of a change only
        return dict([(name, self.state[name]) for name in SHOWN],
                    connected=not self.is_stale(eventtime),
                    forward_error=self.forward_error)
    def helix_status(self, eventtime):
        return dict(self.helix, heater=self.full_name, connected=self.helix[
            'connected'] and not self.is_stale(eventtime))

class PandaBreathHeater(PushedState):
    # [heater_panda_breath NAME]: a heater whose control is the device
    def __init__(self, config):
        PushedState.__init__(self, config, self, CHECK_INTERVAL)
        self.name, self.target = self.short_name, 0.
        self.mcu_pwm = self.control = None  # Kalico's PID_CALIBRATE looks
        self.min_temp = config.getfloat('min_temp', 0.,
                                        minval=KELVIN_TO_CELSIUS)
        self.max_temp = config.getfloat('max_temp', DEFAULT_MAX_TEMP,
                                        above=self.min_temp)
        self.tolerance = config.getfloat('tolerance', 1., minval=0.)
        # Registered with [heaters] the way heaters.py registers a heater
        pheaters, name = self.printer.load_object(config, 'heaters'), self.name
        if name in pheaters.heaters:
            raise config.error("Heater %s already registered" % (name,))
        pheaters.heaters[name] = self
        pheaters.register_sensor(config, self)
        pheaters.available_heaters.append(self.full_name)
        self.printer.lookup_object('gcode').register_mux_command(
            "SET_HEATER_TEMPERATURE", "HEATER", self.short_name,
            self.cmd_SET_HEATER_TEMPERATURE,
            desc=self.cmd_SET_HEATER_TEMPERATURE_help)
    def poll(self, eventtime):
        return self.target
    def turn_off(self):
        self.target = 0.
        self.forward(0.)
    # Heater interface used by heaters.py and its callers
    def get_name(self):
        return self.full_name
    def set_temp(self, degrees):
        degrees = float(degrees)
        silence = self.silence(self.reactor.monotonic())
        if degrees and (math.isnan(degrees) or degrees <= 0.
                        or not self.min_temp <= degrees <= self.max_temp):
            raise self.printer.command_error(
                "Requested temperature (%.1f) out of range (%.1f:%.1f)"
                % (degrees, self.min_temp, self.max_temp))
        if degrees and self.refusal(degrees) is not None:
            raise self.printer.command_error(self.refusal(degrees)[0])
        if degrees and self.printer.is_shutdown():
            raise self.printer.command_error(
                "%s: printer is shut down; only target 0 is accepted"
                " until RESTART or FIRMWARE_RESTART" % (self.full_name,))
        if degrees and silence is not None:
            raise self.printer.command_error(
                "%s: target %.1f refused: %s; is the [panda_breath] Moonraker"
                " component running and connected to the device?"
                % (self.full_name, degrees, silence))
        self.target = degrees
        self.forward(degrees)
    def get_temp(self, eventtime):
        return 0. if self.is_stale(eventtime) else self.temperature, self.target
    def check_busy(self, eventtime):
        temp, target = self.get_temp(eventtime)
        return target > 0. and temp < target - self.tolerance
    def get_max_power(self):
        return 1.  # PID_CALIBRATE asks before set_control() refuses it
    def set_control(self, *args):
        raise self.printer.command_error(
            "%s: the Panda Breath regulates its own temperature; PID"
            " calibration is not supported" % (self.full_name,))
    def get_status(self, eventtime):
        return dict(PushedState.get_status(self, eventtime), target=self.target,
                    temperature=round(self.temperature or 0., 2))
    def stats(self, eventtime):
        return self.target > 0. or bool(self.state['heater_on']), (
            '%s: target=%.0f temp=%.1f pwm=%.3f' % (self.short_name,
            self.target, self.temperature or 0., self.state['power']))
    cmd_SET_HEATER_TEMPERATURE_help = "Sets a heater temperature"
    def cmd_SET_HEATER_TEMPERATURE(self, gcmd):
        self.printer.lookup_object('heaters').set_temperature(
            self, gcmd.get_float('TARGET', 0.))

def load_config(config):
    # The bare [heater_panda_breath]: the [heater_generic] setup, in a file of
    # its own (scripts/install links every file of klipper_extra/)
    from . import panda_breath_generic
    lookup_router(config.get_printer())  # the endpoint, even with no heater
    return panda_breath_generic.PandaBreathGeneric(config, PushedState)

def load_config_prefix(config):
    return PandaBreathHeater(config)
