// Package broadcastday generates varied broadcast days with injected
// faults and their ground truth, deterministically from a date and a seed,
// for the detector's proof over many days (consumers/detector,
// TestProofManyDays).
//
// # The day
//
// A day is shaped as direct-response schedules are:
//
//   - Three to five offers (of six), each configured with its response
//     window (30, 45 or 60 minutes; some with a radio window of their own)
//     and target ratio; each offer's phone orders are taken on its client's
//     order console (one console, or two, per day).
//   - 16 to 30 airings from 06:20 to 04:00 on local and national TV and on
//     radio, on a break (a whole minute plus 0, 15, 30 or 45 seconds).
//     Most have a toll-free number of their own (each ringing at one call
//     centre of three, three in ten at two, shares 35-65%). Two offers
//     have a shared pool number: two airings of one of them start at the
//     same second on two stations (equal spend one time in three) and a
//     third starts inside their windows on the same number; other airings
//     of those offers use the pool one time in four. Web orders come by
//     promo code or vanity URL. Two or three airings on numbers of their
//     own did not run (the post-log, after the day, cancels them).
//   - Each airing that ran brings 40 to 150 calls, affine in its spend,
//     times a log-normal factor (sigma 0.25), on an exponentially decaying
//     curve (mean a quarter of its window; about 2% of the calls come after
//     the window's end, the number's but no longer the airing's); a sixth as
//     many web orders (mean a third of the window). Calls are answered or abandoned, sometimes re-sent
//     by the ACD; four in ten answered calls order on the console; one
//     order in eight is cancelled hours to days later. 120 to 180 organic
//     calls ring anywhere in the day on the numbers that ring outside
//     airings: the pool numbers and each offer's house number (never on
//     air); a dedicated number rings only in and after its airing's window. Every source (call
//     centres, consoles, the web shop) heartbeats every minute.
//
// # The faults
//
// Placed at random on airings that ran, never two on one source (or on a
// silent number's call centres) within ten minutes of each other, and
// redrawn until at least a third of the airings that ran are untouched:
//
//   - One to three call-centre outages of 2 to 30 minutes: at the start of
//     an airing's window (beginning up to five minutes before air time), in
//     its middle, at its end (running past it), or across several airings
//     (from just after one airing's start to minutes after the start of a
//     later one on a number ringing at the same centre). Its events are not
//     recorded; the calls it would have taken are lost with their orders.
//   - One silent number: its calls reach no call centre while every
//     heartbeat goes on. Mid-window (one day in two, when some airing
//     allows it) only where the detector's rate test can see it: on a
//     number of its own, starting at least 5 minutes after air time while
//     the airing's expected response is at least 5 calls a minute, ending
//     while it is still at least 3 a minute, 3 to 15 minutes long and
//     holding at least 18 expected calls. Otherwise silent from two minutes
//     before an airing's start to three minutes after its window's end (a
//     number on air that rang nowhere): the detector cannot time it, the
//     airing took no call.
//   - A sequence gap on a call centre (2 to 10 minutes of its events,
//     inside an airing's window) and one on an order console (3 to 10
//     minutes, 1 to 12 minutes after an airing of one of its offers aired):
//     lost between the source and the store, their numbers used.
//   - A spooled delay of 3 to 8 minutes of a call centre inside an
//     airing's window: late, not lost.
//   - One day in two, a console (not the one with the gap) whose clock is 2
//     to 6 minutes off.
//
// # The truth
//
// An airing is faulted when an outage or a gap overlapped its response
// window on a source that takes its number's calls (an outage or call gap
// at one of the number's call centres) or its offer's orders (an order gap
// on its offer's console), or its number was silent in it. Its uncovered
// minutes are the union of those spans within its window (a gap's span runs
// from the event before the lost range to the event after it); dropped
// calls and orders are demoday.ComputeTruth of the day as it happened less
// that of the delivered day. A gap of N sequence numbers over s seconds on
// a source heartbeating every h seconds held at most N − max(0, ⌈s/h⌉ − 1)
// non-heartbeat events: no estimate of the calls (call-centre gap) or
// orders (console gap) missing from an airing it touched may exceed that.
package broadcastday
