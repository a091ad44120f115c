"""One solve path for Pyomo models: HiGHS through Pyomo's appsi interface (persistent,
takes a MIP start), or any Pyomo `SolverFactory` name, returning a `SolverOutcome`.

Two status axes, as in Pyomo's contrib.solver: why the solver stopped (`termination`) and
what we hold (`solution`: none | feasible | optimal). Infeasible and time-limited solves are
returned, never raised. HiGHS's reported run time is cumulative on a persistent instance, so
the wall time is measured here.

A MIP with a time limit is translated and solved in a forked child process
(`hard_limit`): HiGHS only notices a cancel request inside its interrupt callbacks, and a
large MIP was seen to stay minutes in a phase that calls none of them, far past its own
limit. The child streams each improving solution and the dual bound to the parent, which
kills it `kill_delay(limit)` seconds after the call and keeps the last incumbent and bound
it received.
"""

from __future__ import annotations

import math
import os
import signal
import time
import warnings
from dataclasses import dataclass, field

import pyomo.environ as pyo


class SolverUnavailable(RuntimeError):
    """The requested solver cannot be run here; install it or pick --solver appsi_highs."""


@dataclass
class SolverOutcome:
    termination: str  # optimal | infeasible | time_limit | unbounded | error
    solution: str  # none | feasible | optimal
    objective: float  # incumbent objective, nan when none
    bound: float  # best bound reported by the solver, nan when unknown
    seconds: float
    duals: dict = field(default_factory=dict)  # constraint data -> dual (LPs only)
    message: str = ""


def watchdog_delay(time_limit: float) -> float:
    """Seconds after which an in-process solve with `time_limit` is cancelled from outside:
    HiGHS checks its own limit between phases, and a large MIP was seen to stay in root cut
    separation for minutes past it. Half the limit again plus 10 s leaves HiGHS every
    chance to stop by itself first."""
    return 1.5 * float(time_limit) + 10.0


def kill_delay(time_limit: float) -> float:
    """Seconds after the call at which the child process solving a MIP with `time_limit`
    (seconds) is killed: the limit plus 2 s and 5% of it, time for HiGHS to stop by itself
    at the limit, postsolve and send its final solution through the pipe."""
    return float(time_limit) + 2.0 + 0.05 * float(time_limit)


def fork_available() -> bool:
    """Whether this platform can fork (POSIX): the child path needs the parent's model and
    HiGHS instance copied into the child as they are."""
    return hasattr(os, "fork")


def _appsi(time_limit, mip_gap, warmstart, options=None):
    from pyomo.contrib.appsi.solvers import Highs

    opt = Highs()
    opt.highs_options.update(options or {})
    if not opt.available():
        raise SolverUnavailable("HiGHS (highspy) is not available: pip install highspy")
    opt.config.stream_solver = False
    opt.config.load_solution = False
    if time_limit is not None:
        opt.config.time_limit = max(float(time_limit), 0.01)
    if mip_gap is not None:
        opt.config.mip_gap = float(mip_gap)
    opt.config.warmstart = bool(warmstart)
    return opt


def _interrupted_incumbent(opt):
    """(objective, bound, found) of a HiGHS MIP stopped by `cancelSolve`: appsi reports the
    interrupt as an unknown outcome and drops the incumbent, but HiGHS keeps it (primal
    solution status 2 = feasible) and its dual bound."""
    highs = getattr(opt, "_solver_model", None)
    if highs is None:
        return None, None, False
    info = highs.getInfo()
    sol = highs.getSolution()
    opt._sol = sol  # what appsi's load_vars reads
    bound = info.mip_dual_bound if info.mip_node_count >= 0 else None
    if int(info.primal_solution_status) == 2 and sol.value_valid:
        return float(info.objective_function_value), bound, True
    return None, bound, False


