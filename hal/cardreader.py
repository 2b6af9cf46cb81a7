"""Card readers on a serial line: framings turn bytes into card numbers, and
:class:`SerialCardReader` runs one on a port in a background thread.

A card number may be a CPR number.  Nothing here puts card data, or the raw
bytes it came in, into a log line, an exception message or a repr: failures are
reported only by reason (see :data:`REASONS`) or exception class name.

A framing is pure (no I/O, no clock of its own) and shares these rules:

* ``feed(data, now)`` takes the bytes that arrived at monotonic time ``now``
  and returns the cards they complete, in order.  Chunk boundaries never
  matter: feeding a stream whole or split anywhere (same ``now``) gives the
  same cards and reasons.  It never raises, and every card it returns is one
  :meth:`CardNumber.parse` accepts.
* A frame that fails is dropped; its reason is queued and collected with
  ``take_garbled()``.  Bytes outside a frame (noise) are dropped silently.
* A start byte always begins a new frame (resync); a partial frame it cuts
  off is reported ``"garbled"``.
* A partial frame whose last byte is more than ``inter_char_timeout_s`` older
  than ``now`` is dropped (``"timeout"``) when the next feed comes, so
  ``feed(b"", now)`` works as an idle tick.
* A frame longer than its cap is dropped (``"too long"``) and reading resyncs.
* ``reset()`` forgets any partial frame and queued reasons (used on reopen).
"""

import inspect
import logging
import re
import threading
import time
import traceback
from typing import Callable

import serial

from bibbox.locker.domain.config import READER_FRAMINGS
from bibbox.locker.domain.errors import CardFormatError, ConfigError, ReaderError
from bibbox.locker.domain.identity import CardNumber

log = logging.getLogger("bibbox.reader")

#: The framing kinds :func:`make_framing` knows (the fact lives in locker.config).
FRAMINGS = READER_FRAMINGS

GARBLED = "garbled"      # frame complete but its content is not a card number
CHECKSUM = "checksum"    # frame complete but its checksum does not match
TOO_LONG = "too long"    # frame exceeded its length cap
TIMEOUT = "timeout"      # frame left unfinished for longer than the timeout
#: Every reason a framing (and so ``on_garbled``) may report.
REASONS = (GARBLED, CHECKSUM, TOO_LONG, TIMEOUT)

#: Read timeout of the port: bounds how long :meth:`SerialCardReader.stop` takes.
READ_TIMEOUT_S = 0.1


class Framing:
    """Base of the framings; subclasses implement ``_take``, ``_partial`` and
    ``_restart`` (see the module docstring for the contract)."""

    def __init__(self, inter_char_timeout_s):
        if not inter_char_timeout_s > 0:
            raise ConfigError(["reader.inter_char_timeout_s: must be above 0"])
        self.inter_char_timeout_s = inter_char_timeout_s
        self.reset()

    def feed(self, data: bytes, now: float) -> list[CardNumber]:
        """Consume ``data`` received at ``now``; return completed cards."""
        if (self._last_byte_at is not None
                and now - self._last_byte_at > self.inter_char_timeout_s):
            if self._partial():
                self._garbled.append(TIMEOUT)
            self._restart()
            self._last_byte_at = None
        if data:
            self._last_byte_at = now
        cards = (self._take(byte) for byte in data)
        return [card for card in cards if card is not None]

    @property
    def expecting_more(self) -> bool:
        """True while bytes of an unfinished frame wait for more (the reader
        then reads with a short timeout so a stalled frame can time out);
        False when idle (the reader blocks and costs nothing)."""
        return self._last_byte_at is not None

    def take_garbled(self) -> list[str]:
        """Return and forget the reasons of frames dropped since last asked."""
        reasons, self._garbled = self._garbled, []
        return reasons

    def reset(self):
        self._garbled = []
        self._last_byte_at = None
        self._restart()

    def _card(self, text):
        try:
            return CardNumber.parse(text)
        except CardFormatError:
            self._garbled.append(GARBLED)
            return None

    def _take(self, byte: int):  # -> CardNumber | None
        raise NotImplementedError

    def _partial(self) -> bool:
        raise NotImplementedError

    def _restart(self):
        raise NotImplementedError


def _as_bytes(name, value):
    """Config gives text ("\\r"); code may give bytes.  Either becomes bytes."""
    if isinstance(value, str):
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            raise ConfigError([f"reader.{name}: only characters U+0000-U+00FF"]) from None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    raise ConfigError([f"reader.{name}: must be text or bytes"])


