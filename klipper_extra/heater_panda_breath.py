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
#
# Two ways to set it up in printer.cfg:
#
# [heater_panda_breath NAME]
#   The default: this module's own heater object (Mainsail, Fluidd).
#
# [heater_panda_breath]            (no NAME; must come first)
# [heater_generic NAME]
# sensor_type: panda_breath
# heater_pin: panda_breath:NAME
#   For front ends that list only heater_generic sections (KlipperScreen):
#   a stock Klipper heater whose sensor is fed by Moonraker's pushes; its
#   target is read through the heater's public get_temp() and forwarded.
#   The bare section registers the sensor type and the pin chip, so it must
#   be above the [heater_generic NAME] section; otherwise Klipper stops with
#   "Unknown temperature sensor 'panda_breath'".
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
STALE_TIMEOUT = 30.
# The link state the component pushes while the device is reachable.
LINK_CONNECTED = "connected"
STALE_HINT = ("is the [panda_breath] Moonraker component running and"
              " connected to the device?")
# The [heater_generic NAME] setup
SENSOR_TYPE = "panda_breath"
PIN_CHIP = "panda_breath"
GENERIC_PREFIX = "heater_generic "
# Klipper's heater forgets a reading after 5 s (7 s in newer Klipper and
# Kalico); a fresh reading is handed to it again this often.
REPORT_INTERVAL = 1.
# How often a heater_generic target is read and, when changed, forwarded.
TARGET_POLL_INTERVAL = .25
# The "panda_breath" status object, in the shape HelixScreen's panda_breath
# chamber backend reads.  work_mode: 0 nothing heats, 1 the device (or
# another controller) runs the heat, 2 Klipper's target, 3 a drying cycle.
# The longest console error line taken from the component.
MAX_ERROR_CHARS = 300
HELIX_OBJECT = "panda_breath"
HELIX_NAME_TOKENS = ("panda_breath", "pandabreath")
WORK_MODES = (0, 1, 2, 3)
try:
    # Python 2 klippy decodes JSON strings as unicode
    STRING_TYPES = (str, unicode)  # noqa: F821
except NameError:
    STRING_TYPES = (str,)


######################################################################
# Update endpoint, shared by all Panda Breath heaters
######################################################################

class UpdateRouter:
    # One plain endpoint instead of a mux endpoint: webhooks' mux lookup
    # raises TypeError (and so shuts the printer down) on an unhashable
    # "heater" value, and this endpoint is reachable from outside through
    # Moonraker.
    def __init__(self, printer):
        self.printer = printer
        self.heaters = {}
        self.order = []
        webhooks = printer.lookup_object('webhooks')
        webhooks.register_endpoint(UPDATE_ENDPOINT, self._handle_update)
        printer.register_event_handler("klippy:connect", self._handle_connect)
    def add_heater(self, name, heater):
        self.heaters[name] = heater
        self.order.append(heater)
    def _handle_connect(self):
        # Added once every section is loaded, and only if no other module
        # (an earlier Panda Breath bridge, say) already has the name.
        if self.printer.lookup_object(HELIX_OBJECT, None) is None:
            self.printer.add_object(HELIX_OBJECT, HelixStatus(self.order))
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

class HelixStatus:
    # The "panda_breath" status object: one device's state in the fields
    # HelixScreen's panda_breath chamber backend reads (its discovery claims
    # a [heater_generic] whose name contains "panda_breath").  With several
    # devices it describes the first heater in printer.cfg order whose name
    # contains panda_breath or pandabreath, else the first heater.
    def __init__(self, heaters):
        self.heaters = heaters
    def _described(self):
        for heater in self.heaters:
            name = heater.short_name.lower()
            for token in HELIX_NAME_TOKENS:
                if token in name:
                    return heater
        if self.heaters:
            return self.heaters[0]
        return None
    def get_status(self, eventtime):
        heater = self._described()
        if heater is None:
            return {}
        return heater.helix_status(eventtime)