def _termination(tc) -> str:
    """Our termination word for an appsi `TerminationCondition`."""
    from pyomo.contrib.appsi.base import TerminationCondition as TC

    return {TC.optimal: "optimal", TC.infeasible: "infeasible",
            TC.maxTimeLimit: "time_limit", TC.unbounded: "unbounded",
            TC.infeasibleOrUnbounded: "infeasible"}.get(tc, "error")


def _outcome(term, obj, bound, seconds, duals=None, message="") -> SolverOutcome:
    """The `SolverOutcome` of a HiGHS solve: a solution is held when `obj` is finite; a
    missing or infinite `bound` becomes NaN."""
    has = obj is not None and math.isfinite(obj)
    return SolverOutcome(
        termination=term,
        solution="optimal" if term == "optimal" else ("feasible" if has else "none"),
        objective=float(obj) if has else math.nan,
        bound=float(bound) if bound is not None and math.isfinite(bound) else math.nan,
        seconds=seconds, duals=duals or {}, message=message)


def _has_integers(model: pyo.ConcreteModel) -> bool:
    """Whether an unfixed integer or binary variable is declared on `model` (stops at the
    first; 0.1 s for the 320,000 variables of a 2,000 x 52 plan when there is none)."""
    return any(v.is_integer() and not v.fixed
               for v in model.component_data_objects(pyo.Var, descend_into=True))


def _model_vars(model: pyo.ConcreteModel) -> list:
    """Every variable of `model` in Pyomo's declaration order: the order in which the child
    sends solutions (parent and child hold the same model, so the same list)."""
    return list(model.component_data_objects(pyo.Var, descend_into=True))


def _load_values(model: pyo.ConcreteModel, values) -> None:
    """Set the variables of `model` to `values` (in `_model_vars` order; NaN: a variable
    HiGHS did not see, left as it is), as appsi's load_vars does."""
    from pyomo.core.staleflag import StaleFlagManager

    for var, val in zip(_model_vars(model), values.tolist()):
        if val == val:
            var.set_value(val, skip_validation=True)
    StaleFlagManager.mark_all_as_stale(delayed=True)


# the child streams at most one incumbent and one bound message per interval (seconds); a
# solution of a 2,000 x 52 plan is 2.5 MB, and HiGHS finds dozens in its first seconds
_STREAM_INTERVAL = 0.5


class _Stream:
    """Child side of the pipe: sends ("incumbent", objective, bound, x) for improving
    solutions (at most one per `_STREAM_INTERVAL`, the latest kept until it can go) and
    ("bound", b) as the dual bound moves. `out(x)` turns HiGHS column values into what the
    parent reads."""

    def __init__(self, conn, out):
        self.conn, self.out = conn, out
        self.pending = None
        self.sent_x = self.sent_b = 0.0
        self.bound = math.nan

    @staticmethod
    def _bound(data) -> float:
        b = data.mip_dual_bound
        return float(b) if math.isfinite(b) else math.nan

    def flush(self, now: float) -> None:
        if self.pending is not None:
            obj, x = self.pending
            self.pending = None
            self.conn.send(("incumbent", obj, self.bound, self.out(x)))
            self.sent_x = self.sent_b = now

    def on_improving(self, event) -> None:
        import numpy as np

        data = event.data_out
        now = time.monotonic()
        self.bound = self._bound(data)
        self.pending = (float(data.objective_function_value),
                        np.array(data.mip_solution, dtype=float))
        if now - self.sent_x >= _STREAM_INTERVAL:
            self.flush(now)

    def on_interrupt(self, event) -> None:
        now = time.monotonic()
        bound = self._bound(event.data_out)
        moved = bound != self.bound and not (math.isnan(bound) and math.isnan(self.bound))
        self.bound = bound
        if self.pending is not None and now - self.sent_x >= _STREAM_INTERVAL:
            self.flush(now)
        elif moved and now - self.sent_b >= _STREAM_INTERVAL:
            self.conn.send(("bound", bound))
            self.sent_b = now

    def watch(self, highs) -> None:
        """Subscribe to the MIP callbacks of the highspy instance `highs`."""
        highs.cbMipImprovingSolution += self.on_improving
        highs.cbMipInterrupt += self.on_interrupt


