"""The core of a DRAM batch (``dram_batch.py``): one task's stages, the kernel DMA and the DRAM's
fluid model, replayed step by step with the engine's own arithmetic, without events.

Lists are indexed by step from ``d0`` (the first write not yet asked for) and by chunk from
``j0`` (the chunk the kernel DMA waits for). At most one write and one weight fetch move at a
time (the destination stage and the kernel DMA each wait for their transfer), so the DRAM has
two slots: the write and the fetch. Every operation on a time or a byte count is the one
``dram.SharedBandwidth`` and the engine's processes perform, in the same order, so the results
are theirs to the last bit.

The loop keeps its state in plain local variables and spells the DRAM's charge and re-plan out
where they happen once per event (a closure over that state would make every access to it
slower); the rarer callers share :func:`_replan` and :func:`_kernel_ask`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

_INF = math.inf
_EPS_CYCLES = 1e-9  # (as dram.py)
_ulp = math.ulp
# A replay stops once the destination stage has asked for this many writes since the DRAM was
# last idle: a batch can only end at such an instant, and the stretch is tried again past it.
GIVE_UP_STEPS = 32


@dataclass
class ReplayResult:
    """What a replay found: per step and chunk times, and where each stage stopped."""

    src_start: list[float]
    src_end: list[float]
    stalls: list[tuple[float, float, float, float]]  # compute (t0, t1, t2, t3) per step
    cmp_end: list[float]
    dst_start: list[float]
    dst_end: list[float]
    k_asked: list[float] = field(default_factory=list)
    k_start: list[float] = field(default_factory=list)
    k_landed: list[float] = field(default_factory=list)
    # (instant, DRAM busy cycles, contention cycles, last update) where the DRAM fell idle with
    # nothing asked for
    idle: list[tuple[float, float, float, float]] = field(default_factory=list)
    stop: float = _INF
    s_next: int = 0
    c_next: int = 0
    d_next: int = 0
    j_next: int = 0
    w0_landed: float = -1.0  # when the write taken over landed (the end of step d0 - 1)


def replay(a: list[float], b: list[float], wbytes: list[float], dpool: list[float], need: list[int],
           cbytes: list[float], cdep: list[int], j0_is_first: bool, k_off: int, t_open: float,
           cmp_end_km2: float, cmp_end_km1: float, dst_end_d0m1: float, latency: float, last_update: float, busy: float,
           cont: float, rates: tuple[float, float, float, float], alone: tuple[float, float],
           w0: tuple | None = None, k0: tuple | None = None, wake0: tuple[float, int] = (-1.0, 0),
           seq0: int = 0) -> ReplayResult:
    """Replay from step ``k_off`` (the source stage there at ``t_open``).

    ``cmp_end_km1`` is the end of the compute of the step before, or -1 when the compute stage
    has not started it (it waits for its weights or its output buffer).

    ``rates``: per-flow rates of (a write alone, a fetch alone, a write beside a fetch, a fetch
    beside a write); ``alone``: the write and weight streams' rates alone (for contention).
    ``need``: the chunk (from j0) a step's compute needs, -1 for one landed before; ``cdep``: the
    step whose compute frees a chunk's buffer, -1 for one free before.

    ``w0`` and ``k0`` are a write (of step d0 - 1) and a fetch (of chunk j0) already asked for when
    the batch opens, taken over from the DRAM model: (moving, remaining bytes, rate, start,
    charged bytes, start when still in its latency, its order); ``wake0`` the wake-up armed then
    and its order, ``seq0`` the last order given.
    """
    n = len(a)
    m = len(cbytes)
    r_w1, r_k1, r_w2, r_k2 = rates
    al_w, al_k = alone
    src_start = [-1.0] * n
    src_end = [-1.0] * n
    stalls: list = [None] * n
    cmp_end = [-1.0] * n
    dst_start = [-1.0] * n
    dst_end = [-1.0] * n
    k_asked = [0.0] * m
    k_start = [0.0] * m
    k_landed = [0.0] * m
    idle: list[tuple[float, float, float, float]] = []
    # DRAM: the write slot and the fetch slot
    w_on = k_on = False  # in flight
    w_rem = k_rem = 0.0
    w_rate = k_rate = 0.0
    w_start = k_start_t = 0.0
    w_nb = k_nb = 0.0
    w_idx = k_idx = 0
    w_asked = k_asked_t = 0.0
    w_pend = k_pend = False  # in their DRAM latency
    w_pt = k_pt = 0.0
    w_ps = k_ps = 0
    wake_at, wake_seq = wake0
    seq = seq0
    stop = _INF
    # stages
    src_start[k_off] = t_open
    ak = a[k_off]
    src_end[k_off] = t_open + ak if ak > 0 else t_open
    s_next = k_off + 1
    if k_off >= 2:
        # finished by now: its end, or now standing in for it (see dram_batch.py)
        cmp_end[k_off - 2] = cmp_end_km2
    if cmp_end_km1 >= 0.0:  # the compute stage has started step k-1
        cmp_end[k_off - 1] = cmp_end_km1
        c_next = k_off
        c_t0 = cmp_end_km1
    else:  # it waits to start step k-1 (its source read done): replayed, booked by the stage
        src_end[k_off - 1] = t_open
        c_next = k_off - 1
        c_t0 = t_open
    d_next = 0
    d_busy = False
    j_next = 0
    k_busy = False
    k_prev_end = -1.0
    now = t_open
    if w0 is not None:  # the write of step d0 - 1, taken over: its end is known when it lands
        w_on, w_rem, w_rate, w_start, w_nb, w_pt, w_ps = w0
        w_pend = not w_on
        w_idx = -1
        w_asked = -_INF
        d_busy = True
        dst_end_d0m1 = -1.0
    if k0 is not None:  # the fetch of chunk j0, taken over
        k_on, k_rem, k_rate, k_start_t, k_nb, k_pt, k_ps = k0
        k_pend = not k_on
        k_idx = 0
        k_asked_t = -_INF
        k_busy = True
        j_next = 1

    idle_d = 0  # the destination step reached when the DRAM was last idle
    aborted = False
    if (w_on or k_on) and wake_at < 0.0:
        # Taken over while the DRAM model re-plans (a landing's waiter opened the batch): its
        # flows are re-rated and a wake-up armed as that re-plan would, from its last update.
        w_rate, k_rate, wake_at, wake_seq, seq = _replan(
            last_update, rates, w_on, w_rem, w_pend, w_pt, k_on, k_rem, k_pend, k_pt, wake_at, wake_seq, seq)
    settle = True  # (the stages and the idle test are looked at again: not after a delayed start)
    while True:
        if settle:
            # ---- time every stage as far as what is known allows ----
            progress = True
            while progress and not aborted:
                progress = False
                # source: starts at max(its previous end, the compute end two back)
                while s_next < n:
                    s = s_next
                    c2 = cmp_end[s - 2]
                    if c2 < 0.0:
                        break
                    prev = src_end[s - 1]
                    start = prev if prev >= c2 else c2
                    if start > stop:
                        break
                    src_start[s] = start
                    aa = a[s]
                    src_end[s] = start + aa if aa > 0 else start
                    s_next = s + 1
                    progress = True
                # compute: after its source, its weights and the write two back
                while c_next < s_next:
                    c = c_next
                    t0 = c_t0
                    src = src_end[c]
                    t1 = src if src > t0 else t0
                    nd = need[c]
                    if nd >= 0:
                        if nd >= j_next or (k_busy and nd == j_next - 1):
                            break
                        w = k_landed[nd]
                        t2 = w if w > t1 else t1
                    else:
                        t2 = t1
                    if c == 1:  # (the write of step d0 - 1)
                        d2 = dst_end_d0m1
                        if d2 < 0.0:
                            break
                    elif c == 0:  # (written before)
                        d2 = -_INF
                    else:
                        d2 = dst_end[c - 2]
                        if d2 < 0.0:
                            break
                    t3 = d2 if d2 > t2 else t2
                    if t3 > stop:
                        break
                    stalls[c] = (t0, t1, t2, t3)
                    end = t3 + b[c]
                    cmp_end[c] = end
                    c_t0 = end
                    c_next = c + 1
                    progress = True
                # destination: after its compute and the write before
                while not d_busy and d_next < c_next:
                    dd = d_next
                    ce = cmp_end[dd]
                    prev = dst_end_d0m1 if dd == 0 else dst_end[dd - 1]
                    start = ce if ce >= prev else prev
                    if start > stop:
                        break
                    dst_start[dd] = start
                    d_next = dd + 1
                    progress = True
                    wb = wbytes[dd]
                    if wb > 0:
                        d_busy = True
                        w_idx = dd
                        w_nb = wb
                        w_asked = start
                        seq += 1
                        w_pend = True
                        w_pt = start + latency
                        w_ps = seq
                    else:
                        p = dpool[dd]
                        dst_end[dd] = start + p if p > 0 else start
                if not k_busy and j_next < m:  # the kernel DMA asks for its next chunk, if it may
                    ask = _kernel_ask(j_next, cdep, cmp_end, k_prev_end, t_open, stop)
                    if ask is _ABORT:
                        aborted = True
                    elif ask is not None:
                        asked, waited = ask
                        j = j_next
                        k_asked[j] = asked
                        j_next = j + 1
                        k_busy = True
                        k_idx = j
                        k_nb = cbytes[j]
                        k_asked_t = asked
                        progress = True
                        if waited or (j == 0 and j0_is_first):
                            k_pt = k_start[j] = asked + latency
                            seq += 1
                            k_pend = True
                            k_ps = seq
                        else:  # back to back: starts now, at the landing of the one before
                            k_start[j] = asked
                            dt = asked - last_update  # (charge, as SharedBandwidth._charge)
                            if dt > 0 and (w_on or k_on):
                                busy += dt
                                if w_on:
                                    w_rem -= w_rate * dt
                            last_update = asked
                            k_on = True
                            k_rem = k_nb
                            k_start_t = asked
                            w_rate, k_rate, wake_at, wake_seq, seq = _replan(
                                asked, rates, w_on, w_rem, w_pend, w_pt, k_on, k_rem, k_pend, k_pt, wake_at,
                                wake_seq, seq)
            if aborted:
                break
            if d_next - idle_d > GIVE_UP_STEPS:
                break  # (the DRAM has not been idle for a while: likely DRAM-bound from here on)
            # the source stage past the stretch acts at its start: nothing is replayed from then on
            if s_next >= n and stop == _INF:
                c2 = cmp_end[n - 2]
                if c2 >= 0.0:
                    prev = src_end[n - 1]
                    stop = prev if prev >= c2 else c2
            # idle: nothing in flight, nothing asked for before now. One transfer asked for at this
            # very instant (a write after the one before landed, or a fetch back to back) may be
            # there: the batch leaves it to its stage, which asks for it then (dram_batch.py).
            w_now = (w_pend and w_asked == now) or (w_on and w_asked == now and w_start == now)
            k_now = (k_pend and k_asked_t == now) or (k_on and k_asked_t == now and k_start_t == now)
            if now > t_open and not (w_now and k_now) and (not w_on or w_now) and (not k_on or k_now) \
                    and not (w_pend and w_asked < now) and not (k_pend and k_asked_t < now):
                idle.append((now, busy, cont, last_update))
                idle_d = d_next
        # ---- the next DRAM event: the earliest start or wake-up, the first armed on a tie ----
        best_t = _INF
        best_seq = 0
        best = -1
        if w_pend:
            best_t, best_seq, best = w_pt, w_ps, 0
        if k_pend and (k_pt < best_t or (k_pt == best_t and k_ps < best_seq)):
            best_t, best_seq, best = k_pt, k_ps, 1
        if wake_at >= 0.0 and (wake_at < best_t or (wake_at == best_t and wake_seq < best_seq)):
            best_t, best = wake_at, 2
        if best < 0 or best_t >= stop:
            break
        now = best_t
        # charge the flows moving since the last update (as SharedBandwidth._charge)
        dt = now - last_update
        if dt > 0 and (w_on or k_on):
            busy += dt
            if w_on:
                w_rem -= w_rate * dt
            if k_on:
                k_rem -= k_rate * dt
        last_update = now
        if best == 0:  # a delayed start: joins the flows
            w_pend = False
            w_on = True
            w_rem = w_nb
            w_start = now
        elif best == 1:
            k_pend = False
            k_on = True
            k_rem = k_nb
            k_start_t = now
        else:  # a wake-up: retire what has landed, resume its owner
            tol = 4.0 * _ulp(now)
            if tol < _EPS_CYCLES:
                tol = _EPS_CYCLES
            fin_w = w_on and w_rem <= w_rate * tol + 1e-6
            fin_k = k_on and k_rem <= k_rate * tol + 1e-6
            if fin_w and fin_k:
                break  # their contention adds up in list order: left to the DRAM model
            wake_at = -1.0
            if fin_w:
                w_on = False
                extra = (now - w_start) - w_nb / al_w
                if extra > _EPS_CYCLES:
                    cont += extra
                if w_idx < 0:
                    dst_end_d0m1 = now
                else:
                    dst_end[w_idx] = now
                d_busy = False
            if fin_k:
                k_on = False
                extra = (now - k_start_t) - k_nb / al_k
                if extra > _EPS_CYCLES:
                    cont += extra
                k_landed[k_idx] = now
                k_prev_end = now
                k_busy = False
                if j_next < m:  # resumed inside the wake-up, the kernel DMA asks for its next chunk
                    ask = _kernel_ask(j_next, cdep, cmp_end, now, t_open, stop)
                    if ask is _ABORT:
                        break
                    if ask is not None:
                        asked, waited = ask
                        j = j_next
                        k_asked[j] = asked
                        j_next = j + 1
                        k_busy = True
                        k_idx = j
                        k_nb = cbytes[j]
                        k_asked_t = asked
                        if waited:
                            k_pt = k_start[j] = asked + latency
                            seq += 1
                            k_pend = True
                            k_ps = seq
                        else:  # back to back: starts now (charged already; re-planned below)
                            k_start[j] = asked
                            k_on = True
                            k_rem = k_nb
                            k_start_t = asked
        # A delayed start asked for before now changes no stage and leaves a transfer in flight
        # (no idle instant): the next event follows at once. (With no DRAM latency, a transfer
        # starts the instant it is asked for, which the idle test must see.)
        settle = best == 2 or latency <= 0.0
        # re-plan (as SharedBandwidth._replan): re-rate, and arm a wake-up unless a start is due
        # no later
        if w_on or k_on:
            if w_on:
                if k_on:
                    w_rate = r_w2
                    k_rate = r_k2
                    soonest = w_rem / w_rate
                    u = k_rem / k_rate
                    if u < soonest:
                        soonest = u
                else:
                    w_rate = r_w1
                    soonest = w_rem / w_rate
            else:
                k_rate = r_k1
                soonest = k_rem / k_rate
            if soonest < 0.0:
                soonest = 0.0
            wt = now + soonest
            if (w_pend and w_pt <= wt) or (k_pend and k_pt <= wt):
                wake_at = -1.0
            elif wt != wake_at:
                seq += 1
                wake_at = wt
                wake_seq = seq
        else:
            wake_at = -1.0
    return ReplayResult(src_start, src_end, stalls, cmp_end, dst_start, dst_end, k_asked, k_start, k_landed,
                        idle, stop, s_next, c_next, d_next, j_next, dst_end_d0m1)


_ABORT = (0.0, False)  # (a marker: the event order at this instant decides the DRAM latency)


def _kernel_ask(j: int, cdep: list[int], cmp_end: list[float], prev_end: float, t_open: float,
                stop: float) -> tuple[float, bool] | None:
    """When the kernel DMA asks for chunk ``j`` (once its buffer is free) and whether it waited
    for it (then the fetch pays the DRAM latency); None when it cannot ask yet, ``_ABORT`` when
    the event order at that instant would decide."""
    dep = cdep[j]
    dep_end = -_INF
    if dep >= 0:
        dep_end = cmp_end[dep]
        if dep_end < 0.0:
            return None
    if j == 0:  # waiting on its buffer since before the batch opened
        asked = dep_end if dep_end > t_open else t_open
        waited = True
    else:
        if dep_end == prev_end:
            return _ABORT
        waited = dep_end > prev_end
        asked = dep_end if waited else prev_end
    if asked > stop:
        return None
    return asked, waited


def _replan(now: float, rates: tuple[float, float, float, float], w_on: bool, w_rem: float, w_pend: bool,
            w_pt: float, k_on: bool, k_rem: float, k_pend: bool, k_pt: float, wake_at: float, wake_seq: int,
            seq: int) -> tuple[float, float, float, int, int]:
    """The replay loop's re-plan, for its rarer callers: (write rate, fetch rate, wake-up, its
    order, last order given); a rate of a slot not moving is returned as 0."""
    r_w1, r_k1, r_w2, r_k2 = rates
    w_rate = k_rate = 0.0
    if w_on and k_on:
        w_rate, k_rate = r_w2, r_k2
        t = w_rem / w_rate
        u = k_rem / k_rate
        soonest = t if t < u else u
    elif w_on:
        w_rate = r_w1
        soonest = w_rem / w_rate
    elif k_on:
        k_rate = r_k1
        soonest = k_rem / k_rate
    else:
        return w_rate, k_rate, -1.0, wake_seq, seq
    if soonest < 0.0:
        soonest = 0.0
    w = now + soonest
    if (w_pend and w_pt <= w) or (k_pend and k_pt <= w):
        return w_rate, k_rate, -1.0, wake_seq, seq
    if w == wake_at:
        return w_rate, k_rate, wake_at, wake_seq, seq
    return w_rate, k_rate, w, seq + 1, seq + 1
