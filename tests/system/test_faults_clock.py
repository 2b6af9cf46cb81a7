"""The wall clock jumps (NTP after a power cut, a dead RTC).

Pulses, timeouts and alarms run on monotonic time, so a wall jump changes
none of them.  Deadlines run on wall time through ``locker.domain.clock.GuardedClock``:
while the system clock reads far behind the newest time this locker has seen
(persisted in the store, so this holds across a reboot), deadlines use that
time plus the monotonic time elapsed since.  So a backward jump neither
expires nor un-expires anything, a hold given a deadline while the clock is
wrong does not expire the moment NTP corrects it, and holds still expire
when their time has really passed.
"""

import logging

from bibbox.locker.domain.clock import FakeClock
from bibbox.locker.domain.clock import GuardedClock
from bibbox.locker.domain.core import WALL_SEEN_KEY
from tests.domain_helpers import ALICE_CARD, ALICE_PIN, BOB_CARD, BOB_PIN, Rig

DAY = 86400.0


def hold_states(rig):
    return {h.id: h.state.value for h in rig.locker.holds.values()}


def db_states(rig):
    return {r["id"]: r["state"] for r in
            rig.store.conn.execute("SELECT id, state FROM holds")}


def load(rig, card, number, days=7):
    """Staff loading through the domain (deadline from the locker's clock)."""
    result = rig.locker.load_hold("staff", patron_hash=rig.patron_hash(card),
                                  items=[{"barcode": f"B-{number}", "title": "Bog"}],
                                  compartment=number, pickup_days=days)
    rig.run()
    rig.fire_all()
    rig.door(number, True)
    rig.door(number, False)
    return result


def test_pulses_timeouts_and_alarms_ignore_wall_jumps(tmp_path):
    rig = Rig(tmp_path)
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.start()
    rig.place("H1", ALICE_CARD, 1)
    rig.card(ALICE_CARD)
    rig.clock.jump_wall(+3600)                  # the PIN screen's timeout is monotonic
    rig.run()
    assert rig.kiosk["screen"] == "pin"
    rig.pin(ALICE_PIN)
    assert rig.fire_all() == [1]
    rig.clock.jump_wall(-DAY)                   # backwards: no jam yet ...
    rig.run()
    assert "door_jammed" not in {a["alarm"] for a in rig.state["alarms"]}
    rig.advance(rig.cfg.timing.door_open_timeout_s + 0.1)   # ... until monotonic time says so
    assert "door_jammed" in {a["alarm"] for a in rig.state["alarms"]}
    rig.door(2, True)                           # forced, then held open
    rig.clock.jump_wall(+2 * 3600)
    rig.run()
    assert ("door_held_open", 2) not in {(a["alarm"], a["compartment"])
                                         for a in rig.state["alarms"]}
    rig.advance(rig.cfg.timing.door_held_open_s + 0.1)
    assert ("door_held_open", 2) in {(a["alarm"], a["compartment"])
                                     for a in rig.state["alarms"]}


def test_a_backward_jump_neither_expires_nor_unexpires(tmp_path, caplog):
    rig = Rig(tmp_path)
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.add_patron(BOB_CARD, BOB_PIN)
    rig.start()
    rig.place("SHORT", ALICE_CARD, 1, days=1)
    rig.place("LONG", BOB_CARD, 2, days=7)
    rig.advance(2 * DAY)
    assert hold_states(rig) == {"SHORT": "expired", "LONG": "ready"}
    rig.clock.jump_wall(-30 * DAY)              # a dead RTC / stale fake-hwclock
    rig.advance(rig.cfg.timing.expiry_check_s)
    assert hold_states(rig) == {"SHORT": "expired", "LONG": "ready"}
    assert db_states(rig) == {"SHORT": "expired", "LONG": "ready"}
    assert any("behind" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)
    # A hold loaded now gets its deadline from real elapsed time, not the bad clock.
    load(rig, ALICE_CARD, 3, days=7)
    new = next(h for h in rig.locker.holds.values() if h.compartment == 3)
    assert new.deadline > rig.clock.wall() + 29 * DAY
    # LONG's 7 days run out in real (monotonic) time even though the clock is wrong.
    rig.advance(5 * DAY + 60)
    assert hold_states(rig)["LONG"] == "expired"
    assert hold_states(rig)[new.id] == "ready"
    # NTP puts the clock right: nothing expires wrongly, nothing comes back.
    rig.clock.jump_wall(+30 * DAY)
    rig.advance(rig.cfg.timing.expiry_check_s)
    assert hold_states(rig) == {"SHORT": "expired", "LONG": "expired", new.id: "ready"}


