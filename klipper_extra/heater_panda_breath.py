# BIQU Panda Breath chamber heater, driven through Moonraker
#
# Copyright (C) 2026  Panda Breath bridge contributors
#
# This file may be distributed under the terms of the GNU GPLv3 license.
#
# The [panda_breath] Moonraker component decides; this module stores what it
# pushes, refuses targets outside the device's pushed range and forwards
# targets.  A bare [heater_panda_breath] is panda_breath_generic.py's setup.
import logging
import math

UPDATE_ENDPOINT = "heater_panda_breath/update"
ROUTER_NAME = "heater_panda_breath_update"
REMOTE_METHOD, HELIX_OBJECT = "panda_breath_set_target", "panda_breath"
CHECK_INTERVAL, STALE_TIMEOUT, KELVIN_TO_CELSIUS = 1., 30., -273.15
DEVICE_MAX_TEMP, PATCHED_DEVICE_MAX_TEMP = 60., 70.
# max_temp (readings) is above the device's ceiling: it overshoots, and a
# hot bed warms a closed chamber past 60 C on its own.
DEFAULT_MAX_TEMP, MAX_ERROR_CHARS = 80., 300
STALE_HINT = ("is the [panda_breath] Moonraker component running and"
              " connected to the device?")
try:
    TEXT = (str, unicode)  # noqa: F821 - Python 2 klippy's JSON strings
except NameError:
    TEXT = (str,)

# A push: name -> (accepted types, what an error says is expected, (lowest,
# highest) or None, value when absent); numbers finite, bools no numbers.
NUMBER = ((int, float), "a finite number", None)
BOOL = ((bool,), "true or false", None)
STRING = (TEXT, "a string", None)
STRING_OR_NULL = (TEXT, "a string or null", None)
FIELDS = {
    'temperature': NUMBER + (None,), 'error': STRING + (None,),
    'power': ((int, float), "0.0 to 1.0", (0., 1.), 0.),
    'heater_on': BOOL + (None,), 'device_target': NUMBER + (None,),
    'link': STRING + (None,), 'fault': STRING_OR_NULL + (None,),
    'external_control': STRING_OR_NULL + (None,), 'drying': BOOL + (False,),
    'drying_remaining': NUMBER + (None,), 'min_target': NUMBER + (None,),
    'max_target': NUMBER + (None,),
    'helix': ((dict,), "an object", None, None)}
# The "panda_breath" object as HelixScreen reads it ('connected': the link's)
HELIX_FIELDS = {
    'connected': BOOL + (False,), 'work_on': BOOL + (False,),
    'work_mode': ((int,), "one of 0, 1, 2, 3", (0, 3), None),
    'device_target': NUMBER + (None,), 'fault': STRING_OR_NULL + (None,),
    'filament_drying_active': BOOL + (False,),
    'filament_temp': NUMBER + (None,),
    'filament_timer': ((int,), "whole hours", None, None)}
SHOWN = ('power', 'heater_on', 'device_target', 'link', 'fault',
         'external_control', 'drying')

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
    # The heater HelixScreen picks: the first named *panda_breath*, else first
    def __init__(self, heaters):
        self.heaters = heaters
    def get_status(self, eventtime):
        for state in [s for s in self.heaters if any(t in s.short_name.lower(
                ) for t in ('panda_breath', 'pandabreath'))] + self.heaters:
            return state.helix_status(eventtime)
        return {}

def lookup_router(printer):
    if printer.lookup_object(ROUTER_NAME, None) is None:
        printer.add_object(ROUTER_NAME, UpdateRouter(printer))
    return printer.lookup_object(ROUTER_NAME)

