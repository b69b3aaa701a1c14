"""One kernel timer for every VRRP deadline of the process.

keepalived runs all its timers from one scheduler thread list and one
``timerfd`` (lib/scheduler.c ``thread_fetch``/``set_timer``): N instances
cost one kernel timer.  This is the same for trio:

- every instance owns a :class:`Timer` holding at most one deadline (the
  earliest of its machine's timers);
- the queue keeps them in a heap and arms one ``timerfd`` (CLOCK_MONOTONIC,
  absolute, nanosecond resolution) at the earliest; trio waits on it with
  ``wait_readable``, so the wait costs no CPU and ends within tens of
  microseconds of the deadline, where trio's own epoll timeout is rounded
  up to whole milliseconds;
- a deadline moved later (a backup hearing its master) never leaves a stale
  kernel timer behind: the heap's stale top is discarded and the kernel timer
  re-armed, so there is no wake-up that does no work.  A backup moves its
  earliest deadline with nearly every advert, so that re-arm is deferred to
  :meth:`TimerQueue.flush`, which the socket reader calls once per drained
  batch (an earlier deadline is armed at once: deferring can only ever make
  the kernel timer early, never late).  Even there it re-arms only once the
  kernel's stale deadline is nearer than half the way to the real one: a
  backup's deadline is three advert intervals ahead, so the next advert
  always comes first, and 255 instances cost about one ``timerfd_settime``
  a second instead of one per drained batch (9 µs each).  Only when the
  moves stop (the master is gone) may the stale deadline wake the queue
  once, early, on the way to the real one.
- every deadline due at a wake-up fires in that one pass, dated with the
  pass's time (:attr:`TimerQueue.now`): masters whose adverts were due
  together stay together, one burst and one wake-up per interval here and
  on their backups.
- what an owner must do once its deadline has fired but only after every
  deadline of the pass has (:meth:`TimerQueue.at_pass_end`) runs at the end
  of the pass, in order: the drivers send their adverts there, so that the
  adverts of a pass leave back to back, each instance's decided first, and
  not one per instance's worth of Python apart.

Under a clock that is not trio's system clock (``MockClock`` in tests), the
queue sleeps with trio instead; the behaviour is the same, without the
sub-millisecond precision.
"""

from __future__ import annotations

import contextlib
import ctypes
import heapq
import math
import os
import time
from collections.abc import Callable

import trio

CLOCK_MONOTONIC = 1
TFD_NONBLOCK = 0o4000
TFD_CLOEXEC = 0o2000000
TFD_TIMER_ABSTIME = 1
#: a deadline this close to now counts as due: the read of the clock after the
#: kernel wake-up may trail the kernel's own by a few microseconds
DUE_SLACK = 50e-6


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class _TimerFd:
    """``timerfd_create``/``timerfd_settime`` through libc (os gains them in 3.13)."""

    def __init__(self) -> None:
        # The process's own symbols include libc's: no find_library (it runs ldconfig).
        libc = ctypes.CDLL(None, use_errno=True)
        self._settime = libc.timerfd_settime
        fd = int(libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.fd = fd
        self._spec = _Itimerspec()

    def arm(self, monotonic: float | None) -> None:
        """Fire once at ``monotonic`` (CLOCK_MONOTONIC seconds); None disarms."""
        value = self._spec.it_value
        if monotonic is None:
            value.tv_sec, value.tv_nsec = 0, 0
        else:
            ns = max(int(monotonic * 1e9), 1)
            value.tv_sec, value.tv_nsec = divmod(ns, 1_000_000_000)
        if self._settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)


class Timer:
    """One owner's single deadline in a :class:`TimerQueue`."""

    __slots__ = ("_gen", "at", "fire", "queue")

    def __init__(self, queue: TimerQueue, fire: Callable[[], None]) -> None:
        self.queue = queue
        self.fire = fire
        self.at: float | None = None
        self._gen = 0

    def set(self, at: float | None) -> None:
        """Fire at ``at`` (trio time) instead of any earlier setting; None cancels."""
        if at == self.at:
            return
        self.queue._move(self, at)

    def cancel(self) -> None:
        self.set(None)