_AIM_ID = re.compile(rb"\][A-Za-z][0-9A-Za-z]")
_LINE_ENDS = b"\r\n"


class BarcodeFraming(Framing):
    """A line-terminated scanner: ``[prefix][AIM id like "]C0"][data][suffix]``.

    ``suffix`` (text or bytes, non-empty) ends a line.  CR and LF at either end
    of a line are stripped and a line of nothing else is ignored, so a CRLF
    scanner works with suffix CR or LF.  ``prefix``, if given, is stripped and
    resyncs: it starts a new line wherever it appears, but lines without it
    are read too.  With ``strip_aim`` a leading AIM symbology id is removed.
    A line of more than ``max_len`` bytes (suffix excluded) is dropped up to
    its suffix.  Data that is empty or no card number: ``"garbled"``.
    """

    def __init__(self, suffix=b"\r", prefix=b"", strip_aim=True, max_len=64,
                 inter_char_timeout_s=0.3):
        self.suffix = _as_bytes("suffix", suffix)
        self.prefix = _as_bytes("prefix", prefix)
        if not self.suffix:
            raise ConfigError(["reader.suffix: a barcode reader needs a line terminator"])
        self.strip_aim = bool(strip_aim)
        self.max_len = max_len
        self._keep = max(len(self.suffix), len(self.prefix)) - 1
        super().__init__(inter_char_timeout_s)

    def _restart(self):
        self._line = bytearray()
        self._skipping = False  # inside an overlong line, waiting for its end

    def _partial(self):
        return not self._skipping and bool(self._line.strip(_LINE_ENDS))

    def _take(self, byte):
        line = self._line
        line.append(byte)
        if line.endswith(self.suffix):
            body, skipped = bytes(line[:-len(self.suffix)]), self._skipping
            self._restart()
            return None if skipped else self._parse(body)
        if self.prefix and line.endswith(self.prefix):
            del line[:-len(self.prefix)]
            self._skipping = False
        elif self._skipping:
            del line[:max(0, len(line) - self._keep)]
        elif len(line) >= self.max_len + len(self.suffix):
            self._garbled.append(TOO_LONG)
            self._skipping = True
            del line[:max(0, len(line) - self._keep)]
        return None

    def _parse(self, body):
        body = body.strip(_LINE_ENDS)
        if not body:
            return None  # an empty line, or the LF of a CRLF when suffix is CR
        if self.prefix and body.startswith(self.prefix):
            body = body[len(self.prefix):]
        if self.strip_aim and _AIM_ID.match(body):
            body = body[3:]
        try:
            text = body.decode("ascii")
        except UnicodeDecodeError:
            self._garbled.append(GARBLED)
            return None
        return self._card(text)


def _track2_lrc(frame):
    """The LRC character an ASCII track-2 reader may send after ``?``: the XOR
    of the low nibbles of ``;``, the content and ``?``, plus 0x30.  None if the
    content holds bytes outside the track-2 character set."""
    if any(not 0x30 <= b <= 0x3F for b in frame):
        return None
    lrc = 0x0B ^ 0x0F
    for b in frame:
        lrc ^= b & 0x0F
    return 0x30 | lrc


class MagstripeFraming(Framing):
    """Track 2 of the Danish health card (sundhedskort), as ASCII.

    ``;`` type(1) nationality "208"(3) application(1) issuer(3) CPR(10) more
    ``?`` [LRC].  The CPR (characters 9-18 after ``;``) is the card number.
    A frame too short, of another nationality or with non-digits in the CPR
    is ``"garbled"``; content over 40 bytes is ``"too long"``.  ``;`` resyncs.
    The card is returned at ``?``; a following byte equal to the frame's LRC
    is skipped (so an LRC of ``;`` starts no frame).
    """

    START, END = ord(";"), ord("?")
    MAX_LEN = 40

    def __init__(self, inter_char_timeout_s=0.3):
        super().__init__(inter_char_timeout_s)

    def _restart(self):
        self._frame = None
        self._lrc = None

    def _partial(self):
        return self._frame is not None

    def _take(self, byte):
        lrc, self._lrc = self._lrc, None
        if byte == lrc:
            return None
        if byte == self.START:
            if self._frame is not None:
                self._garbled.append(GARBLED)
            self._frame = bytearray()
        elif self._frame is None:
            pass  # noise
        elif byte == self.END:
            frame, self._frame = bytes(self._frame), None
            self._lrc = _track2_lrc(frame)
            return self._parse(frame)
        elif len(self._frame) >= self.MAX_LEN:
            self._garbled.append(TOO_LONG)
            self._frame = None
        else:
            self._frame.append(byte)
        return None

    def _parse(self, frame):
        cpr = frame[8:18]
        if frame[1:4] != b"208" or len(cpr) != 10 or not cpr.isdigit():
            self._garbled.append(GARBLED)
            return None
        return self._card(cpr.decode("ascii"))