class PushedState:
    # A heater's pushed state, reading age and target forwarding; its owner
    # (the default heater is its own) answers current_target(eventtime) and
    # took_reading(temperature, eventtime).
    def __init__(self, config, owner):
        self.printer = config.get_printer()
        self.reactor = self.printer.get_reactor()
        self.owner, self.full_name = owner, config.get_name()
        self.short_name = self.full_name.split()[-1]
        self.device_max_temp = config.getfloat(
            'device_max_temp', DEVICE_MAX_TEMP, above=0.,
            maxval=PATCHED_DEVICE_MAX_TEMP)
        self.stale_timeout = config.getfloat('stale_timeout', STALE_TIMEOUT,
                                             minval=2.)
        self.state = checked(None, {}, FIELDS)
        self.helix = checked(None, {}, HELIX_FIELDS)
        self.temperature = self.last_update_time = self.ready_time = None
        self.drying_end = self.forward_error = self.reported_stale = None
        self.printer.register_event_handler("klippy:ready", lambda: setattr(
            self, 'ready_time', self.reactor.monotonic()))
        lookup_router(self.printer).heaters.append(self)
    def handle_update(self, web_request):
        state = checked(web_request, web_request, FIELDS)
        self.helix = checked(web_request, state['helix'] or {}, HELIX_FIELDS,
                             "helix.")
        self.state, now = state, self.reactor.monotonic()
        # Pushed in whole minutes when it changes; counted down here
        self.drying_end = None if state['drying_remaining'] is None or not (
            state['drying']) else now + max(0., state['drying_remaining'])
        if state['error']:
            self.console_error("%s: %s" % (self.full_name, " ".join(
                state['error'].split())[:MAX_ERROR_CHARS]))
        if state['temperature'] is not None:
            self.temperature, self.last_update_time = state['temperature'], now
            self.owner.took_reading(self.temperature, now)
        web_request.send({'target': self.owner.current_target(now),
                          'heater': self.short_name})
    def console_error(self, msg):
        logging.info(msg)
        self.printer.lookup_object('gcode').respond_raw("!! " + msg)
    def max_target(self):
        # device_max_temp, or the device's pushed limit if that is lower
        return min(self.device_max_temp,
                   self.state['max_target'] or self.device_max_temp)
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
        error = None
        try:
            self.printer.lookup_object('webhooks').call_remote_method(
                REMOTE_METHOD, heater=self.short_name, target=target)
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
        # Why readings are stale, or None.  Right after klippy:ready the
        # first reading is on its way (Moonraker pushes it then): a target
        # is accepted, and stale_timeout allowed for it to land.
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
    def check_range(self, temperature, low, high):
        limit = (("below minimum", low) if temperature < low
                 else ("above maximum", high) if temperature > high else None)
        if limit is not None:
            self.printer.invoke_shutdown(
                "%s: temperature %.1f %s temperature of %.1f"
                % ((self.full_name, temperature) + limit))
    def get_status(self, eventtime):
        # Whole seconds: subscribers get at most one change a second
        age, left = self.reading_age(eventtime), self._drying_left(eventtime)
        return dict(
            [(name, self.state[name]) for name in SHOWN],
            connected=not self.is_stale(eventtime),
            last_update_age=None if age is None else round(age, 0),
            forward_error=self.forward_error,
            drying_remaining=None if left is None else float(left))
    def helix_status(self, eventtime):
        return dict(self.helix, heater=self.full_name,
                    remaining_seconds=self._drying_left(eventtime) or 0,
                    connected=self.helix['connected']
                    and not self.is_stale(eventtime))
    def _drying_left(self, eventtime):
        if self.drying_end is not None:
            return int(max(0., self.drying_end - eventtime) + .5)

