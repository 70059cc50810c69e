# BIQU Panda Breath chamber heater, driven through Moonraker
#
# Copyright (C) 2026  Panda Breath bridge contributors
#
# This file may be distributed under the terms of the GNU GPLv3 license.
#
# The Panda Breath regulates its own temperature.  This module only makes it
# look like an ordinary Klipper heater: the [panda_breath] Moonraker component
# pushes readings in through the "heater_panda_breath/update" endpoint and
# receives every target change through the "panda_breath_set_target" remote
# method.  There is no network code and no thread here.
import logging
import math

UPDATE_ENDPOINT = "heater_panda_breath/update"
REMOTE_METHOD = "panda_breath_set_target"
ROUTER_NAME = "heater_panda_breath_update"
CHECK_INTERVAL = 1.
KELVIN_TO_CELSIUS = -273.15
DEVICE_MAX_TEMP = 60.
PATCHED_DEVICE_MAX_TEMP = 70.
# max_temp is the reading limit, as for any Klipper heater.  It defaults well
# above the device's ceiling: the device regulates in whole degrees and
# overshoots, and a hot bed warms a closed chamber past 60 C on its own;
# neither should stop a print.  Targets are limited by device_max_temp.
DEFAULT_MAX_TEMP = 80.
STALE_HINT = ("is the [panda_breath] Moonraker component running and"
              " connected to the device?")
try:
    # Python 2 klippy decodes JSON strings as unicode
    STRING_TYPES = (str, unicode)  # noqa: F821
except NameError:
    STRING_TYPES = (str,)


######################################################################
# Update endpoint, shared by all heater_panda_breath sections
######################################################################

class UpdateRouter:
    # One plain endpoint instead of a mux endpoint: webhooks' mux lookup
    # raises TypeError (and so shuts the printer down) on an unhashable
    # "heater" value, and this endpoint is reachable from outside through
    # Moonraker.
    def __init__(self, printer):
        self.heaters = {}
        webhooks = printer.lookup_object('webhooks')
        webhooks.register_endpoint(UPDATE_ENDPOINT, self._handle_update)
    def add_heater(self, name, heater):
        self.heaters[name] = heater
    def _handle_update(self, web_request):
        name = web_request.get('heater')
        heater = None
        if isinstance(name, STRING_TYPES):
            heater = self.heaters.get(name)
        if heater is None:
            raise web_request.error(
                "Unknown heater %s for %s (configured: %s)"
                % (repr(name), UPDATE_ENDPOINT,
                   ", ".join(sorted(self.heaters))))
        heater.handle_update(web_request)


######################################################################
# Request parameter checks (every failure is a web_request.error)
######################################################################

def _is_number(value):
    return (type(value) in (int, float) and not math.isnan(value)
            and not math.isinf(value))

def _get_number(web_request, key, required):
    value = web_request.get(key, None)
    if value is None:
        if required:
            raise web_request.error("Missing Argument [%s]" % (key,))
        return None
    if not _is_number(value):
        raise web_request.error(
            "Invalid Argument [%s]: expected a finite number, got %s"
            % (key, repr(value)))
    return float(value)

def _get_optional(web_request, key, types, what):
    value = web_request.get(key, None)
    if value is not None and type(value) not in types:
        raise web_request.error("Invalid Argument [%s]: expected %s, got %s"
                                % (key, what, repr(value)))
    return value


######################################################################
# The heater
######################################################################