_HEX = frozenset(b"0123456789ABCDEFabcdef")


class Rdm6300Framing(Framing):
    """125 kHz RFID reader RDM6300: STX, 10 hex characters, 2 hex characters
    checksum (XOR of the 5 bytes the 10 characters spell), ETX.  The card
    number is the 10 characters upper-cased.  A wrong checksum is
    ``"checksum"``, any other malformed frame ``"garbled"``.  STX resyncs.
    """

    STX, ETX = 0x02, 0x03
    BODY_LEN = 12

    def __init__(self, inter_char_timeout_s=0.3):
        super().__init__(inter_char_timeout_s)

    def _restart(self):
        self._frame = None

    def _partial(self):
        return self._frame is not None

    def _take(self, byte):
        if byte == self.STX:
            if self._frame is not None:
                self._garbled.append(GARBLED)
            self._frame = bytearray()
        elif self._frame is None:
            pass  # noise
        elif byte == self.ETX:
            body, self._frame = bytes(self._frame), None
            return self._parse(body)
        elif len(self._frame) >= self.BODY_LEN:
            self._garbled.append(TOO_LONG)
            self._frame = None
        else:
            self._frame.append(byte)
        return None

    def _parse(self, body):
        if len(body) != self.BODY_LEN or not _HEX.issuperset(body):
            self._garbled.append(GARBLED)
            return None
        raw = bytes.fromhex(body.decode("ascii"))
        if raw[0] ^ raw[1] ^ raw[2] ^ raw[3] ^ raw[4] != raw[5]:
            self._garbled.append(CHECKSUM)
            return None
        return self._card(body[:10].decode("ascii").upper())


_FRAMING_CLASSES = {"barcode": BarcodeFraming, "magstripe": MagstripeFraming,
                    "rdm6300": Rdm6300Framing}


def make_framing(kind: str, **options) -> Framing:
    """A new framing of ``kind`` (one of :data:`FRAMINGS`) built with
    ``options`` (its constructor's keywords).  An unknown kind or option
    raises :class:`ConfigError` (a ValueError) naming what is allowed."""
    cls = _FRAMING_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError([f"reader.framing: unknown kind {kind!r}; "
                           f"known: {', '.join(FRAMINGS)}"])
    allowed = list(inspect.signature(cls).parameters)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError([f"reader.{name}: not an option of the {kind} framing "
                           f"(options: {', '.join(allowed)})" for name in unknown])
    return cls(**options)