def lookup_router(printer):
    router = printer.lookup_object(ROUTER_NAME, None)
    if router is None:
        router = UpdateRouter(printer)
        printer.add_object(ROUTER_NAME, router)
    return router


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

def parse_update(web_request):
    # Every update states the device's state; a reading is optional, so that
    # a link or fault change reaches Klipper without one.  Returns the
    # reading (or None) and the state; nothing is applied on an error.
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
    drying = _get_optional(web_request, 'drying', (bool,), "true or false")
    drying_remaining = _get_number(web_request, 'drying_remaining', False)
    drying_temp = _get_number(web_request, 'drying_temp', False)
    drying_hours = _get_number(web_request, 'drying_hours', False)
    min_target = _get_number(web_request, 'min_target', False)
    work_on = _get_optional(web_request, 'work_on', (bool,), "true or false")
    error = _get_optional(web_request, 'error', STRING_TYPES, "a string")
    external = _get_optional(web_request, 'external_control', STRING_TYPES,
                             "a string or null")
    work_mode = web_request.get('work_mode', None)
    if work_mode is not None and (type(work_mode) is not int
                                  or work_mode not in WORK_MODES):
        raise web_request.error(
            "Invalid Argument [work_mode]: expected one of %s, got %s"
            % (", ".join(str(m) for m in WORK_MODES), repr(work_mode)))
    return temperature, {'heater_on': heater_on, 'power': power,
                         'device_target': device_target, 'link': link,
                         'fault': fault, 'drying': bool(drying),
                         'drying_remaining': drying_remaining,
                         'drying_temp': drying_temp,
                         'drying_hours': drying_hours,
                         'min_target': min_target, 'work_on': work_on,
                         'work_mode': work_mode, 'error': error,
                         'external_control': external}

def report_error(printer, full_name, state):
    # A request the device or the component refused after its G-code had
    # returned (the device's own refusal, a drying or clear-fault request):
    # one error line in the console, as a refused command would print.
    error = state.pop('error', None)
    if error:
        # One line, of a readable length, whatever the text holds
        error = " ".join(error.split())[:MAX_ERROR_CHARS]
        console_error(printer, "%s: %s" % (full_name, error))

def console_error(printer, msg):
    # An error line in the console (as a refused command prints) and the log
    logging.info(msg)
    printer.lookup_object('gcode').respond_raw("!! " + msg)

def below_device_minimum(state, target):
    # Some firmwares (DragonBreath) refuse a heat target below a minimum; the
    # component pushes it, and such a target is an error at the G-code
    # instead of a device that silently stays off.
    minimum = state.get('min_target')
    if minimum is None or not 0. < target < minimum:
        return None
    return ("the device heats only to %.0f or more (0 switches it off)"
            % (minimum,))

def drying_end(state, eventtime):
    # The component pushes the remaining time when it changes (at most once a
    # minute); the countdown runs here in between.
    remaining = state.get('drying_remaining')
    if not state.get('drying') or remaining is None:
        return None
    return eventtime + max(0., remaining)

def drying_status(state, end, eventtime):
    remaining = None
    if end is not None:
        remaining = round(max(0., end - eventtime), 0)
    return {'drying': bool(state.get('drying')), 'drying_remaining': remaining}


######################################################################
# Shared parts of both setups
######################################################################

class TargetForwarder:
    # Calls the remote method; a failure is logged once per distinct error
    # and shown in status, never raised (Moonraker reconciles the target
    # from update replies and its status subscription).
    def __init__(self, printer, full_name, short_name):
        self.printer = printer
        self.full_name = full_name
        self.short_name = short_name
        self.error = None
    def forward(self, target):
        webhooks = self.printer.lookup_object('webhooks')
        try:
            webhooks.call_remote_method(REMOTE_METHOD, heater=self.short_name,
                                        target=target)
        except self.printer.command_error as e:
            msg = str(e)
            if msg != self.error:
                logging.warning("%s: cannot forward target %.1f: %s",
                                self.full_name, target, msg)
            self.error = msg
            return
        if self.error is not None:
            logging.info("%s: forwarding targets to Moonraker again",
                         self.full_name)
            self.error = None