def test_a_clock_behind_the_last_seen_time_at_boot_expires_nothing_wrongly(tmp_path):
    rig = Rig(tmp_path)
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.add_patron(BOB_CARD, BOB_PIN)
    rig.start()
    seen = rig.clock.wall()
    rig.place("WEEK", ALICE_CARD, 1, days=7)
    rig.place("HOUR", BOB_CARD, 2, days=1 / 24)
    rig.advance(30 * 60)
    rig.store.close()
    assert float(Rig(tmp_path, clock=rig.clock).store.meta(WALL_SEEN_KEY)) >= seen
    # Power cut; the Pi boots with a clock 40 days behind, monotonic from zero.
    boot = FakeClock(wall=seen - 40 * DAY, monotonic=3.0)
    rig2 = Rig(tmp_path, clock=boot)
    rig2.start()
    assert hold_states(rig2) == {"WEEK": "ready", "HOUR": "ready"}
    load(rig2, ALICE_CARD, 3, days=7)
    loaded = next(h for h in rig2.locker.holds.values() if h.compartment == 3)
    assert loaded.deadline >= seen + 7 * DAY
    rig2.advance(45 * 60)                       # HOUR's deadline passes in real time
    assert hold_states(rig2)["HOUR"] == "expired"
    assert hold_states(rig2)["WEEK"] == "ready"
    boot.jump_wall(40 * DAY + 2 * 3600)         # NTP: the power cut lasted two hours
    rig2.advance(rig2.cfg.timing.expiry_check_s)
    assert hold_states(rig2) == {"WEEK": "ready", "HOUR": "expired", loaded.id: "ready"}


def test_a_forward_jump_is_believed_and_expires_what_is_overdue(tmp_path, caplog):
    rig = Rig(tmp_path)
    rig.add_patron(ALICE_CARD, ALICE_PIN)
    rig.start()
    rig.place("H1", ALICE_CARD, 1, days=7)
    rig.clock.jump_wall(8 * DAY)                # NTP after a week-long power cut
    rig.advance(rig.cfg.timing.expiry_check_s)
    assert hold_states(rig) == {"H1": "expired"}
    assert any("jumped forward" in r.getMessage() for r in caplog.records)


def test_the_newest_wall_time_seen_is_persisted(tmp_path):
    rig = Rig(tmp_path)
    rig.start()
    first = float(rig.store.meta(WALL_SEEN_KEY))
    rig.advance(rig.cfg.timing.expiry_check_s + 1)
    assert float(rig.store.meta(WALL_SEEN_KEY)) >= first + rig.cfg.timing.expiry_check_s


def test_small_steps_back_are_taken_as_they_come():
    clock = FakeClock()
    guarded = GuardedClock(clock)
    start = guarded.wall()
    clock.jump_wall(-5)                          # NTP stepping a few seconds
    assert guarded.wall() == start - 5
    assert guarded.behind_s == 0
    clock.jump_wall(-3600)
    assert guarded.wall() == start - 5          # held at the newest trusted time
    clock.advance(10)
    assert guarded.wall() == start + 5          # ... plus what elapsed since


def test_a_restart_after_downtime_is_neither_a_jump_nor_behind(tmp_path, caplog):
    rig = Rig(tmp_path)
    rig.start()
    rig.store.close()
    later = FakeClock(wall=rig.clock.wall() + 3 * 3600, monotonic=1.0)   # down 3 hours
    rig2 = Rig(tmp_path, clock=later)
    rig2.start()
    assert rig2.locker.clock.wall() == later.wall()
    assert not [r for r in caplog.records if "wall clock" in r.getMessage()]