class PandaBreathHeater:
    def __init__(self, config):
        self.printer = config.get_printer()
        self.reactor = self.printer.get_reactor()
        self.full_name = config.get_name()
        self.name = self.short_name = self.full_name.split()[-1]
        self.mcu_pwm = None
        # No Klipper control object: the device regulates itself (Kalico's
        # PID_CALIBRATE looks at this before calling set_control()).
        self.control = None
        # Options
        self.device_max_temp = config.getfloat(
            'device_max_temp', DEVICE_MAX_TEMP, above=0.,
            maxval=PATCHED_DEVICE_MAX_TEMP)
        self.min_temp = config.getfloat('min_temp', 0.,
                                        minval=KELVIN_TO_CELSIUS)
        self.max_temp = config.getfloat('max_temp', DEFAULT_MAX_TEMP,
                                        above=self.min_temp)
        self.stale_timeout = config.getfloat('stale_timeout', 30., minval=2.)
        self.tolerance = config.getfloat('tolerance', 1., minval=0.)
        # State
        self.target = 0.
        self.temperature = 0.
        self.last_update_time = None
        self.ready_time = None
        self.heater_on = self.device_target = self.power = None
        self.link = self.fault = None
        self.forward_error = None
        self.reported_stale = False
        # Register with [heaters] the way heaters.py registers a stock heater
        pheaters = self.printer.load_object(config, 'heaters')
        if self.short_name in pheaters.heaters:
            raise config.error("Heater %s already registered"
                               % (self.short_name,))
        pheaters.heaters[self.short_name] = self
        pheaters.register_sensor(config, self)
        pheaters.available_heaters.append(self.full_name)
        gcode = self.printer.lookup_object('gcode')
        gcode.register_mux_command(
            "SET_HEATER_TEMPERATURE", "HEATER", self.short_name,
            self.cmd_SET_HEATER_TEMPERATURE,
            desc=self.cmd_SET_HEATER_TEMPERATURE_help)
        router = self.printer.lookup_object(ROUTER_NAME, None)
        if router is None:
            router = UpdateRouter(self.printer)
            self.printer.add_object(ROUTER_NAME, router)
        router.add_heater(self.short_name, self)
        self.stale_timer = self.reactor.register_timer(self._check_stale)
        self.printer.register_event_handler("klippy:ready",
                                            self._handle_ready)
        self.printer.register_event_handler("klippy:shutdown",
                                            self._handle_shutdown)
    # Helpers
    def _reading_age(self, eventtime):
        if self.last_update_time is None:
            return None
        return max(0., eventtime - self.last_update_time)
    def _is_stale(self, eventtime):
        age = self._reading_age(eventtime)
        return age is None or age > self.stale_timeout
    def _awaiting_first_reading(self, eventtime):
        # Right after klippy:ready the first reading is on its way (Moonraker
        # pushes it on ready); a target set then is accepted, and the stale
        # check allows stale_timeout for the reading to arrive.
        return (self.last_update_time is None and self.ready_time is not None
                and eventtime - self.ready_time <= self.stale_timeout)
    def _describe_silence(self, eventtime):
        age = self._reading_age(eventtime)
        if age is None:
            if self.ready_time is not None:
                return ("no temperature received from Moonraker in the %.0fs"
                        " since Klipper became ready"
                        % (eventtime - self.ready_time,))
            return "no temperature received from Moonraker yet"
        return "no temperature from Moonraker for %.0fs" % (age,)
    def _forward_target(self, target):
        webhooks = self.printer.lookup_object('webhooks')
        try:
            webhooks.call_remote_method(REMOTE_METHOD, heater=self.short_name,
                                        target=target)
        except self.printer.command_error as e:
            msg = str(e)
            if msg != self.forward_error:
                logging.warning("%s: cannot forward target %.1f: %s",
                                self.full_name, target, msg)
            self.forward_error = msg
            return
        if self.forward_error is not None:
            logging.info("%s: forwarding targets to Moonraker again",
                         self.full_name)
            self.forward_error = None
    def _apply_target(self, target):
        self.target = target
        self._forward_target(target)
    # Event handlers
    def _handle_ready(self):
        self.ready_time = self.reactor.monotonic()
        self.reactor.update_timer(self.stale_timer, self.reactor.NOW)
    def _handle_shutdown(self):
        self.reactor.update_timer(self.stale_timer, self.reactor.NEVER)
        self._apply_target(0.)
    def _check_stale(self, eventtime):
        if self.printer.is_shutdown():
            return self.reactor.NEVER
        if (not self._is_stale(eventtime)
            or self._awaiting_first_reading(eventtime)):
            self.reported_stale = False
            return eventtime + CHECK_INTERVAL
        if self.target > 0.:
            self.printer.invoke_shutdown(
                "%s: %s while heating" % (self.full_name,
                                          self._describe_silence(eventtime)))
            return self.reactor.NEVER
        if not self.reported_stale and self.last_update_time is not None:
            logging.info("%s: %s (target is 0, not shutting down)",
                         self.full_name, self._describe_silence(eventtime))
        self.reported_stale = True
        return eventtime + CHECK_INTERVAL
    # Inbound readings
    def handle_update(self, web_request):
        # Every update states the device's state; a reading is optional, so
        # that a link or fault change reaches Klipper without one.
        temperature = _get_number(web_request, 'temperature', False)
        device_target = _get_number(web_request, 'device_target', False)
        power = _get_number(web_request, 'power', False)
        if power is not None and not 0. <= power <= 1.:
            raise web_request.error(
                "Invalid Argument [power]: expected 0.0 to 1.0, got %s"
                % (repr(power),))
        heater_on = _get_optional(web_request, 'heater_on', (bool,),
                                  "true or false")
        link = _get_optional(web_request, 'link', STRING_TYPES, "a string")
        fault = _get_optional(web_request, 'fault', STRING_TYPES,
                              "a string or null")
        self.heater_on = heater_on
        self.power = power
        self.device_target = device_target
        self.link = link
        self.fault = fault
        if temperature is not None:
            self._take_reading(temperature)
        web_request.send({'target': self.target, 'heater': self.short_name})
    def _take_reading(self, temperature):
        self.temperature = temperature
        self.last_update_time = self.reactor.monotonic()
        if temperature < self.min_temp or temperature > self.max_temp:
            limit = "below minimum"
            limit_temp = self.min_temp
            if temperature > self.max_temp:
                limit = "above maximum"
                limit_temp = self.max_temp
            self.printer.invoke_shutdown(
                "%s: temperature %.1f %s temperature of %.1f"
                % (self.full_name, temperature, limit, limit_temp))
    # Heater interface used by heaters.py and its callers
    def get_name(self):
        return self.full_name
    def set_temp(self, degrees):
        degrees = float(degrees)
        if degrees:
            if (math.isnan(degrees) or degrees <= 0.
                or degrees < self.min_temp or degrees > self.max_temp):
                raise self.printer.command_error(
                    "Requested temperature (%.1f) out of range (%.1f:%.1f)"
                    % (degrees, self.min_temp, self.max_temp))
            if degrees > self.device_max_temp:
                raise self.printer.command_error(
                    "%s: target %.1f is above the device's limit"
                    " (device_max_temp %.1f)"
                    % (self.full_name, degrees, self.device_max_temp))
            if self.printer.is_shutdown():
                raise self.printer.command_error(
                    "%s: printer is shut down; only target 0 is accepted"
                    " until RESTART or FIRMWARE_RESTART" % (self.full_name,))
            eventtime = self.reactor.monotonic()
            if (self._is_stale(eventtime)
                and not self._awaiting_first_reading(eventtime)):
                raise self.printer.command_error(
                    "%s: target %.1f refused: %s; %s"
                    % (self.full_name, degrees,
                       self._describe_silence(eventtime), STALE_HINT))
        self._apply_target(degrees)
    def alter_target(self, target_temp):
        # Used by control code that must not fail; clamp instead of refusing.
        if target_temp:
            target_temp = max(self.min_temp, min(
                self.max_temp, self.device_max_temp, target_temp))
        if self.printer.is_shutdown():
            target_temp = 0.
        self._apply_target(target_temp)
    def get_temp(self, eventtime):
        if self._is_stale(eventtime):
            return 0., self.target
        return self.temperature, self.target
    def check_busy(self, eventtime):
        temp, target = self.get_temp(eventtime)
        return target > 0. and temp < target - self.tolerance
    def get_max_power(self):
        # PID_CALIBRATE asks for this before set_control() refuses it.
        return 1.
    def set_control(self, *args):
        raise self.printer.command_error(
            "%s: the Panda Breath regulates its own temperature; PID"
            " calibration is not supported" % (self.full_name,))
    def get_status(self, eventtime):
        age = self._reading_age(eventtime)
        if age is not None:
            # Whole seconds: subscribers get at most one change a second.
            age = round(age, 0)
        # The device's own relay where the firmware reports it, else what the
        # component infers from its commanded state (see the README).
        power = self.power
        if power is None:
            power = 1. if self.heater_on else 0.
        return {'temperature': round(self.temperature, 2),
                'target': self.target,
                'power': power,
                'connected': not self._is_stale(eventtime),
                'last_update_age': age,
                'heater_on': self.heater_on,
                'device_target': self.device_target,
                'link': self.link,
                'fault': self.fault,
                'forward_error': self.forward_error}
    def stats(self, eventtime):
        is_active = self.target > 0. or bool(self.heater_on)
        return is_active, '%s: target=%.0f temp=%.1f pwm=%.3f' % (
            self.short_name, self.target, self.temperature,
            self.get_status(eventtime)['power'])
    cmd_SET_HEATER_TEMPERATURE_help = "Sets a heater temperature"
    def cmd_SET_HEATER_TEMPERATURE(self, gcmd):
        temp = gcmd.get_float('TARGET', 0.)
        pheaters = self.printer.lookup_object('heaters')
        pheaters.set_temperature(self, temp)

def load_config_prefix(config):
    return PandaBreathHeater(config)