class ReadingTracker:
    # Age of the last pushed reading, and the device's pushed state.
    # Subclasses set reactor, stale_timeout, last_update_time (reactor time
    # of the last reading), ready_time, state (parse_update's) and
    # drying_end.
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
    def _stale_while_heating(self, eventtime, target):
        return (target > 0. and self._is_stale(eventtime)
                and not self._awaiting_first_reading(eventtime))
    def _shutdown_stale(self, eventtime):
        self.printer.invoke_shutdown(
            "%s: %s while heating" % (self.full_name,
                                      self._describe_silence(eventtime)))
    def _log_stale_once(self, eventtime):
        if not self._is_stale(eventtime) or self._awaiting_first_reading(
                eventtime):
            self.reported_stale = False
            return
        if not self.reported_stale and self.last_update_time is not None:
            logging.info("%s: %s (target is 0, not shutting down)",
                         self.full_name, self._describe_silence(eventtime))
        self.reported_stale = True
    def _is_connected(self, eventtime):
        link = self.state.get('link')
        return ((link is None or link == LINK_CONNECTED)
                and not self._is_stale(eventtime))
    def helix_status(self, eventtime):
        # Integers where HelixScreen reads integers (it ignores 3600.0).
        state = self.state
        remaining = 0
        if self.drying_end is not None:
            remaining = int(max(0., self.drying_end - eventtime) + .5)
        hours = state.get('drying_hours')
        if hours is not None:
            hours = int(hours)
        return {'heater': self.full_name,
                'connected': self._is_connected(eventtime),
                'work_mode': state.get('work_mode'),
                'work_on': bool(state.get('work_on')),
                'device_target': state.get('device_target'),
                'fault': state.get('fault'),
                'filament_drying_active': bool(state.get('drying')),
                'remaining_seconds': remaining,
                'filament_temp': state.get('drying_temp'),
                'filament_timer': hours}
    def _check_range(self, temperature):
        if self.min_temp <= temperature <= self.max_temp:
            return
        limit = "below minimum"
        limit_temp = self.min_temp
        if temperature > self.max_temp:
            limit = "above maximum"
            limit_temp = self.max_temp
        self.printer.invoke_shutdown(
            "%s: temperature %.1f %s temperature of %.1f"
            % (self.full_name, temperature, limit, limit_temp))


######################################################################
# [heater_panda_breath NAME]: the heater object itself
######################################################################

class PandaBreathHeater(ReadingTracker):
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
        self.stale_timeout = config.getfloat('stale_timeout', STALE_TIMEOUT,
                                             minval=2.)
        self.tolerance = config.getfloat('tolerance', 1., minval=0.)
        # State
        self.target = 0.
        self.temperature = 0.
        self.last_update_time = None
        self.ready_time = None
        self.heater_on = self.device_target = self.power = None
        self.state = {}
        self.drying_end = None
        self.link = self.fault = None
        self.forwarder = TargetForwarder(self.printer, self.full_name,
                                         self.short_name)
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
        lookup_router(self.printer).add_heater(self.short_name, self)
        self.stale_timer = self.reactor.register_timer(self._check_stale)
        self.printer.register_event_handler("klippy:ready",
                                            self._handle_ready)
        self.printer.register_event_handler("klippy:shutdown",
                                            self._handle_shutdown)
    def _apply_target(self, target):
        self.target = target
        self.forwarder.forward(target)
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
        if self._stale_while_heating(eventtime, self.target):
            self._shutdown_stale(eventtime)
            return self.reactor.NEVER
        self._log_stale_once(eventtime)
        return eventtime + CHECK_INTERVAL
    # Inbound readings
    def handle_update(self, web_request):
        temperature, state = parse_update(web_request)
        report_error(self.printer, self.full_name, state)
        self.state = state
        self.drying_end = drying_end(state, self.reactor.monotonic())
        self.heater_on = state['heater_on']
        self.power = state['power']
        self.device_target = state['device_target']
        self.link = state['link']
        self.fault = state['fault']
        if temperature is not None:
            self.temperature = temperature
            self.last_update_time = self.reactor.monotonic()
            self._check_range(temperature)
        web_request.send({'target': self.target, 'heater': self.short_name})
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
            refusal = below_device_minimum(self.state, degrees)
            if refusal is not None:
                raise self.printer.command_error(
                    "%s: target %.1f refused: %s" % (self.full_name, degrees,
                                                      refusal))
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
        status = {'temperature': round(self.temperature, 2),
                  'target': self.target,
                  'power': power,
                  'connected': not self._is_stale(eventtime),
                  'last_update_age': age,
                  'heater_on': self.heater_on,
                  'device_target': self.device_target,
                  'link': self.link,
                  'fault': self.fault,
                  'external_control': self.state.get('external_control'),
                  'forward_error': self.forwarder.error}
        status.update(drying_status(self.state, self.drying_end,
                                    eventtime))
        return status
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