def _child_main(conn, body) -> None:
    """Run `body(conn)` in the forked child; it returns the ("done", term, objective, bound,
    x or None, note) message (x in the parent's order), sent last; an exception is sent as
    ("failed", message)."""
    import threading

    def work():
        try:
            conn.send(body(conn))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, never raised
            try:
                conn.send(("failed", f"{type(exc).__name__}: {exc}"))
            except Exception:  # noqa: BLE001 - the parent reads a closed pipe as a failure
                pass

    # HiGHS keeps its task scheduler in thread-local storage; the parent's (worker threads
    # that do not exist in this child) would deadlock a parallel task, so HiGHS runs on a
    # fresh thread, which builds its own
    runner = threading.Thread(target=work, name="highs-child")
    runner.start()
    runner.join()


def _reap(pid: int, wait: float) -> None:
    """Collect the child `pid`, killing it if it has not exited within `wait` seconds."""
    end = time.monotonic() + wait
    while True:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return
        if time.monotonic() >= end:
            break
        time.sleep(0.001)  # a child that sent its result exits within milliseconds
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    os.waitpid(pid, 0)


class _NoFork(RuntimeError):
    """The child process could not be forked; the solve goes ahead in this process."""


@dataclass
class _ChildReport:
    final: tuple | None  # the child's last message ("done" or "failed"), None if killed/gone
    best: tuple | None  # (objective, x) of the last incumbent streamed
    bound: float  # last dual bound streamed (NaN: none)
    ready: float | None  # seconds the child took to set up (None: not done when it ended)
    killed: bool


def fork_child(body):
    """Fork a child that runs `body(conn)` (see `_child_main`: HiGHS on a fresh thread, the
    return value sent last, an exception sent as ("failed", message)); returns (pid, the
    reading end of the pipe). Raises `_NoFork` when the fork fails."""
    import gc
    import multiprocessing

    reader, writer = multiprocessing.Pipe(duplex=False)
    with warnings.catch_warnings():
        # Python >= 3.12 warns on fork with threads alive; the child touches no lock those
        # threads may hold (it runs HiGHS on a thread of its own and writes to a pipe)
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            pid = os.fork()
        except OSError as exc:  # e.g. no memory for the copy: the caller solves in process
            reader.close()
            writer.close()
            raise _NoFork(str(exc)) from exc
    if pid == 0:  # child
        code = 0
        try:
            gc.disable()  # a collection would write to (and so copy) every page of the model
            reader.close()
            _child_main(writer, body)
            writer.close()
        except BaseException:  # noqa: BLE001 - the child must never return into the caller
            code = 1
        finally:
            os._exit(code)
    writer.close()
    return pid, reader


def _in_child(body, deadline: float) -> _ChildReport:
    """Fork; the child runs `body(conn)` (see `_child_main`) while this process reads what
    it streams until its last message or until `deadline` (perf_counter), when it is
    killed."""
    pid, reader = fork_child(body)
    rep = _ChildReport(None, None, math.nan, None, False)
    try:
        while True:
            left = deadline - time.perf_counter()
            if left <= 0 or not reader.poll(left):
                rep.killed = True
                break
            try:
                msg = reader.recv()
            except (EOFError, OSError):
                break  # the child is gone (a message cut short by its exit is dropped)
            if msg[0] == "ready":
                rep.ready = msg[1]
            elif msg[0] == "incumbent":
                rep.best, rep.bound = (msg[1], msg[3]), msg[2]
            elif msg[0] == "bound":
                rep.bound = msg[1]
            else:
                rep.final = msg
                break
    finally:
        _reap(pid, wait=5.0 if rep.final is not None else 0.0)
        reader.close()
    return rep


def _kept(rep: _ChildReport) -> str:
    return ("its last incumbent and bound are kept" if rep.best is not None
            else "it had sent no incumbent")