def _where(exc):
    """``file:line`` where ``exc`` was raised: code location, never data."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"


class SerialCardReader:
    """Reads cards from the serial port ``url`` (device path or pyserial URL)
    with ``framing`` on a daemon thread, from :meth:`start` to :meth:`stop`.

    * ``on_card(card)``: a card read.  The same card again within
      ``repeat_window_s`` of its previous read is dropped, and that read
      slides the window (an RDM6300 repeats while a card is held).  A
      different card is delivered at once and becomes the one remembered.
    * ``on_online(bool)``: on each change; the first open attempt reports
      either way.  Losing the port (``SerialException``/``OSError``, e.g.
      unplugged) closes it and reopens it after ``reopen_min_s``, doubling up
      to ``reopen_max_s`` while opens fail; the backoff starts over once a
      port has stayed open ``reopen_max_s``.  The thread never dies of it.
    * ``on_garbled(reason)``: a frame was dropped, reason from :data:`REASONS`.

    Callbacks run on the reader thread; an exception from one is logged (class
    and code location only) and swallowed.  ``monotonic`` and ``open_port``
    (called as ``open_port(url, baudrate=..., timeout=...)``) are for tests.
    """

    def __init__(self, url: str, baudrate: int, framing: Framing,
                 on_card: Callable[[CardNumber], None],
                 on_online: Callable[[bool], None] = lambda online: None,
                 on_garbled: Callable[[str], None] = lambda reason: None,
                 repeat_window_s: float = 2.0, reopen_min_s: float = 0.5,
                 reopen_max_s: float = 10.0, monotonic=time.monotonic,
                 open_port=serial.serial_for_url):
        if not 0 < reopen_min_s <= reopen_max_s:
            raise ConfigError(["reopen_min_s, reopen_max_s: need 0 < min <= max"])
        self.url, self.baudrate, self.framing = url, baudrate, framing
        self._on_card, self._on_online, self._on_garbled = on_card, on_online, on_garbled
        self.repeat_window_s = repeat_window_s
        self.reopen_min_s, self.reopen_max_s = reopen_min_s, reopen_max_s
        self._monotonic, self._open_port = monotonic, open_port
        self._stopping = threading.Event()
        self._thread = None
        self._port = None
        self._online = None  # None: not yet tried to open
        self._last_card = None
        self._last_card_at = 0.0

    @property
    def alive(self) -> bool:
        """True while the reader thread runs (started and not stopped or dead)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def online(self) -> bool:
        """Whether the port is open and reading."""
        return bool(self._online)

    def start(self):
        """Start the reader thread; :class:`ReaderError` if it is running."""
        if self._thread is not None and self._thread.is_alive():
            raise ReaderError("card reader already started")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="bibbox-reader",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0):
        """Stop reading and close the port; returns within about
        :data:`READ_TIMEOUT_S`.  Idempotent; safe from a callback."""
        self._stopping.set()
        port = self._port
        if port is not None:
            try:
                port.cancel_read()      # wake a read blocked on an idle port
            except Exception as exc:
                log.debug("cancel_read failed (%s)", type(exc).__name__)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self):
        delay = self.reopen_min_s
        while not self._stopping.is_set():
            port, opened_at = None, None
            try:
                port = self._open_port(self.url, baudrate=self.baudrate,
                                       timeout=READ_TIMEOUT_S)
                opened_at = self._monotonic()
                self._port = port
                if self._stopping.is_set():
                    break
                self._set_online(True)
                self._pump(port)
            except Exception as exc:  # never die: any failure means offline
                self._set_online(False, exc)
            finally:
                self._port = None
                if port is not None:
                    self._close(port)
            if opened_at is not None and self._monotonic() - opened_at >= self.reopen_max_s:
                delay = self.reopen_min_s
            if not self._stopping.wait(delay):
                log.debug("reopening card reader port")
            delay = min(delay * 2, self.reopen_max_s)
        self._online = None

    def _pump(self, port):
        """Read until stopped; port errors propagate."""
        framing = self.framing
        framing.reset()
        while not self._stopping.is_set():
            # Idle: block until a byte comes (stop() wakes us with
            # cancel_read), so an idle reader never wakes up.  Mid-frame: a
            # short timeout, so a stalled partial frame is dropped in time.
            timeout = READ_TIMEOUT_S if framing.expecting_more else None
            if port.timeout != timeout:
                port.timeout = timeout
            data = port.read(port.in_waiting or 1)
            now = self._monotonic()
            cards = framing.feed(data, now)
            for reason in framing.take_garbled():
                log.debug("card frame dropped: %s", reason)
                self._call(self._on_garbled, reason)
            for card in cards:
                self._deliver(card, now)

    def _deliver(self, card, now):
        if card == self._last_card and now - self._last_card_at < self.repeat_window_s:
            self._last_card_at = now
            log.debug("repeated card suppressed")
            return
        self._last_card, self._last_card_at = card, now
        log.debug("card read")
        self._call(self._on_card, card)

    def _set_online(self, online, exc=None):
        if online == self._online:
            if exc is not None:
                log.debug("card reader port still unavailable (%s)", type(exc).__name__)
            return
        self._online = online
        if online:
            log.info("card reader on %s online", self.url)
        else:
            log.warning("card reader on %s offline (%s); retrying", self.url,
                        type(exc).__name__)
        self._call(self._on_online, online)

    def _call(self, callback, arg):
        try:
            callback(arg)
        except Exception as exc:
            log.error("card reader callback %s raised %s at %s",
                      getattr(callback, "__name__", "?"), type(exc).__name__, _where(exc))

    @staticmethod
    def _close(port):
        try:
            port.close()
        except Exception as exc:
            log.debug("closing card reader port failed (%s)", type(exc).__name__)