######################################################################
# [heater_panda_breath] + [heater_generic NAME]: a stock Klipper heater
######################################################################

class PandaBreathSensor(ReadingTracker):
    # The temperature sensor of one [heater_generic NAME] section (sensor
    # interface: setup_minmax, setup_callback, get_report_time_delta).  It
    # hands Klipper's heater every pushed reading and repeats a fresh one
    # each second; it reads the heater's target through get_temp() every
    # TARGET_POLL_INTERVAL and forwards each change to Moonraker.
    def __init__(self, config):
        self.printer = config.get_printer()
        self.reactor = self.printer.get_reactor()
        self.full_name = config.get_name()
        self.short_name = self.full_name.split()[-1]
        self.config_error = config.error
        # Options, read from the [heater_generic NAME] section
        self.device_max_temp = config.getfloat(
            'device_max_temp', DEVICE_MAX_TEMP, above=0.,
            maxval=PATCHED_DEVICE_MAX_TEMP)
        self.stale_timeout = config.getfloat('stale_timeout', STALE_TIMEOUT,
                                             minval=2.)
        pin = config.get('heater_pin', None)
        want_pin = "%s:%s" % (PIN_CHIP, self.short_name)
        if pin is not None and "".join(pin.split()) != want_pin:
            raise config.error(
                "[%s] with sensor_type: %s needs heater_pin: %s (not %s)"
                % (self.full_name, SENSOR_TYPE, want_pin, pin))
        # Every heater_generic gets a verify_heater; Klipper's defaults (2 C
        # within 20 s) stop the printer soon after any chamber target.
        verify_section = "verify_heater %s" % (self.short_name,)
        if not config.has_section(verify_section):
            raise config.error(
                "[%s] with sensor_type: %s needs a [%s] section tuned for a"
                " slow chamber heater: Klipper's defaults (2 C within 20 s)"
                " would shut the printer down soon after every target (see"
                " examples/panda_breath_klipperscreen.cfg)"
                % (self.full_name, SENSOR_TYPE, verify_section))
        # Set by Klipper's heater and at klippy:connect
        self.min_temp = self.max_temp = None
        self.temperature_callback = None
        self.heater = self.mcu = self.pin = None
        # State
        self.temperature = None
        self.last_update_time = self.ready_time = self.last_report_time = None
        self.sent_target = 0.
        self.state = {'heater_on': None, 'power': None, 'device_target': None,
                      'link': None, 'fault': None, 'drying': False,
                      'drying_remaining': None}
        self.drying_end = None
        self.forwarder = TargetForwarder(self.printer, self.full_name,
                                         self.short_name)
        self.reported_stale = False
        lookup_router(self.printer).add_heater(self.short_name, self)
        self.timer = self.reactor.register_timer(self._poll)
        self.printer.register_event_handler("klippy:connect",
                                            self._handle_connect)
        self.printer.register_event_handler("klippy:ready",
                                            self._handle_ready)
        self.printer.register_event_handler("klippy:shutdown",
                                            self._handle_shutdown)
        # Runs after [heaters]' own handler (registered earlier), which has
        # already set every target to 0.
        self.printer.register_event_handler("gcode:request_restart",
                                            self._handle_request_restart)
    # Sensor interface used by Klipper's heater
    def setup_minmax(self, min_temp, max_temp):
        if self.device_max_temp <= min_temp:
            raise self.config_error(
                "[%s]: device_max_temp (%.1f) must be above min_temp (%.1f)"
                % (self.full_name, self.device_max_temp, min_temp))
        self.min_temp = min_temp
        self.max_temp = max_temp
    def setup_callback(self, temperature_callback):
        self.temperature_callback = temperature_callback
    def get_report_time_delta(self):
        return REPORT_INTERVAL
    def set_read_tolerance(self, *args):
        # Snapmaker U1's klippy asks its sensors for this; nothing to do.
        pass
    # The pin "panda_breath:NAME" (created by PandaBreathGeneric.setup_pin)
    def create_pin(self, mcu):
        self.pin = PandaBreathPin(mcu)
        return self.pin
    # Event handlers
    def _handle_connect(self):
        pheaters = self.printer.lookup_object('heaters')
        self.heater = pheaters.lookup_heater(self.short_name)
        self.mcu = self.pin.get_mcu()
    def _handle_ready(self):
        self.ready_time = self.reactor.monotonic()
        self.reactor.update_timer(self.timer, self.reactor.NOW)
    def _handle_shutdown(self):
        self.reactor.update_timer(self.timer, self.reactor.NEVER)
        self.sent_target = 0.
        self.forwarder.forward(0.)
        # Klipper keeps a heater's target through a shutdown; clear it so
        # the UIs and Moonraker's status subscription show 0 as well.
        if self.heater is not None:
            self.heater.set_temp(0.)
    def _handle_request_restart(self, print_time=None):
        self.sent_target = 0.
        self.forwarder.forward(0.)
    # Target, read through the heater's public interface
    def _target(self, eventtime):
        if self.heater is None or self.printer.is_shutdown():
            return 0.
        return min(self.heater.get_temp(eventtime)[1], self.device_max_temp)
    def _limit_target(self, eventtime):
        # Klipper's heater took the target; one the device cannot do is
        # changed here: above its limit (up to max_temp, the reading limit)
        # lowered to it, so that waits end where the device stops; below
        # the minimum some firmwares heat to, set to 0 with an error in the
        # console (the device would refuse it and stay off).
        if self.heater is None:
            return
        target = self.heater.get_temp(eventtime)[1]
        refusal = below_device_minimum(self.state, target)
        if target > self.device_max_temp:
            new_target = self.device_max_temp
            msg = ("%s: target %.1f is above the device's limit"
                   " (device_max_temp %.1f); target set to %.1f"
                   % (self.full_name, target, self.device_max_temp,
                      new_target))
        elif refusal is not None:
            new_target = 0.
            msg = ("%s: target %.1f refused: %s; target set to 0"
                   % (self.full_name, target, refusal))
        else:
            return
        try:
            self.heater.set_temp(new_target)
        except self.printer.command_error as e:
            logging.warning("%s: %s", self.full_name, str(e))
            return
        if new_target:
            self.printer.lookup_object('gcode').respond_info(msg)
        else:
            console_error(self.printer, msg)
    def _poll(self, eventtime):
        if self.printer.is_shutdown():
            return self.reactor.NEVER
        self._limit_target(eventtime)
        target = self._target(eventtime)
        if self._stale_while_heating(eventtime, target):
            self._shutdown_stale(eventtime)
            return self.reactor.NEVER
        if target != self.sent_target:
            self.sent_target = target
            self.forwarder.forward(target)
        self._log_stale_once(eventtime)
        if (not self._is_stale(eventtime) and (
                self.last_report_time is None or eventtime
                - self.last_report_time >= REPORT_INTERVAL - .001)):
            self._report(eventtime)
        return eventtime + TARGET_POLL_INTERVAL
    # Readings
    def _report(self, eventtime):
        if self.temperature_callback is None or self.mcu is None:
            return
        self.last_report_time = eventtime
        self.temperature_callback(self.mcu.estimated_print_time(eventtime),
                                  self.temperature)
    def handle_update(self, web_request):
        temperature, self.state = parse_update(web_request)
        report_error(self.printer, self.full_name, self.state)
        eventtime = self.reactor.monotonic()
        self.drying_end = drying_end(self.state, eventtime)
        if temperature is not None:
            self.temperature = temperature
            self.last_update_time = eventtime
            # Until klippy:ready the reading waits for the first poll.
            if self.ready_time is not None:
                self._report(eventtime)
            self._check_range(temperature)
        web_request.send({'target': self._target(eventtime),
                          'heater': self.short_name})
    def get_status(self, eventtime):
        age = self._reading_age(eventtime)
        if age is not None:
            age = round(age, 0)
        power = self.state['power']
        if power is None:
            power = 1. if self.state['heater_on'] else 0.
        temperature = self.temperature
        if temperature is not None:
            temperature = round(temperature, 2)
        status = {'heater': self.full_name,
                  'temperature': temperature,
                  'power': power,
                  'connected': not self._is_stale(eventtime),
                  'last_update_age': age,
                  'heater_on': self.state['heater_on'],
                  'device_target': self.state['device_target'],
                  'link': self.state['link'],
                  'fault': self.state['fault'],
                  'external_control': self.state.get('external_control'),
                  'forward_error': self.forwarder.error}
        status.update(drying_status(self.state, self.drying_end, eventtime))
        return status