def _solve_in_child(opt, model, time_limit: float, start: float) -> SolverOutcome:
    """Translate and solve `model` with `opt` in a forked child, killed
    `kill_delay(time_limit)` s after `start` (perf_counter); see `solve_model`. The child
    sends ("ready", seconds of translation) once HiGHS holds the model, and solutions as
    the values of `_model_vars(model)` (NaN for a variable HiGHS does not have)."""
    import numpy as np

    def body(conn):
        t0 = time.perf_counter()
        opt.set_instance(model)
        col_of = opt._pyomo_var_to_solver_var_map
        cols = np.fromiter((col_of.get(id(v), -1) for v in _model_vars(model)), dtype=np.int64)

        def out(x):
            return np.where(cols >= 0, np.asarray(x, dtype=float)[np.maximum(cols, 0)], np.nan)

        conn.send(("ready", time.perf_counter() - t0))
        # the limit is the caller's wall clock: the translation used part of it
        opt.config.time_limit = max(time_limit - (time.perf_counter() - start), 0.01)
        stream = _Stream(conn, out)
        stream.watch(opt._solver_model)
        # the model was translated just now: appsi's change scan before the solve would
        # only cost time (0.8 s at 2,000 x 52)
        for key in ("check_for_new_or_removed_constraints", "check_for_new_or_removed_vars",
                    "check_for_new_or_removed_params", "check_for_new_objective",
                    "update_constraints", "update_vars", "update_params",
                    "update_named_expressions", "update_objective"):
            setattr(opt.update_config, key, False)
        res = opt.solve(model)
        obj = res.best_feasible_objective
        x = out(opt._sol.col_value) if obj is not None and math.isfinite(obj) else None
        return ("done", _termination(res.termination_condition), obj,
                res.best_objective_bound, x, str(res.termination_condition))

    rep = _in_child(body, start + kill_delay(time_limit))
    if rep.final is not None and rep.final[0] == "done":
        _, term, obj, bound, x, note = rep.final
        if x is not None:
            _load_values(model, x)
        return _outcome(term, obj if x is not None else None, bound,
                        time.perf_counter() - start, message=note)
    if rep.best is not None:
        _load_values(model, rep.best[1])
    obj = rep.best[0] if rep.best is not None else None
    seconds = time.perf_counter() - start
    if rep.killed:
        stage = (f"after {rep.ready:.0f} s of translation" if rep.ready is not None
                 else "still translating the model")
        note = (f"HiGHS killed {kill_delay(time_limit):.0f} s in ({stage}), past its "
                f"{time_limit:g} s limit; {_kept(rep)}")
        return _outcome("time_limit", obj, rep.bound, seconds, message=note)
    why = rep.final[1] if rep.final is not None else "the solver process ended without a result"
    return _outcome("error", obj, rep.bound, seconds, message=f"{why}; {_kept(rep)}")


@dataclass
class HighsRun:
    """Outcome of `run_highs`. termination: optimal | infeasible | time_limit | unbounded |
    error (also when the incumbent does not cost what HiGHS reports: its bound is then
    dropped); objective: of the incumbent (NaN: none); bound: MIP dual bound (NaN: unknown);
    x: the incumbent's column values (None: none); seconds: wall time of the call; killed:
    whether the child was killed at the deadline (the incumbent and bound are then the last
    it streamed)."""

    termination: str
    objective: float
    bound: float
    x: object  # numpy array of column values, or None
    seconds: float
    killed: bool = False
    message: str = ""


_MODEL_STATUS = {"kOptimal": "optimal", "kInfeasible": "infeasible", "kTimeLimit": "time_limit",
                 "kUnbounded": "unbounded", "kUnboundedOrInfeasible": "infeasible",
                 "kInterrupt": "time_limit", "kSolutionLimit": "time_limit",
                 "kIterationLimit": "time_limit"}


