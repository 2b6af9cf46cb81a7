"""Item sensors end to end: the Kerong simulator's IR bits, answered byte for
byte over a real pseudo-terminal (the 48-door demo with ``item_sensors``
on), and GPIO item inputs on gpiozero's mock pins reach the locker: a
loading is confirmed or not, an item in a compartment that should be empty
raises its alarm, and taking it out clears it."""

from pathlib import Path

import pytest

from bibbox.daemon.cli import DEMO_PATRONS, demo_daemon
from bibbox.locker.domain.identity import CardNumber
from tests.fault_helpers import alarms, sim_daemon, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEMO_48 = ROOT / "config" / "demo-48-rs485.toml"
GRACE = 0.5


def demo_48_with_item_sensors(tmp_path):
    """The 48-door demo's configuration with the boards' IR sensors on and a
    short grace window, written into ``tmp_path``; its path."""
    text = DEMO_48.read_text()
    text = text.replace("hook_open_level = 0\n", "hook_open_level = 0\nitem_sensors = true\n", 1)
    text = text.replace("[timing]\n", f"[timing]\nitem_grace_s = {GRACE}\n", 1)
    # a loaded test machine may answer a poll late: a board taken for silent
    # makes its doors and items unknown, and a loading then goes unchecked
    text = text.replace("timeout_s = 0.1\n", "timeout_s = 0.5\n", 1)
    assert "item_sensors = true" in text and "item_grace_s" in text and "0.5\n" in text
    path = tmp_path / "demo-items.toml"
    path.write_text(text)
    return path


@pytest.fixture
def demo(tmp_path):
    daemon = demo_daemon(tmp_path / "state", port=0, config=str(demo_48_with_item_sensors(tmp_path)))
    daemon.start()
    yield daemon
    daemon.stop()


def call(daemon, fn):
    return daemon.controller.call(fn)


def start_loading(daemon, number, hold_id):
    """Staff load a hold into ``number``; returns once its door is seen open
    (the simulated board springs it open on the unlock frame)."""
    patron = daemon.hasher.patron(CardNumber.parse(DEMO_PATRONS[0]["card"]))
    call(daemon, lambda locker: locker.load_hold(
        "anna", hold_id=hold_id, patron_hash=patron, items=[{"barcode": hold_id + "-1"}],
        compartment=number))
    wait_until(lambda: call(daemon, lambda locker: number in locker.openings and
                            locker.openings[number].seen_open), what=f"door {number} open")


def hold_state(daemon, hold_id):
    return call(daemon, lambda locker: locker.store.hold(hold_id).state.value)


def test_the_ir_bits_reach_the_locker_and_a_stray_item_raises_its_alarm(demo):
    sim = demo.simulator
    wait_until(lambda: call(demo, lambda locker: locker.items_present.get(1)),
               what="the demo's holds seen inside")            # seeded, and put in
    sim.set_item(40, True)                                       # nothing belongs in 40
    wait_until(lambda: ("unexpected_item", 40) in alarms(demo), what="the alarm")
    assert alarms(demo) == {("unexpected_item", 40)}             # not where holds are
    sim.set_item(40, False)
    wait_until(lambda: not alarms(demo), what="the alarm cleared by the sensor")


def test_a_loading_is_ready_only_with_the_item_seen(demo):
    sim = demo.simulator
    start_loading(demo, 20, "E2E-1")
    sim.set_item(20, True)
    sim.set_door(20, False)
    wait_until(lambda: hold_state(demo, "E2E-1") == "ready", what="the hold ready")
    start_loading(demo, 21, "E2E-2")
    sim.set_door(21, False)                                      # closed on nothing
    wait_until(lambda: hold_state(demo, "E2E-2") == "announced", what="the loading undone")
    assert call(demo, lambda locker: locker.item_load_unconfirmed("E2E-2")) == 21
    assert "hold.load_unconfirmed" in [
        r["type"] for r in demo.store.outbox_batch(limit=10_000)]


def test_a_gpio_item_input_reaches_the_locker(tmp_path):
    daemon = sim_daemon(tmp_path, compartments=3, serve_web=False,
                        extra=f"item_grace_s = {GRACE}\n\n[[compartments]]\nnumber = 4\n"
                              "size = \"M\"\nrelay_pin = 2\ndoor_pin = 3\nitem_pin = 27\n")
    sim = daemon.simulator
    assert sim.item_present(4) is False and sim.item_present(1) is None
    sim.set_item(4, True)                     # inside before the daemon starts
    daemon.start()
    try:
        assert call(daemon, lambda locker: locker.items_present) == {4: True}
        wait_until(lambda: ("unexpected_item", 4) in alarms(daemon), what="the alarm")
        sim.set_item(4, False)                # an edge on the pin, while running
        wait_until(lambda: not alarms(daemon), what="the alarm cleared")
        assert call(daemon, lambda locker: locker.items_present) == {4: False}
    finally:
        daemon.stop()