class PandaBreathPin:
    # Klipper's heater drives this pin with its control's duty cycle.  The
    # device regulates itself, so the value means nothing and is ignored.
    def __init__(self, mcu):
        self.mcu = mcu
    def get_mcu(self):
        return self.mcu
    def setup_max_duration(self, max_duration):
        pass
    def setup_cycle_time(self, cycle_time, hardware_pwm=False):
        pass
    def setup_start_value(self, start_value, shutdown_value, *args):
        pass
    def set_pwm(self, print_time, value, *args):
        pass
    def set_digital(self, print_time, value):
        pass

class PandaBreathGeneric:
    # The bare [heater_panda_breath] section: the "panda_breath" sensor type
    # and the "panda_breath" pin chip for [heater_generic NAME] sections
    # below it.  Its status (printer.heater_panda_breath) has the device's
    # state for each such heater.
    def __init__(self, config):
        self.printer = config.get_printer()
        self.sensors = {}
        pheaters = self.printer.load_object(config, 'heaters')
        pheaters.add_sensor_factory(SENSOR_TYPE, self._create_sensor)
        self.printer.lookup_object('pins').register_chip(PIN_CHIP, self)
        lookup_router(self.printer)
    def _create_sensor(self, config):
        if not config.get_name().startswith(GENERIC_PREFIX):
            raise config.error(
                "sensor_type: %s is only for [heater_generic NAME] sections,"
                " not [%s]" % (SENSOR_TYPE, config.get_name()))
        sensor = PandaBreathSensor(config)
        self.sensors[sensor.short_name] = sensor
        return sensor
    # Pin chip interface (pins.register_chip)
    def setup_pin(self, pin_type, pin_params):
        name = pin_params['pin']
        sensor = self.sensors.get(name)
        if (pin_type not in ('pwm', 'digital_out') or sensor is None
            or sensor.pin is not None):
            raise self.printer.config_error(
                "Pin %s:%s is only the heater_pin of a [%s%s] section with"
                " sensor_type: %s (placed below [heater_panda_breath])"
                % (PIN_CHIP, name, GENERIC_PREFIX, name, SENSOR_TYPE))
        return sensor.create_pin(self.printer.lookup_object('mcu'))
    def get_status(self, eventtime):
        status = {}
        for name, sensor in self.sensors.items():
            status[name] = sensor.get_status(eventtime)
        return status

def load_config(config):
    return PandaBreathGeneric(config)

def load_config_prefix(config):
    return PandaBreathHeater(config)
