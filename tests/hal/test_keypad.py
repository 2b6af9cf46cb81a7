"""Physical PIN pads: a serial keypad on a real pseudo-terminal and a GPIO
matrix keypad on MockFactory, both feeding the same patron session."""

import os
import threading

from gpiozero.pins.mock import MockFactory

from bibbox.hal.keypad import KEYS_4X3, MatrixKeypad, PinPad, serial_keypad
from bibbox.hal.simulator import _WatchedPin, _gpio_number
from bibbox.locker.domain.messages import KeypadDigits, PinEntered
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, Rig


class Recorder:
    def __init__(self):
        self.messages = []
        self.got_pin = threading.Event()

    def post(self, message):
        self.messages.append(message)
        if isinstance(message, PinEntered):
            self.got_pin.set()


def test_pin_pad_collects_erases_and_submits():
    rec = Recorder()
    pad = PinPad(rec.post)
    for key in "12*98#":
        pad.key(key)
    assert rec.messages == [KeypadDigits(1), KeypadDigits(2), KeypadDigits(0),
                            KeypadDigits(1), KeypadDigits(2), PinEntered("98")]


def test_serial_keypad_on_a_pty_opens_the_patrons_door(tmp_path):
    rig = Rig(tmp_path)
    rig.start()
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.place("h1", ALICE_CARD, 2)
    rig.card(ALICE_CARD)
    rec = Recorder()
    master, slave = os.openpty()
    online = threading.Event()
    keypad = serial_keypad(os.ttyname(slave), 9600, PinPad(rec.post),
                           on_online=lambda up: up and online.set())
    keypad.start()
    try:
        assert online.wait(5)
        os.write(master, (ALICE_PIN[:2] + "1*" + ALICE_PIN + "#").encode())
        assert rec.got_pin.wait(5)
    finally:
        keypad.stop()
        os.close(master)
        os.close(slave)
    for message in rec.messages:          # replay into the real controller
        rig.controller.post(message)
    rig.run()
    rig.run()
    assert rig.fire_all() == [2]


def test_matrix_keypad_scans_on_the_column_edge():
    factory = MockFactory(pin_class=_WatchedPin)
    rows, cols = [5, 6, 12, 13], [16, 19, 20]
    pressed = {"key": None}

    def wire(pin, value):
        """Connect the pressed key's row to its column, as the switch would."""
        update_columns()

    def update_columns():
        for c, col_pin in enumerate(cols):
            level = True
            key = pressed["key"]
            if key is not None:
                r = next(i for i, row in enumerate(KEYS_4X3) if key in row)
                if KEYS_4X3[r].index(key) == c and not factory.pin(rows[r]).state:
                    level = False
            pin = factory.pin(col_pin)
            if pin.state != level:
                (pin.drive_high if level else pin.drive_low)()

    factory.output_watcher = wire
    rec = Recorder()
    keypad = MatrixKeypad(rows, cols, factory, PinPad(rec.post))
    try:
        for key in "4711#":
            pressed["key"] = key
            update_columns()
            pressed["key"] = None
            update_columns()
        assert PinEntered("4711") in rec.messages
        assert all(factory.pin(r).state is False for r in rows)  # rows low (idle)
    finally:
        keypad.close()
    assert _gpio_number(factory.pin(5)) == 5


def test_kiosk_shows_dots_for_the_physical_pad(tmp_path):
    rig = Rig(tmp_path)
    rig.start()
    rig.card(ALICE_CARD)
    rig.controller.post(KeypadDigits(3))
    rig.run()
    assert rig.kiosk["keypad_digits"] == 3