def run_highs(highs, time_limit: float) -> HighsRun:
    """Run the highspy instance `highs` (model, options and any MIP start already set) with
    a hard wall-clock limit: HiGHS runs in a forked child with its own `time_limit`
    (seconds), and the child is killed `kill_delay(time_limit)` s after the call. The parent's
    `highs` is left as it was (not run): read the outcome from the returned `HighsRun`.
    Where fork is unavailable or fails, HiGHS runs here with only its own limit (and
    `highs` then holds the solve)."""
    import numpy as np

    start = time.perf_counter()

    def finish(h, x_ok):
        info = h.getInfo()
        has = int(info.primal_solution_status) == 2 and x_ok
        bound = info.mip_dual_bound if info.mip_node_count >= 0 else (
            info.objective_function_value if has else math.nan)
        term = _MODEL_STATUS.get(h.getModelStatus().name, "error")
        x = np.array(h.getSolution().col_value, dtype=float) if has else None
        obj = float(info.objective_function_value) if has else math.nan
        if has:
            # HiGHS 1.16 given a MIP start (presolve on) was seen to end "optimal" with an
            # objective and bound below the true optimum while handing back the start: a
            # solution that does not cost what HiGHS reports voids its bound and status
            lp = h.getLp()
            own = float(np.dot(np.asarray(lp.col_cost_, dtype=float), x) + lp.offset_)
            if abs(own - obj) > 1e-6 * max(1.0, abs(obj)):
                return "error", own, math.nan, x
        return term, obj, float(bound), x

    def here():
        highs.setOptionValue("time_limit", max(float(time_limit), 0.01))
        highs.run()
        term, obj, bound, x = finish(highs, highs.getSolution().value_valid)
        return HighsRun(term, obj, bound, x, time.perf_counter() - start,
                        message=highs.getModelStatus().name)

    if not fork_available():
        return here()

    def body(conn):
        highs.setOptionValue("time_limit", max(time_limit - (time.perf_counter() - start), 0.01))
        _Stream(conn, lambda x: x).watch(highs)
        highs.run()
        term, obj, bound, x = finish(highs, highs.getSolution().value_valid)
        return ("done", term, obj, bound, x, highs.getModelStatus().name)

    try:
        rep = _in_child(body, start + kill_delay(time_limit))
    except _NoFork:
        return here()
    seconds = time.perf_counter() - start
    if rep.final is not None and rep.final[0] == "done":
        _, term, obj, bound, x, note = rep.final
        bound = bound if math.isfinite(bound) else math.nan
        return HighsRun(term, obj, bound, x, seconds, message=note)
    obj, x = rep.best if rep.best is not None else (math.nan, None)
    if rep.killed:
        note = f"HiGHS killed {kill_delay(time_limit):.0f} s in, past its {time_limit:g} s " \
               f"limit; {_kept(rep)}"
        return HighsRun("time_limit", obj, rep.bound, x, seconds, killed=True, message=note)
    why = rep.final[1] if rep.final is not None else "the solver process ended without a result"
    return HighsRun("error", obj, rep.bound, x, seconds, message=f"{why}; {_kept(rep)}")


