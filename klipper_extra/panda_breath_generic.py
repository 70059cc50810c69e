# BIQU Panda Breath chamber heater: the [heater_generic NAME] setup
#
# Copyright (C) 2026  Panda Breath bridge contributors
#
# This file may be distributed under the terms of the GNU GPLv3 license.
#
# For front ends that list only heater_generic sections (KlipperScreen): a
# bare [heater_panda_breath] (heater_panda_breath.py loads this module for it)
# registers the sensor type and pin chip "panda_breath", so it must be above
# [heater_generic NAME] with sensor_type: panda_breath and heater_pin:
# panda_breath:NAME.  That stock heater's sensor is fed by the component's
# pushes; its target is read through the heater's get_temp() and forwarded.
import logging

SENSOR_TYPE = "panda_breath"
PIN_CHIP = "panda_breath"
GENERIC_PREFIX = "heater_generic "
# Klipper's heater forgets a reading after 5 s (7 s in newer Klipper and
# Kalico); a fresh reading is handed to it again this often.
REPORT_INTERVAL = 1.
# How often the heater's target is read and, when changed, forwarded.
TARGET_POLL_INTERVAL = .25


class PandaBreathSensor:
    # The sensor of one [heater_generic NAME], and its pin.  It hands Klipper's
    # heater every pushed reading, repeats a fresh one each second, and
    # forwards each change of the heater's target.
    def __init__(self, config, state_class):
        self.printer = config.get_printer()
        self.reactor = self.printer.get_reactor()
        self.full_name = config.get_name()
        self.short_name = self.full_name.split()[-1]
        self.config_error = config.error
        self.pushed = state_class(config, self, TARGET_POLL_INTERVAL)
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
        self.min_temp = self.max_temp = None
        self.temperature_callback = None
        self.heater = self.mcu = None
        self.last_report_time = None
        self.printer.register_event_handler("klippy:connect",
                                            self._handle_connect)
        # Runs after [heaters]' own handler, which has set every target to 0
        self.printer.register_event_handler("gcode:request_restart",
                                            self._forward_off)
    # Sensor interface used by Klipper's heater
    def setup_minmax(self, min_temp, max_temp):
        if self.pushed.device_max_temp <= min_temp:
            raise self.config_error(
                "[%s]: device_max_temp (%.1f) must be above min_temp (%.1f)"
                % (self.full_name, self.pushed.device_max_temp, min_temp))
        self.min_temp = min_temp
        self.max_temp = max_temp
    def setup_callback(self, temperature_callback):
        self.temperature_callback = temperature_callback
    def get_report_time_delta(self):
        return REPORT_INTERVAL
    def set_read_tolerance(self, *args):
        # Snapmaker U1's klippy asks its sensors for this; nothing to do.
        pass
    # Pin interface: Klipper's heater drives the pin with its control's duty
    # cycle, which means nothing to a device that regulates itself.
    def get_mcu(self):
        return self.mcu
    def setup_max_duration(self, *args, **kwargs):
        pass
    setup_cycle_time = setup_start_value = set_pwm = set_digital = (
        setup_max_duration)
    # Event handlers
    def _handle_connect(self):
        pheaters = self.printer.lookup_object('heaters')
        self.heater = pheaters.lookup_heater(self.short_name)
    def turn_off(self):
        self._forward_off()
        # Klipper keeps a heater's target through a shutdown; clear it so
        # the UIs and Moonraker's status subscription show 0 as well.
        if self.heater is not None:
            self.heater.set_temp(0.)
    def _forward_off(self, print_time=None):
        self.pushed.forward(0.)
    # Target, read through the heater's public interface
    def _limit_target(self, eventtime):
        # A target the device cannot take becomes the nearest it can: its
        # limit (waits end where it stops) or 0, with a console error.
        if self.heater is None:
            return
        target = self.heater.get_temp(eventtime)[1]
        refusal = self.pushed.refusal(target)
        if refusal is None:
            return
        msg, new_target = refusal
        try:
            self.heater.set_temp(new_target)
        except self.printer.command_error as e:
            logging.warning("%s: %s", self.full_name, str(e))
            return
        if new_target:
            self.printer.lookup_object('gcode').respond_info(
                "%s; target set to %.1f" % (msg, new_target))
        else:
            logging.info(msg + "; target set to 0")
            self.printer.lookup_object('gcode').respond_raw(
                "!! " + msg + "; target set to 0")
    def poll(self, eventtime):
        # Each TARGET_POLL_INTERVAL and each push: the heater's target (the
        # device's limit at most) for forwarding, and the reading in, at once
        # when new and again every REPORT_INTERVAL
        if self.heater is None or self.printer.is_shutdown():
            return 0.
        self._limit_target(eventtime)
        target = min(self.heater.get_temp(eventtime)[1],
                     self.pushed.max_target())
        last, pushed = self.last_report_time, self.pushed.last_update_time
        if self.pushed.ready_time is not None and not self.pushed.is_stale(
                eventtime) and (last is None or pushed > last
                                or eventtime - last >= REPORT_INTERVAL - .001):
            self._report(eventtime)
        return target
    # Readings
    def _report(self, eventtime):
        if self.temperature_callback is None or self.mcu is None:
            return
        self.last_report_time = eventtime
        self.temperature_callback(self.mcu.estimated_print_time(eventtime),
                                  self.pushed.temperature)
    def get_status(self, eventtime):
        status = self.pushed.get_status(eventtime)
        temperature = self.pushed.temperature
        status.update({'heater': self.full_name, 'temperature': (
            None if temperature is None else round(temperature, 2))})
        return status

class PandaBreathGeneric:
    # The bare [heater_panda_breath] section: the "panda_breath" sensor type
    # and pin chip for [heater_generic NAME] sections below it.  Its status
    # (printer.heater_panda_breath) has each such heater's device state.
    def __init__(self, config, state_class):
        self.printer = config.get_printer()
        self.state_class = state_class
        self.sensors = {}
        pheaters = self.printer.load_object(config, 'heaters')
        pheaters.add_sensor_factory(SENSOR_TYPE, self._create_sensor)
        self.printer.lookup_object('pins').register_chip(PIN_CHIP, self)
    def _create_sensor(self, config):
        if not config.get_name().startswith(GENERIC_PREFIX):
            raise config.error(
                "sensor_type: %s is only for [heater_generic NAME] sections,"
                " not [%s]" % (SENSOR_TYPE, config.get_name()))
        sensor = PandaBreathSensor(config, self.state_class)
        self.sensors[sensor.short_name] = sensor
        return sensor
    # Pin chip interface (pins.register_chip)
    def setup_pin(self, pin_type, pin_params):
        name = pin_params['pin']
        sensor = self.sensors.get(name)
        if (pin_type not in ('pwm', 'digital_out') or sensor is None
                or sensor.mcu is not None):
            raise self.printer.config_error(
                "Pin %s:%s is only the heater_pin of a [%s%s] section with"
                " sensor_type: %s (placed below [heater_panda_breath])"
                % (PIN_CHIP, name, GENERIC_PREFIX, name, SENSOR_TYPE))
        sensor.mcu = self.printer.lookup_object('mcu')
        return sensor
    def get_status(self, eventtime):
        return dict((name, sensor.get_status(eventtime))
                    for name, sensor in self.sensors.items())