class TimerQueue:
    """All deadlines of the process in one heap behind one timerfd."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int, Timer]] = []
        self._seq = 0
        self._armed: float | None = None
        self._fd: _TimerFd | None = None
        self._offset = 0.0  # trio time minus CLOCK_MONOTONIC
        self._kick = trio.Event()
        self._dirty = False  # the armed deadline may be earlier than the heap's head
        #: wake-ups of the queue's task, and how many of them fired nothing
        self.wakeups = 0
        self.idle_wakeups = 0
        #: runs at each wake-up before anything fires: the socket pool's
        #: drain, so adverts already queued count before a deadline does
        self.before_fire: Callable[[], None] = lambda: None
        #: the time of the current firing pass: every deadline fired in one
        #: pass is handled at this one time (see :meth:`fire_due`)
        self.now = 0.0
        #: work deferred to the end of the current pass (None: no pass running)
        self._pass_end: list[Callable[[], None]] | None = None

    def timer(self, fire: Callable[[], None]) -> Timer:
        return Timer(self, fire)

    def at_pass_end(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once every deadline of the current pass has fired (at once outside one).

        keepalived's expiry pass sends each due instance's advert in C, a few
        microseconds apart (vrrp_scheduler.c vrrp_dispatcher_read_timeout).
        Here deciding and building an advert costs a hundred microseconds of
        Python per instance: 255 instances sending as they decide would
        spread their adverts over 25 ms, more on a busy host.  Deciding all,
        then sending all, keeps the sends a few microseconds apart.
        """
        if self._pass_end is None:
            fn()
        else:
            self._pass_end.append(fn)

    # ------------------------------------------------------------ heap
    def _move(self, timer: Timer, at: float | None) -> None:
        was_head = timer.at is not None and timer.at == self._armed
        timer._gen += 1
        timer.at = at
        if at is not None:
            self._seq += 1
            heapq.heappush(self._heap, (at, self._seq, timer._gen, timer))
        if at is None:
            if was_head or self._dirty:
                self._rearm()  # a cancel is rare: disarm now
        elif self._armed is None or at < self._armed:
            self._rearm()
        elif was_head:
            self._dirty = True

    def flush(self) -> None:
        """Re-arm the kernel timer if the earliest deadline moved later since the last arm,
        once the armed one is nearer than half the way to it (see the module's docstring)."""
        if not self._dirty:
            return
        armed, top = self._armed, self._top()
        if armed is None or top is None:
            self._rearm()
            return
        now = trio.current_time()
        if armed - now < (top - now) / 2:
            self._rearm()

    def _top(self) -> float | None:
        """The earliest live deadline; stale heap entries on top are dropped."""
        heap = self._heap
        while heap:
            at, _s, gen, timer = heap[0]
            if gen == timer._gen:
                return at
            heapq.heappop(heap)
        return None

    def _rearm(self) -> None:
        self._dirty = False
        at = self._top()
        if at == self._armed:
            return
        self._armed = at
        if self._fd is not None:
            self._fd.arm(None if at is None else at - self._offset)
        else:
            self._kick.set()

    def fire_due(self, now: float) -> int:
        """Fire every deadline at or before ``now``; how many fired.

        The owners read the pass's time from :attr:`now`, not the clock: N
        masters whose adverts were due together re-arm at one deadline and
        fire together again next interval, one wake-up and one burst on the
        wire, as keepalived's do (its one init pass dates all instances
        within microseconds, vrrp_scheduler.c vrrp_init_instance_sands, and
        its expiry pass then serves every due instance).  Reading the clock
        per owner would date each one a send later than the one before: a
        burst of 255 adverts in Python takes milliseconds, and the next
        interval's deadlines would spread by as much, each with a wake-up of
        its own on this host and on every backup.
        """
        self.now = now
        heap = self._heap
        due: list[tuple[int, Timer]] = []
        while heap:
            at, _s, gen, timer = heap[0]
            if gen != timer._gen:
                heapq.heappop(heap)
                continue
            if at > now + DUE_SLACK:
                break
            heapq.heappop(heap)
            due.append((gen, timer))
        # What was due when the pass began fires, in deadline order; a deadline
        # an owner sets during the pass waits for the next one, even if it is
        # due already (never a loop within one pass).
        fired = 0
        ends: list[Callable[[], None]] = []
        self._pass_end = ends
        try:
            for gen, timer in due:
                if gen != timer._gen:
                    continue  # moved or cancelled by an earlier owner of this pass
                timer._gen += 1
                timer.at = None
                fired += 1
                timer.fire()
        finally:
            self._pass_end = None
            for fn in ends:
                fn()
        self._armed = None
        self._rearm()
        return fired

    # ------------------------------------------------------------ task
    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Wait on the kernel timer and fire what is due, until cancelled."""
        clock = trio.lowlevel.current_clock()
        fd: _TimerFd | None = None
        if type(clock).__name__ == "SystemClock":
            try:
                fd = _TimerFd()
            except (OSError, AttributeError):
                fd = None
        if fd is not None:
            self._offset = trio.current_time() - time.monotonic()
            self._fd = fd
            self._armed = None
            self._rearm()
        task_status.started()
        try:
            while True:
                if fd is not None:
                    await trio.lowlevel.wait_readable(fd.fd)
                    fd.clear()
                else:
                    self._kick = trio.Event()
                    with trio.move_on_at(self._armed if self._armed is not None else math.inf):
                        await self._kick.wait()
                        continue  # the head moved: re-read it
                self.wakeups += 1
                self.before_fire()
                if not self.fire_due(trio.current_time()):
                    self.idle_wakeups += 1
        finally:
            self._fd = None
            if fd is not None:
                fd.close()