def solve_model(model: pyo.ConcreteModel, *, solver: str = "appsi_highs", time_limit=None,
                mip_gap=None, warmstart: bool = False, want_duals: bool = False,
                persistent=None, hard_limit: bool | None = None,
                options: dict | None = None) -> SolverOutcome:
    """Solve `model`; load the incumbent into its variables when there is one.

    `time_limit` in seconds. `warmstart=True` hands the current variable values to HiGHS
    as a MIP start (every variable must hold a value: appsi fills unset ones with 0 and HiGHS
    rejects a partial start). Pass a `persistent` appsi solver to reuse one across re-solves.
    `options`: HiGHS options by name (appsi HiGHS only, not with `persistent`).

    `hard_limit=True`: a wall-clock limit. The model is translated into HiGHS and solved in
    a forked child, which gives HiGHS what the translation leaves of `time_limit` and is
    killed `kill_delay(time_limit)` s after the call, so the call returns by then whatever
    HiGHS does; the incumbent and dual bound the child last streamed come back as
    termination "time_limit" (the message says "killed"). It needs a `time_limit`, fork
    (POSIX; a fork that fails falls back too) and neither `persistent` nor `want_duals`;
    otherwise, and with `hard_limit=False`, HiGHS runs in this process with `time_limit`
    counted from its own start (the translation comes first, 15-25 s for a 320,000-variable
    plan), and a watchdog cancels it at `watchdog_delay(time_limit)`, which HiGHS may not notice for
    minutes. Default (None): the child for a MIP (an unfixed integer variable), this
    process for an LP. A solve that completes returns the same in both places. The child
    costs a fork (about 50 ms for a 1.2 GB process) and the copy of each streamed solution.
    """
    start = time.perf_counter()
    if solver in ("appsi_highs", "highs"):
        opt = persistent or _appsi(time_limit, mip_gap, warmstart, options)
        if persistent is not None:
            if time_limit is not None:
                opt.config.time_limit = max(float(time_limit), 0.01)
            opt.config.warmstart = bool(warmstart)
        child = (time_limit is not None and persistent is None and not want_duals
                 and fork_available())
        if child and (hard_limit or (hard_limit is None and _has_integers(model))):
            try:
                return _solve_in_child(opt, model, float(time_limit), start)
            except _NoFork:
                pass  # in process below, with the watchdog
        fired = []
        timer = None
        if time_limit is not None:
            import threading

            def cancel():
                highs = getattr(opt, "_solver_model", None)
                if highs is not None:
                    fired.append(True)
                    highs.cancelSolve()  # HiGHS runs without the GIL: this lands at once

            timer = threading.Timer(watchdog_delay(time_limit), cancel)
            timer.daemon = True
            timer.start()
        try:
            res = opt.solve(model)
        finally:
            if timer is not None:
                timer.cancel()
        seconds = time.perf_counter() - start
        term = _termination(res.termination_condition)
        note = str(res.termination_condition)
        obj = res.best_feasible_objective
        bound = res.best_objective_bound
        if fired and term == "error":
            term = "time_limit"
            obj, bound, kept = _interrupted_incumbent(opt)
            note = (f"HiGHS cancelled {watchdog_delay(time_limit):.0f} s in, well past its "
                    f"{time_limit:g} s limit; " + ("its incumbent and bound are kept" if kept
                                                    else "it held no incumbent"))
        has = obj is not None and math.isfinite(obj)
        if has:
            opt.load_vars() if fired else res.solution_loader.load_vars()
        duals = {}
        if want_duals and term == "optimal":
            duals = res.solution_loader.get_duals()
        return _outcome(term, obj, bound, seconds, duals, note)
    # any other Pyomo solver by name (no MIP start, no persistence)
    opt = pyo.SolverFactory(solver)
    if opt is None or not opt.available(exception_flag=False):
        raise SolverUnavailable(f"solver {solver!r} is not available to Pyomo; "
                                "use --solver appsi_highs")
    if want_duals and not hasattr(model, "dual"):
        model.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    res = opt.solve(model, load_solutions=False)
    seconds = time.perf_counter() - start
    tc = str(res.solver.termination_condition)
    term = "optimal" if tc == "optimal" else ("infeasible" if "infeasible" in tc else
                                               ("time_limit" if "Time" in tc else "error"))
    has = len(res.solution) > 0
    if has:
        model.solutions.load_from(res)
    obj = pyo.value(next(model.component_data_objects(pyo.Objective, active=True))) if has else math.nan
    duals = dict(model.dual.items()) if want_duals and has and hasattr(model, "dual") else {}
    return SolverOutcome(term, "optimal" if term == "optimal" else ("feasible" if has else "none"),
                         obj, obj if term == "optimal" else math.nan, seconds, duals, tc)