class PandaBreathHeater(PushedState):
    # [heater_panda_breath NAME]: a heater whose control is the device
    def __init__(self, config):
        PushedState.__init__(self, config, self)
        self.name, self.target = self.short_name, 0.
        # No control object (Kalico's PID_CALIBRATE looks for it)
        self.mcu_pwm = self.control = None
        self.min_temp = config.getfloat('min_temp', 0.,
                                        minval=KELVIN_TO_CELSIUS)
        self.max_temp = config.getfloat('max_temp', DEFAULT_MAX_TEMP,
                                        above=self.min_temp)
        self.tolerance = config.getfloat('tolerance', 1., minval=0.)
        # Registered with [heaters] the way heaters.py registers a heater
        pheaters = self.printer.load_object(config, 'heaters')
        if self.short_name in pheaters.heaters:
            raise config.error("Heater %s already registered"
                               % (self.short_name,))
        pheaters.heaters[self.short_name] = self
        pheaters.register_sensor(config, self)
        pheaters.available_heaters.append(self.full_name)
        self.printer.lookup_object('gcode').register_mux_command(
            "SET_HEATER_TEMPERATURE", "HEATER", self.short_name,
            self.cmd_SET_HEATER_TEMPERATURE,
            desc=self.cmd_SET_HEATER_TEMPERATURE_help)
        self.timer = self.reactor.register_timer(self._check_stale)
        self.printer.register_event_handler("klippy:ready", lambda: (
            self.reactor.update_timer(self.timer, self.reactor.NOW)))
        self.printer.register_event_handler("klippy:shutdown",
                                            self._handle_shutdown)
    def _apply_target(self, target):
        self.target = target
        self.forward(target)
    def _handle_shutdown(self):
        self.reactor.update_timer(self.timer, self.reactor.NEVER)
        self._apply_target(0.)
    def _check_stale(self, eventtime):
        if self.printer.is_shutdown() or self.check_stale(eventtime,
                                                          self.target):
            return self.reactor.NEVER
        return eventtime + CHECK_INTERVAL
    def current_target(self, eventtime):
        return self.target
    def took_reading(self, temperature, eventtime):
        self.check_range(temperature, self.min_temp, self.max_temp)
    # Heater interface used by heaters.py and its callers
    def get_name(self):
        return self.full_name
    def set_temp(self, degrees):
        degrees = float(degrees)
        if degrees and (math.isnan(degrees) or degrees <= 0. or
                        not self.min_temp <= degrees <= self.max_temp):
            raise self.printer.command_error(
                "Requested temperature (%.1f) out of range (%.1f:%.1f)"
                % (degrees, self.min_temp, self.max_temp))
        refusal = self.refusal(degrees)
        silence = self.silence(self.reactor.monotonic())
        if degrees and refusal is not None:
            raise self.printer.command_error(refusal[0])
        if degrees and self.printer.is_shutdown():
            raise self.printer.command_error(
                "%s: printer is shut down; only target 0 is accepted"
                " until RESTART or FIRMWARE_RESTART" % (self.full_name,))
        if degrees and silence is not None:
            raise self.printer.command_error(
                "%s: target %.1f refused: %s; %s"
                % (self.full_name, degrees, silence, STALE_HINT))
        self._apply_target(degrees)
    def alter_target(self, target_temp):
        # Used by control code that must not fail: clamp instead of refusing
        if target_temp:
            target_temp = max(self.min_temp, min(
                self.max_temp, self.max_target(), target_temp))
        self._apply_target(0. if self.printer.is_shutdown() else target_temp)
    def get_temp(self, eventtime):
        stale = self.is_stale(eventtime)
        return 0. if stale else self.temperature, self.target
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
        return dict(PushedState.get_status(self, eventtime),
                    target=self.target,
                    temperature=round(self.temperature or 0., 2))
    def stats(self, eventtime):
        return self.target > 0. or bool(self.state['heater_on']), (
            '%s: target=%.0f temp=%.1f pwm=%.3f' % (
                self.short_name, self.target, self.temperature or 0.,
                self.state['power']))
    cmd_SET_HEATER_TEMPERATURE_help = "Sets a heater temperature"
    def cmd_SET_HEATER_TEMPERATURE(self, gcmd):
        self.printer.lookup_object('heaters').set_temperature(
            self, gcmd.get_float('TARGET', 0.))

def load_config(config):
    # The bare [heater_panda_breath]: the [heater_generic] setup's own file
    try:
        from . import panda_breath_generic as generic
    except ImportError:  # linked by an install made before it existed
        generic = None
    if generic is None:
        raise config.error(
            "[heater_panda_breath] needs panda_breath_generic.py, new in this"
            " version: re-run scripts/install of the Panda Breath bridge")
    lookup_router(config.get_printer())  # the endpoint, even with no heater
    return generic.PandaBreathGeneric(config, PushedState)

def load_config_prefix(config):
    return PandaBreathHeater(config)
